package httpserve

import (
	"bytes"
	"net/netip"
	"syscall"

	"github.com/valyala/fasthttp"
)

// Read-ahead of pipelined requests.
//
// fasthttp serves the requests of one connection strictly one after another:
// it parses request N+1 only once response N has been written. apt pipelines
// up to 10 requests on one connection, so behind a cache the download of file
// N+1 would start only after file N had been sent. The read-ahead lets the
// work for later requests start at once while responses still go out in order:
// a trusted connection (ServerConfig.Unlimited) notes every request line that
// passes through its Read, and at the start of each request's handler pulls in,
// without waiting, whatever else the client has sent (fasthttp itself reads the
// socket only when its buffer has no request left, and apt sends request N+10
// once response N is complete). Each request line queued behind the request
// being handled, or behind the one fasthttp is reading, is reported to
// ServerConfig.Pipelined.
// fasthttp still parses every request itself from the same bytes; the scanner
// only looks, and stops looking at a connection whose requests carry bodies
// (it could no longer tell request lines from body bytes).

const (
	// readAheadBuf holds bytes pulled off the socket before fasthttp asks for
	// them: apt's 10 requests take about 2-3 KiB.
	readAheadBuf = 8 << 10
	// maxRequestLine bounds the request line the scanner keeps (longer ones are
	// not reported; fasthttp answers them with its own limits).
	maxRequestLine = 2 << 10
	// maxAhead bounds how far beyond the request being answered reports go.
	maxAhead = 64
)

type readAhead struct {
	from netip.Addr
	hook func(from netip.Addr, method, uri []byte)

	buf  [readAheadBuf]byte // buf[r:w]: drained, not yet read by fasthttp
	r, w int

	line      [maxRequestLine]byte // the current line's first bytes
	lineLen   int                  // the current line's full length so far
	inHeaders bool                 // between a request line and the blank line after its headers
	off       bool                 // a request with a body was seen: scanning stopped

	seen    int // request lines scanned
	handled int // requests whose handler has started
}

// read serves fasthttp's Read: drained bytes first, then the socket; bytes
// read from the socket are scanned on their way.
func (c *tcpLimitConn) readThrough(p []byte) (int, error) {
	ra := c.ra
	if ra.r < ra.w {
		n := copy(p, ra.buf[ra.r:ra.w])
		ra.r += n
		if ra.r == ra.w {
			ra.r, ra.w = 0, 0
			c.buffered.Store(false)
		}
		c.busy.Store(true)
		return n, nil
	}
	n, err := c.TCPConn.Read(p)
	if n > 0 {
		c.busy.Store(true)
		// fasthttp reads to parse the request after the last one handled:
		// that one is not ahead of anything.
		ra.scan(p[:n], ra.handled+1)
	}
	return n, err
}

// nextRequest runs as a request's handler starts: it counts the request and
// drains what the client has sent since, without waiting.
func (c *tcpLimitConn) nextRequest() {
	ra := c.ra
	ra.handled++
	if c.raw == nil || ra.off {
		return
	}
	if ra.r > 0 {
		ra.w = copy(ra.buf[:], ra.buf[ra.r:ra.w])
		ra.r = 0
	}
	if ra.w == len(ra.buf) {
		return
	}
	var n int
	var err error
	c.raw.Read(func(fd uintptr) bool { //nolint:errcheck // a failed read leaves the error to fasthttp's own
		n, err = syscall.Read(int(fd), ra.buf[ra.w:])
		return true // never wait: the socket is non-blocking and an empty one is fine
	})
	if err == nil && n > 0 {
		// Every request after the one whose handler starts now waits behind
		// its response.
		ra.scan(ra.buf[ra.w:ra.w+n], ra.handled)
		ra.w += n
		c.buffered.Store(true)
	}
}

// scan follows the request stream line by line and reports the request lines
// after the first upTo.
func (ra *readAhead) scan(p []byte, upTo int) {
	for len(p) > 0 && !ra.off {
		i := bytes.IndexByte(p, '\n')
		chunk := p
		if i >= 0 {
			chunk = p[:i]
		}
		if ra.lineLen < len(ra.line) {
			copy(ra.line[ra.lineLen:], chunk)
		}
		ra.lineLen += len(chunk)
		if i < 0 {
			return
		}
		p = p[i+1:]
		ra.endLine(upTo)
	}
}

func (ra *readAhead) endLine(upTo int) {
	n := ra.lineLen
	ra.lineLen = 0
	kept := ra.line[:min(n, len(ra.line))]
	if n > 0 && n <= len(ra.line) && kept[n-1] == '\r' {
		n--
		kept = kept[:n]
	}
	if !ra.inHeaders {
		if n == 0 {
			return // an empty line before a request is allowed (RFC 9112 §2.2)
		}
		ra.seen++
		ra.inHeaders = true
		if n > len(ra.line) || ra.seen <= upTo || ra.seen-ra.handled > maxAhead {
			return
		}
		// METHOD SP URI SP VERSION
		sp := bytes.IndexByte(kept, ' ')
		if sp <= 0 {
			return
		}
		rest := kept[sp+1:]
		sp2 := bytes.IndexByte(rest, ' ')
		if sp2 <= 0 {
			return
		}
		ra.hook(ra.from, kept[:sp], rest[:sp2])
		return
	}
	if n == 0 {
		ra.inHeaders = false
		return
	}
	if hasPrefixFold(kept, "content-length:") || hasPrefixFold(kept, "transfer-encoding:") {
		ra.off = true
	}
}

func hasPrefixFold(b []byte, prefix string) bool {
	if len(b) < len(prefix) {
		return false
	}
	for i := 0; i < len(prefix); i++ {
		c := b[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != prefix[i] {
			return false
		}
	}
	return true
}

// pipelinedHandler wraps h so each request on a read-ahead connection drains
// the connection before h runs.
func pipelinedHandler(h fasthttp.RequestHandler) fasthttp.RequestHandler {
	return func(ctx *fasthttp.RequestCtx) {
		if c, ok := ctx.Conn().(*tcpLimitConn); ok && c.ra != nil {
			c.nextRequest()
		}
		h(ctx)
	}
}
