package engine

import (
	"net/netip"
	"time"

	"github.com/apt-p2p/apt-p2p/kbucket"
	"github.com/apt-p2p/apt-p2p/wire"
)

// Introduce pings addr, the contact of a node found outside the DHT (LAN
// discovery, package internal/lan) whose ID is not known yet. If it answers,
// it enters the routing table as any node that answered a request of ours
// does, and the node pinged learns us from the request. It returns false,
// sending nothing, when the table would refuse the address (not IPv4 — the
// compact formats are IPv4-only —, or private without LOCAL_OK), when a
// node of the table already has it, or when a ping to it is in flight.
func (c *Core) Introduce(now time.Time, addr netip.AddrPort) bool {
	if c.closed {
		return false
	}
	addr = netip.AddrPortFrom(addr.Addr().Unmap(), addr.Port())
	if !addr.Addr().Is4() || !kbucket.AddrPortAllowed(addr, c.cfg.LocalOK) {
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

// Introduce hands addr to the core's Introduce on the event loop, without
// waiting.
func (n *Node) Introduce(addr netip.AddrPort) {
	n.do(func(now time.Time) { n.core.Introduce(now, addr) })
}
