package piecestore

import (
	"crypto/sha1"
	"crypto/sha256"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"
)

// envInt reads a size knob for the heavy benchmarks: the smoke run (-benchtime=1x) uses the
// small default, bench/RESULTS.md gives the command with the full size.
func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// BenchmarkHasherPiece is the in-memory cost of one 512 KiB piece through the Hasher
// (SHA-1 piece + SHA-1 and SHA-256 whole-file), against the two stdlib one-shot sums alone.
func BenchmarkHasherPiece(b *testing.B) {
	piece := randData(60, PieceSize)
	b.Run("hasher=sha1piece+sha1+sha256", func(b *testing.B) {
		h := NewHasher(nil, -1)
		b.SetBytes(PieceSize)
		b.ReportAllocs()
		for b.Loop() {
			h.write(piece)
		}
	})
	b.Run("stdlib=sha1.Sum+sha256.Sum256", func(b *testing.B) {
		b.SetBytes(PieceSize)
		b.ReportAllocs()
		for b.Loop() {
			sha1.Sum(piece)
			sha256.Sum256(piece)
		}
	})
}

// hashFileOnePass is what the store does with a file on disk (Verify, OTHER_DIRS, re-adoption):
// read it once and compute SHA-1 per piece, whole-file SHA-1 and SHA-256.
func hashFileOnePass(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	h := NewHasher(nil, -1)
	buf := make([]byte, 1<<20)
	for {
		n, err := f.Read(buf)
		h.write(buf[:n])
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
	}
	h.Finish()
	return nil
}

// BenchmarkHashFileVsCoreutils times, on the same temporary file (PIECESTORE_HASH_MB, default
// 16; RESULTS.md uses 200) and in the same run, the store's one-pass hashing (SHA-1 pieces +
// SHA-1 + SHA-256 whole file) against `sha1sum f` followed by `sha256sum f`, five rounds
// each, interleaved, and reports the medians and their ratio (go/coreutils: lower is better).
func BenchmarkHashFileVsCoreutils(b *testing.B) {
	mb := envInt("PIECESTORE_HASH_MB", 16)
	path := filepath.Join(b.TempDir(), "blob")
	if err := os.WriteFile(path, randData(61, mb<<20), 0o644); err != nil {
		b.Fatal(err)
	}
	for _, tool := range []string{"sha1sum", "sha256sum"} {
		if _, err := exec.LookPath(tool); err != nil {
			b.Fatal(err)
		}
	}
	run := func(f func() error) time.Duration {
		t0 := time.Now()
		if err := f(); err != nil {
			b.Fatal(err)
		}
		return time.Since(t0)
	}
	coreutils := func() error {
		if err := exec.Command("sha1sum", path).Run(); err != nil {
			return err
		}
		return exec.Command("sha256sum", path).Run()
	}
	hashFileOnePass(path) // warm the page cache for both
	b.ResetTimer()
	for b.Loop() {
		var goT, cuT []time.Duration
		for range 5 {
			goT = append(goT, run(func() error { return hashFileOnePass(path) }))
			cuT = append(cuT, run(coreutils))
		}
		slices.Sort(goT)
		slices.Sort(cuT)
		b.ReportMetric(goT[2].Seconds(), "go-s")
		b.ReportMetric(cuT[2].Seconds(), "sha1sum+sha256sum-s")
		b.ReportMetric(goT[2].Seconds()/cuT[2].Seconds(), "ratio")
		b.ReportMetric(float64(mb<<20)/1e6/goT[2].Seconds(), "go-MB/s")
	}
}
