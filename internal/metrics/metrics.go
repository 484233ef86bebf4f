// Package metrics holds the daemon's counters and histograms and writes them
// in the Prometheus text exposition format. It is deliberately small: atomic
// counters registered by name, labelled families with a fixed label set, and
// histograms with fixed buckets — enough for /metrics and the status page,
// without a client library.
package metrics

import (
	"fmt"
	"io"
	"math"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Counter is a monotonically increasing value.
type Counter struct{ v atomic.Int64 }

func (c *Counter) Add(n int64) { c.v.Add(n) }
func (c *Counter) Inc()        { c.v.Add(1) }
func (c *Counter) Load() int64 { return c.v.Load() }

// Gauge is a value that goes up and down.
type Gauge struct{ v atomic.Int64 }

func (g *Gauge) Set(n int64) { g.v.Store(n) }
func (g *Gauge) Add(n int64) { g.v.Add(n) }
func (g *Gauge) Load() int64 { return g.v.Load() }

// Histogram counts observations into fixed upper-bound buckets (seconds).
type Histogram struct {
	bounds []float64
	counts []atomic.Int64 // len(bounds)+1, the last is +Inf
	sumNs  atomic.Int64
	n      atomic.Int64
}

// NewHistogram makes a histogram with the given ascending bucket bounds in seconds.
func NewHistogram(bounds ...float64) *Histogram {
	return &Histogram{bounds: bounds, counts: make([]atomic.Int64, len(bounds)+1)}
}

// LatencyBuckets suit DHT lookups and downloads: 5 ms to 30 s.
var LatencyBuckets = []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30}

// Observe records one duration.
func (h *Histogram) Observe(d time.Duration) {
	s := d.Seconds()
	i := sort.SearchFloat64s(h.bounds, s)
	h.counts[i].Add(1)
	h.sumNs.Add(int64(d))
	h.n.Add(1)
}

// Snapshot returns cumulative bucket counts (Prometheus style), the count and the sum.
func (h *Histogram) Snapshot() (bounds []float64, cumulative []int64, count int64, sum time.Duration) {
	cumulative = make([]int64, len(h.counts))
	var acc int64
	for i := range h.counts {
		acc += h.counts[i].Load()
		cumulative[i] = acc
	}
	return h.bounds, cumulative, h.n.Load(), time.Duration(h.sumNs.Load())
}

// Quantile estimates the q-quantile (0..1) by linear interpolation inside buckets.
func (h *Histogram) Quantile(q float64) time.Duration {
	bounds, cum, n, _ := h.Snapshot()
	if n == 0 {
		return 0
	}
	rank := q * float64(n)
	lo := 0.0
	var prev int64
	for i, c := range cum {
		if float64(c) >= rank {
			hi := lo * 2
			if i < len(bounds) {
				hi = bounds[i]
			}
			if c == prev {
				return time.Duration(hi * float64(time.Second))
			}
			f := (rank - float64(prev)) / float64(c-prev)
			return time.Duration((lo + f*(hi-lo)) * float64(time.Second))
		}
		if i < len(bounds) {
			lo = bounds[i]
		}
		prev = c
	}
	return time.Duration(lo * float64(time.Second))
}

// Registry names metrics for /metrics.
type Registry struct {
	mu      sync.Mutex
	entries []entry
}

type entry struct {
	name, help, typ string
	labels          string // `{source="mirror"}` or ""
	value           func() float64
	hist            *Histogram
}

func (r *Registry) add(e entry) {
	r.mu.Lock()
	r.entries = append(r.entries, e)
	r.mu.Unlock()
}

// Counter registers a counter. labels is a Prometheus label set such as
// `source="peer"`, or empty; one name may be registered with several label sets.
func (r *Registry) Counter(name, labels, help string) *Counter {
	c := &Counter{}
	r.add(entry{name: name, help: help, typ: "counter", labels: labels, value: func() float64 { return float64(c.Load()) }})
	return c
}

// Gauge registers a gauge.
func (r *Registry) Gauge(name, labels, help string) *Gauge {
	g := &Gauge{}
	r.add(entry{name: name, help: help, typ: "gauge", labels: labels, value: func() float64 { return float64(g.Load()) }})
	return g
}

// GaugeFunc registers a gauge read from f at scrape time.
func (r *Registry) GaugeFunc(name, labels, help string, f func() float64) {
	r.add(entry{name: name, help: help, typ: "gauge", labels: labels, value: f})
}

// CounterFunc registers a counter read from f at scrape time.
func (r *Registry) CounterFunc(name, labels, help string, f func() float64) {
	r.add(entry{name: name, help: help, typ: "counter", labels: labels, value: f})
}

// Histogram registers a histogram with the given bounds.
func (r *Registry) Histogram(name, help string, bounds ...float64) *Histogram {
	h := NewHistogram(bounds...)
	r.add(entry{name: name, help: help, typ: "histogram", hist: h})
	return h
}

// WritePrometheus writes every metric in the text exposition format, families
// grouped by name with one HELP and TYPE line each.
func (r *Registry) WritePrometheus(w io.Writer) error {
	r.mu.Lock()
	es := append([]entry(nil), r.entries...)
	r.mu.Unlock()
	sort.SliceStable(es, func(i, j int) bool { return es[i].name < es[j].name })
	var b strings.Builder
	last := ""
	for _, e := range es {
		if e.name != last {
			fmt.Fprintf(&b, "# HELP %s %s\n# TYPE %s %s\n", e.name, e.help, e.name, e.typ)
			last = e.name
		}
		if e.hist != nil {
			bounds, cum, n, sum := e.hist.Snapshot()
			for i, c := range cum {
				le := "+Inf"
				if i < len(bounds) {
					le = strconv.FormatFloat(bounds[i], 'g', -1, 64)
				}
				fmt.Fprintf(&b, "%s_bucket{le=%q} %d\n", e.name, le, c)
			}
			fmt.Fprintf(&b, "%s_sum %s\n%s_count %d\n", e.name, fmtFloat(sum.Seconds()), e.name, n)
			continue
		}
		lbl := ""
		if e.labels != "" {
			lbl = "{" + e.labels + "}"
		}
		fmt.Fprintf(&b, "%s%s %s\n", e.name, lbl, fmtFloat(e.value()))
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func fmtFloat(f float64) string {
	if math.IsInf(f, 0) || math.IsNaN(f) {
		return "0"
	}
	if f == math.Trunc(f) && math.Abs(f) < 1e15 {
		return strconv.FormatInt(int64(f), 10)
	}
	return strconv.FormatFloat(f, 'g', -1, 64)
}
