package aptindex

import (
	"bytes"
	"strings"
	"sync"
	"testing"

	"github.com/apt-p2p/apt-p2p/internal/digest"
)

// Lookups, Referenced and Stats run while the same index is replaced over
// and over: every answer is one whole version, never a mix, and the last Add
// is what remains.
func TestConcurrentReplace(t *testing.T) {
	h := func(c byte) string { return strings.Repeat(string(c), 64) }
	versions := [][]byte{
		[]byte(pkgStanza("foo", "pool/main/f/foo/foo_1.deb", 1, h('1')) + pkgStanza("bar", "pool/main/b/bar/bar_1.deb", 1, h('3'))),
		[]byte(pkgStanza("foo", "pool/main/f/foo/foo_1.deb", 2, h('2'))),
	}
	ix := New()
	const p = "/dists/sid/main/binary-amd64/Packages"
	must(t, ix.Add(site, "/debian", p, bytes.NewReader(versions[0])))
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for range 2 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				foo, ok := ix.Lookup(site, "/debian", "/pool/main/f/foo/foo_1.deb")
				if !ok || !(foo.Size == 1 && hexOf(foo.SHA256[:]) == h('1') || foo.Size == 2 && hexOf(foo.SHA256[:]) == h('2')) {
					t.Errorf("mixed or missing answer %v %v", foo, ok)
					return
				}
				var d digest.Set
				d.Size = 1
				d.PutHex(digest.SHA256, h('3'))
				ix.Referenced(&d)
				ix.Stats()
			}
		})
	}
	n := 200
	if raceEnabled {
		n = 50
	}
	for i := range n {
		must(t, ix.Add(site, "/debian", p, bytes.NewReader(versions[(i+1)%2])))
	}
	close(stop)
	wg.Wait()
	last := versions[n%2]
	for fn, w := range expectPackages(t, string(last)) {
		mustLookup(t, ix, site, "/debian", "/"+fn, w)
	}
	if n%2 == 0 {
		mustLookup(t, ix, site, "/debian", "/pool/main/b/bar/bar_1.deb", expectPackages(t, string(last))["pool/main/b/bar/bar_1.deb"])
	}
}
