package aptindex

import (
	"bytes"
	"os"
	"testing"

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
			for i := range l.ents {
				e := &l.ents[i]
				name := string(l.name(e))
				got := l.find(name, xxhash.Sum64String(name))
				if got == nil {
					t.Fatalf("entry %q not found", name)
				}
				if string(l.name(got)) != name || got.have == 0 {
					t.Fatalf("entry %q found as %q have %b", name, l.name(got), got.have)
				}
				s := l.set(got)
				if s.Have != got.have {
					t.Fatalf("set %v from have %b", s, got.have)
				}
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
