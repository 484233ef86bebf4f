package membudget

import (
	"context"
	"testing"
	"time"
)

// tickClock fires one tick per value sent on ticks and says when someone waits for one.
type tickClock struct {
	ticks   chan time.Time
	waiting chan struct{}
}

func (c tickClock) After(time.Duration) <-chan time.Time {
	c.waiting <- struct{}{}
	return c.ticks
}

// TestReleaserReleasesAfterABurst: memory is given back on the first quiet tick with enough
// retained heap, not while the process allocates fast, and not when little is retained.
func TestReleaserReleasesAfterABurst(t *testing.T) {
	samples := make(chan Sample)
	released := make(chan struct{}, 10)
	clk := tickClock{make(chan time.Time), make(chan struct{})}
	r := &Releaser{
		Every: time.Second, QuietRate: 1 << 20, MinExcess: 8 << 20, MaxWait: 10 * time.Second, Clock: clk,
		Read:    func() Sample { return <-samples },
		Release: func() { released <- struct{}{} },
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { r.Run(ctx); close(done) }()
	var alloc uint64
	// step ticks once with the sample the Releaser reads then, and reports whether it released.
	step := func(allocated, retained uint64) bool {
		t.Helper()
		clk.ticks <- time.Time{}
		samples <- Sample{Allocated: allocated, Retained: retained}
		select {
		case <-released:
			samples <- Sample{Allocated: allocated} // read again after the release
			<-clk.waiting
			return true
		case <-clk.waiting:
			return false
		}
	}
	samples <- Sample{} // the first read, at start
	<-clk.waiting
	// A burst: 200 MiB/s allocated, 100 MiB retained: busy, left alone.
	for range 3 {
		alloc += 200 << 20
		if step(alloc, 100<<20) {
			t.Fatal("released during the burst")
		}
	}
	// Quiet now, 100 MiB retained: released.
	if !step(alloc, 100<<20) {
		t.Fatal("not released once quiet after the burst")
	}
	// Quiet, nothing retained: nothing to do.
	if step(alloc, 0) {
		t.Fatal("released with nothing retained")
	}
	// Quiet but only 4 MiB retained: not worth a collection.
	if step(alloc, 4<<20) {
		t.Fatal("released for 4 MiB")
	}
	// Busy for long with much retained: released after MaxWait since the last release.
	releases := 0
	for i := range 12 {
		alloc += 200 << 20
		if step(alloc, 100<<20) {
			releases++
			// 2 ticks had passed since the last release: the 10th tick is the 8th here.
			if i != 7 {
				t.Fatalf("released after %d busy ticks, want 8", i+1)
			}
		}
	}
	if releases != 1 {
		t.Fatalf("%d releases in 12 busy seconds with MaxWait 10 s, want 1", releases)
	}
	cancel()
	<-done
}

// TestReadSample: the runtime's counters are read and consistent.
func TestReadSample(t *testing.T) {
	a := ReadSample()
	sink = make([]byte, 4<<20)
	b := ReadSample()
	if b.Allocated < a.Allocated+4<<20 {
		t.Fatalf("allocated %d then %d after a 4 MiB allocation", a.Allocated, b.Allocated)
	}
	sink = nil
	Release()
	if c := ReadSample(); c.Retained > b.Retained+1<<20 && c.Retained > 8<<20 {
		t.Fatalf("retained %d after Release (was %d)", c.Retained, b.Retained)
	}
}

var sink []byte
