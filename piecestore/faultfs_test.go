package piecestore

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
)

var errCrashed = errors.New("faultfs: crashed")

// faultFS wraps the OS file system and counts every mutating step (create, write, truncate,
// sync, rename, remove, mkdir, directory sync, metadata commit). At step failAt it fails
// that one operation with failErr; at step crashAt it "crashes": that operation and every
// later one fail without touching the disk, as if the process had died there. powerLoss
// then also undoes what was not yet durable: renames not followed by a sync of the target
// directory are reverted, and files written since their last Sync get their content
// zeroed (size kept: the nastiest case for a store that only checks sizes).
type faultFS struct {
	OSFS
	mu        sync.Mutex
	step      int
	crashAt   int
	failAt    int
	failErr   error
	shortAt   int // at this step a write writes half its bytes and reports no error
	crashed   bool
	dirty     map[string]bool // paths written or truncated since their last Sync
	renames   []renameOp      // renames not yet made durable
	stepNames []string
}

type renameOp struct{ from, to string }

func newFaultFS() *faultFS { return &faultFS{dirty: make(map[string]bool)} }

// tick accounts one mutating step.
func (f *faultFS) tick(what string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.crashed {
		return errCrashed
	}
	f.step++
	f.stepNames = append(f.stepNames, what)
	if f.step == f.crashAt {
		f.crashed = true
		return errCrashed
	}
	if f.step == f.failAt {
		return f.failErr
	}
	return nil
}

func (f *faultFS) isShort() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.step == f.shortAt
}

func (f *faultFS) didCrash() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.crashed
}

// powerLoss applies the loss of everything not durable at the crash.
func (f *faultFS) powerLoss() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i := len(f.renames) - 1; i >= 0; i-- {
		r := f.renames[i]
		if os.Rename(r.to, r.from) == nil && f.dirty[r.to] {
			delete(f.dirty, r.to)
			f.dirty[r.from] = true
		}
	}
	for p := range f.dirty {
		if fi, err := os.Stat(p); err == nil {
			os.WriteFile(p, make([]byte, fi.Size()), 0o644)
		}
	}
}

func (f *faultFS) Create(name string) (File, error) {
	if err := f.tick("create " + filepath.Base(name)); err != nil {
		return nil, err
	}
	fl, err := f.OSFS.Create(name)
	if err != nil {
		return nil, err
	}
	f.mu.Lock()
	f.dirty[name] = true
	f.mu.Unlock()
	return &faultFile{File: fl, fs: f, path: name}, nil
}

func (f *faultFS) Open(name string) (File, error) {
	f.mu.Lock()
	crashed := f.crashed
	f.mu.Unlock()
	if crashed {
		return nil, errCrashed
	}
	fl, err := f.OSFS.Open(name)
	if err != nil {
		return nil, err
	}
	return &faultFile{File: fl, fs: f, path: name}, nil
}

func (f *faultFS) Rename(from, to string) error {
	if err := f.tick("rename " + filepath.Base(from)); err != nil {
		return err
	}
	if err := f.OSFS.Rename(from, to); err != nil {
		return err
	}
	f.mu.Lock()
	f.renames = append(f.renames, renameOp{from, to})
	if f.dirty[from] {
		delete(f.dirty, from)
		f.dirty[to] = true
	}
	f.mu.Unlock()
	return nil
}

func (f *faultFS) Remove(name string) error {
	if err := f.tick("remove " + filepath.Base(name)); err != nil {
		return err
	}
	return f.OSFS.Remove(name)
}

func (f *faultFS) MkdirAll(name string, perm os.FileMode) error {
	if err := f.tick("mkdir " + filepath.Base(name)); err != nil {
		return err
	}
	return f.OSFS.MkdirAll(name, perm)
}

func (f *faultFS) SyncDir(name string) error {
	if err := f.tick("syncdir " + filepath.Base(name)); err != nil {
		return err
	}
	// Durability is modelled here (powerLoss), so the real fsync is skipped: it would only
	// make the tests slow on a shared disk.
	f.mu.Lock()
	kept := f.renames[:0]
	for _, r := range f.renames {
		if filepath.Dir(r.to) != filepath.Clean(name) {
			kept = append(kept, r)
		}
	}
	f.renames = kept
	f.mu.Unlock()
	return nil
}

func (f *faultFS) BeforeMetaCommit() error { return f.tick("meta commit") }

type faultFile struct {
	File
	fs   *faultFS
	path string
}

func (ff *faultFile) OSFile() *os.File { return osFileOf(ff.File) }

func (ff *faultFile) markDirty() {
	ff.fs.mu.Lock()
	// A renamed file is tracked under its new name.
	p := ff.path
	for _, r := range ff.fs.renames {
		if r.from == p {
			p = r.to
		}
	}
	ff.path = p
	ff.fs.dirty[p] = true
	ff.fs.mu.Unlock()
}

func (ff *faultFile) WriteAt(p []byte, off int64) (int, error) {
	if err := ff.fs.tick(fmt.Sprintf("write %d@%d", len(p), off)); err != nil {
		return 0, err
	}
	ff.markDirty()
	if ff.fs.isShort() {
		n, err := ff.File.WriteAt(p[:len(p)/2], off)
		return n, err
	}
	return ff.File.WriteAt(p, off)
}

func (ff *faultFile) Write(p []byte) (int, error) {
	if err := ff.fs.tick(fmt.Sprintf("write %d", len(p))); err != nil {
		return 0, err
	}
	ff.markDirty()
	return ff.File.Write(p)
}

func (ff *faultFile) Truncate(size int64) error {
	if err := ff.fs.tick("truncate"); err != nil {
		return err
	}
	ff.markDirty()
	return ff.File.Truncate(size)
}

func (ff *faultFile) Allocate(size int64) error {
	if err := ff.fs.tick("allocate"); err != nil {
		return err
	}
	ff.markDirty()
	return allocate(ff.File, size)
}

func (ff *faultFile) Sync() error {
	if err := ff.fs.tick("fsync"); err != nil {
		return err
	}
	ff.fs.mu.Lock()
	p := ff.path
	for _, r := range ff.fs.renames {
		if r.from == p {
			p = r.to
		}
	}
	ff.path = p
	delete(ff.fs.dirty, p)
	ff.fs.mu.Unlock()
	return nil
}
