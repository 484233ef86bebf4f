// Package membudget keeps the daemon's resident memory near what it uses: a soft limit for the
// Go runtime (MEMORY_LIMIT) and the release of freed memory to the operating system once a burst
// (an index load, thousands of downloads) is over. Without it the runtime keeps the pages of a
// burst's peak: 250 MiB resident after 10 000 small downloads that needed 40 (bench/RESULTS.md,
// memory section).
//
// It is not an allocator or a cache policy: it only tells the runtime its budget and when to give
// memory back.
package membudget

import (
	"context"
	"math"
	"runtime/debug"
	"runtime/metrics"
	"time"
)

// SetLimit sets the runtime's soft memory limit (debug.SetMemoryLimit) to limit bytes; 0 or less
// removes it. Near the limit the garbage collector runs more often (at most about half the CPU
// when the live heap alone exceeds it), and the scavenger returns memory above it to the OS.
func SetLimit(limit int64) {
	if limit <= 0 {
		limit = math.MaxInt64
	}
	debug.SetMemoryLimit(limit)
}

// Release collects garbage and returns every free page to the operating system now
// (debug.FreeOSMemory): after a big transient allocation such as an index load.
func Release() { debug.FreeOSMemory() }

// Sample is what the Releaser decides on.
type Sample struct {
	Allocated uint64 // bytes allocated on the heap since the process started (cumulative)
	Retained  uint64 // heap bytes held from the OS beyond the live heap at the last GC
}

// ReadSample reads the runtime's counters.
func ReadSample() Sample {
	s := []metrics.Sample{
		{Name: "/gc/heap/allocs:bytes"},
		{Name: "/memory/classes/heap/free:bytes"},
		{Name: "/memory/classes/heap/objects:bytes"},
		{Name: "/memory/classes/heap/unused:bytes"},
		{Name: "/gc/heap/live:bytes"},
	}
	metrics.Read(s)
	u := func(i int) uint64 {
		if s[i].Value.Kind() != metrics.KindUint64 {
			return 0
		}
		return s[i].Value.Uint64()
	}
	held := u(1) + u(2) + u(3)
	live := u(4)
	var retained uint64
	if held > live {
		retained = held - live
	}
	return Sample{Allocated: u(0), Retained: retained}
}

// Clock is the time source of a Releaser.
type Clock interface {
	After(d time.Duration) <-chan time.Time
}

type realClock struct{}

func (realClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

// Releaser returns memory to the OS once a burst is over: at each tick, if the process holds much
// more heap than it had live at the last collection and either allocated little since the
// previous tick (it is quiet) or was last released long ago, it calls Release. A busy process is
// otherwise left alone: the pages would be faulted back in at once.
type Releaser struct {
	Every     time.Duration // tick; 0 = 1 s
	QuietRate uint64        // bytes/s allocated below which the process counts as quiet; 0 = 1 MiB/s
	MinExcess uint64        // retained bytes worth a release; 0 = 8 MiB
	// MaxWait is how long a busy process may hold MinExcess before it is released anyway;
	// 0 = 30 s.
	MaxWait  time.Duration
	Clock    Clock         // nil = the real clock
	Read     func() Sample // nil = ReadSample
	Release  func()        // nil = Release
	Released func()        // if set, called after each release (statistics, tests)
}

// Run ticks until ctx ends.
func (r *Releaser) Run(ctx context.Context) {
	every, quiet, excess, maxWait := r.Every, r.QuietRate, r.MinExcess, r.MaxWait
	if every <= 0 {
		every = time.Second
	}
	if maxWait <= 0 {
		maxWait = 30 * time.Second
	}
	if quiet == 0 {
		quiet = 1 << 20
	}
	if excess == 0 {
		excess = 8 << 20
	}
	clk, read, release := r.Clock, r.Read, r.Release
	if clk == nil {
		clk = realClock{}
	}
	if read == nil {
		read = ReadSample
	}
	if release == nil {
		release = Release
	}
	prev := read()
	var since time.Duration // since the last release (ticks counted)
	for {
		select {
		case <-ctx.Done():
			return
		case <-clk.After(every):
		}
		since += every
		cur := read()
		rate := float64(cur.Allocated-prev.Allocated) / every.Seconds()
		prev = cur
		if cur.Retained >= excess && (rate < float64(quiet) || since >= maxWait) {
			since = 0
			release()
			if r.Released != nil {
				r.Released()
			}
			prev = read()
		}
	}
}
