package metrics

import (
	"io"
	"math/rand/v2"
	"testing"
	"time"

	vm "github.com/VictoriaMetrics/metrics"
)

// The daemon's metrics (internal/node/stats.go) registered with this package and with
// github.com/VictoriaMetrics/metrics directly: the same series, updated the same way, written in
// the Prometheus text format. Issue 16 compared the hand-made package this one replaced with the
// library (the commit before the replacement has that version of this file); now it measures
// what this package adds on top of the library (HELP lines, readable histograms).
//
//	go test -run '^$' -bench . -benchmem -count 5 ./internal/metrics

type daemonMetrics struct {
	bytes   [3]func(int64)
	request func()
	latency func(time.Duration)
	write   func(io.Writer)
}

func ours() daemonMetrics {
	var r Registry
	const dl = "Bytes sent to apt, by where they came from."
	var m daemonMetrics
	for i, src := range []string{`source="mirror"`, `source="peer"`, `source="cache"`} {
		c := r.Counter("aptp2p_download_bytes_total", src, dl)
		m.bytes[i] = c.Add
	}
	up := r.Counter("aptp2p_upload_bytes_total", "", "Bytes uploaded to other peers.")
	r.CounterFunc("aptp2p_upload_bytes_copy", "", "x", func() float64 { return float64(up.Load()) })
	req := r.Counter("aptp2p_apt_requests_total", "", "apt requests answered.")
	m.request = req.Inc
	for _, n := range []string{"aptp2p_dht_lookups_total", "aptp2p_verification_failures_total", "aptp2p_cache_dropped_total"} {
		r.Counter(n, "", "x")
	}
	r.Counter("aptp2p_announcements_total", `result="ok"`, "Announcements stored in the DHT.")
	r.Counter("aptp2p_announcements_total", `result="failed"`, "Announcements stored in the DHT.")
	r.Histogram("aptp2p_dht_lookup_seconds", "Time of DHT lookups for downloads.", LatencyBuckets...)
	h := r.Histogram("aptp2p_apt_request_seconds", "Time to answer apt requests (headers).", LatencyBuckets...)
	m.latency = h.Observe
	m.write = func(w io.Writer) { _ = r.WritePrometheus(w) }
	return m
}

func victoria() daemonMetrics {
	s := vm.NewSet()
	var m daemonMetrics
	for i, src := range []string{`source="mirror"`, `source="peer"`, `source="cache"`} {
		c := s.NewCounter(`aptp2p_download_bytes_total{` + src + `}`)
		m.bytes[i] = c.AddInt64
	}
	up := s.NewCounter("aptp2p_upload_bytes_total")
	s.NewGauge("aptp2p_upload_bytes_copy", func() float64 { return float64(up.Get()) })
	req := s.NewCounter("aptp2p_apt_requests_total")
	m.request = req.Inc
	for _, n := range []string{"aptp2p_dht_lookups_total", "aptp2p_verification_failures_total", "aptp2p_cache_dropped_total"} {
		s.NewCounter(n)
	}
	s.NewCounter(`aptp2p_announcements_total{result="ok"}`)
	s.NewCounter(`aptp2p_announcements_total{result="failed"}`)
	s.NewPrometheusHistogramExt("aptp2p_dht_lookup_seconds", LatencyBuckets)
	h := s.NewPrometheusHistogramExt("aptp2p_apt_request_seconds", LatencyBuckets)
	m.latency = func(d time.Duration) { h.Update(d.Seconds()) }
	m.write = s.WritePrometheus
	return m
}

var impls = []struct {
	name string
	make func() daemonMetrics
}{{"package", ours}, {"VictoriaMetrics", victoria}}

// BenchmarkRequestUpdates is what every apt request costs in metrics: a request counter, a byte
// counter and a latency observation, from all CPUs at once (requests are served in parallel).
func BenchmarkRequestUpdates(b *testing.B) {
	for _, impl := range impls {
		b.Run(impl.name, func(b *testing.B) {
			m := impl.make()
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				r := rand.New(rand.NewPCG(1, 2))
				for pb.Next() {
					m.request()
					m.bytes[2](51200)
					m.latency(time.Duration(r.IntN(int(50 * time.Millisecond))))
				}
			})
		})
	}
}

// BenchmarkScrape is one GET /metrics of these series (a Prometheus server asks every 15-60 s).
func BenchmarkScrape(b *testing.B) {
	for _, impl := range impls {
		b.Run(impl.name, func(b *testing.B) {
			m := impl.make()
			for i := range 1000 {
				m.latency(time.Duration(i) * time.Millisecond)
			}
			b.ReportAllocs()
			for b.Loop() {
				m.write(io.Discard)
			}
		})
	}
}
