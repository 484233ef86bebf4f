package download

import (
	"context"
	"math"
	"net/netip"
	"slices"
	"time"

	"github.com/apt-p2p/apt-p2p/internal/clock"
	"github.com/apt-p2p/apt-p2p/wire"
)

// claimRecord is one download in progress seen under a PartialKey.
type claimRecord struct {
	contact netip.AddrPort
	at      int64 // µs since the Unix epoch, when the claim was sent
}

// before orders claims: the earlier claim first, then the lower contact, so
// that every daemon that sees the same two claims orders them the same way.
func (a claimRecord) before(b claimRecord) bool {
	if a.at != b.at {
		return a.at < b.at
	}
	return a.contact.Compare(b.contact) < 0
}

// claimResult is what a claim found.
type claimResult struct {
	earlier []claimRecord // recent claims ordered before ours, leader first
	seen    int           // claims seen, ours included
	ok      bool          // the claim was stored and checked
}

// sources are the earlier claimants in the order a follower tries them: a
// parent drawn at random among them, then the leader, then the others. The
// crowd forms a random tree rooted at the leader: the claimant of rank k has
// k earlier ones to choose from, so an early one is parent to about
// ln(crowd/rank) others and the depth grows with the logarithm of the crowd.
// (A parent computed from the rank, as a tree of fixed degree would, gathers
// every late claimant of a large crowd on one daemon: their checks all read
// the same first few dozen claims that fit a reply, so they all think they
// have the same rank.)
func (r claimResult) sources(intn func(int) int) []claimRecord {
	out := make([]claimRecord, 0, len(r.earlier))
	p := intn(len(r.earlier))
	out = append(out, r.earlier[p])
	if p != 0 {
		out = append(out, r.earlier[0])
	}
	for i, c := range r.earlier {
		if i != 0 && i != p {
			out = append(out, c)
		}
	}
	return out
}

// claim stores this download's claim under the content's PartialKey and
// reads back the claims stored there (engine.Core.Claim). The claims ordered
// before ours, made within ClaimWindow, are the downloads to follow.
func (f *Flight) claim(ctx context.Context, self netip.AddrPort) claimResult {
	m := f.m
	var mine claimRecord
	build := func(now time.Time) []byte {
		// On the DHT's loop, as the store starts: the time is when the claim
		// goes out, so claims sort nearly as they land.
		mine = claimRecord{contact: self, at: now.UnixMicro()}
		v := wire.PeerValue{Contact: self, Claim: mine.at}
		return wire.AppendPeerValue(nil, &v)
	}
	_, vals, err := m.dht.Claim(ctx, wire.PartialKey(f.key), build, ClaimSettle)
	if err != nil && len(vals) == 0 {
		m.log.Debug("claim failed", "path", f.req.Path, "err", err)
		return claimResult{}
	}
	r := electFrom(vals, mine, m.clk.Now(), m.cfg.ClaimWindow, m.fetch.Banned)
	r.ok = true
	return r
}

// UnreachableReadDelay is how long a daemon that does not claim (peers
// cannot reach it) waits before it reads the claims: about when a claim of
// its own would have been checked, so that the claims of a crowd starting
// with it have landed. In the simulated crowd, reading at once missed them
// for 39 of 1 000 daemons; 500 ms later, for none (bench/RESULTS.md,
// crowd-sim).
const UnreachableReadDelay = 500 * time.Millisecond

// readClaims is the claim of a daemon peers cannot reach: it reads the
// claims under the content's PartialKey, without storing one, and follows
// any of them.
func (f *Flight) readClaims(ctx context.Context) claimResult {
	m := f.m
	if !clock.Sleep(ctx, m.clk, UnreachableReadDelay) {
		return claimResult{}
	}
	vals, err := m.dht.GetValues(ctx, wire.PartialKey(f.key))
	if err != nil && len(vals) == 0 {
		return claimResult{}
	}
	r := electFrom(vals, claimRecord{at: math.MaxInt64}, m.clk.Now(), m.cfg.ClaimWindow, m.fetch.Banned)
	r.ok = true
	return r
}

// ClaimSettle is how long a claim's check waits after its store, so that a
// claim sent a moment earlier on a slightly slower path lands first. A few
// milliseconds cover the daemons of one LAN or host; on the internet the
// simulation found no crowd in which a longer wait changed anything (claims
// are stamped when they are sent, and a lookup's jitter dwarfs the store's),
// while it cost every lone user its full length (bench/RESULTS.md, crowd-sim).
const ClaimSettle = 5 * time.Millisecond

// electFrom parses the claims in vals and returns those ordered before mine
// that were made within window before now, leaving out banned contacts.
func electFrom(vals [][]byte, mine claimRecord, now time.Time, window time.Duration, banned func(string) bool) claimResult {
	var r claimResult
	oldest := now.Add(-window).UnixMicro()
	seen := map[netip.AddrPort]bool{}
	for _, raw := range vals {
		var v wire.PeerValue
		if v.Parse(raw) != nil || v.Claim == 0 || !v.Contact.IsValid() || v.Contact.Port() == 0 || seen[v.Contact] {
			continue
		}
		seen[v.Contact] = true
		r.seen++
		c := claimRecord{contact: v.Contact, at: v.Claim}
		if c.contact == mine.contact || c.at < oldest || !c.before(mine) || banned != nil && banned(c.contact.String()) {
			continue
		}
		r.earlier = append(r.earlier, c)
	}
	slices.SortFunc(r.earlier, func(a, b claimRecord) int {
		if a.before(b) {
			return -1
		}
		if b.before(a) {
			return 1
		}
		return 0
	})
	return r
}

// Follow is the election as one daemon sees it, for tools that model crowds
// (the DHT simulator): given the claim values read back under a PartialKey
// and our own claim (self, made at µs since the Unix epoch; a daemon that
// does not claim passes an invalid self and at = math.MaxInt64), it returns
// the earlier claimants to fetch from, in the order a follower tries them
// (its parent, drawn with intn, first); none means lead.
func Follow(vals [][]byte, self netip.AddrPort, at int64, now time.Time, window time.Duration, intn func(int) int) []netip.AddrPort {
	r := electFrom(vals, claimRecord{contact: self, at: at}, now, window, nil)
	if len(r.earlier) == 0 {
		return nil
	}
	var out []netip.AddrPort
	for _, c := range r.sources(intn) {
		out = append(out, c.contact)
	}
	return out
}
