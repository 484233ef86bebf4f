// Package front is apt-p2p's single HTTP listener: it routes apt requests (URL
// prefix mode and proxy mode) to the node, /~/ requests to the peer upload
// handler, and /, /stats.json and /metrics to the status views. It decides who
// may ask: apt-facing requests only from the allowed client networks (loopback
// by default), the status views from anyone only when REMOTE_STATS is on, and
// peer uploads from anyone.
package front

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/apt-p2p/apt-p2p/internal/httpserve"
	"github.com/apt-p2p/apt-p2p/internal/mirrorurl"
	"github.com/apt-p2p/apt-p2p/internal/node"
)

// Server is the HTTP front of one node.
type Server struct {
	n       *node.Node
	log     *slog.Logger
	allowed []netip.Prefix
	remote  bool // REMOTE_STATS
	hist    *history
}

// New makes the front for n.
func New(n *node.Node, log *slog.Logger) *Server {
	cfg := n.Config()
	s := &Server{n: n, log: log, allowed: cfg.AllowedClients, remote: cfg.RemoteStats, hist: newHistory(n)}
	return s
}

// Close stops the history sampler.
func (s *Server) Close() { s.hist.stop() }

func remoteAddr(ctx *fasthttp.RequestCtx) netip.Addr {
	if ta, ok := ctx.RemoteAddr().(*net.TCPAddr); ok {
		if a, ok := netip.AddrFromSlice(ta.IP); ok {
			return a.Unmap()
		}
	}
	return netip.Addr{}
}

// ClientAllowed is the apt-facing ACL: loopback (any 127/8 address and ::1,
// not only 127.0.0.1 as the original compared) or a configured network.
func (s *Server) ClientAllowed(a netip.Addr) bool {
	for _, p := range s.allowed {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

func (s *Server) statusAllowed(a netip.Addr) bool {
	return s.remote || a.IsLoopback() || s.ClientAllowed(a)
}

var (
	peerPrefix = []byte("/~/")
	httpPrefix = []byte("http://")
	tlsPrefix  = []byte("https://")
)

// Handler is the fasthttp request handler.
func (s *Server) Handler(ctx *fasthttp.RequestCtx) {
	t0 := time.Now()
	uri := ctx.Request.Header.RequestURI()
	from := remoteAddr(ctx)
	if isReachProbe(uri) {
		s.reachProbe(ctx, uri) // reach.go
		return
	}
	if s.n.Config().DHTOnly {
		s.dhtOnly(ctx, from, uri)
		return
	}
	switch {
	case bytes.HasPrefix(uri, peerPrefix):
		s.n.PeerHandler().ServeFastHTTP(ctx) // counts the upload bytes as they are written
		return
	case ctx.IsConnect():
		s.refuseConnect(ctx, from, uri)
		return
	}
	if !ctx.IsGet() && !ctx.IsHead() {
		httpserve.Error(ctx, fasthttp.StatusMethodNotAllowed, "only GET and HEAD")
		ctx.Response.Header.Set("Allow", "GET, HEAD")
		return
	}
	absolute := bytes.HasPrefix(uri, httpPrefix) || bytes.HasPrefix(uri, tlsPrefix)
	if !absolute {
		// The raw path, not ctx.Path(): that parses and normalises the whole URI, a cost
		// every apt request would pay for these few fixed names.
		p := uri
		if q := bytes.IndexByte(p, '?'); q >= 0 {
			p = p[:q]
		}
		switch string(p) {
		case "/", "/index.html":
			s.status(ctx, from, s.writeHTML)
			return
		case "/stats.json":
			s.status(ctx, from, s.writeJSON)
			return
		case "/metrics":
			s.status(ctx, from, s.writeMetrics)
			return
		case "/lookup":
			s.status(ctx, from, s.lookup)
			return
		}
	}
	if !s.ClientAllowed(from) {
		// The original answered 404 to strangers; say why instead.
		httpserve.Error(ctx, fasthttp.StatusForbidden, from.String()+" may not use the apt proxy (see ALLOWED_CLIENTS)")
		s.log.Info("apt request refused", "from", from, "uri", string(uri))
		return
	}
	// A URI answered from the store before is answered again without parsing it.
	if url, ok := s.n.ServeHot(ctx, uri); ok {
		s.n.Stats.Requests.Inc()
		took := time.Since(t0)
		s.n.Stats.RequestLatency.Observe(took)
		if s.log.Enabled(context.Background(), slog.LevelInfo) {
			s.log.Info("apt request", "from", from, "url", url, "status", ctx.Response.StatusCode(),
				"bytes", ctx.Response.Header.ContentLength(), "source", string(node.SourceCache), "took", took.Round(time.Microsecond))
		}
		return
	}
	var u mirrorurl.URL
	var err error
	if absolute {
		u, err = mirrorurl.ParseAbsolute(string(uri))
	} else {
		u, err = mirrorurl.ParsePrefix(string(uri))
	}
	if err != nil {
		code := fasthttp.StatusNotFound
		if errors.Is(err, mirrorurl.ErrBadHost) || errors.Is(err, mirrorurl.ErrBadPath) || errors.Is(err, mirrorurl.ErrFullURL) {
			code = fasthttp.StatusBadRequest
		}
		httpserve.Error(ctx, code, strings.TrimPrefix(err.Error(), "mirrorurl: "))
		s.log.Info("apt request", "from", from, "uri", string(uri), "status", code, "err", err)
		return
	}
	s.n.Stats.Requests.Inc()
	src, later := s.n.ServeApt(ctx, u)
	liftReason(ctx)
	if src == node.SourceCache && later == nil && ctx.Response.StatusCode() < 300 {
		s.n.RememberHot(uri, u)
	}
	took := time.Since(t0)
	s.n.Stats.RequestLatency.Observe(took)
	status, size := ctx.Response.StatusCode(), ctx.Response.Header.ContentLength()
	if later == nil {
		// The arguments (the URL string above all) are built only for a log that takes them.
		if s.log.Enabled(context.Background(), slog.LevelInfo) {
			s.log.Info("apt request", "from", from, "url", u.String(), "status", status,
				"bytes", size, "source", string(src), "took", took.Round(time.Microsecond))
		}
		return
	}
	// The body streams from a download still choosing its sources: log once
	// it has been sent, with where the bytes came from and the full time
	// (ctx belongs to fasthttp again by then; only copies are used).
	url := u.String()
	go func() {
		final := <-later
		s.log.Info("apt request", "from", from, "url", url, "status", status, "bytes", size,
			"source", string(final), "took", time.Since(t0).Round(time.Microsecond), "headers", took.Round(time.Microsecond))
	}()
}

// Pipelined is the httpserve.ServerConfig.Pipelined hook: an apt request
// already sent on a connection, queued behind responses still being written,
// starts its download now (node.Prefetch); its response comes in its turn.
// Only GETs of mirror files from allowed clients; peers' /~/ requests and the
// status views are served as they come.
func (s *Server) Pipelined(from netip.Addr, method, uri []byte) {
	if string(method) != fasthttp.MethodGet || s.n.Config().DHTOnly || bytes.HasPrefix(uri, peerPrefix) || !s.ClientAllowed(from) {
		return
	}
	var u mirrorurl.URL
	var err error
	if bytes.HasPrefix(uri, httpPrefix) || bytes.HasPrefix(uri, tlsPrefix) {
		u, err = mirrorurl.ParseAbsolute(string(uri))
	} else {
		u, err = mirrorurl.ParsePrefix(string(uri))
	}
	if err != nil {
		return // its turn answers with the error
	}
	s.n.Prefetch(u)
}

// ServerConfig is the configuration of the daemon's HTTP server for this front: allowed apt
// clients are exempt from the per-address connection cap (a site cache behind one NAT address)
// and their pipelined requests start at once (Pipelined); their plain GETs of hot files take the
// express lane (ExpressOpen).
func (s *Server) ServerConfig(name string, log *slog.Logger) httpserve.ServerConfig {
	return httpserve.ServerConfig{Name: name, Logger: log, Unlimited: s.ClientAllowed, Pipelined: s.Pipelined, Express: s}
}

// ExpressOpen is the express lane's half of the hot path (httpserve.Express): a URI answered
// from the store before is answered again without fasthttp parsing the request.
func (s *Server) ExpressOpen(from netip.Addr, uri []byte, f *httpserve.ExpressFile) bool {
	return !s.n.Config().DHTOnly && s.n.OpenHot(uri, f)
}

// ExpressDone counts and logs an express answer as Handler does its hot answers.
func (s *Server) ExpressDone(f *httpserve.ExpressFile, sent int64, err error) {
	url := s.n.HotDone(f, sent)
	s.n.Stats.Requests.Inc()
	if err == nil {
		s.n.Stats.Express.Inc()
	}
	took := time.Since(f.Start)
	s.n.Stats.RequestLatency.Observe(took)
	if s.log.Enabled(context.Background(), slog.LevelInfo) {
		if err != nil {
			s.log.Info("apt request cut", "from", f.From, "url", url, "status", fasthttp.StatusOK, "bytes", f.Size, "sent", sent,
				"source", string(node.SourceCache), "took", took.Round(time.Microsecond), "err", err)
			return
		}
		s.log.Info("apt request", "from", f.From, "url", url, "status", fasthttp.StatusOK,
			"bytes", f.Size, "source", string(node.SourceCache), "took", took.Round(time.Microsecond))
	}
}

func (s *Server) status(ctx *fasthttp.RequestCtx, from netip.Addr, write func(*fasthttp.RequestCtx)) {
	if !s.statusAllowed(from) {
		httpserve.Error(ctx, fasthttp.StatusForbidden, "the status page is local only (REMOTE_STATS = no)")
		return
	}
	ctx.Response.Header.Set("Cache-Control", "no-store")
	write(ctx)
}

// dhtOnly answers on a DHT-ONLY (bootstrap) node: the status views, as the
// original served its DHT statistics for every path, and a clear refusal for
// apt and peer requests, which such a node does not serve.
func (s *Server) dhtOnly(ctx *fasthttp.RequestCtx, from netip.Addr, uri []byte) {
	switch {
	case bytes.HasPrefix(uri, peerPrefix), bytes.HasPrefix(uri, httpPrefix), bytes.HasPrefix(uri, tlsPrefix),
		bytes.Contains(uri, []byte("/dists/")), bytes.Contains(uri, []byte("/pool/")):
		httpserve.Error(ctx, fasthttp.StatusNotFound, "this is a DHT-only (bootstrap) node; it serves no files (DHT-ONLY = yes)")
	case string(ctx.Path()) == "/stats.json":
		s.status(ctx, from, s.writeJSON)
	case string(ctx.Path()) == "/metrics":
		s.status(ctx, from, s.writeMetrics)
	default:
		s.status(ctx, from, s.writeHTML)
	}
}
