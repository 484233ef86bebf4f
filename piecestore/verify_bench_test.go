package piecestore

import (
	"crypto/sha256"
	"fmt"
	"io"
	"testing"

	"github.com/apt-p2p/apt-p2p/internal/digest"
)

// BenchmarkFirstServe is the latency the lazy verification adds before a file's first byte goes
// out after a start: OpenFile of a file not verified since Open (its SHA-256 recomputed first)
// against OpenFile of a verified one (a cached descriptor). Page cache warm. The alternative
// design, streaming while hashing and cutting the response before its end on a mismatch, would
// add nothing before the first byte but hold back the end until the hash is done; its extra
// time to the last byte is the hashing itself when hashing is slower than the link (sha256
// below), nothing otherwise.
//
//	go test -run '^$' -bench FirstServe -benchtime 20x -count 5 ./piecestore
func BenchmarkFirstServe(b *testing.B) {
	for _, size := range []int{50 << 10, 10 << 20, 100 << 20} {
		data := randData(uint64(size), size)
		s := mustOpen(b, b.TempDir(), Options{noSync: true})
		info := mustPut(b, s, data, digest.SHA256)
		e := s.bySHA256[info.Digest.SHA256]
		first := make([]byte, 1)
		open := func(b *testing.B) {
			r, err := s.OpenFile(&info)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := r.ReadAt(first, 0); err != nil {
				b.Fatal(err)
			}
			r.Close()
		}
		b.Run(fmt.Sprintf("%dKiB/unverified", size>>10), func(b *testing.B) {
			b.SetBytes(int64(size))
			for b.Loop() {
				s.mu.Lock()
				s.forgetFileLocked(e)
				e.vid = fileID{}
				s.mu.Unlock()
				s.closePending()
				open(b)
			}
		})
		b.Run(fmt.Sprintf("%dKiB/verified", size>>10), func(b *testing.B) {
			open(b)
			for b.Loop() {
				open(b)
			}
		})
		b.Run(fmt.Sprintf("%dKiB/sha256", size>>10), func(b *testing.B) {
			b.SetBytes(int64(size))
			for b.Loop() {
				h := sha256.New()
				_, _ = io.Copy(h, io.NewSectionReader(s.bySHA256[info.Digest.SHA256].of.f, 0, int64(size)))
			}
		})
		s.Close()
	}
}
