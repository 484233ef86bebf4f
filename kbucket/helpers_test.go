package kbucket

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/apt-p2p/apt-p2p/wire"
)

// epoch is the tests' time origin; times are given as seconds after it.
var epoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func at(sec int) time.Time { return epoch.Add(time.Duration(sec) * time.Second) }

func newRand(seed uint64) *rand.Rand { return rand.New(rand.NewPCG(seed, 0x6b627563)) }

func randID(r *rand.Rand) wire.ID {
	var id wire.ID
	for i := range id {
		id[i] = byte(r.Uint32())
	}
	return id
}

// publicAddr returns a distinct public address for node number i.
func publicAddr(i int) netip.AddrPort {
	return netip.AddrPortFrom(netip.AddrFrom4([4]byte{11, byte(i >> 16), byte(i >> 8), byte(i)}), 6881)
}

func node(id wire.ID, i int) Node { return Node{ID: id, Addr: publicAddr(i)} }

// checkInvariants verifies everything the table promises about its shape.
func checkInvariants(tb testing.TB, t *Table) {
	tb.Helper()
	if err := invariantError(t); err != nil {
		tb.Fatalf("invariant broken: %v\n%s", err, dumpTable(t))
	}
}

func invariantError(t *Table) error {
	nb := len(t.buckets)
	if nb < 1 || nb > MaxBuckets {
		return fmt.Errorf("%d buckets", nb)
	}
	total := 0
	for bi := range t.buckets {
		b := &t.buckets[bi]
		if len(b.nodes) > t.k {
			return fmt.Errorf("bucket %d holds %d > K=%d nodes", bi, len(b.nodes), t.k)
		}
		total += len(b.nodes)
		for i, n := range b.nodes {
			switch {
			case n.ID == t.self:
				return fmt.Errorf("own ID in the table")
			case n.ID.IsZero():
				return fmt.Errorf("zero ID in the table")
			case n.LastSeen.IsZero():
				return fmt.Errorf("uncontacted node %s in the table", n.ID)
			case t.bucketIndex(&n.ID) != bi:
				return fmt.Errorf("node %s in bucket %d, belongs in %d", n.ID, bi, t.bucketIndex(&n.ID))
			case !AddrPortAllowed(n.Addr, t.local):
				return fmt.Errorf("node %s has refused address %v", n.ID, n.Addr)
			case n.Fails >= t.maxFail:
				return fmt.Errorf("node %s has %d fails", n.ID, n.Fails)
			case i > 0 && n.LastSeen.Before(b.nodes[i-1].LastSeen):
				return fmt.Errorf("bucket %d not ordered by last seen at %d", bi, i)
			}
			for _, m := range b.nodes[:i] {
				if m.ID == n.ID {
					return fmt.Errorf("node %s twice", n.ID)
				}
			}
		}
	}
	if total != t.n {
		return fmt.Errorf("Len %d but %d nodes in buckets", t.n, total)
	}
	// No split without need: the two deepest buckets hold more than K.
	if nb > 1 && len(t.buckets[nb-1].nodes)+len(t.buckets[nb-2].nodes) <= t.k {
		return fmt.Errorf("two deepest buckets hold %d ≤ K nodes: should have merged",
			len(t.buckets[nb-1].nodes)+len(t.buckets[nb-2].nodes))
	}
	// The ranges tile [0, 2^160) in order and exactly the self bucket holds us.
	var next u192
	selfs := 0
	for _, bi := range t.Buckets(nil) {
		if fromID(bi.Min) != next {
			return fmt.Errorf("bucket at %s does not start where the previous ended (%s)", bi.Min, next.toID())
		}
		if maskPrefix(bi.Min, bi.PrefixLen) != bi.Min {
			return fmt.Errorf("bucket min %s not aligned to /%d", bi.Min, bi.PrefixLen)
		}
		next = next.add(spanOfPrefix(bi.PrefixLen))
		in := commonPrefixLen(bi.Min, t.self) >= bi.PrefixLen
		if in != bi.HoldsSelf {
			return fmt.Errorf("bucket %s/%d HoldsSelf=%v, contains self=%v", bi.Min, bi.PrefixLen, bi.HoldsSelf, in)
		}
		if in {
			selfs++
		}
	}
	if next != spanOfPrefix(0) || selfs != 1 {
		return fmt.Errorf("ranges end at %v (want 2^160), %d buckets hold self", next, selfs)
	}
	return nil
}

func dumpTable(t *Table) string {
	s := ""
	for _, bi := range t.Buckets(nil) {
		s += fmt.Sprintf("%s/%d n=%d self=%v\n", bi.Min, bi.PrefixLen, bi.Len, bi.HoldsSelf)
	}
	return s
}

// bruteClosest is the reference for Closest: every node sorted by distance.
func bruteClosest(t *Table, target wire.ID, k int, keep func(Node) bool) []Node {
	var all []Node
	for _, n := range t.Nodes(nil) {
		if keep == nil || keep(n) {
			all = append(all, n)
		}
	}
	slices.SortFunc(all, func(a, b Node) int { return a.ID.Xor(target).Cmp(b.ID.Xor(target)) })
	return all[:min(k, len(all))]
}

func ids(ns []Node) []wire.ID {
	out := make([]wire.ID, len(ns))
	for i, n := range ns {
		out[i] = n.ID
	}
	return out
}

// fillRandom inserts count random contacted nodes, one second apart.
func fillRandom(t *Table, r *rand.Rand, count int) {
	for i := range count {
		t.Insert(node(randID(r), i), true, at(i))
	}
}
