package engine

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/apt-p2p/apt-p2p/wire"
)

// famNet is an in-memory network of IPv4-only, IPv6-only and dual-stack
// hosts on a fake clock. Every datagram is checked on its way: what reaches
// an IPv4 address must be the original protocol (no want, no nodes6, no
// 18-byte contact, at most 1472 bytes), what reaches an IPv6 address at
// most 1452 bytes.
type famNet struct {
	t     *testing.T
	now   time.Time
	hosts []*famHost
	byAdr map[netip.AddrPort]*famHost
	queue []famPacket
	sent  [2]int // datagrams to IPv4, to IPv6 addresses
}

type famHost struct {
	c4, c6       *Core
	addr4, addr6 netip.AddrPort
	loop         loopCore
}

type famPacket struct {
	from, to netip.AddrPort
	pkt      []byte
}

type famOutput struct {
	n *famNet
	h *famHost
}

func (o famOutput) Send(to netip.AddrPort, pkt []byte) {
	from := o.h.addr4
	if wire.IsIPv6(to.Addr()) {
		from = o.h.addr6
	}
	if !from.IsValid() {
		return // no address of that family: no route
	}
	o.n.queue = append(o.n.queue, famPacket{from, to, bytes.Clone(pkt)})
}

func newFamNet(t *testing.T) *famNet {
	return &famNet{t: t, now: time.Unix(10_000, 0), byAdr: map[netip.AddrPort]*famHost{}}
}

// famCfg is the configuration of the network's cores: apt-p2p's validator
// (contacts must be the storer), public-looking addresses, no state.
func famCfg(i int) Config {
	c := testConfig()
	c.LocalOK = false
	c.Validate = AptValidator
	var seed [32]byte
	seed[0], seed[1] = byte(i), byte(i>>8)
	c.Seed = &seed
	return c
}

// add makes host i with the given families. Addresses are public-looking
// (11.0.x.y, 2001:db8::x) so that LocalOK stays off, as on the internet.
func (n *famNet) add(fams Family, boot bool) *famHost {
	i := len(n.hosts)
	h := &famHost{}
	cfg := famCfg(i)
	cfg.BootstrapNode = boot
	if fams&IPv4 != 0 {
		h.addr4 = netip.AddrPortFrom(netip.AddrFrom4([4]byte{11, 0, byte(i >> 8), byte(i + 1)}), 9977)
		c, err := New(cfg, famOutput{n, h})
		if err != nil {
			n.t.Fatal(err)
		}
		h.c4 = c
		n.byAdr[h.addr4] = h
		h.loop = c
	}
	if fams&IPv6 != 0 {
		h.addr6 = netip.AddrPortFrom(netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 14: byte(i >> 8), 15: byte(i + 1)}), 9977)
		c6 := cfg
		c6.Family = IPv6
		if h.c4 != nil {
			c6.NodeID = h.c4.ID()
		}
		c, err := New(c6, famOutput{n, h})
		if err != nil {
			n.t.Fatal(err)
		}
		h.c6 = c
		n.byAdr[h.addr6] = h
		h.loop = c
	}
	if h.c4 != nil && h.c6 != nil {
		if err := Pair(h.c4, h.c6); err != nil {
			n.t.Fatal(err)
		}
		h.loop = dualCore{h.c4, h.c6}
	}
	n.hosts = append(n.hosts, h)
	return h
}

func (h *famHost) cores() []*Core {
	var cs []*Core
	for _, c := range []*Core{h.c4, h.c6} {
		if c != nil {
			cs = append(cs, c)
		}
	}
	return cs
}

// start starts a host's cores through the bootstrap addresses.
func (n *famNet) start(h *famHost, boot ...netip.AddrPort) {
	for _, c := range h.cores() {
		c.Start(n.now, boot)
	}
}

// deliver hands queued datagrams to their hosts (1 ms each way).
func (n *famNet) deliver() {
	for len(n.queue) > 0 {
		q := n.queue
		n.queue = nil
		for _, p := range q {
			n.check(p)
			if h := n.byAdr[p.to]; h != nil {
				h.loop.HandlePacket(n.now.Add(time.Millisecond), p.from, p.pkt)
			}
		}
	}
}

// check holds every datagram to the rules of its destination's family.
func (n *famNet) check(p famPacket) {
	n.t.Helper()
	if wire.IsIPv6(p.to.Addr()) {
		n.sent[1]++
		if len(p.pkt) > wire.MaxPacketIPv6 {
			n.t.Fatalf("%d-byte datagram to %v, over the IPv6 limit", len(p.pkt), p.to)
		}
		return
	}
	n.sent[0]++
	if len(p.pkt) > wire.MaxPacketIPv4 {
		n.t.Fatalf("%d-byte datagram to %v, over the IPv4 limit", len(p.pkt), p.to)
	}
	if wire.IsIPv6(p.from.Addr()) {
		n.t.Fatalf("datagram to %v from an IPv6 address %v", p.to, p.from)
	}
	checkOriginal(n.t, p.pkt, p.to)
}

// checkOriginal fails if pkt holds anything an original (IPv4-only) peer
// would not expect: a want, a nodes6 list, a value with an 18-byte contact.
func checkOriginal(t testing.TB, pkt []byte, to netip.AddrPort) {
	t.Helper()
	var m wire.Msg
	if err := m.Parse(pkt); err != nil {
		t.Fatalf("datagram to %v does not parse: %v %q", to, err, pkt)
	}
	if m.Has&(wire.FieldWant|wire.FieldNodes6) != 0 || bytes.Contains(pkt, []byte("nodes6")) || bytes.Contains(pkt, []byte("4:want")) {
		t.Fatalf("IPv6 extension sent to the IPv4 address %v: %q", to, pkt)
	}
	check := func(v []byte) {
		var pv wire.PeerValue
		if pv.Parse(v) == nil && !pv.Contact.Addr().Is4() {
			t.Fatalf("value with a non-IPv4 contact %v sent to %v", pv.Contact, to)
		}
	}
	if m.Has&wire.FieldValue != 0 {
		check(m.Value)
	}
	for v := range m.Values.All {
		check(v)
	}
}

// run advances the clock in 10 ms steps for d, delivering as it goes.
func (n *famNet) run(d time.Duration) {
	end := n.now.Add(d)
	for n.now.Before(end) {
		n.deliver()
		n.now = n.now.Add(10 * time.Millisecond)
		for _, h := range n.hosts {
			h.loop.Tick(n.now)
		}
	}
	n.deliver()
}

// put stores v under key from core c and waits for the result.
func (n *famNet) put(c *Core, key wire.ID, v []byte) Result {
	var r *Result
	c.Put(n.now, key, v, func(res Result) { r = &res })
	for i := 0; r == nil && i < 1000; i++ {
		n.run(10 * time.Millisecond)
	}
	if r == nil {
		n.t.Fatal("put did not complete")
	}
	return *r
}

// get looks key up from core c and returns the values found.
func (n *famNet) get(c *Core, key wire.ID) ([][]byte, Result) {
	var vals [][]byte
	var r *Result
	c.Get(n.now, key, func(v []byte) { vals = append(vals, v) }, func(res Result) { r = &res })
	for i := 0; r == nil && i < 1000; i++ {
		n.run(10 * time.Millisecond)
	}
	if r == nil {
		n.t.Fatal("get did not complete")
	}
	return vals, *r
}

func peerValue(ap netip.AddrPort) []byte {
	return wire.AppendPeerValue(nil, &wire.PeerValue{Contact: netip.AddrPortFrom(ap.Addr(), 9977)})
}

// An IPv6-only network works as the IPv4 one does: nodes join through an
// IPv6 bootstrap node, their tables hold IPv6 nodes only, replies carry
// nodes6 (38-byte nodes) and no IPv4 list, values carry 18-byte contacts
// that the storers' addresses vouch for, and every datagram fits 1452
// bytes.
func TestIPv6OnlyNetwork(t *testing.T) {
	n := newFamNet(t)
	boot := n.add(IPv6, true)
	n.start(boot)
	for range 24 {
		h := n.add(IPv6, false)
		n.start(h, boot.addr6)
		n.run(50 * time.Millisecond)
	}
	n.run(5 * time.Second)
	for i, h := range n.hosts {
		if !h.c6.Joined() {
			t.Fatalf("host %d not joined", i)
		}
		for _, nd := range h.c6.Table().Nodes(nil) {
			if !wire.IsIPv6(nd.Addr.Addr()) {
				t.Fatalf("host %d holds %v", i, nd.Addr)
			}
		}
		if h.c6.Table().Len() < 8 {
			t.Fatalf("host %d knows %d nodes", i, h.c6.Table().Len())
		}
	}
	// A find_node reply over IPv6 carries nodes6 only.
	var m wire.Msg
	tid := wire.ID{1}
	n.hosts[3].c6.out = &recordOutput{}
	n.hosts[3].c6.HandlePacket(n.now, n.hosts[4].addr6, wire.AppendFindNode(nil, tid, n.hosts[4].c6.ID(), sha1Key("t")))
	rec := n.hosts[3].c6.out.(*recordOutput).take()
	n.hosts[3].c6.out = famOutput{n, n.hosts[3]}
	if len(rec) != 1 || m.Parse(rec[0].pkt) != nil || m.Has&wire.FieldNodes != 0 || m.Nodes6.Len() != 8 {
		t.Fatalf("find_node reply over IPv6: %d packets, has %b, %d nodes6", len(rec), m.Has, m.Nodes6.Len())
	}

	key := sha1Key("hello_2.10-3_amd64.deb")
	putter := n.hosts[7]
	if r := n.put(putter.c6, key, peerValue(putter.addr6)); r.Err != nil || r.Stored < 4 {
		t.Fatalf("put: %+v", r)
	}
	vals, r := n.get(n.hosts[19].c6, key)
	if r.Err != nil || len(vals) != 1 {
		t.Fatalf("get: %+v, %d values", r, len(vals))
	}
	var pv wire.PeerValue
	if err := pv.Parse(vals[0]); err != nil || pv.Contact != netip.AddrPortFrom(putter.addr6.Addr(), 9977) {
		t.Fatalf("value %q: %v %v", vals[0], pv.Contact, err)
	}
	if n.sent[0] != 0 || n.sent[1] == 0 {
		t.Fatalf("datagrams to IPv4 %d, to IPv6 %d", n.sent[0], n.sent[1])
	}
	// A third-party contact is refused on IPv6 as on IPv4.
	if r := n.put(n.hosts[8].c6, sha1Key("other"), peerValue(n.hosts[9].addr6)); r.Err == nil || r.Stored > 1 {
		t.Fatalf("third-party contact stored: %+v", r)
	}
}

// A network of dual-stack, IPv4-only and IPv6-only nodes: the IPv4 nodes
// stand for the original's peers and must see nothing new (checkOriginal on
// every datagram to an IPv4 address). Dual-stack nodes joined through an
// IPv6 bootstrap address only fill their IPv4 tables from the IPv4 nodes
// their IPv6 peers list (want n4); a dual-stack node announces on both
// networks with its own address of each, and finds the values of both.
func TestDualStackNetwork(t *testing.T) {
	n := newFamNet(t)
	boot := n.add(DualStack, true)
	n.start(boot)
	var dual, v4only, v6only []*famHost
	for i := range 30 {
		switch i % 3 {
		case 0:
			h := n.add(DualStack, false)
			n.start(h, boot.addr6) // IPv6 only: the IPv4 table must fill by want
			dual = append(dual, h)
		case 1:
			h := n.add(IPv4, false)
			n.start(h, boot.addr4)
			v4only = append(v4only, h)
		case 2:
			h := n.add(IPv6, false)
			n.start(h, boot.addr6)
			v6only = append(v6only, h)
		}
		n.run(50 * time.Millisecond)
	}
	n.run(10 * time.Second)
	// The re-pings of new nodes (MIN_PING_INTERVAL) and a refresh.
	n.run(16 * time.Minute)
	offered := uint64(0)
	for i, h := range dual {
		if !h.c4.Joined() || !h.c6.Joined() {
			t.Fatalf("dual %d: joined %v/%v", i, h.c4.Joined(), h.c6.Joined())
		}
		if h.c4.Table().Len() < 4 {
			t.Fatalf("dual %d: IPv4 table of %d nodes, though its IPv6 peers list IPv4 ones", i, h.c4.Table().Len())
		}
		if h.c4.ID() != h.c6.ID() {
			t.Fatalf("dual %d: two IDs", i)
		}
		offered += h.c4.Stats(n.now).Offered
	}
	if offered == 0 {
		t.Fatal("no IPv4 node came through want")
	}
	for i, h := range v4only {
		for _, nd := range h.c4.Table().Nodes(nil) {
			if !nd.Addr.Addr().Is4() {
				t.Fatalf("v4-only %d holds %v", i, nd.Addr)
			}
		}
	}

	// A dual-stack node announces on both networks, each with its own
	// family's contact; IPv4-only and IPv6-only peers find one each, a
	// dual-stack peer both.
	key := sha1Key("dual_1.0_all.deb")
	d := dual[2]
	if r := n.put(d.c4, key, peerValue(d.addr4)); r.Err != nil {
		t.Fatalf("put on IPv4: %+v", r)
	}
	if r := n.put(d.c6, key, peerValue(d.addr6)); r.Err != nil {
		t.Fatalf("put on IPv6: %+v", r)
	}
	contacts := func(vals [][]byte) []netip.Addr {
		var out []netip.Addr
		for _, v := range vals {
			var pv wire.PeerValue
			if pv.Parse(v) == nil {
				out = append(out, pv.Contact.Addr())
			}
		}
		slices.SortFunc(out, netip.Addr.Compare)
		return out
	}
	if got, _ := n.get(v4only[4].c4, key); !slices.Equal(contacts(got), []netip.Addr{d.addr4.Addr()}) {
		t.Errorf("IPv4-only peer found %v", contacts(got))
	}
	if got, _ := n.get(v6only[4].c6, key); !slices.Equal(contacts(got), []netip.Addr{d.addr6.Addr()}) {
		t.Errorf("IPv6-only peer found %v", contacts(got))
	}
	g4, _ := n.get(dual[5].c4, key)
	g6, _ := n.get(dual[5].c6, key)
	if got := contacts(append(g4, g6...)); !slices.Equal(got, []netip.Addr{d.addr4.Addr(), d.addr6.Addr()}) {
		t.Errorf("dual-stack peer found %v", got)
	}
	// A value of the other family is never put on a network.
	if r := n.put(d.c4, key, peerValue(d.addr6)); !errors.Is(r.Err, ErrOtherFamily) {
		t.Errorf("IPv6 contact put on IPv4: %+v", r)
	}
	if r := n.put(d.c6, key, peerValue(d.addr4)); !errors.Is(r.Err, ErrOtherFamily) {
		t.Errorf("IPv4 contact put on IPv6: %+v", r)
	}
	t.Logf("datagrams: %d to IPv4 addresses, %d to IPv6; %d IPv4 nodes offered by want", n.sent[0], n.sent[1], offered)
}

// want is answered from both tables of a dual-stack node, and only the
// families asked for; a query without want gets the family it came over,
// as the original's do. An IPv4-only node asked for n6 answers with what
// it has.
func TestWantAnswered(t *testing.T) {
	n := newFamNet(t)
	boot := n.add(DualStack, true)
	n.start(boot)
	for i := range 20 {
		h := n.add(DualStack, false)
		n.start(h, boot.addr4, boot.addr6)
		n.run(20 * time.Millisecond)
		_ = i
	}
	v4 := n.add(IPv4, false)
	n.start(v4, boot.addr4)
	n.run(5 * time.Second)
	h := n.hosts[5]
	asker := n.hosts[6]
	ask := func(c *Core, from netip.AddrPort, pkt []byte) *wire.Msg {
		t.Helper()
		out := &recordOutput{}
		saved := c.out
		c.out = out
		c.HandlePacket(n.now, from, pkt)
		c.out = saved
		pk := out.take()
		if len(pk) == 0 {
			t.Fatal("no reply")
		}
		m := &wire.Msg{}
		if err := m.Parse(pk[0].pkt); err != nil || m.Y != 'r' {
			t.Fatalf("reply %q: %v", pk[0].pkt, err)
		}
		return m
	}
	tid, target := wire.ID{9}, sha1Key("target")
	for _, tc := range []struct {
		name   string
		c      *Core
		from   netip.AddrPort
		want   wire.Want
		n4, n6 bool
	}{
		{"IPv6, no want", h.c6, asker.addr6, 0, false, true},
		{"IPv6, n4 n6", h.c6, asker.addr6, wire.WantN4 | wire.WantN6, true, true},
		{"IPv6, n4", h.c6, asker.addr6, wire.WantN4, true, false},
		{"IPv4, no want", h.c4, asker.addr4, 0, true, false},
		{"IPv4, n4 n6", h.c4, asker.addr4, wire.WantN4 | wire.WantN6, true, true},
		{"IPv4-only, n6", v4.c4, asker.addr4, wire.WantN6, true, false},
	} {
		m := ask(tc.c, tc.from, wire.AppendFindNodeWant(nil, tid, asker.c4.ID(), target, tc.want))
		if (m.Has&wire.FieldNodes != 0) != tc.n4 || (m.Has&wire.FieldNodes6 != 0) != tc.n6 {
			t.Errorf("%s: has %b", tc.name, m.Has)
		}
		if tc.n4 && m.Nodes.Len() == 0 || tc.n6 && m.Nodes6.Len() == 0 {
			t.Errorf("%s: %d nodes, %d nodes6", tc.name, m.Nodes.Len(), m.Nodes6.Len())
		}
		for i := range m.Nodes.Len() {
			if nd := m.Nodes.At(i); nd.ID == asker.c4.ID() {
				t.Errorf("%s: the requester listed", tc.name)
			}
		}
		m = ask(tc.c, tc.from, wire.AppendFindValueWant(nil, tid, asker.c4.ID(), target, tc.want))
		if (m.Has&wire.FieldNodes != 0) != tc.n4 || (m.Has&wire.FieldNodes6 != 0) != tc.n6 || m.Has&wire.FieldNum == 0 {
			t.Errorf("%s find_value: has %b", tc.name, m.Has)
		}
	}
}

// An IPv4 core drops IPv6 datagrams and an IPv6 core IPv4 ones (counted),
// and a dual-stack loop hands each to its family's core.
func TestFamilyDrops(t *testing.T) {
	c6, out := newTestCore(t, func(c *Config) { c.Family = IPv6 })
	now := time.Unix(1000, 0)
	var id, tid wire.ID
	id[0] = 1
	c6.HandlePacket(now, netip.MustParseAddrPort("8.8.8.8:6881"), wire.AppendPing(nil, tid, id))
	c6.HandlePacket(now, netip.MustParseAddrPort("[::ffff:8.8.8.8]:6881"), wire.AppendPing(nil, tid, id))
	if c6.Stats(now).Dropped[DropNotIPv4] != 2 || len(out.take()) != 0 {
		t.Fatal("IPv4 datagrams reached the IPv6 core")
	}
	c6.HandlePacket(now, netip.MustParseAddrPort("[2001:db8::1]:6881"), wire.AppendPing(nil, tid, id))
	if p := out.take(); len(p) != 2 { // the pong and the verification ping
		t.Fatalf("IPv6 ping: %d datagrams", len(p))
	}
	c4, out4 := newTestCore(t, nil)
	if err := Pair(c4, c6); err != nil {
		t.Fatal(err)
	}
	if err := Pair(c6, c4); err == nil {
		t.Fatal("Pair took the families the wrong way round")
	}
	d := dualCore{c4, c6}
	d.HandlePacket(now, netip.MustParseAddrPort("[::ffff:9.9.9.9]:6881"), wire.AppendPing(nil, tid, id))
	if p := out4.take(); len(p) != 2 || p[0].to != netip.MustParseAddrPort("9.9.9.9:6881") {
		t.Fatalf("IPv4-mapped datagram: %v", p)
	}
	if c4.Stats(now).Dropped[DropNotIPv4] != 0 {
		t.Fatal("the dual loop gave the IPv4 core an IPv6 datagram")
	}
}

// The state file of a dual-stack node holds both tables under one ID; each
// core loads its own family's nodes, and a save of one keeps what the file
// had of the other.
func TestPairState(t *testing.T) {
	mem := &memState{st: &State{ID: sha1Key("me"), Nodes: []wire.Node{
		{ID: sha1Key("a"), Addr: netip.MustParseAddrPort("1.2.3.4:9977")},
		{ID: sha1Key("b"), Addr: netip.MustParseAddrPort("[2001:db8::1]:9977")},
		{ID: sha1Key("c"), Addr: netip.MustParseAddrPort("[2001:db8::2]:9977")},
	}}}
	p := &pairState{inner: mem}
	s4, _ := p.half(IPv4).Load()
	s6, _ := p.half(IPv6).Load()
	if s4.ID != s6.ID || len(s4.Nodes) != 1 || len(s6.Nodes) != 2 {
		t.Fatalf("loaded %+v / %+v", s4, s6)
	}
	newer := wire.Node{ID: sha1Key("d"), Addr: netip.MustParseAddrPort("5.6.7.8:1")}
	if err := p.half(IPv4).Save(&State{ID: s4.ID, Nodes: []wire.Node{newer}}); err != nil {
		t.Fatal(err)
	}
	if got := mem.st.Nodes; len(got) != 3 || got[0] != newer || got[1] != s6.Nodes[0] {
		t.Fatalf("after the IPv4 save the file holds %v", got)
	}
	if err := p.half(IPv6).Save(&State{ID: s4.ID}); err != nil {
		t.Fatal(err)
	}
	if got := mem.st.Nodes; len(got) != 1 || got[0] != newer {
		t.Fatalf("after the IPv6 save the file holds %v", got)
	}
	// The file format is unchanged: IPv6 nodes are "id@[addr]:port".
	dir := t.TempDir()
	fs := FileState{Dir: dir}
	if err := fs.Save(&State{ID: s4.ID, Nodes: s6.Nodes}); err != nil {
		t.Fatal(err)
	}
	back, err := fs.Load()
	if err != nil || !slices.Equal(back.Nodes, s6.Nodes) {
		t.Fatalf("FileState with IPv6 nodes: %v %v", back, err)
	}
}

// runFamilies: the socket's address decides, then what was asked for.
func TestRunFamilies(t *testing.T) {
	for _, tc := range []struct {
		asked, configured Family
		local             string
		want              Family
	}{
		{0, 0, "0.0.0.0", IPv4},
		{0, 0, "::", IPv4},
		{0, IPv6, "::", IPv6},
		{0, 0, "fd42::11", IPv6},
		{DualStack, 0, "::", DualStack},
		{DualStack, 0, "0.0.0.0", IPv4}, // no IPv6 on this system
		{DualStack, 0, "127.0.0.1", IPv4},
		{DualStack, 0, "::1", IPv6},
		{DualStack, 0, "::ffff:127.0.0.1", IPv4},
		{IPv6, 0, "::", IPv6},
		{IPv4, 0, "::", IPv4},
	} {
		if got := runFamilies(tc.asked, tc.configured, netip.MustParseAddr(tc.local)); got != tc.want {
			t.Errorf("runFamilies(%v, %v, %s) = %v, want %v", tc.asked, tc.configured, tc.local, got, tc.want)
		}
	}
	addrs := []netip.Addr{netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("::1"), netip.MustParseAddr("fe80::1%eth0"),
		netip.MustParseAddr("fd42::11"), netip.MustParseAddr("::ffff:10.0.0.1")}
	if got := fmt.Sprint(FamilyAddrs(addrs, IPv6)); got != "[fd42::11]" {
		t.Errorf("IPv6 interface addresses %s", got)
	}
	if got := fmt.Sprint(FamilyAddrs(addrs, IPv4)); got != "[10.0.0.1]" {
		t.Errorf("IPv4 interface addresses %s", got)
	}
}

// A dual-stack node's summary counts both networks.
func TestMergeStats(t *testing.T) {
	a := Stats{Family: IPv4, PacketsIn: 3, Nodes: 5, Buckets: 2, EstimatedUsers: 16, Joined: false}
	a.RPC[wire.MethodPing].OK = 2
	a.GetLatency.Add(time.Millisecond)
	b := Stats{Family: IPv6, PacketsIn: 4, Nodes: 7, Buckets: 3, EstimatedUsers: 32, Joined: true, ExternalAddr: netip.MustParseAddr("fd42::1")}
	b.RPC[wire.MethodPing].OK = 1
	b.GetLatency.Add(3 * time.Millisecond)
	s := MergeStats(a, b)
	if s.Family != DualStack || s.PacketsIn != 7 || s.Nodes != 12 || s.Buckets != 3 || s.EstimatedUsers != 32 || !s.Joined ||
		s.RPC[wire.MethodPing].OK != 3 || s.GetLatency.Count != 2 || s.ExternalAddr != b.ExternalAddr {
		t.Fatalf("%+v", s)
	}
}

func TestFamilyText(t *testing.T) {
	for _, f := range []Family{0, IPv4, IPv6, DualStack} {
		b, _ := f.MarshalText()
		var g Family
		if err := g.UnmarshalText(b); err != nil || g != f {
			t.Errorf("%v: %q → %v %v", f, b, g, err)
		}
	}
	var g Family
	if g.UnmarshalText([]byte("IPv5")) == nil {
		t.Error("IPv5 accepted")
	}
}
