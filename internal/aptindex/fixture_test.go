package aptindex

import (
	"bytes"
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/apt-p2p/apt-p2p/internal/digest"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"
	"github.com/ulikunitz/xz"
)

// compressWith compresses plain with the libraries; bzip2 (the standard
// library has no writer) comes from testdata, made with bzip2(1) -9.
func compressWith(t testing.TB, c compression, plain []byte, bz2File string) []byte {
	t.Helper()
	var buf bytes.Buffer
	switch c {
	case compNone:
		return plain
	case compGzip:
		w := gzip.NewWriter(&buf)
		w.Write(plain)
		must(t, w.Close())
	case compXZ:
		w, err := xz.NewWriter(&buf)
		must(t, err)
		w.Write(plain)
		must(t, w.Close())
	case compZstd:
		w, err := zstd.NewWriter(&buf)
		must(t, err)
		w.Write(plain)
		must(t, w.Close())
	case compLZ4:
		w := lz4.NewWriter(&buf)
		w.Write(plain)
		must(t, w.Close())
	case compBzip2:
		b, err := os.ReadFile(filepath.Join("testdata", bz2File))
		must(t, err)
		return b
	}
	return buf.Bytes()
}

var extOf = [...]string{"", ".gz", ".xz", ".bz2", ".zst", ".lz4"}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func readTestdata(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	must(t, err)
	return b
}

// hashes of content, as a Release or a cache would compute them.
func setOf(b []byte) digest.Set {
	s := digest.Set{Size: int64(len(b))}
	m, s1, s2, s5 := md5.Sum(b), sha1.Sum(b), sha256.Sum256(b), sha512.Sum512(b)
	s.Put(digest.MD5, m[:])
	s.Put(digest.SHA1, s1[:])
	s.Put(digest.SHA256, s2[:])
	s.Put(digest.SHA512, s5[:])
	return s
}

// suite is a generated dists/<suite> tree: every file a Release lists, by
// path relative to the Release's directory.
type suite struct {
	dir   string // "/dists/bookworm"
	files map[string][]byte
}

func newSuite(t testing.TB, dir string, packages, sources []byte) *suite {
	s := &suite{dir: dir, files: map[string][]byte{}}
	for c := compNone; c <= compLZ4; c++ {
		s.files["main/binary-amd64/Packages"+extOf[c]] = compressWith(t, c, packages, "Packages.bz2")
		s.files["main/source/Sources"+extOf[c]] = compressWith(t, c, sources, "Sources.bz2")
	}
	s.files["main/binary-amd64/Release"] = []byte("Archive: bookworm\nComponent: main\nArchitecture: amd64\n")
	s.files["main/i18n/Translation-en.bz2"] = []byte("BZh9 not really a Translation")
	s.files["main/i18n/Index"] = []byte("SHA1:\n")
	s.files["main/Contents-amd64.gz"] = compressWith(t, compGzip, []byte("usr/bin/hello  devel/hello\n"), "")
	s.files["main/Contents-udeb-amd64.gz"] = compressWith(t, compGzip, nil, "")
	s.files["main/Contents-udeb-arm64.gz"] = s.files["main/Contents-udeb-amd64.gz"]
	s.files["main/dep11/Components-amd64.yml.gz"] = compressWith(t, compGzip, []byte("File: DEP-11\n"), "")
	s.files["main/dep11/icons-64x64.tar.gz"] = compressWith(t, compGzip, []byte("icons"), "")
	return s
}

// release writes a Release listing every file of the suite in the given
// hash sections.
func (s *suite) release(byHash bool, sections ...digest.Type) []byte {
	names := make([]string, 0, len(s.files))
	for n := range s.files {
		names = append(names, n)
	}
	sort.Strings(names)
	var b strings.Builder
	b.WriteString("Origin: Debian\nLabel: Debian\nSuite: stable\nCodename: bookworm\n" +
		"Date: Sat, 10 Jun 2023 08:54:48 UTC\n")
	if byHash {
		b.WriteString("Acquire-By-Hash: yes\n")
	}
	b.WriteString("Architectures: amd64\nComponents: main\nDescription: Debian 12.0 Released 10 June 2023\n")
	for _, t := range sections {
		b.WriteString(map[digest.Type]string{digest.MD5: "MD5Sum", digest.SHA1: "SHA1",
			digest.SHA256: "SHA256", digest.SHA512: "SHA512"}[t] + ":\n")
		for _, n := range names {
			d := setOf(s.files[n])
			fmt.Fprintf(&b, " %x %8d %s\n", d.Get(t), len(s.files[n]), n)
		}
	}
	return []byte(b.String())
}

// clearsign wraps a Release in a clearsigned message with a fake signature,
// dash-escaping the lines whose index is in escape (RFC 4880 lets a signer
// dash-escape any line).
func clearsign(body []byte, escape func(line string) bool) []byte {
	var b strings.Builder
	b.WriteString("-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA512\n\n")
	for _, line := range strings.SplitAfter(string(body), "\n") {
		if line == "" {
			continue
		}
		if strings.HasPrefix(line, "-") || escape(line) {
			b.WriteString("- ")
		}
		b.WriteString(line)
	}
	b.WriteString("-----BEGIN PGP SIGNATURE-----\n\niQIzBAEBCgAdFiEE\n=AfjX\n-----END PGP SIGNATURE-----\n")
	return []byte(b.String())
}

// naiveStanzas is an independent, simple parser used as the oracle: field
// name → value (continuation lines joined with "\n").
func naiveStanzas(text string) []map[string]string {
	var out []map[string]string
	for _, para := range strings.Split(strings.TrimSpace(text), "\n\n") {
		m := map[string]string{}
		last := ""
		for _, line := range strings.Split(para, "\n") {
			if strings.HasPrefix(line, " ") {
				m[last] += "\n" + strings.TrimSpace(line)
				continue
			}
			k, v, _ := strings.Cut(line, ":")
			last = strings.ToLower(k)
			m[last] = strings.TrimSpace(v)
		}
		out = append(out, m)
	}
	return out
}

// expectPackages gives Filename → expected Set for a Packages text.
func expectPackages(t testing.TB, text string) map[string]digest.Set {
	out := map[string]digest.Set{}
	for _, m := range naiveStanzas(text) {
		size, err := strconv.ParseInt(m["size"], 10, 64)
		must(t, err)
		s := digest.Set{Size: size}
		for f, ty := range map[string]digest.Type{"md5sum": digest.MD5, "sha1": digest.SHA1, "sha256": digest.SHA256, "sha512": digest.SHA512} {
			if v, ok := m[f]; ok {
				must(t, s.PutHex(ty, v))
			}
		}
		out[m["filename"]] = s
	}
	return out
}

// expectSources gives Directory/name → expected Set for a Sources text.
func expectSources(t testing.TB, text string) map[string]digest.Set {
	out := map[string]digest.Set{}
	for _, m := range naiveStanzas(text) {
		for f, ty := range map[string]digest.Type{"files": digest.MD5, "checksums-sha1": digest.SHA1, "checksums-sha256": digest.SHA256, "checksums-sha512": digest.SHA512} {
			for _, line := range strings.Split(strings.TrimSpace(m[f]), "\n") {
				w := strings.Fields(line)
				if len(w) != 3 {
					continue
				}
				p := m["directory"] + "/" + w[2]
				s, ok := out[p]
				if !ok {
					s.Size, _ = strconv.ParseInt(w[1], 10, 64)
				}
				must(t, s.PutHex(ty, w[0]))
				out[p] = s
			}
		}
	}
	return out
}

func hexOf(b []byte) string { return hex.EncodeToString(b) }

func mustLookup(t testing.TB, ix *Index, site, base, p string, want digest.Set) {
	t.Helper()
	got, ok := ix.Lookup(site, base, p)
	if !ok {
		t.Fatalf("Lookup(%s, %q, %s): not found", site, base, p)
	}
	if got != want {
		t.Fatalf("Lookup(%s, %q, %s)\n got %v\nwant %v", site, base, p, got, want)
	}
}

func mustMiss(t testing.TB, ix *Index, site, base, p string) {
	t.Helper()
	if got, ok := ix.Lookup(site, base, p); ok {
		t.Fatalf("Lookup(%s, %q, %s) = %v, want not found", site, base, p, got)
	}
}

func sha256Of(b []byte) []byte { h := sha256.Sum256(b); return h[:] }
