package node

import (
	"net/netip"

	"github.com/apt-p2p/apt-p2p/engine"
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
	// One group per DHT that runs (ADDRESS_FAMILIES): a peer heard on the
	// IPv4 group goes to the IPv4 network, one heard on the IPv6 group to
	// the IPv6 network.
	var fams []lan.Family
	for _, d := range n.dhts() {
		fams = append(fams, lanFamily(d.Family()))
	}
	svc, err := lan.Start(lan.ServiceConfig{
		Config:   lan.Config{PeerPort: uint16(n.cfg.Port), DHTPort: n.dht.Addr().Port()},
		Bind:     n.cfg.Bind,
		Families: fams,
		Introduce: func(p lan.Peer) {
			if d := n.DHTOf(engine.FamilyOf(p.Contact.Addr())); d != nil {
				d.Introduce(p.Contact)
			}
		},
		// LAN peers query us before we have sent them anything: that must
		// not count as evidence of being reachable from elsewhere.
		OnLinks: n.dht.SetLANPrefixes,
		Logger:  n.log.With("part", "lan"),
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

// lanFamily is the LAN discovery family of a DHT family.
func lanFamily(f engine.Family) lan.Family {
	if f == engine.IPv6 {
		return lan.IPv6
	}
	return lan.IPv4
}

// lanAddr is our address of family f on the LAN where LAN discovery heard
// the most peers of that family (the only LAN when there are none yet):
// what those peers see our DHT messages come from. It is the contact of
// that family when the DHT knows no external address of it (no BOOTSTRAP
// answered a join, and several interface addresses make the engine's guess
// ambiguous). An IPv6 link-local address is never one: it means nothing
// without its zone.
func (n *Node) lanAddr(f engine.Family) (netip.Addr, bool) {
	fam := lanFamily(f)
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
		if li.Family != fam {
			continue
		}
		a := li.Own
		if !usable(a) {
			a = netip.Addr{}
			for _, p := range li.Addrs {
				if usable(p.Addr()) {
					a = p.Addr()
					break
				}
			}
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

// usable: an address of ours that peers on the link can reach us at.
func usable(a netip.Addr) bool {
	return a.IsValid() && a.Zone() == "" && !a.IsLinkLocalUnicast() && !a.IsLoopback()
}
