package aptindex

import (
	"bytes"
	"os"
	"testing"

	"github.com/apt-p2p/apt-p2p/internal/digest"

	"github.com/cespare/xxhash/v2"
)

// FuzzParse feeds arbitrary bytes to the Packages, Sources and Release
// parsers: no panic, and every entry stored is found again by its name with
// the hashes stored for it.
func FuzzParse(f *testing.F) {
	for _, name := range []string{"Packages", "Sources"} {
		b, err := os.ReadFile("testdata/" + name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte("Filename: a\nSize: 1\nSHA1: " + string(bytes.Repeat([]byte("ab"), 20)) + "\n\n\n \t\nFilename: a\nMD5sum: 00000000000000000000000000000000"))
	f.Add([]byte("Directory: d\nFiles:\n 00000000000000000000000000000000 3 x\nChecksums-Sha1: 0000000000000000000000000000000000000000 3 x\n"))
	f.Add([]byte("-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA256\n\nAcquire-By-Hash: yes\nMD5Sum:\n 00000000000000000000000000000000 1 main/x\n- SHA1:\n-----BEGIN PGP SIGNATURE-----\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, parse := range []func([]byte, *builder) error{
			func(d []byte, b *builder) error { return parsePackages(bytes.NewReader(d), b) },
			func(d []byte, b *builder) error { return parseSources(bytes.NewReader(d), b) },
		} {
			var b builder
			if err := parse(data, &b); err != nil {
				continue
			}
			l := b.finish("/s", "/s", 1)
			count := 0
			for off := uint32(0); int(off) < len(l.data); off = l.next(off) {
				count++
				name := string(l.name(off))
				got, ok := l.find(name, xxhash.Sum64String(name))
				if !ok {
					t.Fatalf("entry %q not found", name)
				}
				if string(l.name(got)) != name || l.have(got) == 0 {
					t.Fatalf("entry %q found as %q have %b", name, l.name(got), l.have(got))
				}
				s := l.set(got)
				if s.Have != l.have(got) || s.Size != l.size(got) {
					t.Fatalf("set %v from have %b size %d", s, l.have(got), l.size(got))
				}
				for ty := range 4 {
					if h := l.hashOf(got, ty); h != nil && string(h) != string(s.Get(digest.Type(ty))) {
						t.Fatalf("hashOf(%d) %x, set %v", ty, h, s)
					}
				}
			}
			if count != l.n {
				t.Fatalf("%d records walked, %d added", count, l.n)
			}
		}
		rel, err := parseRelease(bytes.NewReader(data), "/dists/x")
		if err != nil {
			return
		}
		for i, n := range rel.names {
			if j, ok := rel.byName[n]; !ok || int(j) != i {
				t.Fatalf("release name %q maps to %d, want %d", n, j, i)
			}
		}
	})
}
