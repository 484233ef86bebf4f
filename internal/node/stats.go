package node

import (
	"context"
	"encoding/json"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/apt-p2p/apt-p2p/internal/download"
	"github.com/apt-p2p/apt-p2p/internal/metrics"
)

// Stats counts traffic by source for this session and, persisted every minute
// (not only at a clean exit: the original lost its all-time counters on a crash,
// §8.2 item 13), for all time.
type Stats struct {
	Registry metrics.Registry

	// Bytes sent to apt, by where they came from: Mirror counts files the
	// index has no hash for (relayed through the mirror cache); downloads of
	// hashed files count in the download manager (downloaded).
	Mirror, Cache *metrics.Counter
	downloaded    func() (mirror, peers int64)
	// uploaded reads the bytes actually written to peers (the peer handler
	// counts them as they leave, so cut and endgame-duplicate responses count
	// only what was sent).
	uploaded      func() int64
	Requests      *metrics.Counter
	Express       *metrics.Counter // of Requests: answered on the express lane (httpserve)
	LookupLatency *metrics.Histogram
	// dl reads the download manager's counters (an empty set until it exists).
	dl             func() *download.Counters
	Dropped        *metrics.Counter // cached copies dropped (vanished, changed, rotten)
	RequestLatency *metrics.Histogram

	path     string
	mu       sync.Mutex
	base     AllTime // all-time totals at the start of this session
	saveLock sync.Mutex
}

// AllTime are the persisted counters.
type AllTime struct {
	Mirror   int64 `json:"mirror_down"`
	Peers    int64 `json:"peer_down"`
	Cache    int64 `json:"cache_down"`
	Uploaded int64 `json:"peer_up"`
	Requests int64 `json:"requests"`
}

func newStats(path string) *Stats {
	s := &Stats{path: path}
	r := &s.Registry
	const dl = "Bytes sent to apt, by where they came from."
	s.Mirror = r.Counter("aptp2p_mirror_relay_bytes_total", "", "Bytes of files without a known hash relayed from mirrors (part of the mirror download bytes).")
	var none download.Counters
	s.dl = func() *download.Counters { return &none }
	s.downloaded = func() (int64, int64) { c := s.dl(); return c.MirrorBytes.Load(), c.PeerBytes.Load() }
	dlc := func(name, labels, help string, get func(c *download.Counters) *atomic.Int64) {
		r.CounterFunc(name, labels, help, func() float64 { return float64(get(s.dl()).Load()) })
	}
	r.CounterFunc("aptp2p_download_bytes_total", `source="mirror"`, dl, func() float64 { return float64(s.mirrorDown()) })
	r.CounterFunc("aptp2p_download_bytes_total", `source="peer"`, dl, func() float64 { _, p := s.downloaded(); return float64(p) })
	s.Cache = r.Counter("aptp2p_download_bytes_total", `source="cache"`, dl)
	s.uploaded = func() int64 { return 0 }
	r.CounterFunc("aptp2p_upload_bytes_total", "", "Bytes uploaded to other peers.", func() float64 { return float64(s.uploaded()) })
	s.Requests = r.Counter("aptp2p_apt_requests_total", "", "apt requests answered.")
	s.Express = r.Counter("aptp2p_apt_express_answers_total", "", "apt requests (of aptp2p_apt_requests_total) answered on the express lane: a plain GET of a cached file, without the HTTP framework.")
	dlc("aptp2p_dht_lookups_total", "", "DHT lookups started for downloads.", func(c *download.Counters) *atomic.Int64 { return &c.Lookups })
	dlc("aptp2p_verification_failures_total", "", "Downloads whose whole-file hash did not match (refetched from the mirror; the suppliers of wrong pieces banned).", func(c *download.Counters) *atomic.Int64 { return &c.Mismatches })
	dlc("aptp2p_banned_peers_total", "", "Peers banned for sending bad data.", func(c *download.Counters) *atomic.Int64 { return &c.Banned })
	dlc("aptp2p_wasted_bytes_total", "", "Bytes received and thrown away: endgame duplicates that lost, bad pieces, resent prefixes.", func(c *download.Counters) *atomic.Int64 { return &c.WastedBytes })
	const an = "Announcements stored in the DHT."
	dlc("aptp2p_announcements_total", `result="ok"`, an, func(c *download.Counters) *atomic.Int64 { return &c.Announced })
	dlc("aptp2p_announcements_total", `result="failed"`, an, func(c *download.Counters) *atomic.Int64 { return &c.AnnounceFailed })
	const roles = "Downloads by what they decided: lead (fetch from the mirror at once: alone, or first of a crowd) or follow an earlier download of the same file."
	dlc("aptp2p_download_roles_total", `role="leader"`, roles, func(c *download.Counters) *atomic.Int64 { return &c.Leaders })
	dlc("aptp2p_download_roles_total", `role="follower"`, roles, func(c *download.Counters) *atomic.Int64 { return &c.Followers })
	s.Dropped = r.Counter("aptp2p_cache_dropped_total", "", "Cached copies dropped because their file vanished, changed or no longer matched its hash (fetched again when next asked for).")
	s.LookupLatency = r.Histogram("aptp2p_dht_lookup_seconds", "Time of DHT lookups for downloads.", metrics.LatencyBuckets...)
	s.RequestLatency = r.Histogram("aptp2p_apt_request_seconds", "Time to answer apt requests (headers).", metrics.LatencyBuckets...)
	if b, err := os.ReadFile(path); err == nil {
		_ = json.Unmarshal(b, &s.base)
	}
	return s
}

func (s *Stats) mirrorDown() int64 {
	m, _ := s.downloaded()
	return m + s.Mirror.Load()
}

// Session returns this session's counters.
func (s *Stats) Session() AllTime {
	_, peers := s.downloaded()
	return AllTime{Mirror: s.mirrorDown(), Peers: peers, Cache: s.Cache.Load(), Uploaded: s.uploaded(), Requests: s.Requests.Load()}
}

// Total returns the all-time counters.
func (s *Stats) Total() AllTime {
	c := s.Session()
	s.mu.Lock()
	b := s.base
	s.mu.Unlock()
	return AllTime{Mirror: b.Mirror + c.Mirror, Peers: b.Peers + c.Peers, Cache: b.Cache + c.Cache, Uploaded: b.Uploaded + c.Uploaded, Requests: b.Requests + c.Requests}
}

func (s *Stats) save() {
	s.saveLock.Lock()
	defer s.saveLock.Unlock()
	b, _ := json.Marshal(s.Total())
	_, _ = writeAtomic(s.path, bytesReader(b), 1<<20)
}

func (s *Stats) persistLoop(ctx context.Context) func() {
	return func() {
		t := time.NewTicker(time.Minute)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				s.save()
			}
		}
	}
}
