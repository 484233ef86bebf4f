package metrics

import (
	"strings"
	"testing"
	"time"
)

func TestPrometheusText(t *testing.T) {
	var r Registry
	m := r.Counter("aptp2p_download_bytes_total", `source="mirror"`, "Bytes downloaded, by source.")
	p := r.Counter("aptp2p_download_bytes_total", `source="peer"`, "Bytes downloaded, by source.")
	g := r.Gauge("aptp2p_cache_files", "", "Files in the cache.")
	h := r.Histogram("aptp2p_dht_lookup_seconds", "DHT lookup latency.", 0.1, 1)
	m.Add(100)
	p.Add(2048)
	g.Set(7)
	h.Observe(50 * time.Millisecond)
	h.Observe(500 * time.Millisecond)
	h.Observe(3 * time.Second)
	var b strings.Builder
	if err := r.WritePrometheus(&b); err != nil {
		t.Fatal(err)
	}
	want := `# HELP aptp2p_cache_files Files in the cache.
# TYPE aptp2p_cache_files gauge
aptp2p_cache_files 7
# HELP aptp2p_dht_lookup_seconds DHT lookup latency.
# TYPE aptp2p_dht_lookup_seconds histogram
aptp2p_dht_lookup_seconds_bucket{le="0.1"} 1
aptp2p_dht_lookup_seconds_bucket{le="1"} 2
aptp2p_dht_lookup_seconds_bucket{le="+Inf"} 3
aptp2p_dht_lookup_seconds_sum 3.55
aptp2p_dht_lookup_seconds_count 3
# HELP aptp2p_download_bytes_total Bytes downloaded, by source.
# TYPE aptp2p_download_bytes_total counter
aptp2p_download_bytes_total{source="mirror"} 100
aptp2p_download_bytes_total{source="peer"} 2048
`
	if b.String() != want {
		t.Fatalf("got\n%s\nwant\n%s", b.String(), want)
	}
}

func TestQuantile(t *testing.T) {
	h := NewHistogram(LatencyBuckets...)
	for i := 0; i < 90; i++ {
		h.Observe(20 * time.Millisecond) // (0.01, 0.025]
	}
	for i := 0; i < 10; i++ {
		h.Observe(2 * time.Second) // (1, 2.5]
	}
	if q := h.Quantile(0.5); q <= 10*time.Millisecond || q > 25*time.Millisecond {
		t.Fatalf("p50 = %v", q)
	}
	if q := h.Quantile(0.99); q <= time.Second || q > 2500*time.Millisecond {
		t.Fatalf("p99 = %v", q)
	}
	if NewHistogram(1).Quantile(0.5) != 0 {
		t.Fatal("empty histogram quantile not 0")
	}
}
