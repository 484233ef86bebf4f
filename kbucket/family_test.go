package kbucket

import (
	"net/netip"
	"testing"
	"time"

	"github.com/apt-p2p/apt-p2p/wire"
)

// v6Addr returns a distinct IPv6 address for node number i (2001:db8::/32
// is documentation space, which the table takes as a public address).
func v6Addr(i int) netip.AddrPort {
	a := [16]byte{0x20, 0x01, 0x0d, 0xb8, 13: byte(i >> 16), 14: byte(i >> 8), 15: byte(i)}
	return netip.AddrPortFrom(netip.AddrFrom16(a), 6881)
}

// A table of one family refuses the other's addresses, an IPv6 table
// IPv4-mapped and link-local ones too (whatever AllowLocal says), and an
// unrestricted table keeps taking both.
func TestFamilyRestriction(t *testing.T) {
	r := newRand(7)
	for _, tc := range []struct {
		fam   Family
		local bool
		addr  string
		ok    bool
	}{
		{IPv4Only, false, "11.0.0.1:6881", true},
		{IPv4Only, false, "[::ffff:11.0.0.1]:6881", true},
		{IPv4Only, false, "[2001:db8::1]:6881", false},
		{IPv6Only, false, "[2001:db8::1]:6881", true},
		{IPv6Only, false, "11.0.0.1:6881", false},
		{IPv6Only, false, "[::ffff:11.0.0.1]:6881", false},
		{IPv6Only, true, "[fd42:0:0:1::11]:6881", true},
		{IPv6Only, true, "[fe80::1]:6881", false},
		{IPv6Only, true, "[fe80::1%eth0]:6881", false},
		{AnyFamily, false, "[2001:db8::1]:6881", true},
		{AnyFamily, false, "11.0.0.1:6881", true},
	} {
		tb := New(randID(r), Config{Family: tc.fam, AllowLocal: tc.local})
		res, _ := tb.Insert(Node{ID: randID(r), Addr: netip.MustParseAddrPort(tc.addr)}, true, at(1))
		if (res == Added) != tc.ok || (res == Ignored) == tc.ok {
			t.Errorf("family %d, %s: %v", tc.fam, tc.addr, res)
		}
	}
}

// An IPv6-only table behaves as an IPv4 one on the fake clock: it fills,
// splits around our ID, orders by last seen, answers Closest by XOR
// distance, counts failures and lists stale buckets.
func TestIPv6Table(t *testing.T) {
	r := newRand(11)
	self := randID(r)
	tb := New(self, Config{Family: IPv6Only})
	for i := range 400 {
		tb.Insert(Node{ID: randID(r), Addr: v6Addr(i)}, true, at(i))
	}
	checkInvariants(t, tb)
	if tb.Len() < 2*DefaultK || tb.NumBuckets() < 3 {
		t.Fatalf("%d nodes in %d buckets", tb.Len(), tb.NumBuckets())
	}
	target := randID(r)
	got := tb.Closest(nil, target, DefaultK)
	all := tb.Nodes(nil)
	for _, n := range got {
		if !n.Addr.Addr().Is6() || n.Addr.Addr().Is4In6() {
			t.Fatalf("non-IPv6 node %v", n)
		}
	}
	// Closest really is the K nearest of everything held.
	for _, n := range all {
		if target.CloserTo(n.ID, got[len(got)-1].ID) && !containsID(got, n.ID) {
			t.Fatalf("%x is closer than the last of Closest but missing", n.ID)
		}
	}
	victim := got[0]
	for range DefaultMaxFailures {
		tb.Failed(victim.ID)
	}
	if _, ok := tb.Get(victim.ID); ok {
		t.Fatal("node kept after MaxFailures failures")
	}
	checkInvariants(t, tb)
	stale := tb.StaleBuckets(nil, at(400).Add(2*time.Hour), time.Hour, func(b []byte) {
		for i := range b {
			b[i] = byte(r.Uint32())
		}
	})
	if len(stale) != tb.NumBuckets() {
		t.Fatalf("%d stale of %d buckets two hours on", len(stale), tb.NumBuckets())
	}
}

func containsID(ns []Node, id wire.ID) bool {
	for _, n := range ns {
		if n.ID == id {
			return true
		}
	}
	return false
}
