package node

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/apt-p2p/apt-p2p/internal/aptindex"
	"github.com/apt-p2p/apt-p2p/internal/digest"
	"github.com/apt-p2p/apt-p2p/internal/mirrorurl"
	"github.com/apt-p2p/apt-p2p/wire"
)

// LookupResult is what the index, the cache and the DHT know about a mirror
// file or a hash (the status server's /lookup and the `apt-p2p lookup`
// subcommand).
type LookupResult struct {
	Query  string   `json:"query"`
	URL    string   `json:"url,omitempty"` // the mirror file the query was read as
	Site   string   `json:"site,omitempty"`
	Base   string   `json:"base_dir,omitempty"`
	Path   string   `json:"path,omitempty"`
	Index  string   `json:"index,omitempty"` // the hashes the index gives
	Key    string   `json:"dht_key,omitempty"`
	Cached bool     `json:"cached"`
	Paths  []string `json:"cached_paths,omitempty"`
	Pieces int      `json:"pieces,omitempty"`
	Peers  []string `json:"dht_peers"`
	Error  string   `json:"error,omitempty"`
}

// Lookup says what the index, the cache and the DHT know about q: a mirror
// URL or path as a user pastes it, or a hex hash.
func (n *Node) Lookup(ctx context.Context, q string) LookupResult {
	q = strings.TrimSpace(q)
	res := LookupResult{Query: q, Peers: []string{}}
	var d digest.Set
	d.Size = -1
	have := false
	if h, err := hex.DecodeString(q); err == nil && (len(h) == 16 || len(h) == 20 || len(h) == 32 || len(h) == 64) {
		t := map[int]digest.Type{16: digest.MD5, 20: digest.SHA1, 32: digest.SHA256, 64: digest.SHA512}[len(h)]
		_ = d.Put(t, h)
		have = true
		// A cached file knows all its hashes, so the DHT key (SHA1 when the
		// index gives one) comes out right whichever hash was asked for.
		if info, ok := n.store.LookupHash(h); ok {
			d = info.Digest
		}
	} else {
		u, d2, found, err := n.lookupPath(q)
		switch {
		case err != nil:
			res.Error = err.Error()
		default:
			res.URL, res.Site = u.String(), u.Site()
			res.Base, res.Path = aptindex.SplitPath(res.Site, u.Path, n.index.BaseDirs)
			d, have = d2, found
			if !have {
				res.Error = "the index has no hash for " + u.String() + " (not listed in any cached Release/Packages/Sources; has apt-get update run through this daemon?)"
			}
		}
	}
	if have {
		res.Index = d.String()
		if k, ok := d.Key(); ok {
			res.Key = k.String()
		}
		if info, ok := n.store.Lookup(&d); ok {
			res.Cached, res.Paths, res.Pieces = true, info.Paths, len(info.Pieces)/20
		}
		if k, ok := d.Key(); ok {
			c, cancel := context.WithTimeout(ctx, 10*time.Second)
			vals, _ := n.dhtGetValues(c, k)
			cancel()
			for _, raw := range vals {
				var v wire.PeerValue
				if v.Parse(raw) == nil {
					res.Peers = append(res.Peers, v.Contact.String())
				}
			}
		}
	}
	return res
}

// lookupPath reads a mirror file from what a user pastes: the URL as apt
// prints it in URL-prefix mode (http://localhost:9977/deb.debian.org/debian/...,
// http://localhost:9977/https/deb.debian.org/...), the mirror's own URL as
// apt prints it in proxy mode (http://deb.debian.org/debian/...), or the
// prefix path alone (deb.debian.org/debian/..., https/deb.debian.org/...,
// with or without the daemon's address in front). Some of these read two
// ways (is the first path segment a mirror host or a directory?), so every
// reading is tried and the first one the index knows wins (found; d is its
// hashes). If none is known, the likeliest reading is returned.
func (n *Node) lookupPath(q string) (u mirrorurl.URL, d digest.Set, found bool, err error) {
	var readings []mirrorurl.URL
	var firstErr, fullURL error
	try := func(u mirrorurl.URL, err error) {
		switch {
		case err == nil:
			readings = append(readings, u)
		case errors.Is(err, mirrorurl.ErrFullURL):
			fullURL = err // a URL pasted after the prefix: say so, whatever else parses
		case firstErr == nil:
			firstErr = err
		}
	}
	if strings.HasPrefix(q, "http://") || strings.HasPrefix(q, "https://") {
		rest := q[strings.Index(q, "://")+3:]
		path := "/"
		if i := strings.IndexByte(rest, '/'); i >= 0 {
			path = rest[i:]
		}
		if hostLike(firstSegment(path)) {
			try(mirrorurl.ParsePrefix(path)) // http://<daemon>/<mirror host>/...
			try(mirrorurl.ParseAbsolute(q))
		} else {
			try(mirrorurl.ParseAbsolute(q)) // http://<mirror host>/debian/...
			try(mirrorurl.ParsePrefix(path))
		}
	} else {
		path := "/" + strings.TrimPrefix(q, "/")
		_, after, _ := strings.Cut(path[1:], "/")
		after = "/" + after
		if firstSegment(path) == "https" {
			try(mirrorurl.ParsePrefix(path)) // https/<mirror host>/...
		} else if hostLike(firstSegment(after)) {
			try(mirrorurl.ParsePrefix(after)) // <daemon>/<mirror host>/...
			try(mirrorurl.ParsePrefix(path))
		} else {
			try(mirrorurl.ParsePrefix(path)) // <mirror host>/debian/...
			try(mirrorurl.ParsePrefix(after))
		}
	}
	if fullURL != nil {
		return mirrorurl.URL{}, d, false, fullURL
	}
	if len(readings) == 0 {
		return mirrorurl.URL{}, d, false, fmt.Errorf("%w (expected a URL as apt prints it, or <mirror host>/<path>, https/<mirror host>/<path>, or a hex hash)", firstErr)
	}
	idx := n.index
	for _, r := range readings {
		site := r.Site()
		base, p := aptindex.SplitPath(site, r.Path, idx.BaseDirs)
		if d, ok := idx.Lookup(site, base, p); ok {
			return r, d, true, nil
		}
	}
	return readings[0], d, false, nil
}

func firstSegment(path string) string {
	seg, _, _ := strings.Cut(strings.TrimPrefix(path, "/"), "/")
	return seg
}

// hostLike: a path segment that reads as a mirror host (or the https/
// marker) rather than a directory of one.
func hostLike(seg string) bool {
	return seg == "https" || strings.ContainsAny(seg, ".:[")
}
