package piecestore

import (
	"path/filepath"
	"slices"
	"time"
)

// evict brings the cache under MaxBytes: first files that no current index refers to
// (Options.Referenced), then the least recently used. Files open for reading are pinned,
// files being written are not entries yet, and keep (the file just committed) is spared.
// Shared external files cost no cache space and are never evicted.
func (s *Store) evict(keep *entry) {
	if s.opt.MaxBytes <= 0 {
		return
	}
	s.metaMu.Lock()
	defer s.metaMu.Unlock()
	s.mu.Lock()
	if s.st.Bytes <= s.opt.MaxBytes {
		s.mu.Unlock()
		return
	}
	type cand struct {
		e      *entry
		unref  bool
		access time.Time
	}
	var cands []cand
	for _, e := range s.bySHA256 {
		if e.name == "" || e.readers > 0 || e == keep {
			continue
		}
		unref := s.opt.Referenced != nil && !s.opt.Referenced(&e.info.Digest)
		cands = append(cands, cand{e, unref, e.info.LastAccess})
	}
	slices.SortFunc(cands, func(a, b cand) int {
		if a.unref != b.unref {
			if a.unref {
				return -1
			}
			return 1
		}
		return a.access.Compare(b.access)
	})
	var victims []*entry
	var names []string
	var put []*entry
	var del [][]byte
	for _, c := range cands {
		if s.st.Bytes <= s.opt.MaxBytes {
			break
		}
		e := c.e
		s.removeLocked(e)
		names = append(names, e.name)
		s.st.Evictions++
		s.st.EvictedBytes += e.info.Digest.Size
		if e.info.External != "" {
			// Keep sharing it from the other directory; only the cached copy goes.
			e.name = ""
			s.insertLocked(e)
			snap := *e
			put = append(put, &snap)
		} else {
			k := e.key()
			del = append(del, k[:])
		}
		victims = append(victims, e)
	}
	s.mu.Unlock()
	if len(victims) == 0 {
		s.log.Warn("piecestore: over quota but nothing can be evicted", "bytes", s.Stats().Bytes, "max", s.opt.MaxBytes)
		return
	}
	// Metadata first: a crash before the removals leaves data files without metadata,
	// which the next Open re-adopts after rehashing (nothing unverified is ever served).
	if err := s.metaUpdate(put, del); err != nil {
		s.log.Warn("piecestore: evicting", "err", err)
	}
	for _, name := range names {
		if err := s.fs.Remove(filepath.Join(s.dataDir, name)); err != nil {
			s.log.Warn("piecestore: evicting", "file", name, "err", err)
		}
	}
	s.log.Debug("piecestore: evicted", "files", len(victims))
}
