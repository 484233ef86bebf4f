package piecestore

import (
	"errors"
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
