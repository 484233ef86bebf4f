package front

import (
	"fmt"
	"io"
	"strings"

	"github.com/apt-p2p/apt-p2p/engine"
	"github.com/apt-p2p/apt-p2p/internal/fetch"
	"github.com/apt-p2p/apt-p2p/piecestore"
	"github.com/apt-p2p/apt-p2p/wire"
)

// writeDHTMetrics adds the engine's and the store's counters to /metrics. They
// are read from snapshots at scrape time, so the hot paths keep their own plain
// counters.
func writeDHTMetrics(w io.Writer, d engine.Stats, c piecestore.Stats) {
	p := func(format string, a ...any) { fmt.Fprintf(w, format, a...) }
	p("# HELP aptp2p_dht_packets_total DHT datagrams.\n# TYPE aptp2p_dht_packets_total counter\n")
	p("aptp2p_dht_packets_total{dir=\"in\"} %d\naptp2p_dht_packets_total{dir=\"out\"} %d\n", d.PacketsIn, d.PacketsOut)
	p("# HELP aptp2p_dht_bytes_total DHT bytes.\n# TYPE aptp2p_dht_bytes_total counter\n")
	p("aptp2p_dht_bytes_total{dir=\"in\"} %d\naptp2p_dht_bytes_total{dir=\"out\"} %d\n", d.BytesIn, d.BytesOut)
	p("# HELP aptp2p_dht_dropped_total DHT datagrams dropped, by reason.\n# TYPE aptp2p_dht_dropped_total counter\n")
	for r := engine.DropReason(0); r < engine.NumDropReasons; r++ {
		p("aptp2p_dht_dropped_total{reason=%q} %d\n", r.String(), d.Dropped[r])
	}
	p("# HELP aptp2p_dht_rpc_total DHT requests sent by us, by method and result.\n# TYPE aptp2p_dht_rpc_total counter\n")
	for m := wire.MethodPing; m <= wire.MethodStoreValue; m++ {
		r := d.RPC[m]
		p("aptp2p_dht_rpc_total{method=%q,result=\"ok\"} %d\n", m.String(), r.OK)
		p("aptp2p_dht_rpc_total{method=%q,result=\"failed\"} %d\n", m.String(), r.Failed)
	}
	p("# HELP aptp2p_dht_requests_received_total DHT requests answered, by method.\n# TYPE aptp2p_dht_requests_received_total counter\n")
	for m := wire.MethodPing; m <= wire.MethodStoreValue; m++ {
		p("aptp2p_dht_requests_received_total{method=%q} %d\n", m.String(), d.RPC[m].Received)
	}
	p("# HELP aptp2p_dht_nodes Nodes in the routing table.\n# TYPE aptp2p_dht_nodes gauge\naptp2p_dht_nodes %d\n", d.Nodes)
	p("# HELP aptp2p_dht_stored_values Values stored on this node for others.\n# TYPE aptp2p_dht_stored_values gauge\naptp2p_dht_stored_values %d\n", d.Values)
	p("# HELP aptp2p_dht_stores_refused_total Store requests refused (bad token, invalid value, limits).\n# TYPE aptp2p_dht_stores_refused_total counter\naptp2p_dht_stores_refused_total %d\n", d.StoresRefused)
	p("# HELP aptp2p_cache_files Files in the cache.\n# TYPE aptp2p_cache_files gauge\naptp2p_cache_files %d\n", c.Files)
	p("# HELP aptp2p_cache_bytes Bytes in the cache.\n# TYPE aptp2p_cache_bytes gauge\naptp2p_cache_bytes %d\n", c.Bytes)
	p("# HELP aptp2p_cache_evictions_total Files evicted from the cache.\n# TYPE aptp2p_cache_evictions_total counter\naptp2p_cache_evictions_total %d\n", c.Evictions)
	p("# HELP aptp2p_cache_mismatches_total Stores refused because content did not match its hash.\n# TYPE aptp2p_cache_mismatches_total counter\naptp2p_cache_mismatches_total %d\n", c.Mismatches)
}

// maxBanSeries bounds the per-address ban series: a flood of hostile peers
// must not flood the scrape. The status page lists every ban.
const maxBanSeries = 32

// writeBanMetrics adds the sources the downloader shuns now: their number,
// and when the ban of each ends for the maxBanSeries that end last (bans
// lists them soonest end first).
func writeBanMetrics(w io.Writer, bans []fetch.Ban) {
	p := func(format string, a ...any) { fmt.Fprintf(w, format, a...) }
	p("# HELP aptp2p_banned_sources Sources (peers, mirrors) banned now for bad data or protocol errors.\n# TYPE aptp2p_banned_sources gauge\naptp2p_banned_sources %d\n", len(bans))
	p("# HELP aptp2p_ban_expiry_timestamp_seconds When the ban of a source ends (Unix time), for the %d bans that end last.\n# TYPE aptp2p_ban_expiry_timestamp_seconds gauge\n", maxBanSeries)
	for _, b := range bans[max(0, len(bans)-maxBanSeries):] {
		p("aptp2p_ban_expiry_timestamp_seconds{addr=\"%s\"} %d\n", labelEscaper.Replace(b.Addr), b.Until.Unix())
	}
}

// labelEscaper escapes a Prometheus label value.
var labelEscaper = strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`)
