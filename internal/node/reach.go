package node

import (
	"github.com/apt-p2p/apt-p2p/engine"
	"github.com/apt-p2p/apt-p2p/wire"
)

// reachConfig sets the DHT's reachability checking (REACH_CHECK,
// REACH_INTERVAL): probes of the DHT's UDP port and of PORT over TCP, and
// read-only mode while peers cannot reach us.
func (n *Node) reachConfig(c *engine.Config) {
	r := n.cfg.Reach
	c.Reach.Probe = r.Check
	c.Reach.Interval = r.Interval
	if !n.cfg.DHTOnly {
		c.Reach.TCPPort = uint16(n.cfg.Port) // a DHT-only node serves no files: UDP only
	}
	if n.cfg.PortMap.On() {
		c.Reach.Ready = n.pm.settled.Load // the router's answer first (portmap.go)
	}
	log := n.log.With("part", "reach")
	var last engine.ReachStats
	c.Reach.OnChange = func(s engine.ReachStats) {
		if s.UDP != last.UDP || s.TCP != last.TCP || s.ReadOnly != last.ReadOnly {
			log.Info("reachability", "udp", s.UDP, "udp_evidence", s.UDPWhy, "tcp", s.TCP, "tcp_evidence", s.TCPWhy,
				"read_only", s.ReadOnly, "announce", s.Announceable())
		}
		last = s
	}
}

// Reachable says whether peers can be expected to reach this daemon's peer
// port: TCP reachable, or not known to be unreachable (engine.ReachStats.
// Announceable). A daemon they cannot reach announces nothing and makes no
// herd claim (download.Config.Reachable). Always true with REACH_CHECK off.
func (n *Node) Reachable() bool {
	if !n.cfg.Reach.Check || n.dht == nil {
		return true
	}
	return n.dht.Reach().Announceable()
}

// Reach is the reachability the DHT found, with its counters.
func (n *Node) Reach() engine.ReachStats {
	if n.dht == nil {
		return engine.ReachStats{}
	}
	return n.DHTStats().Reach
}

// NoteTCPProbe records a TCP probe that reached the peer port (the HTTP
// front calls it for engine.ReachPath requests).
func (n *Node) NoteTCPProbe(nonce wire.ID) {
	if n.dht != nil {
		n.dht.NoteTCPProbe(nonce)
	}
}
