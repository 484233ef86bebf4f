package front

import (
	"bytes"
	"fmt"
	"io"

	"github.com/valyala/fasthttp"

	"github.com/apt-p2p/apt-p2p/engine"
)

var reachPrefix = []byte(engine.ReachPathPrefix)

// reachProbe answers a peer's TCP reachability probe (engine.ReachPath):
// 204, and the nonce goes to the DHT, which counts it only if it asked for
// it. Anyone may send one; it costs a map lookup on the DHT's event loop.
func (s *Server) reachProbe(ctx *fasthttp.RequestCtx, uri []byte) {
	if nonce, ok := engine.ParseReachPath(uri); ok {
		s.n.NoteTCPProbe(nonce)
	}
	ctx.SetStatusCode(fasthttp.StatusNoContent)
	ctx.SetConnectionClose()
}

// ReachStatus is the reachability part of the status views.
type ReachStatus struct {
	UDP      engine.ReachState `json:"udp"`
	TCP      engine.ReachState `json:"tcp"`
	UDPWhy   string            `json:"udp_evidence,omitempty"`
	TCPWhy   string            `json:"tcp_evidence,omitempty"`
	ReadOnly bool              `json:"read_only"` // our DHT queries carry ro = 1 (BEP 43)
	Announce bool              `json:"announce"`  // we announce ourselves as a source
	SeenAs   string            `json:"seen_as,omitempty"`
	Checking bool              `json:"checking"` // REACH_CHECK
	Stats    engine.ReachStats `json:"counters"`
}

func reachStatus(st engine.ReachStats, checking bool) ReachStatus {
	r := ReachStatus{UDP: st.UDP, TCP: st.TCP, UDPWhy: st.UDPWhy, TCPWhy: st.TCPWhy, ReadOnly: st.ReadOnly,
		Announce: !checking || st.Announceable(), Checking: checking, Stats: st}
	if st.SeenAs.IsValid() {
		r.SeenAs = st.SeenAs.String()
	}
	return r
}

// Line is the status page's one-line summary.
func (r ReachStatus) Line() string {
	if !r.Checking {
		return "reachability not checked (REACH_CHECK = no)"
	}
	s := fmt.Sprintf("UDP %s, TCP %s", r.UDP, r.TCP)
	switch {
	case !r.Announce:
		s += ": peers cannot reach us, so we announce nothing and use the DHT read-only"
	case r.ReadOnly:
		s += ": the DHT is used read-only"
	}
	return s
}

// writeReachMetrics adds the reachability states and counters to /metrics.
func writeReachMetrics(w io.Writer, st engine.ReachStats) {
	p := func(format string, a ...any) { fmt.Fprintf(w, format, a...) }
	p("# HELP aptp2p_reachable Whether peers can reach us: 1 reachable, 0 unreachable, -1 unknown, by transport.\n# TYPE aptp2p_reachable gauge\n")
	for _, t := range []struct {
		name string
		s    engine.ReachState
	}{{"udp", st.UDP}, {"tcp", st.TCP}} {
		v := -1
		switch t.s {
		case engine.ReachReachable:
			v = 1
		case engine.ReachUnreachable:
			v = 0
		}
		p("aptp2p_reachable{transport=%q} %d\n", t.name, v)
	}
	ro := 0
	if st.ReadOnly {
		ro = 1
	}
	p("# HELP aptp2p_dht_read_only Whether our DHT queries carry ro = 1 (BEP 43).\n# TYPE aptp2p_dht_read_only gauge\naptp2p_dht_read_only %d\n", ro)
	p("# HELP aptp2p_reach_probes_total Reachability probes, by event.\n# TYPE aptp2p_reach_probes_total counter\n")
	for _, c := range []struct {
		ev string
		n  uint64
	}{
		{"asked", st.Asked}, {"answered", st.Answered}, {"no_evidence", st.NoEvidence},
		{"udp_arrived", st.UDPArrived}, {"udp_missed", st.UDPMissed}, {"tcp_arrived", st.TCPArrived}, {"tcp_missed", st.TCPMissed},
		{"unsolicited_query", st.Unsolicited}, {"served", st.Served}, {"served_tcp", st.ServedTCP}, {"refused", st.Refused},
	} {
		p("aptp2p_reach_probes_total{event=%q} %d\n", c.ev, c.n)
	}
	p("# HELP aptp2p_dht_read_only_queries_total Queries from read-only nodes (answered, kept out of the table).\n# TYPE aptp2p_dht_read_only_queries_total counter\naptp2p_dht_read_only_queries_total %d\n", st.ReadOnlySeen)
}

// isReachProbe reports whether uri is a TCP reachability probe.
func isReachProbe(uri []byte) bool { return bytes.HasPrefix(uri, reachPrefix) }
