package node

import (
	"net/netip"

	"github.com/apt-p2p/apt-p2p/internal/lan"
	"github.com/apt-p2p/apt-p2p/kbucket"
)

// lanDiscovery is the node's LAN discovery (issue 13 item 3): the daemons
// heard on the LAN are introduced to the DHT, which pings them into its
// routing table, so a LAN with no BOOTSTRAP forms a DHT of its own.
type lanDiscovery struct {
	svc *lan.Service // nil when off or when it could not start
	err error        // why it could not start
}

// startLAN starts LAN discovery when LAN_DISCOVERY is on and the apt-p2p DHT
// is in use. A failure (no multicast on this system) is logged and shown on
// the status page; the daemon runs on without it.
func (n *Node) startLAN() {
	if !n.cfg.LAN.Discovery || !n.cfg.Mainline.AptP2P() {
		return
	}
	svc, err := lan.Start(lan.ServiceConfig{
		Config:    lan.Config{PeerPort: uint16(n.cfg.Port), DHTPort: n.dht.Addr().Port()},
		Bind:      n.cfg.Bind,
		Introduce: func(p lan.Peer) { n.dht.Introduce(p.Contact) },
		Logger:    n.log.With("part", "lan"),
	})
	if err != nil {
		n.lan.err = err
		n.log.Warn("LAN discovery could not start: peers are found through BOOTSTRAP nodes only", "err", err)
		return
	}
	n.lan.svc = svc
	if links := svc.Links(); len(links) == 0 {
		n.log.Info("LAN discovery: no multicast interface to announce on (yet)", "bind", n.cfg.BindAddress)
	} else {
		n.log.Info("LAN discovery on", "links", len(links), "cookie", svc.Cookie())
	}
}

func (n *Node) closeLAN() error {
	if n.lan.svc == nil {
		return nil
	}
	return n.lan.svc.Close()
}

// LANInfo is LAN discovery's state for the status views.
type LANInfo struct {
	// On: LAN_DISCOVERY is on and the apt-p2p DHT in use. Err says why it
	// is not running although on.
	On    bool
	Err   error
	Links []lan.LinkInfo
	Peers []lan.Peer
	Stats lan.Stats
}

// LAN is LAN discovery's state.
func (n *Node) LAN() LANInfo {
	li := LANInfo{On: n.cfg.LAN.Discovery && n.cfg.Mainline.AptP2P(), Err: n.lan.err}
	if s := n.lan.svc; s != nil {
		li.Links, li.Peers, li.Stats = s.Links(), s.Peers(), s.Stats()
		if li.Err == nil {
			li.Err = s.LastError()
		}
	}
	return li
}

// lanAddr is our address on the LAN where LAN discovery heard the most
// IPv4 peers (the only LAN when there are none yet): what those peers see
// our DHT messages come from. It is the contact when the DHT knows no
// external address (no BOOTSTRAP answered a join, and several interface
// addresses — loopback included — make the engine's guess ambiguous).
func (n *Node) lanAddr() (netip.Addr, bool) {
	s := n.lan.svc
	if s == nil {
		return netip.Addr{}, false
	}
	count := map[lan.Link]int{}
	for _, p := range s.Peers() {
		count[p.Link]++
	}
	var best netip.Addr
	bestN, links := -1, 0
	for _, li := range s.Links() {
		if li.Family != lan.IPv4 {
			continue
		}
		a := li.Own
		if !a.IsValid() && len(li.Addrs) > 0 {
			a = li.Addrs[0].Addr()
		}
		if !a.IsValid() || !kbucket.AddrAllowed(a, n.cfg.DHT.LocalOK) {
			continue
		}
		links++
		if c := count[li.Link]; c > bestN {
			best, bestN = a, c
		}
	}
	if !best.IsValid() || bestN == 0 && links > 1 {
		return netip.Addr{}, false
	}
	return best, true
}
