package piecestore

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/apt-p2p/apt-p2p/internal/digest"
)

// DueForAnnounce returns up to max complete files last announced before `before`, oldest
// first (never-announced files first of all). max <= 0 means no limit.
func (s *Store) DueForAnnounce(before time.Time, max int) []Info {
	s.mu.RLock()
	var due []*entry
	for _, e := range s.bySHA256 {
		if e.info.LastAnnounced.Before(before) {
			due = append(due, e)
		}
	}
	slices.SortFunc(due, func(a, b *entry) int {
		return a.info.LastAnnounced.Compare(b.info.LastAnnounced)
	})
	if max > 0 && len(due) > max {
		due = due[:max]
	}
	out := make([]Info, len(due))
	for i, e := range due {
		out[i] = e.info
	}
	s.mu.RUnlock()
	return out
}

// Verify rehashes every complete file (cached and external) and drops those that no longer
// match their recorded hashes and size. It returns how many were dropped.
func (s *Store) Verify(ctx context.Context) (bad int, err error) {
	s.mu.RLock()
	all := make([]*entry, 0, len(s.bySHA256))
	for _, e := range s.bySHA256 {
		all = append(all, e)
	}
	s.mu.RUnlock()
	for _, e := range all {
		s.mu.RLock()
		name, ext, want := e.name, e.info.External, e.info.Digest
		gone := e.gone
		s.mu.RUnlock()
		if gone {
			continue
		}
		path := ext
		if name != "" {
			path = filepath.Join(s.dataDir, name)
		}
		d, pieces, herr := s.hashFile(ctx, path, &want, nil)
		if ctxErr := ctx.Err(); ctxErr != nil {
			return bad, ctxErr
		}
		if herr != nil || d.Size != want.Size || !want.Matches(&d) {
			s.drop(e, "verification failed")
			bad++
			continue
		}
		s.repairPieces(e, pieces)
	}
	return bad, nil
}

// repairPieces replaces a recorded piece string that does not match the content (damaged
// metadata: peers would fail every piece) with the one just computed.
func (s *Store) repairPieces(e *entry, pieces []byte) {
	s.metaMu.Lock()
	defer s.metaMu.Unlock()
	s.mu.Lock()
	if e.gone || bytes.Equal(e.info.Pieces, PieceString(pieces)) {
		s.mu.Unlock()
		return
	}
	s.log.Warn("piecestore: repairing a damaged piece list", "sha256", hex.EncodeToString(e.info.Digest.SHA256[:]))
	s.removeLocked(e)
	e.setPieces(append([]byte(nil), pieces...))
	s.insertLocked(e)
	snap := *e
	s.mu.Unlock()
	if err := s.metaUpdate([]*entry{&snap}, nil); err != nil {
		s.log.Warn("piecestore: repairing piece list", "err", err)
	}
}

// GC reconciles the cache directory with the metadata as Open does (leftover temporary
// files of finished writers, data files without metadata, metadata without data files),
// and writes pending metadata. It returns the number of files or records removed.
func (s *Store) GC() (removed int, err error) {
	if err := s.flush(); err != nil {
		return 0, err
	}
	tmps, err := s.fs.ReadDir(s.tmpDir)
	if err != nil {
		return 0, fmt.Errorf("piecestore: %w", err)
	}
	// Temporary files of live writers must survive. A writer registers before it creates
	// its file, so every listed file of a live writer is in this later snapshot.
	s.mu.RLock()
	live := make(map[string]bool)
	for _, w := range s.writers {
		live[w.tmpName] = true
		live[w.journal] = true
	}
	for _, st := range s.resumable {
		part, journal := s.resumeNames(&st.want)
		live[part], live[journal] = true, true
	}
	s.mu.RUnlock()
	for _, de := range tmps {
		p := filepath.Join(s.tmpDir, de.Name())
		if !live[p] && s.fs.Remove(p) == nil {
			removed++
		}
	}
	// Listing data/ and comparing it with the entries must not interleave with a commit
	// (rename, then entry) or an eviction (entry, then removal): they hold metaMu too.
	s.metaMu.Lock()
	ents, err := s.fs.ReadDir(s.dataDir)
	if err != nil {
		s.metaMu.Unlock()
		return removed, fmt.Errorf("piecestore: %w", err)
	}
	onDisk := make(map[string]int64, len(ents))
	for _, de := range ents {
		if fi, err := de.Info(); err == nil && fi.Mode().IsRegular() {
			onDisk[de.Name()] = fi.Size()
		}
	}
	s.mu.RLock()
	var missing []*entry
	for _, e := range s.bySHA256 {
		if e.name == "" {
			continue
		}
		size, ok := onDisk[e.name]
		delete(onDisk, e.name)
		if !ok || size != e.info.Digest.Size {
			missing = append(missing, e)
		}
	}
	s.mu.RUnlock()
	for _, e := range missing {
		s.dropLocked(e, "data file missing or wrong size")
		removed++
	}
	s.metaMu.Unlock()
	s.notifyDropped()
	// Files without an entry: rehashed without holding metaMu (it may take long).
	for name, size := range onDisk {
		e, aerr := s.adopt(name, size)
		if aerr != nil {
			if s.removeOrphan(name) {
				removed++
			}
			continue
		}
		if err := s.adoptEntry(e); err != nil {
			return removed, err
		}
	}
	return removed, nil
}

// removeOrphan removes data/name unless an entry names it by now (a commit of the same
// content may have replaced the unverifiable file meanwhile).
func (s *Store) removeOrphan(name string) bool {
	s.metaMu.Lock()
	defer s.metaMu.Unlock()
	s.mu.RLock()
	var d digest.Set
	named := false
	if hx, ok := strings.CutPrefix(name, "sha256-"); ok && d.PutHex(digest.SHA256, hx) == nil {
		e := s.bySHA256[d.SHA256]
		named = e != nil && e.name == name
	}
	s.mu.RUnlock()
	return !named && s.fs.Remove(filepath.Join(s.dataDir, name)) == nil
}

// RemoveUntracked drops shared (external) entries whose path is not under one of dirs or
// whose file no longer exists (reference §4.10 removeUntrackedFiles). Cached files are not
// affected. It returns the number of entries dropped.
func (s *Store) RemoveUntracked(dirs []string) int {
	s.mu.RLock()
	var ext []*entry
	for _, e := range s.byExt {
		ext = append(ext, e)
	}
	s.mu.RUnlock()
	n := 0
	for _, e := range ext {
		path := e.info.External
		tracked := slices.ContainsFunc(dirs, func(d string) bool { return under(path, d) })
		if tracked {
			if _, err := s.fs.Stat(path); err == nil || !errors.Is(err, fs.ErrNotExist) {
				continue
			}
		}
		s.dropExternal(e)
		n++
	}
	return n
}

// dropExternal forgets that e is shared from another directory; the entry goes entirely
// unless it also has a cached copy.
func (s *Store) dropExternal(e *entry) {
	s.mu.Lock()
	if e.gone || e.info.External == "" {
		s.mu.Unlock()
		return
	}
	if e.name == "" {
		s.mu.Unlock()
		s.drop(e, "shared file untracked or missing")
		return
	}
	s.mu.Unlock()
	s.metaMu.Lock()
	defer s.metaMu.Unlock()
	s.mu.Lock()
	if e.gone || e.info.External == "" {
		s.mu.Unlock()
		return
	}
	s.dropExternalLocked(e)
	e.info.External = ""
	e.extSize, e.extMtime = 0, 0
	snap := *e
	s.mu.Unlock()
	if err := s.metaUpdate([]*entry{&snap}, nil); err != nil {
		s.log.Warn("piecestore: untracking", "err", err)
	}
}

func under(path, dir string) bool {
	dir = filepath.Clean(dir)
	rel, err := filepath.Rel(dir, filepath.Clean(path))
	return err == nil && rel != "." && !strings.HasPrefix(rel, "..") && !filepath.IsAbs(rel)
}

// adoptEntry records a re-adopted data file unless its content got an entry meanwhile.
func (s *Store) adoptEntry(e *entry) error {
	s.metaMu.Lock()
	defer s.metaMu.Unlock()
	s.mu.RLock()
	known := s.bySHA256[e.key()] != nil
	s.mu.RUnlock()
	if known {
		return nil // committed concurrently while we hashed
	}
	if err := s.metaUpdate([]*entry{e}, nil); err != nil {
		return err
	}
	s.mu.Lock()
	s.insertLocked(e)
	s.st.Adopted++
	s.mu.Unlock()
	return nil
}
