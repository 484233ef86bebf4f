package httpserve

import (
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// Limits are the upload limits that keep one peer from becoming everybody's free mirror
// ("no undue burden on any peer"). Zero means unlimited for each field.
type Limits struct {
	// GlobalBytesPerSec caps the sum of all peer uploads (the original's UPLOAD_LIMIT).
	GlobalBytesPerSec int64
	// PerPeerBytesPerSec caps the uploads to one remote address (an IPv6 /64 counts as one address,
	// since a host can pick any address in its /64).
	PerPeerBytesPerSec int64
	// MaxUploads caps concurrent file uploads; requests beyond it get 503 with Retry-After.
	MaxUploads int
}

const (
	// maxPaceStep is the largest span sent per token-bucket reservation when a rate limit applies:
	// small enough that concurrent uploads interleave smoothly, large enough that one sendfile(2)
	// moves a useful amount.
	maxPaceStep = 64 << 10
	// minPaceStep keeps very low limits from degenerating into tiny writes.
	minPaceStep = 4 << 10
	// retryAfterSeconds is sent with 503 when MaxUploads is reached. Downloaders take other peers
	// meanwhile, so this only needs to be roughly the time one 512 KiB piece takes.
	retryAfterSeconds = 5
	// sweepInterval is how often idle per-peer buckets are dropped.
	sweepInterval = time.Second
)

// Throttle applies Limits to peer uploads. It is safe for concurrent use. A nil *Throttle limits nothing.
//
// Rates use token buckets refilled continuously (not once a second as in the original, whose
// one-second bursts made uploads stutter). A bucket may go into debt: a sender takes the bytes it is
// about to send and sleeps until the debt is repaid, so the long-run rate is exact however the steps
// are sized and however many senders share the bucket.
type Throttle struct {
	l      Limits
	step   int64
	global *bucket // nil if unlimited

	active atomic.Int64

	mu        sync.Mutex
	peers     map[netip.Addr]*peerBucket
	lastSweep time.Time
}

type bucket struct {
	mu     sync.Mutex
	rate   float64 // bytes per second
	burst  float64
	tokens float64
	last   time.Time
}

type peerBucket struct {
	bucket
	refs int // uploads in progress; guarded by Throttle.mu
}

// NewThrottle returns a Throttle enforcing l. If every limit is zero it returns nil, which limits nothing.
func NewThrottle(l Limits) *Throttle {
	if l.GlobalBytesPerSec <= 0 && l.PerPeerBytesPerSec <= 0 && l.MaxUploads <= 0 {
		return nil
	}
	t := &Throttle{l: l, peers: make(map[netip.Addr]*peerBucket)}
	minRate := int64(0)
	for _, r := range []int64{l.GlobalBytesPerSec, l.PerPeerBytesPerSec} {
		if r > 0 && (minRate == 0 || r < minRate) {
			minRate = r
		}
	}
	if minRate > 0 {
		// About 16 steps a second at the slowest applicable rate.
		t.step = min(max(minRate/16, minPaceStep), maxPaceStep)
	}
	if l.GlobalBytesPerSec > 0 {
		t.global = newBucket(l.GlobalBytesPerSec, t.step)
	}
	return t
}

func newBucket(rate, burst int64) *bucket {
	return &bucket{rate: float64(rate), burst: float64(burst), tokens: float64(burst), last: time.Now()}
}

func (b *bucket) init(rate, burst int64, now time.Time) {
	b.rate, b.burst, b.tokens, b.last = float64(rate), float64(burst), float64(burst), now
}

// reserve takes n bytes from the bucket and returns how long the caller must wait before sending them.
func (b *bucket) reserve(n int64, now time.Time) time.Duration {
	b.mu.Lock()
	b.refill(now)
	b.tokens -= float64(n)
	t := b.tokens
	b.mu.Unlock()
	if t >= 0 {
		return 0
	}
	return time.Duration(-t / b.rate * float64(time.Second))
}

func (b *bucket) refill(now time.Time) {
	if d := now.Sub(b.last); d > 0 {
		b.tokens = min(b.burst, b.tokens+d.Seconds()*b.rate)
		b.last = now
	}
}

// full reports whether the bucket has refilled completely, so dropping it loses nothing.
func (b *bucket) full(now time.Time) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.refill(now)
	return b.tokens >= b.burst
}

// peerKey maps an address to the unit the per-peer limit applies to.
func peerKey(ip netip.Addr) netip.Addr {
	ip = ip.Unmap()
	if ip.Is6() {
		if p, err := ip.Prefix(64); err == nil {
			return p.Addr()
		}
	}
	return ip
}

// acquire starts one upload to ip. It returns ok = false when MaxUploads uploads are already running.
// The returned bucket (nil without a per-peer limit) must be passed to release.
func (t *Throttle) acquire(ip netip.Addr) (p *peerBucket, ok bool) {
	if t == nil {
		return nil, true
	}
	if n := t.active.Add(1); t.l.MaxUploads > 0 && n > int64(t.l.MaxUploads) {
		t.active.Add(-1)
		return nil, false
	}
	if t.l.PerPeerBytesPerSec <= 0 {
		return nil, true
	}
	key := peerKey(ip)
	now := time.Now()
	t.mu.Lock()
	if now.Sub(t.lastSweep) >= sweepInterval {
		t.lastSweep = now
		for k, pb := range t.peers {
			if pb.refs == 0 && pb.full(now) {
				delete(t.peers, k)
			}
		}
	}
	p = t.peers[key]
	if p == nil {
		p = &peerBucket{}
		p.init(t.l.PerPeerBytesPerSec, t.step, now)
		t.peers[key] = p
	}
	p.refs++
	t.mu.Unlock()
	return p, true
}

// release ends an upload started by acquire.
func (t *Throttle) release(p *peerBucket) {
	if t == nil {
		return
	}
	t.active.Add(-1)
	if p != nil {
		t.mu.Lock()
		p.refs--
		t.mu.Unlock()
	}
}

// limited reports whether uploads are rate-limited (and so must be sent in paced steps).
func (t *Throttle) limited() bool { return t != nil && t.step > 0 }

// wait blocks until n more bytes may be sent to the peer of p.
func (t *Throttle) wait(p *peerBucket, n int64) {
	now := time.Now()
	var d time.Duration
	if t.global != nil {
		d = t.global.reserve(n, now)
	}
	if p != nil {
		d = max(d, p.reserve(n, now))
	}
	if d > 0 {
		time.Sleep(d)
	}
}

// Active returns the number of file uploads in progress.
func (t *Throttle) Active() int {
	if t == nil {
		return 0
	}
	return int(t.active.Load())
}

// Limits returns the limits t enforces.
func (t *Throttle) Limits() Limits {
	if t == nil {
		return Limits{}
	}
	return t.l
}
