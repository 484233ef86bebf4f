package piecestore

import (
	"bytes"
	"context"
	"crypto/sha1"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"

	"github.com/apt-p2p/apt-p2p/internal/digest"
)

// Writer states.
const (
	wWriting    = iota // bytes still missing
	wVerified          // every byte written and the whole-file hash matched
	wCommitting        // Commit is doing its I/O (without holding the Writer's lock)
	wCommitted         // in the store
	wFailed            // aborted, mismatched or an I/O error: err says which
)

// Writer receives the content of one file. It is safe for concurrent use: several sources
// may write pieces at once.
type Writer struct {
	s       *Store
	want    digest.Set // expected content
	expect  []byte     // expected SHA-1 piece hashes, or nil
	size    int64
	npieces int
	tmpName string
	journal string // its resume journal (resume.go); "" when it cannot resume
	seq     uint64 // creation order (names the temporary file)
	f       File
	jwg     sync.WaitGroup // a journal being written
	keys    [4][32]byte
	nkeys   int

	mu      sync.Mutex
	state   int
	err     error
	contig  int64    // bytes from 0 without a gap, all of them hashed
	have    []uint64 // pieces written (bit i = piece i), whether in order or not
	sums    []byte   // SHA-1 of pieces written out of order, 20 bytes per piece
	h       *Hasher
	buf     []byte // read-back buffer for out-of-order pieces
	result  digest.Set
	pieces  []byte
	changed chan struct{} // made by the first waiter, closed (and cleared) on every change

	written    int64 // bytes written (the prefix and pieces out of order), for the journal
	journaled  int64 // written at the last journal
	journaling bool  // a journal is being written
	// journaledOnce: a journal may exist (one was started, or the Writer
	// resumed from one), so it is removed with the data file.
	journaledOnce bool
}

func busyKey(t digest.Type, h []byte) [32]byte {
	var k [32]byte
	k[0] = byte(t)
	copy(k[1:], h)
	return k
}

// Create starts storing a file whose expected content is d (d.Size known; at least one
// hash). pieces, if not nil, are the expected SHA-1 piece hashes (20 bytes per piece, every
// piece): pieces written with WritePiece/aligned WriteAt out of order are checked against
// them (ErrPieceMismatch). Only one Writer per content at a time: a second Create for the
// same content returns ErrBusy (the caller single-flights downloads).
//
// Content that is already stored may be written again (the commit then just merges the
// hashes); callers normally Lookup first.
//
// While Options.MaxPendingCommits Commits are in progress, Create waits for one to finish
// (back-pressure): use CreateContext to bound the wait.
func (s *Store) Create(d digest.Set, pieces []byte) (*Writer, error) {
	return s.CreateContext(context.Background(), d, pieces)
}

// CreateContext is Create with a context that ends its wait for room among the pending commits.
// Do not hold a lock that a download needs to reach Commit while calling it.
func (s *Store) CreateContext(ctx context.Context, d digest.Set, pieces []byte) (*Writer, error) {
	if d.Size < 0 || d.Have == 0 {
		return nil, ErrNoHash
	}
	np := NumPieces(d.Size)
	if pieces != nil && len(pieces) != np*sha1.Size {
		return nil, fmt.Errorf("piecestore: %d bytes of piece hashes for %d pieces", len(pieces), np)
	}
	w := &Writer{
		s:       s,
		want:    d,
		expect:  pieces,
		size:    d.Size,
		npieces: np,
		have:    make([]uint64, (np+63)/64),
		sums:    make([]byte, np*sha1.Size),
		h:       newVerifyingHasher(&d, d.Size),
	}
	for t := digest.MD5; t <= digest.SHA512; t++ {
		if d.Has(t) {
			w.keys[w.nkeys] = busyKey(t, d.Get(t))
			w.nkeys++
		}
	}
	s.mu.Lock()
	if err := s.waitRoomLocked(ctx); err != nil {
		s.mu.Unlock()
		return nil, err
	}
	for _, k := range w.keys[:w.nkeys] {
		if s.writers[k] != nil {
			s.mu.Unlock()
			return nil, ErrBusy
		}
	}
	w.seq = s.tmpSeq.Add(1)
	w.tmpName, w.journal = s.resumeNames(&d)
	if w.tmpName == "" {
		w.tmpName = filepath.Join(s.tmpDir, strconv.FormatUint(w.seq, 10)+".part")
	}
	resume := s.takeResumableLocked(&d)
	for _, k := range w.keys[:w.nkeys] {
		s.writers[k] = w
	}
	s.st.Writers++
	s.mu.Unlock()

	var f File
	var err error
	if resume != nil {
		if f, err = s.fs.OpenRW(w.tmpName); err == nil {
			w.f = f
			w.mu.Lock()
			kept, rerr := w.resumeLocked(resume)
			w.mu.Unlock()
			if rerr == nil {
				s.log.Info("piecestore: resuming a download", "file", filepath.Base(w.tmpName), "have", kept, "of", d.Size)
				return w, nil
			}
			s.log.Warn("piecestore: cannot resume; starting over", "file", filepath.Base(w.tmpName), "err", rerr)
			f.Close()
			w.resetLocked(&d)
		}
		_ = s.fs.Remove(w.tmpName)
		_ = s.fs.Remove(w.journal)
	}
	f, err = s.fs.Create(w.tmpName)
	if err == nil {
		w.f = f
		// Sized up front so pieces can be written anywhere, and space reserved where the
		// FS can: a full disk shows here. Then the cache makes room once.
		err = allocate(f, d.Size)
		if errors.Is(err, syscall.ENOSPC) && s.makeRoom(d.Size) {
			err = allocate(f, d.Size)
		}
		if err != nil {
			f.Close()
			_ = s.fs.Remove(w.tmpName)
		}
	}
	if err != nil {
		s.releaseWriter(w)
		return nil, fmt.Errorf("piecestore: %w", err)
	}
	if d.Size == 0 {
		w.mu.Lock()
		w.finishLocked()
		w.mu.Unlock()
	}
	return w, nil
}

// resetLocked forgets what a failed resume took over.
func (w *Writer) resetLocked(d *digest.Set) {
	w.contig, w.written, w.journaled = 0, 0, 0
	clear(w.have)
	clear(w.sums)
	w.h = newVerifyingHasher(d, d.Size)
}

func allocate(f File, size int64) error {
	if a, ok := f.(Allocator); ok {
		return a.Allocate(size)
	}
	return f.Truncate(size)
}

func (s *Store) releaseWriter(w *Writer) {
	s.mu.Lock()
	for _, k := range w.keys[:w.nkeys] {
		if s.writers[k] == w {
			delete(s.writers, k)
		}
	}
	s.st.Writers--
	s.mu.Unlock()
}

func (w *Writer) pieceLen(i int) int {
	if i == w.npieces-1 {
		return int(w.size - int64(i)*PieceSize)
	}
	return PieceSize
}

func (w *Writer) hasLocked(i int) bool { return w.have[i/64]&(1<<(i%64)) != 0 }
func (w *Writer) setLocked(i int)      { w.have[i/64] |= 1 << (i % 64) }

// notifyLocked wakes every Wait. Without waiters it costs nothing (no channel per write).
func (w *Writer) notifyLocked() {
	if w.changed != nil {
		close(w.changed)
		w.changed = nil
	}
}

// failLocked ends the writer with err: the temporary file is removed, waiters get err.
func (w *Writer) failLocked(err error) {
	if w.state == wFailed || w.state == wCommitted {
		return
	}
	w.state = wFailed
	w.err = err
	if w.f != nil {
		// Closing is safe for streamers still holding File(): os.File refuses use after
		// Close rather than touching a reused descriptor.
		_ = w.f.Close()
		_ = w.s.fs.Remove(w.tmpName)
		if w.journaledOnce {
			_ = w.s.fs.Remove(w.journal)
		}
	}
	w.s.releaseWriter(w)
	w.notifyLocked()
}

// WriteAt accepts either a sequential append at the current contiguous end (any length:
// streaming from a mirror; overlapping bytes already written is allowed) or whole 512
// KiB-aligned pieces in any order (the last piece may be short). Other shapes: ErrShape.
// An I/O error ends the Writer (waiters get it, the data is discarded).
func (w *Writer) WriteAt(p []byte, off int64) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if err := w.checkLocked(p, off); err != nil {
		return 0, err
	}
	if off <= w.contig {
		if err := w.appendLocked(p, off, nil); err != nil {
			return 0, err
		}
		return len(p), nil
	}
	i := int(off / PieceSize)
	if off%PieceSize != 0 || len(p) != w.pieceLen(i) {
		return 0, ErrShape
	}
	if err := w.pieceLocked(i, p, nil); err != nil {
		return 0, err
	}
	return len(p), nil
}

func (w *Writer) checkLocked(p []byte, off int64) error {
	switch w.state {
	case wFailed:
		return w.err
	case wVerified, wCommitting, wCommitted:
		return ErrFinished
	}
	if off < 0 || off+int64(len(p)) > w.size {
		return fmt.Errorf("%w: %d bytes at %d for a file of %d", ErrShape, len(p), off, w.size)
	}
	return nil
}

// WritePiece writes piece i; sum, if not nil, is its SHA-1 already computed by the caller
// (avoids hashing twice). With expected piece hashes, a piece that does not match is
// refused with ErrPieceMismatch (nothing is written, the Writer carries on).
func (w *Writer) WritePiece(i int, data []byte, sum *[20]byte) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if i < 0 || i >= w.npieces {
		return fmt.Errorf("%w: piece %d of %d", ErrShape, i, w.npieces)
	}
	off := int64(i) * PieceSize
	if err := w.checkLocked(data, off); err != nil {
		return err
	}
	if len(data) != w.pieceLen(i) {
		return fmt.Errorf("%w: piece %d has %d bytes, want %d", ErrShape, i, len(data), w.pieceLen(i))
	}
	return w.pieceLocked(i, data, sum)
}

// pieceLocked writes a whole piece at its place.
func (w *Writer) pieceLocked(i int, data []byte, sum *[20]byte) error {
	if w.hasLocked(i) {
		return nil
	}
	off := int64(i) * PieceSize
	if w.expect != nil || off > w.contig || (off == w.contig && sum != nil) {
		var s [20]byte
		if sum == nil {
			s = sha1.Sum(data)
			sum = &s
		}
		if w.expect != nil && !bytes.Equal(sum[:], w.expect[i*sha1.Size:(i+1)*sha1.Size]) {
			return ErrPieceMismatch
		}
	}
	if off <= w.contig {
		return w.appendLocked(data, off, sum)
	}
	if err := w.writeFileLocked(data, off); err != nil {
		return err
	}
	copy(w.sums[i*sha1.Size:], sum[:])
	w.setLocked(i)
	w.written += int64(len(data))
	w.maybeJournalLocked()
	return nil
}

func (w *Writer) writeFileLocked(p []byte, off int64) error {
	n, err := w.f.WriteAt(p, off)
	if err == nil && n != len(p) {
		err = io.ErrShortWrite
	}
	if err != nil {
		err = fmt.Errorf("piecestore: writing %s: %w", w.tmpName, err)
		w.failLocked(err)
		return err
	}
	return nil
}

// appendLocked writes p at off <= contig and hashes the new bytes straight from p.
// sum, if not nil, is the SHA-1 of p, which is then a whole piece starting at contig.
func (w *Writer) appendLocked(p []byte, off int64, sum *[20]byte) error {
	end := off + int64(len(p))
	if end <= w.contig {
		return nil // already have these bytes
	}
	if err := w.writeFileLocked(p, off); err != nil {
		return err
	}
	fresh := p[w.contig-off:]
	if sum != nil && off == w.contig && w.h.pieceFill == 0 {
		w.h.writePiece(fresh, sum)
	} else {
		w.h.write(fresh)
	}
	w.contig = end
	for i := int((end - int64(len(fresh))) / PieceSize); i < w.npieces && int64(i+1)*PieceSize <= end; i++ {
		w.setLocked(i)
	}
	if w.contig == w.size {
		w.setLocked(w.npieces - 1)
	}
	w.written += int64(len(fresh))
	if err := w.advanceLocked(); err != nil {
		return err
	}
	w.maybeJournalLocked()
	return nil
}

// advanceLocked extends the contiguous prefix over pieces that were written out of order,
// reading them back into a reused buffer to feed the whole-file hashes.
func (w *Writer) advanceLocked() error {
	for w.contig < w.size && w.contig%PieceSize == 0 && w.hasLocked(int(w.contig/PieceSize)) {
		i := int(w.contig / PieceSize)
		n := w.pieceLen(i)
		if w.buf == nil {
			w.buf = make([]byte, PieceSize)
		}
		m, err := w.f.ReadAt(w.buf[:n], w.contig)
		if m == n {
			err = nil
		} else if err == nil {
			err = io.ErrUnexpectedEOF
		}
		if err != nil {
			err = fmt.Errorf("piecestore: reading back %s: %w", w.tmpName, err)
			w.failLocked(err)
			return err
		}
		w.h.writePiece(w.buf[:n], (*[20]byte)(w.sums[i*sha1.Size:]))
		w.contig += int64(n)
	}
	if w.contig == w.size {
		return w.finishLocked()
	}
	w.notifyLocked()
	return nil
}

// finishLocked checks the whole-file hashes once every byte is in.
func (w *Writer) finishLocked() error {
	d, pieces := w.h.Finish()
	if d.Size != w.want.Size || !w.want.Matches(&d) {
		w.pieces = pieces // what arrived, to find the bad pieces (PieceHashes)
		w.s.mu.Lock()
		w.s.st.Mismatches++
		w.s.mu.Unlock()
		w.failLocked(ErrMismatch)
		return ErrMismatch
	}
	d.Merge(&w.want)
	w.result = d
	w.pieces = pieces
	w.state = wVerified
	w.notifyLocked()
	return nil
}

// PieceHashes returns the SHA-1 of every piece as written, once every byte is
// in (nil before): after a whole-file mismatch they tell, compared with a
// verified copy, which pieces were wrong.
func (w *Writer) PieceHashes() []byte {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.pieces
}

// HavePiece reports whether piece i has been written.
func (w *Writer) HavePiece(i int) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return i >= 0 && i < w.npieces && w.hasLocked(i)
}

// Contiguous is the number of bytes written from offset 0 without a gap.
func (w *Writer) Contiguous() int64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.contig
}

// Size is the expected size of the file.
func (w *Writer) Size() int64 { return w.size }

// Available is how many bytes may be handed to apt now: the contiguous prefix, except that
// the last byte is held back until the whole-file hash has been verified (then: Size).
func (w *Writer) Available() int64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.availableLocked()
}

func (w *Writer) availableLocked() int64 {
	if w.state >= wVerified && w.state <= wCommitted {
		return w.size
	}
	return max(0, min(w.contig, w.size-1))
}

// Wait blocks until Available() > off, or the writer finished (returns the final error,
// nil on success), or ctx ends.
func (w *Writer) Wait(ctx context.Context, off int64) (avail int64, err error) {
	for {
		w.mu.Lock()
		avail = w.availableLocked()
		state, werr := w.state, w.err
		if w.changed == nil {
			w.changed = make(chan struct{})
		}
		ch := w.changed
		w.mu.Unlock()
		switch {
		case state == wFailed:
			return avail, werr
		case avail > off || state >= wVerified:
			return avail, nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return avail, ctx.Err()
		}
	}
}

// File is the temporary file, to stream the available prefix (ReadAt / sendfile). It stays
// readable after Commit (it is then the stored file). Abort and a failed write close it, so a
// streamer reading after a failure gets an error and cuts its response, which is what it must
// do anyway once Wait has reported the failure. nil if the FS is not the OS's.
func (w *Writer) File() *os.File { return osFileOf(w.f) }

// Reopen opens the file being written again, with an offset of its own, for
// a reader that outlives the Writer's own descriptor (httpserve.Reopener).
// It holds the Writer's lock meanwhile, so a failure cannot close the
// descriptor under it; nil if the Writer has failed or the FS is not the OS's.
func (w *Writer) Reopen() *os.File {
	w.mu.Lock()
	defer w.mu.Unlock()
	f := osFileOf(w.f)
	if w.state == wFailed || f == nil {
		return nil
	}
	// /proc/self/fd works for a file already renamed into place too.
	r, err := os.Open("/proc/self/fd/" + strconv.Itoa(int(f.Fd())))
	if err != nil {
		return nil
	}
	return r
}

// Err is the error that ended the Writer, or nil.
func (w *Writer) Err() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

// Commit is called once every byte has been written: it checks the whole-file hash and size
// against d (ErrMismatch on failure: the data is discarded), fsyncs, renames into place,
// fsyncs the directory, records the metadata, and wakes waiters; it returns once the file is
// durable. Concurrent Commits are grouped: one directory fsync and one metadata transaction
// serve every file pending at that moment. Then, if the store is over its quota, it evicts.
func (w *Writer) Commit() (Info, error) {
	w.mu.Lock()
	switch w.state {
	case wFailed:
		w.mu.Unlock()
		return Info{}, w.err
	case wCommitting, wCommitted:
		w.mu.Unlock()
		return Info{}, ErrFinished
	case wWriting:
		w.mu.Unlock()
		return Info{}, fmt.Errorf("%w: %d of %d bytes", ErrIncomplete, w.contig, w.size)
	}
	// The fsyncs can take long: Available, Wait and the status page must not block on them,
	// and nothing else may touch the file meanwhile (writes get ErrFinished, Abort waits it out).
	w.state = wCommitting
	// Hashing is over: what it needed goes now, not when the last streamer lets go of w.
	w.h, w.buf = nil, nil
	w.mu.Unlock()
	info, err := w.s.commit(w)
	w.mu.Lock()
	defer w.mu.Unlock()
	if err != nil {
		w.state = wVerified // so failLocked acts
		w.failLocked(err)
		return Info{}, err
	}
	w.state = wCommitted
	if w.journaledOnce {
		_ = w.s.fs.Remove(w.journal) // (a journal still being written removes itself)
	}
	w.s.releaseWriter(w)
	w.notifyLocked()
	return info, nil
}

// Abort discards everything and wakes waiters with ErrAborted. It does nothing after a
// successful Commit, and while a Commit is running it does not interrupt it.
func (w *Writer) Abort() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.state != wCommitting {
		w.failLocked(ErrAborted)
	}
}

// Put stores a whole stream (index files, small mirror files) through the same crash-safe
// path: it returns ErrMismatch (and stores nothing) if r's content does not match d.
func (s *Store) Put(d digest.Set, r io.Reader) (Info, error) {
	w, err := s.Create(d, nil)
	if err != nil {
		return Info{}, err
	}
	buf := make([]byte, 256<<10)
	var off int64
	for {
		n, rerr := r.Read(buf)
		if n > 0 {
			if off+int64(n) > d.Size {
				w.Abort()
				return Info{}, ErrMismatch
			}
			if _, err := w.WriteAt(buf[:n], off); err != nil {
				w.Abort()
				return Info{}, err
			}
			off += int64(n)
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			w.Abort()
			return Info{}, fmt.Errorf("piecestore: reading: %w", rerr)
		}
	}
	if off != d.Size {
		w.Abort()
		return Info{}, ErrMismatch
	}
	return w.Commit()
}
