package front

import (
	"fmt"
	"html/template"
	"io"
	"strings"

	"github.com/apt-p2p/apt-p2p/engine"
	"github.com/apt-p2p/apt-p2p/internal/node"
)

// MainlineStatus is the mainline DHT's part of the status (issue 14): shown
// only when NETWORKS turns it on.
type MainlineStatus struct {
	Joined        bool           `json:"joined"`
	ID            string         `json:"id"`
	ExternalAddr  string         `json:"external_addr"`
	Nodes         int            `json:"nodes"`
	InfoHashes    int            `json:"info_hashes_stored"`
	Peers         int            `json:"peers_stored"`
	Items         int            `json:"items_stored"`
	PacketsIn     uint64         `json:"packets_in"`
	PacketsOut    uint64         `json:"packets_out"`
	RateLimited   uint64         `json:"rate_limited"`
	GetPeers      uint64         `json:"get_peers"`
	GetPeersFound uint64         `json:"get_peers_found"`
	Announces     uint64         `json:"announces"`
	AnnouncesOK   uint64         `json:"announces_ok"`
	Latency       LatencySummary `json:"get_peers_latency"`
}

func mainlineStatus(n *node.Node) *MainlineStatus {
	s, on := n.MainlineStats()
	if !on {
		return nil
	}
	st := &MainlineStatus{Joined: s.Joined, ID: s.ID.String(), Nodes: s.Nodes, InfoHashes: s.InfoHashes, Peers: s.Peers,
		Items: s.Items, PacketsIn: s.PacketsIn, PacketsOut: s.PacketsOut, RateLimited: s.RateLimited,
		GetPeers: s.GetPeers, GetPeersFound: s.GetPeersFound, Announces: s.Announces, AnnouncesOK: s.AnnouncesOK,
		Latency: LatencySummary{Count: int64(s.GetPeersLatency.Count), P50: s.GetPeersLatency.Quantile(0.5),
			P90: s.GetPeersLatency.Quantile(0.9), P99: s.GetPeersLatency.Quantile(0.99)}}
	st.Latency.P50ms, st.Latency.P90ms, st.Latency.P99ms = ms(st.Latency.P50), ms(st.Latency.P90), ms(st.Latency.P99)
	if s.ExternalAddr.IsValid() {
		st.ExternalAddr = s.ExternalAddr.String()
	}
	return st
}

var mainlineTmpl = template.Must(template.New("mainline").Parse(`<h2>Mainline DHT (BitTorrent)</h2>
<table><tr><td>State</td><td>{{if .Joined}}<span class="ok">joined</span>{{else}}<span class="bad">not joined</span>{{end}}{{if .ExternalAddr}} · seen as {{.ExternalAddr}}{{end}}</td></tr>
<tr><td>Routing table</td><td>{{.Nodes}} nodes</td></tr>
<tr><td>Stored here</td><td>{{.Peers}} peers under {{.InfoHashes}} info-hashes, {{.Items}} items</td></tr>
<tr><td>Packets in / out</td><td>{{.PacketsIn}} / {{.PacketsOut}} ({{.RateLimited}} queries rate-limited)</td></tr>
<tr><td>get_peers</td><td>{{.GetPeers}}, {{.GetPeersFound}} found peers: p50 {{.Latency.P50}}, p99 {{.Latency.P99}}</td></tr>
<tr><td>Announces</td><td>{{.AnnouncesOK}} of {{.Announces}} stored</td></tr></table>
`))

// mainlineHTML is the status page's mainline section ("" when off).
func mainlineHTML(ms *MainlineStatus) template.HTML {
	if ms == nil {
		return ""
	}
	var b strings.Builder
	if err := mainlineTmpl.Execute(&b, ms); err != nil {
		return template.HTML(template.HTMLEscapeString(err.Error()))
	}
	return template.HTML(b.String())
}

// writeMainlineMetrics adds the mainline DHT's metrics (nothing when off).
func writeMainlineMetrics(w io.Writer, n *node.Node) {
	d, on := n.MainlineStats()
	if !on {
		return
	}
	p := func(format string, a ...any) { fmt.Fprintf(w, format, a...) }
	joined := 0
	if d.Joined {
		joined = 1
	}
	p("# HELP aptp2p_mainline_joined Whether the mainline DHT node has joined.\n# TYPE aptp2p_mainline_joined gauge\naptp2p_mainline_joined %d\n", joined)
	p("# HELP aptp2p_mainline_nodes Nodes in the mainline routing table.\n# TYPE aptp2p_mainline_nodes gauge\naptp2p_mainline_nodes %d\n", d.Nodes)
	p("# HELP aptp2p_mainline_packets_total Mainline DHT datagrams.\n# TYPE aptp2p_mainline_packets_total counter\n")
	p("aptp2p_mainline_packets_total{dir=\"in\"} %d\naptp2p_mainline_packets_total{dir=\"out\"} %d\n", d.PacketsIn, d.PacketsOut)
	p("# HELP aptp2p_mainline_dropped_total Mainline datagrams dropped, by reason.\n# TYPE aptp2p_mainline_dropped_total counter\n")
	for r := engine.DropReason(0); r < engine.NumDropReasons; r++ {
		p("aptp2p_mainline_dropped_total{reason=%q} %d\n", r.String(), d.Dropped[r])
	}
	p("aptp2p_mainline_dropped_total{reason=\"rate_limit\"} %d\n", d.RateLimited)
	p("# HELP aptp2p_mainline_stored Entries stored for others.\n# TYPE aptp2p_mainline_stored gauge\n")
	p("aptp2p_mainline_stored{kind=\"peers\"} %d\naptp2p_mainline_stored{kind=\"items\"} %d\n", d.Peers, d.Items)
	p("# HELP aptp2p_mainline_lookups_total Our get_peers and announces, by result.\n# TYPE aptp2p_mainline_lookups_total counter\n")
	p("aptp2p_mainline_lookups_total{op=\"get_peers\",result=\"found\"} %d\n", d.GetPeersFound)
	p("aptp2p_mainline_lookups_total{op=\"get_peers\",result=\"empty\"} %d\n", d.GetPeers-d.GetPeersFound)
	p("aptp2p_mainline_lookups_total{op=\"announce\",result=\"ok\"} %d\n", d.AnnouncesOK)
	p("aptp2p_mainline_lookups_total{op=\"announce\",result=\"failed\"} %d\n", d.Announces-d.AnnouncesOK)
}
