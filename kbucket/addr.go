package kbucket

import "net/netip"

// AddrAllowed reports whether a may be a DHT peer's address. IPv4-mapped
// IPv6 addresses are judged by their IPv4 form.
//
// Refused unless allowLocal (LOCAL_OK) is set, because a peer elsewhere
// cannot reach them: RFC 1918 (10/8, 172.16/12, 192.168/16), loopback
// (127/8, ::1), link-local (169.254/16, fe80::/10), carrier-grade NAT
// (100.64/10), unique-local (fc00::/7) and the deprecated site-local
// fec0::/10. The original's regex knew only RFC 1918 and 127/8 (§8.2
// item 14).
//
// Always refused, because they are never one peer's unicast address and
// sending to them is useless or a reflection towards a whole group:
// unspecified and "this network" (0/8, ::), multicast (224/4, ff00::/8),
// reserved 240/4 and the broadcast address.
//
// It runs on every packet that carries a node, so it tests octets rather
// than looping over netip.Prefix values; addr_test.go checks it against the
// prefix lists.
func AddrAllowed(a netip.Addr, allowLocal bool) bool {
	if !a.IsValid() {
		return false
	}
	a = a.Unmap()
	if a.Is4() {
		b := a.As4()
		if b[0] == 0 || b[0] >= 224 {
			return false
		}
		if allowLocal {
			return true
		}
		switch b[0] {
		case 10, 127:
			return false
		case 100:
			return b[1]&0xc0 != 64
		case 169:
			return b[1] != 254
		case 172:
			return b[1]&0xf0 != 16
		case 192:
			return b[1] != 168
		}
		return true
	}
	b := a.As16()
	if b[0] == 0xff || a.IsUnspecified() {
		return false
	}
	if allowLocal {
		return true
	}
	switch {
	case a.IsLoopback(),
		b[0]&0xfe == 0xfc,                 // fc00::/7
		b[0] == 0xfe && b[1]&0x80 == 0x80: // fe80::/10 and fec0::/10
		return false
	}
	return true
}

// AddrPortAllowed is AddrAllowed that also refuses port 0.
func AddrPortAllowed(ap netip.AddrPort, allowLocal bool) bool {
	return ap.Port() != 0 && AddrAllowed(ap.Addr(), allowLocal)
}
