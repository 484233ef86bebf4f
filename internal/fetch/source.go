package fetch

import (
	"math"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"
)

// Ranking. A source's score estimates how many pieces per second one more
// request to it would return:
//
//	score = 1 / (lat + PieceSize/rate) × e^(−errors) × (MirrorWeight if mirror)
//
// rate is an exponentially weighted average (α = 0.3) of bytes per second of
// the source's recent pieces, lat the same average of the time from sending a
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
)

// history is what the Downloader remembers of an address between downloads.
type history struct {
	rate, lat float64
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

	partial   bool // a peer still downloading the file (Source.Partial): streamed, never asked piece by piece
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

// observe folds one finished piece into the source's estimates.
func (s *source) observe(n int64, t0, hdr, end time.Time) {
	if d := end.Sub(t0).Seconds(); d > 0 && n > 0 {
		s.rate += ewmaAlpha * (float64(n)/d - s.rate)
	}
	if d := hdr.Sub(t0).Seconds(); d >= 0 {
		s.lat += ewmaAlpha * (d - s.lat)
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
