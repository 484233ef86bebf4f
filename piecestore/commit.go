package piecestore

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
)

// DefaultMaxPendingCommits is Options.MaxPendingCommits when it is 0.
//
// Each Commit in progress is a caller's goroutine holding its download's state; a burst of small
// files once piled up thousands of them behind serialised commits (bench/RESULTS.md, memory).
// Group commit keeps the queue short on a healthy disk; this bound is the back-pressure for a slow
// one: Create waits while this many commits are in progress.
const DefaultMaxPendingCommits = 128

// maxBatch bounds the files recorded by one metadata transaction.
const maxBatch = 1024

// commitReq is one Writer waiting for the committer.
type commitReq struct {
	w    *Writer
	e    *entry // the new entry, as the Writer's result describes it
	done chan struct{}
	// Set by the committer before done is closed.
	info Info
	err  error
}

// waitRoomLocked (s.mu held, and held again on return) waits until fewer than MaxPendingCommits
// commits are in progress, ctx ends or the store closes.
func (s *Store) waitRoomLocked(ctx context.Context) error {
	for !s.closed && s.maxPending > 0 && s.committing >= s.maxPending {
		if s.room == nil {
			s.room = make(chan struct{})
		}
		room := s.room
		s.st.CreateWaits++
		s.mu.Unlock()
		select {
		case <-room:
		case <-ctx.Done():
			s.mu.Lock()
			return ctx.Err()
		case <-s.stop:
		}
		s.mu.Lock()
	}
	if s.closed {
		return ErrClosed
	}
	return nil
}

// commit makes w's verified temporary file durable under its final name and records it: the
// file is fsynced here (in the caller's goroutine: concurrent fsyncs share the journal's
// commits), then the committer renames every pending file, fsyncs data/ once and records them
// all in one metadata transaction.
func (s *Store) commit(w *Writer) (Info, error) {
	s.mu.Lock()
	s.committing++
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.committing--
		if s.room != nil && s.committing < s.maxPending {
			close(s.room)
			s.room = nil
		}
		s.mu.Unlock()
	}()
	e := &entry{name: dataName(&w.result)}
	e.info.Digest = w.result
	e.info.Complete = true
	e.info.LastAccess = s.now()
	e.setPieces(w.pieces)
	if err := w.f.Sync(); err != nil {
		return Info{}, fmt.Errorf("piecestore: storing %s: %w", e.name, err)
	}
	r := &commitReq{w: w, e: e, done: make(chan struct{})}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return Info{}, ErrClosed
	}
	s.commitQ = append(s.commitQ, r)
	s.mu.Unlock()
	select {
	case s.commitWake <- struct{}{}:
	default: // the committer is already due to look at the queue
	}
	<-r.done
	return r.info, r.err
}

// committer takes every pending commit at once and records them as one batch. Close makes it
// finish the queue and return: Commits enqueue only while the store is open, and Close marks it
// closed before stopping the committer, so no Commit is left waiting.
func (s *Store) committer() {
	defer s.wg.Done()
	for {
		stopping := false
		select {
		case <-s.commitWake:
		case <-s.stop:
			stopping = true
		}
		if s.commitGate != nil && !stopping {
			select {
			case <-s.commitGate:
			case <-s.stop:
				stopping = true
			}
		}
		for {
			s.mu.Lock()
			batch := s.commitQ
			if len(batch) > maxBatch {
				s.commitQ = slices.Clone(batch[maxBatch:])
				batch = batch[:maxBatch]
			} else {
				s.commitQ = nil
			}
			s.mu.Unlock()
			if len(batch) == 0 {
				break
			}
			s.commitBatch(batch)
		}
		if stopping {
			return
		}
	}
}

// commitBatch renames the batch's files into data/, fsyncs data/ once, records every entry in
// one metadata transaction, evicts if the quota is exceeded (sparing the batch), and wakes the
// batch's Commits. A crash anywhere in it leaves, at worst, renamed files without metadata,
// which Open rehashes and re-adopts; no Commit has returned for them.
func (s *Store) commitBatch(batch []*commitReq) {
	// In creation order, so that a batch's steps are the same from run to run (crash tests).
	slices.SortFunc(batch, func(a, b *commitReq) int { return int(a.w.seq - b.w.seq) })
	// From the renames to the metadata commit, data/<name> must not be removed by an eviction
	// or a drop of an earlier copy of the same content: they hold metaMu too.
	s.metaMu.Lock()
	renamed := make([]*commitReq, 0, len(batch))
	for _, r := range batch {
		if err := s.fs.Rename(r.w.tmpName, filepath.Join(s.dataDir, r.e.name)); err != nil {
			r.err = fmt.Errorf("piecestore: storing %s: %w", r.e.name, err)
			continue
		}
		renamed = append(renamed, r)
	}
	if len(renamed) > 0 {
		err := s.fs.SyncDir(s.dataDir)
		if err != nil {
			err = fmt.Errorf("piecestore: storing: %w", err)
		} else {
			err = s.recordLocked(renamed)
		}
		if err != nil {
			// The renamed files hold verified content (possibly the same file an entry
			// already names): they are left for GC or the next Open to re-adopt.
			for _, r := range renamed {
				r.err = err
			}
		}
	}
	s.metaMu.Unlock()
	keep := make([]*entry, 0, len(renamed))
	for _, r := range renamed {
		if r.err == nil {
			keep = append(keep, r.e)
		}
	}
	if len(keep) > 0 {
		s.evict(keep...)
	}
	s.mu.Lock()
	s.st.CommitBatches++
	s.mu.Unlock()
	for _, r := range batch {
		close(r.done)
	}
}

// recordLocked (metaMu held) records the renamed data files of a batch in one transaction,
// merging each into an entry for the same content (stored, shared from another directory, or
// earlier in the batch) so that there is one entry with every hash and path, and open Readers
// keep pinning the entry they opened. On success each request's info is set, and its e is the
// entry now in the maps.
func (s *Store) recordLocked(batch []*commitReq) error {
	s.mu.Lock()
	snaps := make(map[[32]byte]*entry, len(batch))
	for _, r := range batch {
		k := r.e.key()
		base := snaps[k]
		if base == nil {
			if old := s.bySHA256[k]; old != nil {
				m := *old
				base = &m
			}
		}
		if base == nil {
			m := *r.e
			snaps[k] = &m
			continue
		}
		base.info.Digest.Merge(&r.e.info.Digest)
		base.name = r.e.name
		snaps[k] = base
	}
	s.mu.Unlock()
	put := make([]*entry, 0, len(snaps))
	for _, e := range snaps {
		put = append(put, e)
	}
	if err := s.metaUpdate(put, nil); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range batch {
		e := r.e
		// The file's identity now (the rename changed its ctime): the content was hashed
		// as it was written, so it is verified as long as the identity holds.
		id, idErr := fileIDOf(r.w.f)
		s.st.Commits++
		if old := s.bySHA256[e.key()]; old != nil && !old.gone {
			s.removeLocked(old)
			old.info.Digest.Merge(&e.info.Digest)
			old.name = e.name
			s.insertLocked(old)
			s.dirty[old] = struct{}{}
			e = old
		} else {
			s.insertLocked(e)
		}
		// A stored copy replaced by a fresh one: descriptors of the old file must not be
		// handed out as the verified new one.
		s.forgetFileLocked(e)
		if idErr == nil {
			e.vid = id
		}
		r.e = e
		r.info = e.info
	}
	return nil
}
