package engine

import (
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/apt-p2p/apt-p2p/wire"
)

// transports lists the transports compared by the benchmarks and tests.
var transports = []struct {
	name   string
	listen func(addr string) (Transport, error)
}{
	{"udpconn", func(a string) (Transport, error) { return ListenUDP(a) }},
	{"gnet", func(a string) (Transport, error) { return ListenGnet(a) }},
}

// queryLoad sends queries to node from one socket with window requests in
// flight and counts replies; it answers the node's own pings (verification
// of a new contact) so the client enters the table like a real peer.
type queryLoad struct {
	conn   *net.UDPConn
	to     netip.AddrPort
	id     wire.ID
	buf    []byte
	out    []byte
	msg    wire.Msg
	tid    wire.ID
	method wire.Method
}

func newQueryLoad(tb testing.TB, to netip.AddrPort, m wire.Method) *queryLoad {
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { c.Close() })
	q := &queryLoad{conn: c, to: to, buf: make([]byte, 2048), out: make([]byte, 0, 512), method: m}
	copy(q.id[:], "benchmark-client-id0")
	return q
}

func (q *queryLoad) send() {
	q.tid[0]++
	if q.tid[0] == 0 {
		q.tid[1]++
	}
	switch q.method {
	case wire.MethodFindNode:
		q.out = wire.AppendFindNode(q.out[:0], q.tid, q.id, q.tid)
	case wire.MethodFindValue:
		q.out = wire.AppendFindValue(q.out[:0], q.tid, q.id, q.tid)
	default:
		q.out = wire.AppendPing(q.out[:0], q.tid, q.id)
	}
	q.conn.WriteToUDPAddrPort(q.out, q.to)
}

// run completes n queries with window in flight; it returns how many replies came.
func (q *queryLoad) run(n, window int) int {
	sent, got := 0, 0
	for sent < window && sent < n {
		q.send()
		sent++
	}
	for got < n {
		q.conn.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
		nb, from, err := q.conn.ReadFromUDPAddrPort(q.buf)
		if err != nil {
			// Lost in a full socket buffer: refill the window.
			for i := 0; i < window && sent < n+window; i++ {
				q.send()
				sent++
			}
			if sent >= n+window {
				return got
			}
			continue
		}
		if q.msg.Parse(q.buf[:nb]) != nil {
			continue
		}
		if q.msg.Y == 'q' {
			q.out = wire.AppendIDResp(q.out[:0], q.msg.TID, q.id)
			q.conn.WriteToUDPAddrPort(q.out, from)
			continue
		}
		got++
		if sent < n {
			q.send()
			sent++
		}
	}
	return got
}

// BenchmarkTransport measures queries answered per second by one node on
// loopback and the allocations per query of the whole process (the client
// side allocates nothing), for each transport and method.
func BenchmarkTransport(b *testing.B) {
	for _, tr := range transports {
		for _, m := range []wire.Method{wire.MethodPing, wire.MethodFindNode} {
			b.Run(tr.name+"/"+m.String(), func(b *testing.B) {
				t, err := tr.listen("127.0.0.1:0")
				if err != nil {
					b.Fatal(err)
				}
				cfg := testConfig()
				cfg.BootstrapNode = true
				n, err := Start(Options{Config: cfg, Transport: t})
				if err != nil {
					b.Fatal(err)
				}
				defer n.Close()
				// A table to answer find_node from.
				n.Do(func(c *Core, now time.Time) {
					for i := 0; i < 64; i++ {
						c.table.Insert(kbucketNode(c.randID(), netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 1, byte(i), 1}), 4000)), true, now)
					}
				})
				q := newQueryLoad(b, t.LocalAddr(), m)
				q.run(200, 8) // warm up: the client gets verified and enters the table
				b.ReportAllocs()
				b.ResetTimer()
				start := time.Now()
				got := q.run(b.N, 8)
				el := time.Since(start)
				b.StopTimer()
				b.ReportMetric(float64(got)/el.Seconds(), "queries/s")
				if got < b.N*9/10 {
					b.Fatalf("only %d of %d queries answered", got, b.N)
				}
			})
		}
	}
}

// BenchmarkCoreHandle is the core alone: decode, handle, encode, with a
// counting output.
func BenchmarkCoreHandle(b *testing.B) {
	out := &benchOutput{}
	cfg := testConfig()
	cfg.BootstrapNode = true
	c, err := New(cfg, out)
	if err != nil {
		b.Fatal(err)
	}
	now := time.Unix(1000, 0)
	c.Start(now, nil)
	for i := 0; i < 64; i++ {
		c.table.Insert(kbucketNode(c.randID(), netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 0, byte(i), 1}), 4000)), true, now)
	}
	from := netip.MustParseAddrPort("10.9.9.9:5000")
	var peer, tid wire.ID
	copy(peer[:], "requester-node-id-00")
	c.table.Insert(kbucketNode(peer, from), true, now)
	for _, tc := range []struct {
		name string
		pkt  []byte
	}{
		{"ping", wire.AppendPing(nil, tid, peer)},
		{"find_node", wire.AppendFindNode(nil, tid, peer, c.randID())},
		{"find_value", wire.AppendFindValue(nil, tid, peer, c.randID())},
	} {
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				c.HandlePacket(now, from, tc.pkt)
			}
		})
	}
}

type benchOutput struct{ n int }

func (o *benchOutput) Send(_ netip.AddrPort, pkt []byte) { o.n += len(pkt) }

// Both transports carry a real exchange: two nodes join and store/retrieve.
func TestTransportsStoreRetrieve(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			ta, err := tr.listen("127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			cfg := testConfig()
			cfg.BootstrapNode = true
			a, err := Start(Options{Config: cfg, Transport: ta})
			if err != nil {
				t.Fatal(err)
			}
			defer a.Close()
			mustJoin(t, a)
			tb, err := tr.listen("127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			b, err := Start(Options{Config: testConfig(), Transport: tb, Bootstrap: []string{ta.LocalAddr().String()}})
			if err != nil {
				t.Fatal(err)
			}
			defer b.Close()
			mustJoin(t, b)
			key := sha1Key(tr.name)
			if _, err := b.Put(ctxT(t, 10*time.Second), key, []byte("over "+tr.name)); err != nil {
				t.Fatal(err)
			}
			vals, err := a.GetValues(ctxT(t, 10*time.Second), key)
			if err != nil || len(vals) != 1 || string(vals[0]) != "over "+tr.name {
				t.Fatalf("got %q %v", vals, err)
			}
		})
	}
}
