package aptindex

import (
	"bufio"
	"bytes"
	"compress/bzip2"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"
	"github.com/ulikunitz/xz"
)

// ErrCompression is returned when a file's name promises a compression its
// content does not have (a truncated or mislabelled download).
var ErrCompression = errors.New("aptindex: compressed index without a known compression header")

type compression uint8

const (
	compNone compression = iota
	compGzip
	compXZ
	compBzip2
	compZstd
	compLZ4
)

var compNames = [...]string{"plain", "gzip", "xz", "bzip2", "zstd", "lz4"}

func (c compression) String() string { return compNames[c] }

// byExt is the compression a file name's extension promises.
func byExt(name string) compression {
	i := strings.LastIndexByte(name, '.')
	if i < 0 || strings.ContainsRune(name[i:], '/') {
		return compNone
	}
	switch strings.ToLower(name[i:]) {
	case ".gz":
		return compGzip
	case ".xz":
		return compXZ
	case ".bz2":
		return compBzip2
	case ".zst":
		return compZstd
	case ".lz4":
		return compLZ4
	}
	return compNone
}

// byMagic is the compression the first bytes show.
func byMagic(b []byte) compression {
	switch {
	case bytes.HasPrefix(b, []byte{0x1f, 0x8b}):
		return compGzip
	case bytes.HasPrefix(b, []byte{0xfd, '7', 'z', 'X', 'Z', 0}):
		return compXZ
	case bytes.HasPrefix(b, []byte("BZh")):
		return compBzip2
	case bytes.HasPrefix(b, []byte{0x28, 0xb5, 0x2f, 0xfd}):
		return compZstd
	case bytes.HasPrefix(b, []byte{0x04, 0x22, 0x4d, 0x18}): // lz4 frame, what apt writes in its lists dir
		return compLZ4
	}
	return compNone
}

var xzPathOnce = sync.OnceValue(func() string {
	p, err := exec.LookPath("xz")
	if err != nil {
		return ""
	}
	return p
})

// decompressor wraps r according to its magic bytes, checked against the
// compression the name promises. The magic decides (by-hash names have no
// extension); a compressed name over uncompressed data is an error.
// xzCmd, when not empty, is an xz(1) binary to decode xz with: liblzma decodes
// about twice as fast as ulikunitz/xz (bench/RESULTS.md, index), which is the
// fallback.
// The returned function releases the decoder; abort says the caller stopped
// reading before the end.
func decompressor(name string, r io.Reader, xzCmd string) (io.Reader, func(abort bool) error, error) {
	// A file (Rebuild, the node's cache) goes to xz(1) as its stdin
	// directly, without a copying goroutine and pipe; its magic is read
	// with ReadAt so that the offset does not move.
	if f, ok := r.(*os.File); ok && xzCmd != "" {
		if pos, err := f.Seek(0, io.SeekCurrent); err == nil {
			var magic [6]byte
			if n, _ := f.ReadAt(magic[:], pos); byMagic(magic[:n]) == compXZ {
				return xzCommand(xzCmd, f)
			}
		}
	}
	br := bufio.NewReaderSize(r, 64<<10)
	magic, _ := br.Peek(6)
	c := byMagic(magic)
	if c == compNone && byExt(name) != compNone {
		return nil, nil, fmt.Errorf("%w: %s has no %v header", ErrCompression, name, byExt(name))
	}
	nop := func(bool) error { return nil }
	// In-process decoders run ahead of the parser in their own goroutine.
	ahead := func(zr io.Reader, release func() error) (io.Reader, func(bool) error, error) {
		a := newAheadReader(zr)
		return a, func(bool) error {
			a.Close()
			if release != nil {
				return release()
			}
			return nil
		}, nil
	}
	switch c {
	case compGzip:
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, nil, fmt.Errorf("aptindex: %s: %w", name, err)
		}
		return ahead(zr, zr.Close)
	case compXZ:
		if xzCmd != "" {
			return xzCommand(xzCmd, br)
		}
		zr, err := xz.NewReader(br)
		if err != nil {
			return nil, nil, fmt.Errorf("aptindex: %s: %w", name, err)
		}
		return ahead(zr, nil)
	case compBzip2:
		return ahead(bzip2.NewReader(br), nil)
	case compZstd:
		zr, err := zstd.NewReader(br, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxWindow(128<<20))
		if err != nil {
			return nil, nil, fmt.Errorf("aptindex: %s: %w", name, err)
		}
		return ahead(zr, func() error { zr.Close(); return nil })
	case compLZ4:
		return ahead(lz4.NewReader(br), nil)
	}
	return br, nop, nil
}

// xzCommand decodes through an xz(1) child process. The returned close
// function reaps it and reports a decoding failure.
func xzCommand(path string, r io.Reader) (io.Reader, func(abort bool) error, error) {
	cmd := exec.Command(path, "--decompress", "--stdout", "--quiet", "--threads=1")
	cmd.Stdin = r
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, nil, fmt.Errorf("aptindex: starting xz: %w", err)
	}
	done := func(abort bool) error {
		if abort {
			// The parser stopped early: xz would block on a full pipe.
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
			return nil
		}
		if err := cmd.Wait(); err != nil {
			return fmt.Errorf("aptindex: xz: %w: %s", err, bytes.TrimSpace(stderr.Bytes()))
		}
		return nil
	}
	return out, done, nil
}

// Decompress opens an index file for reading as Add does: the compression
// its magic bytes say (checked against name's extension), xz through xz(1)
// when it is installed. close releases the decoder; abort says the caller
// stopped before the end. For readers of index fields Add does not keep
// (package names, priorities, sections: a volunteer's selection).
func Decompress(name string, r io.Reader) (rd io.Reader, close func(abort bool) error, err error) {
	return decompressor(name, r, xzPathOnce())
}
