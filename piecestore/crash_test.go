package piecestore

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/apt-p2p/apt-p2p/internal/digest"
)

// storeScenario is the workload run on a fault-injecting FS: a file written as pieces out
// of order and then sequentially, a Put, a path added to a file stored earlier. It returns
// the contents whose Commit/Put succeeded.
func storeScenario(s *Store, pre Info, b, c []byte) (committed [][]byte) {
	if w, err := s.Create(digestOf(b, digest.SHA256), piecesOf(b)); err == nil {
		ok := w.WritePiece(2, b[2*PieceSize:], nil) == nil
		if ok {
			_, err := w.WriteAt(b[:2*PieceSize], 0)
			ok = err == nil
		}
		if ok {
			if _, err := w.Commit(); err == nil {
				committed = append(committed, b)
			}
		} else {
			w.Abort()
		}
	}
	if _, err := s.Put(digestOf(c, digest.SHA1, digest.SHA256), bytes.NewReader(c)); err == nil {
		committed = append(committed, c)
	}
	_ = s.AddPath(&pre, "mirror:80/debian/pool/a.deb")
	return committed
}

// TestCrashAtEveryStep crashes the store at step 1, 2, 3, ... of the scenario (Open
// included) until a run completes without reaching the crash step, and checks after each
// restart that nothing partial or unverified is served, that what was stored before and
// every content whose Commit returned nil is still there, and that no temporary file is
// left. It runs twice: a process crash (what was written stays), and a power loss (writes
// not fsynced and renames whose directory was not fsynced are lost).
func TestCrashAtEveryStep(t *testing.T) {
	a := randData(20, 1000)
	b := randData(21, 2*PieceSize+777)
	c := randData(22, 3000)
	old := randData(25, 200_000) // unreferenced: the eviction victim
	orphan := randData(26, 700)  // a data file whose metadata commit was lost earlier
	od := digestOf(orphan, digest.SHA256)
	// The state before the crash run, built once and copied for each run (a new bbolt file
	// costs an fsync however it is opened).
	template := filepath.Join(t.TempDir(), "template")
	s := mustOpen(t, template, Options{FS: newFaultFS(), noSync: true})
	pre := mustPut(t, s, a, digest.SHA256)
	oldInfo := mustPut(t, s, old, digest.SHA256)
	s.Close()
	// Leftovers of an earlier crash for Open to reconcile.
	os.WriteFile(filepath.Join(template, "tmp", "7.part"), b[:1000], 0o644)
	os.WriteFile(filepath.Join(template, "data", dataName(&od)), orphan, 0o644)
	for _, power := range []bool{false, true} {
		t.Run(fmt.Sprintf("powerloss=%v", power), func(t *testing.T) {
			for n := 1; ; n++ {
				dir := filepath.Join(t.TempDir(), "store")
				if err := os.CopyFS(dir, os.DirFS(template)); err != nil {
					t.Fatal(err)
				}

				ffs := newFaultFS()
				ffs.crashAt = n
				var committed [][]byte
				opt := Options{FS: ffs, FlushInterval: -1, noSync: true,
					// Room for a, b, c and the orphan, not for old too: committing b evicts old
					// (and, the pass going down to 95% of the quota, nothing else).
					MaxBytes:   int64(float64(len(a)+len(b)+len(c)+len(orphan)) / evictLowWater),
					Referenced: func(d *digest.Set) bool { return d.SHA256 != oldInfo.Digest.SHA256 },
				}
				if s, err := Open(dir, opt); err == nil {
					committed = storeScenario(s, pre, b, c)
					s.abandon()
				}
				crashed := ffs.didCrash()
				if power {
					ffs.powerLoss()
				}

				s := mustOpen(t, dir, Options{FS: newFaultFS(), noSync: true})
				checkAllVerified(t, s)
				for _, want := range append(committed, a, orphan) {
					d := digestOf(want, digest.SHA256)
					info, ok := s.Lookup(&d)
					if !ok {
						t.Fatalf("crash at step %d (%v): verified content of %d bytes lost", n, ffs.stepNames[len(ffs.stepNames)-1], len(want))
					}
					got, err := readStored(t, s, &info)
					if err != nil || !bytes.Equal(got, want) {
						t.Fatalf("crash at step %d: content differs (%v)", n, err)
					}
				}
				if st := s.Stats(); st.Files > 5 || st.Files < 2+len(committed) {
					t.Fatalf("crash at step %d: %d files", n, st.Files)
				}
				s.Close()
				os.RemoveAll(dir)
				if !crashed {
					if len(committed) != 2 {
						t.Fatalf("the run without a crash stored %d files", len(committed))
					}
					if _, ok := s.Lookup(&oldInfo.Digest); ok {
						t.Fatal("the run without a crash did not evict")
					}
					t.Logf("crashed at each of %d steps: %q", n-1, ffs.stepNames)
					if n < 15 {
						t.Fatalf("only %d steps: the scenario does not exercise the store", n-1)
					}
					return
				}
			}
		})
	}
}

// TestENOSPC fails each write step of a store with ENOSPC in turn: the error reaches the
// caller (errors.Is ENOSPC), waiters get it, nothing is stored or left in tmp/, and the
// store keeps working for the next file.
func TestENOSPC(t *testing.T) {
	data := randData(23, 2*PieceSize+10)
	d := digestOf(data, digest.SHA256)
	for n := 1; ; n++ {
		ffs := newFaultFS()
		dir := t.TempDir()
		s := mustOpen(t, dir, Options{FS: ffs, noSync: true})
		ffs.failAt = ffs.step + n
		ffs.failErr = syscall.ENOSPC
		w, err := s.Create(d, nil)
		if err == nil {
			for off := 0; off < len(data) && err == nil; off += 300_000 {
				_, err = w.WriteAt(data[off:min(off+300_000, len(data))], int64(off))
			}
			if err == nil {
				_, err = w.Commit()
			} else if werr := w.Err(); !errors.Is(werr, syscall.ENOSPC) {
				t.Fatalf("step %d: writer error %v", n, werr)
			}
		}
		if err == nil {
			if ffs.step < ffs.failAt {
				t.Logf("ENOSPC injected at each of %d steps", n-1)
				s.Close()
				return
			}
			t.Fatalf("step %d: store succeeded despite ENOSPC", n)
		}
		if !errors.Is(err, syscall.ENOSPC) {
			t.Fatalf("step %d: %v, want ENOSPC", n, err)
		}
		if _, ok := s.Lookup(&d); ok {
			t.Fatalf("step %d: stored despite ENOSPC", n)
		}
		if st := s.Stats(); st.Writers != 0 {
			t.Fatalf("step %d: writer still registered", n)
		}
		if _, err := s.GC(); err != nil {
			t.Fatal(err)
		}
		if n := dirNames(t, filepath.Join(dir, "tmp")); len(n) != 0 {
			t.Fatalf("tmp not cleaned: %v", n)
		}
		// Space is back: the same content stores fine.
		if _, err := s.Put(d, bytes.NewReader(data)); err != nil {
			t.Fatalf("step %d: store after ENOSPC: %v", n, err)
		}
		s.Close()
	}
}

// TestShortWrite: a file system that writes fewer bytes than asked and reports no error
// must not produce a stored file with a hole.
func TestShortWrite(t *testing.T) {
	data := randData(24, PieceSize+10)
	d := digestOf(data, digest.SHA256)
	ffs := newFaultFS()
	dir := t.TempDir()
	s := mustOpen(t, dir, Options{FS: ffs, noSync: true})
	defer s.Close()
	ffs.shortAt = ffs.step + 3 // create, truncate, then the first write
	w, err := s.Create(d, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = w.WriteAt(data, 0)
	if !errors.Is(err, io.ErrShortWrite) {
		t.Fatalf("short write: %v", err)
	}
	if _, err := w.Commit(); !errors.Is(err, io.ErrShortWrite) {
		t.Fatalf("commit after short write: %v", err)
	}
	if _, ok := s.Lookup(&d); ok {
		t.Fatal("stored after a short write")
	}
	if _, err := s.Put(d, bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	checkAllVerified(t, s)
}

// A full disk at Create makes the cache give room (unreferenced, then least recently used
// files) and the download starts; with nothing to evict the error reaches the caller.
func TestENOSPCMakesRoom(t *testing.T) {
	ffs := newFaultFS()
	s := mustOpen(t, t.TempDir(), Options{FS: ffs, noSync: true})
	defer s.Close()
	var infos []Info
	for i := range 3 {
		infos = append(infos, mustPut(t, s, randData(uint64(300+i), 10_000), digest.SHA256))
	}
	r, err := s.OpenFile(&infos[0]) // 0 becomes the most recently used, and stays pinned
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	data := randData(310, 15_000)
	d := digestOf(data, digest.SHA256)
	ffs.failAt, ffs.failErr = ffs.step+2, syscall.ENOSPC // create, then allocate
	w, err := s.Create(d, nil)
	if err != nil {
		t.Fatalf("Create on a full disk with evictable files: %v", err)
	}
	if st := s.Stats(); st.Evictions != 2 || st.Files != 1 {
		t.Fatalf("stats %+v", st)
	}
	if _, ok := s.Lookup(&infos[0].Digest); !ok {
		t.Fatal("pinned file evicted")
	}
	w.WriteAt(data, 0)
	if _, err := w.Commit(); err != nil {
		t.Fatal(err)
	}
	// Fewer evictable bytes than the file needs: ENOSPC.
	ffs.failAt, ffs.failErr = ffs.step+2, syscall.ENOSPC
	big := randData(311, 50_000)
	if _, err := s.Create(digestOf(big, digest.SHA256), nil); !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("Create: %v, want ENOSPC", err)
	}
	checkAllVerified(t, s)
}
