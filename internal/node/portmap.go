package node

import (
	"sync/atomic"

	"github.com/apt-p2p/apt-p2p/engine"
	"github.com/apt-p2p/apt-p2p/internal/portmap"
)

// portMapping is the node's port mapping (PORT_MAPPING; internal/portmap):
// the router is asked to forward the peer port (TCP), the IPv4 DHT's port
// (UDP) and the mainline DHT's, when it runs, while the daemon runs.
type portMapping struct {
	svc *portmap.Service // nil when off
	tcp portmap.Port     // the peer port (Internal 0 on a DHT-only node)
	// settled: the router has answered the first round, or failed to; the
	// DHT's reachability rounds wait for it (reachConfig).
	settled atomic.Bool
}

// startPortMap starts port mapping when PORT_MAPPING asks for it. NAT-PMP
// and UPnP IGD map IPv4 ports only: a daemon without an IPv4 DHT maps
// nothing.
func (n *Node) startPortMap() {
	if !n.cfg.PortMap.On() {
		return
	}
	log := n.log.With("part", "portmap")
	d := n.DHTOf(engine.IPv4)
	if d == nil {
		n.pm.settled.Store(true)
		log.Warn("PORT_MAPPING: routers map IPv4 ports and this daemon runs no IPv4 DHT; nothing is mapped")
		return
	}
	var mainline uint16
	if n.mainline != nil {
		mainline = n.mainline.Addr().Port()
	}
	ports := portMapPorts(n.cfg.DHTOnly, uint16(n.cfg.Port), d.Addr().Port(), mainline)
	if ports[0].Proto == portmap.TCP {
		n.pm.tcp = ports[0]
	}
	open, proto := portmap.OpenNATPMP(0), "NAT-PMP"
	switch n.cfg.PortMap.Mode {
	case "upnp":
		open, proto = portmap.OpenUPnP(0), "UPnP IGD"
	case "auto":
		open, proto = portmap.OpenAuto(0), "NAT-PMP, else UPnP IGD"
	}
	n.pm.svc = portmap.Start(portmap.Config{
		Open:   open,
		Ports:  ports,
		Logger: log,
		// A new default gateway (another network, or the network coming up
		// after the daemon) maps again within a minute.
		Watch: portmap.DefaultGateway,
		// Probers must connect to the port the router forwards (package
		// portmap: "What peers are told").
		// The first round always reports (a mapping or an error).
		OnChange: func(st portmap.Status) {
			if n.pm.tcp.Internal != 0 {
				d.SetReachTCPPort(mappedPort(st, n.pm.tcp))
			}
			n.pm.settled.Store(true)
		},
	})
	log.Info("port mapping on", "protocol", proto, "ports", ports)
}

// portMapPorts are the ports to map: the peer port (TCP; not on a DHT-only
// node, which serves no files), the IPv4 DHT's UDP port and the mainline
// DHT's (0: it does not run), the TCP one first.
func portMapPorts(dhtOnly bool, peer, dht, mainline uint16) []portmap.Port {
	var ports []portmap.Port
	if !dhtOnly {
		ports = append(ports, portmap.Port{Proto: portmap.TCP, Internal: peer})
	}
	ports = append(ports, portmap.Port{Proto: portmap.UDP, Internal: dht})
	if mainline != 0 && mainline != dht {
		ports = append(ports, portmap.Port{Proto: portmap.UDP, Internal: mainline})
	}
	return ports
}

// mappedPort is p's external port while a mapping of it is active, its own
// port otherwise.
func mappedPort(st portmap.Status, p portmap.Port) uint16 {
	if ext, ok := st.Mapped(p); ok {
		return ext
	}
	return p.Internal
}

// announcedPort is the TCP port peers of family f that are not on our LAN
// download from: the router's external port of the peer port while an IPv4
// mapping of it is active, PORT otherwise.
func (n *Node) announcedPort(f engine.Family) uint16 {
	if f != engine.IPv4 || n.pm.svc == nil || n.pm.tcp.Internal == 0 {
		return uint16(n.cfg.Port)
	}
	return mappedPort(n.pm.svc.Status(), n.pm.tcp)
}

// closePortMap deletes the mappings.
func (n *Node) closePortMap() error {
	if n.pm.svc == nil {
		return nil
	}
	return n.pm.svc.Close()
}

// PortMapInfo is port mapping's state for the status views.
type PortMapInfo struct {
	On     bool // PORT_MAPPING asks for mappings
	Mode   string
	Status portmap.Status
}

// PortMap is port mapping's state.
func (n *Node) PortMap() PortMapInfo {
	pi := PortMapInfo{On: n.cfg.PortMap.On(), Mode: n.cfg.PortMap.Mode}
	if n.pm.svc != nil {
		pi.Status = n.pm.svc.Status()
	}
	return pi
}
