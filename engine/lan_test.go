package engine

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/apt-p2p/apt-p2p/wire"
)

// Two bootstrap nodes that know nothing of each other (no BOOTSTRAP, as on a
// LAN found by multicast): introducing one to the other puts each in the
// other's table, and a value stored by one is found by the other.
func TestIntroduce(t *testing.T) {
	cfg := testConfig()
	cfg.BootstrapNode = true
	a, b := startNode(t, cfg), startNode(t, cfg)
	mustJoin(t, a)
	mustJoin(t, b)
	a.Introduce(b.Addr())
	eventually(t, 10*time.Second, "both tables to hold the other", func() bool { return tableLen(a) == 1 && tableLen(b) == 1 })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	key := sha1Key("introduced")
	if r, err := a.Put(ctx, key, []byte("v")); err != nil || r.Stored == 0 {
		t.Fatalf("put: %+v %v", r, err)
	}
	vals, err := b.GetValues(ctx, key)
	if err != nil || len(vals) != 1 || string(vals[0]) != "v" {
		t.Fatalf("get: %q %v", vals, err)
	}
}

// What Introduce refuses: addresses the table would refuse, contacts
// already in the table, and a second introduction while the first ping is
// in flight. Each refusal sends nothing.
func TestIntroduceRefuses(t *testing.T) {
	cfg := testConfig()
	cfg.LocalOK = false
	out := &captureOut{}
	c, err := New(cfg, out)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1000, 0)
	c.Start(now, nil)
	out.pkts = nil
	for _, a := range []string{"127.0.0.1:9977", "192.168.1.5:9977", "[2001:db8::1]:9977", "198.51.100.7:0"} {
		if c.Introduce(now, netip.MustParseAddrPort(a)) {
			t.Errorf("%s was introduced without LOCAL_OK", a)
		}
	}
	if len(out.pkts) != 0 {
		t.Fatalf("sent %d packets for refused introductions", len(out.pkts))
	}
	pub := netip.MustParseAddrPort("198.51.100.7:9977")
	if !c.Introduce(now, pub) || len(out.pkts) != 1 || out.to[0] != pub {
		t.Fatalf("a public address: sent to %v", out.to)
	}
	if c.Introduce(now, pub) {
		t.Fatal("introduced again while the first ping is in flight")
	}
	c.Table().Insert(kbucketNode(sha1Key("x"), netip.MustParseAddrPort("198.51.100.8:9977")), true, now)
	if c.Table().Len() != 1 {
		t.Fatal("test bug: the node did not enter the table")
	}
	if c.Introduce(now, netip.MustParseAddrPort("198.51.100.8:9977")) {
		t.Fatal("introduced a contact the table holds")
	}
}

type captureOut struct {
	pkts [][]byte
	to   []netip.AddrPort
}

func (o *captureOut) Send(to netip.AddrPort, pkt []byte) {
	o.pkts = append(o.pkts, append([]byte(nil), pkt...))
	o.to = append(o.to, to)
}

// On a dual-stack node each family's core takes the LAN peers of its
// family only: the IPv6 core refuses IPv4 contacts and link-local ones, the
// IPv4 core IPv6 contacts; an introduction on the IPv6 network puts both
// nodes in each other's IPv6 table and nothing in the IPv4 ones.
func TestIntroduceFamilies(t *testing.T) {
	n := newFamNet(t)
	a, b := n.add(DualStack, true), n.add(DualStack, true)
	n.start(a)
	n.start(b)
	n.run(time.Second)
	for _, ap := range []netip.AddrPort{b.addr4, netip.MustParseAddrPort("[fe80::1%eth0]:9977"), netip.MustParseAddrPort("[fe80::1]:9977")} {
		if a.c6.Introduce(n.now, ap) {
			t.Errorf("the IPv6 core introduced %v", ap)
		}
	}
	if a.c4.Introduce(n.now, b.addr6) {
		t.Errorf("the IPv4 core introduced %v", b.addr6)
	}
	if len(n.queue) != 0 {
		t.Fatalf("refused introductions sent %d datagrams", len(n.queue))
	}
	if !a.c6.Introduce(n.now, b.addr6) {
		t.Fatal("the IPv6 core refused an IPv6 contact")
	}
	n.run(time.Second)
	if a.c6.Table().Len() != 1 || b.c6.Table().Len() != 1 {
		t.Fatalf("IPv6 tables: %d and %d nodes, want 1 each", a.c6.Table().Len(), b.c6.Table().Len())
	}
	for _, h := range []*famHost{a, b} {
		for _, nd := range h.c6.Table().Nodes(nil) {
			if nd.Addr != a.addr6 && nd.Addr != b.addr6 {
				t.Fatalf("IPv6 table holds %v", nd.Addr)
			}
		}
	}
	if !b.c4.Introduce(n.now, a.addr4) {
		t.Fatal("the IPv4 core refused an IPv4 contact")
	}
	n.run(time.Second)
	if a.c4.Table().Len() != 1 || b.c4.Table().Len() != 1 {
		t.Fatalf("IPv4 tables: %d and %d nodes, want 1 each", a.c4.Table().Len(), b.c4.Table().Len())
	}
}

// LAN peers are no evidence of reachability: a daemon heard on the LAN
// pings us at once, before we have sent it anything, and from a LAN wider
// than the /24 the interface-address rule covers that query looked
// unsolicited. With the LAN's subnets given (SetLANPrefixes), queries from
// there count for nothing, in both families, nor are LAN peers asked to
// probe us; a query from elsewhere still counts.
func TestLANPeersNoReachEvidence(t *testing.T) {
	var tid, pid wire.ID
	copy(pid[:], "some-peer-id-0000001")
	for _, tc := range []struct {
		fam        Family
		own, peer  string
		lan, other string
	}{
		{IPv4, "10.20.1.5", "10.20.9.9:9977", "10.20.1.5/16", "198.51.100.1:9977"},
		{IPv6, "fd42:0:0:7::5", "[fd42:0:0:7::99]:9977", "fd42:0:0:7::5/64", "[2001:db8::1]:9977"},
	} {
		for _, given := range []bool{false, true} {
			c, out := newTestCore(t, func(c *Config) {
				c.BootstrapNode, c.Reach.Probe, c.LocalOK, c.Family = true, true, true, tc.fam
			})
			c.SetInterfaceAddrs([]netip.Addr{netip.MustParseAddr(tc.own)})
			if given {
				c.SetLANPrefixes([]netip.Prefix{netip.MustParsePrefix(tc.lan), netip.MustParsePrefix("192.0.2.0/24"), netip.MustParsePrefix("2001:db8:ffff::/48")})
				if len(c.lanNets) != 2 {
					t.Fatalf("%v core keeps %v", tc.fam, c.lanNets)
				}
			}
			now := time.Unix(1000, 0)
			c.Start(now, nil)
			c.HandlePacket(now.Add(time.Second), netip.MustParseAddrPort(tc.peer), wire.AppendPing(nil, tid, pid))
			got := c.Reach().UDP
			if given && got != ReachUnknown {
				t.Fatalf("%v: a query from the LAN peer %s set UDP %v", tc.fam, tc.peer, got)
			}
			if !given && got != ReachReachable {
				t.Fatalf("%v: test bug: without the LAN's subnets the query from %s did not count (UDP %v)", tc.fam, tc.peer, got)
			}
			if given {
				if !c.onLink(netip.MustParseAddr("fe80::1")) {
					t.Fatal("a link-local address is not on our link")
				}
				c.HandlePacket(now.Add(2*time.Second), netip.MustParseAddrPort(tc.other), wire.AppendPing(nil, tid, pid))
				if s := c.Reach(); s.UDP != ReachReachable || s.Unsolicited != 1 {
					t.Fatalf("%v: a query from elsewhere (%s): %+v", tc.fam, tc.other, s)
				}
			}
			out.take()
		}
	}
}
