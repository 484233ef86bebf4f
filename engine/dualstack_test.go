package engine

import (
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apt-p2p/apt-p2p/wire"
)

// On IPv6 loopback, with real sockets, nodes bound to ::1 run the IPv6
// network on their own: they join, store values with 18-byte contacts that
// the storers' addresses vouch for, and find them.
func TestIPv6Loopback(t *testing.T) {
	cfg := testConfig()
	cfg.Validate = AptValidator
	cfg.BootstrapNode = true
	boot := startNodeAt(t, cfg, "[::1]:0")
	mustJoin(t, boot)
	if boot.Family() != IPv6 || boot.IPv6() != boot || boot.IPv4() != nil || boot.Other() != nil {
		t.Fatalf("a node on ::1 runs %v (other %v)", boot.Family(), boot.Other())
	}
	nodes := []*Node{boot}
	for range 5 {
		n := startNodeAt(t, testConfig(), "[::1]:0", boot.Addr())
		mustJoin(t, n)
		nodes = append(nodes, n)
	}
	eventually(t, 10*time.Second, "tables of IPv6 nodes", func() bool { return tableLen(nodes[5]) >= 3 })
	key := sha1Key("loopback6")
	v := wire.AppendPeerValue(nil, &wire.PeerValue{Contact: netip.AddrPortFrom(netip.IPv6Loopback(), 9977)})
	if r, err := nodes[2].Put(ctxT(t, 10*time.Second), key, v); err != nil || r.Stored < 2 {
		t.Fatalf("put: %+v %v", r, err)
	}
	vals, err := nodes[4].GetValues(ctxT(t, 10*time.Second), key)
	if err != nil || len(vals) != 1 || string(vals[0]) != string(v) {
		t.Fatalf("get: %q %v", vals, err)
	}
	// An IPv4 contact is never put on the IPv6 network.
	v4 := wire.AppendPeerValue(nil, &wire.PeerValue{Contact: netip.MustParseAddrPort("127.0.0.1:9977")})
	if _, err := nodes[2].Put(ctxT(t, 10*time.Second), key, v4); !errors.Is(err, ErrOtherFamily) {
		t.Fatalf("IPv4 contact on IPv6: %v", err)
	}
	if st := nodes[3].Stats(); st.Family != IPv6 || st.Nodes == 0 || !st.Joined {
		t.Fatalf("stats %+v", st)
	}
}

// memHub is an in-memory datagram network for runner tests: its
// transports behave as dual-stack sockets bound to [::]:port, reachable at
// 127.0.0.1:port and [::1]:port, reporting IPv4 senders IPv4-mapped as the
// kernel does.
type memHub struct {
	mu    sync.Mutex
	ports map[uint16]*memTransport
	next  uint16
}

type memTransport struct {
	hub      *memHub
	port     uint16
	in       chan memDgram
	wake     chan struct{}
	mu       sync.Mutex
	deadline time.Time
	closed   chan struct{}
	once     sync.Once
}

type memDgram struct {
	from netip.AddrPort
	pkt  []byte
}

type timeoutErr struct{}

func (timeoutErr) Error() string   { return "timeout" }
func (timeoutErr) Timeout() bool   { return true }
func (timeoutErr) Temporary() bool { return true }

func (h *memHub) listen(port uint16) *memTransport {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.ports == nil {
		h.ports = map[uint16]*memTransport{}
	}
	if port == 0 {
		h.next++
		port = 40000 + h.next
	}
	t := &memTransport{hub: h, port: port, in: make(chan memDgram, 1024), wake: make(chan struct{}, 1), closed: make(chan struct{})}
	h.ports[port] = t
	return t
}

func (t *memTransport) ReadFrom(b []byte) (int, netip.AddrPort, error) {
	for {
		t.mu.Lock()
		dl := t.deadline
		t.mu.Unlock()
		var timer <-chan time.Time
		if !dl.IsZero() {
			d := time.Until(dl)
			if d <= 0 {
				return 0, netip.AddrPort{}, timeoutErr{}
			}
			tm := time.NewTimer(d)
			defer tm.Stop()
			timer = tm.C
		}
		select {
		case d := <-t.in:
			return copy(b, d.pkt), d.from, nil
		case <-timer:
			return 0, netip.AddrPort{}, timeoutErr{}
		case <-t.wake:
		case <-t.closed:
			return 0, netip.AddrPort{}, errors.New("closed")
		}
	}
}

func (t *memTransport) WriteTo(b []byte, to netip.AddrPort) error {
	t.hub.mu.Lock()
	dst := t.hub.ports[to.Port()]
	t.hub.mu.Unlock()
	a := to.Addr().Unmap()
	if dst == nil || (a != netip.MustParseAddr("127.0.0.1") && a != netip.IPv6Loopback()) {
		return nil
	}
	from := netip.AddrPortFrom(netip.MustParseAddr("::ffff:127.0.0.1"), t.port)
	if a.Is6() {
		from = netip.AddrPortFrom(netip.IPv6Loopback(), t.port)
	}
	select {
	case dst.in <- memDgram{from, append([]byte(nil), b...)}:
	default:
	}
	return nil
}

func (t *memTransport) SetReadDeadline(d time.Time) error {
	t.mu.Lock()
	t.deadline = d
	t.mu.Unlock()
	select {
	case t.wake <- struct{}{}:
	default:
	}
	return nil
}

func (t *memTransport) LocalAddr() netip.AddrPort {
	return netip.AddrPortFrom(netip.IPv6Unspecified(), t.port)
}

func (t *memTransport) Close() error {
	t.once.Do(func() { close(t.closed) })
	return nil
}

// A dual-stack runner (Families DualStack on an unspecified socket) runs
// two paired cores on one loop: one ID, a table per family, each family's
// datagrams to its core, both closed by either Node's Close, both tables in
// one state file, and both loaded again at the next start.
func TestDualStackRunner(t *testing.T) {
	hub := &memHub{}
	start := func(port uint16, dir string, boot bool, bootstrap ...string) *Node {
		t.Helper()
		cfg := testConfig()
		cfg.BootstrapNode = boot
		cfg.StateDir = dir
		n, err := Start(Options{Config: cfg, Transport: hub.listen(port), Families: DualStack, Bootstrap: bootstrap})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { n.Close() })
		return n
	}
	a := start(0, t.TempDir(), true)
	mustJoin(t, a)
	pa := a.Addr().Port()
	dirB := t.TempDir()
	b := start(0, dirB, false, "127.0.0.1:"+itoa(pa), "[::1]:"+itoa(pa))
	pb := b.Addr().Port()
	b6 := b.Other()
	if b.Family() != IPv4 || b6 == nil || b6.Family() != IPv6 || b6.Other() != b || b.IPv6() != b6 || b6.IPv4() != b {
		t.Fatalf("dual node: %v / %v", b.Family(), b6)
	}
	if b.ID() != b6.ID() {
		t.Fatal("two IDs")
	}
	mustJoin(t, b)
	mustJoin(t, b6)
	eventually(t, 10*time.Second, "a in both of b's tables", func() bool { return tableLen(b) == 1 && tableLen(b6) == 1 })
	var a4, a6 netip.AddrPort
	b.Do(func(c *Core, _ time.Time) { a4 = c.Table().Nodes(nil)[0].Addr })
	b6.Do(func(c *Core, _ time.Time) { a6 = c.Table().Nodes(nil)[0].Addr })
	if !a4.Addr().Is4() || !wire.IsIPv6(a6.Addr()) {
		t.Fatalf("b's tables hold %v and %v", a4, a6)
	}
	// Each family's value goes to its own network.
	key := sha1Key("dual")
	if _, err := b.Put(ctxT(t, 5*time.Second), key, []byte("four")); err != nil {
		t.Fatal(err)
	}
	if _, err := b6.Put(ctxT(t, 5*time.Second), key, []byte("six")); err != nil {
		t.Fatal(err)
	}
	v4, _ := a.GetValues(ctxT(t, 5*time.Second), key)
	v6, _ := a.Other().GetValues(ctxT(t, 5*time.Second), key)
	if len(v4) != 1 || string(v4[0]) != "four" || len(v6) != 1 || string(v6[0]) != "six" {
		t.Fatalf("a found %q on IPv4 and %q on IPv6", v4, v6)
	}
	// Closing one Node of the pair closes both, and saves both tables.
	if err := b6.Close(); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := b.FindNode(ctxT(t, time.Second), key); !errors.Is(err, ErrClosed) {
		t.Fatalf("IPv4 node after the IPv6 one closed: %v", err)
	}
	raw, err := os.ReadFile(filepath.Join(dirB, stateFile))
	if err != nil || !strings.Contains(string(raw), "@127.0.0.1:"+itoa(pa)) || !strings.Contains(string(raw), "@[::1]:"+itoa(pa)) {
		t.Fatalf("state file %s: %v", raw, err)
	}
	// A restart without bootstrap finds a again through the saved tables,
	// under the same ID on both networks.
	b2 := start(pb, dirB, false)
	mustJoin(t, b2)
	mustJoin(t, b2.Other())
	if b2.ID() != b.ID() || b2.Other().ID() != b.ID() {
		t.Fatal("the ID changed across the restart")
	}
	eventually(t, 10*time.Second, "saved nodes back in both tables", func() bool { return tableLen(b2) == 1 && tableLen(b2.Other()) == 1 })
}

func itoa(p uint16) string { return strconv.Itoa(int(p)) }

// A dual-stack node's reachability is its IPv4 core's (wire/doc.go: rounds
// run on the IPv4 network only). Its IPv6 core takes an unsolicited query
// as evidence for itself, but that must not replace the state Node.Reach
// reports (which decides whether the daemon announces itself): the IPv6
// core's changes once overwrote it.
func TestDualStackReachIsIPv4s(t *testing.T) {
	hub := &memHub{}
	cfg := testConfig()
	cfg.BootstrapNode = true
	cfg.Reach.Probe = true
	tr := hub.listen(0)
	n, err := Start(Options{Config: cfg, Transport: tr, Families: DualStack})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	mustJoin(t, n)
	var tid, pid wire.ID
	copy(pid[:], "some-peer-id-0000001")
	tr.in <- memDgram{from: netip.MustParseAddrPort("[2001:db8::9]:4000"), pkt: wire.AppendPing(nil, tid, pid)}
	tr.SetReadDeadline(time.Unix(1, 0))
	eventually(t, 10*time.Second, "the IPv6 core to take the query as evidence", func() bool {
		var s ReachStats
		n.Other().Do(func(c *Core, _ time.Time) { s = c.Reach() })
		return s.UDP == ReachReachable
	})
	var s4 ReachStats
	n.Do(func(c *Core, _ time.Time) { s4 = c.Reach() })
	if got := n.Reach(); got.UDP != s4.UDP || got.UDP != ReachUnknown {
		t.Fatalf("Node.Reach says UDP %v, the IPv4 core %v", got.UDP, s4.UDP)
	}
}
