package main

import (
	"bytes"
	"math/rand/v2"
	"testing"
)

func randomBytes(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, 1))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// The rolled checksum must equal the one computed afresh at every offset, or
// MatchBlocks would miss blocks without any test of matching noticing why.
func TestRollsumRollsLikeFresh(t *testing.T) {
	data := randomBytes(1, 5000)
	// Long runs of 0xff stress the wrap-around of a and b.
	for i := 1000; i < 3000; i++ {
		data[i] = 0xff
	}
	for _, n := range []int{1, 2, 7, 512, 1024} {
		r := newRollsum(data[:n])
		for p := 0; p+n <= len(data); p++ {
			if p > 0 {
				r.roll(data[p-1], data[p+n-1])
			}
			if got, want := r.digest(), newRollsum(data[p:p+n]).digest(); got != want {
				t.Fatalf("window %d at %d: rolled %08x, fresh %08x", n, p, got, want)
			}
		}
	}
}

// rsync's definition: a = Σx mod 2^16, b = Σ (n-i)·x_i mod 2^16, digest a | b<<16.
func TestRollsumDefinition(t *testing.T) {
	w := []byte{1, 2, 3, 250}
	a := uint32(1 + 2 + 3 + 250)
	b := uint32(4*1 + 3*2 + 2*3 + 1*250)
	if got, want := newRollsum(w).digest(), a|b<<16; got != want {
		t.Fatalf("digest %08x, want %08x", got, want)
	}
}

var blockSizes = []int{1, 3, 512, 1000, 4096, 65536}

func TestMatchIdenticalReusesEverything(t *testing.T) {
	for _, n := range []int{1, 511, 512, 513, 100_000, 300_001} {
		data := randomBytes(uint64(n), n)
		for _, bs := range blockSizes {
			if bs > 1000 && n > 100_000 && bs != 65536 {
				continue
			}
			m := MatchBlocks(data, bytes.Clone(data), bs)
			if m.Matched != m.Blocks || m.MatchedBytes != int64(n) || m.Ranges != 0 {
				t.Fatalf("n=%d bs=%d: %+v, want all %d blocks and %d bytes", n, bs, m, (n+bs-1)/bs, n)
			}
		}
	}
}

func TestMatchRandomReusesNothing(t *testing.T) {
	target := randomBytes(10, 400_000)
	basis := randomBytes(11, 400_000)
	for _, bs := range []int{64, 512, 4096, 65536} {
		m := MatchBlocks(target, basis, bs)
		if m.Matched != 0 || m.MatchedBytes != 0 || m.Ranges != 1 {
			t.Fatalf("bs=%d: %+v, want nothing matched and one range", bs, m)
		}
		if s := m.Saving(int64(len(target)), 20); s >= 0 {
			t.Fatalf("bs=%d: saving %.4f with nothing matched, want the (negative) checksum cost", bs, s)
		}
	}
}

// One byte inserted into the file a client has: every block before it matches in
// place, every block after it one byte further on, and only the block holding
// the new byte must be fetched.
func TestMatchInsertedByteCostsOneBlock(t *testing.T) {
	basis := randomBytes(20, 250_000)
	for _, bs := range []int{512, 1000, 4096, 8192} {
		for _, at := range []int{0, 1, bs - 1, bs, 3*bs + 17, len(basis) / 2, len(basis) - 1, len(basis)} {
			target := make([]byte, 0, len(basis)+1)
			target = append(target, basis[:at]...)
			target = append(target, 0x5a)
			target = append(target, basis[at:]...)
			m := MatchBlocks(target, basis, bs)
			if m.Matched != m.Blocks-1 || m.Ranges != 1 {
				t.Fatalf("bs=%d insert at %d: %+v, want all but one of %d blocks", bs, at, m, m.Blocks)
			}
			missing := int64(len(target)) - m.MatchedBytes
			if missing <= 0 || missing > int64(bs) {
				t.Fatalf("bs=%d insert at %d: %d bytes to fetch, want 1..%d", bs, at, missing, bs)
			}
		}
	}
}

func TestMatchDeletedByte(t *testing.T) {
	basis := randomBytes(21, 100_000)
	bs := 1024
	target := append(bytes.Clone(basis[:50_000]), basis[50_001:]...)
	m := MatchBlocks(target, basis, bs)
	if m.Matched != m.Blocks-1 {
		t.Fatalf("%+v, want all but one of %d blocks", m, m.Blocks)
	}
}

// Blocks moved to unaligned places are still found; half the target new costs
// exactly its blocks.
func TestMatchMovedAndNewBlocks(t *testing.T) {
	bs := 512
	basis := randomBytes(30, 64*bs+100)
	fresh := randomBytes(31, 8*bs)
	var target []byte
	// Eight old blocks taken at odd offsets, in reverse order, then eight new ones.
	for i := 7; i >= 0; i-- {
		off := 37 + i*3*bs
		target = append(target, basis[off:off+bs]...)
	}
	target = append(target, fresh...)
	m := MatchBlocks(target, basis, bs)
	if m.Blocks != 16 || m.Matched != 8 || m.MatchedBytes != int64(8*bs) || m.Ranges != 1 {
		t.Fatalf("%+v, want 8 of 16 blocks and one missing range", m)
	}
	if got, want := m.Fetched(int64(len(target)), 20), int64(8*bs+16*20); got != want {
		t.Fatalf("fetched %d, want %d", got, want)
	}
}

// Repeated content in the target (a run of zeros) is matched everywhere once
// the basis has it, and does not make the scan quadratic.
func TestMatchRepeatedBlocks(t *testing.T) {
	bs := 512
	target := make([]byte, 200*bs)
	copy(target[100*bs:], randomBytes(40, bs))
	basis := make([]byte, 1<<20) // a megabyte of zeros
	m := MatchBlocks(target, basis, bs)
	if m.Matched != 199 || m.Ranges != 1 {
		t.Fatalf("%+v, want the 199 zero blocks matched", m)
	}
}

func TestMatchEdges(t *testing.T) {
	if m := MatchBlocks(nil, []byte("abc"), 512); m.Blocks != 0 || m.Matched != 0 {
		t.Fatalf("empty target: %+v", m)
	}
	if m := MatchBlocks([]byte("abc"), nil, 512); m.Blocks != 1 || m.Matched != 0 || m.Ranges != 1 {
		t.Fatalf("empty basis: %+v", m)
	}
	// A short target matches the end of a longer basis (both padded with zeros).
	basis := randomBytes(50, 5000)
	if m := MatchBlocks(basis[4900:], basis, 512); m.Matched != 1 {
		t.Fatalf("short tail: %+v", m)
	}
	// but not its middle, where zeros do not follow.
	if m := MatchBlocks(basis[2000:2100], basis, 512); m.Matched != 0 {
		t.Fatalf("short middle: %+v", m)
	}
}

func TestSaving(t *testing.T) {
	m := BlockMatch{BlockSize: 1000, Blocks: 10, Matched: 5, MatchedBytes: 5000}
	if got := m.Saving(10_000, 20); got != (10_000-5000-200)/10_000.0 {
		t.Fatalf("saving %v", got)
	}
	if got := (BlockMatch{}).Saving(0, 20); got != 0 {
		t.Fatalf("empty file saving %v", got)
	}
}

func BenchmarkMatchBlocks(b *testing.B) {
	basis := randomBytes(60, 8<<20)
	target := append(bytes.Clone(basis[:4<<20]), randomBytes(61, 4<<20)...)
	for _, bs := range []int{512, 65536} {
		b.Run(formatSize(int64(bs)), func(b *testing.B) {
			b.SetBytes(int64(len(basis)))
			for b.Loop() {
				MatchBlocks(target, basis, bs)
			}
		})
	}
}
