package httpserve

import (
	"bytes"
	"log/slog"
	"net/netip"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"
)

// Content is what the peer handler serves: the node adapts the piecestore to it.
type Content interface {
	// OpenByHash finds a complete, verified file by one of its full hashes (16, 20, 32 or 64 bytes).
	// f is sent with sendfile at explicit offsets; only on connections without a descriptor (see the
	// package doc) is its own offset used, so give each call its own open file, as ServeFile requires.
	// release is called when the response is done with f (it may close f); it may be nil.
	// h is only valid during the call.
	OpenByHash(h []byte) (f *os.File, size int64, modTime time.Time, release func(), ok bool)
	// PieceString returns the piece string (20-byte SHA-1 per piece) whose SHA-1 is h.
	// The handler copies it before returning.
	PieceString(h []byte) ([]byte, bool)
	// OpenPartial finds a file still being downloaded, by the full hash peers ask for it by,
	// for a peer that accepts one (it sent X-Apt-P2P-Partial). g streams the verified
	// contiguous part, the last byte only once the whole file is verified, and gives up
	// when the download stalls; release is called when the response is done.
	OpenPartial(h []byte) (g Growing, size int64, release func(), ok bool)
}

// PeerStats counts what the peer handler did since it was created.
type PeerStats struct {
	Requests  int64 // every request handled
	Files     int64 // file responses (200, 206, 304, 416, HEAD included)
	Pieces    int64 // piece-string responses
	NotFound  int64 // 404s
	Busy      int64 // 503s because MaxUploads was reached
	Partial   int64 // responses streamed from files still being downloaded
	BytesSent int64 // file body bytes actually written to peers ("peer uploads")
}

// PeerHandler serves the peer protocol's GET/HEAD /~/<quote_plus(hash)> (reference §4.4): a complete
// file by full hash, else the bencoded piece string by piece-string hash
// (200, application/x-bencoded, body d1:t<len>:<piece string>e), else 404. Anything other than
// exactly /~/<one segment> is 404. Files go through the Throttle; piece strings are small and are not
// throttled. Keep-alive and pipelining are the server's (fasthttp answers pipelined requests in order).
type PeerHandler struct {
	c      Content
	t      *Throttle
	log    *slog.Logger
	weight float64 // UPLOAD_WEIGHT: scales the capacity the load header offers
	meter  loadMeter
	now    func() time.Time

	requests, files, pieces, notFound, busy, partial, sent atomic.Int64
}

// NewPeerHandler returns a handler serving c, limited by t (nil: unlimited).
func NewPeerHandler(c Content, t *Throttle, log *slog.Logger) *PeerHandler {
	if log == nil {
		log = slog.Default()
	}
	return &PeerHandler{c: c, t: t, log: log, weight: 1, now: time.Now}
}

// SetUploadWeight scales the upload capacity the load header offers
// (UPLOAD_WEIGHT, default 1): above 1 a volunteer with a fast link asks for
// more load, below 1 a laptop on battery or a metered link for less. Call it
// before serving.
func (h *PeerHandler) SetUploadWeight(w float64) {
	if w > 0 {
		h.weight = w
	}
}

// maxHashLen is the longest full hash (SHA-512); a longer decoded name is never found.
const maxHashLen = 64

var (
	peerPrefix    = []byte("/~/")
	bencodedType  = "application/x-bencoded"
	hashBufPool   = sync.Pool{New: func() any { return new([3 * maxHashLen]byte) }}
	bencodeBufSz  = 64 << 10
	bencodeBufFor = sync.Pool{New: func() any { b := make([]byte, 0, bencodeBufSz); return &b }}
)

// ServeFastHTTP handles one /~/ request.
func (h *PeerHandler) ServeFastHTTP(ctx *fasthttp.RequestCtx) {
	h.requests.Add(1)
	if !ctx.IsGet() && !ctx.IsHead() {
		ctx.Response.Header.SetCanonical(hdrAllow, valGetHead)
		ctx.SetStatusCode(fasthttp.StatusMethodNotAllowed)
		return
	}
	// The raw request URI, not fasthttp's decoded path: the hash is quote_plus'ed binary and
	// '+' means a space (reference §4.4).
	uri := ctx.Request.Header.RequestURI()
	if !bytes.HasPrefix(uri, peerPrefix) {
		h.notFound404(ctx)
		return
	}
	raw := uri[len(peerPrefix):]
	if len(raw) == 0 || len(raw) > 3*maxHashLen || bytes.ContainsAny(raw, "/?#") {
		h.notFound404(ctx)
		return
	}
	buf := hashBufPool.Get().(*[3 * maxHashLen]byte)
	defer hashBufPool.Put(buf)
	hash, err := UnquotePlus(buf[:0], raw)
	if err != nil || len(hash) > maxHashLen {
		h.notFound404(ctx)
		return
	}
	switch len(hash) {
	case 16, 20, 32, 64:
		if f, size, modTime, release, ok := h.c.OpenByHash(hash); ok {
			h.serveFile(ctx, &FileResponse{File: f, Size: size, ModTime: modTime, ETag: hash, Release: release})
			return
		}
		if len(ctx.Request.Header.PeekBytes(hdrPartial)) > 0 {
			if g, size, release, ok := h.c.OpenPartial(hash); ok {
				h.partial.Add(1)
				h.serveFile(ctx, &FileResponse{Growing: g, Size: size, ETag: hash, Release: release})
				return
			}
		}
	}
	if len(hash) == 20 {
		if ps, ok := h.c.PieceString(hash); ok {
			h.servePieces(ctx, hash, ps)
			return
		}
	}
	h.notFound404(ctx)
}

func (h *PeerHandler) notFound404(ctx *fasthttp.RequestCtx) {
	h.notFound.Add(1)
	ctx.SetStatusCode(fasthttp.StatusNotFound)
}

// hdrPartial asks for a file still being downloaded (wire/doc.go, "Downloads
// in progress"); original peers never send it, so they only ever get whole,
// verified files.
var hdrPartial = []byte("X-Apt-P2P-Partial")

func (h *PeerHandler) serveFile(ctx *fasthttp.RequestCtx, r *FileResponse) {
	release := r.Release
	s := sender{thr: h.t, sent: &h.sent}
	var lb [128]byte
	if ctx.IsHead() {
		// (A downloader that knows nothing of us asks HEAD for our load
		// before it sends a piece request.)
		ctx.Response.Header.SetCanonical(hdrLoad, AppendLoad(lb[:0], h.load(h.now(), h.t.Active())))
	} else {
		addr := remoteAddr(ctx)
		peer, ok := h.t.acquire(addr)
		if !ok {
			h.busy.Add(1)
			h.log.Debug("upload refused: MaxUploads reached", "peer", addr, "active", h.t.Active())
			if release != nil {
				release()
			}
			active := h.t.Active()
			ctx.Response.Header.SetCanonical(hdrLoad, AppendLoad(lb[:0], h.load(h.now(), active)))
			var b [8]byte
			ctx.Response.Header.SetCanonical(hdrRetryAfter, strconv.AppendInt(b[:0], h.retryAfter(active), 10))
			ctx.SetStatusCode(fasthttp.StatusServiceUnavailable)
			return
		}
		s.peer, s.slot = peer, h.t != nil
		// (Without a Throttle, no limit at all, the uploads are not counted: 0.)
		ctx.Response.Header.SetCanonical(hdrLoad, AppendLoad(lb[:0], h.load(h.now(), h.t.Active())))
	}
	h.files.Add(1)
	serveFile(ctx, r, s)
}

// servePieces sends bencode({'t': ps}), the original's PiecesUploader body.
func (h *PeerHandler) servePieces(ctx *fasthttp.RequestCtx, hash, ps []byte) {
	h.pieces.Add(1)
	bp := bencodeBufFor.Get().(*[]byte)
	b := append((*bp)[:0], "d1:t"...)
	b = strconv.AppendInt(b, int64(len(ps)), 10)
	b = append(b, ':')
	b = append(b, ps...)
	b = append(b, 'e')
	var etagBuf [2 + 2*20]byte
	serveBytes(ctx, b, bencodedType, appendETag(etagBuf[:0], hash))
	if cap(b) <= 4*bencodeBufSz { // do not keep a pathological buffer alive
		*bp = b
		bencodeBufFor.Put(bp)
	}
}

// remoteAddr returns the client's IP without allocating.
func remoteAddr(ctx *fasthttp.RequestCtx) netip.Addr {
	if ap, ok := ctx.RemoteAddr().(interface{ AddrPort() netip.AddrPort }); ok {
		return ap.AddrPort().Addr()
	}
	a, _ := netip.AddrFromSlice(ctx.RemoteIP())
	return a
}

// Stats returns the counters so far.
func (h *PeerHandler) Stats() PeerStats {
	return PeerStats{
		Requests: h.requests.Load(), Files: h.files.Load(), Pieces: h.pieces.Load(),
		NotFound: h.notFound.Load(), Busy: h.busy.Load(), Partial: h.partial.Load(), BytesSent: h.sent.Load(),
	}
}
