package piecestore

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/apt-p2p/apt-p2p/internal/digest"
)

// fakeClock is a Clock the test advances; After registers a waiter the test can wait for.
type fakeClock struct {
	mu      sync.Mutex
	now     time.Time
	waiters []fakeWaiter
}

type fakeWaiter struct {
	at time.Time
	ch chan time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{now: time.Unix(1_800_000_000, 0)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) After(d time.Duration) <-chan time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	ch := make(chan time.Time, 1)
	if d <= 0 {
		ch <- c.now
		return ch
	}
	c.waiters = append(c.waiters, fakeWaiter{c.now.Add(d), ch})
	return ch
}

// Advance moves the time on by d and fires the waiters that are due.
func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	kept := c.waiters[:0]
	for _, w := range c.waiters {
		if w.at.After(c.now) {
			kept = append(kept, w)
			continue
		}
		w.ch <- c.now
	}
	c.waiters = kept
}

// nextWait waits (real time, bounded) until someone waits on the clock and returns how long
// until that wait is due.
func (c *fakeClock) nextWait(t *testing.T) time.Duration {
	t.Helper()
	for i := 0; ; i++ {
		c.mu.Lock()
		if len(c.waiters) > 0 {
			d := c.waiters[0].at.Sub(c.now)
			for _, w := range c.waiters[1:] {
				d = min(d, w.at.Sub(c.now))
			}
			c.mu.Unlock()
			return d
		}
		c.mu.Unlock()
		if i > 10000 {
			t.Fatal("nothing waits on the clock")
		}
		time.Sleep(time.Millisecond)
	}
}

// flipByte changes one byte of path in place and restores its modification time, as bit rot
// would leave it (same size, same mtime).
func flipByte(t testing.TB, path string, off int64) {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 1)
	if _, err := f.ReadAt(b, off); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0x40
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if err := os.Chtimes(path, fi.ModTime(), fi.ModTime()); err != nil {
		t.Fatal(err)
	}
	if fi2, _ := os.Stat(path); fi2.ModTime() != fi.ModTime() || fi2.Size() != fi.Size() {
		t.Fatal("mtime or size not restored")
	}
}

type dropLog struct {
	mu    sync.Mutex
	infos []Info
	whys  []string
}

func (l *dropLog) add(info Info, why string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.infos = append(l.infos, info)
	l.whys = append(l.whys, why)
}

func (l *dropLog) count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.infos)
}

// TestRotFoundAtFirstServe: a byte flipped (mtime restored) while the store was closed is found
// when the file is first opened after Open: the copy is dropped and reported, never handed out;
// a sound copy is verified once and then served without hashing.
func TestRotFoundAtFirstServe(t *testing.T) {
	dir := t.TempDir()
	s := mustOpen(t, dir, Options{})
	rotten := mustPut(t, s, randData(800, 3*PieceSize+5), digest.SHA256)
	sound := mustPut(t, s, randData(801, 70_000), digest.SHA256)
	s.Close()
	path := filepath.Join(dir, "data", dataName(&rotten.Digest))
	flipByte(t, path, 2*PieceSize+3)

	var drops dropLog
	s = mustOpen(t, dir, Options{Dropped: drops.add})
	defer s.Close()
	if _, ok := s.Lookup(&rotten.Digest); !ok {
		t.Fatal("Open already dropped the file: start-up must not hash the cache")
	}
	if st := s.Stats(); st.Verified != 0 || st.Corrupt != 0 {
		t.Fatalf("Open hashed files: %+v", st)
	}
	r, err := s.OpenFile(&rotten)
	if !errors.Is(err, ErrCorrupt) {
		if r != nil {
			r.Close()
		}
		t.Fatalf("rotten file opened: %v", err)
	}
	if _, ok := s.Lookup(&rotten.Digest); ok {
		t.Fatal("rotten file still listed")
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatalf("rotten data file kept: %v", err)
	}
	if drops.count() != 1 || drops.infos[0].Digest.SHA256 != rotten.Digest.SHA256 {
		t.Fatalf("Dropped called %d times: %+v", drops.count(), drops.whys)
	}
	for range 3 {
		got, err := readStored(t, s, &sound)
		if err != nil || len(got) != 70_000 {
			t.Fatalf("sound file: %v", err)
		}
	}
	if st := s.Stats(); st.Verified != 1 || st.Corrupt != 1 || st.Dropped != 1 {
		t.Fatalf("stats %+v: want the sound file verified once, the rotten one found", st)
	}
}

// TestRotFoundByScrub: a byte flipped in place while the store runs, in a file whose descriptor
// is cached, is found by the scrub (paced by the clock) and the copy dropped.
func TestRotFoundByScrub(t *testing.T) {
	dir := t.TempDir()
	clk := newFakeClock()
	var drops dropLog
	const rate = 1 << 20
	s := mustOpen(t, dir, Options{Clock: clk, ScrubRate: rate, ScrubInterval: time.Hour, Dropped: drops.add})
	defer s.Close()
	var infos []Info
	for i := range 4 {
		infos = append(infos, mustPut(t, s, randData(uint64(810+i), 600_000+i), digest.SHA256))
	}
	for i := range infos {
		if _, err := readStored(t, s, &infos[i]); err != nil {
			t.Fatal(err)
		}
	}
	// Let the first pass (4 files, ~2.4 MB) complete: it must find nothing.
	var slept time.Duration
	for s.Stats().Scrubbed < 4 {
		d := clk.nextWait(t)
		slept += d
		clk.Advance(d)
	}
	if st := s.Stats(); st.Corrupt != 0 || drops.count() != 0 {
		t.Fatalf("scrub of sound files: %+v", st)
	}
	// The pace: 2.4 MB at 1 MB/s.
	if want := time.Duration(float64(s.Stats().ScrubBytes) / rate * float64(time.Second)); slept < want*9/10 {
		t.Fatalf("scrub read %d bytes in %v of clock time, faster than %d B/s", s.Stats().ScrubBytes, slept, rate)
	}
	victim := infos[2]
	flipByte(t, filepath.Join(dir, "data", dataName(&victim.Digest)), 123_456)
	// The next pass starts an hour after the first started.
	for i := 0; drops.count() == 0; i++ {
		if i > 1000 {
			t.Fatal("the scrub did not find the rotten file")
		}
		clk.Advance(clk.nextWait(t))
	}
	if drops.infos[0].Digest.SHA256 != victim.Digest.SHA256 {
		t.Fatalf("dropped %v, want %v", drops.infos[0].Digest, victim.Digest)
	}
	if _, err := s.OpenFile(&victim); !errors.Is(err, ErrNotFound) {
		t.Fatalf("rotten file opened after the scrub: %v", err)
	}
	for _, i := range []int{0, 1, 3} {
		if _, err := readStored(t, s, &infos[i]); err != nil {
			t.Fatalf("sound file %d: %v", i, err)
		}
	}
}

// TestEditedWhileCachedReverified: a file edited in place with its mtime restored while its
// descriptor is cached is verified again (its ctime changed) once the cached descriptor is due
// for a check, and dropped.
func TestEditedWhileCachedReverified(t *testing.T) {
	dir := t.TempDir()
	clk := newFakeClock()
	s := mustOpen(t, dir, Options{Clock: clk})
	defer s.Close()
	info := mustPut(t, s, randData(820, 50_000), digest.SHA256)
	if _, err := readStored(t, s, &info); err != nil {
		t.Fatal(err)
	}
	flipByte(t, filepath.Join(dir, "data", dataName(&info.Digest)), 10)
	clk.Advance(openFileValid + time.Second)
	if _, err := s.OpenFile(&info); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("edited file opened: %v", err)
	}
}

// countingFS counts opens and stats of files, to show the open-file cache spares them.
type countingFS struct {
	OSFS
	mu           sync.Mutex
	opens, stats int
	closes       int
}

type countingFile struct {
	File
	fs *countingFS
}

func (c *countingFS) Open(name string) (File, error) {
	f, err := c.OSFS.Open(name)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	c.opens++
	c.mu.Unlock()
	return &countingFile{f, c}, nil
}

func (f *countingFile) Stat() (os.FileInfo, error) {
	f.fs.mu.Lock()
	f.fs.stats++
	f.fs.mu.Unlock()
	return f.File.Stat()
}

func (f *countingFile) Close() error {
	f.fs.mu.Lock()
	f.fs.closes++
	f.fs.mu.Unlock()
	return f.File.Close()
}

func (f *countingFile) OSFile() *os.File { return osFileOf(f.File) }

func (c *countingFS) counts() (opens, stats, closes int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.opens, c.stats, c.closes
}

// TestOpenFileCache: a hot file is opened and stat'ed once, however often it is served; the
// least recently used descriptor beyond OpenFiles is closed (once its Readers are done), and so
// is the descriptor of an evicted file.
func TestOpenFileCache(t *testing.T) {
	cfs := &countingFS{}
	s := mustOpen(t, t.TempDir(), Options{FS: cfs, OpenFiles: 2, noSync: true})
	defer s.Close()
	var infos []Info
	var datas [][]byte
	for i := range 3 {
		data := randData(uint64(830+i), 20_000+i)
		datas = append(datas, data)
		infos = append(infos, mustPut(t, s, data, digest.SHA256))
	}
	o0, st0, _ := cfs.counts()
	for range 100 {
		got, err := readStored(t, s, &infos[0])
		if err != nil || !bytes.Equal(got, datas[0]) {
			t.Fatal(err)
		}
	}
	o1, st1, _ := cfs.counts()
	if o1-o0 != 1 || st1-st0 > 2 {
		t.Fatalf("100 serves of one file: %d opens, %d stats; want 1 open and at most 2 stats (identity before and after verification)", o1-o0, st1-st0)
	}
	// A Reader held across the cache's eviction of its descriptor keeps it usable.
	held, err := s.OpenFile(&infos[0])
	if err != nil {
		t.Fatal(err)
	}
	for _, i := range []int{1, 2} {
		if _, err := readStored(t, s, &infos[i]); err != nil {
			t.Fatal(err)
		}
	}
	if st := s.Stats(); st.OpenFiles != 2 {
		t.Fatalf("%d cached descriptors, want 2", st.OpenFiles)
	}
	buf := make([]byte, 100)
	if _, err := held.ReadAt(buf, 0); err != nil || !bytes.Equal(buf, datas[0][:100]) {
		t.Fatalf("held reader after its descriptor left the cache: %v", err)
	}
	_, _, c0 := cfs.counts()
	held.Close()
	if _, _, c1 := cfs.counts(); c1 != c0+1 {
		t.Fatal("the uncached descriptor was not closed with its last Reader")
	}
	// Dropping a file closes its cached descriptor at once.
	s.mu.Lock()
	e := s.bySHA256[infos[2].Digest.SHA256]
	s.mu.Unlock()
	s.drop(e, "test")
	if _, _, c2 := cfs.counts(); c2 != c0+2 {
		t.Fatal("the dropped file's cached descriptor was not closed")
	}
	if st := s.Stats(); st.OpenFiles != 1 {
		t.Fatalf("%d cached descriptors after the drop, want 1", st.OpenFiles)
	}
}

// TestDropIfSameSparesAFreshCopy: a corrupt copy found by a reader is not dropped if, by the
// time it would be, a fresh copy was committed over it (another inode).
func TestDropIfSameSparesAFreshCopy(t *testing.T) {
	dir := t.TempDir()
	s := mustOpen(t, dir, Options{})
	defer s.Close()
	data := randData(840, 30_000)
	info := mustPut(t, s, data, digest.SHA256)
	path := filepath.Join(dir, "data", dataName(&info.Digest))
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	old := fileIDOfInfo(fi)
	// A fresh commit of the same content replaces the file.
	if _, err := s.Put(digestOf(data, digest.SHA256), bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	s.mu.Lock()
	e := s.bySHA256[info.Digest.SHA256]
	s.mu.Unlock()
	s.dropIfSame(e, path, old, "test")
	if got, err := readStored(t, s, &info); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("fresh copy dropped for the old one's fault: %v", err)
	}
}

// TestOpenFileHint: a Hint skips the lookup while its content is stored, sees when it is not
// (the file was dropped) and finds the content again once it is stored anew.
func TestOpenFileHint(t *testing.T) {
	s := mustOpen(t, t.TempDir(), Options{noSync: true})
	defer s.Close()
	data := randData(850, 40_000)
	info := mustPut(t, s, data, digest.SHA256)
	var h Hint
	read := func() ([]byte, error) {
		r, err := s.OpenFileHint(&info, &h)
		if err != nil {
			return nil, err
		}
		defer r.Close()
		buf := make([]byte, r.Size())
		_, err = r.ReadAt(buf, 0)
		return buf, err
	}
	for range 3 {
		if got, err := read(); err != nil || !bytes.Equal(got, data) {
			t.Fatalf("open with a hint: %v", err)
		}
	}
	s.mu.Lock()
	first := h.e
	s.mu.Unlock()
	if first == nil {
		t.Fatal("the hint remembered nothing")
	}
	s.drop(first, "test")
	if _, err := read(); !errors.Is(err, ErrNotFound) {
		t.Fatalf("open of a dropped file through its hint: %v, want ErrNotFound", err)
	}
	info = mustPut(t, s, data, digest.SHA256)
	if got, err := read(); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("open of the stored-again file through the old hint: %v", err)
	}
	s.mu.Lock()
	again := h.e
	s.mu.Unlock()
	if again == nil || again == first {
		t.Fatal("the hint did not move to the new copy")
	}
}
