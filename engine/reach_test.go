package engine

import (
	"bytes"
	"net/netip"
	"testing"
	"time"

	"github.com/apt-p2p/apt-p2p/wire"
)

// rnet is a tiny simulated internet for reachability tests, on a virtual
// clock: nodes with public addresses, and nodes behind a port-restricted NAT
// (as Linux masquerading is: a datagram passes in only from an address and
// port the node sent to within natTimeout). TCP probes reach a node only if
// it has an open peer port.
type rnet struct {
	t     testing.TB
	now   time.Time
	nodes []*rnode
	queue []rpkt
	cost  reachCost
}

// reachCost counts what reachability checking sends, beside all DHT traffic.
type reachCost struct {
	dhtPkts, dhtBytes     int // every datagram
	reachPkts, reachBytes int // reach queries, their replies and the probe datagrams
	tcpProbes             int // TCP probes (one connection each)
}

const natTimeout = 2 * time.Minute

type rnode struct {
	name    string
	c       *Core
	pub     netip.AddrPort // the address others see
	natted  bool
	allowed map[netip.AddrPort]time.Time // NAT: remote endpoints sent to
	tcpOpen bool                         // the peer port accepts connections from anywhere
	// roSent counts queries it sent with ro = 1.
	roSent, queries int
}

type rpkt struct {
	from, to netip.AddrPort
	pkt      []byte
	tcp      *wire.ID // a TCP probe with this nonce, not a datagram
}

// probeOut is the Output of a node that serves probes.
type probeOut struct {
	net *rnet
	n   *rnode
}

func (o *probeOut) Send(to netip.AddrPort, pkt []byte) {
	if o.n.natted {
		o.n.allowed[to] = o.net.now
	}
	var m wire.Msg
	c := &o.net.cost
	c.dhtPkts++
	c.dhtBytes += len(pkt)
	if m.Parse(pkt) == nil && m.Y == 'q' {
		o.n.queries++
		if m.ReadOnly {
			o.n.roSent++
		}
		if string(m.MethodName) == wire.ReachMethod {
			c.reachPkts++
			c.reachBytes += len(pkt)
		}
	} else if m.Y == 'r' && bytes.Contains(pkt, []byte("2:ip6:")) {
		c.reachPkts++
		c.reachBytes += len(pkt)
	}
	o.net.queue = append(o.net.queue, rpkt{from: o.n.pub, to: to, pkt: append([]byte(nil), pkt...)})
}

func (o *probeOut) SendProbe(to netip.AddrPort, pkt []byte) {
	from := netip.AddrPortFrom(o.n.pub.Addr(), 40000)
	o.net.cost.reachPkts++
	o.net.cost.reachBytes += len(pkt)
	o.net.cost.dhtPkts++
	o.net.cost.dhtBytes += len(pkt)
	o.net.queue = append(o.net.queue, rpkt{from: from, to: to, pkt: append([]byte(nil), pkt...)})
}

func (o *probeOut) DialProbe(to netip.AddrPort, nonce wire.ID) {
	o.net.cost.tcpProbes++
	o.net.queue = append(o.net.queue, rpkt{from: o.n.pub, to: to, tcp: &nonce})
}

// plainOut is the Output of an original peer: it has no probe socket, so its
// core answers reach with 203 as the original's does.
type plainOut struct{ p *probeOut }

func (o plainOut) Send(to netip.AddrPort, pkt []byte) { o.p.Send(to, pkt) }

func newRnet(t testing.TB) *rnet { return &rnet{t: t, now: time.Unix(1_000_000, 0)} }

// add starts a node at pub; original makes it answer reach with 203.
func (r *rnet) add(name, pub string, natted, tcpOpen, original bool, boot []netip.AddrPort, mod func(*Config)) *rnode {
	r.t.Helper()
	n := &rnode{name: name, pub: netip.MustParseAddrPort(pub), natted: natted, tcpOpen: tcpOpen, allowed: map[netip.AddrPort]time.Time{}}
	cfg := testConfig()
	cfg.LocalOK = false
	cfg.BootstrapNode = len(boot) == 0
	cfg.Reach.Probe = !original
	cfg.Reach.TCPPort = n.pub.Port()
	cfg.Reach.Interval = time.Minute
	if mod != nil {
		mod(&cfg)
	}
	po := &probeOut{net: r, n: n}
	var out Output = po
	if original {
		out = plainOut{po}
	}
	c, err := New(cfg, out)
	if err != nil {
		r.t.Fatal(err)
	}
	n.c = c
	r.nodes = append(r.nodes, n)
	c.Start(r.now, boot)
	return n
}

func (r *rnet) byAddr(a netip.Addr) *rnode {
	for _, n := range r.nodes {
		if n.pub.Addr() == a {
			return n
		}
	}
	return nil
}

// deliver hands queued packets to their nodes, through the NATs.
func (r *rnet) deliver() {
	for len(r.queue) > 0 {
		p := r.queue[0]
		r.queue = r.queue[1:]
		n := r.byAddr(p.to.Addr())
		if n == nil || n.c.Closed() {
			continue
		}
		if p.tcp != nil {
			if n.tcpOpen && p.to.Port() == n.pub.Port() {
				n.c.ReachTCPHit(r.now, *p.tcp)
			}
			continue
		}
		if p.to != n.pub {
			continue
		}
		if n.natted {
			if t, ok := n.allowed[p.from]; !ok || r.now.Sub(t) > natTimeout {
				continue
			}
		}
		n.c.HandlePacket(r.now, p.from, p.pkt)
	}
}

// run advances the virtual clock by d, firing timers and delivering packets.
func (r *rnet) run(d time.Duration) {
	end := r.now.Add(d)
	for {
		r.deliver()
		next := end
		for _, n := range r.nodes {
			if dl, ok := n.c.NextDeadline(); ok && dl.Before(next) {
				next = dl
			}
		}
		if next.After(r.now) {
			r.now = next
		}
		for _, n := range r.nodes {
			n.c.Tick(r.now)
		}
		r.deliver()
		if !r.now.Before(end) {
			return
		}
	}
}

// A NATed node among reachable ones learns it is unreachable over UDP and
// TCP, turns read-only, and leaves the others' tables; the reachable nodes
// learn they are reachable over both.
func TestReachNATedAmongReachable(t *testing.T) {
	r := newRnet(t)
	r1 := r.add("r1", "203.0.113.1:9977", false, true, false, nil, nil)
	boot := []netip.AddrPort{r1.pub}
	r2 := r.add("r2", "198.51.100.2:9977", false, true, false, boot, nil)
	r3 := r.add("r3", "192.0.2.3:9977", false, true, false, boot, nil)
	r.run(5 * time.Second)
	nat := r.add("nat", "100.64.7.7:9977", true, false, false, boot, nil)

	r.run(2 * time.Minute)
	st := nat.c.Reach()
	if st.UDP != ReachUnreachable || st.TCP != ReachUnreachable || !st.ReadOnly {
		t.Fatalf("NATed node: %+v; want unreachable over UDP and TCP, read-only", st)
	}
	if st.UDPArrived != 0 || st.TCPArrived != 0 {
		t.Errorf("probes reached the NATed node: %+v", st)
	}
	if nat.roSent == 0 {
		t.Error("the unreachable node sent no query with ro = 1")
	}
	for _, n := range []*rnode{r1, r2, r3} {
		s := n.c.Reach()
		if s.UDP != ReachReachable || s.TCP != ReachReachable || s.ReadOnly {
			t.Errorf("%s: %+v; want reachable over UDP and TCP", n.name, s)
		}
		if n.roSent != 0 {
			t.Errorf("%s sent %d read-only queries", n.name, n.roSent)
		}
		if _, in := n.c.Table().Get(nat.c.ID()); in {
			t.Errorf("%s keeps the read-only NATed node in its table", n.name)
		}
		if s.ReadOnlySeen == 0 {
			t.Errorf("%s saw no read-only query", n.name)
		}
		// Nor does it hand it out.
		for _, w := range n.c.closestFor(r.now, nat.c.ID(), wire.ID{}) {
			if w.ID == nat.c.ID() {
				t.Errorf("%s hands out the NATed node", n.name)
			}
		}
	}
	// The NATed node still uses the DHT.
	if !nat.c.Joined() || nat.c.Table().Len() == 0 {
		t.Errorf("NATed node: joined %v, %d nodes", nat.c.Joined(), nat.c.Table().Len())
	}
	// Probing costs a bounded number of packets: at most Fanout queries per
	// round and one probe datagram (plus one TCP connect) per query served.
	var served uint64
	for _, n := range []*rnode{r1, r2, r3} {
		served += n.c.Reach().Served
	}
	if st.Asked > uint64(st.Rounds)*3 || served > st.Asked+r1.c.Reach().Asked+r2.c.Reach().Asked+r3.c.Reach().Asked {
		t.Errorf("asked %d in %d rounds, served %d", st.Asked, st.Rounds, served)
	}
	t.Logf("NATed: %+v", st)
}

// A node among original peers only (they answer reach with 203) gets no
// evidence either way: its states stay unknown, it does not turn read-only,
// the peers are not counted as failing, and it stops asking them.
func TestReachOriginalPeersChangeNothing(t *testing.T) {
	r := newRnet(t)
	o1 := r.add("o1", "203.0.113.1:9977", false, true, true, nil, nil)
	boot := []netip.AddrPort{o1.pub}
	r.add("o2", "198.51.100.2:9977", false, true, true, boot, nil)
	r.run(5 * time.Second)
	n := r.add("nat", "100.64.7.7:9977", true, false, false, boot, nil)
	r.run(3 * time.Minute)
	st := n.c.Reach()
	if st.UDP != ReachUnknown || st.TCP != ReachUnknown || st.ReadOnly || n.roSent != 0 {
		t.Fatalf("among original peers: %+v, %d read-only queries; want unknown, not read-only", st, n.roSent)
	}
	if st.Asked == 0 || st.NoEvidence != st.Asked || st.UDPMissed != 0 || st.TCPMissed != 0 {
		t.Errorf("counters %+v: every question should have been answered 203 and counted for nothing", st)
	}
	if st.Asked > 2 {
		t.Errorf("asked %d times: peers that cannot answer should not be asked again for an hour", st.Asked)
	}
	for _, kn := range n.c.Table().Nodes(nil) {
		if kn.Fails != 0 {
			t.Errorf("node %v has %d failures after answering 203", kn.Addr, kn.Fails)
		}
	}
	if !st.Announceable() {
		t.Error("unknown reachability must behave as reachable")
	}
}

// A peer answering 204 (a BitTorrent node's "method unknown") or any other
// error gives no evidence: nothing changes, and it is not asked again soon.
func TestReachErrorReplyNoEvidence(t *testing.T) {
	for _, code := range []int{wire.ErrCodeMethodUnknown, wire.ErrCodeMalformedRequest, wire.ErrCodeServer} {
		c, out := newTestCore(t, func(c *Config) { c.Reach.Probe = true; c.Reach.TCPPort = 9977 })
		now := time.Unix(1000, 0)
		peer := netip.MustParseAddrPort("203.0.113.9:6881")
		c.Start(now, []netip.AddrPort{peer})
		var pid wire.ID
		copy(pid[:], "bittorrent-node-0001")
		var m wire.Msg
		// Answer the join, then every query, as a node that knows no reach.
		answer := func() int {
			n := 0
			for _, p := range out.take() {
				if m.Parse(p.pkt) != nil || m.Y != 'q' {
					continue
				}
				var reply []byte
				switch {
				case string(m.MethodName) == wire.ReachMethod:
					reply = wire.AppendError(nil, m.TID, code, "method unknown")
					n++
				case m.Method == wire.MethodJoin:
					reply = wire.AppendJoinResp(nil, m.TID, pid, netip.MustParseAddrPort("198.51.100.1:9977"))
				case m.Method == wire.MethodFindNode:
					reply = wire.AppendFindNodeResp(nil, m.TID, pid, nil, wire.ID{})
				default:
					reply = wire.AppendIDResp(nil, m.TID, pid)
				}
				c.HandlePacket(now, p.to, reply)
			}
			return n
		}
		asked := 0
		for range 200 {
			for len(out.pkts) > 0 {
				asked += answer()
			}
			now = now.Add(time.Second)
			c.Tick(now)
		}
		st := c.Reach()
		if asked == 0 || st.UDP != ReachUnknown || st.TCP != ReachUnknown || st.ReadOnly {
			t.Fatalf("error %d: asked %d, %+v", code, asked, st)
		}
		if kn, ok := c.Table().Get(pid); !ok || kn.Fails != 0 {
			t.Errorf("error %d: the peer left the table or counts failures: %+v %v", code, kn, ok)
		}
		if code != wire.ErrCodeServer && asked != 1 {
			t.Errorf("error %d: asked %d times in 200 s, want once (then an hour's rest)", code, asked)
		}
	}
}

// The server side: probes go only to the requester's own source address
// (UDP) and to the port it names on that IP (TCP, with a valid token), at
// most ServePerIP per IP and ServeGlobal in all per window.
func TestReachServeBounds(t *testing.T) {
	r := newRnet(t)
	srv := r.add("srv", "203.0.113.1:9977", false, true, false, nil, nil)
	r.run(time.Second)
	r.queue = nil
	var tid wire.ID
	ask := func(from string, a wire.ReachArgs) (reply wire.Msg, rr wire.ReachReply, probes []rpkt) {
		t.Helper()
		f := netip.MustParseAddrPort(from)
		tid[0]++
		srv.c.HandlePacket(r.now, f, wire.AppendReach(nil, tid, &a))
		for _, p := range r.queue {
			if p.from == srv.pub && p.tcp == nil {
				if p.to != f {
					t.Fatalf("reply to %v, asked from %v", p.to, f)
				}
				var m wire.Msg
				if err := m.Parse(p.pkt); err != nil {
					t.Fatal(err)
				}
				if m.Y == 'q' {
					continue // the verification ping of a new requester
				}
				reply = m
				if reply.Y == 'r' {
					if err := wire.ParseReachReply(p.pkt, &rr); err != nil {
						t.Fatal(err)
					}
				}
				continue
			}
			probes = append(probes, p)
		}
		r.queue = nil
		return
	}
	var id, nonce wire.ID
	copy(id[:], "requester-0000000001")
	copy(nonce[:], "nonce-00000000000001")

	// No token: a UDP probe only, to the exact source address, from another port.
	reply, rr, probes := ask("198.51.100.7:5000", wire.ReachArgs{ID: id, Nonce: nonce, Port: 8080})
	if reply.Y != 'r' || rr.TCP || rr.Has&wire.FieldToken == 0 || rr.Seen != netip.MustParseAddrPort("198.51.100.7:5000") {
		t.Fatalf("reply %c %+v", reply.Y, rr)
	}
	if len(probes) != 1 || probes[0].tcp != nil || probes[0].to != netip.MustParseAddrPort("198.51.100.7:5000") || probes[0].from.Port() == srv.pub.Port() {
		t.Fatalf("probes %+v; want one datagram to the source, from another port", probes)
	}
	var pm wire.Msg
	if err := pm.Parse(probes[0].pkt); err != nil || pm.Y != 'r' || pm.TID != nonce {
		t.Fatalf("probe datagram: %v %+v", err, pm)
	}
	// A wrong token: still no TCP. The right one: TCP to the named port on
	// the requester's own IP, and nowhere else.
	bad := wire.ReachArgs{ID: id, Nonce: nonce, Port: 8080, Token: wire.ID{1}, Has: wire.FieldToken}
	if _, rr2, probes := ask("198.51.100.7:5000", bad); rr2.TCP || len(probes) != 1 {
		t.Fatalf("bad token: tcp %v, %d probes", rr2.TCP, len(probes))
	}
	// Third probe for one IP within the window: refused.
	good := wire.ReachArgs{ID: id, Nonce: nonce, Port: 8080, Token: rr.Token, Has: wire.FieldToken}
	if reply, _, probes := ask("198.51.100.7:5000", good); reply.Y != 'e' || reply.ErrCode != wire.ErrCodeServer || len(probes) != 0 {
		t.Fatalf("over the per-IP limit: %c %d, %d probes", reply.Y, reply.ErrCode, len(probes))
	}
	r.now = r.now.Add(time.Minute)
	_, rr3, probes := ask("198.51.100.7:5000", good)
	if !rr3.TCP || len(probes) != 2 {
		t.Fatalf("valid token after the window: tcp %v, probes %+v", rr3.TCP, probes)
	}
	for _, p := range probes {
		if p.tcp != nil && (p.to != netip.MustParseAddrPort("198.51.100.7:8080") || *p.tcp != nonce) {
			t.Fatalf("TCP probe to %v nonce %x; want the requester's IP and named port", p.to, *p.tcp)
		}
	}
	// The global limit: ServeGlobal (6) per window, whoever asks.
	served := 1
	for i := range 10 {
		reply, _, probes := ask(netip.AddrPortFrom(netip.AddrFrom4([4]byte{198, 51, 100, byte(20 + i)}), 5000).String(), wire.ReachArgs{ID: id, Nonce: nonce})
		if reply.Y == 'r' {
			served++
			if len(probes) != 1 {
				t.Fatalf("served without a probe: %+v", probes)
			}
		} else if len(probes) != 0 {
			t.Fatal("refused but probed")
		}
	}
	if served != 6 {
		t.Errorf("served %d probes in one window, want 6", served)
	}
	// Malformed arguments: 204, no probe.
	srv.c.HandlePacket(r.now, netip.MustParseAddrPort("198.51.100.99:1"), []byte("d1:ad2:id20:requester-00000000015:nonce3:abce1:q5:reach1:t20:tttttttttttttttttttt1:y1:qe"))
	if len(r.queue) != 1 || r.queue[0].tcp != nil {
		t.Fatalf("malformed reach: %d packets", len(r.queue))
	}
	var em wire.Msg
	if em.Parse(r.queue[0].pkt) != nil || em.Y != 'e' || em.ErrCode != wire.ErrCodeMalformedRequest {
		t.Fatalf("malformed reach answered %q", r.queue[0].pkt)
	}
	if s := srv.c.Reach(); s.Refused == 0 || s.ServedTCP != 1 {
		t.Errorf("counters %+v", s)
	}
}

// A node that does not serve probes answers reach as an original peer: 203.
func TestReachNoServeAnswers203(t *testing.T) {
	c, out := newTestCore(t, func(c *Config) { c.BootstrapNode = true })
	now := time.Unix(1000, 0)
	c.Start(now, nil)
	out.take()
	var tid, id wire.ID
	c.HandlePacket(now, netip.MustParseAddrPort("198.51.100.7:5000"), wire.AppendReach(nil, tid, &wire.ReachArgs{ID: id, Nonce: id}))
	sent := out.take()
	var m wire.Msg
	if len(sent) != 1 || m.Parse(sent[0].pkt) != nil || m.Y != 'e' || m.ErrCode != wire.ErrCodeMethodUnknown {
		t.Fatalf("sent %d: %v", len(sent), sent)
	}
}

// BEP 43 from the other side: a query with ro = 1 is answered, its sender is
// neither pinged nor added, and a node already in the table that turns
// read-only leaves it.
func TestReadOnlyQuerier(t *testing.T) {
	c, out := newTestCore(t, func(c *Config) { c.BootstrapNode = true })
	now := time.Unix(1000, 0)
	c.Start(now, nil)
	c.Tick(now.Add(5 * time.Second))
	out.take()
	peer := netip.MustParseAddrPort("8.8.8.8:6881")
	var pid, tid wire.ID
	copy(pid[:], "read-only-node-00001")
	c.HandlePacket(now, peer, wire.AppendReadOnly(wire.AppendPing(nil, tid, pid)))
	sent := out.take()
	if len(sent) != 1 {
		t.Fatalf("sent %d datagrams, want only the pong (no verification ping)", len(sent))
	}
	var m wire.Msg
	if m.Parse(sent[0].pkt) != nil || m.Y != 'r' {
		t.Fatalf("reply %q", sent[0].pkt)
	}
	if c.Table().Len() != 0 {
		t.Fatal("a read-only node entered the table")
	}
	// A known node turning read-only leaves the table.
	c.table.Insert(kbucketNode(pid, peer), true, now)
	c.HandlePacket(now, peer, wire.AppendReadOnly(wire.AppendFindNode(nil, tid, pid, pid)))
	if _, in := c.Table().Get(pid); in {
		t.Fatal("a node that turned read-only stayed in the table")
	}
	if s := c.Reach(); s.ReadOnlySeen != 2 {
		t.Errorf("ReadOnlySeen %d, want 2", s.ReadOnlySeen)
	}
	// Without ro the same query is answered and the sender pinged.
	c.HandlePacket(now, peer, wire.AppendPing(nil, tid, pid))
	if sent := out.take(); len(sent) != 3 { // find_node reply above, pong, verification ping
		t.Fatalf("plain ping: %d datagrams", len(sent))
	}
}

// Unsolicited-query evidence: only a query from an address we did not send
// to lately, and not on our own networks, proves UDP reachability.
func TestReachUnsolicitedQuery(t *testing.T) {
	c, out := newTestCore(t, func(c *Config) { c.BootstrapNode = true; c.Reach.Probe = true })
	c.SetInterfaceAddrs([]netip.Addr{netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("192.0.2.10")})
	now := time.Unix(1000, 0)
	c.Start(now, nil)
	var tid, pid wire.ID
	copy(pid[:], "some-peer-id-0000001")
	talked := netip.MustParseAddrPort("198.51.100.1:9977")
	c.send(talked, wire.AppendPing(nil, tid, c.id)) // we sent it something
	for _, from := range []string{"198.51.100.1:4000", "192.0.2.77:9977", "127.0.0.5:9977"} {
		c.HandlePacket(now.Add(time.Second), netip.MustParseAddrPort(from), wire.AppendPing(nil, tid, pid))
		if s := c.Reach(); s.UDP != ReachUnknown {
			t.Fatalf("a query from %s (contacted or on our network) set UDP %v", from, s.UDP)
		}
	}
	// Long after we sent to it, the same address counts.
	c.HandlePacket(now.Add(11*time.Minute), talked, wire.AppendPing(nil, tid, pid))
	if s := c.Reach(); s.UDP != ReachReachable || s.Unsolicited != 1 {
		t.Fatalf("unsolicited query: %+v", s)
	}
	out.take()
}

// The hysteresis: one success makes a transport reachable; unreachable needs
// FailThreshold failures in a row from two IPs (one when only one is known).
func TestReachTrackHysteresis(t *testing.T) {
	now := time.Unix(1000, 0)
	a, b := netip.MustParseAddr("198.51.100.1"), netip.MustParseAddr("198.51.100.2")
	var tr reachTrack
	for i := range 5 {
		if tr.failure(now, a, 3, 2, "x") {
			t.Fatalf("failure %d from one IP changed the state", i)
		}
	}
	if !tr.failure(now, b, 3, 2, "x") || tr.state != ReachUnreachable {
		t.Fatalf("failures from two IPs: %v", tr.state)
	}
	if !tr.success(now, "probe") || tr.state != ReachReachable {
		t.Fatal("one success did not make it reachable")
	}
	tr.failure(now, a, 3, 2, "x")
	tr.failure(now, b, 3, 2, "x")
	if tr.state != ReachReachable {
		t.Fatal("two failures made a reachable node unreachable")
	}
	tr.success(now, "probe")
	for range 2 {
		tr.failure(now, a, 3, 1, "x")
	}
	if tr.state != ReachReachable {
		t.Fatal("a success did not reset the failure count")
	}
	if !tr.failure(now, a, 3, 1, "x") || tr.state != ReachUnreachable {
		t.Fatal("with one known prober, three failures from it should do")
	}
}

// A reachable node whose NAT starts filtering (its address changed) becomes
// unreachable, and reachable again when probes get through.
func TestReachRecheck(t *testing.T) {
	r := newRnet(t)
	r1 := r.add("r1", "203.0.113.1:9977", false, true, false, nil, nil)
	boot := []netip.AddrPort{r1.pub}
	r.add("r2", "198.51.100.2:9977", false, true, false, boot, nil)
	r.add("r3", "192.0.2.3:9977", false, true, false, boot, nil)
	r.run(5 * time.Second)
	n := r.add("n", "100.64.7.7:9977", false, true, false, boot, nil)
	r.run(time.Minute)
	if s := n.c.Reach(); s.UDP != ReachReachable || s.TCP != ReachReachable {
		t.Fatalf("before the NAT: %+v", s)
	}
	n.natted, n.tcpOpen = true, false
	r.run(5 * time.Minute)
	if s := n.c.Reach(); s.UDP != ReachUnreachable || s.TCP != ReachUnreachable || !s.ReadOnly {
		t.Fatalf("behind the NAT: %+v", s)
	}
	n.natted, n.tcpOpen = false, true // a port forward
	r.run(5 * time.Minute)
	if s := n.c.Reach(); s.UDP != ReachReachable || s.TCP != ReachReachable || s.ReadOnly {
		t.Fatalf("after the port forward: %+v", s)
	}
}

// Rounds wait for Ready (a port mapping being set up): a NATed node whose
// router maps its ports only after a while asks nobody before, counts no
// miss, and is found reachable at the first round after.
func TestReachWaitsForReady(t *testing.T) {
	r := newRnet(t)
	r1 := r.add("r1", "203.0.113.1:9977", false, true, false, nil, nil)
	boot := []netip.AddrPort{r1.pub}
	r.add("r2", "198.51.100.2:9977", false, true, false, boot, nil)
	r.run(5 * time.Second)
	ready := false
	n := r.add("n", "100.64.7.7:9977", true, false, false, boot, func(c *Config) {
		c.Reach.Ready = func() bool { return ready }
	})
	r.run(time.Minute)
	if s := n.c.Reach(); s.Asked != 0 || s.UDP != ReachUnknown || s.TCP != ReachUnknown {
		t.Fatalf("before Ready: %+v; want nobody asked, states unknown", s)
	}
	ready = true
	n.natted, n.tcpOpen = false, true // the router's mapping
	r.run(time.Minute)
	s := n.c.Reach()
	if s.UDP != ReachReachable || s.TCP != ReachReachable || s.UDPMissed != 0 {
		t.Fatalf("after Ready: %+v; want reachable with no miss", s)
	}
}
