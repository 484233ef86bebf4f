package httpserve

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/valyala/fasthttp"
)

// ServerConfig holds the limits of the daemon's single HTTP listener (apt, peers, status page).
// Zero fields take the defaults documented on each.
type ServerConfig struct {
	// Name is sent as the Server header; empty sends none.
	Name string
	// ReadTimeout bounds reading one request once its first byte has arrived (a slowloris client
	// is cut). Default 10 s.
	ReadTimeout time.Duration
	// IdleTimeout is how long a keep-alive connection may wait for its next request. Default 60 s,
	// the original's betweenRequestsTimeOut.
	IdleTimeout time.Duration
	// WriteTimeout bounds writing a response's headers and in-memory body. File bodies replace it with
	// WriteStallTimeout, so long downloads over slow links survive. Default 30 s.
	WriteTimeout time.Duration
	// WriteStallTimeout bounds each 4 MiB step (or rate-limited step) of a file body: a client that
	// stops reading is cut after it, releasing the file and the upload slot. Default 2 min (clients
	// slower than ~35 KB/s are cut). Applies to connections accepted through LimitListener.
	WriteStallTimeout time.Duration
	// MaxHeaderBytes bounds the request line plus headers (the read buffer); a larger request gets 431.
	// Default 8 KiB: apt's and peers' requests are a few hundred bytes.
	MaxHeaderBytes int
	// MaxConns bounds simultaneous connections. Default 1024. It is enforced by LimitListener: at
	// the limit a new connection closes the connection that has waited longest for its next
	// request (idle keep-alive, or connected and silent), so idle clients can never lock out a new
	// apt request; only when every connection is busy is the new one refused with 503. A part of
	// the connections (MaxConns/8) is kept for trusted clients (Unlimited): peers alone cannot
	// take every slot with busy connections. fasthttp's own Concurrency is set higher
	// (closeSlack), so connections still being closed never make it refuse one LimitListener
	// admitted. See idle.go.
	MaxConns int
	// MaxConnsPerIP bounds simultaneous connections from one address (an IPv6 /64 counts as one).
	// It is enforced by LimitListener, not by fasthttp: fasthttp's own MaxConnsPerIP wraps each
	// connection in a type without ReadFrom, which silently turns sendfile into read+write copies
	// (and it only knows IPv4). Default 32.
	MaxConnsPerIP int
	// Unlimited, if set, exempts addresses from MaxConnsPerIP: the daemon's own apt clients
	// (ALLOWED_CLIENTS) are trusted and may open as many connections as they like (a site cache
	// behind one NAT address, a parallel downloader), while peers stay capped.
	Unlimited func(netip.Addr) bool
	// Pipelined, if set, is told of each request a trusted client (Unlimited) has already sent on a
	// connection while an earlier request there is still being answered (HTTP/1.1 pipelining: apt
	// writes up to 10 requests at once), so the work for it can start before its turn; responses
	// still go out in order. It runs on one of the connection's goroutines (its reader, or its
	// handler's once an answer is being sent) with the request's method and URI, which are valid only
	// during the call, and must not block. Peers' connections are not read
	// ahead: their pipelined /~/ requests are served one after another as before. Applies to
	// connections accepted through LimitListener; see readahead.go.
	Pipelined func(from netip.Addr, method, uri []byte)
	// PipelinedAhead is how many queued requests after the one being answered are reported to
	// Pipelined at a time, once that answer is being sent; the others are reported as they come up.
	// Default 1 (see defaultAhead in readahead.go for why not all of apt's nine).
	PipelinedAhead int
	// Express, if set, answers plain GETs of hot files on connections of trusted clients that
	// send one request at a time, without fasthttp (express.go). It needs Pipelined (the
	// read-ahead's direct reads are where it looks) and no MaxRequestsPerConn (its answers are
	// not counted). Applies to connections accepted through LimitListener.
	Express Express
	// ExpressMaxSize is the largest file the express lane answers; larger ones go to fasthttp.
	// Default 1 MiB.
	ExpressMaxSize int64
	// MaxRequestsPerConn closes a connection after this many requests; 0: unlimited.
	MaxRequestsPerConn int
	// Logger receives fasthttp's connection errors at debug level (cut connections are normal here:
	// a failed stream is cut on purpose). Nil: slog.Default().
	Logger *slog.Logger
}

const (
	defaultReadTimeout    = 10 * time.Second
	defaultIdleTimeout    = 60 * time.Second
	defaultWriteTimeout   = 30 * time.Second
	defaultMaxHeaderBytes = 8 << 10
	defaultMaxConns       = 1024
	defaultMaxConnsPerIP  = 32
	// writeBufferSize holds headers plus a small body (smallBody), so those go out in one write(2).
	writeBufferSize = 32 << 10
	// maxRequestBodySize: GET and HEAD carry no body. fasthttp treats 0 as its 4 MiB default,
	// so the smallest real limit is 1 byte; anything longer gets 413.
	maxRequestBodySize = 1
)

func (c ServerConfig) withDefaults() ServerConfig {
	if c.ReadTimeout <= 0 {
		c.ReadTimeout = defaultReadTimeout
	}
	if c.IdleTimeout <= 0 {
		c.IdleTimeout = defaultIdleTimeout
	}
	if c.WriteTimeout <= 0 {
		c.WriteTimeout = defaultWriteTimeout
	}
	if c.MaxHeaderBytes <= 0 {
		c.MaxHeaderBytes = defaultMaxHeaderBytes
	}
	if c.MaxConns <= 0 {
		c.MaxConns = defaultMaxConns
	}
	if c.MaxConnsPerIP <= 0 {
		c.MaxConnsPerIP = defaultMaxConnsPerIP
	}
	if c.PipelinedAhead <= 0 {
		c.PipelinedAhead = defaultAhead
	}
	if c.ExpressMaxSize <= 0 {
		c.ExpressMaxSize = defaultExpressMaxSize
	}
	if c.WriteStallTimeout <= 0 {
		c.WriteStallTimeout = defaultWriteStallTimeout
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

// NewServer returns a fasthttp server for handler with cfg's limits. Serve it on a listener wrapped
// by LimitListener(ln, cfg) to enforce MaxConnsPerIP.
func NewServer(handler fasthttp.RequestHandler, cfg ServerConfig) *fasthttp.Server {
	cfg = cfg.withDefaults()
	if cfg.Pipelined != nil {
		handler = pipelinedHandler(handler)
	}
	return &fasthttp.Server{
		Handler:                      handler,
		Name:                         cfg.Name,
		NoDefaultServerHeader:        cfg.Name == "",
		Concurrency:                  cfg.MaxConns + closeSlack,
		ConnState:                    connState,
		ReadBufferSize:               cfg.MaxHeaderBytes,
		WriteBufferSize:              writeBufferSize,
		ReadTimeout:                  cfg.ReadTimeout,
		WriteTimeout:                 cfg.WriteTimeout,
		IdleTimeout:                  cfg.IdleTimeout,
		MaxRequestsPerConn:           cfg.MaxRequestsPerConn,
		MaxRequestBodySize:           maxRequestBodySize,
		DisablePreParseMultipartForm: true,
		NoDefaultContentType:         true,
		TCPKeepalive:                 true,
		CloseOnShutdown:              true,
		Logger:                       fasthttpLogger{cfg.Logger},
	}
}

type fasthttpLogger struct{ l *slog.Logger }

func (f fasthttpLogger) Printf(format string, args ...any) {
	if f.l.Enabled(context.Background(), slog.LevelDebug) {
		f.l.Debug(fmt.Sprintf(format, args...), "component", "httpserve")
	}
}

// LimitListener wraps ln so that at most cfg.MaxConnsPerIP connections per address (IPv6: per /64)
// are open at once; further connections are closed at once. Accepted TCP connections keep
// *net.TCPConn's ReadFrom, so sendfile still works through them.
func LimitListener(ln net.Listener, cfg ServerConfig) net.Listener {
	cfg = cfg.withDefaults()
	l := &limitListener{Listener: ln, max: cfg.MaxConnsPerIP, stall: cfg.WriteStallTimeout, n: make(map[netip.Addr]int),
		unlimited: cfg.Unlimited, pipelined: cfg.Pipelined, ahead: cfg.PipelinedAhead,
		deadlineSlack: min(cfg.ReadTimeout, cfg.IdleTimeout) / 16,
		maxConns:      cfg.MaxConns, trustedReserve: cfg.MaxConns / 8, live: make(map[*tcpLimitConn]struct{}),
		name: cfg.Name, idleTimeout: cfg.IdleTimeout, readTimeout: cfg.ReadTimeout, expressMax: cfg.ExpressMaxSize}
	if cfg.MaxRequestsPerConn == 0 {
		l.express = cfg.Express
	}
	return l
}

type limitListener struct {
	net.Listener
	max   int
	stall time.Duration
	mu    sync.Mutex
	n     map[netip.Addr]int

	unlimited func(netip.Addr) bool
	pipelined func(netip.Addr, []byte, []byte)
	ahead     int
	// deadlineSlack: how much earlier than asked a read deadline may fire (readahead.go).
	deadlineSlack time.Duration
	express       Express       // the express lane (express.go); nil: none
	name          string        // the Server header, for the express lane
	idleTimeout   time.Duration // the keep-alive timeout, for the express lane
	readTimeout   time.Duration // the request read timeout, for the express lane
	expressMax    int64         // the largest file the express lane answers

	maxConns       int
	trustedReserve int
	live           map[*tcpLimitConn]struct{} // connections handed out and not closed (under mu)
	seq            atomic.Uint64              // orders the moments connections became idle
}

// tcpLimitConn embeds *net.TCPConn so ReadFrom (sendfile) and the deadline methods are promoted.
// raw is its descriptor, fetched once per connection for the direct sendfile path.
type tcpLimitConn struct {
	*net.TCPConn
	raw  syscall.RawConn
	l    *limitListener
	key  netip.Addr
	once sync.Once
	// more makes the next Write use MSG_MORE (set by a file body around flushing its headers).
	more    bool
	ms      moreSend
	msWrite func(uintptr) bool // ms.write bound once
	// ra reads pipelined requests ahead (trusted clients with ServerConfig.Pipelined); nil otherwise.
	ra *readAhead
	idleState
}

// Read reads through the read-ahead buffer when the connection has one.
func (c *tcpLimitConn) Read(p []byte) (int, error) {
	if c.ra != nil {
		return c.ra.read(p)
	}
	n, err := c.TCPConn.Read(p)
	if n > 0 {
		c.busy.Store(true)
	}
	return n, err
}

// SetReadDeadline bounds fasthttp's reads; with a read-ahead, not the socket's.
func (c *tcpLimitConn) SetReadDeadline(t time.Time) error {
	if c.ra != nil {
		c.ra.setReadDeadline(t)
		return nil
	}
	return c.TCPConn.SetReadDeadline(t)
}

// SetDeadline is SetReadDeadline and SetWriteDeadline.
func (c *tcpLimitConn) SetDeadline(t time.Time) error {
	if c.ra != nil {
		c.ra.setReadDeadline(t)
		return c.TCPConn.SetWriteDeadline(t)
	}
	return c.TCPConn.SetDeadline(t)
}

// Write sends p, with MSG_MORE if a file body asked for it.
func (c *tcpLimitConn) Write(p []byte) (int, error) {
	if !c.more || c.raw == nil || len(p) == 0 || !directSendfile {
		return c.TCPConn.Write(p)
	}
	c.more = false
	c.ms = moreSend{p: p}
	err := c.raw.Write(c.msWrite)
	n := c.ms.n
	if c.ms.err != nil {
		err = c.ms.err
	}
	c.ms.p = nil
	if err != nil {
		return n, &net.OpError{Op: "write", Net: "tcp", Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: err}
	}
	return n, nil
}

func (c *tcpLimitConn) Close() error {
	err := c.TCPConn.Close()
	if c.ra != nil {
		c.ra.close()
	}
	c.once.Do(func() { c.l.drop(c) })
	return err
}

func (l *limitListener) drop(c *tcpLimitConn) {
	l.mu.Lock()
	if l.n[c.key] <= 1 {
		delete(l.n, c.key)
	} else {
		l.n[c.key]--
	}
	delete(l.live, c)
	l.mu.Unlock()
}

// Accept returns the next connection within the per-address limit.
func (l *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		tc, ok := c.(*net.TCPConn)
		if !ok {
			return c, nil
		}
		addr := tc.RemoteAddr().(*net.TCPAddr).AddrPort().Addr().Unmap()
		key := peerKey(addr)
		trusted := l.unlimited != nil && l.unlimited(addr)
		lc := &tcpLimitConn{TCPConn: tc, l: l, key: key}
		lc.msWrite = lc.ms.write
		if rc, err := tc.SyscallConn(); err == nil {
			lc.raw = rc
		}
		// Idle from the start: a connection that sends nothing holds a slot
		// as surely as a kept-alive one.
		lc.idleSeq.Store(l.seq.Add(1))
		limit := l.maxConns
		if !trusted {
			limit -= l.trustedReserve
		}
		var victims []*tcpLimitConn
		l.mu.Lock()
		over := l.n[key] >= l.max && !trusted
		full := false
		if !over {
			for len(l.live) >= limit {
				v := l.oldestIdleLocked()
				if v == nil {
					break
				}
				delete(l.live, v)
				victims = append(victims, v)
			}
			full = len(l.live) >= limit
			if !full {
				l.n[key]++
				l.live[lc] = struct{}{}
			}
		}
		l.mu.Unlock()
		for _, v := range victims {
			v.Close() // FIN: a client that reuses it sees it closed and reconnects
		}
		if over {
			tc.SetLinger(0) //nolint:errcheck // best effort: a reset frees the slot at once
			tc.Close()
			continue
		}
		if full {
			refuseFull(tc)
			continue
		}
		if trusted && l.pipelined != nil {
			lc.ra = newReadAhead(lc, addr, l.pipelined, l.ahead, l.deadlineSlack)
			lc.ra.express, lc.ra.name = l.express, l.name
			lc.ra.idleTimeout, lc.ra.readTimeout = l.idleTimeout, l.readTimeout
		}
		return lc, nil
	}
}
