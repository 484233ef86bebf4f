package piecestore

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"time"
)

// Clock is the time source of the store's background work: the scrub's pacing and its pauses
// between passes. Tests drive a fake one.
type Clock interface {
	Now() time.Time
	After(d time.Duration) <-chan time.Time
}

type realClock struct{}

func (realClock) Now() time.Time                         { return time.Now() }
func (realClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

const (
	// defaultScrubInterval is Options.ScrubInterval when it is 0.
	defaultScrubInterval = 24 * time.Hour
	// scrubFileCost is what opening a file counts for in the scrub's byte budget, so a cache
	// of many tiny files is not scrubbed at one open per microsecond.
	scrubFileCost = 4 << 10
	// scrubChunk is the scrub's read size and the least debt it pauses for.
	scrubChunk = 256 << 10
)

// scrubLoop rehashes every stored file in turn at rate bytes/s, one pass at most every interval,
// and drops the files that no longer match their hash. A file that matches counts as verified
// (its first serve needs no hashing) until its identity changes.
func (s *Store) scrubLoop(rate int64, interval time.Duration) {
	defer s.wg.Done()
	if interval <= 0 {
		interval = defaultScrubInterval
	}
	p := &scrubPacer{s: s, rate: rate}
	for {
		start := s.clock.Now()
		if !s.scrubPass(p) {
			return
		}
		if !p.pay() {
			return
		}
		next := start.Add(interval).Sub(s.clock.Now())
		if next > 0 {
			select {
			case <-s.clock.After(next):
			case <-s.stop:
				return
			}
		}
	}
}

// scrubPacer keeps the scrub at its rate: bytes read are a debt paid by sleeping debt/rate.
type scrubPacer struct {
	s    *Store
	rate int64
	debt int64
}

func (p *scrubPacer) add(n int64) bool {
	p.debt += n
	if p.debt < scrubChunk {
		return true
	}
	return p.pay()
}

// pay sleeps off the debt; false when the store is closing.
func (p *scrubPacer) pay() bool {
	if p.debt <= 0 {
		return true
	}
	d := time.Duration(float64(p.debt) / float64(p.rate) * float64(time.Second))
	p.debt = 0
	select {
	case <-p.s.clock.After(d):
		return true
	case <-p.s.stop:
		return false
	}
}

// scrubPass scrubs every entry once, in key order; false when the store is closing.
func (s *Store) scrubPass(p *scrubPacer) bool {
	s.mu.RLock()
	all := make([]*entry, 0, len(s.bySHA256))
	for _, e := range s.bySHA256 {
		all = append(all, e)
	}
	s.mu.RUnlock()
	slices.SortFunc(all, func(a, b *entry) int {
		return bytes.Compare(a.info.Digest.SHA256[:], b.info.Digest.SHA256[:])
	})
	for _, e := range all {
		if !s.scrubOne(e, p) {
			return false
		}
	}
	return true
}

// scrubOne rehashes e's file; false when the store is closing.
func (s *Store) scrubOne(e *entry, p *scrubPacer) bool {
	s.mu.RLock()
	gone, name, ext := e.gone, e.name, e.info.External
	extSize, extMtime := e.extSize, e.extMtime
	size, want := e.info.Digest.Size, e.info.Digest.SHA256
	s.mu.RUnlock()
	if gone {
		return true
	}
	if !p.add(scrubFileCost) {
		return false
	}
	path := ext
	if name != "" {
		path = filepath.Join(s.dataDir, name)
	}
	f, err := s.fs.Open(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			s.drop(e, "file vanished")
		}
		return true
	}
	defer f.Close()
	id, err := fileIDOf(f)
	if err != nil {
		return true
	}
	if id.size != size || (name == "" && (id.size != extSize || id.mtime != extMtime)) {
		s.drop(e, "file changed on disk")
		return true
	}
	bp := verifyBufPool.Get().(*[]byte)
	defer verifyBufPool.Put(bp)
	buf := (*bp)[:scrubChunk]
	h := sha256.New()
	var off int64
	short := false
	for off < size {
		n, err := f.ReadAt(buf[:min(int64(len(buf)), size-off)], off)
		h.Write(buf[:n])
		off += int64(n)
		s.mu.Lock()
		s.st.ScrubBytes += int64(n)
		s.mu.Unlock()
		if err == io.EOF && off < size {
			short = true
			break
		}
		if err != nil && err != io.EOF {
			return true // an I/O error: leave it to the next serve or pass
		}
		if !p.add(int64(n)) {
			return false
		}
	}
	var sum [32]byte
	h.Sum(sum[:0])
	s.mu.Lock()
	s.st.Scrubbed++
	s.mu.Unlock()
	if short || sum != want {
		s.mu.Lock()
		s.st.Corrupt++
		s.mu.Unlock()
		s.dropIfSame(e, path, id, "scrub: content does not match its hash")
		return true
	}
	if id2, err := fileIDOf(f); err == nil && id2 == id {
		s.mu.Lock()
		if !e.gone && e.name == name && e.info.External == ext {
			e.vid = id
		}
		s.mu.Unlock()
	}
	return true
}
