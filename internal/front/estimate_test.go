package front

import (
	"math/rand/v2"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/apt-p2p/apt-p2p/kbucket"
	"github.com/apt-p2p/apt-p2p/wire"
)

// table builds the routing table node 0 of a network of n random IDs has
// once it has heard of every other node (full buckets refuse, as they do).
func table(n int, seed uint64) (wire.ID, []kbucket.Node, []kbucket.BucketInfo) {
	r := rand.New(rand.NewPCG(seed, 42))
	id := func() (x wire.ID) {
		for i := range x {
			x[i] = byte(r.Uint32())
		}
		return x
	}
	self := id()
	t := kbucket.New(self, kbucket.Config{K: 8, AllowLocal: true})
	now := time.Unix(1, 0)
	for i := 1; i < n; i++ {
		addr := netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 240, byte(i >> 8), byte(i)}), 9977)
		t.Insert(kbucket.Node{ID: id(), Addr: addr}, true, now)
	}
	return self, t.Closest(nil, self, 8), t.Buckets(nil)
}

// TestEstimateUsers: a network that fits the routing table is counted
// exactly (the original's K·2^(buckets−1) said 8 for 2 and for 5 daemons);
// a larger one is estimated from the density of the closest nodes, within a
// factor that a sample of 8 distances allows.
func TestEstimateUsers(t *testing.T) {
	for _, n := range []int{1, 2, 5, 8, 9, 12} {
		self, closest, buckets := table(n, uint64(n))
		got, how := estimateUsers(self, closest, buckets, 8)
		if got != float64(n) || how != usersCounted {
			t.Errorf("%d nodes: estimated %v (%s), want exactly %d", n, got, how, n)
		}
	}
	for _, n := range []int{100, 1000, 10000} {
		var ests []float64
		for seed := range uint64(15) {
			self, closest, buckets := table(n, seed)
			got, how := estimateUsers(self, closest, buckets, 8)
			if how != usersDensity {
				t.Fatalf("%d nodes: %s, want the density estimate", n, how)
			}
			if got < float64(n)/4 || got > float64(n)*4 {
				t.Errorf("%d nodes, seed %d: estimated %.0f", n, seed, got)
			}
			ests = append(ests, got)
		}
		slices.Sort(ests)
		med := ests[len(ests)/2]
		t.Logf("%d nodes: median estimate %.0f over %d tables (min %.0f, max %.0f)", n, med, len(ests), ests[0], ests[len(ests)-1])
		if med < float64(n)*0.7 || med > float64(n)*1.4 {
			t.Errorf("%d nodes: median estimate %.0f", n, med)
		}
	}
}
