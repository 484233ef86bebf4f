package fetch

import (
	"math"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/apt-p2p/apt-p2p/internal/httpserve"
)

// Ranking. A source's score estimates how many pieces per second one more
// request to it would return:
//
//	score = 1 / (lat + PieceSize/rate) × e^(−errors) × (MirrorWeight if mirror)
//
// rate is an exponentially weighted average (α = 0.3) of bytes per second of
// the source's recent pieces of 64 KiB or more, from their response headers
// to their last byte; lat the same average of the time from sending a
// request to its response headers, both kept per address across downloads
// (the original kept the last 10 responses of the last hour, §4.5). Without
// history: 150000 B/s and 0.1 s, the original's defaults. errors counts this
// download's failures in a row. The score decides who gets a free piece: a
// source leaves it to one that has a free request slot and scores more than
// 1.5 times higher, so slow sources fill in only where fast ones are busy.
const (
	defaultRate = 150000.0
	defaultLat  = 0.1
	ewmaAlpha   = 0.3
	rankMargin  = 1.5
	// rateMinBytes: the smallest body whose transfer time is a rate sample;
	// rateMinSpan bounds that time from below (a body read at once).
	rateMinBytes = 64 << 10
	rateMinSpan  = 0.001
)

// history is what the Downloader remembers of an address between downloads.
type history struct {
	rate, lat float64
	// load is what the address's last load header said (peers only), shared
	// by every download of this daemon: the freshest view of how busy it is.
	load    httpserve.Load
	loadAt  time.Time
	hasLoad bool
	headAt  time.Time // when a HEAD last went out to refresh a stale load
}

// Load-aware ranking (Config.LoadAware). A peer's responses carry its load
// (httpserve, "The load header"): its running uploads U and the capacity C it
// offers. A new request to it should get
//
//	share = min(C / (U + 1), per-peer limit)
//
// bytes per second, whoever else is downloading from it: the load of the
// other downloaders shows in U at once, where the measured rate would learn
// it a piece later. For each source the scheduler estimates when a piece
// given to it now would be complete (ect): the wait for one of its request
// slots if this download already uses all of them (its requests together
// deliver a piece every PieceSize/(rate × in flight) seconds) or for the end
// of a 503 back-off, then its latency and the piece at share (at the measured
// rate when the peer sends no load header, or it is older than loadFresh).
// A source leaves a piece to another that would finish it more than
// rankMargin times sooner, even one whose slots are full: a fast volunteer
// busy with this download's other pieces is still worth waiting for, where
// ranking by speed alone hands the piece to an idle slow peer that keeps it
// for seconds. It keeps a piece all the same when it would finish it before
// the others could finish every piece not yet requested, this one included:
// a slow source helps in the bulk of a large file, not at its end. A source
// this daemon knows nothing of yet is first asked HEAD, whose answer carries
// its load header (a round trip, no upload slot, no piece spent on a slow
// source); one that sends no load (an original peer, or one that offers no
// capacity yet) then gets one piece request at once, whatever the others'
// rank, and no second one until it has answered (its speed then ranks it).
// Sources thus get pieces in proportion to how fast they serve under their
// current load, and the load of the swarm follows capacity. (An unknown
// source whose HEAD or first request is out counts as finishing a piece in
// the time it has been silent: others hold back for a moment in case it is
// fast, not for ever in case it is dead.)
//
// A load header older than loadFresh no longer counts (the measured rate
// ranks the peer), and the peer is asked HEAD for a fresh one, at most once
// per loadFresh per address for all downloads: a slow peer measured while it
// was busy would otherwise look slow until a piece proved otherwise, and a
// download that gives it none never learns it has become idle.
const loadFresh = 2 * time.Second

// noteLoad records a peer's load header, received at t.
func (d *Downloader) noteLoad(addr string, l httpserve.Load, t time.Time) {
	d.mu.Lock()
	h := d.hist[addr]
	if h == nil {
		if len(d.hist) >= 4096 {
			clear(d.hist)
		}
		h = &history{rate: defaultRate, lat: defaultLat}
		d.hist[addr] = h
	}
	h.load, h.loadAt, h.hasLoad = l, t, true
	d.mu.Unlock()
}

// staleLoad reports whether addr sent a load header once but none in the
// last loadFresh, and no HEAD went out to refresh it in that time; if so it
// counts one as going out now.
func (d *Downloader) staleLoad(addr string, now time.Time) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	h := d.hist[addr]
	if h == nil || !h.hasLoad || now.Sub(h.loadAt) <= loadFresh || now.Sub(h.headAt) < loadFresh {
		return false
	}
	h.headAt = now
	return true
}

// share is the rate a new request to addr should get by its last load
// header; 0 when it sent none lately or offers no capacity.
func (d *Downloader) share(addr string, now time.Time) float64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	h := d.hist[addr]
	if h == nil || !h.hasLoad || now.Sub(h.loadAt) > loadFresh || h.load.Capacity <= 0 {
		return 0
	}
	r := float64(h.load.Capacity) / float64(h.load.Uploads+1)
	if h.load.PerPeer > 0 {
		r = min(r, float64(h.load.PerPeer))
	}
	return r
}

// ect estimates the seconds until s would complete one more piece given to it
// now (see "Load-aware ranking"); depth is the request slots per source.
func (dl *download) ectLocked(s *source, now time.Time, depth int) float64 {
	if s.probing {
		// Unknown: worth a look (the defaults would rank a fast volunteer
		// never tried below every slow peer already measured, and it would
		// never be tried). Once asked, it looks the worse the longer it
		// stays silent.
		if s.inflight == 0 && !s.headProbe {
			return 0
		}
		return now.Sub(s.probeAt).Seconds()
	}
	rate := s.rate
	if !s.mirror {
		if sh := dl.d.share(s.key, now); sh > 0 {
			rate = sh
		}
	}
	t := s.lat + PieceSize/rate
	if s.mirror {
		t /= dl.d.cfg.MirrorWeight
	}
	if s.inflight >= depth {
		t += PieceSize / (rate * float64(s.inflight))
	}
	if w := s.busyUntil.Sub(now); w > 0 {
		t += w.Seconds()
	}
	return t * math.Exp(float64(s.errs))
}

// source is one source within one download. Fields without a comment are
// guarded by download.mu.
type source struct {
	src    Source
	key    string // Source.Addr
	mirror bool
	hc     *fasthttp.HostClient
	host   string // Host header
	ua     string

	partial   bool      // a peer still downloading the file (Source.Partial): streamed, never asked piece by piece
	probing   bool      // LoadAware: nothing known of it yet (see "Load-aware ranking")
	headProbe bool      // its HEAD for the load header is out
	probeAt   time.Time // when the HEAD, or the one piece request of a peer that sent no load, went out
	inflight  int
	errs      int
	dropped   bool
	streaming bool      // the source's stream worker is running (the mirror alone, or a partial peer)
	noRange   bool      // the mirror answered 200 to a Range request: stream only
	busyUntil time.Time // it answered 503: no request before then
	rate, lat float64
	// liveRate is bytes/s received lately (sampled by the supervisor), for
	// the endgame: how long a holder still needs for what it holds.
	liveRate    float64
	recvSampled int64
	delivered   int64 // bytes written into the Sink from this source
	lastErr     error

	recv atomic.Int64 // body bytes received, valid or not (progress, not accounting)
}

func (s *source) score(mirrorWeight float64) float64 {
	sc := 1 / (s.lat + PieceSize/s.rate) * math.Exp(-float64(s.errs))
	if s.mirror {
		sc *= mirrorWeight
	}
	return sc
}

// observe folds one finished piece into the source's estimates: lat from
// the request to its response headers, rate from the headers to the last
// byte. The rate leaves the latency out (the score adds lat to the transfer
// time: counted in both, it was counted twice, and a source seen only with
// small files looked many times slower than it is: a 30 KB file 40 ms away
// made 0.75 MB/s of any link). A body under rateMinBytes, which comes in a
// burst or two, says nothing of the bandwidth: it updates the latency only.
func (s *source) observe(n int64, t0, hdr, end time.Time) {
	if d := hdr.Sub(t0).Seconds(); d >= 0 {
		s.lat += ewmaAlpha * (d - s.lat)
	}
	if n >= rateMinBytes {
		d := max(end.Sub(hdr).Seconds(), rateMinSpan)
		s.rate += ewmaAlpha * (float64(n)/d - s.rate)
	}
}

// noteRecv counts body bytes as they arrive, so the mirror race and the
// slow-peer check see progress before a piece is complete.
func (s *source) noteRecv(dl *download, n int) {
	if n <= 0 {
		return
	}
	s.recv.Add(int64(n))
	if !s.mirror {
		dl.peerRecv.Add(int64(n))
	}
}

func (d *Downloader) newSource(src Source, mirror bool) *source {
	src.Mirror = mirror
	s := &source{
		src:     src,
		key:     src.Addr,
		mirror:  mirror,
		partial: src.Partial && !mirror,
		hc:      d.client(&src),
		host:    hostHeader(&src),
		ua:      d.ua,
		rate:    defaultRate,
		lat:     defaultLat,
	}
	d.mu.Lock()
	if h := d.hist[src.Addr]; h != nil {
		s.rate, s.lat = h.rate, h.lat
	} else {
		s.probing = d.cfg.LoadAware && !mirror
	}
	d.mu.Unlock()
	return s
}

func (d *Downloader) saveHistory(s *source, rate, lat float64) {
	d.mu.Lock()
	h := d.hist[s.key]
	if h == nil {
		if len(d.hist) >= 4096 { // bounded: forget everything rather than grow forever
			clear(d.hist)
		}
		h = &history{}
		d.hist[s.key] = h
	}
	h.rate, h.lat = rate, lat
	d.mu.Unlock()
}

// busyBackoff is how long a source that answered 503 without a usable
// Retry-After is left alone; maxBusyBackoff caps what a Retry-After may ask.
const (
	busyBackoff    = time.Second
	maxBusyBackoff = 10 * time.Second
)

// retryAfter reads a 503's Retry-After (seconds) for the busy back-off.
func retryAfter(v []byte) time.Duration {
	n, ok := parseDec(v)
	if !ok || n <= 0 {
		return busyBackoff
	}
	return min(time.Duration(n)*time.Second, maxBusyBackoff)
}
