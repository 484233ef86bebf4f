package piecestore

import (
	"bytes"
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/apt-p2p/apt-p2p/internal/digest"
)

func TestEvictUnreferencedThenLRU(t *testing.T) {
	var unref sync.Map // SHA256 → true when no index refers to it
	opt := Options{
		MaxBytes:   3 * 10_000,
		Referenced: func(d *digest.Set) bool { _, u := unref.Load(d.SHA256); return !u },
	}
	s := mustOpen(t, t.TempDir(), opt)
	defer s.Close()
	var infos []Info
	for i := range 3 {
		infos = append(infos, mustPut(t, s, randData(uint64(30+i), 10_000), digest.SHA256))
	}
	// Access order: 1 is oldest after we touch 0 and 2; 2 is unreferenced.
	for _, i := range []int{1, 0, 2} {
		r, err := s.OpenFile(&infos[i])
		if err != nil {
			t.Fatal(err)
		}
		r.Close()
	}
	unref.Store(infos[2].Digest.SHA256, true)
	// Pin 0 (open for reading): never evicted, even when it would be next.
	pinned, err := s.OpenFile(&infos[0])
	if err != nil {
		t.Fatal(err)
	}
	// 40 000 bytes > 30 000: down to 95% (28 500) takes two files: the unreferenced 2,
	// then the least recently used unpinned one, 1 (0 is older-accessed than 3 but open).
	infos = append(infos, mustPut(t, s, randData(40, 10_000), digest.SHA256))
	for i, want := range []bool{true, false, false, true} {
		if _, ok := s.Lookup(&infos[i].Digest); ok != want {
			t.Fatalf("file %d present %v, want %v", i, ok, want)
		}
	}
	// At the quota, not over it: no eviction.
	mustPut(t, s, randData(41, 10_000), digest.SHA256)
	if st := s.Stats(); st.Evictions != 2 {
		t.Fatalf("evictions %d", st.Evictions)
	}
	got := make([]byte, 10_000)
	if _, err := pinned.ReadAt(got, 0); err != nil {
		t.Fatal(err)
	}
	pinned.Close()
	if err := pinned.Close(); !errors.Is(err, ErrClosed) {
		t.Errorf("second Close: %v", err)
	}
	st := s.Stats()
	if st.Evictions != 2 || st.EvictedBytes != 20_000 || st.Files != 3 || st.Bytes != 30_000 || st.Readers != 0 {
		t.Fatalf("stats %+v", st)
	}
}

// Readers open, read and verify files while other goroutines commit new ones and the
// quota forces evictions: a reader gets either ErrNotFound or the whole, right content.
func TestConcurrentReadersDuringEviction(t *testing.T) {
	const size = 20_000
	nfiles := 60
	if raceEnabled {
		nfiles = 20
	}
	s := mustOpen(t, t.TempDir(), Options{MaxBytes: 5 * size, FS: newFaultFS(), noSync: true})
	defer s.Close()
	contents := make([][]byte, nfiles)
	digests := make([]digest.Set, nfiles)
	for i := range contents {
		contents[i] = randData(uint64(100+i), size)
		digests[i] = digestOf(contents[i], digest.SHA256)
	}
	var next atomic.Int64 // files committed so far
	var reads, misses atomic.Int64
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for r := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, size)
			for k := r; ctx.Err() == nil; k++ {
				n := int(next.Load())
				if n == 0 {
					continue
				}
				i := k % n
				info, ok := s.Lookup(&digests[i])
				if !ok {
					misses.Add(1)
					continue
				}
				rd, err := s.OpenFile(&info)
				if errors.Is(err, ErrNotFound) {
					misses.Add(1)
					continue
				}
				if err != nil {
					t.Error(err)
					return
				}
				m, err := rd.File().ReadAt(buf, 0)
				rd.Close()
				if m != size || (err != nil) || !bytes.Equal(buf, contents[i]) {
					t.Errorf("file %d: read %d bytes, %v, equal %v", i, m, err, bytes.Equal(buf, contents[i]))
					return
				}
				reads.Add(1)
			}
		}()
	}
	for i := range contents {
		if _, err := s.Put(digests[i], bytes.NewReader(contents[i])); err != nil {
			t.Fatal(err)
		}
		next.Store(int64(i + 1))
	}
	cancel()
	wg.Wait()
	st := s.Stats()
	if st.Evictions < int64(nfiles-5-4) || st.Bytes > 5*size+4*size {
		t.Fatalf("evictions %d, bytes %d", st.Evictions, st.Bytes)
	}
	t.Logf("%d verified reads, %d misses, %d evictions", reads.Load(), misses.Load(), st.Evictions)
	if reads.Load() == 0 {
		t.Fatal("no read overlapped the evictions")
	}
	checkAllVerified(t, s)
}

// GC running again and again while files are committed and evicted never removes a
// committed file nor a live writer's temporary file.
func TestGCDuringCommits(t *testing.T) {
	n := 40
	if raceEnabled {
		n = 15
	}
	s := mustOpen(t, t.TempDir(), Options{FS: newFaultFS(), noSync: true, MaxBytes: 10 * 3000})
	defer s.Close()
	stop := make(chan struct{})
	gcErr := make(chan error, 1)
	go func() {
		for {
			select {
			case <-stop:
				gcErr <- nil
				return
			default:
			}
			if _, err := s.GC(); err != nil {
				gcErr <- err
				return
			}
		}
	}()
	var kept []Info
	for i := range n {
		info, err := s.Put(digestOf(randData(uint64(200+i), 3000), digest.SHA256), bytes.NewReader(randData(uint64(200+i), 3000)))
		if err != nil {
			t.Fatalf("file %d: %v", i, err)
		}
		kept = append(kept, info)
	}
	close(stop)
	if err := <-gcErr; err != nil {
		t.Fatal(err)
	}
	// The last files committed are within quota and must all be there.
	for _, info := range kept[n-5:] {
		if _, ok := s.Lookup(&info.Digest); !ok {
			t.Fatal("GC lost a committed file")
		}
	}
	if st := s.Stats(); st.Files == 0 || st.Files > 10 {
		t.Fatalf("stats %+v", st)
	}
	checkAllVerified(t, s)
}

// Remove takes one cached copy out at once: gone from lookups, from disk and, after a
// reopen, from the metadata; a copy open for reading is refused with ErrInUse and kept.
func TestRemove(t *testing.T) {
	dir := t.TempDir()
	s := mustOpen(t, dir, Options{})
	a := mustPut(t, s, randData(50, 10_000), digest.SHA256)
	b := mustPut(t, s, randData(51, 10_000), digest.SHA256)
	r, err := s.OpenFile(&b)
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := s.Remove(&b.Digest); ok || !errors.Is(err, ErrInUse) {
		t.Fatalf("Remove of an open file: %v %v, want ErrInUse", ok, err)
	}
	r.Close()
	if ok, err := s.Remove(&a.Digest); !ok || err != nil {
		t.Fatalf("Remove: %v %v", ok, err)
	}
	if ok, err := s.Remove(&a.Digest); ok || err != nil {
		t.Fatalf("second Remove: %v %v, want nothing to remove", ok, err)
	}
	if _, ok := s.Lookup(&a.Digest); ok {
		t.Fatal("removed file still found")
	}
	if _, ok := s.Lookup(&b.Digest); !ok {
		t.Fatal("the file that was open is gone")
	}
	if st := s.Stats(); st.Files != 1 || st.Bytes != 10_000 || st.Evictions != 1 {
		t.Fatalf("stats %+v", st)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = mustOpen(t, dir, Options{})
	defer s.Close()
	if _, ok := s.Lookup(&a.Digest); ok {
		t.Fatal("removed file back after a reopen")
	}
	if st := s.Stats(); st.Files != 1 || st.Adopted != 0 {
		t.Fatalf("after reopen: %+v", st)
	}
}
