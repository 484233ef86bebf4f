package main

import (
	"bytes"
	"errors"
	"fmt"
)

// xzStoredBytes walks the LZMA2 chunks of the blocks of an .xz stream and returns
// how many of its bytes are payload of uncompressed chunks: data that LZMA2
// stores as it is because compressing it would not make it smaller (content that
// is already compressed: .gz, .png, .jar). Those bytes appear verbatim in the
// .deb, so a block matcher can find them at any offset; the bytes of LZMA
// chunks depend on everything before them in the block.
//
// Formats: the .xz file format 1.0.4 (stream header, blocks, index) and LZMA2's
// chunk headers (control byte 0x00 end, 0x01/0x02 uncompressed with a 16-bit
// size, 0x80-0xFF LZMA with unpacked and packed sizes and, from 0xC0, a
// properties byte). Only the first stream is walked.
func xzStoredBytes(b []byte) (int64, error) {
	if len(b) < 12 || !bytes.HasPrefix(b, []byte{0xfd, '7', 'z', 'X', 'Z', 0}) {
		return 0, errors.New("similarity: not an xz stream")
	}
	checkSize := map[byte]int{0: 0, 1: 4, 4: 8, 10: 32}[b[7]&0x0f]
	off := 12
	var stored int64
	for {
		if off >= len(b) {
			return 0, errors.New("similarity: xz stream ends inside its blocks")
		}
		if b[off] == 0 { // the index follows the last block
			return stored, nil
		}
		hdr := (int(b[off]) + 1) * 4
		start := off + hdr
		p := start
		for {
			if p >= len(b) {
				return 0, fmt.Errorf("similarity: LZMA2 chunk header past the end at %d", p)
			}
			c := b[p]
			var size int
			switch {
			case c == 0:
				p++
			case c == 1 || c == 2:
				if p+3 > len(b) {
					return 0, errors.New("similarity: truncated LZMA2 chunk header")
				}
				size = int(b[p+1])<<8 | int(b[p+2]) + 1
				stored += int64(size)
				p += 3 + size
			case c >= 0x80:
				h := 5
				if c >= 0xc0 {
					h = 6
				}
				if p+h > len(b) {
					return 0, errors.New("similarity: truncated LZMA2 chunk header")
				}
				size = int(b[p+3])<<8 | int(b[p+4]) + 1
				p += h + size
			default:
				return 0, fmt.Errorf("similarity: bad LZMA2 control byte %#x at %d", c, p)
			}
			if c == 0 {
				break
			}
		}
		// Block padding to a multiple of four, then the check.
		p += (4 - (p-start)%4) % 4
		off = p + checkSize
	}
}
