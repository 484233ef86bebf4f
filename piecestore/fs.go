package piecestore

import (
	"io"
	"os"
)

// FS is the narrow file-system interface every data file goes through, so that tests can
// inject short writes, ENOSPC and crashes (see faultfs_test.go). Names are OS paths.
// The metadata database (bbolt) uses the OS directly; a fault-injecting FS can still
// stop it by implementing MetaHook.
type FS interface {
	// Open opens an existing file read-only.
	Open(name string) (File, error)
	// Create creates a new file for reading and writing; it fails if name exists.
	Create(name string) (File, error)
	// OpenRW opens an existing file for reading and writing (a partial
	// download being resumed).
	OpenRW(name string) (File, error)
	Rename(oldname, newname string) error
	Remove(name string) error
	Stat(name string) (os.FileInfo, error)
	ReadDir(name string) ([]os.DirEntry, error)
	MkdirAll(name string, perm os.FileMode) error
	// SyncDir makes the directory's entries (creations, renames, removals) durable.
	SyncDir(name string) error
}

// File is an open file of an FS.
type File interface {
	io.ReaderAt
	io.WriterAt
	io.Writer
	io.Reader
	Sync() error
	Truncate(size int64) error
	Close() error
	Stat() (os.FileInfo, error)
}

// OSFiler is implemented by Files that are backed by an *os.File (the real FS's files, and
// wrappers that forward to one): it is what lets the HTTP server use sendfile.
type OSFiler interface {
	OSFile() *os.File
}

// Allocator may be implemented by a File to reserve its full size up front (the real FS
// uses fallocate). Without it the store sizes files with Truncate (sparse).
type Allocator interface {
	Allocate(size int64) error
}

// MetaHook may be implemented by an FS that simulates crashes: the store calls
// BeforeMetaCommit before every metadata transaction and skips the transaction if it
// returns an error, so that "the process died before the metadata commit" can be tested.
type MetaHook interface {
	BeforeMetaCommit() error
}

// OSFS is the real file system.
type OSFS struct{}

type osFile struct{ *os.File }

func (f osFile) OSFile() *os.File { return f.File }

func (OSFS) OpenRW(name string) (File, error) {
	f, err := os.OpenFile(name, os.O_RDWR, 0)
	if err != nil {
		return nil, err
	}
	return osFile{f}, nil
}

func (OSFS) Create(name string) (File, error) {
	f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return nil, err
	}
	return osFile{f}, nil
}

func (OSFS) Rename(oldname, newname string) error         { return os.Rename(oldname, newname) }
func (OSFS) Remove(name string) error                     { return os.Remove(name) }
func (OSFS) Stat(name string) (os.FileInfo, error)        { return os.Stat(name) }
func (OSFS) ReadDir(name string) ([]os.DirEntry, error)   { return os.ReadDir(name) }
func (OSFS) MkdirAll(name string, perm os.FileMode) error { return os.MkdirAll(name, perm) }

func (OSFS) SyncDir(name string) error {
	d, err := os.Open(name)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// osFileOf returns the *os.File behind f, or nil.
func osFileOf(f File) *os.File {
	if o, ok := f.(OSFiler); ok {
		return o.OSFile()
	}
	return nil
}
