package httpserve

import (
	"context"
	"encoding/hex"
	"os"
	"time"

	"github.com/valyala/fasthttp"
)

// FileResponse describes one file to send. Either File (complete) or Growing (being downloaded) is set.
type FileResponse struct {
	// File is a complete file. It is only read at explicit offsets (sendfile with an offset, pread),
	// never through its own offset, so one open file may serve concurrent responses.
	File *os.File
	// Growing, if set, is a file still being written: the body streams as it grows (StreamBody).
	Growing Growing
	// Size is the length of the complete content (Content-Length of a 200).
	Size int64
	// ModTime is sent as Last-Modified and used for If-Range / If-Modified-Since; zero: none.
	ModTime time.Time
	// ContentType; empty means application/octet-stream.
	ContentType string
	// ETag is the content's hash (raw bytes); it is sent as a strong entity tag of quoted lower-case
	// hex and used for If-Range / If-None-Match. Nil: no ETag.
	ETag []byte
	// Release, if set, is called exactly once when the file is no longer needed: after the body was
	// sent or abandoned, or at once when no body is sent (HEAD, 304, 416).
	Release func()
	// Context ends waits for a Growing file (nil: none).
	Context context.Context
}

var (
	hdrAcceptRanges = []byte("Accept-Ranges")
	hdrETag         = []byte("ETag")
	hdrContentRange = []byte("Content-Range")
	hdrRetryAfter   = []byte("Retry-After")
	hdrAllow        = []byte("Allow")
	valBytes        = []byte("bytes")
	valGetHead      = []byte("GET, HEAD")
)

const octetStream = "application/octet-stream"

// ServeFile answers a GET or HEAD for one file: 200 with the whole file, 206 with Content-Range for
// one satisfiable Range (unless If-Range no longer matches), 416 with "Content-Range: bytes */N" for an
// unsatisfiable one, 304 for a matching If-None-Match / If-Modified-Since. Several ranges get the
// whole file (200). The body is sent after the handler returns, by fasthttp on the connection's
// goroutine, with sendfile. The caller checks the method; ServeFile treats everything but HEAD as GET.
// It is for apt-facing responses: it is never throttled (PeerHandler serves peers).
func ServeFile(ctx *fasthttp.RequestCtx, r *FileResponse) {
	if r.Size < quickFile {
		if c, ok := ctx.Conn().(*tcpLimitConn); ok && c.ra != nil {
			c.ra.quick = true // sent at once: the request behind it needs no head start
		}
	}
	serveFile(ctx, r, sender{})
}

// quickFile: a file from disk smaller than this is sent in well under a
// millisecond on a LAN, too short for a head start to pay the check.
const quickFile = 1 << 20

// appendETag appends the quoted hex entity tag for hash h.
func appendETag(dst, h []byte) []byte {
	if len(h) == 0 {
		return dst
	}
	dst = append(dst, '"')
	dst = hex.AppendEncode(dst, h)
	return append(dst, '"')
}

// notModified evaluates If-None-Match, then (only without it) If-Modified-Since (RFC 9110 §13.2.2).
func notModified(ctx *fasthttp.RequestCtx, etag []byte, modTime time.Time) bool {
	if inm := ctx.Request.Header.Peek(fasthttp.HeaderIfNoneMatch); len(inm) > 0 {
		return etagListMatches(inm, etag)
	}
	if modTime.IsZero() {
		return false
	}
	ims := ctx.Request.Header.Peek(fasthttp.HeaderIfModifiedSince)
	if len(ims) == 0 {
		return false
	}
	t, err := fasthttp.ParseHTTPDate(ims)
	return err == nil && modTime.Unix() <= t.Unix()
}

// rangeFor sets the status and range headers for a representation of size bytes and returns the span
// to send; ok = false means the response is complete already (416 or 304).
func rangeFor(ctx *fasthttp.RequestCtx, size int64, etag []byte, modTime time.Time) (start, n int64, ok bool) {
	h := &ctx.Response.Header
	h.SetCanonical(hdrAcceptRanges, valBytes)
	if len(etag) > 0 {
		h.SetCanonical(hdrETag, etag)
	}
	if !modTime.IsZero() {
		h.SetLastModified(modTime)
	}
	if notModified(ctx, etag, modTime) {
		ctx.SetStatusCode(fasthttp.StatusNotModified)
		return 0, 0, false
	}
	rng := ctx.Request.Header.Peek(fasthttp.HeaderRange)
	if len(rng) > 0 && ifRangeMatches(ctx.Request.Header.Peek(fasthttp.HeaderIfRange), etag, modTime) {
		s, e, partial, err := ParseRange(rng, size)
		if err != nil {
			ctx.SetStatusCode(fasthttp.StatusRequestedRangeNotSatisfiable)
			var buf [32]byte
			v := fasthttp.AppendUint(append(buf[:0], "bytes */"...), int(size))
			h.SetCanonical(hdrContentRange, v)
			return 0, 0, false
		}
		if partial {
			ctx.SetStatusCode(fasthttp.StatusPartialContent)
			h.SetContentRange(int(s), int(e), int(size))
			return s, e - s + 1, true
		}
	}
	ctx.SetStatusCode(fasthttp.StatusOK)
	return 0, size, true
}

func serveFile(ctx *fasthttp.RequestCtx, r *FileResponse, s sender) {
	if r.File == nil && r.Growing == nil {
		// A store whose files are not *os.File (a test file system) cannot be sent with sendfile.
		s.done()
		if r.Release != nil {
			r.Release()
		}
		ctx.SetStatusCode(fasthttp.StatusInternalServerError)
		return
	}
	var etagBuf [2 + 2*64]byte
	etag := appendETag(etagBuf[:0], r.ETag)
	ct := r.ContentType
	if ct == "" {
		ct = octetStream
	}
	ctx.Response.Header.SetContentType(ct)
	start, n, ok := rangeFor(ctx, r.Size, etag, r.ModTime)
	if !ok || ctx.IsHead() || n == 0 {
		if ok {
			// HEAD: fasthttp keeps an explicit Content-Length when the body is empty and skipped.
			ctx.Response.Header.SetContentLength(int(n))
		}
		s.done()
		if r.Release != nil {
			r.Release()
		}
		return
	}
	s.setConn(ctx.Conn())
	if r.Growing != nil {
		sb := NewStreamBody(r.Growing, start, n, r.Release)
		sb.sender = s
		if r.Context != nil {
			sb.SetContext(r.Context)
		}
		ctx.Response.SetBodyStream(sb, int(n))
		return
	}
	b := fileBodyPool.Get().(*fileBody)
	bound := b.rsWrite // bound to b's own rs: keep it so the pooled body allocates nothing
	b.sender = s
	b.rsWrite = bound
	b.f, b.off, b.n, b.release = r.File, start, n, r.Release
	ctx.Response.SetBodyStream(b, int(n))
}

// serveBytes answers GET/HEAD for an in-memory representation with the same Range rules.
func serveBytes(ctx *fasthttp.RequestCtx, body []byte, contentType string, etag []byte) {
	ctx.Response.Header.SetContentType(contentType)
	start, n, ok := rangeFor(ctx, int64(len(body)), etag, time.Time{})
	if !ok {
		return
	}
	if ctx.IsHead() {
		ctx.Response.Header.SetContentLength(int(n))
		return
	}
	ctx.Response.SetBody(body[start : start+n])
}
