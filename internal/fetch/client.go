package fetch

import (
	"bytes"
	"crypto/sha1"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/apt-p2p/apt-p2p/internal/httpserve"
)

// Why fasthttp.HostClient and not PipelineClient: in fasthttp v1.74.0 (pinned)
// PipelineClient has no MaxResponseBodySize and allocates Content-Length bytes
// before reading the body, so a peer that answers "Content-Length: 10000000000"
// makes the daemon allocate 10 GB; and its connection worker redials in a loop
// while requests are queued for a peer that refuses connections. HostClient
// with StreamResponseBody lets us check status, Content-Range and
// Content-Length before reading a byte, read the body straight into a pooled
// piece buffer, cut a request that lost an endgame race, and it fails a
// request as soon as its dial fails. Each source gets Config.Depth requests in
// flight over as many keep-alive connections: the same parallelism as a
// pipeline of depth Depth, without head-of-line blocking behind a slow piece.

func (d *Downloader) newHostClient(s *Source) *fasthttp.HostClient {
	dialTimeout, idle := d.cfg.PeerDialTimeout, d.cfg.PeerIdleTimeout
	if s.Mirror {
		dialTimeout, idle = d.cfg.MirrorDialTimeout, d.cfg.MirrorIdleTimeout
	}
	dialer := &net.Dialer{Timeout: dialTimeout, KeepAlive: 30 * time.Second}
	return &fasthttp.HostClient{
		Addr:      s.Addr,
		Name:      d.ua,
		IsTLS:     s.TLS,
		TLSConfig: d.cfg.TLSConfig,
		// Two downloads may use one source at once; beyond that requests wait
		// for a connection rather than fail.
		MaxConns:            2 * d.cfg.Depth,
		MaxConnWaitTimeout:  idle,
		MaxIdleConnDuration: 30 * time.Second,
		ReadBufferSize:      32 << 10,
		WriteTimeout:        idle,
		// One retry, only when a reused keep-alive connection turned out to be
		// closed by the server (fasthttp issue #1051): everything else is
		// counted against the source by the scheduler.
		MaxIdemponentCallAttempts: 2,
		RetryIfErr:                retryStaleConn,
		StreamResponseBody:        true,
		DisablePathNormalizing:    true, // /~/ paths are already quote_plus-encoded
		Dial: func(addr string) (net.Conn, error) {
			c, err := dialer.Dial("tcp", addr)
			if err != nil {
				return nil, err
			}
			return newIdleConn(c, idle), nil
		},
	}
}

func retryStaleConn(_ *fasthttp.Request, _ int, err error) (resetTimeout, retry bool) {
	return false, errors.Is(err, io.EOF) || errors.Is(err, fasthttp.ErrConnectionClosed)
}

// idleConn turns every read deadline into "no byte for idle" (bounded by any
// deadline fasthttp sets), so a source that stalls mid-body fails in idle
// time, while a slow but steady one is never cut.
type idleConn struct {
	net.Conn
	idle  time.Duration
	outer time.Time // deadline set by fasthttp; zero = none
	addr  connAddr
	inq   inqProbe // bytes the kernel holds for this socket (linux)
}

func newIdleConn(c net.Conn, idle time.Duration) *idleConn {
	ic := &idleConn{Conn: c, idle: idle}
	ic.addr = connAddr{Addr: c.RemoteAddr(), c: ic}
	ic.inq.init(c)
	return ic
}

// connAddr is the connection's remote address, and the way back from a
// fasthttp.Response (RemoteAddr is all it says about its connection) to the
// connection, so a stream can ask whether more bytes have already arrived.
type connAddr struct {
	net.Addr
	c *idleConn
}

func (c *idleConn) RemoteAddr() net.Addr { return &c.addr }

// responseConn is the connection resp was read from; nil if not one of ours.
func responseConn(resp *fasthttp.Response) *idleConn {
	if a, ok := resp.RemoteAddr().(*connAddr); ok {
		return a.c
	}
	return nil
}

// queued says whether bytes have arrived on the socket that no Read has taken
// yet, so that the next Read returns at once. False when it cannot tell.
func (c *idleConn) queued() bool {
	return c != nil && c.inq.queued()
}

func (c *idleConn) SetReadDeadline(t time.Time) error { c.outer = t; return nil }

func (c *idleConn) SetDeadline(t time.Time) error {
	c.outer = t
	return c.Conn.SetWriteDeadline(t)
}

func (c *idleConn) Read(p []byte) (int, error) {
	d := time.Now().Add(c.idle)
	if !c.outer.IsZero() && c.outer.Before(d) {
		d = c.outer
	}
	if err := c.Conn.SetReadDeadline(d); err != nil {
		return 0, err
	}
	return c.Conn.Read(p)
}

// hostHeader is the Host header for s: Source.Host (or Addr) with the port
// when it is not the scheme's default, without it when it is (the original
// always dropped it, §8.2 item 12).
func hostHeader(s *Source) string {
	def := "80"
	if s.TLS {
		def = "443"
	}
	h := s.Host
	if h == "" {
		h = s.Addr
	}
	host, port, err := net.SplitHostPort(h)
	if err != nil { // no port in Host: take Addr's
		host = h
		if len(host) > 1 && host[0] == '[' && host[len(host)-1] == ']' {
			host = host[1 : len(host)-1]
		}
		if _, p, err := net.SplitHostPort(s.Addr); err == nil {
			port = p
		} else {
			port = def
		}
	}
	if port == def {
		if ip := net.ParseIP(host); ip != nil && ip.To4() == nil {
			return "[" + host + "]"
		}
		return host
	}
	return net.JoinHostPort(host, port)
}

// bufPool holds piece buffers (*[]byte of PieceSize): memory stays bounded by
// sources × Depth pieces whatever the file size.
var bufPool = sync.Pool{New: func() any { b := make([]byte, PieceSize); return &b }}

// pieceLen is the length of piece i of a file of size bytes.
func pieceLen(i int, size int64) int64 {
	off := int64(i) * PieceSize
	if size-off < PieceSize {
		return size - off
	}
	return PieceSize
}

// setupRequest fills req for source s.
func (s *source) setupRequest(req *fasthttp.Request) {
	req.Header.SetMethod(fasthttp.MethodGet)
	req.SetRequestURI(s.src.Path)
	if s.src.TLS {
		req.URI().SetScheme("https") // HostClient refuses a scheme that differs from IsTLS
	}
	req.URI().SetHost(s.host) // fasthttp writes the Host header from the URI
	req.Header.SetHost(s.host)
	req.Header.SetUserAgent(s.ua)
	if s.src.Partial {
		req.Header.SetCanonical(hdrPartial, valPartial)
	}
}

// The request header that asks a peer for a file it is still downloading
// (wire/doc.go, "Downloads in progress"); original peers never send it.
var (
	hdrPartial = []byte("X-Apt-P2P-Partial")
	valPartial = []byte("1")
	hdrLoad    = []byte(httpserve.HeaderLoad)
)

// getPiece fetches piece i from s into buf and returns the piece and its
// SHA-1. The body is read only after status, Content-Range and
// Content-Length check out, so a source answering with the whole file is
// never read (peer-systems row 5) and never costs more than a piece buffer.
func (dl *download) getPiece(s *source, i int, buf []byte, sum *[20]byte, t0 time.Time) (data []byte, hdrAt time.Time, err error) {
	size := dl.job.Size
	off := int64(i) * PieceSize
	n := pieceLen(i, size)
	req := fasthttp.AcquireRequest()
	resp := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	s.setupRequest(req)
	single := dl.n == 1
	if !single {
		req.Header.SetByteRange(int(off), int(off+n-1))
	}
	if err = s.hc.DoDeadline(req, resp, t0.Add(dl.d.cfg.PieceTimeout)); err != nil {
		return nil, hdrAt, fmt.Errorf("fetch: %s: %w", s.key, err)
	}
	hdrAt = dl.d.clk.Now()
	defer resp.CloseBodyStream() //nolint:errcheck // closing discards the connection if the body was not read to its end
	if !s.mirror {
		if v := resp.Header.PeekBytes(hdrLoad); len(v) > 0 {
			if l, ok := httpserve.ParseLoad(v); ok {
				dl.d.noteLoad(s.key, l, hdrAt)
			}
		}
	}
	switch st := resp.StatusCode(); {
	case st == fasthttp.StatusNotFound:
		return nil, hdrAt, errNotFound
	case st == fasthttp.StatusServiceUnavailable && !s.mirror:
		return nil, hdrAt, busyError(resp)
	case st == fasthttp.StatusOK && !single:
		return nil, hdrAt, errIgnoredRange
	case st == fasthttp.StatusPartialContent:
		a, b, total, ok := parseContentRange(resp.Header.Peek(fasthttp.HeaderContentRange))
		if !ok || a != off || b != off+n-1 || total != size {
			return nil, hdrAt, fmt.Errorf("%w: asked %d-%d/%d, got %q", errContentRange, off, off+n-1, size,
				resp.Header.Peek(fasthttp.HeaderContentRange))
		}
	case st == fasthttp.StatusOK: // single piece, plain GET
	default:
		return nil, hdrAt, fmt.Errorf("%w %d", errStatus, st)
	}
	if cl := resp.Header.ContentLength(); cl >= 0 && int64(cl) != n {
		return nil, hdrAt, fmt.Errorf("%w: Content-Length %d, want %d", errBodyLength, cl, n)
	}
	body := resp.BodyStream()
	if body == nil {
		return nil, hdrAt, fmt.Errorf("%w: no body", errBodyLength)
	}
	var got int64
	for got < n {
		m, rerr := body.Read(buf[got:n])
		got += int64(m)
		s.noteRecv(dl, m)
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			return nil, hdrAt, fmt.Errorf("fetch: %s: piece %d after %d bytes: %w", s.key, i, got, rerr)
		}
		if dl.pieceDone(i) {
			dl.wasted.Add(got)
			return nil, hdrAt, errLost
		}
	}
	if got < n {
		return nil, hdrAt, fmt.Errorf("%w: %d of %d bytes", errBodyLength, got, n)
	}
	// Read to EOF so the connection can be reused, and so a longer body
	// (chunked answers have no Content-Length to check) is caught.
	var extra [1]byte
	if m, rerr := body.Read(extra[:]); m > 0 {
		return nil, hdrAt, fmt.Errorf("%w: more than %d bytes", errBodyLength, n)
	} else if rerr != nil && rerr != io.EOF {
		return nil, hdrAt, fmt.Errorf("fetch: %s: piece %d: %w", s.key, i, rerr)
	}
	data = buf[:n]
	*sum = sha1.Sum(data)
	if p := dl.job.Pieces; p != nil && [20]byte(p[20*i:20*i+20]) != *sum {
		dl.wasted.Add(n)
		return nil, hdrAt, fmt.Errorf("%w: piece %d", errBadPiece, i)
	}
	return data, hdrAt, nil
}

// probeHead asks an unknown peer HEAD for its load header (LoadAware), so
// that it is ranked before it is given a piece. A peer that sends none, or
// offers no capacity, is probed with one piece request instead.
func (dl *download) probeHead(s *source) {
	known := dl.headLoad(s)
	dl.mu.Lock()
	s.headProbe = false
	if known {
		s.probing = false
	}
	dl.cond.Broadcast()
	dl.mu.Unlock()
}

// refreshLoad asks a peer whose load header has gone stale HEAD for a fresh
// one (see "Load-aware ranking").
func (dl *download) refreshLoad(s *source) {
	if dl.headLoad(s) {
		dl.mu.Lock()
		dl.cond.Broadcast()
		dl.mu.Unlock()
	}
}

// headLoad sends s HEAD and records the load header of a 200 answer; it
// reports whether there was one offering some capacity.
func (dl *download) headLoad(s *source) bool {
	req := fasthttp.AcquireRequest()
	resp := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	s.setupRequest(req)
	req.Header.SetMethod(fasthttp.MethodHead)
	if err := s.hc.DoDeadline(req, resp, time.Now().Add(min(dl.d.cfg.PeerIdleTimeout, headProbeTimeout))); err != nil {
		return false
	}
	l, ok := httpserve.ParseLoad(resp.Header.PeekBytes(hdrLoad))
	if !ok || l.Capacity <= 0 || resp.StatusCode() != fasthttp.StatusOK {
		return false
	}
	dl.d.noteLoad(s.key, l, dl.d.clk.Now())
	return true
}

// headProbeTimeout bounds the HEAD that asks an unknown peer for its load.
const headProbeTimeout = 2 * time.Second

// parseContentRange parses "bytes a-b/total" without allocating.
func parseContentRange(v []byte) (a, b, total int64, ok bool) {
	rest, found := bytes.CutPrefix(v, []byte("bytes "))
	if !found {
		return 0, 0, 0, false
	}
	as, rest, found := bytes.Cut(rest, []byte("-"))
	if !found {
		return 0, 0, 0, false
	}
	bs, ts, found := bytes.Cut(rest, []byte("/"))
	if !found {
		return 0, 0, 0, false
	}
	var ok1, ok2, ok3 bool
	a, ok1 = parseDec(as)
	b, ok2 = parseDec(bs)
	total, ok3 = parseDec(ts)
	if !ok1 || !ok2 || !ok3 || b < a || total <= b {
		return 0, 0, 0, false
	}
	return a, b, total, true
}

// parseDec parses a non-empty run of decimal digits that fits an int64.
func parseDec(s []byte) (int64, bool) {
	if len(s) == 0 || len(s) > 18 {
		return 0, false
	}
	var n int64
	for _, c := range s {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}

// busyError is errBusy carrying how long to leave the source alone.
func busyError(resp *fasthttp.Response) error {
	return &busy{retryAfter(resp.Header.Peek(fasthttp.HeaderRetryAfter))}
}

type busy struct{ d time.Duration }

func (b *busy) Error() string { return fmt.Sprintf("%v; retry after %v", errBusy, b.d) }
func (b *busy) Unwrap() error { return errBusy }
