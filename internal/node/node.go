// Package node wires apt-p2p together: the apt index, the piece store, the DHT
// engine, the downloader and the mirror cache, behind the request handlers the
// HTTP front calls. Follow one apt request from ServeApt: an index lookup gives
// the file's hashes; a verified copy in the store is served at once; otherwise
// one download per content (single flight) looks the hash up in the DHT, races
// the mirror against it, streams to every waiting apt as pieces complete, holds
// the last bytes back until the whole-file hash matched, commits to the store
// and announces the file to the DHT.
package node

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/apt-p2p/apt-p2p/engine"
	"github.com/apt-p2p/apt-p2p/internal/aptindex"
	"github.com/apt-p2p/apt-p2p/internal/config"
	"github.com/apt-p2p/apt-p2p/internal/digest"
	"github.com/apt-p2p/apt-p2p/internal/download"
	"github.com/apt-p2p/apt-p2p/internal/fetch"
	"github.com/apt-p2p/apt-p2p/internal/httpserve"
	"github.com/apt-p2p/apt-p2p/internal/membudget"
	"github.com/apt-p2p/apt-p2p/internal/volunteer"
	"github.com/apt-p2p/apt-p2p/kbucket"
	"github.com/apt-p2p/apt-p2p/piecestore"
	"github.com/apt-p2p/apt-p2p/wire"
)

// Version is the daemon's version; its digits also form the DHT node ID suffix.
const Version = "0.2.0"

// Node is a running apt-p2p daemon minus its listener.
type Node struct {
	cfg   *config.Config
	log   *slog.Logger
	start time.Time

	store     *piecestore.Store
	index     *aptindex.Index
	dht       *engine.Node
	mainline  *engine.MainlineNode // nil unless NETWORKS is mainline or both (mainline.go)
	mdht      MainlineDHT
	lan       lanDiscovery // LAN_DISCOVERY (lan.go)
	pm        portMapping  // PORT_MAPPING (portmap.go)
	fetcher   *fetch.Downloader
	downloads *download.Manager
	mirrors   *mirrorCache
	throttle  *httpserve.Throttle
	peers     *httpserve.PeerHandler
	volunteer *volunteer.Volunteer // nil unless VOLUNTEER_SOURCES is set (volunteer.go)
	Stats     *Stats

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu         sync.Mutex
	indexFiles map[string]indexFile // hashed index files to re-parse at start-up

	hot hotPaths // request URIs answered from the store (hot.go)
}

// indexFile records a hashed index file (Packages.xz, ...) kept in the store.
type indexFile struct {
	Site, BaseDir, Path string
	SHA256              []byte
}

// New opens the cache, loads the index and starts the DHT. Errors say what to do.
func New(cfg *config.Config, log *slog.Logger, opts ...Option) (*Node, error) {
	if log == nil {
		log = slog.Default()
	}
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	if err := os.MkdirAll(cfg.CacheDir, 0o755); err != nil {
		return nil, fmt.Errorf("cache directory %s cannot be created: %w (set CACHE_DIR to a writable directory)", cfg.CacheDir, err)
	}
	probe := filepath.Join(cfg.CacheDir, ".write-test")
	if err := os.WriteFile(probe, nil, 0o644); err != nil {
		return nil, fmt.Errorf("cache directory %s is not writable: %w (fix its permissions or set CACHE_DIR)", cfg.CacheDir, err)
	}
	os.Remove(probe)

	n := &Node{
		cfg:        cfg,
		log:        log,
		start:      time.Now(),
		index:      aptindex.New(),
		indexFiles: map[string]indexFile{},
	}
	n.ctx, n.cancel = context.WithCancel(context.Background())
	n.Stats = newStats(filepath.Join(cfg.CacheDir, "stats.json"))

	var err error
	n.store, err = piecestore.Open(filepath.Join(cfg.CacheDir, "store"), piecestore.Options{
		MaxBytes:      cfg.CacheSize,
		Logger:        log.With("part", "store"),
		Referenced:    n.index.Referenced,
		ScrubRate:     cfg.ScrubRate,
		ScrubInterval: cfg.ScrubInterval,
		Dropped:       n.dropped,
	})
	if err != nil {
		return nil, fmt.Errorf("opening the cache in %s: %w", cfg.CacheDir, err)
	}
	tlsConfig, err := upstreamTLS(cfg.UpstreamCAFile)
	if err != nil {
		n.store.Close()
		return nil, err
	}
	n.mirrors = newMirrorCache(filepath.Join(cfg.CacheDir, "mirrors"), 30*time.Second, "apt-p2p/"+Version, tlsConfig)
	if o.mirrorClock != nil {
		n.mirrors.clk = o.mirrorClock
	}
	n.fetcher = fetch.New(fetch.Config{Version: Version, Logger: log.With("part", "fetch"), TLSConfig: tlsConfig, LoadAware: cfg.LoadAware})
	n.throttle = httpserve.NewThrottle(httpserve.Limits{
		GlobalBytesPerSec:  cfg.UploadLimit,
		PerPeerBytesPerSec: cfg.UploadLimitPerPeer,
		MaxUploads:         cfg.MaxUploads,
	})
	n.peers = httpserve.NewPeerHandler(storeContent{n}, n.throttle, log.With("part", "peers"))
	n.peers.SetUploadWeight(cfg.UploadWeight)
	n.Stats.uploaded = func() int64 { return n.peers.Stats().BytesSent }

	n.loadIndexes()

	if err := n.startDHT(); err != nil {
		n.store.Close()
		return nil, err
	}
	if err := n.startMainline(); err != nil {
		n.dht.Close()
		n.store.Close()
		return nil, err
	}
	n.startLAN()
	n.startPortMap() // portmap.go
	n.downloads = download.New(download.Config{
		MirrorDelay:     cfg.MirrorDelay,
		MinPeers:        cfg.MinDownloadPeers,
		Herd:            cfg.Herd,
		HerdPatience:    cfg.HerdPatience,
		KeyRefresh:      cfg.KeyRefresh,
		Contact:         n.Contact,
		Reachable:       n.Reachable, // reach.go
		AnnouncedAs:     n.announcedAs,
		SaveAnnouncedAs: n.saveAnnouncedAs,
		OtherNetworks:   n.announceOtherNetworks,
		Logger:          log.With("part", "download"),
	}, downloadDHT{n}, n.store, n.fetcher)
	n.downloads.ObserveLookup = n.Stats.LookupLatency.Observe
	n.Stats.dl = func() *download.Counters { return &n.downloads.Counters }
	n.wg.Go(n.Stats.persistLoop(n.ctx))
	if cfg.DHTOnly {
		// A bootstrap node (DHT-ONLY): it answers the DHT and shows its status
		// page, and neither downloads, shares nor announces anything.
		n.log.Info("DHT-only mode: serving the DHT and the status page only")
		return n, nil
	}
	n.wg.Go(n.downloads.RefreshLoop)
	if cfg.Volunteer.On() {
		if err := n.startVolunteer(&o); err != nil {
			n.Close()
			return nil, err
		}
	}
	if len(cfg.OtherDirs) > 0 {
		n.wg.Go(func() {
			err := n.store.ScanDirs(n.ctx, cfg.OtherDirs, func(info piecestore.Info) {
				n.downloads.Announce(n.ctx, info)
			})
			if err != nil && n.ctx.Err() == nil {
				n.log.Warn("scanning OTHER_DIRS", "err", err)
			}
		})
	}
	return n, nil
}

// upstreamTLS is the TLS configuration for https mirrors: the system roots
// plus the certificates in caFile (UPSTREAM_CA_FILE), if set.
func upstreamTLS(caFile string) (*tls.Config, error) {
	c := &tls.Config{MinVersion: tls.VersionTLS12}
	if caFile == "" {
		return c, nil
	}
	pemBytes, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("UPSTREAM_CA_FILE: %w (set it to a readable PEM file of CA certificates, or leave it empty)", err)
	}
	pool, err := x509.SystemCertPool()
	if err != nil || pool == nil {
		pool = x509.NewCertPool()
	}
	if !pool.AppendCertsFromPEM(pemBytes) {
		return nil, fmt.Errorf("UPSTREAM_CA_FILE %s: no PEM certificate in it", caFile)
	}
	c.RootCAs = pool
	return c, nil
}

func (n *Node) startDHT() error {
	d := n.cfg.DHT
	c := engine.Default()
	if d.TimeoutProfile == "classic" {
		c = engine.Classic() // the original's 2/6/9 s schedule and strictly two-phase gets
	}
	c.K = 8
	c.CheckpointInterval = d.CheckpointInterval
	c.ConcurrentReqs = d.ConcurrentReqs
	c.StoreRedundancy = d.StoreRedundancy
	c.RetrieveValues = d.RetrieveValues
	c.MaxFailures = d.MaxFailures
	c.MinPingInterval = d.MinPingInterval
	c.BucketStaleness = d.BucketStaleness
	c.LocalOK = d.LocalOK
	c.KeyExpire = d.KeyExpire
	c.KRPCTimeout = d.KRPCTimeout
	c.KRPCInitialDelay = d.KRPCInitialDelay
	c.BootstrapNode = d.BootstrapNode || len(n.aptBootstrap()) == 0
	c.StateDir = filepath.Join(n.cfg.CacheDir, "dht")
	n.reachConfig(&c) // reach.go
	if err := os.MkdirAll(c.StateDir, 0o755); err != nil {
		return fmt.Errorf("DHT state directory: %w", err)
	}
	listen := n.cfg.ListenAddr(d.Port)
	var tr engine.Transport // nil: the standard library's net.UDPConn (zero allocations per datagram)
	if d.UDPTransport == "gnet" {
		g, err := engine.ListenGnet(listen)
		if err != nil {
			return fmt.Errorf("DHT on UDP %s (gnet): %w (is another apt-p2p running, or the port in use? set [%s] PORT)", listen, err, n.cfg.DHTSection)
		}
		tr = g
	}
	var err error
	n.dht, err = engine.Start(engine.Options{
		Config:    c,
		Listen:    listen,
		Bootstrap: n.aptBootstrap(),
		Logger:    n.log.With("part", "dht"),
		Transport: tr,
		Families:  n.dhtFamilies(), // ADDRESS_FAMILIES (ipv6.go)
	})
	if err != nil {
		return fmt.Errorf("DHT on UDP %s: %w (is another apt-p2p running, or the port in use? set [%s] PORT)", listen, err, n.cfg.DHTSection)
	}
	return nil
}

// Close stops background work, saves statistics and closes the store and DHT.
func (n *Node) Close() error {
	n.cancel()
	n.downloads.Close()
	n.wg.Wait()
	n.Stats.save()
	errs := []error{n.closeLAN(), n.closePortMap()}
	if n.dht != nil {
		errs = append(errs, n.dht.Close())
	}
	if n.mainline != nil {
		errs = append(errs, n.mainline.Close())
	}
	errs = append(errs, n.store.Close())
	return errors.Join(errs...)
}

// DownloadCounters are what the download manager has done this session.
func (n *Node) DownloadCounters() *download.Counters { return &n.downloads.Counters }

// DHT returns the engine, for statistics.
func (n *Node) DHT() *engine.Node { return n.dht }

// Store returns the piece store, for statistics and maintenance.
func (n *Node) Store() *piecestore.Store { return n.store }

// Index returns the apt index.
func (n *Node) Index() *aptindex.Index { return n.index }

// PeerHandler serves /~/ requests from other peers.
func (n *Node) PeerHandler() *httpserve.PeerHandler { return n.peers }

// Throttle is the upload limiter, for statistics.
func (n *Node) Throttle() *httpserve.Throttle { return n.throttle }

// Config is the effective configuration.
func (n *Node) Config() *config.Config { return n.cfg }

// Started is when the node started.
func (n *Node) Started() time.Time { return n.start }

// Contact is the address peers download from (external IP, TCP port), if
// known: the primary DHT's family first (IPv4 on a dual-stack daemon), else
// the other's (ipv6.go, ContactOf).
func (n *Node) Contact() (netip.AddrPort, bool) {
	for _, d := range n.dhts() {
		if c, ok := n.ContactOf(d.Family()); ok {
			return c, true
		}
	}
	return netip.AddrPort{}, false
}

// announcedAsPath keeps the contact our announcements carry, between runs.
func (n *Node) announcedAsPath() string { return filepath.Join(n.cfg.CacheDir, "announced-as") }

func (n *Node) announcedAs() (netip.AddrPort, bool) {
	b, err := os.ReadFile(n.announcedAsPath())
	if err != nil {
		return netip.AddrPort{}, false
	}
	ap, err := netip.ParseAddrPort(strings.TrimSpace(string(b)))
	return ap, err == nil
}

func (n *Node) saveAnnouncedAs(ap netip.AddrPort) {
	if _, err := writeAtomic(n.announcedAsPath(), strings.NewReader(ap.String()+"\n"), 64); err != nil {
		n.log.Warn("saving the announced contact", "err", err)
	}
}

// indexesPath is where the list of hashed index files is kept between runs.
func (n *Node) indexesPath() string { return filepath.Join(n.cfg.CacheDir, "indexes.json") }

// loadIndexes rebuilds the apt index from the cached index files: the
// Release/InRelease files of the mirror cache, then the hashed indexes in the store.
func (n *Node) loadIndexes() {
	t0 := time.Now()
	var files []aptindex.File
	_ = n.mirrors.walk(func(path string, m fileMeta) {
		u, err := parseCachedURL(m.URL)
		if err != nil || !aptindex.IsIndex(u.Path) {
			return
		}
		site := u.Site()
		base, p := aptindex.SplitPath(site, u.Path, n.index.BaseDirs)
		files = append(files, aptindex.File{Site: site, BaseDir: base, Path: p, Name: path})
	})
	var saved []indexFile
	if b, err := os.ReadFile(n.indexesPath()); err == nil {
		_ = json.Unmarshal(b, &saved)
	}
	var readers []*piecestore.Reader
	for _, f := range saved {
		var d digest.Set
		d.Size = -1
		if d.Put(digest.SHA256, f.SHA256) != nil {
			continue
		}
		info, ok := n.store.Lookup(&d)
		if !ok {
			continue
		}
		r, err := n.store.OpenFile(&info)
		if err != nil {
			continue
		}
		readers = append(readers, r)
		n.indexFiles[f.Site+f.BaseDir+f.Path] = f
		files = append(files, aptindex.File{Site: f.Site, BaseDir: f.BaseDir, Path: f.Path, Name: r.File().Name()})
	}
	if err := n.index.Rebuild(files); err != nil {
		n.log.Warn("some cached index files could not be parsed", "err", err)
	}
	for _, r := range readers {
		r.Close()
	}
	// Decompressing and parsing left tens of MB of garbage behind the compact index: give
	// the pages back now rather than keep the peak.
	membudget.Release()
	st := n.index.Stats()
	n.log.Info("index loaded", "files", len(files), "took", time.Since(t0).Round(time.Millisecond), "stats", fmt.Sprintf("%+v", st))
}

func (n *Node) saveIndexes() {
	n.mu.Lock()
	list := make([]indexFile, 0, len(n.indexFiles))
	for _, f := range n.indexFiles {
		list = append(list, f)
	}
	n.mu.Unlock()
	b, _ := json.Marshal(list)
	if _, err := writeAtomic(n.indexesPath(), bytesReader(b), 64<<20); err != nil {
		n.log.Warn("saving the index list", "err", err)
	}
}

// dropped is told by the store that a cached copy went (its file vanished, changed, or no
// longer matches its hash): it is no longer announced (the announcer only refreshes what the
// store holds) and the next request fetches it again.
func (n *Node) dropped(info piecestore.Info, reason string) {
	n.Stats.Dropped.Inc()
	n.log.Warn("cached copy dropped; it is fetched again when next asked for and no longer announced",
		"sha256", fmt.Sprintf("%x", info.Digest.SHA256), "paths", info.Paths, "reason", reason)
}

// storeContent adapts the store to what the peer handler serves.
type storeContent struct{ n *Node }

func (c storeContent) OpenByHash(h []byte) (*os.File, int64, time.Time, func(), bool) {
	info, ok := c.n.store.LookupHash(h)
	if !ok {
		return nil, 0, time.Time{}, nil, false
	}
	r, err := c.n.store.OpenFile(&info)
	if err != nil {
		return nil, 0, time.Time{}, nil, false
	}
	return r.File(), r.Size(), time.Time{}, func() { r.Close() }, true
}

func (c storeContent) PieceString(h []byte) ([]byte, bool) {
	if len(h) != wire.IDLen {
		return nil, false
	}
	return c.n.store.LookupPieces(wire.ID(h))
}

// Active describes one download in progress.
type Active struct {
	Path    string `json:"path"`
	Size    int64  `json:"size"`
	Done    int64  `json:"done"`
	Waiters int    `json:"waiters"`
	Uploads int    `json:"uploads"` // peers streaming it from us while it downloads
	Role    string `json:"role"`
}

// ActiveDownloads lists the downloads in progress.
func (n *Node) ActiveDownloads() []Active {
	fs := n.downloads.Active()
	out := make([]Active, 0, len(fs))
	for _, f := range fs {
		w := f.Writer()
		out = append(out, Active{Path: f.Request().Path, Size: w.Size(), Done: w.Contiguous(), Waiters: f.Readers(),
			Uploads: f.Uploads(), Role: string(f.Role())})
	}
	return out
}

// partialStall is how long a peer's response from a file still being
// downloaded waits for bytes that do not come before it gives up (the
// download has stalled: the peer then asks elsewhere). It is below the
// downloaders' idle timeout (5 s), so the cut, not their timeout, tells them.
const partialStall = 4 * time.Second

func (c storeContent) OpenPartial(h []byte) (httpserve.Growing, int64, func(), bool) {
	f, ok := c.n.downloads.Partial(h)
	if !ok {
		return nil, 0, nil, false
	}
	f.StartUpload()
	w := f.Writer()
	return stallBounded{w}, w.Size(), f.EndUpload, true
}

// stallBounded is a growing file whose waits end after partialStall without
// new bytes.
type stallBounded struct{ *piecestore.Writer }

func (s stallBounded) Wait(ctx context.Context, off int64) (int64, error) {
	ctx, cancel := context.WithTimeout(ctx, partialStall)
	defer cancel()
	return s.Writer.Wait(ctx, off)
}

// The status views' figures: the front reads them here, not from the parts.

// DHTStats are the DHT engine's counters (of both networks on a dual-stack
// daemon: ipv6.go, FamilyStats for each).
func (n *Node) DHTStats() engine.Stats { return n.dhtStats() }

// DHTTable is a snapshot of the routing table: our ID, the k nodes closest to
// it and the buckets.
func (n *Node) DHTTable() (self wire.ID, closest []kbucket.Node, buckets []kbucket.BucketInfo, k int, err error) {
	err = n.tableDHT().Do(func(c *engine.Core, _ time.Time) {
		t := c.Table()
		self, k = t.Self(), t.K()
		closest, buckets = t.Closest(nil, self, k), t.Buckets(nil)
	})
	return self, closest, buckets, k, err
}

// CacheStats are the piece store's counters.
func (n *Node) CacheStats() piecestore.Stats { return n.store.Stats() }

// IndexStats are the apt index's sizes.
func (n *Node) IndexStats() aptindex.Stats { return n.index.Stats() }

// UploadsActive is the number of peer uploads running.
func (n *Node) UploadsActive() int { return n.throttle.Active() }

// MainlineStats are the mainline DHT's counters; false when it is off.
func (n *Node) MainlineStats() (engine.MainlineStats, bool) {
	if n.mainline == nil {
		return engine.MainlineStats{}, false
	}
	return n.mainline.Stats(), true
}
