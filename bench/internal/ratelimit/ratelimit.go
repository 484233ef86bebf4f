// Package ratelimit shares one upload rate among every response of an HTTP handler: the
// benchmarks' limited mirror (bench/swarm, bench/loadaware). It is a benchmark harness, not part
// of the daemon.
package ratelimit

import (
	"net/http"
	"sync"
	"time"
)

// Handler serves h with all response bodies together limited to rate bytes/s.
func Handler(h http.Handler, rate int64) http.Handler {
	l := &limiter{perByte: float64(time.Second) / float64(rate)}
	return http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		h.ServeHTTP(&limitedWriter{ResponseWriter: rw, l: l}, r)
	})
}

// limiter hands out transmission slots in arrival order: a write of n bytes
// may start once the writes before it have had their n/rate seconds.
type limiter struct {
	mu      sync.Mutex
	next    time.Time
	perByte float64 // nanoseconds per byte
}

func (l *limiter) wait(n int) {
	l.mu.Lock()
	now := time.Now()
	if l.next.Before(now) {
		l.next = now
	}
	start := l.next
	l.next = l.next.Add(time.Duration(l.perByte * float64(n)))
	l.mu.Unlock()
	if d := time.Until(start); d > 0 {
		time.Sleep(d)
	}
}

// limitedWriter passes body writes through the shared limiter in 32 KiB
// slices. It has no ReadFrom, so io.Copy cannot bypass it with sendfile.
type limitedWriter struct {
	http.ResponseWriter
	l *limiter
}

func (w *limitedWriter) Write(p []byte) (int, error) {
	total := 0
	for len(p) > 0 {
		n := min(len(p), 32<<10)
		w.l.wait(n)
		m, err := w.ResponseWriter.Write(p[:n])
		total += m
		if err != nil {
			return total, err
		}
		p = p[n:]
	}
	return total, nil
}
