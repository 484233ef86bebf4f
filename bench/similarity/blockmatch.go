package main

import (
	"bytes"
	"math/bits"
	"slices"
)

// rollsum is rsync's weak checksum over a window of n bytes: a is the sum of the
// bytes, b the sum of the bytes weighted by their distance from the window's end,
// both kept mod 2^32 here and reduced to 16 bits each by digest (2^16 divides 2^32,
// so rolling in wider arithmetic gives the same digest as rsync's mod 2^16).
type rollsum struct {
	a, b uint32
	n    uint32
}

func newRollsum(window []byte) rollsum {
	r := rollsum{n: uint32(len(window))}
	for i, c := range window {
		r.a += uint32(c)
		r.b += uint32(len(window)-i) * uint32(c)
	}
	return r
}

// roll moves the window one byte on: out leaves at the front, in enters at the end.
func (r *rollsum) roll(out, in byte) {
	r.a += uint32(in) - uint32(out)
	r.b += r.a - r.n*uint32(out)
}

func (r rollsum) digest() uint32 { return r.a&0xffff | r.b<<16 }

// BlockMatch is what a zsync-style client learns for one target file and block size:
// which blocks of the target (the file it wants) it can copy from a basis file (the
// file it already has) instead of fetching them.
type BlockMatch struct {
	BlockSize    int   `json:"bs"`
	Blocks       int   `json:"blocks"`        // blocks in the target, the last one possibly short
	Matched      int   `json:"matched"`       // blocks found somewhere in the basis
	MatchedBytes int64 `json:"matched_bytes"` // target bytes those blocks cover (a short tail counts its real length)
	Ranges       int   `json:"ranges"`        // runs of consecutive missing blocks: the byte ranges left to fetch
}

// Fetched is the number of bytes the client still transfers: the missing blocks
// plus sumBytes of checksums for every block of the target, which it must fetch
// before it knows what it has.
func (m BlockMatch) Fetched(size int64, sumBytes int) int64 {
	return size - m.MatchedBytes + int64(m.Blocks)*int64(sumBytes)
}

// Saving is the fraction of a whole-file fetch that block reuse saves (negative
// when the checksums cost more than the blocks found).
func (m BlockMatch) Saving(size int64, sumBytes int) float64 {
	if size == 0 {
		return 0
	}
	return float64(size-m.Fetched(size, sumBytes)) / float64(size)
}

// MatchBlocks finds which blocks of target occur anywhere in basis, at any byte
// offset, the way zsync does: the target is cut into blocks of bs bytes (the last
// one padded with zeros), and a window of bs bytes rolls over the basis (also
// followed by zeros, so a target's short tail matches a basis's tail). A window
// whose weak checksum equals a wanted block's is compared byte for byte, which is
// what a client's strong checksum stands for; so the result has no false matches.
//
// Every offset is tried (zsync skips ahead after a match), so this is the most a
// zsync-style client could reuse. Blocks repeated within the target count as
// matched only if the basis has them.
func MatchBlocks(target, basis []byte, bs int) BlockMatch {
	m := BlockMatch{BlockSize: bs}
	if bs <= 0 || len(target) == 0 {
		return m
	}
	nb := (len(target) + bs - 1) / bs
	m.Blocks = nb
	tail := make([]byte, bs)
	copy(tail, target[(nb-1)*bs:])
	block := func(i int) []byte {
		if i == nb-1 {
			return tail
		}
		return target[i*bs : (i+1)*bs]
	}

	type wanted struct {
		weak  uint32
		block int32
	}
	want := make([]wanted, nb)
	for i := range nb {
		want[i] = wanted{newRollsum(block(i)).digest(), int32(i)}
	}
	slices.SortFunc(want, func(x, y wanted) int {
		if x.weak != y.weak {
			if x.weak < y.weak {
				return -1
			}
			return 1
		}
		return int(x.block - y.block)
	})
	// A filter in front of the sorted table: per bucket, how many blocks are still
	// unmatched. With 16 to 32 buckets a block, most windows land on an empty one;
	// a run of repeated bytes (zeros) stops costing lookups once its block is matched.
	shift := 32 - min(30, max(12, bits.Len(uint(nb))+4))
	bucket := func(weak uint32) uint32 { return (weak * 0x9e3779b1) >> shift }
	open := make([]int32, 1<<(32-shift))
	for _, w := range want {
		open[bucket(w.weak)]++
	}
	matched := make([]bool, nb)

	// Windows wholly inside the basis roll over it in place; the last bs-1 start
	// offsets roll over a copy of its tail followed by zeros.
	scan := func(buf []byte, from, to int) {
		if from >= to {
			return
		}
		r := newRollsum(buf[from : from+bs])
		for p := from; p < to; p++ {
			if p > from {
				r.roll(buf[p-1], buf[p+bs-1])
			}
			weak := r.digest()
			bk := bucket(weak)
			if open[bk] == 0 {
				continue
			}
			i, _ := slices.BinarySearchFunc(want, weak, func(w wanted, t uint32) int {
				switch {
				case w.weak < t:
					return -1
				case w.weak > t:
					return 1
				}
				return 0
			})
			window := buf[p : p+bs]
			for ; i < len(want) && want[i].weak == weak; i++ {
				b := want[i].block
				if matched[b] || !bytes.Equal(block(int(b)), window) {
					continue
				}
				matched[b] = true
				open[bk]--
			}
		}
	}
	start := max(0, len(basis)-bs)
	ext := make([]byte, len(basis)-start+bs)
	copy(ext, basis[start:])
	if len(basis) >= bs {
		scan(basis, 0, start+1)
		scan(ext, 1, len(basis)-start)
	} else {
		scan(ext, 0, len(basis))
	}

	inGap := false
	for i, ok := range matched {
		if ok {
			m.Matched++
			m.MatchedBytes += int64(min(bs, len(target)-i*bs))
			inGap = false
			continue
		}
		if !inGap {
			m.Ranges++
			inGap = true
		}
	}
	return m
}
