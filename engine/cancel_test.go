package engine

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/apt-p2p/apt-p2p/kbucket"
	"github.com/apt-p2p/apt-p2p/wire"
)

// cancelNet is a joined core with a table of fake peers on a fake clock.
// Peers answer the methods in answer and stay silent otherwise.
type cancelNet struct {
	t      *testing.T
	c      *Core
	out    *recordOutput
	now    time.Time
	peers  map[netip.AddrPort]wire.ID
	answer map[wire.Method]bool
	values map[wire.ID][]byte      // get_value answers by key
	silent map[netip.AddrPort]bool // peers that never answer
	listed []wire.Node             // nodes every find_node/find_value reply lists
	sentTo map[netip.AddrPort]int  // datagrams the core sent, by destination
}

func newCancelNet(t *testing.T) *cancelNet {
	c, out := newTestCore(t, func(c *Config) { c.BootstrapNode = true })
	n := &cancelNet{t: t, c: c, out: out, now: time.Unix(1000, 0),
		peers: map[netip.AddrPort]wire.ID{}, answer: map[wire.Method]bool{}, values: map[wire.ID][]byte{}}
	c.Start(n.now, nil)
	n.advance(2 * time.Second)
	if !c.Joined() {
		t.Fatal("not joined")
	}
	for i := range 12 {
		var id wire.ID
		copy(id[:], fmt.Sprintf("peer-%02d-xxxxxxxxxxxxx", i))
		a := netip.AddrPortFrom(netip.AddrFrom4([4]byte{20, 0, 0, byte(i + 1)}), 6881)
		c.Table().Insert(kbucket.Node{ID: id, Addr: a}, true, n.now)
		n.peers[a] = id
	}
	out.take()
	return n
}

// advance moves the clock in small steps, firing timers and answering.
// It returns the datagrams the core sent meanwhile.
func (n *cancelNet) advance(d time.Duration) int {
	sent := 0
	end := n.now.Add(d)
	for {
		sent += n.deliver()
		if !n.now.Before(end) {
			return sent
		}
		n.now = n.now.Add(10 * time.Millisecond)
		n.c.Tick(n.now)
	}
}

// deliver answers what the core sent, as configured, and counts it.
func (n *cancelNet) deliver() int {
	sent := 0
	var m wire.Msg
	for {
		pkts := n.out.take()
		if len(pkts) == 0 {
			return sent
		}
		sent += len(pkts)
		for _, p := range pkts {
			if n.sentTo != nil {
				n.sentTo[p.to]++
			}
			id, ok := n.peers[p.to]
			if !ok || n.silent[p.to] || m.Parse(p.pkt) != nil || m.Y != 'q' || !n.answer[m.Method] {
				continue
			}
			var reply []byte
			switch m.Method {
			case wire.MethodPing, wire.MethodStoreValue:
				reply = wire.AppendIDResp(nil, m.TID, id)
			case wire.MethodFindNode:
				reply = wire.AppendFindNodeResp(nil, m.TID, id, n.listed, id)
			case wire.MethodFindValue:
				num := 0
				if n.values[m.Key] != nil {
					num = 1
				}
				reply = wire.AppendFindValueResp(nil, m.TID, id, n.listed, num)
			case wire.MethodGetValue:
				var vals [][]byte
				if v := n.values[m.Key]; v != nil {
					vals = append(vals, v)
				}
				reply, _ = wire.AppendGetValueResp(nil, m.TID, id, vals, wire.MaxPacketIPv4)
			}
			n.c.HandlePacket(n.now.Add(time.Millisecond), p.to, reply)
		}
	}
}

// lookupTxns counts the outstanding requests of lookups (pings of the
// table's maintenance are not counted).
func (n *cancelNet) lookupTxns() int {
	k := 0
	for i := range n.c.txns.slots {
		if t := &n.c.txns.slots[i]; t.inUse && t.purpose == purposeLookup {
			k++
		}
	}
	return k
}

type doneLog struct {
	results []Result
}

func (d *doneLog) done(r Result) { d.results = append(d.results, r) }

func (d *doneLog) wantOnce(t *testing.T, what string, err error) {
	t.Helper()
	if len(d.results) != 1 || !errors.Is(d.results[0].Err, err) {
		t.Fatalf("%s: completions %+v, want one with %v", what, d.results, err)
	}
}

// A cancelled Get stops its lookup in the core: nothing more is sent for
// it (no retransmission, no further candidate) and its transactions free
// their slots. Before, only the caller's wait ended.
func TestCancelGetStopsLookup(t *testing.T) {
	for _, pipeline := range []bool{true, false} {
		t.Run(fmt.Sprintf("pipeline=%v", pipeline), func(t *testing.T) {
			n := newCancelNet(t)
			n.c.cfg.PipelineGets = pipeline
			var d doneLog
			op := n.c.Get(n.now, sha1Key("wanted"), func([]byte) { t.Error("value delivered") }, d.done)
			before := n.advance(100 * time.Millisecond)
			if before == 0 || n.lookupTxns() == 0 {
				t.Fatalf("the get sent %d datagrams, %d in flight", before, n.lookupTxns())
			}
			n.c.Cancel(n.now, op)
			d.wantOnce(t, "cancelled get", ErrCanceled)
			if k := n.lookupTxns(); k != 0 {
				t.Fatalf("%d lookup requests still hold slots after cancel", k)
			}
			if after := n.advance(30 * time.Second); after != 0 {
				t.Fatalf("%d datagrams sent after cancel", after)
			}
			n.c.Cancel(n.now, op) // a second cancel does nothing
			d.wantOnce(t, "cancelled twice", ErrCanceled)
			if s := n.c.Stats(n.now); s.Cancelled != 1 {
				t.Fatalf("cancelled = %d", s.Cancelled)
			}
		})
	}
}

// Concurrent gets of one key share one lookup: cancelling one waiter leaves
// the lookup running for the other, which gets the value and completes.
func TestCancelOneOfMergedGets(t *testing.T) {
	n := newCancelNet(t)
	key := sha1Key("shared")
	var d1, d2 doneLog
	var got1, got2 int
	op1 := n.c.Get(n.now, key, func([]byte) { got1++ }, d1.done)
	n.c.Get(n.now, key, func([]byte) { got2++ }, d2.done)
	n.advance(100 * time.Millisecond)
	n.c.Cancel(n.now, op1)
	d1.wantOnce(t, "cancelled waiter", ErrCanceled)
	if len(d2.results) != 0 || n.lookupTxns() == 0 {
		t.Fatalf("the other waiter's lookup stopped: %+v, %d in flight", d2.results, n.lookupTxns())
	}
	// The peers come to life and hold the value: the lookup goes on.
	n.values[key] = []byte("the value")
	n.answer[wire.MethodFindValue] = true
	n.answer[wire.MethodGetValue] = true
	if after := n.advance(5 * time.Second); after == 0 {
		t.Fatal("nothing sent for the remaining waiter")
	}
	d2.wantOnce(t, "remaining waiter", nil)
	if got1 != 0 || got2 != 1 || d2.results[0].Values != 1 {
		t.Fatalf("values: cancelled waiter %d, other %d (%+v)", got1, got2, d2.results[0])
	}
	d1.wantOnce(t, "cancelled waiter after the end", ErrCanceled)
}

// Put, FindNode and Claim stop in the core when cancelled, in whichever
// phase they are: Put and Claim during their find_node and their
// store_value; Claim during its read-back get_value.
func TestCancelPutFindNodeClaim(t *testing.T) {
	type phase struct {
		name   string
		answer []wire.Method // what the peers answer: the next phase hangs
	}
	ops := []struct {
		name   string
		phases []phase
		start  func(c *Core, now time.Time, done func(Result)) Op
	}{
		{"FindNode", []phase{{"find_node", nil}},
			func(c *Core, now time.Time, done func(Result)) Op { return c.FindNode(now, sha1Key("t"), done) }},
		{"Put", []phase{{"find_node", nil}, {"store_value", []wire.Method{wire.MethodFindNode}}},
			func(c *Core, now time.Time, done func(Result)) Op {
				return c.Put(now, sha1Key("t"), []byte("v"), done)
			}},
		{"Claim", []phase{{"find_node", nil}, {"store_value", []wire.Method{wire.MethodFindNode}},
			{"get_value", []wire.Method{wire.MethodFindNode, wire.MethodStoreValue}}},
			func(c *Core, now time.Time, done func(Result)) Op {
				return c.Claim(now, sha1Key("t"), fixed("v"), 5*time.Millisecond, func(r Result, vals [][]byte) {
					if vals != nil {
						t.Errorf("claim values %q", vals)
					}
					done(r)
				})
			}},
	}
	for _, o := range ops {
		for _, ph := range o.phases {
			t.Run(o.name+"/"+ph.name, func(t *testing.T) {
				n := newCancelNet(t)
				for _, m := range ph.answer {
					n.answer[m] = true
				}
				var d doneLog
				op := o.start(n.c, n.now, d.done)
				want := map[string]wire.Method{"find_node": wire.MethodFindNode, "store_value": wire.MethodStoreValue, "get_value": wire.MethodGetValue}[ph.name]
				inPhase := func() bool {
					for i := range n.c.txns.slots {
						if tx := &n.c.txns.slots[i]; tx.inUse && tx.purpose == purposeLookup && tx.method == want {
							return true
						}
					}
					return false
				}
				n.deliver()
				for i := 0; i < 100 && !inPhase(); i++ {
					n.advance(time.Millisecond)
				}
				if len(d.results) != 0 || !inPhase() {
					t.Fatalf("not in the %s phase: %+v", ph.name, d.results)
				}
				n.c.Cancel(n.now, op)
				d.wantOnce(t, "cancelled", ErrCanceled)
				if k := n.lookupTxns(); k != 0 {
					t.Fatalf("%d lookup requests still hold slots", k)
				}
				if after := n.advance(30 * time.Second); after != 0 {
					t.Fatalf("%d datagrams sent after cancel", after)
				}
				d.wantOnce(t, "after cancel", ErrCanceled)
			})
		}
	}
}

// An operation that completed is forgotten: cancelling it later does
// nothing and the core keeps no record of it.
func TestCancelAfterCompletion(t *testing.T) {
	n := newCancelNet(t)
	n.answer[wire.MethodFindNode] = true
	var d doneLog
	op := n.c.FindNode(n.now, sha1Key("t"), d.done)
	n.advance(2 * time.Second)
	d.wantOnce(t, "find_node", nil)
	n.c.Cancel(n.now, op)
	d.wantOnce(t, "cancel after completion", nil)
	if len(n.c.ops) != 0 {
		t.Fatalf("%d operations still recorded", len(n.c.ops))
	}
}

// Node: a caller's done context reaches the core (the lookup is cancelled
// there and its requests released), not only the caller's wait.
func TestNodeContextCancelReachesCore(t *testing.T) {
	cfg := testConfig()
	cfg.BootstrapNode = true
	nd := startNode(t, cfg)
	mustJoin(t, nd)
	dead := freeAddr(t)
	nd.Do(func(c *Core, now time.Time) {
		c.Table().Insert(kbucket.Node{ID: sha1Key("dead"), Addr: dead}, true, now)
	})
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		defer cancel()
		for i := 0; i < 500 && nd.Stats().Transactions == 0; i++ {
			time.Sleep(time.Millisecond)
		}
	}()
	if _, err := nd.Get(ctx, sha1Key("nobody has it"), nil); !errors.Is(err, context.Canceled) {
		t.Fatalf("get: %v", err)
	}
	eventually(t, 5*time.Second, "the core to cancel the get", func() bool {
		s := nd.Stats()
		return s.Cancelled == 1 && s.Transactions == 0
	})
}
