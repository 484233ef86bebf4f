//go:build !race

package aptindex

import (
	"bytes"
	"testing"

	"github.com/apt-p2p/apt-p2p/internal/digest"
)

// Lookups, of every kind, do not allocate.
func TestLookupAllocs(t *testing.T) {
	pk, src := readTestdata(t, "Packages"), readTestdata(t, "Sources")
	s := newSuite(t, "/dists/bookworm", pk, src)
	ix := New()
	loadSuite(t, ix, site, "/debian", s, clearsign(s.release(true, digest.MD5, digest.SHA256), func(string) bool { return false }), "InRelease", compGzip)
	xzSet := setOf(s.files["main/binary-amd64/Packages.xz"])
	paths := []string{
		"/pool/main/d/dpkg/dpkg_1.21.22_amd64.deb",
		"/pool/main/h/hello/hello_2.10.orig.tar.gz",
		"/dists/bookworm/main/binary-amd64/Packages.xz",
		"/dists/bookworm/main/binary-amd64/by-hash/SHA256/" + hexOf(xzSet.SHA256[:]),
		"/dists/bookworm/main/binary-amd64/by-hash/SHA512/" + hexOf(xzSet.SHA512[:]),
		"/pool/main/n/nothere/nothere_1.deb",
	}
	for _, p := range paths {
		var sink digest.Set
		if n := testing.AllocsPerRun(100, func() { sink, _ = ix.Lookup(site, "/debian", p) }); n != 0 {
			t.Errorf("Lookup(%s): %v allocs", p, n)
		}
		_ = sink
	}
	d := setOf(s.files["main/binary-amd64/Packages.xz"])
	ix.Referenced(&d) // builds the tables
	if n := testing.AllocsPerRun(100, func() { ix.Referenced(&d) }); n != 0 {
		t.Errorf("Referenced: %v allocs", n)
	}
}

// Parsing allocates per file, not per stanza.
func TestParseAllocs(t *testing.T) {
	pk := generatePackages(2000)
	var b builder
	n := testing.AllocsPerRun(3, func() {
		b.data, b.n = b.data[:0], 0
		must(t, parsePackages(bytes.NewReader(pk), &b))
	})
	if n > 5 {
		t.Errorf("parsing 2000 stanzas: %v allocs", n)
	}
}
