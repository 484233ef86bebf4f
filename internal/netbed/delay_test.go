package netbed

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"
)

// fakeClock: Now is the arrival time the fake source set for the frame it
// returned last; SleepUntil records the time asked for and returns at once,
// optionally after waiting on gate (to hold the writer while frames pile up).
type fakeClock struct {
	mu     sync.Mutex
	now    time.Time
	sleeps []time.Time
	gate   chan struct{}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) SleepUntil(t time.Time) {
	if c.gate != nil {
		<-c.gate
	}
	c.mu.Lock()
	c.sleeps = append(c.sleeps, t)
	c.mu.Unlock()
}

// fakeSrc hands out frames, setting the clock to each one's arrival time,
// then fails as a closed TAP device does.
type fakeSrc struct {
	clk    *fakeClock
	frames []string
	at     []time.Time
	i      int
	after  chan struct{} // closed once every frame has been read
}

var errFakeClosed = errors.New("closed")

func (s *fakeSrc) Read(p []byte) (int, error) {
	if s.i == len(s.frames) {
		close(s.after)
		return 0, errFakeClosed
	}
	s.clk.mu.Lock()
	s.clk.now = s.at[s.i]
	s.clk.mu.Unlock()
	n := copy(p, s.frames[s.i])
	s.i++
	return n, nil
}

func (s *fakeSrc) Write(p []byte) (int, error) { return 0, errFakeClosed }

type fakeDst struct {
	mu  sync.Mutex
	got []string
}

func (d *fakeDst) Read(p []byte) (int, error) { return 0, errFakeClosed }

func (d *fakeDst) Write(p []byte) (int, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.got = append(d.got, string(p))
	return len(p), nil
}

func TestDelayLineOrderAndDelay(t *testing.T) {
	t0 := time.Unix(1000, 0)
	clk := &fakeClock{}
	src := &fakeSrc{clk: clk, after: make(chan struct{})}
	for i := range 50 {
		src.frames = append(src.frames, fmt.Sprintf("frame-%02d", i))
		src.at = append(src.at, t0.Add(time.Duration(i*i)*time.Microsecond))
	}
	dst := &fakeDst{}
	const delay = 20 * time.Millisecond
	l := newDelayLine(src, dst, delay, clk, 64)
	l.run()
	if len(dst.got) != len(src.frames) {
		t.Fatalf("forwarded %d of %d frames", len(dst.got), len(src.frames))
	}
	for i, f := range dst.got {
		if f != src.frames[i] {
			t.Fatalf("frame %d is %q, want %q: order not kept", i, f, src.frames[i])
		}
		if want := src.at[i].Add(delay); !clk.sleeps[i].Equal(want) {
			t.Errorf("frame %d written at %v, want arrival+delay %v", i, clk.sleeps[i], want)
		}
	}
	if l.Forwarded.Load() != 50 || l.Dropped.Load() != 0 {
		t.Errorf("counters: forwarded %d dropped %d", l.Forwarded.Load(), l.Dropped.Load())
	}
}

// A line that is full drops what arrives, as a full queue does, and counts it.
func TestDelayLineDropsWhenFull(t *testing.T) {
	clk := &fakeClock{gate: make(chan struct{})}
	src := &fakeSrc{clk: clk, after: make(chan struct{})}
	for i := range 10 {
		src.frames = append(src.frames, fmt.Sprint(i))
		src.at = append(src.at, time.Unix(0, int64(i)))
	}
	dst := &fakeDst{}
	l := newDelayLine(src, dst, time.Millisecond, clk, 3)
	done := make(chan struct{})
	go func() { l.run(); close(done) }()
	<-src.after // everything read while the writer is held at its first frame
	close(clk.gate)
	<-done
	// The writer took frame 0 off the queue, 3 more fit; 6 were dropped.
	if got, drop := l.Forwarded.Load(), l.Dropped.Load(); got+drop != 10 || drop < 6 {
		t.Fatalf("forwarded %d, dropped %d of 10 through a 3-frame line", got, drop)
	}
	for i := 1; i < len(dst.got); i++ {
		if dst.got[i] <= dst.got[i-1] {
			t.Fatalf("order broken: %v", dst.got)
		}
	}
}
