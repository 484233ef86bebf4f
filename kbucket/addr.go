package kbucket

import "net/netip"

// Prefixes of addresses that are local to a site or a machine: refused
// unless local addresses are allowed (LOCAL_OK). The original's regex knew
// only the RFC 1918 ranges and 127/8 (§8.2 item 14).
var localPrefixes = [...]netip.Prefix{
	netip.MustParsePrefix("10.0.0.0/8"),     // RFC 1918
	netip.MustParsePrefix("172.16.0.0/12"),  // RFC 1918
	netip.MustParsePrefix("192.168.0.0/16"), // RFC 1918
	netip.MustParsePrefix("127.0.0.0/8"),    // loopback
	netip.MustParsePrefix("169.254.0.0/16"), // link-local
	netip.MustParsePrefix("100.64.0.0/10"),  // carrier-grade NAT (RFC 6598)
	netip.MustParsePrefix("::1/128"),        // loopback
	netip.MustParsePrefix("fe80::/10"),      // link-local
	netip.MustParsePrefix("fc00::/7"),       // unique local
	netip.MustParsePrefix("fec0::/10"),      // site-local (deprecated by RFC 3879, still local)
}

// Prefixes that can never be a peer's unicast address, refused even when
// local addresses are allowed: sending to them is at best useless
// (unspecified, "this network") and at worst a reflection towards a whole
// group (multicast, broadcast).
var neverPrefixes = [...]netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),   // "this network", includes 0.0.0.0
	netip.MustParsePrefix("224.0.0.0/4"), // multicast
	netip.MustParsePrefix("240.0.0.0/4"), // reserved, includes 255.255.255.255
	netip.MustParsePrefix("::/128"),      // unspecified
	netip.MustParsePrefix("ff00::/8"),    // multicast
}

// AddrAllowed reports whether a may be a DHT peer's address. IPv4-mapped
// IPv6 addresses are judged by their IPv4 form. Private, loopback,
// link-local, CGNAT and unique-local addresses are allowed only when
// allowLocal is set; unspecified, "this network", multicast, reserved and
// broadcast addresses never are.
func AddrAllowed(a netip.Addr, allowLocal bool) bool {
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

// AddrPortAllowed is AddrAllowed that also refuses port 0.
func AddrPortAllowed(ap netip.AddrPort, allowLocal bool) bool {
	return ap.Port() != 0 && AddrAllowed(ap.Addr(), allowLocal)
}
