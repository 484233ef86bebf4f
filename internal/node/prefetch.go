package node

import (
	"strings"

	"github.com/apt-p2p/apt-p2p/internal/aptindex"
	"github.com/apt-p2p/apt-p2p/internal/mirrorurl"
)

// Prefetch starts fetching the mirror file u now, without a response: apt has
// already asked for it on a connection where earlier requests are still being
// answered (pipelining), and its download should not wait for their bodies to
// be sent. The request itself, when its turn comes, joins the download through
// ServeApt. Only files the index knows the hash of are started (a pool file
// asked for while its Packages index is still being parsed is started once it
// is); a verified copy or a running download is left alone. It never blocks.
func (n *Node) Prefetch(u mirrorurl.URL) {
	if n.ctx.Err() != nil {
		return // closing: start nothing
	}
	if n.prefetch(u) || !strings.Contains(u.Path, "/pool/") {
		return
	}
	n.wg.Go(func() {
		if n.waitIndexes(u.Site()) && n.ctx.Err() == nil {
			n.prefetch(u)
		}
	})
}

// prefetch starts u's download if it should; false if the index does not know u.
func (n *Node) prefetch(u mirrorurl.URL) bool {
	site := u.Site()
	base, path := aptindex.SplitPath(site, u.Path, n.index.BaseDirs)
	d, ok := n.index.Lookup(site, base, path)
	if !ok {
		return false
	}
	if d.Size <= 0 || d.Have == 0 {
		return true
	}
	if _, ok := n.store.Lookup(&d); ok {
		return true
	}
	key, _ := d.Key()
	for _, f := range n.downloads.Active() {
		if f.Key() == key {
			return true // running (Start would wait for a failed one to end)
		}
	}
	_, _ = n.downloads.Start(n.request(u, site, base, path, d))
	return true
}
