package engine

import (
	"fmt"
	"net/netip"
	"testing"
	"time"
)

// BenchmarkReachCost measures what reachability checking costs on the wire
// with the default intervals (REACH_INTERVAL 15 min, 20 s retries while
// unknown): one simulated hour of 8 reachable nodes and 2 behind a
// port-restricted NAT, on the virtual clock. It reports, per node and hour,
// the reach datagrams (queries, replies, UDP probes) and TCP probes, and
// their share of all DHT datagrams in the same hour.
func BenchmarkReachCost(b *testing.B) {
	for range b.N {
		r := newRnet(b)
		def := func(c *Config) { c.Reach.Interval = 15 * time.Minute }
		boot := r.add("r0", "203.0.113.1:9977", false, true, false, nil, def)
		for i := 1; i < 8; i++ {
			r.add(fmt.Sprintf("r%d", i), netip.AddrPortFrom(netip.AddrFrom4([4]byte{198, 51, byte(i), 1}), 9977).String(), false, true, false, []netip.AddrPort{boot.pub}, def)
		}
		r.run(5 * time.Second)
		for i := range 2 {
			r.add(fmt.Sprintf("nat%d", i), netip.AddrPortFrom(netip.AddrFrom4([4]byte{100, 64, byte(i), 7}), 9977).String(), true, false, false, []netip.AddrPort{boot.pub}, def)
		}
		r.run(time.Hour)
		for _, n := range r.nodes {
			want := ReachReachable
			if n.natted {
				want = ReachUnreachable
			}
			if s := n.c.Reach(); s.UDP != want || s.TCP != want {
				b.Fatalf("%s: %+v", n.name, s)
			}
		}
		nodes := float64(len(r.nodes))
		b.ReportMetric(float64(r.cost.reachPkts)/nodes, "reach-datagrams/node/h")
		b.ReportMetric(float64(r.cost.reachBytes)/nodes, "reach-bytes/node/h")
		b.ReportMetric(float64(r.cost.tcpProbes)/nodes, "tcp-probes/node/h")
		b.ReportMetric(float64(r.cost.dhtPkts)/nodes, "dht-datagrams/node/h")
		b.ReportMetric(100*float64(r.cost.reachPkts)/float64(r.cost.dhtPkts), "reach-%-of-datagrams")
	}
}
