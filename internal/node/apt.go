package node

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/apt-p2p/apt-p2p/internal/aptindex"
	"github.com/apt-p2p/apt-p2p/internal/digest"
	"github.com/apt-p2p/apt-p2p/internal/download"
	"github.com/apt-p2p/apt-p2p/internal/fetch"
	"github.com/apt-p2p/apt-p2p/internal/httpserve"
	"github.com/apt-p2p/apt-p2p/internal/mirrorurl"
	"github.com/apt-p2p/apt-p2p/piecestore"
)

func bytesReader(b []byte) io.Reader { return bytes.NewReader(b) }

func parseCachedURL(s string) (mirrorurl.URL, error) { return mirrorurl.ParseAbsolute(s) }

// Source names where the bytes of one apt response came from.
type Source = download.Source

// Sources of an apt response: a download's, or the cache.
const (
	SourceCache    Source = "cache"
	SourceMirror          = download.SourceMirror
	SourcePeers           = download.SourcePeers
	SourceMixed           = download.SourceMixed
	SourceFetching        = download.SourceFetching // streams from a download still deciding its sources
)

// ServeApt answers one apt request for the mirror file u. It returns where the
// bytes come from, for the request log.
//
// A response that streams from a download still running has no source yet
// (SourceFetching): it is decided as peers and the mirror deliver. Then later
// is non-nil and receives the final source once the body has been sent or
// cut, and the download has ended (or a moment later if it keeps running for
// other readers).
func (n *Node) ServeApt(ctx *fasthttp.RequestCtx, u mirrorurl.URL) (src Source, later <-chan Source) {
	var l chan Source
	src = n.serveApt(ctx, u, &l)
	if l != nil {
		return src, l
	}
	return src, nil
}

func (n *Node) serveApt(ctx *fasthttp.RequestCtx, u mirrorurl.URL, later *chan Source) Source {
	site := u.Site()
	base, path := aptindex.SplitPath(site, u.Path, n.index.BaseDirs)
	d, ok := n.index.Lookup(site, base, path)
	if !ok && strings.Contains(u.Path, "/pool/") && n.waitIndexes(site) {
		// A Packages file of this site was still being registered: apt asks
		// for packages the moment it has received the index, which is
		// before the index is parsed. Look again now that it is. (Only for
		// pool files: the other index files of an apt-get update must not
		// queue behind a large Packages download.)
		base, path = aptindex.SplitPath(site, u.Path, n.index.BaseDirs)
		d, ok = n.index.Lookup(site, base, path)
	}
	if ok && d.Size >= 0 && d.Have != 0 {
		return n.serveHashed(ctx, u, site, base, path, d, later)
	}
	return n.serveUnhashed(ctx, u, site, base, path)
}

// indexWait bounds how long a request waits for index files being registered.
const indexWait = 10 * time.Second

// waitIndexes waits until no download of a hashed index file (Packages.xz,
// ...) of site is running, so a request that arrives between apt receiving the
// index and the daemon parsing it is not served as an unknown file (through
// the mirror cache, unverified and never shared). It reports whether it waited.
func (n *Node) waitIndexes(site string) bool {
	waited := false
	deadline := time.After(indexWait)
	for {
		var pending *download.Flight
		for _, f := range n.downloads.Active() {
			if r := f.Request(); r.Index && r.Site == site {
				pending = f
				break
			}
		}
		if pending == nil {
			return waited
		}
		waited = true
		select {
		case <-pending.Done():
		case <-deadline:
			return true
		case <-n.ctx.Done():
			return true
		}
	}
}

// serveUnhashed relays a file the index has no hash for, through the mirror cache.
func (n *Node) serveUnhashed(ctx *fasthttp.RequestCtx, u mirrorurl.URL, site, base, path string) Source {
	maxAge := clientMaxAge(ctx.Request.Header.Peek("Cache-Control"), ctx.Request.Header.Peek("Pragma"))
	cf, err := n.mirrors.get(n.ctx, u, maxAge)
	if err != nil {
		n.log.Warn("mirror fetch failed", "url", u.String(), "err", err)
		httpserve.Error(ctx, fasthttp.StatusBadGateway, err.Error())
		return SourceMirror
	}
	if cf.status != 0 {
		httpserve.Error(ctx, cf.status, "mirror "+u.Addr()+" answered "+strconv.Itoa(cf.status)+" "+http.StatusText(cf.status))
		return SourceMirror
	}
	src := SourceCache
	if cf.fetched {
		src = SourceMirror
		n.noteUnhashed(u, site, base, path, &cf)
	} else {
		n.Stats.Cache.Add(cf.meta.Size)
	}
	if cf.stale {
		ctx.Response.Header.Set("Warning", `110 apt-p2p "Response is Stale"`)
	}
	f, err := os.Open(cf.path)
	if err != nil {
		httpserve.Error(ctx, fasthttp.StatusServiceUnavailable, "cached file vanished")
		return src
	}
	mod, _ := http.ParseTime(cf.meta.LastModified)
	httpserve.ServeFile(ctx, &httpserve.FileResponse{
		File:        f,
		Size:        cf.meta.Size,
		ModTime:     mod,
		ContentType: httpserve.ContentType(path),
		Release:     func() { f.Close() },
	})
	return src
}

// noteUnhashed counts a file the mirror cache has just fetched and parses it
// if it is an index (Release, InRelease).
func (n *Node) noteUnhashed(u mirrorurl.URL, site, base, path string, cf *cachedFile) {
	n.Stats.Mirror.Add(cf.meta.Size)
	if !aptindex.IsIndex(path) {
		return
	}
	if f, err := os.Open(cf.path); err == nil {
		if err := n.index.Add(site, base, path, f); err != nil {
			n.log.Warn("parsing index", "url", u.String(), "err", err)
		}
		f.Close()
	}
}

// serveHashed answers for a file whose size and hash the index knows: from the
// store if a verified copy is there, else from the download of that content.
func (n *Node) serveHashed(ctx *fasthttp.RequestCtx, u mirrorurl.URL, site, base, path string, d digest.Set, later *chan Source) Source {
	if info, ok := n.store.Lookup(&d); ok {
		if req := (indexFile{Site: site, BaseDir: base, Path: path}); n.index.IsIndex(site, base, path) && !n.registered(req) {
			// The same index under another mirror name (the http and the
			// https form of one mirror): its files must be known under
			// this name too, before apt asks for them.
			n.registerIndex(&info, site, base, path)
		}
		if n.serveStored(ctx, &info, path) {
			n.notePath(&info, site, base, path)
			return SourceCache
		}
	}
	if ctx.IsHead() {
		ctx.Response.Header.SetContentLength(int(d.Size))
		ctx.Response.Header.Set("Accept-Ranges", "bytes")
		ctx.Response.Header.SetContentType(httpserve.ContentType(path))
		ctx.Response.SkipBody = true
		return SourceCache
	}
	f, err := n.downloads.Start(n.request(u, site, base, path, d))
	if err != nil {
		if errors.Is(err, download.ErrStored) {
			if info, ok := n.store.Lookup(&d); ok && n.serveStored(ctx, &info, path) {
				return SourceCache
			}
		}
		n.log.Warn("download could not start", "url", u.String(), "err", err)
		httpserve.Error(ctx, fasthttp.StatusServiceUnavailable, err.Error())
		return SourceMirror
	}
	w := f.Writer()
	// Answer only once the first bytes are in (or a while has passed): a
	// download that fails at once (mirror unreachable, peer data refused)
	// then gets an error status that says why, not a 200 cut short.
	if d.Size > 0 {
		wctx, cancel := context.WithTimeout(n.ctx, firstByteWait)
		_, werr := w.Wait(wctx, 0)
		timedOut := wctx.Err() != nil
		cancel()
		if werr != nil && !timedOut {
			msg := f.Failure()
			if msg == nil {
				msg = werr
			}
			httpserve.Error(ctx, fasthttp.StatusBadGateway, msg.Error())
			return SourceMirror
		}
	}
	// The download's own bytes are counted by source when it ends (account);
	// every further response for the same content is the daemon's copy, as
	// for a stored file: cache.
	shared := f.Join()
	final := make(chan Source, 1)
	*later = final
	var g httpserve.Growing = w
	if f.Request().Index {
		g = untilParsed{w, f}
	}
	httpserve.ServeFile(ctx, &httpserve.FileResponse{
		Growing:     g,
		Size:        d.Size,
		ContentType: httpserve.ContentType(path),
		Context:     n.ctx,
		Release: func() {
			f.Leave()
			if shared {
				n.Stats.Cache.Add(d.Size)
			}
			// The last bytes go out when the store has verified them, just
			// before the downloader returns and the sources are counted.
			go func() {
				t := time.NewTimer(2 * time.Second)
				defer t.Stop()
				select {
				case <-f.Done():
				case <-t.C:
				}
				final <- f.Source()
			}()
		},
	})
	return f.Source()
}

// untilParsed holds an index file's last byte back from apt until the index
// is parsed (the Flight is done): apt asks for the packages it lists as soon
// as it has the whole file, and must not find the previous index still in
// place.
type untilParsed struct {
	*piecestore.Writer
	f *download.Flight
}

func (u untilParsed) Available() int64 {
	a := u.Writer.Available()
	select {
	case <-u.f.Done():
		return a
	default:
		return min(a, u.Size()-1)
	}
}

func (u untilParsed) Wait(ctx context.Context, off int64) (int64, error) {
	a, err := u.Writer.Wait(ctx, off)
	if err != nil || a < u.Size() {
		return a, err
	}
	select {
	case <-u.f.Done():
		return a, nil
	case <-ctx.Done():
		return u.Size() - 1, ctx.Err()
	}
}

// request describes the download of one mirror file for the download manager.
func (n *Node) request(u mirrorurl.URL, site, base, path string, d digest.Set) download.Request {
	req := download.Request{
		Digest: d,
		Mirror: fetch.Source{Addr: u.Addr(), Host: u.HostHeader(), Path: u.RequestPath(), Mirror: true, TLS: u.TLS},
		Path:   site + base + path,
		Site:   site,
		Index:  n.index.IsIndex(site, base, path),
	}
	if req.Index {
		req.AfterCommit = func(info piecestore.Info) { n.registerIndex(&info, site, base, path) }
	}
	return req
}

// serveStored sends a verified stored file; false if it could not be opened.
func (n *Node) serveStored(ctx *fasthttp.RequestCtx, info *piecestore.Info, path string) bool {
	r, err := n.store.OpenFile(info)
	if err != nil {
		return false
	}
	etag := info.Digest.Get(digest.SHA256)
	httpserve.ServeFile(ctx, &httpserve.FileResponse{
		File:        r.File(),
		Size:        r.Size(),
		ContentType: httpserve.ContentType(path),
		ETag:        etag,
		Release:     func() { r.Close() },
	})
	if !ctx.IsHead() {
		n.Stats.Cache.Add(int64(ctx.Response.Header.ContentLength()))
	}
	return true
}

func (n *Node) notePath(info *piecestore.Info, site, base, path string) {
	p := site + base + path
	for _, have := range info.Paths {
		if have == p {
			return
		}
	}
	_ = n.store.AddPath(info, p)
}

// firstByteWait bounds how long an apt request waits for a download's first
// bytes before the response headers go out regardless.
const firstByteWait = 30 * time.Second

// registered reports whether the index file f is parsed under its site.
func (n *Node) registered(f indexFile) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	_, ok := n.indexFiles[f.Site+f.BaseDir+f.Path]
	return ok
}

// registerIndex parses a hashed index file (Packages.xz, Sources.gz, ...) and
// remembers it for the next start.
func (n *Node) registerIndex(info *piecestore.Info, site, base, path string) {
	r, err := n.store.OpenFile(info)
	if err != nil {
		return
	}
	defer r.Close()
	if err := n.index.Add(site, base, path, io.NewSectionReader(r, 0, r.Size())); err != nil {
		n.log.Warn("parsing index", "path", site+base+path, "err", err)
		return
	}
	n.mu.Lock()
	n.indexFiles[site+base+path] = indexFile{Site: site, BaseDir: base, Path: path, SHA256: info.Digest.SHA256[:]}
	n.mu.Unlock()
	n.saveIndexes()
}

// Banned reports whether the downloader currently shuns the source at addr
// ("host:port") for having sent bad data.
func (n *Node) Banned(addr string) bool { return n.fetcher.Banned(addr) }
