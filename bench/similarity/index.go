package main

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"
	"github.com/ulikunitz/xz"
)

// Pkg is one paragraph of a Packages index: what this tool needs of a .deb.
type Pkg struct {
	Package  string `json:"package"`
	Version  string `json:"version"`
	Arch     string `json:"arch"`
	Source   string `json:"source"` // the source package's name (no version)
	Filename string `json:"filename"`
	Size     int64  `json:"size"`
	SHA256   string `json:"sha256"`
}

// LocalName is the name `apt-get download` gives the file: an epoch's colon
// becomes %3a, which the pool's name leaves out altogether.
func (p Pkg) LocalName() string {
	return p.Package + "_" + strings.ReplaceAll(p.Version, ":", "%3a") + "_" + p.Arch + ".deb"
}

// Spec is how `apt-get download` names this exact file.
func (p Pkg) Spec() string { return p.Package + ":" + p.Arch + "=" + p.Version }

// ReadPackages parses a Packages index, compressed or not (by extension: .gz,
// .xz, .lz4, .zst), as apt keeps it under /var/lib/apt/lists.
func ReadPackages(path string) ([]Pkg, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var r io.Reader = f
	switch {
	case strings.HasSuffix(path, ".gz"):
		gr, err := gzip.NewReader(f)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		r = gr
	case strings.HasSuffix(path, ".xz"):
		xr, err := xz.NewReader(f)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		r = xr
	case strings.HasSuffix(path, ".lz4"):
		r = lz4.NewReader(f)
	case strings.HasSuffix(path, ".zst"):
		zr, err := zstd.NewReader(f)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		defer zr.Close()
		r = zr
	}
	pkgs, err := parsePackages(r)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return pkgs, nil
}

func parsePackages(r io.Reader) ([]Pkg, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	var out []Pkg
	var p Pkg
	line := 0
	flush := func() error {
		if p.Package == "" {
			p = Pkg{}
			return nil
		}
		if p.Version == "" || p.Arch == "" || p.Filename == "" || p.Size <= 0 || len(p.SHA256) != 64 {
			return fmt.Errorf("paragraph of %s ending at line %d lacks Version, Architecture, Filename, Size or SHA256", p.Package, line)
		}
		if p.Source == "" {
			p.Source = p.Package
		}
		out = append(out, p)
		p = Pkg{}
		return nil
	}
	for sc.Scan() {
		line++
		b := sc.Bytes()
		if len(bytes.TrimSpace(b)) == 0 {
			if err := flush(); err != nil {
				return nil, err
			}
			continue
		}
		if b[0] == ' ' || b[0] == '\t' {
			continue // continuation of a multi-line field
		}
		k, v, ok := bytes.Cut(b, []byte{':'})
		if !ok {
			return nil, fmt.Errorf("line %d: no colon in %q", line, b)
		}
		val := string(bytes.TrimSpace(v))
		switch string(k) {
		case "Package":
			p.Package = val
		case "Version":
			p.Version = val
		case "Architecture":
			p.Arch = val
		case "Source":
			p.Source, _, _ = strings.Cut(val, " ")
		case "Filename":
			p.Filename = val
		case "Size":
			n, err := strconv.ParseInt(val, 10, 64)
			if err != nil {
				return nil, fmt.Errorf("line %d: bad Size %q", line, val)
			}
			p.Size = n
		case "SHA256":
			p.SHA256 = val
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if err := flush(); err != nil {
		return nil, err
	}
	return out, nil
}

// CompareVersions orders two Debian versions as dpkg does: epoch numerically,
// then the upstream version and the revision, each compared as alternating
// non-digit parts (letters before non-letters, '~' before everything, even the
// end) and numeric parts.
func CompareVersions(a, b string) int {
	ea, ua, ra := splitVersion(a)
	eb, ub, rb := splitVersion(b)
	if ea != eb {
		if ea < eb {
			return -1
		}
		return 1
	}
	if c := compareFragment(ua, ub); c != 0 {
		return c
	}
	return compareFragment(ra, rb)
}

func splitVersion(v string) (epoch int, upstream, revision string) {
	if e, rest, ok := strings.Cut(v, ":"); ok {
		epoch, _ = strconv.Atoi(e)
		v = rest
	}
	if i := strings.LastIndexByte(v, '-'); i >= 0 {
		return epoch, v[:i], v[i+1:]
	}
	return epoch, v, ""
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// order is dpkg's weight of a character in a non-digit part.
func order(c byte) int {
	switch {
	case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z':
		return int(c)
	case c == '~':
		return -1
	case c == 0:
		return 0
	}
	return int(c) + 256
}

func compareFragment(a, b string) int {
	for a != "" || b != "" {
		for (a != "" && !isDigit(a[0])) || (b != "" && !isDigit(b[0])) {
			var ca, cb byte
			if a != "" && !isDigit(a[0]) {
				ca = a[0]
			}
			if b != "" && !isDigit(b[0]) {
				cb = b[0]
			}
			if oa, ob := order(ca), order(cb); oa != ob {
				if oa < ob {
					return -1
				}
				return 1
			}
			if ca != 0 {
				a = a[1:]
			}
			if cb != 0 {
				b = b[1:]
			}
		}
		a = strings.TrimLeft(a, "0")
		b = strings.TrimLeft(b, "0")
		na, nb := 0, 0
		for na < len(a) && isDigit(a[na]) {
			na++
		}
		for nb < len(b) && isDigit(b[nb]) {
			nb++
		}
		if na != nb {
			if na < nb {
				return -1
			}
			return 1
		}
		if c := strings.Compare(a[:na], b[:nb]); c != 0 {
			return c
		}
		a, b = a[na:], b[nb:]
	}
	return 0
}
