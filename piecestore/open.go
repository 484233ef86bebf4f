package piecestore

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultOpenFiles is Options.OpenFiles when it is 0: descriptors of recently served files kept
// open (nginx's open_file_cache), so a hot file costs no open(2) and no fstat(2) per request.
const DefaultOpenFiles = 1024

const (
	// openFileValid is how long a cached descriptor is handed out before its identity is
	// compared with the verified one again (one fstat). An edit in place shows there; bit rot
	// changes no metadata and is the scrub's to find.
	openFileValid = 60 * time.Second
	// openFileIdle closes cached descriptors nobody asked for in this long.
	openFileIdle = 2 * time.Minute
	// verifyParallel bounds the files hashed at once before their first serve.
	verifyParallel = 2
	// lastAccessGrain is how stale a served file's LastAccess may be.
	lastAccessGrain = time.Second
)

// fileID tells a file apart from a changed or replaced one: inode, size, modification and change
// times. A replacement changes the inode; an edit changes ctime even when mtime is restored
// (Linux). The zero fileID means "not verified since the store opened".
type fileID struct {
	ino          uint64
	size         int64
	mtime, ctime int64
}

func fileIDOf(f File) (fileID, error) {
	fi, err := f.Stat()
	if err != nil {
		return fileID{}, err
	}
	return fileIDOfInfo(fi), nil
}

// openFile is one open descriptor of a stored file, shared by the Readers of its entry. Only
// explicit-offset reads (pread, sendfile with an offset) are made through it.
type openFile struct {
	f          File
	e          *entry
	refs       int       // open Readers using f
	checked    time.Time // when f's identity was last compared with e.vid
	used       time.Time // last handed out
	cached     bool      // in the store's LRU list (else closed when refs reaches 0)
	prev, next *openFile // LRU list, most recently used first
}

// Reader is an open complete file. It pins the file against eviction until Close. Readers of
// the same content share one descriptor: read it only at explicit offsets (ReadAt,
// io.SectionReader, sendfile with an offset), never through its own offset.
type Reader struct {
	s      *Store
	e      *entry
	of     *openFile
	size   int64
	closed atomic.Bool
}

// File returns the *os.File for sendfile (nil if the FS is not backed by the OS). It is shared
// with other Readers of the same content: use ReadAt, an io.SectionReader or sendfile with an
// explicit offset, never Read, Seek or Go's ReadFrom on it.
func (r *Reader) File() *os.File { return osFileOf(r.of.f) }

// ReadAt reads from the file; reads past Size return io.EOF.
func (r *Reader) ReadAt(p []byte, off int64) (int, error) {
	if off >= r.size {
		return 0, io.EOF
	}
	if max := r.size - off; int64(len(p)) > max {
		n, err := r.of.f.ReadAt(p[:max], off)
		if err == nil {
			err = io.EOF
		}
		return n, err
	}
	return r.of.f.ReadAt(p, off)
}

// Size is the verified size of the file.
func (r *Reader) Size() int64 { return r.size }

// Close unpins the file. Its descriptor stays open in the store's cache of open files.
func (r *Reader) Close() error {
	if !r.closed.CompareAndSwap(false, true) {
		return ErrClosed
	}
	s := r.s
	s.mu.Lock()
	r.of.refs--
	r.e.readers--
	s.st.Readers--
	var f File
	if !r.of.cached && r.of.refs == 0 {
		f = r.of.f
	}
	s.mu.Unlock()
	if f != nil {
		return f.Close()
	}
	return nil
}

// OpenFile opens a complete file for reading; it is pinned against eviction until the Reader is
// closed. A file is verified (its SHA-256 recomputed) before the first time it is served after
// the store opened, and again whenever its identity (inode, size, mtime, ctime) changed: a copy
// that no longer matches is dropped (ErrCorrupt) and must be fetched again. A file whose size on
// disk is not its verified size, or a shared external file whose size or mtime changed, is
// refused and dropped (ErrChanged). A hot file is served from a cached descriptor: no open and no
// stat per request.
func (s *Store) OpenFile(info *Info) (*Reader, error) { return s.OpenFileHint(info, nil) }

// A Hint remembers the stored content an OpenFileHint found for a digest, so that opening the
// same digest again skips the lookup by hash (a hot file opened by every request: the maps and
// the digest comparison were a third of OpenFile). It stays valid while the content is stored;
// once it is not, the next open looks it up again. The zero Hint is empty. A Hint is only read
// and written under the store's lock: share it freely.
type Hint struct{ e *entry }

// OpenFileHint is OpenFile with a Hint (nil: none) for info's digest, which must be the same
// digest at every call with the same Hint.
func (s *Store) OpenFileHint(info *Info, h *Hint) (*Reader, error) {
	for {
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			return nil, ErrClosed
		}
		var e *entry
		if h != nil && h.e != nil && !h.e.gone {
			// Still in the maps, so still what lookupLocked would find: an entry's digest only
			// ever gains hashes that agree with it.
			e = h.e
		} else {
			e = s.lookupLocked(&info.Digest)
			if h != nil {
				h.e = e
			}
		}
		if e == nil {
			s.mu.Unlock()
			return nil, ErrNotFound
		}
		now := s.now()
		if now.Sub(e.info.LastAccess) >= lastAccessGrain {
			// The LRU order needs no finer grain, and a hot file costs no map write per request.
			e.info.LastAccess = now
			s.dirty[e] = struct{}{}
		}
		// Shared external files live in a directory other programs write to: their cached
		// descriptor is checked (one fstat) at every request.
		if of := e.of; of != nil && e.vid != (fileID{}) && e.name != "" && now.Sub(of.checked) < openFileValid {
			s.handOutLocked(e, of, now)
			s.mu.Unlock()
			return &Reader{s: s, e: e, of: of, size: e.info.Digest.Size}, nil
		}
		if ch := e.verifying; ch != nil {
			// Another request opens or verifies this file: wait for its result.
			s.mu.Unlock()
			<-ch
			continue
		}
		ch := make(chan struct{})
		e.verifying = ch
		e.readers++ // pinned while it is opened and verified
		s.st.Readers++
		s.mu.Unlock()
		r, err := s.openSlow(e, now)
		s.mu.Lock()
		e.verifying = nil
		if err != nil {
			e.readers--
			s.st.Readers--
		}
		close(ch)
		s.mu.Unlock()
		s.closePending()
		return r, err
	}
}

// handOutLocked counts one more Reader of e through of.
func (s *Store) handOutLocked(e *entry, of *openFile, now time.Time) {
	of.refs++
	e.readers++
	s.st.Readers++
	s.touchLocked(of, now)
}

// touchLocked marks of used now. The LRU list needs no finer grain than lastAccessGrain (used
// is when of last moved to the front, so the list stays in used order): a hot descriptor is
// not moved, touching its neighbours, at every request.
func (s *Store) touchLocked(of *openFile, now time.Time) {
	if now.Sub(of.used) < lastAccessGrain {
		return
	}
	of.used = now
	if of.cached && s.ofHead != of {
		s.unlinkLocked(of)
		s.pushFrontLocked(of)
	}
}

// openSlow opens e's file (or revalidates its cached descriptor), verifies it if it was not
// verified as it is, and caches the descriptor. e is pinned by the caller; on success the pin
// becomes the Reader's.
func (s *Store) openSlow(e *entry, now time.Time) (*Reader, error) {
	s.mu.Lock()
	of, vid := e.of, e.vid
	name, ext := e.name, e.info.External
	extSize, extMtime := e.extSize, e.extMtime
	size, want := e.info.Digest.Size, e.info.Digest.SHA256
	s.mu.Unlock()
	if of != nil {
		id, err := fileIDOf(of.f)
		s.mu.Lock()
		if err == nil && id == vid && e.of == of && !e.gone {
			of.checked = now
			of.refs++
			s.touchLocked(of, now)
			s.mu.Unlock()
			return &Reader{s: s, e: e, of: of, size: size}, nil
		}
		// Changed in place (or unreadable): open it anew and verify it.
		if e.of == of {
			s.forgetFileLocked(e)
		}
		if e.vid == vid {
			e.vid = fileID{}
		}
		s.mu.Unlock()
	}
	path := ext
	if name != "" {
		path = filepath.Join(s.dataDir, name)
	}
	f, err := s.fs.Open(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			s.drop(e, "file vanished")
			return nil, ErrNotFound
		}
		return nil, fmt.Errorf("piecestore: %w", err)
	}
	id, err := fileIDOf(f)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("piecestore: %w", err)
	}
	if id.size != size || (name == "" && (id.size != extSize || id.mtime != extMtime)) {
		f.Close()
		s.drop(e, "file changed on disk")
		return nil, ErrChanged
	}
	if id != vid {
		// Not verified since the store opened, or changed since: hash it before its first
		// byte goes out.
		ok, err := s.verifyFile(f, size, want)
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("piecestore: verifying %s: %w", path, err)
		}
		if !ok {
			f.Close()
			s.mu.Lock()
			s.st.Corrupt++
			s.mu.Unlock()
			s.dropIfSame(e, path, id, "content does not match its hash")
			return nil, ErrCorrupt
		}
		if id2, err := fileIDOf(f); err != nil || id2 != id {
			f.Close()
			return nil, ErrChanged // written to while we hashed: the next request verifies again
		}
		s.mu.Lock()
		s.st.Verified++
		s.mu.Unlock()
	}
	of = &openFile{f: f, e: e, refs: 1, checked: now, used: now}
	s.mu.Lock()
	if e.gone || e.name != name || e.info.External != ext {
		// Dropped, evicted or replaced meanwhile: serve what was verified, cache nothing.
		s.mu.Unlock()
		return &Reader{s: s, e: e, of: of, size: size}, nil
	}
	e.vid = id
	s.cacheLocked(e, of)
	s.mu.Unlock()
	return &Reader{s: s, e: e, of: of, size: size}, nil
}

var verifyBufPool = sync.Pool{New: func() any { b := make([]byte, 256<<10); return &b }}

// verifyFile reports whether f's first size bytes have the SHA-256 want (and f is not shorter).
// At most verifyParallel files are hashed at once.
func (s *Store) verifyFile(f File, size int64, want [32]byte) (bool, error) {
	s.verifySem <- struct{}{}
	defer func() { <-s.verifySem }()
	bp := verifyBufPool.Get().(*[]byte)
	defer verifyBufPool.Put(bp)
	buf := *bp
	h := sha256.New()
	var off int64
	for off < size {
		n, err := f.ReadAt(buf[:min(int64(len(buf)), size-off)], off)
		h.Write(buf[:n])
		off += int64(n)
		if err == io.EOF && off < size {
			return false, nil
		}
		if err != nil && err != io.EOF {
			return false, err
		}
	}
	var sum [32]byte
	h.Sum(sum[:0])
	return sum == want, nil
}

// dropIfSame drops e because the file at path, as identified by id, is corrupt, unless the
// file there changed meanwhile (a fresh copy committed over it): then e is only marked as not
// verified.
func (s *Store) dropIfSame(e *entry, path string, id fileID, why string) {
	s.metaMu.Lock()
	if fi, err := s.fs.Stat(path); err == nil && fileIDOfInfo(fi) != id {
		s.mu.Lock()
		e.vid = fileID{}
		s.forgetFileLocked(e)
		s.mu.Unlock()
	} else {
		s.dropLocked(e, why)
	}
	s.metaMu.Unlock()
	s.closePending()
	s.notifyDropped()
}

// cacheLocked makes of e's cached descriptor, closing the least recently used ones beyond
// OpenFiles (once their Readers are done).
func (s *Store) cacheLocked(e *entry, of *openFile) {
	if s.maxOpen <= 0 {
		return // not cached: the last Reader's Close closes it
	}
	s.forgetFileLocked(e)
	e.of = of
	of.cached = true
	s.pushFrontLocked(of)
	s.st.OpenFiles++
	for s.st.OpenFiles > s.maxOpen && s.ofTail != nil {
		s.forgetFileLocked(s.ofTail.e)
	}
}

// forgetFileLocked takes e's descriptor out of the cache; it is closed now if no Reader uses it,
// else by the last Reader's Close. Closing waits for closePending, outside the lock.
func (s *Store) forgetFileLocked(e *entry) {
	of := e.of
	if of == nil {
		return
	}
	e.of = nil
	if of.cached {
		s.unlinkLocked(of)
		of.cached = false
		s.st.OpenFiles--
	}
	if of.refs == 0 {
		s.toClose = append(s.toClose, of.f)
	}
}

// closePending closes the descriptors forgetFileLocked left for it.
func (s *Store) closePending() {
	s.mu.Lock()
	fs := s.toClose
	s.toClose = nil
	s.mu.Unlock()
	for _, f := range fs {
		f.Close()
	}
}

// closeIdle closes cached descriptors unused since before `before`.
func (s *Store) closeIdle(before time.Time) {
	s.mu.Lock()
	for of := s.ofTail; of != nil && of.used.Before(before); {
		prev := of.prev
		if of.refs == 0 {
			s.forgetFileLocked(of.e)
		}
		of = prev
	}
	s.mu.Unlock()
	s.closePending()
}

// closeAllFiles forgets every cached descriptor (Close).
func (s *Store) closeAllFiles() {
	s.mu.Lock()
	for s.ofHead != nil {
		s.forgetFileLocked(s.ofHead.e)
	}
	s.mu.Unlock()
	s.closePending()
}

func (s *Store) pushFrontLocked(of *openFile) {
	of.prev = nil
	of.next = s.ofHead
	if s.ofHead != nil {
		s.ofHead.prev = of
	}
	s.ofHead = of
	if s.ofTail == nil {
		s.ofTail = of
	}
}

func (s *Store) unlinkLocked(of *openFile) {
	if of.prev != nil {
		of.prev.next = of.next
	} else {
		s.ofHead = of.next
	}
	if of.next != nil {
		of.next.prev = of.prev
	} else {
		s.ofTail = of.prev
	}
	of.prev, of.next = nil, nil
}
