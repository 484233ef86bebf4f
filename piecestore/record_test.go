package piecestore

import (
	"bytes"
	"context"
	"path/filepath"
	"testing"
	"time"

	"go.etcd.io/bbolt"

	"github.com/apt-p2p/apt-p2p/internal/digest"
)

func testEntry() *entry {
	data := randData(90, 2*PieceSize+1)
	e := &entry{name: "sha256-x", extSize: 7, extMtime: 1234567}
	e.info.Digest = digestOf(data)
	e.info.LastAccess = time.Unix(1_700_000_000, 5)
	e.info.LastAnnounced = time.Unix(1_700_000_100, 0)
	e.info.Paths = []string{"deb.debian.org:80/debian/pool/main/a.deb", "b"}
	e.info.External = "/var/cache/apt/archives/a.deb"
	e.setPieces(piecesOf(data))
	return e
}

func TestRecordRoundTrip(t *testing.T) {
	e := testEntry()
	rec := e.appendRecord(nil)
	got, err := decodeRecord(rec)
	if err != nil {
		t.Fatal(err)
	}
	if got.info.Digest != e.info.Digest || !bytes.Equal(got.info.Pieces, e.info.Pieces) || got.info.PiecesHash != e.info.PiecesHash ||
		!got.info.LastAccess.Equal(e.info.LastAccess) || !got.info.LastAnnounced.Equal(e.info.LastAnnounced) ||
		len(got.info.Paths) != 2 || got.info.Paths[1] != "b" || got.name != e.name || got.info.External != e.info.External ||
		got.extSize != 7 || got.extMtime != 1234567 || !got.info.Complete {
		t.Fatalf("round trip: %+v", got)
	}
	// Every truncation is rejected, never a panic.
	for i := range rec {
		if _, err := decodeRecord(rec[:i]); err == nil {
			t.Fatalf("truncated to %d bytes: accepted", i)
		}
	}
	if _, err := decodeRecord(append(rec, 0)); err == nil {
		t.Fatal("trailing byte accepted")
	}
}

func FuzzDecodeRecord(f *testing.F) {
	f.Add(testEntry().appendRecord(nil))
	f.Add([]byte{recordVersion})
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := decodeRecord(b)
		if err != nil {
			return
		}
		// What decodes re-encodes to the same bytes.
		if again := e.appendRecord(nil); !bytes.Equal(again, b) {
			t.Fatalf("re-encoding differs:\n%x\n%x", b, again)
		}
	})
}

// A piece list damaged in the metadata (the record still decodes) is repaired by Verify.
func TestVerifyRepairsPieces(t *testing.T) {
	dir := t.TempDir()
	s := mustOpen(t, dir, Options{})
	data := randData(92, 2*PieceSize+9)
	info := mustPut(t, s, data, digest.SHA256)
	s.Close()
	db, err := bbolt.Open(filepath.Join(dir, "meta.db"), 0o644, nil)
	if err != nil {
		t.Fatal(err)
	}
	db.Update(func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketFiles)
		rec := bytes.Clone(b.Get(info.Digest.SHA256[:]))
		i := bytes.Index(rec, info.Pieces)
		rec[i+25] ^= 1
		return b.Put(info.Digest.SHA256[:], rec)
	})
	db.Close()
	s = mustOpen(t, dir, Options{})
	defer s.Close()
	if _, ok := s.LookupPieces(info.PiecesHash); ok {
		t.Fatal("damage not visible: the test does not test anything")
	}
	bad, err := s.Verify(context.Background())
	if err != nil || bad != 0 {
		t.Fatalf("Verify: %d %v", bad, err)
	}
	if p, ok := s.LookupPieces(info.PiecesHash); !ok || !bytes.Equal(p, info.Pieces) {
		t.Fatal("piece list not repaired")
	}
	s.Close()
	s = mustOpen(t, dir, Options{})
	defer s.Close()
	if _, ok := s.LookupPieces(info.PiecesHash); !ok {
		t.Fatal("repair not persisted")
	}
}

// A corrupt metadata record is dropped at Open; its data file is then re-adopted by
// rehashing, so the verified content is not lost.
func TestCorruptRecordReadopted(t *testing.T) {
	dir := t.TempDir()
	s := mustOpen(t, dir, Options{})
	data := randData(91, PieceSize+3)
	info := mustPut(t, s, data, digest.SHA256)
	s.Close()
	db, err := bbolt.Open(filepath.Join(dir, "meta.db"), 0o644, nil)
	if err != nil {
		t.Fatal(err)
	}
	db.Update(func(tx *bbolt.Tx) error {
		return tx.Bucket(bucketFiles).Put(info.Digest.SHA256[:], []byte{recordVersion, 1, 2})
	})
	db.Close()
	s = mustOpen(t, dir, Options{})
	defer s.Close()
	got, ok := s.Lookup(&info.Digest)
	if !ok || !bytes.Equal(got.Pieces, info.Pieces) {
		t.Fatalf("not re-adopted: %v", ok)
	}
	if st := s.Stats(); st.Adopted != 1 {
		t.Fatalf("stats %+v", st)
	}
	checkAllVerified(t, s)
}
