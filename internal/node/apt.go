package node

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/apt-p2p/apt-p2p/internal/aptindex"
	"github.com/apt-p2p/apt-p2p/internal/digest"
	"github.com/apt-p2p/apt-p2p/internal/fetch"
	"github.com/apt-p2p/apt-p2p/internal/httpserve"
	"github.com/apt-p2p/apt-p2p/internal/mirrorurl"
	"github.com/apt-p2p/apt-p2p/piecestore"
	"github.com/apt-p2p/apt-p2p/wire"
)

func bytesReader(b []byte) io.Reader { return bytes.NewReader(b) }

func parseCachedURL(s string) (mirrorurl.URL, error) { return mirrorurl.ParseAbsolute(s) }

// Source names where the bytes of one apt response came from.
type Source string

const (
	SourceCache  Source = "cache"
	SourceMirror Source = "mirror"
	SourcePeers  Source = "peers"
	SourceMixed  Source = "peers+mirror"
	// SourceFetching: the response streams from a download still deciding its sources.
	SourceFetching Source = "fetching"
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
		var pending *download
		n.mu.Lock()
		for _, dl := range n.active {
			if dl.index && dl.site == site {
				pending = dl
				break
			}
		}
		n.mu.Unlock()
		if pending == nil {
			return waited
		}
		waited = true
		select {
		case <-pending.done:
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
		ctx.Error("apt-p2p: "+err.Error()+"\n", fasthttp.StatusBadGateway)
		return SourceMirror
	}
	if cf.status != 0 {
		ctx.Error(http.StatusText(cf.status)+"\n", cf.status)
		return SourceMirror
	}
	src := SourceCache
	if cf.fetched {
		src = SourceMirror
		n.Stats.Mirror.Add(cf.meta.Size)
		if aptindex.IsIndex(path) {
			if f, err := os.Open(cf.path); err == nil {
				if err := n.index.Add(site, base, path, f); err != nil {
					n.log.Warn("parsing index", "url", u.String(), "err", err)
				}
				f.Close()
			}
		}
	} else {
		n.Stats.Cache.Add(cf.meta.Size)
	}
	if cf.stale {
		ctx.Response.Header.Set("Warning", `110 apt-p2p "Response is Stale"`)
	}
	f, err := os.Open(cf.path)
	if err != nil {
		ctx.Error("apt-p2p: cached file vanished\n", fasthttp.StatusServiceUnavailable)
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

// serveHashed answers for a file whose size and hash the index knows: from the
// store if a verified copy is there, else from the download for that content.
func (n *Node) serveHashed(ctx *fasthttp.RequestCtx, u mirrorurl.URL, site, base, path string, d digest.Set, later *chan Source) Source {
	if info, ok := n.store.Lookup(&d); ok {
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
	dl, err := n.download(u, site, base, path, d)
	if err != nil {
		if errors.Is(err, errStoredMeanwhile) {
			if info, ok := n.store.Lookup(&d); ok && n.serveStored(ctx, &info, path) {
				return SourceCache
			}
		}
		n.log.Warn("download could not start", "url", u.String(), "err", err)
		ctx.Error("apt-p2p: "+err.Error()+"\n", fasthttp.StatusServiceUnavailable)
		return SourceMirror
	}
	// Answer only once the first bytes are in (or a while has passed): a
	// download that fails at once (mirror unreachable, peer data refused)
	// then gets an error status that says why, not a 200 cut short.
	if d.Size > 0 {
		wctx, cancel := context.WithTimeout(n.ctx, firstByteWait)
		_, werr := dl.w.Wait(wctx, 0)
		timedOut := wctx.Err() != nil
		cancel()
		if werr != nil && !timedOut {
			msg := dl.failure()
			if msg == nil {
				msg = werr
			}
			ctx.Error("apt-p2p: "+msg.Error()+"\n", fasthttp.StatusBadGateway)
			return SourceMirror
		}
	}
	dl.nwait.Add(1)
	// The download's own bytes are counted by source when it ends (account);
	// every further response for the same content is the daemon's copy, as
	// for a stored file: cache.
	shared := dl.joins.Add(1) > 1
	final := make(chan Source, 1)
	*later = final
	httpserve.ServeFile(ctx, &httpserve.FileResponse{
		Growing:     dl.w,
		Size:        d.Size,
		ContentType: httpserve.ContentType(path),
		Context:     n.ctx,
		Release: func() {
			dl.nwait.Add(-1)
			if shared {
				n.Stats.Cache.Add(d.Size)
			}
			// The last bytes go out when the store has verified them, just
			// before the downloader returns and the sources are counted.
			go func() {
				t := time.NewTimer(2 * time.Second)
				defer t.Stop()
				select {
				case <-dl.done:
				case <-t.C:
				}
				final <- dl.source()
			}()
		},
	})
	return dl.source()
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

var errStoredMeanwhile = errors.New("node: stored meanwhile")

// firstByteWait bounds how long an apt request waits for a download's first
// bytes before the response headers go out regardless.
const firstByteWait = 30 * time.Second

// download is one content being fetched, shared by every apt request for it.
type download struct {
	key    wire.ID
	path   string
	site   string
	index  bool          // a hashed index file: parsed before done closes
	done   chan struct{} // closed when the download, its commit and any index parsing are over
	w      *piecestore.Writer
	cancel context.CancelFunc
	nwait  atomic.Int32 // apt responses streaming from it
	joins  atomic.Int32 // apt responses ever served from it

	mu  sync.Mutex
	src Source
	err error // why the download failed
}

func (d *download) fail(err error) {
	d.mu.Lock()
	d.err = err
	d.mu.Unlock()
}

func (d *download) failure() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.err
}

func (d *download) source() Source {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.src == "" {
		return SourceFetching
	}
	return d.src
}

// download returns the running download of d's content, starting one if none runs.
func (n *Node) download(u mirrorurl.URL, site, base, path string, d digest.Set) (*download, error) {
	key, _ := d.Key()
	n.mu.Lock()
	defer n.mu.Unlock()
	if dl, ok := n.active[key]; ok {
		if dl.w.Err() == nil {
			return dl, nil
		}
		// It has failed (apt's retry after a cut arrives while the failure is
		// still being handled): joining it would cut this response too. Wait
		// for it to end, so the bans and the mirror-only mark are in place,
		// and start afresh.
		n.mu.Unlock()
		select {
		case <-dl.done:
		case <-time.After(10 * time.Second):
		}
		n.mu.Lock()
		if dl, ok := n.active[key]; ok {
			return dl, nil
		}
	}
	if _, ok := n.store.Lookup(&d); ok {
		return nil, errStoredMeanwhile
	}
	w, err := n.store.Create(d, nil)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(n.ctx, 2*time.Hour)
	dl := &download{key: key, path: site + base + path, site: site, index: n.index.IsIndex(site, base, path),
		done: make(chan struct{}), w: w, cancel: cancel}
	n.active[key] = dl
	n.wg.Go(func() {
		defer cancel()
		info, ok := n.run(ctx, dl, u, site, base, path, d)
		n.mu.Lock()
		delete(n.active, key)
		n.mu.Unlock()
		// Requests waiting for an index file go on now, not after the
		// announcement, which may take a DHT lookup's time.
		close(dl.done)
		if ok {
			n.announce(ctx, info)
		}
	})
	return dl, nil
}

// mirrorSource is the mirror as a downloader source.
func mirrorSource(u mirrorurl.URL) *fetch.Source {
	return &fetch.Source{Addr: u.Addr(), Host: u.HostHeader(), Path: u.RequestPath(), Mirror: true, TLS: u.TLS}
}

// run fetches one content: DHT lookup raced against the mirror, then the
// multi-source download, then verification and commit (and parsing, for an
// index file). It returns the stored file, for the announcement.
func (n *Node) run(ctx context.Context, dl *download, u mirrorurl.URL, site, base, path string, d digest.Set) (piecestore.Info, bool) {
	t0 := time.Now()
	key := dl.key
	peers := make(chan fetch.Source, 64)
	var (
		valMu  sync.Mutex
		values []wire.PeerValue
		seen   = map[string]bool{}
		first  = make(chan struct{})
		once   sync.Once
	)
	self, haveSelf := n.Contact()
	useDHT := n.peersAllowed(key)
	lookupDone := make(chan struct{})
	if useDHT {
		n.Stats.Lookups.Inc()
		// Tracked, so Close waits for it before closing the DHT; the download's
		// context ends it once the download is over.
		n.wg.Go(func() {
			defer close(lookupDone)
			defer close(peers)
			lt := time.Now()
			res, err := n.lookupPeers(ctx, key, func(raw []byte) {
				var v wire.PeerValue
				if v.Parse(raw) != nil {
					return // malformed or hostile value: ignore it, never hang (§8.2 item 6)
				}
				if haveSelf && v.Contact == self {
					return
				}
				addr := v.Contact.String()
				valMu.Lock()
				dup := seen[addr]
				seen[addr] = true
				if !dup {
					v.Pieces = append([]byte(nil), v.Pieces...)
					values = append(values, v)
				}
				valMu.Unlock()
				if dup {
					return
				}
				once.Do(func() {
					n.noteLookup(time.Since(lt))
					close(first)
				})
				select {
				case peers <- peerSource(v, d):
				default: // more peers than the downloader can take at once; it has plenty
				}
			})
			n.Stats.LookupLatency.Observe(time.Since(lt))
			if err == nil && res.Values == 0 {
				n.mu.Lock()
				n.noValues[key] = time.Now()
				n.mu.Unlock()
			}
		})
	} else {
		close(peers)
		close(lookupDone)
	}

	// Piece hashes come with the first values (or by a second lookup), so wait a
	// little for them: at most the adaptive mirror delay.
	delay := n.mirrorDelay(key, useDHT)
	select {
	case <-first:
		// Give the other answers of the same lookup round a moment to arrive.
		select {
		case <-time.After(20 * time.Millisecond):
		case <-lookupDone:
		}
	case <-lookupDone:
	case <-time.After(delay):
	case <-ctx.Done():
	}
	valMu.Lock()
	got := append([]wire.PeerValue(nil), values...)
	valMu.Unlock()
	var pieces []byte
	if len(got) > 0 && piecestore.NumPieces(d.Size) > 1 {
		pctx, pcancel := context.WithTimeout(ctx, 3*time.Second)
		pieces, _ = fetch.ResolvePieces(pctx, d.Size, got, n.dhtGetRaw, n.httpPieces)
		pcancel()
		if pieces != nil && len(pieces) != piecestore.NumPieces(d.Size)*20 {
			pieces = nil
		}
	}
	remaining := delay - time.Since(t0)
	if len(got) > 0 || remaining < 0 {
		remaining = 0
	}
	if len(got) > 0 {
		remaining = delay // peers exist: give them the full delay before adding the mirror
	}
	job := &fetch.Job{
		Size:        d.Size,
		Pieces:      pieces,
		Peers:       peers,
		Mirror:      mirrorSource(u),
		MirrorDelay: remaining,
		MinPeers:    n.cfg.MinDownloadPeers,
		Sink:        dl.w,
	}
	// Values that arrived before the job existed are already queued in peers.
	res, err := n.dl.Fetch(ctx, job)
	n.account(dl, res)
	if err != nil {
		// The store checks the whole-file hash as the last byte arrives, so a
		// mismatch usually surfaces here, as the sink refusing the write. The
		// downloader does not wrap the sink's error (%v), so ask the writer.
		mismatch := errors.Is(err, piecestore.ErrMismatch) || errors.Is(dl.w.Err(), piecestore.ErrMismatch)
		if mismatch {
			dl.fail(fmt.Errorf("the file from %s did not match its hash; try again: the retry goes to the mirror", describeSources(res)))
		} else {
			dl.fail(fmt.Errorf("download from %s failed: %w", u.Addr(), err))
		}
		dl.w.Abort()
		if mismatch {
			n.verificationFailed(key, u, job, res, err)
			return piecestore.Info{}, false
		}
		n.log.Warn("download failed", "url", u.String(), "err", err, "took", time.Since(t0).Round(time.Millisecond))
		return piecestore.Info{}, false
	}
	info, err := dl.w.Commit()
	if err != nil {
		if errors.Is(err, piecestore.ErrMismatch) {
			n.verificationFailed(key, u, job, res, err)
			return piecestore.Info{}, false
		}
		n.log.Warn("download could not be stored", "url", u.String(), "err", err)
		return piecestore.Info{}, false
	}
	n.log.Info("download verified", "path", site+base+path, "size", d.Size, "mirror", res.MirrorBytes, "peers", res.PeerBytes,
		"sources", len(res.BytesBySource), "pieces_known", pieces != nil, "took", time.Since(t0).Round(time.Millisecond))
	n.notePath(&info, site, base, path)
	if n.index.IsIndex(site, base, path) {
		n.registerIndex(&info, site, base, path)
	}
	return info, true
}

// describeSources names where a download's bytes came from, for messages.
func describeSources(res fetch.Result) string {
	switch {
	case res.PeerBytes > 0 && res.MirrorBytes > 0:
		return "peers and the mirror"
	case res.PeerBytes > 0:
		return "peers"
	}
	return "the mirror"
}

// verificationFailed handles a download whose whole-file hash did not match:
// apt's connection was cut before the end (the store holds the last bytes back
// until the hash matched). Whoever supplied pieces is banned and apt's retry
// goes to the mirror.
func (n *Node) verificationFailed(key wire.ID, u mirrorurl.URL, job *fetch.Job, res fetch.Result, err error) {
	banned := 0
	ban := func(addr string) {
		if addr != "" && addr != job.Mirror.Addr && !n.dl.Banned(addr) {
			n.dl.Ban(addr, time.Now().Add(10*time.Minute))
			banned++
		}
	}
	for _, addr := range res.PieceSources {
		ban(addr)
	}
	if len(res.PieceSources) == 0 {
		// Without a piece map every peer that delivered bytes is suspect.
		for addr := range res.BytesBySource {
			ban(addr)
		}
	}
	n.mu.Lock()
	n.mirrorOnly[key] = time.Now()
	n.mu.Unlock()
	n.Stats.Mismatches.Inc()
	n.log.Warn("downloaded file failed verification; sources banned, next request goes to the mirror",
		"url", u.String(), "banned", banned, "mirror", res.MirrorBytes, "peers", res.PeerBytes, "err", err)
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

func (n *Node) account(dl *download, res fetch.Result) {
	n.Stats.Mirror.Add(res.MirrorBytes)
	n.Stats.Peers.Add(res.PeerBytes)
	src := SourceMirror
	switch {
	case res.PeerBytes > 0 && res.MirrorBytes > 0:
		src = SourceMixed
	case res.PeerBytes > 0:
		src = SourcePeers
	}
	dl.mu.Lock()
	dl.src = src
	dl.mu.Unlock()
}

// peerSource turns a DHT value into a downloader source.
func peerSource(v wire.PeerValue, d digest.Set) fetch.Source {
	var q []byte
	q = append(q, "/~/"...)
	t, _ := d.KeyType()
	q = httpserve.QuotePlus(q, d.Get(t))
	return fetch.Source{Addr: v.Contact.String(), Host: v.Contact.String(), Path: string(q)}
}

// peersAllowed is false for content whose last peer download failed
// verification (its retry goes to the mirror) and, briefly, for keys the DHT
// had no values for (a negative cache: no lookup delay for unshared files).
func (n *Node) peersAllowed(key wire.ID) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	if t, ok := n.mirrorOnly[key]; ok {
		if time.Since(t) < 10*time.Minute {
			return false
		}
		delete(n.mirrorOnly, key)
	}
	return true
}

// mirrorDelay is how long to wait for peer bytes before the mirror starts too:
// about twice the recent time to a first DHT value, bounded by MIRROR_DELAY.
// A key that recently had no values starts the mirror at once.
func (n *Node) mirrorDelay(key wire.ID, useDHT bool) time.Duration {
	if !useDHT {
		return 0
	}
	n.mu.Lock()
	t, none := n.noValues[key]
	if none && time.Since(t) > 30*time.Second {
		delete(n.noValues, key)
		none = false
	}
	n.mu.Unlock()
	if none {
		return 0
	}
	max := n.cfg.MirrorDelay
	ew := time.Duration(n.lookupEWMA.Load())
	if ew == 0 {
		return max
	}
	// The floor keeps a burst of slow first bytes (a busy peer, a cold TCP
	// connection) from pulling in the mirror needlessly.
	d := 2*ew + 150*time.Millisecond
	if d > max {
		d = max
	}
	return d
}

// prune forgets expired negative-cache and mirror-only entries, which would
// otherwise pile up for every file ever fetched.
func (n *Node) prune(now time.Time) {
	n.mu.Lock()
	defer n.mu.Unlock()
	for k, t := range n.noValues {
		if now.Sub(t) > 30*time.Second {
			delete(n.noValues, k)
		}
	}
	for k, t := range n.mirrorOnly {
		if now.Sub(t) > 10*time.Minute {
			delete(n.mirrorOnly, k)
		}
	}
}

func (n *Node) noteLookup(d time.Duration) {
	old := n.lookupEWMA.Load()
	if old == 0 {
		n.lookupEWMA.Store(int64(d))
		return
	}
	n.lookupEWMA.Store(old + (int64(d)-old)/8)
}

// dhtGetRaw fetches the raw values under key (piece strings for the 'h' form).
func (n *Node) dhtGetRaw(ctx context.Context, key wire.ID) ([][]byte, error) {
	return n.dht.GetValues(ctx, key)
}

// peerClient fetches piece strings from peers (the 'l' form); bodies are small.
var peerClient = &fasthttp.Client{
	Name:                "apt-p2p/" + Version,
	ReadTimeout:         5 * time.Second,
	WriteTimeout:        5 * time.Second,
	MaxResponseBodySize: 1 << 20, // 20 bytes per 512 KiB piece: 1 MiB covers a 25 GiB file
	Dial: func(addr string) (net.Conn, error) {
		return fasthttp.DialTimeout(addr, 2*time.Second)
	},
}

// httpPieces GETs /~/<quote_plus(h)> from a peer: the bencoded {t: piece string}.
func (n *Node) httpPieces(ctx context.Context, peer netip.AddrPort, h wire.ID) ([]byte, error) {
	req := fasthttp.AcquireRequest()
	resp := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	p := httpserve.QuotePlus([]byte("/~/"), h[:])
	req.SetRequestURI("http://" + peer.String() + string(p))
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(5 * time.Second)
	}
	if err := peerClient.DoDeadline(req, resp, deadline); err != nil {
		return nil, err
	}
	if resp.StatusCode() != fasthttp.StatusOK {
		return nil, fmt.Errorf("peer %s: piece string: HTTP %d", peer, resp.StatusCode())
	}
	return append([]byte(nil), resp.Body()...), nil
}

// Banned reports whether the downloader currently shuns the source at addr
// ("host:port") for having sent bad data.
func (n *Node) Banned(addr string) bool { return n.dl.Banned(addr) }
