package piecestore

import (
	"path/filepath"
	"slices"
	"time"

	"github.com/apt-p2p/apt-p2p/internal/digest"
)

// evictLowWater is the share of MaxBytes an eviction pass brings the cache down to. A pass
// sorts every cached file (and asks Options.Referenced about each) with the store locked,
// so a full cache must not pay for one at every commit: it frees 5% of the quota at once.
const evictLowWater = 0.95

// evict brings the cache under MaxBytes when it is over: down to evictLowWater of it, first
// files that no current index refers to (Options.Referenced), then the least recently used.
// Files open for reading are pinned, files being written are not entries yet, and keep (the
// files just committed) are spared. Shared external files cost no cache space and are never
// evicted.
func (s *Store) evict(keep ...*entry) {
	max := s.opt.MaxBytes
	if max <= 0 {
		return
	}
	s.mu.RLock()
	over := s.st.Bytes > max
	s.mu.RUnlock()
	if over {
		s.evictTo(func() int64 { return int64(float64(max) * evictLowWater) }, keep...)
	}
}

// makeRoom evicts (in the same order) at least need bytes of cached files because the disk
// is full, whatever the quota. It reports whether it freed that much.
func (s *Store) makeRoom(need int64) bool {
	s.mu.RLock()
	target := s.st.Bytes - need
	s.mu.RUnlock()
	if target < 0 {
		return false
	}
	s.log.Warn("piecestore: disk full; evicting to make room", "need", need)
	return s.evictTo(func() int64 { return target })
}

// evictTo evicts until the cache holds at most limit() bytes (limit is read with the store
// locked). It reports whether it got there.
func (s *Store) evictTo(limit func() int64, keep ...*entry) bool {
	s.metaMu.Lock()
	defer s.metaMu.Unlock()
	defer s.closePending()
	spare := make(map[*entry]struct{}, len(keep))
	for _, e := range keep {
		spare[e] = struct{}{}
	}
	s.mu.Lock()
	max := limit()
	if s.st.Bytes <= max {
		s.mu.Unlock()
		return true
	}
	type cand struct {
		e      *entry
		unref  bool
		access time.Time
	}
	var cands []cand
	for _, e := range s.bySHA256 {
		if _, kept := spare[e]; kept || e.name == "" || e.readers > 0 {
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
		if s.st.Bytes <= max {
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
	done := s.st.Bytes <= max
	bytesNow := s.st.Bytes
	s.mu.Unlock()
	if len(victims) == 0 {
		s.log.Warn("piecestore: over the limit but nothing can be evicted", "bytes", bytesNow, "limit", max)
		return false
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
	return done
}

// Remove evicts the cached copy of content d at once, whatever the quota (a
// volunteer dropping what left its selection). It reports whether there was
// a copy to remove; ErrInUse means a Reader has it open (try again later). A
// file shared from another directory stays shared: only a cached copy goes.
// It counts as an eviction.
func (s *Store) Remove(d *digest.Set) (bool, error) {
	s.metaMu.Lock()
	defer s.metaMu.Unlock()
	defer s.closePending()
	s.mu.Lock()
	e := s.lookupLocked(d)
	if e == nil || e.name == "" {
		s.mu.Unlock()
		return false, nil
	}
	if e.readers > 0 {
		s.mu.Unlock()
		return false, ErrInUse
	}
	s.removeLocked(e)
	s.st.Evictions++
	s.st.EvictedBytes += e.info.Digest.Size
	name := e.name
	var put []*entry
	var del [][]byte
	if e.info.External != "" {
		e.name = ""
		s.insertLocked(e)
		snap := *e
		put = append(put, &snap)
	} else {
		k := e.key()
		del = append(del, k[:])
	}
	s.mu.Unlock()
	// Metadata first, as evictTo: a crash before the removal leaves a data
	// file without metadata, which Open re-adopts after rehashing.
	if err := s.metaUpdate(put, del); err != nil {
		return true, err
	}
	if err := s.fs.Remove(filepath.Join(s.dataDir, name)); err != nil {
		s.log.Warn("piecestore: removing", "file", name, "err", err)
	}
	return true, nil
}
