package engine

import (
	"net"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/apt-p2p/apt-p2p/wire"
)

// A dual-stack node (Options.Families = DualStack on a socket bound to
// every address) runs an IPv4 core and an IPv6 core, paired (Pair), on one
// event loop fed by one dual-stack socket: the loop hands each datagram to
// the core of its sender's family. Start returns the IPv4 core's Node;
// Other gives the IPv6 one. Both Nodes share the loop, the socket, the
// node ID and the state file, which holds both routing tables.

// listenNetwork is the network Start listens on for the families wanted:
// "udp6" for IPv6 only (no IPv4-mapped traffic reaches an IPv6-only node),
// otherwise "udp", which for an unspecified address is a dual-stack socket
// where the system has IPv6, and an IPv4 one where it has not.
func listenNetwork(fams Family) string {
	if fams == IPv6 {
		return "udp6"
	}
	return "udp"
}

// ListenUDPFamily opens a UDPTransport on addr for the given families
// (ListenUDP is ListenUDPFamily(addr, 0)).
func ListenUDPFamily(addr string, fams Family) (*UDPTransport, error) {
	network := listenNetwork(fams)
	ua, err := net.ResolveUDPAddr(network, addr)
	if err != nil {
		return nil, err
	}
	c, err := net.ListenUDP(network, ua)
	if err != nil {
		return nil, err
	}
	c.SetReadBuffer(4 << 20)
	c.SetWriteBuffer(4 << 20)
	return &UDPTransport{conn: c}, nil
}

// runFamilies decides which cores run on a socket bound to local, given the
// families asked for (zero: the configured one) and the core's configured
// family. A socket bound to an IPv4 address (or an IPv4 socket, on a system
// without IPv6) carries IPv4 only; one bound to a specific IPv6 address,
// IPv6 only; an unspecified IPv6 socket both, if both were asked for.
func runFamilies(asked, configured Family, local netip.Addr) Family {
	switch {
	case local.Is4() || local.Is4In6():
		return IPv4
	case wire.IsIPv6(local) && !local.IsUnspecified():
		return IPv6
	case asked == 0:
		if configured == IPv6 {
			return IPv6
		}
		return IPv4
	}
	return asked
}

// dualCore is what the loop drives for a dual-stack node.
type dualCore struct{ c4, c6 *Core }

func (d dualCore) HandlePacket(now time.Time, from netip.AddrPort, pkt []byte) {
	if wire.IsIPv6(from.Addr()) {
		d.c6.HandlePacket(now, from, pkt)
		return
	}
	d.c4.HandlePacket(now, from, pkt)
}

func (d dualCore) Tick(now time.Time) {
	d.c4.Tick(now)
	d.c6.Tick(now)
}

func (d dualCore) NextDeadline() (time.Time, bool) {
	a, aok := d.c4.NextDeadline()
	b, bok := d.c6.NextDeadline()
	switch {
	case !aok:
		return b, bok
	case !bok || a.Before(b):
		return a, true
	}
	return b, true
}

func (d dualCore) Closed() bool { return d.c4.Closed() && d.c6.Closed() }

// Family is the address family of this Node's core.
func (n *Node) Family() Family { return n.core.Family() }

// Other is the other family's Node of a dual-stack node (the IPv6 one for
// the Node Start returned), sharing its loop and socket; nil otherwise.
func (n *Node) Other() *Node { return n.other }

// IPv6 is the Node of the IPv6 network: n itself for an IPv6-only node, the
// other Node of a dual-stack one, nil for an IPv4-only one.
func (n *Node) IPv6() *Node {
	if n.Family() == IPv6 {
		return n
	}
	return n.other
}

// IPv4 is the Node of the IPv4 network, or nil.
func (n *Node) IPv4() *Node {
	if n.Family() == IPv4 {
		return n
	}
	return n.other
}

// closeCores saves and closes this Node's core and its sibling's (on the
// loop): closing either Node of a dual-stack pair closes both.
func (n *Node) closeCores() error {
	err := n.core.SaveState()
	if o := n.other; o != nil {
		if e := o.core.SaveState(); err == nil {
			err = e
		}
		o.core.Close()
	}
	n.core.Close()
	return err
}

// cores are the cores this Node's loop runs.
func (n *Node) cores() []*Core {
	if n.other != nil {
		return []*Core{n.core, n.other.core}
	}
	return []*Core{n.core}
}

// pairState keeps both routing tables of a dual-stack node in one state
// file (one node ID, the nodes of both families): each core saves its own
// family's nodes, and the file gets the latest of both.
type pairState struct {
	inner StateStore

	once    sync.Once
	loaded  *State
	loadErr error

	mu    sync.Mutex
	id    wire.ID
	nodes [2][]wire.Node // IPv4, IPv6
}

func famIndex(f Family) int {
	if f == IPv6 {
		return 1
	}
	return 0
}

func (p *pairState) load() (*State, error) {
	p.once.Do(func() {
		p.loaded, p.loadErr = p.inner.Load()
		if p.loaded != nil {
			// Until a core saves, the file keeps what it had of that family.
			p.id = p.loaded.ID
			for _, n := range p.loaded.Nodes {
				i := famIndex(FamilyOf(n.Addr.Addr()))
				p.nodes[i] = append(p.nodes[i], n)
			}
		}
	})
	return p.loaded, p.loadErr
}

// half is the StateStore of one family's core.
func (p *pairState) half(f Family) StateStore { return pairHalf{p, f} }

type pairHalf struct {
	p *pairState
	f Family
}

func (h pairHalf) Load() (*State, error) {
	st, err := h.p.load()
	if st == nil {
		return nil, err
	}
	out := &State{ID: st.ID}
	for _, n := range st.Nodes {
		if FamilyOf(n.Addr.Addr()) == h.f {
			out.Nodes = append(out.Nodes, n)
		}
	}
	return out, err
}

func (h pairHalf) Save(st *State) error {
	p := h.p
	p.mu.Lock()
	p.id = st.ID
	p.nodes[famIndex(h.f)] = slices.Clone(st.Nodes)
	all := &State{ID: p.id, Nodes: slices.Concat(p.nodes[0], p.nodes[1])}
	p.mu.Unlock()
	return p.inner.Save(all)
}
