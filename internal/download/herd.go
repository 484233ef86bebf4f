package download

import (
	"context"
	"net/netip"
	"slices"
	"time"

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

// fanOut is how many followers stream from one earlier download: the
// claimants, in claim order, form a tree of this degree rooted at the leader
// (the claim of rank r follows the one of rank (r-1)/fanOut), so no daemon
// uploads a crowd's file to more than about fanOut others while the depth
// grows only with the logarithm of the crowd.
const fanOut = 4

// claimResult is what a claim found.
type claimResult struct {
	earlier []claimRecord // recent claims ordered before ours, leader first
	seen    int           // claims seen, ours included
	ok      bool          // the claim was stored and checked
}

// sources are the earlier claimants in the order a follower tries them: its
// parent in the crowd's tree first, then its parent's ancestors up to the
// leader, then the others.
func (r claimResult) sources() []claimRecord {
	rank := len(r.earlier) // ours, counting from the leader's 0
	var out []claimRecord
	used := make([]bool, len(r.earlier))
	for p := (rank - 1) / fanOut; ; p = (p - 1) / fanOut {
		out = append(out, r.earlier[p])
		used[p] = true
		if p == 0 {
			break
		}
	}
	for i, c := range r.earlier {
		if !used[i] {
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
	_, vals, err := m.dht.Claim(ctx, wire.PartialKey(f.key), build, m.claimSettle())
	if err != nil && len(vals) == 0 {
		m.log.Debug("claim failed", "path", f.req.Path, "err", err)
		return claimResult{}
	}
	r := electFrom(vals, mine, m.clk.Now(), m.cfg.ClaimWindow, m.fetch.Banned)
	r.ok = true
	return r
}

// claimSettle is how long a claim's check waits after its store: long enough
// for a claim sent a little earlier on a slower path to land (a quarter of
// the recent lookup time, 5 to 150 ms).
func (m *Manager) claimSettle() time.Duration {
	ew := time.Duration(m.lookupEWMA.Load())
	return min(max(ew/4, 5*time.Millisecond), 150*time.Millisecond)
}

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
// and our own claim (self, made at µs since the Unix epoch), it returns the
// earlier claimants to fetch from, in the order a follower tries them (its
// parent in the crowd's tree first); none means lead.
func Follow(vals [][]byte, self netip.AddrPort, at int64, now time.Time, window time.Duration) []netip.AddrPort {
	r := electFrom(vals, claimRecord{contact: self, at: at}, now, window, nil)
	if len(r.earlier) == 0 {
		return nil
	}
	var out []netip.AddrPort
	for _, c := range r.sources() {
		out = append(out, c.contact)
	}
	return out
}
