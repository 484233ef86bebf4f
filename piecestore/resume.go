package piecestore

import (
	"bytes"
	"crypto/sha1"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"time"

	"github.com/apt-p2p/apt-p2p/internal/digest"
)

// Resuming downloads. A Writer whose content has a known SHA-256 writes its
// temporary file as tmp/sha256-<hex>.part and, every journalEvery bytes, a
// journal beside it (tmp/sha256-<hex>.resume) that says which of its bytes are
// durable: the contiguous prefix and the pieces written out of order, with
// their SHA-1. The journal is written only after an fsync of the data it
// claims, so after a crash (or a stop) it never claims bytes that were lost.
// Open keeps such files (the most recent maxResumable of them, none older than
// resumeMaxAge); the next Create of the same content takes them over: it
// hashes the claimed prefix again from disk (the hash state is not kept),
// checks the out-of-order pieces against expected piece hashes when given,
// and the download asks only for what is missing. The whole-file hash still
// decides at the end, as for any download.

const (
	journalEvery  = 8 << 20        // bytes written between journals
	maxResumable  = 16             // partial files kept across a restart
	resumeMaxAge  = 24 * time.Hour // older partial files are removed at Open
	journalMagic  = "apt-p2p resume 1\n"
	partSuffix    = ".part"
	journalSuffix = ".resume"
)

// resumeState is what a journal records.
type resumeState struct {
	want   digest.Set
	contig int64
	have   []uint64 // pieces written out of order
	sums   []byte   // their SHA-1 (20 bytes per piece, zero where not have)
	part   string   // the data file's path
}

// resumeNames are the data file and journal of a resumable writer of d, or
// "" when d has no SHA-256.
func (s *Store) resumeNames(d *digest.Set) (part, journal string) {
	if !d.Has(digest.SHA256) {
		return "", ""
	}
	base := filepath.Join(s.tmpDir, "sha256-"+hex.EncodeToString(d.SHA256[:]))
	return base + partSuffix, base + journalSuffix
}

func appendJournal(b []byte, st *resumeState, np int) []byte {
	b = append(b, journalMagic...)
	b = binary.LittleEndian.AppendUint64(b, uint64(st.want.Size))
	b = append(b, st.want.Have)
	b = append(b, st.want.MD5[:]...)
	b = append(b, st.want.SHA1[:]...)
	b = append(b, st.want.SHA256[:]...)
	b = append(b, st.want.SHA512[:]...)
	b = binary.LittleEndian.AppendUint64(b, uint64(st.contig))
	for _, w := range st.have {
		b = binary.LittleEndian.AppendUint64(b, w)
	}
	b = append(b, st.sums[:np*sha1.Size]...)
	sum := sha1.Sum(b)
	return append(b, sum[:]...)
}

var errJournal = errors.New("piecestore: unreadable resume journal")

func parseJournal(b []byte) (*resumeState, error) {
	if len(b) < len(journalMagic)+20 || !bytes.HasPrefix(b, []byte(journalMagic)) {
		return nil, errJournal
	}
	body, sum := b[:len(b)-20], b[len(b)-20:]
	if sha1.Sum(body) != [20]byte(sum) {
		return nil, errJournal // torn or damaged
	}
	r := body[len(journalMagic):]
	need := 8 + 1 + 16 + 20 + 32 + 64 + 8
	if len(r) < need {
		return nil, errJournal
	}
	st := &resumeState{}
	st.want.Size = int64(binary.LittleEndian.Uint64(r))
	st.want.Have = r[8]
	copy(st.want.MD5[:], r[9:])
	copy(st.want.SHA1[:], r[25:])
	copy(st.want.SHA256[:], r[45:])
	copy(st.want.SHA512[:], r[77:])
	st.contig = int64(binary.LittleEndian.Uint64(r[141:]))
	r = r[need:]
	if st.want.Size < 0 || st.contig < 0 || st.contig > st.want.Size {
		return nil, errJournal
	}
	np := NumPieces(st.want.Size)
	words := (np + 63) / 64
	if len(r) != words*8+np*sha1.Size {
		return nil, errJournal
	}
	st.have = make([]uint64, words)
	for i := range st.have {
		st.have[i] = binary.LittleEndian.Uint64(r[8*i:])
	}
	st.sums = append([]byte(nil), r[words*8:]...)
	return st, nil
}

// keepResumable is Open's look at tmp/: it keeps the partial files that a
// valid journal describes (the newest maxResumable, none older than
// resumeMaxAge) and removes everything else.
func (s *Store) keepResumable() error {
	ents, err := s.fs.ReadDir(s.tmpDir)
	if err != nil {
		return fmt.Errorf("piecestore: %w", err)
	}
	type cand struct {
		st  *resumeState
		mod time.Time
	}
	var cands []cand
	keep := map[string]bool{}
	for _, de := range ents {
		name := de.Name()
		if !strings.HasSuffix(name, journalSuffix) {
			continue
		}
		info, err := de.Info()
		if err != nil || s.now().Sub(info.ModTime()) > resumeMaxAge {
			continue
		}
		st, err := s.readJournal(filepath.Join(s.tmpDir, name))
		if err != nil {
			continue
		}
		cands = append(cands, cand{st, info.ModTime()})
	}
	// The newest first.
	for i := 1; i < len(cands); i++ {
		for j := i; j > 0 && cands[j].mod.After(cands[j-1].mod); j-- {
			cands[j], cands[j-1] = cands[j-1], cands[j]
		}
	}
	s.resumable = make(map[[32]byte]*resumeState)
	for _, c := range cands[:min(len(cands), maxResumable)] {
		part, journal := s.resumeNames(&c.st.want)
		c.st.part = part
		s.resumable[c.st.want.SHA256] = c.st
		keep[part], keep[journal] = true, true
	}
	for _, de := range ents {
		p := filepath.Join(s.tmpDir, de.Name())
		if keep[p] {
			continue
		}
		if err := s.fs.Remove(p); err != nil {
			return fmt.Errorf("piecestore: removing temporary file: %w", err)
		}
	}
	if n := len(s.resumable); n > 0 {
		s.log.Info("piecestore: keeping partial downloads to resume", "files", n)
	}
	return nil
}

// readJournal reads a journal and checks its data file.
func (s *Store) readJournal(path string) (*resumeState, error) {
	f, err := s.fs.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, 8<<20))
	if err != nil {
		return nil, err
	}
	st, err := parseJournal(b)
	if err != nil {
		return nil, err
	}
	part, journal := s.resumeNames(&st.want)
	if journal != path {
		return nil, errJournal
	}
	fi, err := s.fs.Stat(part)
	if err != nil || fi.Size() != st.want.Size {
		return nil, errJournal
	}
	return st, nil
}

// takeResumable hands over the partial file of content d, if one was kept.
func (s *Store) takeResumableLocked(d *digest.Set) *resumeState {
	if !d.Has(digest.SHA256) {
		return nil
	}
	st := s.resumable[d.SHA256]
	if st == nil || st.want.Size != d.Size || !st.want.Matches(d) {
		return nil
	}
	delete(s.resumable, d.SHA256)
	return st
}

// resumeLocked (w.mu held, before the Writer is handed out) takes over the
// bytes st claims: it hashes the prefix again from disk and records the
// pieces written out of order, dropping those that fail the expected piece
// hashes. It returns how many bytes it kept.
func (w *Writer) resumeLocked(st *resumeState) (int64, error) {
	buf := make([]byte, 1<<20)
	var off int64
	for off < st.contig {
		n := int(min(int64(len(buf)), st.contig-off))
		m, err := w.f.ReadAt(buf[:n], off)
		if m < n {
			if err == nil {
				err = io.ErrUnexpectedEOF
			}
			return 0, fmt.Errorf("piecestore: resuming %s: %w", w.tmpName, err)
		}
		w.h.write(buf[:n])
		off += int64(n)
	}
	w.contig = st.contig
	for i := 0; i < w.npieces && int64(i+1)*PieceSize <= w.contig; i++ {
		w.setLocked(i)
	}
	if w.contig == w.size {
		w.setLocked(w.npieces - 1)
	}
	kept := w.contig
	for i := 0; i < w.npieces; i++ {
		if st.have[i/64]&(1<<(i%64)) == 0 || w.hasLocked(i) || int64(i)*PieceSize < w.contig {
			continue
		}
		sum := st.sums[i*sha1.Size : (i+1)*sha1.Size]
		if w.expect != nil && !bytes.Equal(sum, w.expect[i*sha1.Size:(i+1)*sha1.Size]) {
			continue
		}
		copy(w.sums[i*sha1.Size:], sum)
		w.setLocked(i)
		kept += int64(w.pieceLen(i))
	}
	w.journaled = kept
	w.written = kept
	w.journaledOnce = true
	if err := w.advanceLocked(); err != nil {
		return 0, err
	}
	return kept, nil
}

// maybeJournalLocked starts a journal once journalEvery bytes were written
// since the last one (w.mu held). Only one runs at a time; it does not hold
// w.mu while it fsyncs.
func (w *Writer) maybeJournalLocked() {
	if w.journal == "" || w.journaling || w.written-w.journaled < journalEvery || w.state != wWriting {
		return
	}
	w.journaling, w.journaledOnce = true, true
	w.journaled = w.written
	st := &resumeState{want: w.want, contig: w.contig, have: append([]uint64(nil), w.have...), sums: append([]byte(nil), w.sums...)}
	// Pieces below the prefix are part of it; the bitmap keeps the others.
	for i := 0; i < w.npieces && int64(i+1)*PieceSize <= w.contig; i++ {
		st.have[i/64] &^= 1 << (i % 64)
	}
	w.jwg.Add(1)
	go func() {
		defer w.jwg.Done()
		err := w.writeJournal(st)
		w.mu.Lock()
		w.journaling = false
		gone := w.state != wWriting && w.state != wVerified
		w.mu.Unlock()
		if err != nil {
			w.s.log.Debug("piecestore: resume journal", "file", w.journal, "err", err)
		}
		if gone {
			_ = w.s.fs.Remove(w.journal)
		}
	}()
}

// writeJournal makes the data st claims durable, then the journal.
func (w *Writer) writeJournal(st *resumeState) error {
	if err := w.f.Sync(); err != nil {
		return err
	}
	tmp := w.journal + ".new"
	_ = w.s.fs.Remove(tmp)
	f, err := w.s.fs.Create(tmp)
	if err != nil {
		return err
	}
	_, err = f.Write(appendJournal(nil, st, w.npieces))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = w.s.fs.Rename(tmp, w.journal)
	}
	if err == nil {
		err = w.s.fs.SyncDir(w.s.tmpDir)
	}
	if err != nil {
		_ = w.s.fs.Remove(tmp)
	}
	return err
}

// Suspend ends a Writer whose download stops before its end (the daemon is
// stopping) so that the next Create of the same content resumes it: the
// written bytes are made durable and journaled, the file is closed and kept.
// Waiters get ErrSuspended. A Writer that cannot resume (no SHA-256) is
// aborted instead.
func (w *Writer) Suspend() {
	w.mu.Lock()
	if w.state != wWriting || w.journal == "" {
		w.mu.Unlock()
		w.Abort()
		return
	}
	st := &resumeState{want: w.want, contig: w.contig, have: append([]uint64(nil), w.have...), sums: append([]byte(nil), w.sums...)}
	for i := 0; i < w.npieces && int64(i+1)*PieceSize <= w.contig; i++ {
		st.have[i/64] &^= 1 << (i % 64)
	}
	w.state = wFailed
	w.err = ErrSuspended
	w.journaledOnce = true
	w.mu.Unlock()
	w.jwg.Wait() // a running journal must not overwrite this one
	err := w.writeJournal(st)
	w.mu.Lock()
	defer w.mu.Unlock()
	_ = w.f.Close()
	if err != nil {
		_ = w.s.fs.Remove(w.tmpName)
		_ = w.s.fs.Remove(w.journal)
	}
	w.s.releaseWriter(w)
	if err == nil {
		st.part = w.tmpName
		w.s.mu.Lock()
		if w.s.resumable != nil {
			w.s.resumable[w.want.SHA256] = st
		}
		w.s.mu.Unlock()
	}
	w.notifyLocked()
}
