package download

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/apt-p2p/apt-p2p/engine"
	"github.com/apt-p2p/apt-p2p/internal/clock"
	"github.com/apt-p2p/apt-p2p/internal/digest"
	"github.com/apt-p2p/apt-p2p/internal/fetch"
	"github.com/apt-p2p/apt-p2p/piecestore"
	"github.com/apt-p2p/apt-p2p/wire"
)

// DHT is what downloads need of the DHT; *engine.Node satisfies it.
type DHT interface {
	// Get streams the values stored under key to onValue and returns when the
	// lookup ends (or ctx does, which also stops the lookup).
	Get(ctx context.Context, key wire.ID, onValue func([]byte)) (engine.Result, error)
	// GetValues collects every value stored under key.
	GetValues(ctx context.Context, key wire.ID) ([][]byte, error)
	// Put stores value under key on the closest nodes.
	Put(ctx context.Context, key wire.ID, value []byte) (engine.Result, error)
	// Claim stores the value build makes under key and returns the values
	// the storing nodes hold under it settle later (engine.Core.Claim).
	Claim(ctx context.Context, key wire.ID, build func(now time.Time) []byte, settle time.Duration) (engine.Result, [][]byte, error)
}

// Store is what downloads need of the piece store; *piecestore.Store satisfies it.
type Store interface {
	Lookup(d *digest.Set) (piecestore.Info, bool)
	LookupHash(h []byte) (piecestore.Info, bool)
	// CreateContext may wait for room among the commits in progress.
	CreateContext(ctx context.Context, d digest.Set, pieces []byte) (*piecestore.Writer, error)
	AddPath(info *piecestore.Info, path string) error
	MarkAnnounced(info *piecestore.Info, t time.Time) error
	DueForAnnounce(before time.Time, max int) []piecestore.Info
}

// Fetcher moves the bytes; *fetch.Downloader satisfies it.
type Fetcher interface {
	Fetch(ctx context.Context, job *fetch.Job) (fetch.Result, error)
	// BanFor keeps addr out of every download until the given time, and says why.
	BanFor(addr string, until time.Time, reason string)
	Banned(addr string) bool
	// PieceString GETs the piece string whose SHA-1 is h from peer (the l form).
	PieceString(ctx context.Context, peer netip.AddrPort, h wire.ID) ([]byte, error)
}

// Config tunes a Manager. Zero values mean the defaults.
type Config struct {
	// MirrorDelay is the longest wait for peer bytes (and for the lookup and
	// the claim) before the mirror is raced too (MIRROR_DELAY, default 1 s);
	// the actual delay adapts below it to the measured lookup time.
	MirrorDelay time.Duration
	// MinPeers: with fewer peers the mirror is one more source
	// (MIN_DOWNLOAD_PEERS, the original's rule). 0, the default, leaves the
	// decision to measured throughput: the mirror joins when peers fail, stall
	// or deliver too slowly.
	MinPeers int
	// Herd turns flash-crowd coordination on (HERD, default on in package
	// node): claims under wire.PartialKey, one leader per crowd.
	Herd bool
	// HerdPatience is how long a follower waits for its leader's first bytes
	// before it adds the mirror (default 3 s).
	HerdPatience time.Duration
	// ClaimWindow: claims older than this do not make a daemon follow
	// (default 1 min): such a download has ended, and if it succeeded the
	// lookup finds its holder as a complete one.
	ClaimWindow time.Duration
	// BanDuration is how long a source that sent bad data is shunned (10 min).
	BanDuration time.Duration
	// MirrorOnly is how long a key whose peer download failed verification
	// goes to the mirror only (10 min).
	MirrorOnly time.Duration
	// NoValuesTTL is how long a key the DHT had no values for skips the
	// lookup wait (30 s).
	NoValuesTTL time.Duration
	// KeyRefresh is how often announcements are renewed (KEY_REFRESH).
	KeyRefresh time.Duration
	// Timeout bounds one download (2 h).
	Timeout time.Duration

	// Contact is the address peers download from, once known.
	Contact func() (netip.AddrPort, bool)
	// Reachable, if set, says whether peers can connect to us. A daemon
	// they cannot reach (behind a NAT) announces nothing: no stored file
	// (Announce, the refresh loop) and no download in progress (it reads
	// the crowd's claims and follows). Nil: reachable.
	Reachable func() bool
	// AnnouncedAs and SaveAnnouncedAs, if set, read and keep (across
	// restarts) the contact our announcements carry: when it changes (a
	// restart on another port or address) every stored file is announced
	// again at once, not when its refresh comes due hours later.
	AnnouncedAs     func() (netip.AddrPort, bool)
	SaveAnnouncedAs func(netip.AddrPort)
	// OtherNetworks, if set, announces a stored file on other DHTs (the
	// BitTorrent mainline DHT) before the apt-p2p DHT; done means the
	// apt-p2p DHT is off and ok is the announcement's result.
	OtherNetworks func(ctx context.Context, info piecestore.Info) (ok, done bool)
	Clock         clock.Clock
	Logger        *slog.Logger
}

func (c *Config) fill() {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&c.MirrorDelay, time.Second)
	def(&c.HerdPatience, 3*time.Second)
	def(&c.ClaimWindow, time.Minute)
	def(&c.BanDuration, 10*time.Minute)
	def(&c.MirrorOnly, 10*time.Minute)
	def(&c.NoValuesTTL, 30*time.Second)
	def(&c.KeyRefresh, 150*time.Minute)
	def(&c.Timeout, 2*time.Hour)
	if c.Clock == nil {
		c.Clock = clock.Real
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Contact == nil {
		c.Contact = func() (netip.AddrPort, bool) { return netip.AddrPort{}, false }
	}
}

// Counters are what the Manager has done since it started; package node
// exports them as metrics.
type Counters struct {
	Lookups        atomic.Int64 // DHT lookups started for downloads
	MirrorBytes    atomic.Int64 // bytes downloaded from mirrors into the store
	PeerBytes      atomic.Int64 // bytes downloaded from peers into the store
	WastedBytes    atomic.Int64 // bytes received and thrown away (endgame losers, bad data)
	Mismatches     atomic.Int64 // downloads whose whole-file hash did not match
	Banned         atomic.Int64 // sources banned for bad data
	Announced      atomic.Int64 // announcements stored
	AnnounceFailed atomic.Int64
	Leaders        atomic.Int64 // downloads that led a crowd (or were alone) and used the mirror at once
	Followers      atomic.Int64 // downloads that followed an earlier claimant
}

// Errors of Start.
var (
	// ErrClosed: the Manager is closing and accepts no new download.
	ErrClosed = errors.New("download: manager closed")
	// ErrStored: the content was stored while the request was on its way;
	// serve it from the store.
	ErrStored = errors.New("download: already stored")
)

// Manager runs the downloads of one daemon. It is safe for concurrent use.
type Manager struct {
	cfg   Config
	clk   clock.Clock
	log   *slog.Logger
	dht   DHT // nil: no DHT (mirror only)
	store Store
	fetch Fetcher

	// Counters are read by the node's metrics.
	Counters Counters
	// ObserveLookup, if set, receives the duration of every DHT lookup.
	ObserveLookup func(time.Duration)

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu         sync.Mutex
	closed     bool
	active     map[wire.ID]*Flight   // one Flight per content, by DHT key
	noValues   map[wire.ID]time.Time // keys the DHT had no values for, recently
	mirrorOnly map[wire.ID]*mismatch // keys whose peer download failed verification

	lookupEWMA atomic.Int64 // ns: smoothed time until a lookup delivered its first value

	movedAt time.Time // when the refresh loop found our contact changed (its goroutine only)

	startedAt  time.Time      // when New ran
	annMu      sync.Mutex     // guards annContact, annMixed
	annContact netip.AddrPort // the contact this run's announcements carried
	annMixed   bool           // they carried more than one
}

// New returns a Manager. dht may be nil (a daemon without a DHT fetches from
// the mirror only).
func New(cfg Config, dht DHT, store Store, fetcher Fetcher) *Manager {
	cfg.fill()
	m := &Manager{
		cfg:        cfg,
		clk:        cfg.Clock,
		log:        cfg.Logger,
		dht:        dht,
		store:      store,
		fetch:      fetcher,
		active:     make(map[wire.ID]*Flight),
		noValues:   make(map[wire.ID]time.Time),
		mirrorOnly: make(map[wire.ID]*mismatch),
		startedAt:  cfg.Clock.Now(),
	}
	m.ctx, m.cancel = context.WithCancel(context.Background())
	return m
}

// Request names one content to download.
type Request struct {
	// Digest is the expected size and hashes, from the index chain.
	Digest digest.Set
	// Mirror is where the mirror has the file.
	Mirror fetch.Source
	// Path is "site/basedir/path", recorded with the stored file and logged.
	Path string
	// Site is the mirror's index key (mirrorurl.URL.Site).
	Site string
	// Index marks a hashed index file (Packages.xz, …).
	Index bool
	// AfterCommit, if set, runs after the file is stored and before the
	// Flight is done (index files are parsed there, so that requests waiting
	// for the index see it as soon as the download ends).
	AfterCommit func(info piecestore.Info)
	// Pace, if set, is asked before each write of n bytes into the store and
	// returns when they may go (an error ends the download): a download
	// nobody waits for, such as a volunteer's preheat, runs at a bandwidth
	// limit. It is skipped while apt streams from the Flight, so apt joining
	// a preheat gets it at full speed.
	Pace func(ctx context.Context, n int) error
}

// Start returns the running Flight for req's content, starting one if none
// runs. ErrStored means the content is in the store now; ErrClosed that the
// Manager is closing. It may wait while the store makes room among the
// commits in progress (back-pressure), never holding the Manager's lock
// meanwhile.
func (m *Manager) Start(req Request) (*Flight, error) {
	key, ok := req.Digest.Key()
	if !ok || req.Digest.Size < 0 {
		return nil, fmt.Errorf("download: %s: no usable hash or size", req.Path)
	}
	for {
		m.mu.Lock()
		if m.closed {
			m.mu.Unlock()
			return nil, ErrClosed
		}
		f, ok := m.active[key]
		if !ok {
			f, err := m.reserveLocked(key, req, false)
			m.mu.Unlock()
			if err != nil {
				return nil, err
			}
			return f, m.launch(f)
		}
		m.mu.Unlock()
		<-f.ready
		if f.w != nil && f.w.Err() == nil {
			return f, nil
		}
		// It has failed (apt's retry after a cut arrives while the failure is
		// being handled): joining would cut this response too. Wait for it to
		// end, so the refetch it starts is the one found, and look again.
		t := m.clk.NewTimer(10 * time.Second)
		select {
		case <-f.done:
		case <-t.C():
		case <-m.ctx.Done():
		}
		t.Stop()
		m.mu.Lock()
		still := m.active[key] == f
		m.mu.Unlock()
		if still {
			return nil, fmt.Errorf("download: %s: a failed download of it is still ending", req.Path)
		}
	}
}

// reserveLocked registers a Flight for key, without its Writer yet (m.mu
// held): a concurrent Start for the same content waits for it (ready).
func (m *Manager) reserveLocked(key wire.ID, req Request, refetch bool) (*Flight, error) {
	if _, ok := m.store.Lookup(&req.Digest); ok {
		return nil, ErrStored
	}
	f := &Flight{m: m, req: req, key: key, ready: make(chan struct{}), done: make(chan struct{}),
		started: m.clk.Now(), refetch: refetch}
	m.active[key] = f
	m.wg.Add(1) // Close waits for it from here on
	return f, nil
}

// launch creates f's Writer in the store, outside the Manager's lock (the
// store may make it wait for room), and runs the download.
func (m *Manager) launch(f *Flight) error {
	w, err := m.store.CreateContext(m.ctx, f.req.Digest, nil)
	if err != nil {
		m.mu.Lock()
		if m.active[f.key] == f {
			delete(m.active, f.key)
		}
		m.mu.Unlock()
		f.fail(err)
		close(f.ready)
		close(f.done)
		m.wg.Done()
		return err
	}
	ctx, cancel := clock.WithTimeout(m.ctx, m.clk, m.cfg.Timeout)
	f.w, f.cancel = w, cancel
	close(f.ready)
	go func() {
		defer m.wg.Done()
		defer cancel()
		info, ok := f.run(ctx)
		m.mu.Lock()
		if m.active[f.key] == f {
			delete(m.active, f.key)
		}
		m.mu.Unlock()
		// Requests waiting for an index file go on now, not after the
		// announcement, which may take a DHT lookup's time.
		close(f.done)
		if ok {
			m.Announce(ctx, info)
		} else if f.refetchNow && !f.refetch {
			m.refetch(f.key, f.req)
		}
	}()
	return nil
}

// refetch starts the mirror-only download that follows a whole-file
// mismatch, unless one runs already or the Manager is closing.
func (m *Manager) refetch(key wire.ID, req Request) {
	m.mu.Lock()
	if m.closed || m.active[key] != nil {
		m.mu.Unlock()
		return
	}
	f, err := m.reserveLocked(key, req, true)
	m.mu.Unlock()
	if err == nil {
		err = m.launch(f)
	}
	if err != nil && !errors.Is(err, ErrStored) {
		m.log.Warn("refetch after a failed verification could not start", "path", req.Path, "err", err)
	}
}

// Close stops every download, waits for them and refuses new ones.
func (m *Manager) Close() {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return
	}
	m.closed = true
	m.mu.Unlock()
	m.cancel()
	m.wg.Wait()
}

// Active lists the downloads in progress.
func (m *Manager) Active() []*Flight {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]*Flight, 0, len(m.active))
	for _, f := range m.active {
		if f.isReady() {
			out = append(out, f)
		}
	}
	return out
}

// Partial returns the running download of the content whose full hash is h
// (16, 20, 32 or 64 bytes, as a peer asks for it at /~/), for peers that
// accept a file still being written.
func (m *Manager) Partial(h []byte) (*Flight, bool) {
	key := wire.NormKey(h)
	m.mu.Lock()
	f, ok := m.active[key]
	m.mu.Unlock()
	if !ok || !f.isReady() || f.w == nil {
		return nil, false
	}
	t, ok := f.req.Digest.KeyType()
	if !ok || string(f.req.Digest.Get(t)) != string(h) {
		return nil, false
	}
	return f, true
}

// Prune forgets expired negative-cache and mirror-only entries.
func (m *Manager) Prune() {
	now := m.clk.Now()
	m.mu.Lock()
	defer m.mu.Unlock()
	for k, t := range m.noValues {
		if now.Sub(t) > m.cfg.NoValuesTTL {
			delete(m.noValues, k)
		}
	}
	for k, mm := range m.mirrorOnly {
		if now.Sub(mm.at) > m.cfg.MirrorOnly {
			delete(m.mirrorOnly, k)
		}
	}
}

// Ban keeps addr out of every download for BanDuration, and says so.
func (m *Manager) ban(addr, why string, path string) {
	if addr == "" || m.fetch.Banned(addr) {
		return
	}
	m.fetch.BanFor(addr, m.clk.Now().Add(m.cfg.BanDuration), why)
	m.Counters.Banned.Add(1)
	m.log.Warn("peer banned", "peer", addr, "reason", why, "path", path, "for", m.cfg.BanDuration)
}
