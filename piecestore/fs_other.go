//go:build !linux

package piecestore

import "os"

// Allocate sizes the file (sparse) where fallocate is not available.
func (f osFile) Allocate(size int64) error { return f.Truncate(size) }

// Open opens name read-only.
func (OSFS) Open(name string) (File, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	return osFile{f}, nil
}

// fileIDOfInfo is the identity of the file fi describes: size and mtime only here.
func fileIDOfInfo(fi os.FileInfo) fileID {
	return fileID{size: fi.Size(), mtime: fi.ModTime().UnixNano()}
}
