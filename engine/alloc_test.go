//go:build !race

package engine

import (
	"net/netip"
	"testing"
	"time"

	"github.com/apt-p2p/apt-p2p/wire"
)

type countOutput struct{ n, bytes int }

func (o *countOutput) Send(_ netip.AddrPort, pkt []byte) { o.n++; o.bytes += len(pkt) }

// The receive → decode → handle → encode → send path of ping, find_node and
// find_value does not allocate (a known requester, a populated table).
func TestHandleQueryAllocs(t *testing.T) {
	out := &countOutput{}
	cfg := testConfig()
	cfg.BootstrapNode = true
	c, err := New(cfg, out)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1000, 0)
	c.Start(now, nil)
	for i := 0; i < 40; i++ {
		id := c.randID()
		c.table.Insert(kbucketNode(id, netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 0, byte(i), 1}), 4000)), true, now)
	}
	from := netip.MustParseAddrPort("10.9.9.9:5000")
	var peer wire.ID
	copy(peer[:], "requester-node-id-00")
	c.table.Insert(kbucketNode(peer, from), true, now)
	var tid wire.ID
	key := c.randID()
	c.store.put(key, []byte("value"), from.Addr(), now)
	for _, tc := range []struct {
		name string
		pkt  []byte
	}{
		{"ping", wire.AppendPing(nil, tid, peer)},
		{"find_node", wire.AppendFindNode(nil, tid, peer, key)},
		{"find_value", wire.AppendFindValue(nil, tid, peer, key)},
		{"get_value", wire.AppendGetValue(nil, tid, peer, key, 0)},
	} {
		before := out.n
		allocs := testing.AllocsPerRun(200, func() { c.HandlePacket(now, from, tc.pkt) })
		if allocs != 0 {
			t.Errorf("%s: %.1f allocs per packet", tc.name, allocs)
		}
		if out.n == before {
			t.Errorf("%s: no reply sent", tc.name)
		}
	}
}

// The whole runner path on a real socket (read → decode → handle → encode
// → write) does not allocate either: AllocsPerRun counts every goroutine's
// allocations, the node's event loop included.
func TestRunnerRoundTripAllocs(t *testing.T) {
	cfg := testConfig()
	cfg.BootstrapNode = true
	n := startNode(t, cfg)
	mustJoin(t, n)
	for _, m := range []wire.Method{wire.MethodPing, wire.MethodFindNode, wire.MethodFindValue} {
		q := newQueryLoad(t, n.Addr(), m)
		q.run(100, 1) // the client is verified and enters the table
		allocs := testing.AllocsPerRun(200, func() {
			if q.run(1, 1) != 1 {
				t.Fatal("no reply")
			}
		})
		if allocs != 0 {
			t.Errorf("%s: %.0f allocs per round trip", m, allocs)
		}
	}
}
