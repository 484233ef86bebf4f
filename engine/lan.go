package engine

import (
	"net/netip"
	"slices"
	"time"

	"github.com/apt-p2p/apt-p2p/kbucket"
	"github.com/apt-p2p/apt-p2p/wire"
)

// Introduce pings addr, the contact of a node found outside the DHT (LAN
// discovery, package internal/lan) whose ID is not known yet. If it answers,
// it enters the routing table as any node that answered a request of ours
// does, and the node pinged learns us from the request. It returns false,
// sending nothing, when the table would refuse the address (of the other
// family — a dual-stack node introduces each contact to the core of its
// family —, an IPv6 link-local one, or private without LOCAL_OK), when a
// node of the table already has it, or when a ping to it is in flight.
func (c *Core) Introduce(now time.Time, addr netip.AddrPort) bool {
	if c.closed {
		return false
	}
	addr = netip.AddrPortFrom(addr.Addr().Unmap(), addr.Port())
	a := addr.Addr()
	if !c.inFamily(a) || a.Zone() != "" || a.IsLinkLocalUnicast() || !kbucket.AddrPortAllowed(addr, c.cfg.LocalOK) {
		return false
	}
	for _, n := range c.table.Nodes(nil) {
		if n.Addr == addr {
			return false
		}
	}
	for i := range c.txns.slots {
		if t := &c.txns.slots[i]; t.inUse && t.to == addr && t.method == wire.MethodPing {
			return false
		}
	}
	c.ping(now, wire.ID{}, addr, purposePing, false)
	return true
}

// SetLANPrefixes gives the subnets LAN discovery runs on; the core keeps
// those of its family. A query or a probe from there is no evidence that
// nodes elsewhere can reach us (reach.go, onLink): LAN peers ping every
// daemon they hear at once, before it has sent them anything.
func (c *Core) SetLANPrefixes(ps []netip.Prefix) {
	c.lanNets = c.lanNets[:0]
	for _, p := range ps {
		// Interface subnets are never IPv4-mapped: one would be of neither family here.
		if !p.IsValid() || p.Addr().Is4In6() || FamilyOf(p.Addr()) != c.cfg.Family {
			continue
		}
		p = netip.PrefixFrom(p.Addr().WithZone(""), p.Bits()).Masked()
		if p.IsValid() && !slices.Contains(c.lanNets, p) {
			c.lanNets = append(c.lanNets, p)
		}
	}
}

// onLAN reports whether ip (unmapped) is in a LAN discovery subnet or is an
// IPv6 link-local address (on a link of ours by definition).
func (c *Core) onLAN(ip netip.Addr) bool {
	if ip.Is6() && ip.IsLinkLocalUnicast() {
		return true
	}
	ip = ip.WithZone("")
	for _, p := range c.lanNets {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// Introduce hands addr to the core's Introduce on the event loop, without
// waiting. On a dual-stack node each Node introduces to its own core: use
// the Node of addr's family (IPv4, IPv6).
func (n *Node) Introduce(addr netip.AddrPort) {
	n.do(func(now time.Time) { n.core.Introduce(now, addr) })
}

// SetLANPrefixes gives the LAN discovery subnets to every core this Node's
// loop runs (both of a dual-stack node), each keeping its family's.
func (n *Node) SetLANPrefixes(ps []netip.Prefix) {
	ps = slices.Clone(ps)
	n.do(func(time.Time) {
		for _, c := range n.cores() {
			c.SetLANPrefixes(ps)
		}
	})
}
