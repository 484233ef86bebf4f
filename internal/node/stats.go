package node

import (
	"context"
	"encoding/json"
	"os"
	"sync"
	"time"

	"github.com/apt-p2p/apt-p2p/internal/metrics"
)

// Stats counts traffic by source for this session and, persisted every minute
// (not only at a clean exit: the original lost its all-time counters on a crash,
// §8.2 item 13), for all time.
type Stats struct {
	Registry metrics.Registry

	Mirror, Peers, Cache *metrics.Counter // bytes sent to apt, by where they came from
	// uploaded reads the bytes actually written to peers (the peer handler
	// counts them as they leave, so cut and endgame-duplicate responses count
	// only what was sent).
	uploaded       func() int64
	Requests       *metrics.Counter
	Lookups        *metrics.Counter
	Mismatches     *metrics.Counter
	Announced      *metrics.Counter
	Dropped        *metrics.Counter // cached copies dropped (vanished, changed, rotten)
	AnnounceFailed *metrics.Counter
	LookupLatency  *metrics.Histogram
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
	s.Mirror = r.Counter("aptp2p_download_bytes_total", `source="mirror"`, dl)
	s.Peers = r.Counter("aptp2p_download_bytes_total", `source="peer"`, dl)
	s.Cache = r.Counter("aptp2p_download_bytes_total", `source="cache"`, dl)
	s.uploaded = func() int64 { return 0 }
	r.CounterFunc("aptp2p_upload_bytes_total", "", "Bytes uploaded to other peers.", func() float64 { return float64(s.uploaded()) })
	s.Requests = r.Counter("aptp2p_apt_requests_total", "", "apt requests answered.")
	s.Lookups = r.Counter("aptp2p_dht_lookups_total", "", "DHT lookups started for downloads.")
	s.Mismatches = r.Counter("aptp2p_verification_failures_total", "", "Downloads whose whole-file hash did not match (sources banned).")
	s.Announced = r.Counter("aptp2p_announcements_total", `result="ok"`, "Announcements stored in the DHT.")
	s.AnnounceFailed = r.Counter("aptp2p_announcements_total", `result="failed"`, "Announcements stored in the DHT.")
	s.Dropped = r.Counter("aptp2p_cache_dropped_total", "", "Cached copies dropped because their file vanished, changed or no longer matched its hash (fetched again when next asked for).")
	s.LookupLatency = r.Histogram("aptp2p_dht_lookup_seconds", "Time of DHT lookups for downloads.", metrics.LatencyBuckets...)
	s.RequestLatency = r.Histogram("aptp2p_apt_request_seconds", "Time to answer apt requests (headers).", metrics.LatencyBuckets...)
	if b, err := os.ReadFile(path); err == nil {
		_ = json.Unmarshal(b, &s.base)
	}
	return s
}

// Session returns this session's counters.
func (s *Stats) Session() AllTime {
	return AllTime{Mirror: s.Mirror.Load(), Peers: s.Peers.Load(), Cache: s.Cache.Load(), Uploaded: s.uploaded(), Requests: s.Requests.Load()}
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
