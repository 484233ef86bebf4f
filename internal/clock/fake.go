package clock

import (
	"slices"
	"sync"
	"time"
)

// Fake is a Clock that moves only when told to (Advance, Set). Timers due at
// or before the new time fire in order of their due times; AfterFunc
// functions run in their own goroutines, as with the real clock.
type Fake struct {
	mu     sync.Mutex
	now    time.Time
	timers []*fakeTimer
	seq    uint64
	added  chan struct{} // closed and renewed whenever a timer is armed
}

// NewFake returns a Fake clock reading t.
func NewFake(t time.Time) *Fake { return &Fake{now: t, added: make(chan struct{})} }

func (f *Fake) Now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.now
}

func (f *Fake) NewTimer(d time.Duration) Timer {
	t := &fakeTimer{f: f, c: make(chan time.Time, 1)}
	t.Reset(d)
	return t
}

func (f *Fake) AfterFunc(d time.Duration, fn func()) Timer {
	t := &fakeTimer{f: f, fn: fn}
	t.Reset(d)
	return t
}

// Advance moves the clock forward by d, firing the timers that come due.
func (f *Fake) Advance(d time.Duration) { f.Set(f.Now().Add(d)) }

// Set moves the clock to t (never backwards), firing the timers that come due.
func (f *Fake) Set(t time.Time) {
	for {
		f.mu.Lock()
		if len(f.timers) == 0 || f.timers[0].when.After(t) {
			if t.After(f.now) {
				f.now = t
			}
			f.mu.Unlock()
			return
		}
		ft := f.timers[0]
		f.timers = f.timers[1:]
		ft.armed = false
		if ft.when.After(f.now) {
			f.now = ft.when
		}
		now := f.now
		f.mu.Unlock()
		if ft.fn != nil {
			go ft.fn()
		} else {
			select {
			case ft.c <- now:
			default:
			}
		}
	}
}

// Pending is the number of armed timers.
func (f *Fake) Pending() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.timers)
}

// Next is the due time of the earliest armed timer.
func (f *Fake) Next() (time.Time, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.timers) == 0 {
		return time.Time{}, false
	}
	return f.timers[0].when, true
}

// WaitArmed blocks until a timer is armed after the call (or returns at once
// if stop is closed): a test waits for the code under test to start waiting
// before it advances the clock.
func (f *Fake) WaitArmed(stop <-chan struct{}) {
	f.mu.Lock()
	ch := f.added
	f.mu.Unlock()
	select {
	case <-ch:
	case <-stop:
	}
}

// WaitPending blocks until at least n timers are armed: a test waits for the
// code under test to be waiting on the clock (level-triggered, unlike
// WaitArmed, so a timer armed before the call counts).
func (f *Fake) WaitPending(n int) {
	for {
		f.mu.Lock()
		if len(f.timers) >= n {
			f.mu.Unlock()
			return
		}
		ch := f.added
		f.mu.Unlock()
		<-ch
	}
}

type fakeTimer struct {
	f     *Fake
	c     chan time.Time
	fn    func()
	when  time.Time
	seq   uint64
	armed bool
}

func (t *fakeTimer) C() <-chan time.Time { return t.c }

func (t *fakeTimer) Stop() bool {
	f := t.f
	f.mu.Lock()
	defer f.mu.Unlock()
	return t.removeLocked()
}

func (t *fakeTimer) removeLocked() bool {
	if !t.armed {
		return false
	}
	t.armed = false
	f := t.f
	if i := slices.Index(f.timers, t); i >= 0 {
		f.timers = slices.Delete(f.timers, i, i+1)
	}
	return true
}

func (t *fakeTimer) Reset(d time.Duration) bool {
	f := t.f
	f.mu.Lock()
	was := t.removeLocked()
	f.seq++
	t.when, t.seq, t.armed = f.now.Add(d), f.seq, true
	i, _ := slices.BinarySearchFunc(f.timers, t, func(a, b *fakeTimer) int {
		if c := a.when.Compare(b.when); c != 0 {
			return c
		}
		return int(a.seq - b.seq)
	})
	f.timers = slices.Insert(f.timers, i, t)
	close(f.added)
	f.added = make(chan struct{})
	f.mu.Unlock()
	if d <= 0 {
		f.Set(f.Now())
	}
	return was
}
