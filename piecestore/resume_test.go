package piecestore

import (
	"bytes"
	"crypto/sha1"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/apt-p2p/apt-p2p/internal/digest"
)

// resumeData is a 20 MiB file: 40 pieces.
func resumeData() ([]byte, digest.Set, []byte) {
	data := randData(71, 40*PieceSize)
	var pieces []byte
	for i := 0; i < len(data); i += PieceSize {
		s := sha1.Sum(data[i : i+PieceSize])
		pieces = append(pieces, s[:]...)
	}
	return data, digestOf(data, digest.SHA256), pieces
}

// writeSome writes the first n bytes in 300 000-byte appends and piece 30 out
// of order, then waits for the journal that is due.
func writeSome(t *testing.T, w *Writer, data []byte, n int) {
	t.Helper()
	for off := 0; off < n; off += 300_000 {
		if _, err := w.WriteAt(data[off:min(off+300_000, n)], int64(off)); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.WritePiece(30, data[30*PieceSize:31*PieceSize], nil); err != nil {
		t.Fatal(err)
	}
	w.jwg.Wait()
}

// finish writes what w does not have yet and commits; it returns the bytes it wrote.
func finish(t *testing.T, w *Writer, data []byte) (int64, error) {
	t.Helper()
	var wrote int64
	for i := 0; i < NumPieces(int64(len(data))); i++ {
		if w.HavePiece(i) {
			continue
		}
		if err := w.WritePiece(i, data[i*PieceSize:min((i+1)*PieceSize, len(data))], nil); err != nil {
			return wrote, err
		}
		wrote += PieceSize
	}
	_, err := w.Commit()
	return wrote, err
}

// TestResumeAfterStop (issue 12 item 4): a download stopped with the daemon
// (Suspend) is taken over by the next Create of the same content after a
// restart: only what was missing is written again, piece hashes included.
func TestResumeAfterStop(t *testing.T) {
	data, d, pieces := resumeData()
	dir := t.TempDir()
	s := mustOpen(t, dir, Options{noSync: true})
	w, err := s.Create(d, pieces)
	if err != nil {
		t.Fatal(err)
	}
	writeSome(t, w, data, 12<<20)
	w.Suspend()
	if !errors.Is(w.Err(), ErrSuspended) {
		t.Fatalf("suspended writer: %v", w.Err())
	}
	s.Close()

	s = mustOpen(t, dir, Options{noSync: true})
	defer s.Close()
	w, err = s.Create(d, pieces)
	if err != nil {
		t.Fatal(err)
	}
	if c := w.Contiguous(); c != 12<<20 || !w.HavePiece(30) || w.HavePiece(25) {
		t.Fatalf("resumed with %d contiguous bytes, piece 30 %v, piece 25 %v", c, w.HavePiece(30), w.HavePiece(25))
	}
	wrote, err := finish(t, w, data)
	if err != nil {
		t.Fatal(err)
	}
	if want := int64(40-24-1) * PieceSize; wrote != want {
		t.Errorf("wrote %d bytes after the resume, want %d", wrote, want)
	}
	checkStored(t, s, d, data)
	if names := dirNames(t, filepath.Join(dir, "tmp")); len(names) != 0 {
		t.Errorf("tmp keeps %v after the commit", names)
	}
}

// TestResumeAfterCrash: a process killed mid-download leaves its data file and
// the last journal; the next run resumes from what the journal claims (written
// only after an fsync of those bytes), and a journal is never trusted beyond
// the whole-file hash: a byte that rotted in the resumed part fails it.
func TestResumeAfterCrash(t *testing.T) {
	data, d, _ := resumeData()
	for _, rot := range []bool{false, true} {
		dir := t.TempDir()
		s := mustOpen(t, dir, Options{noSync: true})
		w, err := s.Create(d, nil)
		if err != nil {
			t.Fatal(err)
		}
		writeSome(t, w, data, 12<<20)
		// The process dies: copy what is on disk to a fresh cache directory.
		crashed := t.TempDir()
		for _, name := range dirNames(t, filepath.Join(dir, "tmp")) {
			b, err := os.ReadFile(filepath.Join(dir, "tmp", name))
			if err != nil {
				t.Fatal(err)
			}
			if rot && filepath.Ext(name) == partSuffix {
				b[1<<20] ^= 1
			}
			if err := os.MkdirAll(filepath.Join(crashed, "tmp"), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(crashed, "tmp", name), b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		w.Abort()
		s.Close()

		s2 := mustOpen(t, crashed, Options{noSync: true})
		w2, err := s2.Create(d, nil)
		if err != nil {
			t.Fatal(err)
		}
		if c := w2.Contiguous(); c < journalEvery || c > 12<<20 {
			t.Fatalf("resumed with %d contiguous bytes, want what the journal claimed (%d..%d)", c, journalEvery, 12<<20)
		}
		_, err = finish(t, w2, data)
		switch {
		case rot && !errors.Is(err, ErrMismatch):
			t.Fatalf("a resumed part with a rotten byte: %v, want ErrMismatch", err)
		case !rot && err != nil:
			t.Fatal(err)
		case !rot:
			checkStored(t, s2, d, data)
		}
		s2.Close()
	}
}

// TestNoResumeWithoutJournal: a data file without a valid journal (torn, or
// another content's) is removed at Open, and the download starts over.
func TestNoResumeWithoutJournal(t *testing.T) {
	data, d, _ := resumeData()
	dir := t.TempDir()
	s := mustOpen(t, dir, Options{noSync: true})
	part, journal := s.resumeNames(&d)
	s.Close()
	if err := os.WriteFile(part, data, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(journal, []byte(journalMagic+"garbage"), 0o644); err != nil {
		t.Fatal(err)
	}
	s = mustOpen(t, dir, Options{noSync: true})
	defer s.Close()
	if names := dirNames(t, filepath.Join(dir, "tmp")); len(names) != 0 {
		t.Fatalf("tmp keeps %v", names)
	}
	w, err := s.Create(d, nil)
	if err != nil {
		t.Fatal(err)
	}
	if w.Contiguous() != 0 {
		t.Fatalf("resumed %d bytes without a journal", w.Contiguous())
	}
	if _, err := finish(t, w, data); err != nil {
		t.Fatal(err)
	}
}

func checkStored(t *testing.T, s *Store, d digest.Set, data []byte) {
	t.Helper()
	info, ok := s.Lookup(&d)
	if !ok {
		t.Fatal("not stored")
	}
	r, err := s.OpenFile(&info)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	got := make([]byte, len(data))
	if _, err := r.ReadAt(got, 0); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, data) {
		t.Fatal("stored bytes differ")
	}
}
