package node

import (
	"sync"
	"sync/atomic"

	"github.com/valyala/fasthttp"

	"github.com/apt-p2p/apt-p2p/internal/aptindex"
	"github.com/apt-p2p/apt-p2p/internal/digest"
	"github.com/apt-p2p/apt-p2p/internal/httpserve"
	"github.com/apt-p2p/apt-p2p/internal/mirrorurl"
	"github.com/apt-p2p/apt-p2p/piecestore"
)

// maxHotPaths bounds the request URIs remembered (~300 B each); beyond it one is forgotten for
// each new one.
const maxHotPaths = 4096

// hotPaths remembers, for request URIs answered from the store, what they resolved to, so the
// next request for the same URI skips parsing the URL, splitting the path, the store lookup and
// the path bookkeeping (a third of the daemon's user CPU per cached small file, bench/RESULTS.md
// proxy section): nginx's open_file_cache is keyed by name, the store's by content; this is the
// name side. Each use still checks that the index did not change since the path was confirmed
// (else asks it again: apt-get update may have given the path new content), and asks the store
// whether it still holds the content.
type hotPaths struct {
	mu sync.RWMutex
	m  map[string]*hotPath // request URI → what it resolved to: read by every request, written once per URI
}

type hotPath struct {
	site, base, path string        // the index's key
	d                digest.Set    // what the index gave
	gen              atomic.Uint64 // the index's Generation when d was last confirmed
	etag             []byte        // the content's SHA-256
	ctype            string
	url              string // for the request log
	header           []byte // the express lane's header lines (httpserve.ExpressHeader)
	hint             piecestore.Hint
}

func (h *hotPaths) get(uri []byte) *hotPath {
	h.mu.RLock()
	p := h.m[string(uri)] // no allocation: the compiler looks up with the bytes
	h.mu.RUnlock()
	return p
}

func (h *hotPaths) forget(uri []byte) {
	h.mu.Lock()
	delete(h.m, string(uri))
	h.mu.Unlock()
}

func (h *hotPaths) put(uri []byte, p *hotPath) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.m == nil {
		h.m = make(map[string]*hotPath)
	}
	if _, ok := h.m[string(uri)]; ok {
		return
	}
	if len(h.m) >= maxHotPaths {
		for k := range h.m { // forget one: the first the (randomised) iteration visits
			delete(h.m, k)
			break
		}
	}
	h.m[string(uri)] = p
}

// ServeHot answers an apt request (uri: the raw request URI, from an allowed client) from the
// store when the same URI was answered from the store before and the index still names the same
// content there. It returns the upstream URL (for the request log) and true when it answered;
// false means: go the usual way (ServeApt).
func (n *Node) ServeHot(ctx *fasthttp.RequestCtx, uri []byte) (url string, ok bool) {
	h, r := n.openHot(uri)
	if r == nil {
		return "", false
	}
	httpserve.ServeFile(ctx, &httpserve.FileResponse{
		File:        r.File(),
		Size:        r.Size(),
		ContentType: h.ctype,
		ETag:        h.etag,
		Release:     func() { r.Close() },
	})
	if !ctx.IsHead() {
		n.Stats.Cache.Add(int64(ctx.Response.Header.ContentLength()))
	}
	return h.url, true
}

// openHot returns what uri resolved to and the content opened, when it is still what the index
// names there; nil otherwise (then the path is forgotten).
func (n *Node) openHot(uri []byte) (*hotPath, *piecestore.Reader) {
	h := n.hot.get(uri)
	if h == nil {
		return nil, nil
	}
	if g := n.index.Generation(); g != h.gen.Load() {
		if d, ok := n.index.Lookup(h.site, h.base, h.path); !ok || d != h.d {
			n.hot.forget(uri)
			return nil, nil
		}
		h.gen.Store(g)
	}
	info := piecestore.Info{Digest: h.d}
	r, err := n.store.OpenFileHint(&info, &h.hint)
	if err != nil {
		n.hot.forget(uri)
		return nil, nil
	}
	return h, r
}

// OpenHot is ServeHot for the express lane (httpserve.Express): it fills f for a URI answered
// from the store before, or returns false.
func (n *Node) OpenHot(uri []byte, f *httpserve.ExpressFile) bool {
	h, r := n.openHot(uri)
	if r == nil {
		return false
	}
	file := r.File()
	if file == nil {
		r.Close()
		return false
	}
	f.File, f.Size, f.Header, f.Release, f.Tag = file, r.Size(), h.header, r, h
	return true
}

// HotDone ends an express answer that OpenHot opened (sent body bytes), and returns the mirror
// URL it was for, for the request log.
func (n *Node) HotDone(f *httpserve.ExpressFile, sent int64) (url string) {
	f.Release.Close()
	n.Stats.Cache.Add(sent)
	return f.Tag.(*hotPath).url
}

// RememberHot records that uri, which ServeApt answered from the store (SourceCache), names
// the mirror file u, so the next request for it can take ServeHot. It does nothing for a file the
// index has no hash for or the store does not hold.
func (n *Node) RememberHot(uri []byte, u mirrorurl.URL) {
	if n.hot.get(uri) != nil {
		return
	}
	gen := n.index.Generation() // before the lookup: a change after it shows as a new generation
	site := u.Site()
	base, path := aptindex.SplitPath(site, u.Path, n.index.BaseDirs)
	d, ok := n.index.Lookup(site, base, path)
	if !ok || d.Size < 0 || d.Have == 0 {
		return
	}
	info, ok := n.store.Lookup(&d)
	if !ok {
		return
	}
	h := &hotPath{site: site, base: base, path: path, d: d, etag: info.Digest.Get(digest.SHA256),
		ctype: httpserve.ContentType(path), url: u.String()}
	h.header = httpserve.ExpressHeader(d.Size, h.ctype, h.etag)
	h.gen.Store(gen)
	n.hot.put(uri, h)
}
