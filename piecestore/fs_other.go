//go:build !linux

package piecestore

// Allocate sizes the file (sparse) where fallocate is not available.
func (f osFile) Allocate(size int64) error { return f.Truncate(size) }
