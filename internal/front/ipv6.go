package front

import (
	"fmt"
	"html/template"
	"io"
	"strings"

	"github.com/apt-p2p/apt-p2p/engine"
	"github.com/apt-p2p/apt-p2p/internal/node"
)

// FamilyStatus is one address family's DHT (issue 13 item 2): a dual-stack
// daemon runs the IPv4 network of the original protocol and the IPv6
// network of its extension, each with its own contact, routing table and
// stored values.
type FamilyStatus struct {
	Family     string `json:"family"`            // "IPv4" or "IPv6"
	Contact    string `json:"contact,omitempty"` // where peers of this family download from; empty while unknown
	Joined     bool   `json:"joined"`
	Reachable  bool   `json:"reachable"`
	Nodes      int    `json:"nodes"`
	Values     int    `json:"values_stored"`
	PacketsIn  uint64 `json:"packets_in"`
	PacketsOut uint64 `json:"packets_out"`
	Offered    uint64 `json:"nodes_from_other_family"` // nodes of this family learned on the other network (want)
}

// familyStatus lists the families that run, IPv4 first.
func familyStatus(n *node.Node) []FamilyStatus {
	var out []FamilyStatus
	for _, f := range []engine.Family{engine.IPv4, engine.IPv6} {
		d := n.DHTOf(f)
		if d == nil {
			continue
		}
		s := d.Stats()
		fs := FamilyStatus{Family: f.String(), Joined: s.Joined, Reachable: s.Reachable, Nodes: s.Nodes, Values: s.Values,
			PacketsIn: s.PacketsIn, PacketsOut: s.PacketsOut, Offered: s.Offered}
		if c, ok := n.ContactOf(f); ok {
			fs.Contact = c.String()
		}
		out = append(out, fs)
	}
	return out
}

var familiesTmpl = template.Must(template.New("families").Parse(`<h2>Address families</h2>
<table><tr><th>Network</th><th>Contact</th><th>DHT</th><th>Nodes</th><th>Values stored</th><th>Packets in / out</th></tr>
{{range .}}<tr><td>{{.Family}}</td><td>{{if .Contact}}{{.Contact}}{{else}}not known yet{{end}}</td><td>{{if .Joined}}<span class="ok">joined</span>{{else}}<span class="bad">not joined</span>{{end}}</td><td>{{.Nodes}}</td><td>{{.Values}}</td><td>{{.PacketsIn}} / {{.PacketsOut}}</td></tr>
{{end}}</table>
<p>Each family is a network of its own: announcements carry this daemon's contact of that family, and IPv4 peers of the original protocol see nothing of IPv6.</p>
`))

// familiesHTML is the status page's address-family section.
func familiesHTML(fs []FamilyStatus) template.HTML {
	var b strings.Builder
	if err := familiesTmpl.Execute(&b, fs); err != nil {
		return template.HTML(template.HTMLEscapeString(err.Error()))
	}
	return template.HTML(b.String())
}

// writeFamilyMetrics adds per-family DHT gauges.
func writeFamilyMetrics(w io.Writer, fs []FamilyStatus) {
	p := func(format string, a ...any) { fmt.Fprintf(w, format, a...) }
	p("# HELP aptp2p_dht_family_nodes Nodes in the routing table of each address family's DHT.\n# TYPE aptp2p_dht_family_nodes gauge\n")
	for _, f := range fs {
		p("aptp2p_dht_family_nodes{family=%q} %d\n", strings.ToLower(f.Family), f.Nodes)
	}
	p("# HELP aptp2p_dht_family_joined Whether each address family's DHT has joined (1) or not (0).\n# TYPE aptp2p_dht_family_joined gauge\n")
	for _, f := range fs {
		j := 0
		if f.Joined {
			j = 1
		}
		p("aptp2p_dht_family_joined{family=%q} %d\n", strings.ToLower(f.Family), j)
	}
}
