package kbucket

import "net/netip"

// Family restricts a table to one address family. A dual-stack node keeps
// one table per family, as BEP 32 has it: the two networks are separate, and
// a node of one family is handed on only in that family's compact form.
type Family uint8

const (
	AnyFamily Family = iota // no restriction (the zero value)
	IPv4Only                // IPv4 addresses, IPv4-mapped ones included (they are stored unmapped)
	IPv6Only                // IPv6 addresses other than IPv4-mapped and link-local ones
)

// holds reports whether a node at address a may be in a table of family f.
// An IPv6 table refuses link-local addresses (fe80::/10) even with
// AllowLocal: they are usable only with their zone, which the 38-byte
// compact form cannot carry, so handing one on would hand on a dead node.
func (f Family) holds(a netip.Addr) bool {
	switch f {
	case IPv4Only:
		return a.Is4() || a.Is4In6()
	case IPv6Only:
		return a.Is6() && !a.Is4In6() && !a.IsLinkLocalUnicast()
	}
	return true
}
