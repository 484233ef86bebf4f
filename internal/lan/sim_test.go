package lan

import (
	"math/rand/v2"
	"net/netip"
	"testing"
	"time"
)

// bus is a simulated LAN on a virtual clock: every datagram a core sends
// reaches every started core on the link at once, the sender included
// (multicast loopback).
type bus struct {
	now   time.Time
	nodes []*busNode
	queue []frame
}

type busNode struct {
	b       *bus
	c       *Core
	addr    netip.Addr
	start   time.Time
	started bool
	sent    int
	learned map[netip.Addr]time.Time // peer address → when first introduced
}

type frame struct {
	from *busNode
	link Link
	pkt  []byte
}

func (n *busNode) Send(l Link, pkt []byte) error {
	n.sent++
	n.b.queue = append(n.b.queue, frame{n, l, append([]byte(nil), pkt...)})
	return nil
}

func (n *busNode) Introduce(p Peer) {
	if _, ok := n.learned[p.Contact.Addr()]; !ok {
		n.learned[p.Contact.Addr()] = n.b.now
	}
}

var simIface = func(addr netip.Addr) Iface {
	return Iface{Index: 1, Name: "eth0", Addrs: []netip.Prefix{netip.PrefixFrom(addr, 16)}}
}

// add schedules a daemon to start at the given time.
func (b *bus) add(start time.Time, seed uint64) *busNode {
	i := len(b.nodes)
	n := &busNode{b: b, addr: netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i + 1)}), start: start, learned: map[netip.Addr]time.Time{}}
	cfg := Config{PeerPort: 9977, DHTPort: 9977, Rand: rand.New(rand.NewPCG(seed, uint64(i))), Cookie: Cookie{byte(i), byte(i >> 8), 1}}
	n.c = NewCore(cfg, n)
	b.nodes = append(b.nodes, n)
	return n
}

func (b *bus) deliver() {
	for len(b.queue) > 0 {
		f := b.queue[0]
		b.queue = b.queue[1:]
		for _, n := range b.nodes {
			if n.started {
				n.c.HandlePacket(b.now, f.link, netip.AddrPortFrom(f.from.addr, Port), Group4, f.pkt)
			}
		}
	}
}

// run advances the bus to until, starting daemons and running schedules in
// time order.
func (b *bus) run(until time.Time) {
	for {
		var next time.Time
		var who *busNode
		for _, n := range b.nodes {
			t, ok := n.start, !n.started
			if n.started {
				t, ok = n.c.NextDeadline()
			}
			if ok && (who == nil || t.Before(next)) {
				next, who = t, n
			}
		}
		if who == nil || next.After(until) {
			b.now = until
			return
		}
		b.now = next
		if !who.started {
			who.started = true
			who.c.SetInterfaces(next, []Iface{simIface(who.addr)})
		} else {
			who.c.Tick(next)
		}
		b.deliver()
	}
}

// knowsAll reports whether n was introduced to every other started node.
func (b *bus) knowsAll(n *busNode) bool {
	for _, o := range b.nodes {
		if o != n && o.started {
			if _, ok := n.learned[o.addr]; !ok {
				return false
			}
		}
	}
	return true
}

// A LAN of 50 daemons started over 10 s: every daemon knows every other
// within a few seconds. Then a newcomer learns the whole LAN from the
// replies to its hello within StartSpread + MaxReplySpread, every daemon
// answers it once (its second hello costs nothing more), and every daemon
// learns it from its hello.
func TestNewcomerLearnsLAN(t *testing.T) {
	const n = 50
	b := &bus{now: t0}
	rng := rand.New(rand.NewPCG(42, 0))
	for range n {
		b.add(t0.Add(time.Duration(rng.Int64N(int64(10*time.Second)))), 42)
	}
	d := DefaultConfig()
	b.run(t0.Add(10*time.Second + d.StartSpread + d.MaxReplySpread))
	for _, x := range b.nodes {
		if !b.knowsAll(x) {
			t.Fatalf("%v knows %d of %d peers after the start", x.addr, len(x.learned), n-1)
		}
	}
	b.run(t0.Add(10 * time.Minute))
	var repliesBefore uint64
	sentBefore := map[*busNode]int{}
	for _, x := range b.nodes {
		repliesBefore += x.c.Stats().Sent[KindReply]
		sentBefore[x] = x.sent
	}
	joinAt := t0.Add(10*time.Minute + 7*time.Second)
	nc := b.add(joinAt, 42)
	b.run(joinAt.Add(d.StartSpread + d.MaxReplySpread))
	if !b.knowsAll(nc) {
		t.Fatalf("the newcomer knows %d of %d peers %v after it started", len(nc.learned), n, d.StartSpread+d.MaxReplySpread)
	}
	for _, x := range b.nodes[:n] {
		if x.sent == sentBefore[x] {
			t.Fatalf("%v sent nothing after the newcomer's hello", x.addr)
		}
	}
	b.run(joinAt.Add(d.HelloRepeat + d.MaxReplySpread + time.Second))
	var replies uint64
	for _, x := range b.nodes[:n] {
		replies += x.c.Stats().Sent[KindReply]
		if _, ok := x.learned[nc.addr]; !ok {
			t.Fatalf("%v did not learn the newcomer", x.addr)
		}
	}
	// One reply per daemon at most (a periodic announcement falling due
	// meanwhile answers instead): the second hello was not answered again.
	if got := replies - repliesBefore; got > n || got < n*3/4 {
		t.Fatalf("%d replies to the newcomer's two hellos, want at most one per daemon (%d)", got, n)
	}
}

// BenchmarkLANHour simulates an hour of a LAN of N daemons that start within
// 10 s, one more joining after 30 minutes, on a virtual clock. It reports
// what bench/RESULTS.md ("lan") records: messages each daemon sends per
// hour, and how long until every daemon knew every other (start of the
// last daemon to the last introduction) and until the newcomer knew all.
func BenchmarkLANHour(b *testing.B) {
	for _, n := range []int{3, 30, 100} {
		b.Run("daemons="+itoa(n), func(b *testing.B) {
			var perHour, formed, newcomer float64
			for i := 0; i < b.N; i++ {
				bb := &bus{now: t0}
				rng := rand.New(rand.NewPCG(uint64(i), 7))
				var lastStart time.Time
				for range n {
					s := t0.Add(time.Duration(rng.Int64N(int64(10 * time.Second))))
					bb.add(s, uint64(i))
					if s.After(lastStart) {
						lastStart = s
					}
				}
				joinAt := t0.Add(30 * time.Minute)
				nc := bb.add(joinAt, uint64(i))
				bb.run(t0.Add(time.Hour))
				var sent int
				var lastLearn, ncLearn time.Time
				for _, x := range bb.nodes[:n] {
					sent += x.sent
					for a, at := range x.learned {
						if a != nc.addr && at.After(lastLearn) {
							lastLearn = at
						}
					}
				}
				for _, at := range nc.learned {
					if at.After(ncLearn) {
						ncLearn = at
					}
				}
				perHour += float64(sent) / float64(n)
				formed += lastLearn.Sub(lastStart).Seconds()
				newcomer += ncLearn.Sub(joinAt).Seconds()
			}
			b.ReportMetric(perHour/float64(b.N), "msgs/daemon/h")
			b.ReportMetric(formed/float64(b.N), "s-to-full-mesh")
			b.ReportMetric(newcomer/float64(b.N), "s-newcomer")
		})
	}
}

func itoa(n int) string {
	if n == 0 {
		return "0"
	}
	var b []byte
	for ; n > 0; n /= 10 {
		b = append([]byte{byte('0' + n%10)}, b...)
	}
	return string(b)
}
