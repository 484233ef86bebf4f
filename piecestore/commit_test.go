package piecestore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apt-p2p/apt-p2p/internal/digest"
)

// writeAll creates a Writer for data and writes all of it (sequentially).
func writeAll(t testing.TB, s *Store, data []byte) (*Writer, error) {
	t.Helper()
	w, err := s.Create(digestOf(data, digest.SHA256), nil)
	if err != nil {
		return nil, err
	}
	if _, err := w.WriteAt(data, 0); err != nil {
		w.Abort()
		return nil, err
	}
	return w, nil
}

// commitAsOneBatch commits every writer at once while the committer is held at its gate, so
// that all of them that reach the queue form one batch. It returns each Commit's error.
func commitAsOneBatch(t testing.TB, s *Store, ws []*Writer) []error {
	t.Helper()
	errs := make([]error, len(ws))
	var wg sync.WaitGroup
	var mu sync.Mutex
	returned := 0
	for i, w := range ws {
		if w == nil {
			errs[i] = errors.New("not created")
			continue
		}
		wg.Go(func() {
			_, errs[i] = w.Commit()
			mu.Lock()
			returned++
			mu.Unlock()
		})
	}
	// Every Commit is either queued or has already failed (its fsync crashed).
	for {
		s.mu.Lock()
		queued := len(s.commitQ)
		s.mu.Unlock()
		mu.Lock()
		r := returned
		mu.Unlock()
		live := 0
		for _, w := range ws {
			if w != nil {
				live++
			}
		}
		if queued+r == live {
			break
		}
		time.Sleep(time.Millisecond)
	}
	s.commitGate <- struct{}{}
	wg.Wait()
	return errs
}

// TestGroupCommitOneTransaction: files committed together cost one directory fsync and one
// metadata transaction, and each is stored and readable.
func TestGroupCommitOneTransaction(t *testing.T) {
	ffs := newFaultFS()
	s := mustOpen(t, t.TempDir(), Options{FS: ffs, noSync: true})
	s.commitGate = make(chan struct{}, 1)
	defer s.Close()
	var ws []*Writer
	var datas [][]byte
	for i := range 8 {
		data := randData(uint64(700+i), 3000+i*PieceSize/3)
		w, err := writeAll(t, s, data)
		if err != nil {
			t.Fatal(err)
		}
		ws = append(ws, w)
		datas = append(datas, data)
	}
	before := len(ffs.stepNames)
	for i, err := range commitAsOneBatch(t, s, ws) {
		if err != nil {
			t.Fatalf("commit %d: %v", i, err)
		}
	}
	var syncdirs, metas, renames int
	for _, n := range ffs.stepNames[before:] {
		switch {
		case n == "syncdir data":
			syncdirs++
		case n == "meta commit":
			metas++
		case strings.HasPrefix(n, "rename"):
			renames++
		}
	}
	if syncdirs != 1 || metas != 1 || renames != 8 {
		t.Fatalf("8 commits in one batch: %d directory fsyncs, %d metadata transactions, %d renames; want 1, 1, 8 (%q)",
			syncdirs, metas, renames, ffs.stepNames[before:])
	}
	if st := s.Stats(); st.CommitBatches != 1 || st.Commits != 8 || st.Files != 8 {
		t.Fatalf("stats %+v", st)
	}
	for _, data := range datas {
		d := digestOf(data, digest.SHA256)
		info, ok := s.Lookup(&d)
		if !ok {
			t.Fatal("committed file not found")
		}
		if got, err := readStored(t, s, &info); err != nil || !bytes.Equal(got, data) {
			t.Fatalf("read back: %v", err)
		}
	}
}

// TestGroupCommitSameContent: two Writers of the same content (one created by SHA-256, one by
// MD5 only) committed in one batch make one entry, counted once, found by both hashes.
func TestGroupCommitSameContent(t *testing.T) {
	s := mustOpen(t, t.TempDir(), Options{noSync: true})
	s.commitGate = make(chan struct{}, 1)
	defer s.Close()
	data := randData(720, 5000)
	w1, err := s.Create(digestOf(data, digest.SHA256), nil)
	if err != nil {
		t.Fatal(err)
	}
	w2, err := s.Create(digestOf(data, digest.MD5), nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range []*Writer{w1, w2} {
		if _, err := w.WriteAt(data, 0); err != nil {
			t.Fatal(err)
		}
	}
	for _, err := range commitAsOneBatch(t, s, []*Writer{w1, w2}) {
		if err != nil {
			t.Fatal(err)
		}
	}
	if st := s.Stats(); st.Files != 1 || st.Bytes != int64(len(data)) {
		t.Fatalf("one content committed twice in a batch: stats %+v", st)
	}
	all := digestOf(data)
	if !lookupOK(s, all.MD5[:]) || !lookupOK(s, all.SHA256[:]) {
		t.Fatal("merged entry not found by both hashes")
	}
	checkAllVerified(t, s)
}

// TestCrashInBatch crashes the store at every step of a group commit of several files (their
// fsyncs, the renames one after the other, the directory fsync, the metadata transaction) and
// checks after each restart that every file whose Commit returned nil is there and whole,
// nothing unverified is served and no temporary file is left; as a process crash and as a
// power loss.
func TestCrashInBatch(t *testing.T) {
	var datas [][]byte
	for i := range 5 {
		datas = append(datas, randData(uint64(730+i), 1000+i*(PieceSize/2)))
	}
	pre := randData(739, 4000)
	template := filepath.Join(t.TempDir(), "template")
	s := mustOpen(t, template, Options{FS: newFaultFS(), noSync: true})
	mustPut(t, s, pre, digest.SHA256)
	s.Close()
	for _, power := range []bool{false, true} {
		t.Run(fmt.Sprintf("powerloss=%v", power), func(t *testing.T) {
			renameCrashes := 0
			for n := 1; ; n++ {
				dir := filepath.Join(t.TempDir(), "store")
				if err := os.CopyFS(dir, os.DirFS(template)); err != nil {
					t.Fatal(err)
				}
				ffs := newFaultFS()
				s, err := Open(dir, Options{FS: ffs, FlushInterval: -1, noSync: true})
				if err != nil {
					t.Fatal(err)
				}
				s.commitGate = make(chan struct{}, 1)
				var ws []*Writer
				for _, data := range datas {
					w, _ := writeAll(t, s, data)
					ws = append(ws, w)
				}
				// The crash step counts from here: the batch's own steps.
				ffs.mu.Lock()
				ffs.crashAt = ffs.step + n
				ffs.mu.Unlock()
				errs := commitAsOneBatch(t, s, ws)
				crashed := ffs.didCrash()
				var crashStep string
				if crashed {
					crashStep = ffs.stepNames[len(ffs.stepNames)-1]
					if strings.HasPrefix(crashStep, "rename") || crashStep == "syncdir data" || crashStep == "meta commit" {
						renameCrashes++
					}
				}
				s.abandon()
				if power {
					ffs.powerLoss()
				}

				s = mustOpen(t, dir, Options{FS: newFaultFS(), noSync: true})
				checkAllVerified(t, s)
				committed := 0
				for i, data := range datas {
					if errs[i] != nil {
						continue
					}
					committed++
					d := digestOf(data, digest.SHA256)
					info, ok := s.Lookup(&d)
					if !ok {
						t.Fatalf("crash at batch step %d (%s): file %d lost although its Commit returned", n, crashStep, i)
					}
					if got, err := readStored(t, s, &info); err != nil || !bytes.Equal(got, data) {
						t.Fatalf("crash at batch step %d: file %d differs (%v)", n, i, err)
					}
				}
				d := digestOf(pre, digest.SHA256)
				if _, ok := s.Lookup(&d); !ok {
					t.Fatalf("crash at batch step %d: file stored before the batch lost", n)
				}
				s.Close()
				os.RemoveAll(dir)
				if !crashed {
					if committed != len(datas) {
						t.Fatalf("the run without a crash committed %d of %d", committed, len(datas))
					}
					// fsyncs, 5 renames, a directory fsync, a metadata commit.
					if renameCrashes < len(datas)+2 {
						t.Fatalf("only %d crashes between the first rename and the metadata commit", renameCrashes)
					}
					t.Logf("crashed at each of %d batch steps", n-1)
					return
				}
			}
		})
	}
}

// TestCreateBackPressure: with MaxPendingCommits Commits in progress, Create waits (or gives up
// when its context ends) until one finishes.
func TestCreateBackPressure(t *testing.T) {
	s := mustOpen(t, t.TempDir(), Options{MaxPendingCommits: 2, noSync: true})
	s.commitGate = make(chan struct{}, 2)
	defer s.Close()
	var ws []*Writer
	for i := range 2 {
		w, err := writeAll(t, s, randData(uint64(750+i), 2000))
		if err != nil {
			t.Fatal(err)
		}
		ws = append(ws, w)
	}
	var wg sync.WaitGroup
	for _, w := range ws {
		wg.Go(func() {
			if _, err := w.Commit(); err != nil {
				t.Error(err)
			}
		})
	}
	waitUntil(t, "two commits queued", func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		return len(s.commitQ) == 2
	})
	third := randData(752, 2000)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := s.CreateContext(ctx, digestOf(third, digest.SHA256), nil); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Create with 2 of 2 commits pending: %v, want it to wait until its context ended", err)
	}
	created := make(chan error, 1)
	go func() {
		w, err := writeAll(t, s, third)
		if err == nil {
			_, err = w.Commit()
		}
		created <- err
	}()
	waitUntil(t, "Create to wait", func() bool { return s.Stats().CreateWaits >= 2 })
	select {
	case err := <-created:
		t.Fatalf("Create returned (%v) while 2 of 2 commits were pending", err)
	default:
	}
	s.commitGate <- struct{}{} // the batch of two goes through: room for the third
	wg.Wait()
	stop := make(chan struct{})
	go func() { // and whatever batches follow
		for {
			select {
			case s.commitGate <- struct{}{}:
			case <-stop:
				return
			}
		}
	}()
	err := <-created
	close(stop)
	if err != nil {
		t.Fatal(err)
	}
	if st := s.Stats(); st.Files != 3 || st.CommitBatches != 2 {
		t.Fatalf("stats %+v", st)
	}
}

// TestCloseFinishesQueuedCommits: Close lets the committer finish what is queued; Commit
// after Close fails with ErrClosed.
func TestCloseFinishesQueuedCommits(t *testing.T) {
	dir := t.TempDir()
	s := mustOpen(t, dir, Options{noSync: true})
	data := randData(760, 3000)
	w, err := writeAll(t, s, data)
	if err != nil {
		t.Fatal(err)
	}
	late, err := writeAll(t, s, randData(761, 3000))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Commit(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := late.Commit(); !errors.Is(err, ErrClosed) {
		t.Fatalf("Commit after Close: %v", err)
	}
	s = mustOpen(t, dir, Options{noSync: true})
	defer s.Close()
	d := digestOf(data, digest.SHA256)
	if _, ok := s.Lookup(&d); !ok {
		t.Fatal("committed file lost")
	}
	if st := s.Stats(); st.Files != 1 {
		t.Fatalf("stats %+v", st)
	}
}

// waitUntil polls cond (state reached by other goroutines of the test) for up to 10 s.
func waitUntil(t testing.TB, what string, cond func() bool) {
	t.Helper()
	for i := 0; !cond(); i++ {
		if i > 10000 {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}
