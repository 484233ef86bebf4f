package piecestore

import (
	"bytes"
	"context"
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/apt-p2p/apt-p2p/internal/digest"
	"github.com/apt-p2p/apt-p2p/wire"
)

func TestStoreSequentialAndLookup(t *testing.T) {
	dir := t.TempDir()
	s := mustOpen(t, dir, Options{})
	defer s.Close()
	data := vectorData()
	d := digestOf(data, digest.SHA256) // a modern index: SHA256 only
	w, err := s.Create(d, nil)
	if err != nil {
		t.Fatal(err)
	}
	// Uneven chunks, as from a mirror.
	for off := 0; off < len(data); {
		n := min(70001, len(data)-off)
		if _, err := w.WriteAt(data[off:off+n], int64(off)); err != nil {
			t.Fatal(err)
		}
		off += n
		if off < len(data) && w.Available() != int64(off) {
			t.Fatalf("available %d at %d", w.Available(), off)
		}
	}
	if w.Available() != int64(len(data)) {
		t.Fatalf("available %d after verification", w.Available())
	}
	info, err := w.Commit()
	if err != nil {
		t.Fatal(err)
	}
	// Only what checking needs is computed: the index gave SHA-256 only, so the
	// stored digest has no SHA-1, and the DHT key derived from it is the SHA-256
	// one a requester with the same index derives.
	if !info.Complete || info.Digest.Has(digest.SHA1) || info.Digest.Has(digest.MD5) {
		t.Errorf("info %+v: hashes beyond the index's and SHA-256", info.Digest)
	}
	if k, _ := info.Digest.Key(); k != wire.NormKey(d.SHA256[:]) {
		t.Errorf("DHT key %v, want the SHA-256 key", k)
	}
	if hexOf(info.Pieces) != vecPieces || info.PiecesHash.String() != vecPiecesHash {
		t.Errorf("pieces %x hash %v", info.Pieces, info.PiecesHash)
	}
	// Found by the hashes it is known by, whatever else the caller knows.
	for _, q := range []digest.Set{digestOf(data, digest.SHA256), digestOf(data, digest.SHA1, digest.SHA256)} {
		if _, ok := s.Lookup(&q); !ok {
			t.Errorf("Lookup(%v) failed", q)
		}
	}
	if _, ok := s.LookupHash(info.Digest.SHA256[:]); !ok {
		t.Errorf("LookupHash(SHA-256) failed")
	}
	ph, _ := wire.ParseID(vecPiecesHash)
	if p, ok := s.LookupPieces(ph); !ok || !bytes.Equal(p, info.Pieces) {
		t.Errorf("LookupPieces: %v", ok)
	}
	// Wrong size or a different hash: not found.
	bad := digestOf(data, digest.SHA256)
	bad.Size++
	if _, ok := s.Lookup(&bad); ok {
		t.Error("found with the wrong size")
	}
	bad = digestOf(data, digest.SHA256)
	bad.SHA256[0] ^= 1
	if _, ok := s.Lookup(&bad); ok {
		t.Error("found although the SHA-256 disagrees")
	}
	// MD5 was neither given nor computed: the content is not found by it.
	if q := digestOf(data, digest.MD5); lookupOK(s, q.MD5[:]) {
		t.Error("found by an MD5 nobody computed")
	}
	got, err := readStored(t, s, &info)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read back: %v", err)
	}
	if names := dirNames(t, filepath.Join(dir, "data")); len(names) != 1 || names[0] != dataName(&info.Digest) {
		t.Errorf("data dir %v", names)
	}
}

func hexOf(b []byte) string { return hex.EncodeToString(b) }

func TestStorePiecesOutOfOrder(t *testing.T) {
	s := mustOpen(t, t.TempDir(), Options{})
	defer s.Close()
	data := randData(1, 3*PieceSize+1000)
	pieces := piecesOf(data)
	w, err := s.Create(digestOf(data, digest.SHA256), pieces)
	if err != nil {
		t.Fatal(err)
	}
	piece := func(i int) []byte { return data[i*PieceSize : min((i+1)*PieceSize, len(data))] }
	// A corrupt piece is refused and the writer carries on.
	badp := bytes.Clone(piece(2))
	badp[7] ^= 1
	if err := w.WritePiece(2, badp, nil); !errors.Is(err, ErrPieceMismatch) {
		t.Fatalf("bad piece: %v", err)
	}
	if err := w.WritePiece(3, piece(3), nil); err != nil { // short last piece
		t.Fatal(err)
	}
	sum := sha1.Sum(piece(1))
	if err := w.WritePiece(1, piece(1), &sum); err != nil {
		t.Fatal(err)
	}
	if _, err := w.WriteAt(data[100:200], 100); !errors.Is(err, ErrShape) {
		t.Errorf("unaligned write beyond the prefix: %v", err)
	}
	if !w.HavePiece(1) || !w.HavePiece(3) || w.HavePiece(0) || w.HavePiece(2) || w.Contiguous() != 0 || w.Available() != 0 {
		t.Fatalf("state: contig %d", w.Contiguous())
	}
	// Sequential data from the mirror fills piece 0 in two writes; the prefix then runs
	// over piece 1 (written earlier) and stops at the gap.
	w.WriteAt(data[:1000], 0)
	if _, err := w.WriteAt(data[500:PieceSize], 500); err != nil { // overlap is fine
		t.Fatal(err)
	}
	if w.Contiguous() != 2*PieceSize || w.Available() != 2*PieceSize {
		t.Fatalf("contig %d avail %d", w.Contiguous(), w.Available())
	}
	if _, err := w.Commit(); !errors.Is(err, ErrIncomplete) {
		t.Fatalf("early commit: %v", err)
	}
	if _, err := w.WriteAt(piece(2), 2*PieceSize); err != nil { // aligned WriteAt = a piece
		t.Fatal(err)
	}
	if w.Available() != int64(len(data)) {
		t.Fatalf("avail %d", w.Available())
	}
	info, err := w.Commit()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(info.Pieces, pieces) {
		t.Error("piece hashes differ")
	}
	got, err := readStored(t, s, &info)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read back: %v", err)
	}
}

func TestStoreHoldBackAndWait(t *testing.T) {
	s := mustOpen(t, t.TempDir(), Options{})
	defer s.Close()
	data := randData(2, 1500)
	w, err := s.Create(digestOf(data, digest.SHA256), nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	w.WriteAt(data[:1499], 0)
	if a, err := w.Wait(ctx, 1497); a != 1499 || err != nil {
		t.Fatalf("wait: %d %v", a, err)
	}
	done := make(chan int64)
	go func() {
		a, err := w.Wait(ctx, 1499)
		if err != nil {
			t.Error(err)
		}
		done <- a
	}()
	select {
	case a := <-done:
		t.Fatalf("the last byte was released before verification (avail %d)", a)
	case <-time.After(20 * time.Millisecond):
	}
	w.WriteAt(data[1499:], 1499)
	if a := <-done; a != 1500 {
		t.Fatalf("avail %d", a)
	}
	if _, err := w.Commit(); err != nil {
		t.Fatal(err)
	}
	short, cancel2 := context.WithTimeout(context.Background(), 5*time.Millisecond)
	defer cancel2()
	w2, _ := s.Create(digestOf(randData(3, 10), digest.SHA256), nil)
	if _, err := w2.Wait(short, 0); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("wait on ctx: %v", err)
	}
	w2.Abort()
}

func TestStoreMismatch(t *testing.T) {
	dir := t.TempDir()
	s := mustOpen(t, dir, Options{})
	defer s.Close()
	data := randData(4, 2*PieceSize+5)
	d := digestOf(data, digest.SHA256)
	w, err := s.Create(d, nil)
	if err != nil {
		t.Fatal(err)
	}
	waitErr := make(chan error)
	go func() {
		_, err := w.Wait(context.Background(), int64(len(data))-1)
		waitErr <- err
	}()
	bad := bytes.Clone(data)
	bad[len(bad)-1] ^= 0xff
	if _, err := w.WriteAt(bad[:PieceSize], 0); err != nil {
		t.Fatal(err)
	}
	if _, err := w.WriteAt(bad[PieceSize:], PieceSize); !errors.Is(err, ErrMismatch) {
		t.Fatalf("last write: %v", err)
	}
	if w.Available() >= int64(len(data)) {
		t.Fatal("mismatched content became available in full")
	}
	if err := <-waitErr; !errors.Is(err, ErrMismatch) {
		t.Fatalf("waiter: %v", err)
	}
	if _, err := w.Commit(); !errors.Is(err, ErrMismatch) {
		t.Fatalf("commit: %v", err)
	}
	if _, ok := s.Lookup(&d); ok {
		t.Fatal("mismatched content stored")
	}
	if n := dirNames(t, filepath.Join(dir, "tmp")); len(n) != 0 {
		t.Fatalf("temporary data kept: %v", n)
	}
	if st := s.Stats(); st.Mismatches != 1 || st.Writers != 0 || st.Files != 0 {
		t.Fatalf("stats %+v", st)
	}
	// Put: a short or wrong stream stores nothing.
	if _, err := s.Put(d, bytes.NewReader(data[:10])); !errors.Is(err, ErrMismatch) {
		t.Fatalf("short Put: %v", err)
	}
	if _, err := s.Put(d, bytes.NewReader(append(bytes.Clone(data), 1))); !errors.Is(err, ErrMismatch) {
		t.Fatalf("long Put: %v", err)
	}
	// The right data is accepted afterwards.
	mustPut(t, s, data, digest.SHA256)
}

func TestStoreBusyAndAbort(t *testing.T) {
	s := mustOpen(t, t.TempDir(), Options{})
	defer s.Close()
	data := randData(5, 1000)
	w, err := s.Create(digestOf(data, digest.SHA256, digest.MD5), nil)
	if err != nil {
		t.Fatal(err)
	}
	// Same content known by another of its hashes: still busy.
	if _, err := s.Create(digestOf(data, digest.MD5), nil); !errors.Is(err, ErrBusy) {
		t.Fatalf("second Create: %v", err)
	}
	w.WriteAt(data[:10], 0)
	waitErr := make(chan error)
	go func() {
		_, err := w.Wait(context.Background(), 500)
		waitErr <- err
	}()
	w.Abort()
	if err := <-waitErr; !errors.Is(err, ErrAborted) {
		t.Fatalf("waiter: %v", err)
	}
	if _, err := w.WriteAt(data[10:20], 10); !errors.Is(err, ErrAborted) {
		t.Fatalf("write after abort: %v", err)
	}
	w2, err := s.Create(digestOf(data, digest.MD5), nil)
	if err != nil {
		t.Fatalf("Create after Abort: %v", err)
	}
	w2.WriteAt(data, 0)
	if _, err := w2.Commit(); err != nil {
		t.Fatal(err)
	}
	w2.Abort() // no effect after Commit
	if _, ok := s.Lookup(&digest.Set{Size: -1}); ok {
		t.Fatal("found content by no hash")
	}
	if d := digestOf(data, digest.SHA256); !lookupOK(s, d.SHA256[:]) {
		t.Fatal("committed content lost by Abort after Commit")
	}
	if _, err := s.Create(digest.Set{Size: 3}, nil); !errors.Is(err, ErrNoHash) {
		t.Errorf("no hash: %v", err)
	}
}

func TestStoreDedupAndEmpty(t *testing.T) {
	dir := t.TempDir()
	s := mustOpen(t, dir, Options{})
	defer s.Close()
	data := randData(6, 3000)
	a := mustPut(t, s, data, digest.MD5)    // e.g. from Sources (MD5 only)
	b := mustPut(t, s, data, digest.SHA512) // the same file under another name
	if a.Digest.SHA256 != b.Digest.SHA256 || !b.Digest.Has(digest.MD5) || !b.Digest.Has(digest.SHA512) {
		t.Errorf("not merged: %v", b.Digest)
	}
	if st := s.Stats(); st.Files != 1 || st.Bytes != 3000 {
		t.Errorf("stats %+v", st)
	}
	if n := dirNames(t, filepath.Join(dir, "data")); len(n) != 1 {
		t.Errorf("data %v", n)
	}
	e := mustPut(t, s, nil, digest.SHA256)
	if got, err := readStored(t, s, &e); err != nil || len(got) != 0 {
		t.Errorf("empty file: %v", err)
	}
}

// Reference §6.12 test_openExistingDB, paths and announcement times survive a restart;
// test_expiry and test_multipleHashes in this design (one entry per content, its paths).
func TestStoreReopenAnnounce(t *testing.T) {
	dir := t.TempDir()
	clock := time.Unix(1_700_000_000, 0)
	s := mustOpen(t, dir, Options{Now: func() time.Time { return clock }})
	data := []byte("fgfhds")
	info := mustPut(t, s, data, digest.SHA1)
	paths := []string{"deb.debian.org:80/debian/khashmir.test", "top1:80/d/khashmir.test", "top2:80/sub1/khashmir.test", "top2:80/sub2/khashmir.test"}
	for _, p := range append(paths, paths[0]) {
		if err := s.AddPath(&info, p); err != nil {
			t.Fatal(err)
		}
	}
	// Never announced: due at once.
	if due := s.DueForAnnounce(clock.Add(-time.Second), 0); len(due) != 1 {
		t.Fatalf("due %d", len(due))
	}
	s.MarkAnnounced(&info, clock)
	if due := s.DueForAnnounce(clock.Add(-time.Second), 0); len(due) != 0 {
		t.Fatalf("due right after announcing: %d", len(due))
	}
	clock = clock.Add(2 * time.Second)
	due := s.DueForAnnounce(clock.Add(-time.Second), 0)
	if len(due) != 1 || len(due[0].Paths) != 4 {
		t.Fatalf("due after 2 s: %+v", due)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = mustOpen(t, dir, Options{Now: func() time.Time { return clock }})
	defer s.Close()
	got, ok := s.LookupHash(info.Digest.SHA1[:])
	if !ok || len(got.Paths) != 4 || !got.LastAnnounced.Equal(clock.Add(-2*time.Second)) {
		t.Fatalf("after reopen: %+v", got)
	}
	s.MarkAnnounced(&got, clock)
	if due := s.DueForAnnounce(clock.Add(-time.Second), 0); len(due) != 0 {
		t.Fatalf("due after refresh: %d", len(due))
	}
	// Oldest first, limited.
	x := mustPut(t, s, []byte("x"), digest.SHA256)
	y := mustPut(t, s, []byte("y"), digest.SHA256)
	s.MarkAnnounced(&x, clock.Add(-time.Hour))
	s.MarkAnnounced(&y, clock.Add(-2*time.Hour))
	due = s.DueForAnnounce(clock, 1)
	if len(due) != 1 || due[0].Digest.SHA256 != y.Digest.SHA256 {
		t.Fatalf("oldest first: %+v", due)
	}
}

func TestStoreOpenReconciles(t *testing.T) {
	dir := t.TempDir()
	s := mustOpen(t, dir, Options{})
	keep := mustPut(t, s, randData(7, 5000), digest.SHA256)
	gone := mustPut(t, s, randData(8, 5000), digest.SHA256)
	short := mustPut(t, s, randData(9, 5000), digest.SHA256)
	s.Close()
	data := filepath.Join(dir, "data")
	os.Remove(filepath.Join(data, dataName(&gone.Digest)))
	os.Truncate(filepath.Join(data, dataName(&short.Digest)), 100)
	// An orphan that verifies, one that does not, a junk name, a leftover temporary file.
	orphan := randData(10, PieceSize+7)
	od := digestOf(orphan)
	os.WriteFile(filepath.Join(data, dataName(&od)), orphan, 0o644)
	liar := digestOf(randData(11, 10))
	os.WriteFile(filepath.Join(data, dataName(&liar)), randData(12, 10), 0o644)
	os.WriteFile(filepath.Join(data, "junk"), []byte("junk"), 0o644)
	os.WriteFile(filepath.Join(dir, "tmp", "1.part"), []byte("partial"), 0o644)

	s = mustOpen(t, dir, Options{})
	defer s.Close()
	if _, ok := s.Lookup(&keep.Digest); !ok {
		t.Error("intact file lost")
	}
	if _, ok := s.Lookup(&gone.Digest); ok {
		t.Error("metadata without data kept")
	}
	if _, ok := s.Lookup(&short.Digest); ok {
		t.Error("truncated file kept")
	}
	ad, ok := s.LookupHash(od.SHA256[:])
	if !ok || ad.Digest.MD5 != od.MD5 || ad.Digest.SHA1 != od.SHA1 || len(ad.Pieces) != 40 {
		t.Errorf("orphan not re-adopted with its hashes: %v %+v", ok, ad.Digest)
	}
	if _, ok := s.LookupHash(liar.SHA256[:]); ok {
		t.Error("unverifiable orphan adopted")
	}
	names := dirNames(t, data)
	if len(names) != 2 {
		t.Errorf("data dir %v", names)
	}
	if st := s.Stats(); st.Adopted != 1 || st.Dropped != 2 || st.Files != 2 {
		t.Errorf("stats %+v", st)
	}
	checkAllVerified(t, s)
}

func TestStoreTruncatedWhileRunning(t *testing.T) {
	dir := t.TempDir()
	s := mustOpen(t, dir, Options{})
	defer s.Close()
	info := mustPut(t, s, randData(13, 9000), digest.SHA256)
	os.Truncate(filepath.Join(dir, "data", dataName(&info.Digest)), 4000)
	if _, err := s.OpenFile(&info); !errors.Is(err, ErrChanged) {
		t.Fatalf("truncated file opened: %v", err)
	}
	if _, ok := s.Lookup(&info.Digest); ok {
		t.Fatal("truncated file still listed")
	}
}

func TestStoreVerifyAndGC(t *testing.T) {
	dir := t.TempDir()
	s := mustOpen(t, dir, Options{})
	defer s.Close()
	good := mustPut(t, s, randData(14, 3*PieceSize), digest.SHA256)
	bad := mustPut(t, s, randData(15, 4000), digest.SHA256)
	p := filepath.Join(dir, "data", dataName(&bad.Digest))
	b, _ := os.ReadFile(p)
	b[100] ^= 1
	os.WriteFile(p, b, 0o644) // same size, flipped bit
	n, err := s.Verify(context.Background())
	if err != nil || n != 1 {
		t.Fatalf("Verify: %d %v", n, err)
	}
	if _, ok := s.Lookup(&bad.Digest); ok {
		t.Fatal("corrupt file kept")
	}
	if _, ok := s.Lookup(&good.Digest); !ok {
		t.Fatal("good file dropped")
	}
	// GC: a stray temporary file (not a live writer's), a stray data file, a lost data file.
	w, _ := s.Create(digestOf([]byte("live"), digest.SHA256), nil)
	os.WriteFile(filepath.Join(dir, "tmp", "stray.part"), []byte("x"), 0o644)
	os.WriteFile(filepath.Join(dir, "data", "stray"), []byte("x"), 0o644)
	os.Remove(filepath.Join(dir, "data", dataName(&good.Digest)))
	removed, err := s.GC()
	if err != nil || removed != 3 {
		t.Fatalf("GC: %d %v", removed, err)
	}
	if len(dirNames(t, filepath.Join(dir, "tmp"))) != 1 {
		t.Fatal("GC removed a live writer's file")
	}
	w.WriteAt([]byte("live"), 0)
	if _, err := w.Commit(); err != nil {
		t.Fatal(err)
	}
	checkAllVerified(t, s)
}

func lookupOK(s *Store, h []byte) bool {
	_, ok := s.LookupHash(h)
	return ok
}

// Several sources write pieces at once while a streamer follows Available with Wait and
// reads the temporary file, as the HTTP front streams a download to apt; the file stays
// readable through File() after Commit.
func TestConcurrentPiecesAndStreamer(t *testing.T) {
	s := mustOpen(t, t.TempDir(), Options{})
	defer s.Close()
	np := 24
	if raceEnabled {
		np = 8
	}
	data := randData(80, np*PieceSize-123)
	w, err := s.Create(digestOf(data, digest.SHA256, digest.SHA1), piecesOf(data))
	if err != nil {
		t.Fatal(err)
	}
	streamed := make(chan []byte)
	go func() {
		var got []byte
		buf := make([]byte, 100_000)
		f := w.File()
		for off := int64(0); off < int64(len(data)); {
			avail, err := w.Wait(context.Background(), off)
			if err != nil {
				t.Error(err)
				break
			}
			for off < avail {
				n, _ := f.ReadAt(buf[:min(int64(len(buf)), avail-off)], off)
				got = append(got, buf[:n]...)
				off += int64(n)
			}
		}
		streamed <- got
	}()
	done := make(chan error, 3)
	for src := range 3 {
		go func() {
			// Each source takes every third piece, from the end backwards.
			for i := np - 1 - src; i >= 0; i -= 3 {
				p := data[i*PieceSize : min((i+1)*PieceSize, len(data))]
				if err := w.WritePiece(i, p, nil); err != nil {
					done <- err
					return
				}
			}
			done <- nil
		}()
	}
	for range 3 {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	info, err := w.Commit()
	if err != nil {
		t.Fatal(err)
	}
	if got := <-streamed; !bytes.Equal(got, data) {
		t.Fatalf("streamed %d bytes, not the content", len(got))
	}
	buf := make([]byte, 10)
	if _, err := w.File().ReadAt(buf, 5); err != nil || !bytes.Equal(buf, data[5:15]) {
		t.Fatalf("File() after Commit: %v", err)
	}
	if !bytes.Equal(info.Pieces, piecesOf(data)) {
		t.Fatal("piece hashes")
	}
}

// Access times and announce times reach the database through the background flusher.
func TestFlusher(t *testing.T) {
	dir := t.TempDir()
	clock := time.Unix(1_800_000_000, 0)
	s, err := Open(dir, Options{FlushInterval: 5 * time.Millisecond, Now: func() time.Time { return clock }})
	if err != nil {
		t.Fatal(err)
	}
	info := mustPut(t, s, []byte("flush me"), digest.SHA256)
	s.MarkAnnounced(&info, clock.Add(time.Minute))
	deadline := time.Now().Add(5 * time.Second)
	for {
		s.mu.RLock()
		pending := len(s.dirty)
		s.mu.RUnlock()
		if pending == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("flusher did not run")
		}
		time.Sleep(5 * time.Millisecond)
	}
	s.abandon() // no final flush: what is on disk came from the flusher
	s = mustOpen(t, dir, Options{})
	defer s.Close()
	got, ok := s.Lookup(&info.Digest)
	if !ok || !got.LastAnnounced.Equal(clock.Add(time.Minute)) {
		t.Fatalf("after restart: %v %v", ok, got.LastAnnounced)
	}
}

// An index that gives SHA-1 and MD5 besides SHA-256 (older archives, the test
// repositories): they are merged into the stored digest after the SHA-256
// check, so the content is found by each, and the DHT key is the SHA-1 one the
// requester derives.
func TestWriterMergesIndexHashes(t *testing.T) {
	s := mustOpen(t, t.TempDir(), Options{})
	defer s.Close()
	data := vectorData()
	d := digestOf(data, digest.MD5, digest.SHA1, digest.SHA256)
	w, err := s.Create(d, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.WriteAt(data, 0); err != nil {
		t.Fatal(err)
	}
	info, err := w.Commit()
	if err != nil {
		t.Fatal(err)
	}
	if !info.Digest.Has(digest.SHA1) || hexOf(info.Digest.SHA1[:]) != vecSHA1 || !info.Digest.Has(digest.MD5) {
		t.Fatalf("index hashes not merged: %v", info.Digest)
	}
	if k, _ := info.Digest.Key(); k != wire.NormKey(d.SHA1[:]) {
		t.Fatalf("DHT key %v, want the SHA-1 key", k)
	}
	for _, h := range [][]byte{d.MD5[:], d.SHA1[:], d.SHA256[:]} {
		if _, ok := s.LookupHash(h); !ok {
			t.Errorf("LookupHash(%x) failed", h)
		}
	}
	// A wrong SHA-256 is still refused, whatever the weaker hashes say.
	bad := d
	bad.SHA256[0] ^= 1
	w2, err := s.Create(bad, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w2.WriteAt(data, 0); err == nil {
		if _, err := w2.Commit(); err == nil {
			t.Fatal("content with the wrong SHA-256 committed")
		}
	}
}
