package fetch

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/apt-p2p/apt-p2p/internal/clock"
	"github.com/apt-p2p/apt-p2p/internal/httpserve"
	"github.com/apt-p2p/apt-p2p/wire"
)

// PieceSize is the size of every piece but the last (reference §3.1).
const PieceSize = 512 << 10

// Sink is where downloaded data goes; *piecestore.Writer satisfies it.
type Sink interface {
	WriteAt(p []byte, off int64) (int, error)           // sequential appends at Contiguous() (streaming) ...
	WritePiece(i int, data []byte, sum *[20]byte) error // ... or whole pieces in any order
	HavePiece(i int) bool
	Contiguous() int64
}

// Source is one place to fetch the file from.
type Source struct {
	Addr   string // "host:port" to connect to
	Host   string // Host header (mirrors: with the port if not default — the original's bug §8.2 item 12)
	Path   string // request path: "/~/<quote_plus(hash)>" for peers, the mirror path for the mirror
	Mirror bool
	TLS    bool // https upstream
	// Partial marks a peer whose own download of the file is running (a
	// claimant found under wire.PartialKey): requests to it carry
	// X-Apt-P2P-Partial, which asks its peer server to stream the verified
	// part of its growing file, waiting a bounded time for what is on its way.
	Partial bool
}

// Job describes one file to fetch.
type Job struct {
	Size        int64
	Pieces      []byte        // expected SHA-1 piece hashes (20 per piece), nil if unknown / single piece
	Peers       <-chan Source // peers as the DHT delivers them; closed when the lookup ends (may be nil)
	Mirror      *Source       // nil if there is no mirror
	MirrorDelay time.Duration // start the mirror if no peer bytes have arrived by then (adaptive: the node passes it)
	MinPeers    int           // MIN_DOWNLOAD_PEERS: also use the mirror as a Range source when fewer peers
	// Herd: the peers are earlier claimants still downloading the file (a
	// flash crowd's leader and its first followers). They can be no faster
	// than their own download, so the mirror joins only when they fail or have
	// delivered nothing by MirrorDelay, never for being few or slow: that
	// would fetch a second copy from a mirror the crowd already shares.
	Herd bool
	Sink Sink
}

// Result says where the bytes came from.
type Result struct {
	// BytesBySource counts the bytes each source delivered into the Sink
	// (verified where piece hashes are known). Key: Source.Addr.
	BytesBySource          map[string]int64
	MirrorBytes, PeerBytes int64
	// Banned lists the peers banned during this Fetch: at once for breaking
	// the protocol (200 to a Range request, wrong Content-Range, wrong body
	// length), and for pieces failing their hash only if the download then
	// succeeds (else the expected hashes themselves may be what is wrong).
	Banned []string
	// PieceSources[i] is the Source.Addr that supplied piece i (len = number of
	// pieces). After a whole-file mismatch the caller bans these: without piece
	// hashes nothing else can tell which source lied.
	PieceSources []string
	// Wasted counts body bytes received and thrown away: endgame duplicates that
	// lost, bad pieces, and leading bytes resent by a mirror that ignores Range.
	Wasted int64
}

// Config tunes a Downloader. The zero value of every field means its default.
type Config struct {
	// Version goes into the User-Agent: "apt-p2p/<Version>".
	Version string
	// PeerDialTimeout bounds a TCP connect to a peer (default 2 s): peers that
	// announced themselves from behind a NAT must not cost 10 s each.
	PeerDialTimeout time.Duration
	// MirrorDialTimeout bounds a TCP (and TLS) connect to a mirror (default 10 s).
	MirrorDialTimeout time.Duration
	// PeerIdleTimeout is the longest a peer may stay silent while a request is
	// outstanding (headers or body; default 5 s).
	PeerIdleTimeout time.Duration
	// MirrorIdleTimeout is the same for mirrors (default 30 s).
	MirrorIdleTimeout time.Duration
	// PieceTimeout bounds one piece request from start to last byte (default
	// 60 s, i.e. slower than ~9 KB/s is a failure): a source trickling bytes
	// just fast enough to dodge the idle timeout still loses its pieces. The
	// mirror's streaming GET has no such bound.
	PieceTimeout time.Duration
	// Depth is the number of requests in flight per source (default 4).
	Depth int
	// MaxPeers caps the peers used at once by one download (default 16); more
	// wait as stand-ins for peers that fail, so a flood of DHT values cannot
	// open thousands of connections.
	MaxPeers int
	// BanDuration is how long a source that sent bad data is shunned (default 10 min).
	BanDuration time.Duration
	// MaxErrors is how many transient errors in a row drop a source from one
	// download (default 3, as the original).
	MaxErrors int
	// SlowPeerRate: after MirrorDelay, the mirror joins when the peers together
	// deliver less than this many bytes per second (default 256 KiB/s).
	SlowPeerRate int64
	// MirrorWeight scales the mirror's rank so that peers of similar speed are
	// preferred and mirror load is saved (default 0.5).
	MirrorWeight float64
	// LoadAware ranks sources by when they would finish a piece under their
	// current load, read from the peers' load headers (LOAD_AWARE; source.go,
	// "Load-aware ranking"); off, by measured speed alone.
	LoadAware bool
	// TLSConfig is used for https mirrors (nil: system roots).
	TLSConfig *tls.Config
	// Logger gets per-source events at debug level (nil: slog.Default()).
	Logger *slog.Logger
	// Clock drives the scheduler's timers, measurements and bans (nil: the
	// system clock). Socket deadlines stay on the system clock.
	Clock clock.Clock
}

func (c *Config) setDefaults() {
	if c.Version == "" {
		c.Version = "0"
	}
	if c.PeerDialTimeout <= 0 {
		c.PeerDialTimeout = 2 * time.Second
	}
	if c.MirrorDialTimeout <= 0 {
		c.MirrorDialTimeout = 10 * time.Second
	}
	if c.PeerIdleTimeout <= 0 {
		c.PeerIdleTimeout = 5 * time.Second
	}
	if c.MirrorIdleTimeout <= 0 {
		c.MirrorIdleTimeout = 30 * time.Second
	}
	if c.PieceTimeout <= 0 {
		c.PieceTimeout = 60 * time.Second
	}
	if c.Depth <= 0 {
		c.Depth = 4
	}
	if c.MaxPeers <= 0 {
		c.MaxPeers = 16
	}
	if c.BanDuration <= 0 {
		c.BanDuration = 10 * time.Minute
	}
	if c.MaxErrors <= 0 {
		c.MaxErrors = 3
	}
	if c.SlowPeerRate <= 0 {
		c.SlowPeerRate = 256 << 10
	}
	if c.MirrorWeight <= 0 {
		c.MirrorWeight = 0.5
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Clock == nil {
		c.Clock = clock.Real
	}
}

// Errors returned by Fetch (wrapped with details).
var (
	ErrNoSources = errors.New("fetch: all sources failed or none were found")
	ErrBadJob    = errors.New("fetch: invalid job")
	ErrSink      = errors.New("fetch: sink write failed")
	// ErrMirrorPiece: bytes streamed from the mirror into the Sink failed
	// their piece hash, so the Sink holds bad bytes: Abort it. Either the
	// mirror serves a stale file or Job.Pieces is wrong; retry without piece
	// hashes and let the whole-file hash decide.
	ErrMirrorPiece = errors.New("fetch: streamed mirror data failed its piece hash")
)

// Errors that describe a misbehaving source (in Result logs and wrapped errors).
var (
	errBadPiece     = errors.New("fetch: piece hash mismatch")
	errIgnoredRange = errors.New("fetch: source answered 200 to a Range request")
	errContentRange = errors.New("fetch: wrong Content-Range")
	errBodyLength   = errors.New("fetch: body length differs from the range asked for")
	errStatus       = errors.New("fetch: unexpected HTTP status")
	errNotFound     = errors.New("fetch: source does not have the file (404)")
	errBusy         = errors.New("fetch: source is busy (503)")     // not its fault: try it again later
	errLost         = errors.New("fetch: request no longer needed") // not the source's fault
)

// Downloader holds what outlives one download: HTTP clients (keep-alive
// connections), bans and per-source history. It is safe for concurrent use.
type Downloader struct {
	cfg Config
	clk clock.Clock
	ua  string

	mu      sync.Mutex
	clients map[clientKey]*clientEntry
	bans    map[string]time.Time
	why     map[string]banReason // reasons given to BanFor (bans.go), by address
	hist    map[string]*history
	// unreachable: peers whose address refused or timed out a connect lately
	// (unreachable.go), by address.
	unreachable map[string]time.Time
}

// New returns a Downloader.
func New(cfg Config) *Downloader {
	cfg.setDefaults()
	return &Downloader{
		cfg:     cfg,
		clk:     cfg.Clock,
		ua:      "apt-p2p/" + cfg.Version,
		clients: make(map[clientKey]*clientEntry),
		bans:    make(map[string]time.Time),
		hist:    make(map[string]*history),

		unreachable: make(map[string]time.Time),
	}
}

// Ban keeps addr out of every download until the given time, e.g. after a
// whole-file mismatch of a file it supplied pieces of.
func (d *Downloader) Ban(addr string, until time.Time) {
	d.mu.Lock()
	if until.After(d.bans[addr]) {
		d.bans[addr] = until
	}
	d.mu.Unlock()
}

// Banned reports whether addr is banned now.
func (d *Downloader) Banned(addr string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.bannedLocked(addr, d.clk.Now())
}

func (d *Downloader) bannedLocked(addr string, now time.Time) bool {
	until, ok := d.bans[addr]
	if !ok {
		return false
	}
	if now.After(until) {
		delete(d.bans, addr)
		return false
	}
	return true
}

// Fetch downloads job into job.Sink. It returns when every byte is in the
// Sink, or with an error when ctx ends or every source has failed. Once it
// returns it never touches the Sink again, even though requests that lost an
// endgame race may still be finishing in the background.
func (d *Downloader) Fetch(ctx context.Context, job *Job) (Result, error) {
	if job == nil || job.Sink == nil || job.Size < 0 {
		return Result{}, fmt.Errorf("%w: nil job or sink, or negative size", ErrBadJob)
	}
	n := int((job.Size + PieceSize - 1) / PieceSize)
	if job.Pieces != nil && len(job.Pieces) != 20*n {
		return Result{}, fmt.Errorf("%w: %d bytes of piece hashes for %d pieces", ErrBadJob, len(job.Pieces), n)
	}
	dl := newDownload(ctx, d, job, n)
	return dl.run()
}

// clientKey names one fasthttp.HostClient: peers and mirrors get different
// timeouts even at the same address.
type clientKey struct {
	addr   string
	tls    bool
	mirror bool
}

type clientEntry struct {
	hc       *fasthttp.HostClient
	lastUsed time.Time
}

// client returns the shared HostClient for s, creating it on first use.
// Entries idle for an hour are forgotten (the original kept every peer forever).
func (d *Downloader) client(s *Source) *fasthttp.HostClient {
	k := clientKey{s.Addr, s.TLS, s.Mirror}
	now := d.clk.Now()
	d.mu.Lock()
	defer d.mu.Unlock()
	e := d.clients[k]
	if e == nil {
		if len(d.clients) >= 1024 {
			for k2, e2 := range d.clients {
				if now.Sub(e2.lastUsed) > time.Hour {
					delete(d.clients, k2)
				}
			}
		}
		e = &clientEntry{hc: d.newHostClient(s)}
		d.clients[k] = e
	}
	e.lastUsed = now
	return e.hc
}

// pieceStringClient fetches piece strings from peers (the l form); bodies are small.
var pieceStringClient = &fasthttp.Client{
	ReadTimeout:         5 * time.Second,
	WriteTimeout:        5 * time.Second,
	MaxResponseBodySize: 1 << 20, // 20 bytes per 512 KiB piece: 1 MiB covers a 25 GiB file
	Dial: func(addr string) (net.Conn, error) {
		return fasthttp.DialDualStackTimeout(addr, 2*time.Second) // IPv6 peers too
	},
}

// PieceString GETs /~/<quote_plus(h)> from peer: the bencoded {t: piece
// string} of the l form (reference §3.3). The caller checks it against h.
func (d *Downloader) PieceString(ctx context.Context, peer netip.AddrPort, h wire.ID) ([]byte, error) {
	req := fasthttp.AcquireRequest()
	resp := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	p := httpserve.QuotePlus([]byte("/~/"), h[:])
	req.SetRequestURI("http://" + peer.String() + string(p))
	req.Header.SetUserAgent(d.ua)
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(5 * time.Second)
	}
	if err := pieceStringClient.DoDeadline(req, resp, deadline); err != nil {
		return nil, err
	}
	if resp.StatusCode() != fasthttp.StatusOK {
		return nil, fmt.Errorf("peer %s: piece string: HTTP %d", peer, resp.StatusCode())
	}
	return append([]byte(nil), resp.Body()...), nil
}
