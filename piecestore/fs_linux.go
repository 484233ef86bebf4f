package piecestore

import (
	"errors"
	"os"
	"syscall"
)

// Allocate reserves size bytes for the file (fallocate), so that a full disk is reported
// when a download starts rather than halfway through it. File systems without fallocate
// get a sparse file instead.
func (f osFile) Allocate(size int64) error {
	if size == 0 {
		return nil
	}
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var ferr error
	if err := rc.Control(func(fd uintptr) {
		ferr = syscall.Fallocate(int(fd), 0, 0, size)
	}); err != nil {
		return err
	}
	if errors.Is(ferr, syscall.EOPNOTSUPP) || errors.Is(ferr, syscall.ENOSYS) {
		return f.Truncate(size)
	}
	return ferr
}

// Open opens name read-only without os.Open's attempt to register the descriptor with the
// runtime's poller (epoll refuses regular files: one wasted epoll_ctl per open, 7.5% of the
// CPU of serving small files, bench/RESULTS.md proxy section), and with O_NOATIME where the
// daemon owns the file: every sendfile(2) from it would otherwise go through touch_atime (1.4%
// of that CPU), and the store keeps its own access times. Files of others (OTHER_DIRS) refuse
// O_NOATIME (EPERM) and are opened without it.
func (OSFS) Open(name string) (File, error) {
	var fd int
	var err error
	flags := syscall.O_RDONLY | syscall.O_CLOEXEC | syscall.O_NOATIME
	for {
		fd, err = syscall.Open(name, flags, 0)
		if err == syscall.EPERM && flags&syscall.O_NOATIME != 0 {
			flags &^= syscall.O_NOATIME
			continue
		}
		if err != syscall.EINTR {
			break
		}
	}
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: name, Err: err}
	}
	return osFile{os.NewFile(uintptr(fd), name)}, nil
}

// fileIDOfInfo is the identity of the file fi describes.
func fileIDOfInfo(fi os.FileInfo) fileID {
	id := fileID{size: fi.Size(), mtime: fi.ModTime().UnixNano()}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		id.ino = st.Ino
		id.ctime = st.Ctim.Nano()
	}
	return id
}
