//go:build !race

package piecestore

import (
	"testing"

	"github.com/apt-p2p/apt-p2p/internal/digest"
)

func TestLookupAllocs(t *testing.T) {
	s := mustOpen(t, t.TempDir(), Options{})
	defer s.Close()
	info := mustPut(t, s, randData(50, 3*PieceSize), digest.SHA256, digest.MD5)
	q := digestOf(randData(50, 3*PieceSize), digest.SHA256)
	var ok bool
	for name, f := range map[string]func(){
		"Lookup":       func() { _, ok = s.Lookup(&q) },
		"LookupHash":   func() { _, ok = s.LookupHash(info.Digest.MD5[:]) },
		"LookupPieces": func() { _, ok = s.LookupPieces(info.PiecesHash) },
	} {
		if n := testing.AllocsPerRun(100, f); n != 0 || !ok {
			t.Errorf("%s: %v allocs, found %v", name, n, ok)
		}
	}
}

// Writing and hashing a piece, in order or out of order, allocates nothing.
func TestWriteAllocs(t *testing.T) {
	s := mustOpen(t, t.TempDir(), Options{})
	defer s.Close()
	const n = 50
	data := randData(51, n*PieceSize)
	w, err := s.Create(digestOf(data, digest.SHA256), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Abort()
	// The resume journal (every 8 MiB written, on a goroutine of its own:
	// an fsync, a small file and a rename) allocates a few dozen objects
	// per 16 pieces; it is not the per-piece path measured here, and
	// whether it lands inside a measured run is timing.
	w.mu.Lock()
	w.journal = ""
	w.mu.Unlock()
	i := 0
	if a := testing.AllocsPerRun(20, func() {
		if _, err := w.WriteAt(data[i*PieceSize:(i+1)*PieceSize], int64(i)*PieceSize); err != nil {
			t.Fatal(err)
		}
		i++
	}); a != 0 {
		t.Errorf("sequential WriteAt: %v allocs per piece", a)
	}
	// Pieces beyond a gap, then the gap: the prefix runs over them (read-back buffer is reused).
	j := n - 1
	if a := testing.AllocsPerRun(20, func() {
		if err := w.WritePiece(j, data[j*PieceSize:(j+1)*PieceSize], nil); err != nil {
			t.Fatal(err)
		}
		j--
	}); a != 0 {
		t.Errorf("out-of-order WritePiece: %v allocs per piece", a)
	}
	// AllocsPerRun ran each function 21 times: pieces 0..20 and 29..49 are written.
	if i != 21 || j != 28 {
		t.Fatalf("i=%d j=%d", i, j)
	}
	if a := testing.AllocsPerRun(1, func() {
		for ; i <= j; i++ {
			w.WriteAt(data[i*PieceSize:(i+1)*PieceSize], int64(i)*PieceSize)
		}
	}); a != 0 {
		t.Errorf("catching up over 29 pieces: %v allocs", a)
	}
	if w.Contiguous() != int64(len(data)) || w.Available() != int64(len(data)) {
		t.Fatalf("contiguous %d", w.Contiguous())
	}
}
