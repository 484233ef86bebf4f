package engine

import (
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/apt-p2p/apt-p2p/kbucket"
	"github.com/apt-p2p/apt-p2p/wire"
)

// Family is an address family of the DHT, or (as Options.Families) a set of
// them. A Core serves one family: an IPv4 core is the original protocol, an
// IPv6 core its IPv6 network (wire/doc.go, "IPv6"). A dual-stack node runs
// one core of each on one event loop, paired (Pair): two routing tables, two
// value stores, two external-address votes, one node ID.
type Family uint8

// The address families.
const (
	IPv4      Family = 1 << iota // the original network: 26-byte nodes, 6-byte contacts
	IPv6                         // the IPv6 network: nodes6, 38-byte nodes, 18-byte contacts
	DualStack = IPv4 | IPv6
)

func (f Family) String() string {
	switch f {
	case IPv4:
		return "IPv4"
	case IPv6:
		return "IPv6"
	case DualStack:
		return "dual-stack"
	}
	return "none"
}

// MarshalText writes the family's name (stats.json).
func (f Family) MarshalText() ([]byte, error) { return []byte(f.String()), nil }

// UnmarshalText reads what MarshalText writes.
func (f *Family) UnmarshalText(b []byte) error {
	for _, g := range []Family{0, IPv4, IPv6, DualStack} {
		if g.String() == string(b) {
			*f = g
			return nil
		}
	}
	return fmt.Errorf("engine: unknown address family %q", b)
}

// FamilyOf is the family of an address (IPv4-mapped addresses are IPv4).
func FamilyOf(a netip.Addr) Family {
	if wire.IsIPv6(a) {
		return IPv6
	}
	return IPv4
}

// ErrOtherFamily refuses an operation that would put an address of one
// family on the other's network: a value whose contact is of the other
// family (an original IPv4 peer could not parse an 18-byte contact, and an
// IPv6 network has no use for an IPv4 one).
var ErrOtherFamily = errors.New("engine: value contact is of the other address family")

// Family is the address family this core serves.
func (c *Core) Family() Family { return c.cfg.Family }

// Sibling is the other family's core of a dual-stack node, or nil.
func (c *Core) Sibling() *Core { return c.sibling }

// inFamily reports whether a is an address of this core's family.
func (c *Core) inFamily(a netip.Addr) bool { return FamilyOf(a) == c.cfg.Family }

// Pair makes an IPv4 core and an IPv6 core the two halves of one dual-stack
// node: each answers a want for the other family's nodes from the other's
// table, and the IPv6 core asks its peers for IPv4 nodes too and hands them
// to the IPv4 core. Both must be owned by the same goroutine (one event
// loop: the runner's, or the simulator's).
func Pair(c4, c6 *Core) error {
	if c4.cfg.Family != IPv4 || c6.cfg.Family != IPv6 {
		return errors.New("engine: Pair needs an IPv4 core and an IPv6 core")
	}
	c4.sibling, c6.sibling = c6, c4
	return nil
}

// tableFamily is the kbucket restriction of a family's routing table.
func tableFamily(f Family) kbucket.Family {
	if f == IPv6 {
		return kbucket.IPv6Only
	}
	return kbucket.IPv4Only
}

// ownWant is the want flag of this core's own family.
func (c *Core) ownWant() wire.Want {
	if c.cfg.Family == IPv6 {
		return wire.WantN6
	}
	return wire.WantN4
}

// queryWant is the want argument of our find_node and find_value queries:
// none (the family the query goes over) on IPv4, where original peers
// answer an unknown argument with error 204; on the IPv6 network of a
// dual-stack node, both families while its IPv4 table is empty, so that an
// IPv4 network it has no bootstrap address of can still be joined (the
// IPv4 core's own lookups take over from its first node). Every node of the
// IPv6 network speaks the extension.
//
// Asking for longer costs more than it gives. Each IPv4 node offered is
// pinged, and a ping is a request: the node pinged pings back, and a NATed
// pinger, whose NAT lets that answer through, lands in its table on
// probation and times out in its lookups later. In the simulator (2 000
// nodes, half of them NATed; bench/RESULTS.md, ipv6) asking while the IPv4
// table held fewer than 2K nodes made IPv4 lookups fail 8 times as often
// (2 696 of 10 120 requests of 300 find_node lookups, against 318 of
// 10 068) and dual-stack gets 44% slower at the median (1.07 s against
// 0.74 s) than asking only while it is empty.
func (c *Core) queryWant() wire.Want {
	if s := c.sibling; c.cfg.Family == IPv6 && s != nil && s.table.Len() == 0 {
		return wire.WantN4 | wire.WantN6
	}
	return 0
}

// nodesReply appends the nodes of a find_node or find_value reply to the
// requester: the K closest of our own family's table, and of the other
// family's when the query's want asks for them and we run both (BEP 32).
// A query without want gets its own family's list, as the original's do.
func (c *Core) nodesReply(now time.Time, target, requester wire.ID, want wire.Want) ([]wire.Node, wire.Want) {
	if want == 0 {
		want = c.ownWant()
	}
	var lists wire.Want
	c.mixed = c.mixed[:0]
	if want&c.ownWant() != 0 {
		c.mixed = append(c.mixed, c.closestFor(now, target, requester)...)
		lists |= c.ownWant()
	}
	if s := c.sibling; s != nil && !s.closed && want&s.ownWant() != 0 {
		c.mixed = append(c.mixed, s.closestFor(now, target, requester)...)
		lists |= s.ownWant()
	}
	if lists == 0 {
		// Only the other family was wanted, and we do not run it: our
		// own family's nodes are better than an empty reply.
		c.mixed = append(c.mixed, c.closestFor(now, target, requester)...)
		lists = c.ownWant()
	}
	return c.mixed, lists
}

// findNodeReply is the reply to a find_node query.
func (c *Core) findNodeReply(now time.Time, from netip.AddrPort, m *wire.Msg) []byte {
	nodes, want := c.nodesReply(now, m.Target, m.ID, m.Want)
	return wire.AppendFindNodeRespWant(c.buf[:0], m.TID, c.id, nodes, want, c.tok.current(from.Addr()))
}

// findValueReply is the reply to a find_value query.
func (c *Core) findValueReply(now time.Time, m *wire.Msg) []byte {
	nodes, want := c.nodesReply(now, m.Key, m.ID, m.Want)
	return wire.AppendFindValueRespWant(c.buf[:0], m.TID, c.id, nodes, want, c.store.count(m.Key))
}

// replyNodes adds a reply's nodes of our family to a lookup and offers
// those of the other family (which a dual-stack IPv6 core asked for) to the
// sibling core as candidates for its table: they enter it only once they
// answer its verification ping, as a node that sent a request would.
func (l *lookup) replyNodes(c *Core, now time.Time, m *wire.Msg, hop uint8) {
	if c.cfg.Family == IPv6 {
		for i := range m.Nodes6.Len() {
			l.addNode(c, now, m.Nodes6.At(i), hop)
		}
		if s := c.sibling; s != nil && !s.closed {
			for i := range m.Nodes.Len() {
				s.offer(now, m.Nodes.At(i))
			}
		}
		return
	}
	for i := range m.Nodes.Len() {
		l.addNode(c, now, m.Nodes.At(i), hop)
	}
	if s := c.sibling; s != nil && !s.closed {
		for i := range m.Nodes6.Len() {
			s.offer(now, m.Nodes6.At(i))
		}
	}
}

// addNode adds one node of a reply, except ourselves, refused addresses and
// nodes that timed out lately (others still list a node that has gone).
func (l *lookup) addNode(c *Core, now time.Time, n wire.Node, hop uint8) {
	if n.ID == c.id || n.ID.IsZero() || !c.inFamily(n.Addr.Addr()) || !kbucket.AddrPortAllowed(n.Addr, c.cfg.LocalOK) || c.isDead(now, n.Addr) {
		return
	}
	l.add(n.ID, n.Addr, hop)
}

// offer takes a node of this core's family learned by the sibling core.
func (c *Core) offer(now time.Time, n wire.Node) {
	if n.ID == c.id || n.ID.IsZero() || !c.inFamily(n.Addr.Addr()) || !kbucket.AddrPortAllowed(n.Addr, c.cfg.LocalOK) || c.isDead(now, n.Addr) {
		return
	}
	c.st.Offered++
	c.noteNode(now, n.ID, n.Addr, false)
}

// checkValueFamily refuses to put a value whose contact is of the other
// family on this core's network. Values that are not peer values (piece
// strings) carry no address and go to both networks.
func (c *Core) checkValueFamily(value []byte) error {
	var v wire.PeerValue
	if v.Parse(value) != nil {
		return nil
	}
	if FamilyOf(v.Contact.Addr()) != c.cfg.Family {
		return ErrOtherFamily
	}
	return nil
}

// FamilyAddrs keeps the interface addresses of family f that can serve as
// our external address (Core.SetInterfaceAddrs): no loopback address (no
// other machine reaches us there; tests on one machine bind an address),
// and for IPv6 no link-local one (usable only with its zone, which no
// compact form carries). A machine with one LAN address of a family then
// has a contact in it even before any join reply.
func FamilyAddrs(addrs []netip.Addr, f Family) []netip.Addr {
	var out []netip.Addr
	for _, a := range addrs {
		a = a.Unmap()
		if FamilyOf(a) != f || a.IsLoopback() || (f == IPv6 && a.IsLinkLocalUnicast()) {
			continue
		}
		out = append(out, a.WithZone(""))
	}
	return out
}

// joinThroughSibling lets a dual-stack node's empty IPv4 table fill from the
// IPv6 network: when the IPv4 core joins (or rejoins) with no node of its
// own, its joined IPv6 sibling looks up our neighbourhood asking for both
// families (queryWant), and the IPv4 nodes listed are offered to us; the
// next join attempt (RejoinMax at the latest) then finds them in the table.
// The IPv4 network cannot do the same for the IPv6 table: its peers may be
// original ones, which must not be sent a want.
func (c *Core) joinThroughSibling(now time.Time) {
	s := c.sibling
	if s == nil || s.closed || !s.join.joined || c.table.Len() > 0 || s.queryWant()&c.ownWant() == 0 {
		return
	}
	target := c.id
	target[wire.IDLen-1]++
	s.findNode(now, target, nil)
}

// MergeStats sums the counters of a dual-stack node's two cores (a's ID,
// family and external address are kept): what the node did on both
// networks. Joined and Reachable hold if either holds.
func MergeStats(a, b Stats) Stats {
	s := a
	s.Family |= b.Family
	s.Uptime = max(a.Uptime, b.Uptime)
	s.Reachable = a.Reachable || b.Reachable
	s.Joined = a.Joined || b.Joined
	if !s.ExternalAddr.IsValid() {
		s.ExternalAddr = b.ExternalAddr
	}
	s.PacketsIn += b.PacketsIn
	s.PacketsOut += b.PacketsOut
	s.BytesIn += b.BytesIn
	s.BytesOut += b.BytesOut
	for i := range s.Dropped {
		s.Dropped[i] += b.Dropped[i]
	}
	s.ErrorsSent += b.ErrorsSent
	for i := range s.RPC {
		r, o := &s.RPC[i], b.RPC[i]
		r.Sent += o.Sent
		r.Retransmits += o.Retransmits
		r.OK += o.OK
		r.Failed += o.Failed
		r.Received += o.Received
		r.ErrorsReceived += o.ErrorsReceived
		r.OKDelay += o.OKDelay
		r.FailedDelay += o.FailedDelay
	}
	s.Nodes += b.Nodes
	if b.Buckets > s.Buckets {
		s.Buckets, s.EstimatedUsers = b.Buckets, b.EstimatedUsers
	}
	s.Keys += b.Keys
	s.Values += b.Values
	s.ValueBytes += b.ValueBytes
	s.StoresAccepted += b.StoresAccepted
	s.StoresRefused += b.StoresRefused
	s.ValuesExpired += b.ValuesExpired
	s.Lookups += b.Lookups
	s.Gets += b.Gets
	s.GetsDone += b.GetsDone
	s.GetsFound += b.GetsFound
	s.Puts += b.Puts
	s.PutsOK += b.PutsOK
	s.Cancelled += b.Cancelled
	for i := range s.GetLatency.Buckets {
		s.GetLatency.Buckets[i] += b.GetLatency.Buckets[i]
	}
	s.GetLatency.Count += b.GetLatency.Count
	s.GetLatency.Sum += b.GetLatency.Sum
	s.Transactions += b.Transactions
	s.JoinFailures += b.JoinFailures
	s.SaveErrors = max(s.SaveErrors, b.SaveErrors) // one state file: counted by both
	s.Refreshes += b.Refreshes
	s.VerifySkipped += b.VerifySkipped
	s.Offered += b.Offered
	return s
}
