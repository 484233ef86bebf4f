package download

import (
	"net/netip"
	"sync/atomic"
	"testing"
	"testing/synctest"

	"github.com/apt-p2p/apt-p2p/wire"
)

// TestUnreachableAnnouncesNothing: a daemon peers cannot reach stores no
// value for a file it downloaded (nor a claim while downloading), on
// completion or in a refresh round; once reachable, the refresh round
// announces it.
func TestUnreachableAnnouncesNothing(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		data, d := content(t, 1000, 21)
		r := newRig(t, nil, "10.240.0.5:9977", data, Config{Herd: true})
		var reachable atomic.Bool
		r.m.cfg.Reachable = reachable.Load
		f := r.run(t, request(d))
		synctest.Wait()
		key, _ := d.Key()
		if f.Role() != RoleLeader || len(r.dht.values(key)) != 0 || len(r.dht.values(wire.PartialKey(key))) != 0 {
			t.Fatalf("unreachable: role %s, values %q, claims %q", f.Role(), r.dht.values(key), r.dht.values(wire.PartialKey(key)))
		}
		r.m.refreshRound()
		if len(r.dht.values(key)) != 0 {
			t.Fatalf("a refresh round announced while unreachable: %q", r.dht.values(key))
		}
		if n := r.m.Counters.AnnounceFailed.Load(); n != 0 {
			t.Errorf("%d announcements counted as failed: not announcing is no failure", n)
		}
		reachable.Store(true)
		r.m.refreshRound()
		var v wire.PeerValue
		if vals := r.dht.values(key); len(vals) != 1 || v.Parse(vals[0]) != nil || v.Contact != r.self {
			t.Fatalf("reachable again: values %q, want our contact %v", vals, r.self)
		}
	})
}

// The fetcher of an unreachable daemon still gets the peers the lookup finds.
func TestUnreachableFetchesFromPeers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		data, d := content(t, 1000, 22)
		r := newRig(t, nil, "10.240.0.5:9977", data, Config{Herd: true})
		r.m.cfg.Reachable = func() bool { return false }
		key, _ := d.Key()
		holder := "10.240.0.9:9977"
		r.dht.put(key, wire.AppendPeerValue(nil, &wire.PeerValue{Contact: netip.MustParseAddrPort(holder)}))
		f := r.run(t, request(d))
		_, peers := r.fetch.lastJob()
		if f.Role() != RolePeers || len(peers) != 1 || peers[0].Addr != holder {
			t.Fatalf("role %s, sources %+v; want the holder %s", f.Role(), peers, holder)
		}
	})
}
