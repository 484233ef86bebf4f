package front

import (
	"fmt"
	"html/template"
	"io"
	"strings"
	"time"

	"github.com/apt-p2p/apt-p2p/internal/lan"
	"github.com/apt-p2p/apt-p2p/internal/node"
)

// LANStatus is LAN discovery's part of the status (issue 13 item 3): the
// links announced on and the daemons heard. Nil when LAN_DISCOVERY is off.
type LANStatus struct {
	Error string         `json:"error,omitempty"` // why it does not run although on
	Links []LANLink      `json:"links"`
	Peers []LANPeer      `json:"peers"`
	Sent  map[string]int `json:"sent"` // by kind: hello, announce, reply
	// Received, Accepted (from peers), Own (our own, looped back) and
	// Dropped by reason.
	Received       uint64            `json:"received"`
	Accepted       uint64            `json:"accepted"`
	Own            uint64            `json:"own"`
	Dropped        map[string]uint64 `json:"dropped"`
	SendErrors     uint64            `json:"send_errors"`
	RepliesLimited uint64            `json:"replies_limited"`
	Introductions  uint64            `json:"introductions"`
}

// LANLink is one interface and family announced on.
type LANLink struct {
	Iface  string `json:"iface"`
	Family string `json:"family"`
	Addr   string `json:"addr"` // our address as LAN peers see it, or the interface's first
}

// LANPeer is a daemon heard on the LAN.
type LANPeer struct {
	DHT   string        `json:"dht"`  // its DHT contact (UDP)
	HTTP  string        `json:"http"` // where its files are downloaded (TCP)
	Iface string        `json:"iface"`
	Heard time.Duration `json:"heard_ns"` // since its last message
	Since time.Time     `json:"since"`    // first heard
	Msgs  uint64        `json:"messages"`
}

func lanStatus(n *node.Node) *LANStatus {
	li := n.LAN()
	if !li.On {
		return nil
	}
	st := &LANStatus{Links: []LANLink{}, Peers: []LANPeer{}, Sent: map[string]int{}, Dropped: map[string]uint64{}}
	if li.Err != nil {
		st.Error = li.Err.Error()
	}
	for _, l := range li.Links {
		ll := LANLink{Iface: l.Iface, Family: l.Family.String()}
		if l.Own.IsValid() {
			ll.Addr = l.Own.String()
		} else if len(l.Addrs) > 0 {
			ll.Addr = l.Addrs[0].Addr().String()
		}
		st.Links = append(st.Links, ll)
	}
	now := time.Now()
	for _, p := range li.Peers {
		st.Peers = append(st.Peers, LANPeer{DHT: p.Contact.String(), HTTP: p.HTTP().String(), Iface: p.Iface,
			Heard: now.Sub(p.Last), Since: p.First, Msgs: p.Messages})
	}
	s := li.Stats
	for k := lan.Kind(0); k < lan.NumKinds; k++ {
		st.Sent[k.String()] = int(s.Sent[k])
	}
	for r := lan.DropReason(0); r < lan.NumDropReasons; r++ {
		st.Dropped[r.String()] = s.Dropped[r]
	}
	st.Received, st.Accepted, st.Own, st.SendErrors = s.Received, s.Accepted, s.Own, s.SendErrors
	st.RepliesLimited, st.Introductions = s.RepliesLimited, s.Introductions
	return st
}

var lanTmpl = template.Must(template.New("lan").Funcs(template.FuncMap{
	"ago": func(d time.Duration) string { return d.Round(time.Second).String() },
}).Parse(`<h2>LAN discovery</h2>
{{if .Error}}<p class="bad">{{.Error}}</p>{{end}}
<p>{{if .Links}}Announcing on {{range $i, $l := .Links}}{{if $i}}, {{end}}{{$l.Iface}} ({{$l.Family}}{{if $l.Addr}} as {{$l.Addr}}{{end}}){{end}}{{else}}No multicast interface to announce on.{{end}}
· sent {{index .Sent "hello"}} hellos, {{index .Sent "announce"}} announcements, {{index .Sent "reply"}} replies
· heard {{.Accepted}} from peers, dropped {{.DropTotal}}</p>
{{if .Peers}}<table><tr><th>Daemon (DHT)</th><th>HTTP</th><th>Interface</th><th>Last heard</th><th>Messages</th></tr>
{{range .Peers}}<tr><td>{{.DHT}}</td><td>{{.HTTP}}</td><td>{{.Iface}}</td><td>{{ago .Heard}} ago</td><td>{{.Msgs}}</td></tr>{{end}}</table>
{{else}}<p>No other daemon heard on the LAN.</p>{{end}}
`))

// lanHTML is the status page's LAN section ("" when off).
func lanHTML(ls *LANStatus) template.HTML {
	if ls == nil {
		return ""
	}
	var drops uint64
	for _, v := range ls.Dropped {
		drops += v
	}
	var b strings.Builder
	if err := lanTmpl.Execute(&b, struct {
		*LANStatus
		DropTotal uint64
	}{ls, drops}); err != nil {
		return template.HTML(template.HTMLEscapeString(err.Error()))
	}
	return template.HTML(b.String())
}

// writeLANMetrics adds LAN discovery's metrics (nothing when off).
func writeLANMetrics(w io.Writer, n *node.Node) {
	li := n.LAN()
	if !li.On {
		return
	}
	s := li.Stats
	p := func(format string, a ...any) { fmt.Fprintf(w, format, a...) }
	p("# HELP aptp2p_lan_peers Daemons heard on the LAN in the last few minutes.\n# TYPE aptp2p_lan_peers gauge\naptp2p_lan_peers %d\n", len(li.Peers))
	p("# HELP aptp2p_lan_links Interfaces and families announced on.\n# TYPE aptp2p_lan_links gauge\naptp2p_lan_links %d\n", len(li.Links))
	p("# HELP aptp2p_lan_sent_total LAN announcements sent, by kind.\n# TYPE aptp2p_lan_sent_total counter\n")
	for k := lan.Kind(0); k < lan.NumKinds; k++ {
		p("aptp2p_lan_sent_total{kind=%q} %d\n", k.String(), s.Sent[k])
	}
	p("# HELP aptp2p_lan_send_errors_total LAN announcements that could not be sent.\n# TYPE aptp2p_lan_send_errors_total counter\naptp2p_lan_send_errors_total %d\n", s.SendErrors)
	p("# HELP aptp2p_lan_received_total LAN datagrams received, by outcome.\n# TYPE aptp2p_lan_received_total counter\n")
	p("aptp2p_lan_received_total{result=\"peer\"} %d\naptp2p_lan_received_total{result=\"own\"} %d\n", s.Accepted, s.Own)
	p("# HELP aptp2p_lan_dropped_total LAN datagrams dropped, by reason.\n# TYPE aptp2p_lan_dropped_total counter\n")
	for r := lan.DropReason(0); r < lan.NumDropReasons; r++ {
		p("aptp2p_lan_dropped_total{reason=%q} %d\n", r.String(), s.Dropped[r])
	}
	p("# HELP aptp2p_lan_replies_limited_total Hellos left unanswered by the reply rate limit.\n# TYPE aptp2p_lan_replies_limited_total counter\naptp2p_lan_replies_limited_total %d\n", s.RepliesLimited)
	p("# HELP aptp2p_lan_introductions_total Peers heard handed to the DHT (pinged unless known).\n# TYPE aptp2p_lan_introductions_total counter\naptp2p_lan_introductions_total %d\n", s.Introductions)
	p("# HELP aptp2p_lan_peers_evicted_total Peers forgotten because the list was full.\n# TYPE aptp2p_lan_peers_evicted_total counter\naptp2p_lan_peers_evicted_total %d\n", s.PeersEvicted)
}
