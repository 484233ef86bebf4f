package download

import (
	"context"
	"math/rand/v2"
	"net/netip"
	"sync"
	"time"

	"github.com/apt-p2p/apt-p2p/internal/clock"
	"github.com/apt-p2p/apt-p2p/internal/fetch"
	"github.com/apt-p2p/apt-p2p/internal/httpserve"
	"github.com/apt-p2p/apt-p2p/wire"
)

// plan is what the lookup decided: the sources and when the mirror starts.
type plan struct {
	peers       chan fetch.Source // complete holders as the lookup finds them, then earlier claimants; closed at the end
	complete    []wire.PeerValue  // the complete holders' values found before the decision (for piece hashes)
	mirrorDelay time.Duration
	follow      bool // following earlier claimants: the mirror only if they stall
}

// ClaimExtension is how much longer than MirrorDelay a download waits for a
// claim still on its way. In a simulated crowd of 1 000 daemons of a 10 000
// node internet-like network, 2 s brought the share fetching from the mirror
// from 3.7% to 0.9% (bench/RESULTS.md, crowd-sim); a lone user on a LAN never
// waits for it (its claim answers in milliseconds).
const ClaimExtension = 2 * time.Second

// settleWait gives the other answers of a lookup round a moment to arrive
// after the first value, so piece hashes are voted on more than one.
const settleWait = 20 * time.Millisecond

// lookup looks the key up for complete holders and, at the same time, claims
// this download's place among those downloading it now. It returns when it
// knows what to do: fetch from complete holders, follow an earlier claimant,
// or lead (mirror at once). The lookup goes on feeding plan.peers afterwards.
func (f *Flight) lookup(ctx context.Context) plan {
	m := f.m
	t0 := m.clk.Now()
	// Before the lookup starts: it records its own "no values" in the
	// negative cache, which must not cut its own wait short.
	delay, unshared := m.mirrorDelay(f.key)
	self, haveSelf := m.cfg.Contact()
	p := plan{peers: make(chan fetch.Source, 64)}
	var (
		mu      sync.Mutex
		values  []wire.PeerValue
		seen    = map[netip.AddrPort]bool{}
		first   = make(chan struct{})
		once    sync.Once
		feeding sync.WaitGroup // the lookup and the decision both feed p.peers
		getDone = make(chan struct{})
		claimed = make(chan claimResult, 1)
		// A daemon peers cannot reach must not claim (its followers could
		// not fetch from it): it only reads the claims, and follows. So
		// does one that does not know its own address yet (a first node
		// nobody has told it, on a LAN): it has no contact to claim with,
		// and leading unseen made a second leader of every file.
		reachable = m.reachable() && haveSelf
		claiming  = m.cfg.Herd
	)
	if haveSelf {
		seen[self] = true
	}
	m.Counters.Lookups.Add(1)
	feeding.Add(2)
	go func() { // closes p.peers once nothing feeds it any more
		feeding.Wait()
		close(p.peers)
	}()
	go func() {
		defer feeding.Done()
		defer close(getDone)
		lt := m.clk.Now()
		res, err := m.dht.Get(ctx, f.key, func(raw []byte) {
			var v wire.PeerValue
			if v.Parse(raw) != nil || !v.Contact.IsValid() || v.Contact.Port() == 0 {
				return // malformed or hostile value: ignore it, never hang
			}
			mu.Lock()
			dup := seen[v.Contact]
			seen[v.Contact] = true
			if !dup {
				v.Pieces = append([]byte(nil), v.Pieces...)
				values = append(values, v)
			}
			mu.Unlock()
			if dup {
				return
			}
			once.Do(func() {
				m.noteLookup(clock.Since(m.clk, lt))
				close(first)
			})
			select {
			case p.peers <- f.peerSource(v.Contact, false):
			default: // more peers than the downloader takes at once; it has plenty
			}
		})
		if m.ObserveLookup != nil {
			m.ObserveLookup(clock.Since(m.clk, lt))
		}
		if err == nil && res.Values == 0 {
			m.mu.Lock()
			m.noValues[f.key] = m.clk.Now()
			m.mu.Unlock()
		}
	}()
	switch {
	case claiming && reachable:
		go func() { claimed <- f.claim(ctx, self) }()
	case claiming:
		go func() { claimed <- f.readClaims(ctx) }()
	}

	// A key that had no values a moment ago does not wait for its lookup,
	// only (a bounded time) for its claim: that is what keeps a crowd from
	// all going to the mirror.
	wait := delay
	if unshared {
		wait = m.cfg.MirrorDelay
	}
	deadline := m.clk.NewTimer(wait)
	defer deadline.Stop()
	var (
		claim     claimResult
		haveClaim = !claiming
		lookedUp  = unshared
		found     bool
		extended  bool
		gotten    = getDone // nil once received
	)
	if lookedUp && haveClaim {
		deadline.Reset(0)
	}
wait:
	for {
		select {
		case <-first:
			found = true
			break wait
		case <-gotten:
			gotten, lookedUp = nil, true
			if haveClaim {
				break wait
			}
		case claim = <-claimed:
			haveClaim = true
			if lookedUp {
				break wait
			}
		case <-deadline.C():
			if !haveClaim && !extended {
				// The claim is what keeps a crowd from all going to the
				// mirror: on a slow DHT it gets claimExtension more (a claim
				// is a lookup and two round trips: 1.3 s at the median, 2.5 s
				// at p99 on the simulated internet).
				extended = true
				deadline.Reset(ClaimExtension)
				continue
			}
			break wait
		case <-ctx.Done():
			break wait
		}
	}
	if found {
		t := m.clk.NewTimer(settleWait)
		select {
		case <-t.C():
		case <-getDone:
		case <-ctx.Done():
		}
		t.Stop()
	}
	mu.Lock()
	p.complete = append([]wire.PeerValue(nil), values...)
	mu.Unlock()

	elapsed := clock.Since(m.clk, t0)
	switch {
	case len(p.complete) > 0:
		// Peers exist: give them the full delay before adding the mirror.
		f.setRole(RolePeers)
		p.mirrorDelay = delay
	case len(claim.earlier) > 0:
		f.setRole(RoleFollower)
		m.Counters.Followers.Add(1)
		p.follow = true
		p.mirrorDelay = m.cfg.HerdPatience
		srcs := claim.sources(rand.IntN)
		first := srcs[0].contact
		for _, c := range srcs {
			mu.Lock()
			dup := seen[c.contact]
			seen[c.contact] = true
			mu.Unlock()
			if !dup {
				select {
				case p.peers <- f.peerSource(c.contact, true):
				default:
				}
			}
		}
		m.log.Debug("following an earlier download", "path", f.req.Path, "leader", claim.earlier[0].contact,
			"from", first, "claims", claim.seen, "took", elapsed.Round(time.Millisecond))
	default:
		// Nobody holds it and nobody earlier is fetching it (or the lookup
		// and the claim did not answer in time): the mirror starts now, and
		// holders the lookup still finds join as sources.
		f.setRole(RoleLeader)
		m.Counters.Leaders.Add(1)
		p.mirrorDelay = 0
	}
	feeding.Done()
	return p
}

// peerSource turns a holder's contact into a downloader source for this
// content: /~/<quote_plus(hash)>, with the hash the key came from.
func (f *Flight) peerSource(c netip.AddrPort, partial bool) fetch.Source {
	d := &f.req.Digest
	t, _ := d.KeyType()
	q := httpserve.QuotePlus([]byte("/~/"), d.Get(t))
	return fetch.Source{Addr: c.String(), Host: c.String(), Path: string(q), Partial: partial}
}

// dhtGetRaw fetches the raw values under key (piece strings for the h form).
func (m *Manager) dhtGetRaw(ctx context.Context, key wire.ID) ([][]byte, error) {
	return m.dht.GetValues(ctx, key)
}

// peersAllowed is false for content whose last peer download failed
// verification: its refetch goes to the mirror.
func (m *Manager) peersAllowed(key wire.ID) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if mm, ok := m.mirrorOnly[key]; ok {
		if clock.Since(m.clk, mm.at) < m.cfg.MirrorOnly {
			return false
		}
		delete(m.mirrorOnly, key)
	}
	return true
}

// MirrorDelayFor is how long to wait for the lookup (and peer bytes) before
// the mirror starts too, for a daemon whose recent time to a first DHT value
// averages ew (0: none yet): about twice that, bounded by max (MIRROR_DELAY).
// The floor keeps a burst of slow first bytes (a busy peer, a cold TCP
// connection) from pulling in the mirror needlessly.
func MirrorDelayFor(ew, max time.Duration) time.Duration {
	if ew == 0 {
		return max
	}
	return min(2*ew+150*time.Millisecond, max)
}

// NextLookupAverage folds the time d to a lookup's first value into the
// average old (an EWMA of weight 1/8).
func NextLookupAverage(old, d time.Duration) time.Duration {
	if old == 0 {
		return d
	}
	return old + (d-old)/8
}

// mirrorDelay is MirrorDelayFor this daemon; a key that recently had no
// values (unshared) waits for nothing.
func (m *Manager) mirrorDelay(key wire.ID) (d time.Duration, unshared bool) {
	m.mu.Lock()
	t, none := m.noValues[key]
	if none && clock.Since(m.clk, t) > m.cfg.NoValuesTTL {
		delete(m.noValues, key)
		none = false
	}
	m.mu.Unlock()
	if none {
		return 0, true
	}
	return MirrorDelayFor(time.Duration(m.lookupEWMA.Load()), m.cfg.MirrorDelay), false
}

func (m *Manager) noteLookup(d time.Duration) {
	m.lookupEWMA.Store(int64(NextLookupAverage(time.Duration(m.lookupEWMA.Load()), d)))
}
