package front

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"html/template"
	"math"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/apt-p2p/apt-p2p/engine"
	"github.com/apt-p2p/apt-p2p/internal/fetch"
	"github.com/apt-p2p/apt-p2p/internal/httpserve"
	"github.com/apt-p2p/apt-p2p/internal/node"
	"github.com/apt-p2p/apt-p2p/piecestore"
)

// Status is what the status page, /stats.json and `apt-p2p status` show.
type Status struct {
	Version   string        `json:"version"`
	Started   time.Time     `json:"started"`
	Uptime    time.Duration `json:"uptime_ns"`
	Contact   string        `json:"contact"`
	Reachable bool          `json:"reachable"`
	Joined    bool          `json:"joined"`

	Cache piecestore.Stats `json:"cache"`
	Index struct {
		Repos, Entries int
		Bytes          int64
	} `json:"index"`

	Session node.AllTime `json:"session"`
	AllTime node.AllTime `json:"all_time"`

	Uploads  int            `json:"uploads_active"`
	Active   []node.Active  `json:"downloads_active"`
	Bans     []fetch.Ban    `json:"bans"` // sources shunned now, soonest end first
	DHT      DHTStats       `json:"dht"`
	Lookups  LatencySummary `json:"lookup_latency"`
	Requests LatencySummary `json:"request_latency"`
	History  []Sample       `json:"history"`

	Mainline *MainlineStatus `json:"mainline,omitempty"`     // mainline.go; nil unless NETWORKS turns it on
	LAN      *LANStatus      `json:"lan,omitempty"`          // lan.go; nil when LAN_DISCOVERY is off
	Reach    ReachStatus     `json:"reach"`                  // reach.go
	PortMap  *PortMapStatus  `json:"port_mapping,omitempty"` // portmap.go; nil when PORT_MAPPING is no
	Families []FamilyStatus  `json:"families"`               // ipv6.go: each address family's DHT and contact
}

// DHTStats is the engine's statistics as the status views show them: the
// node ID in hex rather than an array of 20 numbers, and the number of users
// estimated as estimateUsers explains rather than as K·2^(buckets−1). (The
// fields shadow the engine's of the same name, in Go and in JSON.)
type DHTStats struct {
	engine.Stats
	ID                 string  `json:"ID"`
	EstimatedUsers     float64 `json:"EstimatedUsers"`
	EstimatedUsersFrom string  `json:"EstimatedUsersFrom"` // how: counted, or from the closest nodes' density
}

// LatencySummary condenses a latency histogram.
type LatencySummary struct {
	Count         int64         `json:"count"`
	P50, P90, P99 time.Duration `json:"-"`
	P50ms         float64       `json:"p50_ms"`
	P90ms         float64       `json:"p90_ms"`
	P99ms         float64       `json:"p99_ms"`
	Buckets       []Bucket      `json:"buckets"`
}

// Bucket is one histogram bucket (non-cumulative).
type Bucket struct {
	Le    float64 // upper bound in seconds; +Inf for the last
	Count int64
}

// bucketJSON is a Bucket in stats.json: the bound as Prometheus writes it
// ("0.005", "30", "+Inf"), since JSON numbers have no infinity.
type bucketJSON struct {
	Le    string `json:"le"`
	Count int64  `json:"count"`
}

// MarshalJSON writes the bound as a string.
func (b Bucket) MarshalJSON() ([]byte, error) {
	le := "+Inf"
	if !math.IsInf(b.Le, 1) {
		le = strconv.FormatFloat(b.Le, 'g', -1, 64)
	}
	return json.Marshal(bucketJSON{le, b.Count})
}

// UnmarshalJSON reads what MarshalJSON writes.
func (b *Bucket) UnmarshalJSON(data []byte) error {
	var j bucketJSON
	if err := json.Unmarshal(data, &j); err != nil {
		return err
	}
	le, err := strconv.ParseFloat(j.Le, 64) // accepts "+Inf"
	if err != nil {
		return fmt.Errorf("histogram bucket bound %q: %w", j.Le, err)
	}
	b.Le, b.Count = le, j.Count
	return nil
}

// Sample is the traffic counters at one moment, for the charts.
type Sample struct {
	T      time.Time `json:"t"`
	Mirror int64     `json:"mirror"`
	Peers  int64     `json:"peers"`
	Cache  int64     `json:"cache"`
	Up     int64     `json:"up"`
}

// history samples the traffic counters every 10 s for the last hour.
type history struct {
	n    *node.Node
	mu   sync.Mutex
	s    []Sample
	done chan struct{}
	once sync.Once
}

const (
	sampleEvery = 10 * time.Second
	maxSamples  = 360
)

func newHistory(n *node.Node) *history {
	h := &history{n: n, done: make(chan struct{})}
	h.take()
	go func() {
		t := time.NewTicker(sampleEvery)
		defer t.Stop()
		for {
			select {
			case <-h.done:
				return
			case <-t.C:
				h.take()
			}
		}
	}()
	return h
}

func (h *history) stop() { h.once.Do(func() { close(h.done) }) }

func (h *history) take() {
	c := h.n.Stats.Session()
	h.mu.Lock()
	h.s = append(h.s, Sample{T: time.Now(), Mirror: c.Mirror, Peers: c.Peers, Cache: c.Cache, Up: c.Uploaded})
	if len(h.s) > maxSamples {
		h.s = append(h.s[:0], h.s[len(h.s)-maxSamples:]...)
	}
	h.mu.Unlock()
}

func (h *history) samples() []Sample {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]Sample(nil), h.s...)
}

func summarize(h interface {
	Snapshot() ([]float64, []int64, int64, time.Duration)
	Quantile(float64) time.Duration
}) LatencySummary {
	bounds, cum, n, _ := h.Snapshot()
	ls := LatencySummary{Count: n, P50: h.Quantile(0.5), P90: h.Quantile(0.9), P99: h.Quantile(0.99)}
	ls.P50ms, ls.P90ms, ls.P99ms = ms(ls.P50), ms(ls.P90), ms(ls.P99)
	var prev int64
	for i, c := range cum {
		le := math.Inf(1)
		if i < len(bounds) {
			le = bounds[i]
		}
		ls.Buckets = append(ls.Buckets, Bucket{Le: le, Count: c - prev})
		prev = c
	}
	return ls
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// Snapshot gathers the status.
func (s *Server) Snapshot() Status {
	n := s.n
	st := Status{Version: node.Version, Started: n.Started(), Uptime: time.Since(n.Started())}
	if c, ok := n.Contact(); ok {
		st.Contact = c.String()
	}
	st.DHT = dhtStats(n)
	st.Reachable, st.Joined = st.DHT.Reachable, st.DHT.Joined
	st.Families = familyStatus(n)
	for _, f := range st.Families { // an IPv6-only network: the IPv4 DHT never joins
		st.Reachable, st.Joined = st.Reachable || f.Reachable, st.Joined || f.Joined
	}
	st.Reach = reachStatus(st.DHT.Reach, n.Config().Reach.Check)
	if st.Reach.Checking {
		st.Reachable = st.Reach.Announce // peers can reach us, as far as we know
	}
	st.Cache = n.CacheStats()
	is := n.IndexStats()
	st.Index.Repos, st.Index.Entries, st.Index.Bytes = is.Repos, is.Entries, is.Bytes
	st.Session, st.AllTime = n.Stats.Session(), n.Stats.Total()
	st.Uploads = n.UploadsActive()
	st.Active = n.ActiveDownloads()
	st.Bans = n.Bans()
	st.Lookups = summarize(n.Stats.LookupLatency)
	st.Requests = summarize(n.Stats.RequestLatency)
	st.History = s.hist.samples()
	st.Mainline = mainlineStatus(n)
	st.LAN = lanStatus(n)
	st.PortMap = portMapStatus(n)
	return st
}

// dhtStats reads the engine's statistics and, from a snapshot of its routing
// table, the number of users.
func dhtStats(n *node.Node) DHTStats {
	st := DHTStats{Stats: n.DHTStats()}
	st.ID = hex.EncodeToString(st.Stats.ID[:])
	self, closest, buckets, k, err := n.DHTTable()
	if err == nil {
		st.EstimatedUsers, st.EstimatedUsersFrom = estimateUsers(self, closest, buckets, k)
	}
	return st
}

func (s *Server) writeJSON(ctx *fasthttp.RequestCtx) {
	ctx.SetContentType("application/json")
	b, _ := json.MarshalIndent(s.Snapshot(), "", "  ")
	ctx.SetBody(append(b, '\n'))
}

func (s *Server) writeMetrics(ctx *fasthttp.RequestCtx) {
	ctx.SetContentType("text/plain; version=0.0.4; charset=utf-8")
	_ = s.n.Stats.Registry.WritePrometheus(ctx)
	writeDHTMetrics(ctx, s.n.DHTStats(), s.n.CacheStats())
	writeBanMetrics(ctx, s.n.Bans())
	writeMainlineMetrics(ctx, s.n)
	writeLANMetrics(ctx, s.n)
	writeReachMetrics(ctx, s.n.DHTStats().Reach)
	writePortMapMetrics(ctx, s.n)
	writeFamilyMetrics(ctx, familyStatus(s.n))
}

// ByteFormat renders a size as the original's byte_format did (B, KiB, MiB, GiB, TiB).
func ByteFormat(b int64) string {
	f := float64(b)
	units := []string{"B", "KiB", "MiB", "GiB", "TiB"}
	i := 0
	for f >= 1024 && i < len(units)-1 {
		f /= 1024
		i++
	}
	switch {
	case i == 0:
		return fmt.Sprintf("%d B", b)
	case f < 10:
		return fmt.Sprintf("%.2f %s", f, units[i])
	case f < 100:
		return fmt.Sprintf("%.1f %s", f, units[i])
	}
	return fmt.Sprintf("%.0f %s", f, units[i])
}

// ratio is part/whole with two decimals, "–" when whole is zero.
func ratio(part, whole int64) string {
	if whole <= 0 {
		return "–"
	}
	return fmt.Sprintf("%.2f", float64(part)/float64(whole))
}

func pct(part, whole int64) string {
	if whole <= 0 {
		return "–"
	}
	return fmt.Sprintf("%.1f%%", 100*float64(part)/float64(whole))
}

var pageTmpl = template.Must(template.New("status").Funcs(template.FuncMap{
	"bytes": ByteFormat,
	"pct":   pct,
	"ratio": ratio,
	"left":  func(t time.Time) string { return time.Until(t).Round(time.Second).String() },
	"add":   func(a, b, c int64) int64 { return a + b + c },
	"dur":   func(d time.Duration) string { return d.Round(time.Second).String() },
	"ms":    func(d time.Duration) string { return fmt.Sprintf("%.1f ms", ms(d)) },
}).Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>apt-p2p</title>
<meta http-equiv="refresh" content="10">
<style>
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222;max-width:70em}
h1{font-size:1.4em}h2{font-size:1.1em;margin-top:1.6em;border-bottom:1px solid #ccc}
table{border-collapse:collapse}td,th{padding:.2em .8em;text-align:right;border-bottom:1px solid #eee}
th:first-child,td:first-child{text-align:left}.ok{color:#1a7f37}.bad{color:#c0392b}
.legend span{display:inline-block;width:.8em;height:.8em;margin:0 .3em 0 1em}
</style></head><body>
<h1>apt-p2p {{.S.Version}}</h1>
<p>Contact <b>{{if .S.Contact}}{{.S.Contact}}{{else}}not known yet{{end}}</b> ·
{{if .S.Reach.Checking}}{{if .S.Reach.Announce}}<span class="ok">{{.S.Reach.Line}}</span>{{else}}<span class="bad">{{.S.Reach.Line}}</span>{{end}}{{else if .S.Reachable}}<span class="ok">reachable from other peers</span>{{else}}<span class="bad">no peer has reached us yet</span>{{end}} ·
{{with .S.PortMap}}port mapping ({{.Mode}}): {{if .OK}}<span class="ok">{{.Line}}</span>{{else}}<span class="bad">{{.Line}}</span>{{end}} ·
{{end}}DHT {{if .S.Joined}}<span class="ok">joined</span>{{else}}<span class="bad">not joined</span>{{end}} ·
up {{dur .S.Uptime}}</p>

<h2>Traffic to apt</h2>
<table><tr><th></th><th>Mirror</th><th>Peers</th><th>Local cache</th><th>Total</th></tr>
<tr><td>This session</td><td>{{bytes .S.Session.Mirror}}</td><td>{{bytes .S.Session.Peers}}</td><td>{{bytes .S.Session.Cache}}</td><td>{{bytes .SessTotal}}</td></tr>
<tr><td>Session share</td><td>{{pct .S.Session.Mirror .SessTotal}}</td><td>{{pct .S.Session.Peers .SessTotal}}</td><td>{{pct .S.Session.Cache .SessTotal}}</td><td></td></tr>
<tr><td>All time</td><td>{{bytes .S.AllTime.Mirror}}</td><td>{{bytes .S.AllTime.Peers}}</td><td>{{bytes .S.AllTime.Cache}}</td><td>{{bytes .AllTotal}}</td></tr>
<tr><td>All-time share</td><td>{{pct .S.AllTime.Mirror .AllTotal}}</td><td>{{pct .S.AllTime.Peers .AllTotal}}</td><td>{{pct .S.AllTime.Cache .AllTotal}}</td><td></td></tr>
</table>

<p class="legend">Last hour (bytes per 10 s):<span style="background:#c0392b"></span>mirror<span style="background:#2471a3"></span>peers<span style="background:#1a7f37"></span>cache<span style="background:#8e44ad"></span>uploads</p>
{{.Chart}}

<h2>Uploads to peers</h2>
<table><tr><th></th><th>Uploaded to peers</th><th>Fetched from mirror and peers</th><th>Upload ratio</th></tr>
<tr><td>This session</td><td>{{bytes .S.Session.Uploaded}}</td><td>{{bytes .SessFetched}}</td><td>{{ratio .S.Session.Uploaded .SessFetched}}</td></tr>
<tr><td>All time</td><td>{{bytes .S.AllTime.Uploaded}}</td><td>{{bytes .AllFetched}}</td><td>{{ratio .S.AllTime.Uploaded .AllFetched}}</td></tr>
</table>
<p>Upload ratio: bytes uploaded to other peers per byte this daemon fetched for apt from the mirror and from peers; above 1 it gave the network more than it took.</p>

<h2>Transfers</h2>
<p>{{len .S.Active}} download(s) in progress, {{.S.Uploads}} upload(s) in progress.</p>
{{if .S.Active}}<table><tr><th>File</th><th>Size</th><th>Done</th><th>Waiting apt clients</th></tr>
{{range .S.Active}}<tr><td>{{.Path}}</td><td>{{bytes .Size}}</td><td>{{pct .Done .Size}}</td><td>{{.Waiters}}</td></tr>{{end}}</table>{{end}}

<h2>Banned sources</h2>
{{if .S.Bans}}<table><tr><th>Address</th><th>Banned for</th><th>Reason</th></tr>
{{range .S.Bans}}<tr><td>{{.Addr}}</td><td>{{left .Until}}</td><td>{{if .Reason}}{{.Reason}}{{else}}–{{end}}</td></tr>{{end}}</table>
{{else}}<p>No peer or mirror is banned.</p>{{end}}

<h2>Cache</h2>
<table><tr><td>Files</td><td>{{.S.Cache.Files}}</td><td>{{bytes .S.Cache.Bytes}}</td></tr>
<tr><td>Shared from other directories</td><td>{{.S.Cache.External}}</td><td>{{bytes .S.Cache.ExternalBytes}}</td></tr>
<tr><td>Limit</td><td colspan="2">{{if .S.Cache.MaxBytes}}{{bytes .S.Cache.MaxBytes}}{{else}}none{{end}}</td></tr>
<tr><td>Evictions</td><td>{{.S.Cache.Evictions}}</td><td>{{bytes .S.Cache.EvictedBytes}}</td></tr>
<tr><td>Index entries</td><td>{{.S.Index.Entries}}</td><td>{{bytes .S.Index.Bytes}} in memory</td></tr></table>

<h2>DHT</h2>
<table><tr><td>Routing table</td><td>{{.S.DHT.Nodes}} nodes in {{.S.DHT.Buckets}} buckets</td></tr>
<tr><td>Estimated users</td><td>{{printf "%.0f" .S.DHT.EstimatedUsers}} ({{.S.DHT.EstimatedUsersFrom}})</td></tr>
<tr><td>Stored here</td><td>{{.S.DHT.Keys}} keys, {{.S.DHT.Values}} values</td></tr>
<tr><td>Packets in / out</td><td>{{.S.DHT.PacketsIn}} ({{bytes .BytesIn}}) / {{.S.DHT.PacketsOut}} ({{bytes .BytesOut}})</td></tr>
<tr><td>Lookups for downloads</td><td>{{.S.Lookups.Count}}: p50 {{ms .S.Lookups.P50}}, p90 {{ms .S.Lookups.P90}}, p99 {{ms .S.Lookups.P99}}</td></tr>
<tr><td>apt requests</td><td>{{.S.Requests.Count}}: p50 {{ms .S.Requests.P50}}, p99 {{ms .S.Requests.P99}}</td></tr></table>
{{.Histogram}}
{{.Families}}
{{.Mainline}}
{{.LAN}}
<p><a href="/stats.json">stats.json</a> · <a href="/metrics">metrics</a></p>
</body></html>
`))

func (s *Server) writeHTML(ctx *fasthttp.RequestCtx) {
	st := s.Snapshot()
	ctx.SetContentType("text/html; charset=utf-8")
	data := struct {
		S                 Status
		SessTotal         int64
		AllTotal          int64
		SessFetched       int64 // from the mirror and peers
		AllFetched        int64
		BytesIn, BytesOut int64
		Chart, Histogram  template.HTML
		Mainline          template.HTML
		LAN               template.HTML
		Families          template.HTML
	}{
		S:           st,
		SessTotal:   st.Session.Mirror + st.Session.Peers + st.Session.Cache,
		AllTotal:    st.AllTime.Mirror + st.AllTime.Peers + st.AllTime.Cache,
		SessFetched: st.Session.Mirror + st.Session.Peers,
		AllFetched:  st.AllTime.Mirror + st.AllTime.Peers,
		BytesIn:     int64(st.DHT.BytesIn),
		BytesOut:    int64(st.DHT.BytesOut),
		Chart:       trafficChart(st.History),
		Histogram:   latencyChart(st.Lookups),
		Mainline:    mainlineHTML(st.Mainline),
		LAN:         lanHTML(st.LAN),
		Families:    familiesHTML(st.Families),
	}
	if err := pageTmpl.Execute(ctx, data); err != nil {
		httpserve.Error(ctx, fasthttp.StatusInternalServerError, "status page template: "+err.Error())
	}
}

// trafficChart draws stacked bars of bytes per sample interval, as inline SVG.
func trafficChart(h []Sample) template.HTML {
	const w, ht = 720, 120
	if len(h) < 2 {
		return template.HTML(`<p>(collecting samples)</p>`)
	}
	type bar struct{ m, p, c, u int64 }
	bars := make([]bar, len(h)-1)
	var max int64 = 1
	for i := 1; i < len(h); i++ {
		b := bar{h[i].Mirror - h[i-1].Mirror, h[i].Peers - h[i-1].Peers, h[i].Cache - h[i-1].Cache, h[i].Up - h[i-1].Up}
		bars[i-1] = b
		if t := b.m + b.p + b.c; t > max {
			max = t
		}
		if b.u > max {
			max = b.u
		}
	}
	bw := float64(w) / float64(maxSamples)
	var sb strings.Builder
	fmt.Fprintf(&sb, `<svg width="%d" height="%d" viewBox="0 0 %d %d" role="img" aria-label="traffic by source"><rect width="%d" height="%d" fill="#fafafa"/>`, w, ht, w, ht, w, ht)
	for i, b := range bars {
		x := float64(w) - float64(len(bars)-i)*bw
		y := float64(ht)
		for _, part := range []struct {
			v     int64
			color string
		}{{b.m, "#c0392b"}, {b.p, "#2471a3"}, {b.c, "#1a7f37"}} {
			hgt := float64(part.v) / float64(max) * (ht - 4)
			y -= hgt
			if hgt > 0 {
				fmt.Fprintf(&sb, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"/>`, x, y, bw*0.7, hgt, part.color)
			}
		}
		if b.u > 0 {
			uy := float64(ht) - float64(b.u)/float64(max)*(ht-4)
			fmt.Fprintf(&sb, `<rect x="%.1f" y="%.1f" width="%.1f" height="1.5" fill="#8e44ad"/>`, x, uy, bw*0.7)
		}
	}
	fmt.Fprintf(&sb, `<text x="4" y="12" font-size="10">%s</text></svg>`, template.HTMLEscapeString(ByteFormat(max)))
	return template.HTML(sb.String())
}

// latencyChart draws the lookup latency histogram as inline SVG bars, in a
// figure with a caption saying what it shows.
func latencyChart(l LatencySummary) template.HTML {
	var sb strings.Builder
	fmt.Fprintf(&sb, `<figure><figcaption>DHT lookup latency for downloads: number of lookups by the time they took (%d in all)</figcaption>`, l.Count)
	if l.Count == 0 {
		sb.WriteString(`<p>(no lookups yet)</p></figure>`)
		return template.HTML(sb.String())
	}
	const w, ht = 480, 100
	var max int64 = 1
	for _, b := range l.Buckets {
		if b.Count > max {
			max = b.Count
		}
	}
	bw := float64(w) / float64(len(l.Buckets))
	fmt.Fprintf(&sb, `<svg width="%d" height="%d" role="img" aria-label="lookup latency histogram"><rect width="%d" height="%d" fill="#fafafa"/>`, w, ht+14, w, ht+14)
	for i, b := range l.Buckets {
		hgt := float64(b.Count) / float64(max) * (ht - 4)
		x := float64(i) * bw
		fmt.Fprintf(&sb, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="#2471a3"><title>%d</title></rect>`, x+2, ht-hgt, bw-4, hgt, b.Count)
		label := "+Inf"
		if !math.IsInf(b.Le, 1) {
			label = fmt.Sprintf("≤%gs", b.Le)
		}
		fmt.Fprintf(&sb, `<text x="%.1f" y="%d" font-size="8">%s</text>`, x+2, ht+12, label)
	}
	sb.WriteString(`</svg></figure>`)
	return template.HTML(sb.String())
}
