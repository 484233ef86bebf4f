package kbucket

import (
	"net/netip"
	"testing"
)

// The ranges AddrAllowed implements, as prefixes: the oracle for its
// octet tests.
var (
	localPrefixes = []netip.Prefix{
		netip.MustParsePrefix("10.0.0.0/8"),
		netip.MustParsePrefix("172.16.0.0/12"),
		netip.MustParsePrefix("192.168.0.0/16"),
		netip.MustParsePrefix("127.0.0.0/8"),
		netip.MustParsePrefix("169.254.0.0/16"),
		netip.MustParsePrefix("100.64.0.0/10"),
		netip.MustParsePrefix("::1/128"),
		netip.MustParsePrefix("fe80::/10"),
		netip.MustParsePrefix("fec0::/10"),
		netip.MustParsePrefix("fc00::/7"),
	}
	neverPrefixes = []netip.Prefix{
		netip.MustParsePrefix("0.0.0.0/8"),
		netip.MustParsePrefix("224.0.0.0/4"),
		netip.MustParsePrefix("240.0.0.0/4"),
		netip.MustParsePrefix("::/128"),
		netip.MustParsePrefix("ff00::/8"),
	}
)

func oracleAllowed(a netip.Addr, allowLocal bool) bool {
	if !a.IsValid() {
		return false
	}
	a = a.Unmap().WithZone("")
	for _, p := range neverPrefixes {
		if p.Contains(a) {
			return false
		}
	}
	if allowLocal {
		return true
	}
	for _, p := range localPrefixes {
		if p.Contains(a) {
			return false
		}
	}
	return true
}

func TestAddrAllowedMatchesPrefixes(t *testing.T) {
	r := newRand(60)
	var addrs []netip.Addr
	// Both edges of every range, and their neighbours outside it.
	for _, p := range append(append([]netip.Prefix{}, localPrefixes...), neverPrefixes...) {
		lo := p.Masked().Addr()
		hi := lo
		for i := p.Bits(); i < lo.BitLen(); i++ {
			b := hi.AsSlice()
			b[i/8] |= 0x80 >> uint(i%8)
			hi, _ = netip.AddrFromSlice(b)
		}
		addrs = append(addrs, lo, hi, lo.Prev(), hi.Next())
	}
	for range 200000 {
		var b [16]byte
		for i := range b {
			b[i] = byte(r.Uint32())
		}
		switch r.IntN(4) {
		case 0:
			addrs = append(addrs, netip.AddrFrom4([4]byte(b[:4])))
		case 1:
			addrs = append(addrs, netip.AddrFrom16(b))
		case 2: // IPv4-mapped
			b[10], b[11] = 0xff, 0xff
			copy(b[:10], make([]byte, 10))
			addrs = append(addrs, netip.AddrFrom16(b))
		case 3: // the first octets that matter
			b[0] = []byte{0, 10, 100, 127, 169, 172, 192, 224, 240, 255, 0xfc, 0xfd, 0xfe, 0xff}[r.IntN(14)]
			if r.IntN(2) == 0 {
				addrs = append(addrs, netip.AddrFrom4([4]byte(b[:4])))
			} else {
				addrs = append(addrs, netip.AddrFrom16(b).WithZone("eth0"))
			}
		}
	}
	for _, a := range addrs {
		for _, local := range []bool{false, true} {
			if got, want := AddrAllowed(a, local), oracleAllowed(a, local); got != want {
				t.Fatalf("AddrAllowed(%v, %v) = %v, prefixes say %v", a, local, got, want)
			}
		}
	}
	if AddrAllowed(netip.Addr{}, true) {
		t.Error("zero Addr allowed")
	}
}
