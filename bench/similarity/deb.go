package main

import (
	"bytes"
	"compress/bzip2"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"strconv"
	"strings"

	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"
	"github.com/ulikunitz/xz/lzma"
)

// arMember is one member of an ar archive; Data aliases the archive's bytes.
type arMember struct {
	Name string
	Data []byte
}

var errNotDeb = errors.New("similarity: not an ar archive (a .deb starts with !<arch>)")

// readAr splits a .deb (a common-format ar archive: a magic line, then per member
// a 60-byte header and its data padded to an even length).
func readAr(b []byte) ([]arMember, error) {
	const magic = "!<arch>\n"
	if !bytes.HasPrefix(b, []byte(magic)) {
		return nil, errNotDeb
	}
	var out []arMember
	off := len(magic)
	for off < len(b) {
		if len(b)-off < 60 {
			return nil, fmt.Errorf("similarity: truncated ar header at %d", off)
		}
		h := b[off : off+60]
		if h[58] != '`' || h[59] != '\n' {
			return nil, fmt.Errorf("similarity: bad ar header at %d", off)
		}
		size, err := strconv.ParseInt(strings.TrimSpace(string(h[48:58])), 10, 64)
		if err != nil || size < 0 || size > int64(len(b)-off-60) {
			return nil, fmt.Errorf("similarity: bad ar member size %q at %d", h[48:58], off)
		}
		name := strings.TrimSuffix(strings.TrimSpace(string(h[0:16])), "/")
		off += 60
		out = append(out, arMember{Name: name, Data: b[off : off+int(size)]})
		off += int(size) + int(size&1)
	}
	return out, nil
}

// errTooLarge marks a data.tar over the limit the caller set.
var errTooLarge = errors.New("similarity: data.tar over the size limit")

// dataMember returns the data.tar.* member of a .deb, as it is (compressed).
func dataMember(deb []byte) (arMember, error) {
	members, err := readAr(deb)
	if err != nil {
		return arMember{}, err
	}
	for _, m := range members {
		if strings.HasPrefix(m.Name, "data.tar") {
			return m, nil
		}
	}
	return arMember{}, errors.New("similarity: no data.tar member in the .deb")
}

// DataTar returns the uncompressed data.tar of a .deb, at most limit bytes
// (errTooLarge beyond), and the name of the member it came from.
func DataTar(deb []byte, limit int64) ([]byte, string, error) {
	m, err := dataMember(deb)
	if err != nil {
		return nil, "", err
	}
	out, err := decompress(m.Name, m.Data, limit)
	return out, m.Name, err
}

// commonPrefix is the length of the longest common prefix of a and b.
func commonPrefix(a, b []byte) int64 {
	n := min(len(a), len(b))
	const chunk = 4096
	i := 0
	for i+chunk <= n && bytes.Equal(a[i:i+chunk], b[i:i+chunk]) {
		i += chunk
	}
	for i < n && a[i] == b[i] {
		i++
	}
	return int64(i)
}

func decompress(name string, data []byte, limit int64) ([]byte, error) {
	var r io.Reader
	switch {
	case name == "data.tar":
		r = bytes.NewReader(data)
	case strings.HasSuffix(name, ".xz"), strings.HasSuffix(name, ".lzma"):
		// xz(1) decodes about twice as fast as ulikunitz/xz (see internal/aptindex).
		if path, err := exec.LookPath("xz"); err == nil {
			return runDecoder(path, data, limit)
		}
		var err error
		if strings.HasSuffix(name, ".lzma") {
			r, err = lzma.NewReader(bytes.NewReader(data))
		} else {
			r, err = xz.NewReader(bytes.NewReader(data))
		}
		if err != nil {
			return nil, err
		}
	case strings.HasSuffix(name, ".zst"):
		zr, err := zstd.NewReader(bytes.NewReader(data), zstd.WithDecoderConcurrency(1))
		if err != nil {
			return nil, err
		}
		defer zr.Close()
		r = zr
	case strings.HasSuffix(name, ".gz"):
		gr, err := gzip.NewReader(bytes.NewReader(data))
		if err != nil {
			return nil, err
		}
		r = gr
	case strings.HasSuffix(name, ".bz2"):
		r = bzip2.NewReader(bytes.NewReader(data))
	default:
		return nil, fmt.Errorf("similarity: unknown compression of %s", name)
	}
	return readLimited(r, limit)
}

func readLimited(r io.Reader, limit int64) ([]byte, error) {
	out, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(out)) > limit {
		return nil, errTooLarge
	}
	return out, nil
}

// runDecoder pipes data through `path -dc` (xz handles .xz and .lzma alike).
func runDecoder(path string, data []byte, limit int64) ([]byte, error) {
	cmd := exec.Command(path, "-dc")
	cmd.Stdin = bytes.NewReader(data)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	out, rerr := readLimited(stdout, limit)
	if rerr != nil {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		return nil, rerr
	}
	if err := cmd.Wait(); err != nil {
		return nil, fmt.Errorf("similarity: %s -dc: %v: %s", path, err, strings.TrimSpace(stderr.String()))
	}
	return out, nil
}
