package httpserve

import (
	"bytes"
	"errors"
	"io"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"
)

// Read-ahead of pipelined requests.
//
// fasthttp serves the requests of one connection strictly one after another:
// it parses request N+1 only once response N has been written, and reads the
// socket only when its buffer holds no request. apt pipelines up to 10
// requests on one connection and sends request N+10 as soon as response N is
// complete, so behind a cache the download of file N+1 would start only after
// file N had been sent, and a request sent while a long response streams would
// sit unread in the socket until that response ended.
//
// On a trusted connection (ServerConfig.Unlimited) a reader goroutine reads
// the socket continuously into a small buffer that fasthttp's Read takes from
// (honouring fasthttp's read deadlines), and follows the request stream line
// by line. A request line queued behind the request being answered is reported
// to ServerConfig.Pipelined once that answer is being sent (its handler has
// returned: its own first bytes are in) and the line is among the next
// PipelinedAhead requests, so its work overlaps the body before it while
// responses still go out in order. Starting it earlier, while the answer's own
// lookup and first byte are still being waited for, only competes with them. fasthttp parses every request itself from
// the same bytes; the scanner only looks, and stops looking at a connection
// whose requests carry bodies (it could no longer tell request lines from body
// bytes). A full buffer stops the reader: a client cannot make the daemon read
// ahead without bound.
//
// The reader goroutine costs a hand-off per request (a third of the server's
// user CPU for small cached files, bench/RESULTS.md proxy section), and a
// client that sends one request at a time gains nothing from it. So a
// connection starts direct: fasthttp's Read reads the socket itself, under the
// socket's own deadline, and the scanner follows the same bytes. It turns to
// the reader goroutine, for good, once the client is seen pipelining: a read
// holds a request line beyond the one fasthttp is about to parse, or bytes
// wait in the socket as an answer starts to be sent. apt sends its first
// requests together, so its connections turn at their first read.

const (
	// readAheadBuf holds bytes read off the socket before fasthttp asks for
	// them: apt's 10 requests take about 2-3 KiB.
	readAheadBuf = 8 << 10
	// maxRequestLine bounds the request line the scanner keeps (longer ones are
	// not reported; fasthttp answers them with its own limits).
	maxRequestLine = 2 << 10
	// maxDeferred bounds the request lines kept to be reported later (beyond
	// the window), and deferredURI the URI length kept for each: longer ones
	// are served in their turn without a head start.
	maxDeferred = 16
	deferredURI = 512
	// defaultAhead: internal/fetch gives one source connections for two
	// downloads at once (2 × its depth); more downloads at once from one peer
	// queue for them, and a download whose first piece waits past its mirror
	// delay pulls the mirror in. So the download of the next file starts
	// while this one is sent, not all nine at once.
	defaultAhead = 1
)

// deferred is a queued request beyond the window, to report when it comes up.
type deferred struct {
	i           int64
	method, uri []byte
}

type readAhead struct {
	c    *tcpLimitConn
	from netip.Addr
	hook func(from netip.Addr, method, uri []byte)

	mu       sync.Mutex
	buf      [readAheadBuf]byte // buf[r:w]: read from the socket, not yet by fasthttp
	r, w     int
	err      error     // the socket's read error, after the buffered bytes
	deadline time.Time // fasthttp's read deadline
	timer    *time.Timer

	data   chan struct{} // bytes arrived or err set (capacity 1)
	space  chan struct{} // fasthttp took bytes (capacity 1)
	closed chan struct{} // the connection was closed
	once   sync.Once

	// Set on the connection's goroutine, read by the reader's.
	handled   atomic.Int64 // requests whose handler has started
	answering atomic.Bool  // between a handler's start and the end of its response
	ahead     int64        // the window: how many requests after the current one are reported

	// async: the reader goroutine runs (set once, on the connection's
	// goroutine, before it starts; read only there).
	async   bool
	lastErr error // direct mode: the socket's error, returned after the buffered bytes
	// Direct mode: the deadline on the socket, and how much earlier than
	// fasthttp's it may stay. fasthttp moves the read deadline two or three
	// times per request (each one a runtime timer update); only a read uses
	// it, and an idle timeout that fires a sixteenth early is still one.
	sockDeadline time.Time
	slack        time.Duration
	// quick: the answer being sent is a small file from disk, sent at once;
	// no request behind it needs a head start (set on the connection's
	// goroutine).
	quick bool

	sending bool       // the current answer's handler has returned (under mu)
	later   []deferred // under mu

	// The scanner: the reader goroutine's only.
	line      [maxRequestLine]byte // the current line's first bytes
	lineLen   int                  // the current line's full length so far
	inHeaders bool                 // between a request line and the blank line after its headers
	off       bool                 // a request with a body was seen: scanning stopped
	seen      int64                // request lines scanned
	// ended: the bytes scanned so far end exactly at the end of a request's
	// headers (or there are none yet).
	ended bool

	// The express lane (express.go), direct mode only.
	express     Express
	name        string        // the Server header
	idleTimeout time.Duration // the keep-alive timeout after an express answer
	readTimeout time.Duration // the time a request has to arrive once its first byte is in
	xf          ExpressFile
	xs          expressSend
	xsWrite     func(uintptr) bool // xs.write bound once
	xhdr        []byte             // the answer's header, reused
	xidle       bool               // the last request read was answered on the express lane
	xcleared    int64              // handled when the write deadline was last cleared for the lane
}

func newReadAhead(c *tcpLimitConn, from netip.Addr, hook func(netip.Addr, []byte, []byte), ahead int, slack time.Duration) *readAhead {
	ra := &readAhead{c: c, from: from, hook: hook, ahead: int64(ahead), slack: slack, ended: true,
		data: make(chan struct{}, 1), space: make(chan struct{}, 1), closed: make(chan struct{})}
	return ra
}

// goAsync starts the reader goroutine (on the connection's goroutine, in
// direct mode). fasthttp's read deadline moves off the socket, which the
// goroutine reads without one, into ra.deadline (read honours it).
func (ra *readAhead) goAsync() {
	ra.c.TCPConn.SetReadDeadline(time.Time{}) //nolint:errcheck // fails only on a closed socket, which the reader then sees
	ra.mu.Lock()
	ra.err = ra.lastErr
	ra.mu.Unlock()
	ra.async = true
	go ra.readLoop()
}

// readDirect is read before the client was seen pipelining: the socket is
// read on the connection's own goroutine. Only this goroutine touches the
// buffer until goAsync.
func (ra *readAhead) readDirect(p []byte) (int, error) {
	for ra.r == ra.w {
		if ra.lastErr != nil {
			return 0, ra.lastErr
		}
		if t := ra.deadline; t != ra.sockDeadline && (t.IsZero() || ra.sockDeadline.IsZero() ||
			t.Before(ra.sockDeadline) || t.Sub(ra.sockDeadline) > ra.slack) {
			if err := ra.c.TCPConn.SetReadDeadline(t); err != nil {
				return 0, err
			}
			ra.sockDeadline = t
		}
		n, err := ra.c.TCPConn.Read(ra.buf[:])
		if n == 0 {
			if ra.xidle && errors.Is(err, os.ErrDeadlineExceeded) {
				// Idle after express answers: fasthttp, which may still be waiting for the
				// first request of the connection, would answer a timeout with 408; an idle
				// keep-alive connection just closes.
				return 0, io.EOF
			}
			return 0, err // a deadline's timeout is not kept: a later read may succeed
		}
		if err == nil && ra.expressReady() {
			ra.c.busy.Store(true)
			served, serr := ra.serveExpress(ra.buf[:n])
			if serr != nil {
				// The answer was cut (ExpressDone has the reason): close quietly, as after a
				// client that went away; any other error would make fasthttp write an error
				// answer behind the partial body.
				ra.lastErr = io.EOF
				return 0, io.EOF
			}
			if served {
				ra.xidle = true
				continue // answered: wait for the next request here
			}
		}
		if ra.xidle {
			// A request for fasthttp after express answers: it gets the time to arrive that
			// fasthttp gives a request once its first byte is in.
			ra.xidle = false
			ra.deadline = time.Now().Add(ra.readTimeout)
		}
		ra.r, ra.w, ra.lastErr = 0, n, err
		ra.scan(ra.buf[:n])
	}
	n := copy(p, ra.buf[ra.r:ra.w])
	ra.r += n
	ra.c.buffered.Store(ra.r < ra.w)
	ra.c.busy.Store(true)
	if ra.seen > ra.handled.Load()+1 && ra.lastErr == nil && !ra.off {
		ra.goAsync() // a request line waits behind fasthttp's next one: the client pipelines
	}
	return n, nil
}

func signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// readLoop reads the socket until it fails or the connection closes.
func (ra *readAhead) readLoop() {
	for {
		ra.mu.Lock()
		for ra.w == len(ra.buf) && ra.r == 0 {
			ra.mu.Unlock()
			select {
			case <-ra.space:
			case <-ra.closed:
				return
			}
			ra.mu.Lock()
		}
		if ra.r > 0 { // only this goroutine moves the bytes
			ra.w = copy(ra.buf[:], ra.buf[ra.r:ra.w])
			ra.r = 0
		}
		w := ra.w
		ra.mu.Unlock()
		// fasthttp reads only buf[r:w]; buf[w:] is this goroutine's.
		n, err := ra.c.TCPConn.Read(ra.buf[w:])
		if n > 0 {
			ra.scan(ra.buf[w : w+n])
		}
		ra.mu.Lock()
		ra.w += n
		if err != nil {
			ra.err = err
		}
		if n > 0 {
			ra.c.buffered.Store(true)
		}
		ra.mu.Unlock()
		signal(ra.data)
		if err != nil {
			return
		}
	}
}

// read is the connection's Read for fasthttp.
func (ra *readAhead) read(p []byte) (int, error) {
	if !ra.async {
		return ra.readDirect(p)
	}
	for {
		ra.mu.Lock()
		if ra.r < ra.w {
			n := copy(p, ra.buf[ra.r:ra.w])
			ra.r += n
			if ra.r == ra.w {
				ra.c.buffered.Store(false)
			}
			ra.mu.Unlock()
			ra.c.busy.Store(true)
			signal(ra.space)
			return n, nil
		}
		if ra.err != nil {
			err := ra.err
			ra.mu.Unlock()
			return 0, err
		}
		deadline := ra.deadline
		ra.mu.Unlock()
		var expired <-chan time.Time
		if !deadline.IsZero() {
			d := time.Until(deadline)
			if d <= 0 {
				return 0, &net.OpError{Op: "read", Net: "tcp", Source: ra.c.LocalAddr(), Addr: ra.c.RemoteAddr(), Err: os.ErrDeadlineExceeded}
			}
			if ra.timer == nil {
				ra.timer = time.NewTimer(d)
			} else {
				ra.timer.Reset(d)
			}
			expired = ra.timer.C
		}
		select {
		case <-ra.data:
		case <-expired:
		case <-ra.closed:
			return 0, net.ErrClosed
		}
		if ra.timer != nil {
			ra.timer.Stop()
		}
	}
}

// setReadDeadline applies to fasthttp's reads, not to the reader goroutine's.
func (ra *readAhead) setReadDeadline(t time.Time) {
	if !ra.async {
		ra.deadline = t // applied by the next read of the socket (readDirect)
		return
	}
	ra.mu.Lock()
	ra.deadline = t
	ra.mu.Unlock()
	signal(ra.data) // a waiting read looks at the new deadline
}

func (ra *readAhead) close() { ra.once.Do(func() { close(ra.closed) }) }

// scan follows the request stream line by line.
func (ra *readAhead) scan(p []byte) {
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
			ra.ended = false
			return
		}
		p = p[i+1:]
		ra.ended = ra.endLine()
	}
}

// endLine ends a line; it reports whether the line ended a request's headers.
func (ra *readAhead) endLine() bool {
	n := ra.lineLen
	ra.lineLen = 0
	kept := ra.line[:min(n, len(ra.line))]
	if n > 0 && n <= len(ra.line) && kept[n-1] == '\r' {
		n--
		kept = kept[:n]
	}
	if !ra.inHeaders {
		if n == 0 {
			return false // an empty line before a request is allowed (RFC 9112 §2.2)
		}
		ra.seen++
		ra.inHeaders = true
		if n > len(ra.line) {
			return false
		}
		// METHOD SP URI SP VERSION
		sp := bytes.IndexByte(kept, ' ')
		if sp <= 0 {
			return false
		}
		rest := kept[sp+1:]
		sp2 := bytes.IndexByte(rest, ' ')
		if sp2 <= 0 {
			return false
		}
		method, uri := kept[:sp], rest[:sp2]
		if ra.place(ra.seen) == notQueued {
			return false
		}
		ra.mu.Lock()
		now := ra.sending && ra.place(ra.seen) == inWindow
		if !now {
			ra.postponeLocked(ra.seen, method, uri)
		}
		ra.mu.Unlock()
		if now {
			ra.hook(ra.from, method, uri)
		}
		return false
	}
	if n == 0 {
		ra.inHeaders = false
		return true
	}
	if hasPrefixFold(kept, "content-length:") || hasPrefixFold(kept, "transfer-encoding:") {
		ra.off = true
	}
	return false
}

const (
	notQueued = iota // handled at once: nothing to start early
	inWindow         // queued, among the next `ahead`: report now
	beyond           // queued further back: report when it comes up
)

// place says where request number i (from 1) stands. The current request is
// the one being answered, or, while none is, fasthttp's next one; the
// requests after it are queued, and the first `ahead` of those are reported.
func (ra *readAhead) place(i int64) int {
	cur := ra.handled.Load()
	if !ra.answering.Load() {
		cur++
	}
	switch {
	case i <= cur:
		return notQueued
	case i <= cur+ra.ahead:
		return inWindow
	}
	return beyond
}

// postponeLocked keeps request i to report later (ra.mu held); beyond
// maxDeferred, or with a long URI, it simply waits for its turn.
func (ra *readAhead) postponeLocked(i int64, method, uri []byte) {
	if len(uri) > deferredURI || len(ra.later) >= maxDeferred {
		return
	}
	ra.later = append(ra.later, deferred{i: i, method: append([]byte(nil), method...), uri: append([]byte(nil), uri...)})
}

// start runs as a request's handler starts.
func (ra *readAhead) start() {
	ra.quick = false
	ra.handled.Add(1)
	ra.answering.Store(true)
	ra.mu.Lock()
	ra.sending = false
	ra.mu.Unlock()
}

// sent runs once the handler has returned (the response is being written):
// the queued requests in the window are reported now.
func (ra *readAhead) sent() {
	if !ra.async && !ra.quick && !ra.off && ra.lastErr == nil && ra.c.unread() > 0 {
		ra.goAsync() // the next request came while this one was answered: read it as this answer goes out
	}
	h := ra.handled.Load()
	ra.mu.Lock()
	ra.sending = true
	if len(ra.later) == 0 {
		ra.mu.Unlock()
		return
	}
	var due []deferred
	keep := ra.later[:0]
	for _, d := range ra.later {
		switch {
		case d.i <= h: // its turn came without a head start
		case d.i <= h+ra.ahead:
			due = append(due, d)
		default:
			keep = append(keep, d)
		}
	}
	clear(ra.later[len(keep):])
	ra.later = keep
	ra.mu.Unlock()
	for _, d := range due {
		ra.hook(ra.from, d.method, d.uri)
	}
}

// idle runs when a response has been written.
func (ra *readAhead) idle() {
	ra.answering.Store(false)
	ra.mu.Lock()
	ra.sending = false
	ra.mu.Unlock()
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

// pipelinedHandler wraps h so a read-ahead connection knows which request is
// being answered, and when its answer is being sent.
func pipelinedHandler(h fasthttp.RequestHandler) fasthttp.RequestHandler {
	return func(ctx *fasthttp.RequestCtx) {
		c, ok := ctx.Conn().(*tcpLimitConn)
		if !ok || c.ra == nil {
			h(ctx)
			return
		}
		c.ra.start()
		h(ctx)
		c.ra.sent()
	}
}
