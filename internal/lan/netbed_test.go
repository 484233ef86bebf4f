//go:build linux

package lan

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/apt-p2p/apt-p2p/internal/netbed"
)

// bedService starts a Service inside host h of a test bed: its sockets are
// created there, and its interface lists are read there.
func bedService(t *testing.T, h *netbed.Host, cfg ServiceConfig) (*Service, *introductions) {
	t.Helper()
	in := &introductions{}
	cfg.Interfaces = func() (ifs []Iface, err error) {
		err = h.Do(func() error {
			ifs, err = SystemInterfaces()
			return err
		})
		return ifs, err
	}
	cfg.Introduce = in.add
	var s *Service
	if err := h.Do(func() (err error) {
		s, err = Start(cfg)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Error(err)
		}
	})
	return s, in
}

type introductions struct {
	mu sync.Mutex
	m  map[netip.AddrPort]int
}

func (in *introductions) add(p Peer) {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.m == nil {
		in.m = map[netip.AddrPort]int{}
	}
	in.m[p.Contact]++
}

func (in *introductions) has(a netip.AddrPort) bool {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.m[a] > 0
}

// waitUntil polls cond until it holds; the deadline only ends a test that
// would otherwise hang.
func waitUntil(t *testing.T, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		ok, msg := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s: %s", what, msg)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func peerAddrs(s *Service) []netip.Addr {
	var out []netip.Addr
	for _, p := range s.Peers() {
		out = append(out, p.Contact.Addr().WithZone(""))
	}
	return out
}

// Three services on a dual-stack namespace LAN, on real sockets. Two start
// with an hour between periodic announcements, so a third can learn them
// only from the replies to its hello: it does, on IPv4 and IPv6, and they
// learn it. Nobody lists itself (the cookie), each sees the address its own
// messages leave with, and every peer is introduced with its own DHT port.
// A service bound to one address announces on that family only. A listener
// sees TTL 1 and hop limit 1, and garbage sent to the group is dropped and
// counted.
func TestServiceOnNamespaceLAN(t *testing.T) {
	bed, err := netbed.New(netbed.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := bed.Close(); err != nil {
			t.Error(err)
		}
	})
	seg, err := bed.AddSegment(netbed.SegmentConfig{Name: "lan", Family: netbed.DualStack})
	if err != nil {
		t.Fatal(err)
	}
	var hosts []*netbed.Host
	for _, name := range []string{"a", "b", "c", "d", "e"} {
		h, err := bed.AddHost(name, seg, netbed.LAN)
		if err != nil {
			t.Fatal(err)
		}
		hosts = append(hosts, h)
	}
	slow := Config{Interval: time.Hour}
	svc := make([]*Service, 3)
	intro := make([]*introductions, 3)
	var netsMu sync.Mutex
	var nets [][]netip.Prefix // what a's OnLinks was given
	for i := range 2 {
		cfg := slow
		cfg.PeerPort, cfg.DHTPort = 9977, uint16(7000+i)
		sc := ServiceConfig{Config: cfg}
		if i == 0 {
			sc.OnLinks = func(ps []netip.Prefix) {
				netsMu.Lock()
				defer netsMu.Unlock()
				nets = append(nets, ps)
			}
		}
		svc[i], intro[i] = bedService(t, hosts[i], sc)
	}
	netsMu.Lock()
	if len(nets) != 1 || !slices.Contains(nets[0], seg.Prefix4) || !slices.Contains(nets[0], seg.Prefix6) {
		t.Fatalf("OnLinks was given %v, want once the segment's %v and %v", nets, seg.Prefix4, seg.Prefix6)
	}
	netsMu.Unlock()
	// The listener on d sees the first hellos (it reads TTLs below).
	ttl4, ttl6 := listenTTL(t, hosts[3], IPv4), listenTTL(t, hosts[3], IPv6)
	waitUntil(t, "a and b to hear each other", func() (bool, string) {
		return len(svc[0].Peers()) == 2 && len(svc[1].Peers()) == 2, fmt.Sprint(peerAddrs(svc[0]), peerAddrs(svc[1]))
	})
	// Let both finish their two hellos: c's hello is then answered by replies.
	waitUntil(t, "a's and b's second hellos", func() (bool, string) {
		sa, sb := svc[0].Stats(), svc[1].Stats()
		return sa.Sent[KindHello] == 4 && sb.Sent[KindHello] == 4, fmt.Sprintf("%+v %+v", sa, sb)
	})
	cfg := slow
	cfg.PeerPort, cfg.DHTPort = 9977, 7002
	svc[2], intro[2] = bedService(t, hosts[2], ServiceConfig{Config: cfg})
	waitUntil(t, "c to learn a and b from their replies", func() (bool, string) {
		return len(svc[2].Peers()) == 4 && len(svc[0].Peers()) == 4 && len(svc[1].Peers()) == 4, fmt.Sprint(peerAddrs(svc[2]))
	})
	for i, s := range svc[:3] {
		st := s.Stats()
		if st.Sent[KindAnnounce] != 0 {
			t.Fatalf("%s sent a periodic announcement within the hour: %+v", hosts[i].HostName, st)
		}
		if i < 2 && st.Sent[KindReply] == 0 {
			t.Fatalf("%s did not reply to c's hello: %+v", hosts[i].HostName, st)
		}
		if st.Own == 0 || st.DroppedTotal() != 0 {
			t.Fatalf("%s: %+v", hosts[i].HostName, st)
		}
		for _, p := range s.Peers() {
			if p.Cookie == s.Cookie() {
				t.Fatalf("%s lists itself: %+v", hosts[i].HostName, p)
			}
			j := slices.IndexFunc(hosts, func(h *netbed.Host) bool {
				a := p.Contact.Addr().WithZone("")
				return a == h.Addr4() || a == h.Addr6() || a.IsLinkLocalUnicast()
			})
			if j < 0 || j == i || (!p.Contact.Addr().IsLinkLocalUnicast() && p.Contact.Port() != uint16(7000+j)) {
				t.Fatalf("%s: peer %+v is not another service's contact", hosts[i].HostName, p)
			}
			if !intro[i].has(p.Contact) {
				t.Fatalf("%s: peer %v was not introduced", hosts[i].HostName, p.Contact)
			}
		}
		var own []netip.Addr
		for _, l := range s.Links() {
			own = append(own, l.Own)
		}
		if len(own) != 2 || own[0] != hosts[i].Addr4() || own[1] != hosts[i].Addr6() && !own[1].IsLinkLocalUnicast() {
			t.Fatalf("%s: own addresses %v, want %v and %v", hosts[i].HostName, own, hosts[i].Addr4(), hosts[i].Addr6())
		}
	}

	// Bound to its IPv4 address, e announces on IPv4 only, from that address.
	cfg = slow
	cfg.PeerPort, cfg.DHTPort = 9977, 7004
	se, _ := bedService(t, hosts[4], ServiceConfig{Config: cfg, Bind: hosts[4].Addr4()})
	if l := se.Links(); len(l) != 1 || l[0].Family != IPv4 {
		t.Fatalf("bound service links %+v", l)
	}
	waitUntil(t, "a to hear e on IPv4 only", func() (bool, string) {
		n := 0
		for _, p := range svc[0].Peers() {
			if p.Contact.Port() == 7004 {
				n++
				if p.Contact.Addr() != hosts[4].Addr4() {
					return false, fmt.Sprint(p)
				}
			}
		}
		return n == 1, fmt.Sprint(peerAddrs(svc[0]))
	})

	if ttl := <-ttl4; ttl != 1 {
		t.Fatalf("IPv4 TTL %d, want 1", ttl)
	}
	if hl := <-ttl6; hl != 1 {
		t.Fatalf("IPv6 hop limit %d, want 1", hl)
	}

	// Garbage to the group from d: dropped and counted by everyone.
	before := svc[0].Stats().Dropped[DropMalformed]
	if err := hosts[3].Do(func() error {
		g, err := listenGroup(IPv4, Port, netip.Addr{})
		if err != nil {
			return err
		}
		defer g.close()
		return g.send(ifindex(t, hosts[3]), []byte("BT-SEARCH * HTTP/1.1\r\nHost: 239.192.152.143:9976\r\n\r\n"))
	}); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "a to count the garbage", func() (bool, string) {
		st := svc[0].Stats()
		return st.Dropped[DropMalformed] == before+1, fmt.Sprintf("%+v", st)
	})
	if n := len(svc[0].Peers()); n != 5 {
		t.Fatalf("a lists %d peers after the garbage, want 5 (b and c on both families, e)", n)
	}

	// With Families IPv6 (ADDRESS_FAMILIES = ipv6), d joins the IPv6 group
	// only: a hears it there and nowhere else.
	cfg = slow
	cfg.PeerPort, cfg.DHTPort = 9977, 7003
	sd, _ := bedService(t, hosts[3], ServiceConfig{Config: cfg, Families: []Family{IPv6}})
	if l := sd.Links(); len(l) != 1 || l[0].Family != IPv6 {
		t.Fatalf("IPv6-only service links %+v", l)
	}
	waitUntil(t, "a to hear d on IPv6 only", func() (bool, string) {
		n := 0
		for _, p := range svc[0].Peers() {
			if p.Contact.Port() == 7003 {
				n++
				if FamilyOf(p.Contact.Addr()) != IPv6 {
					return false, fmt.Sprint(p)
				}
			}
		}
		return n == 1, fmt.Sprint(peerAddrs(svc[0]))
	})
	if st := sd.Stats(); st.Sent[KindHello] == 0 || st.SendErrors != 0 {
		t.Fatalf("IPv6-only service: %+v", st)
	}
}

func ifindex(t *testing.T, h *netbed.Host) int {
	var idx int
	if err := h.Do(func() error {
		ifs, err := SystemInterfaces()
		if err != nil || len(ifs) == 0 {
			return fmt.Errorf("no interface: %v", err)
		}
		idx = ifs[0].Index
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return idx
}

// listenTTL joins the group on h's interface and reports the TTL (or hop
// limit) of the first datagram that arrives.
func listenTTL(t *testing.T, h *netbed.Host, fam Family) <-chan int {
	t.Helper()
	var g *groupConn
	if err := h.Do(func() (err error) {
		g, err = listenGroup(fam, Port, netip.Addr{})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.close() })
	if err := g.membership(ifindex(t, h), true); err != nil {
		t.Fatal(err)
	}
	rc, err := g.conn.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	rc.Control(func(fd uintptr) {
		if fam == IPv4 {
			err = unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_RECVTTL, 1)
		} else {
			err = unix.SetsockoptInt(int(fd), unix.IPPROTO_IPV6, unix.IPV6_RECVHOPLIMIT, 1)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	ch := make(chan int, 1)
	go func() {
		buf, oob := make([]byte, 2048), make([]byte, 256)
		_ = g.conn.SetReadDeadline(time.Now().Add(30 * time.Second))
		_, oobn, _, _, err := g.conn.ReadMsgUDPAddrPort(buf, oob)
		if err != nil {
			ch <- -1
			return
		}
		msgs, _ := unix.ParseSocketControlMessage(oob[:oobn])
		for _, m := range msgs {
			if (m.Header.Type == unix.IP_TTL || m.Header.Type == unix.IPV6_HOPLIMIT) && len(m.Data) >= 4 {
				ch <- int(binary.NativeEndian.Uint32(m.Data))
				return
			}
		}
		ch <- -2
	}()
	return ch
}
