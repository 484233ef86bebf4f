package engine

import (
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/apt-p2p/apt-p2p/wire"
)

// slowState is a StateStore whose Save blocks until released, and which
// records how many saves ran at once.
type slowState struct {
	started chan struct{} // one token per Save that began
	release chan struct{} // closed to let saves finish
	fail    error

	mu      sync.Mutex
	saves   int
	last    *State
	active  atomic.Int32
	overlap atomic.Bool
}

func (s *slowState) Load() (*State, error) { return nil, nil }

func (s *slowState) Save(st *State) error {
	if s.active.Add(1) > 1 {
		s.overlap.Store(true)
	}
	defer s.active.Add(-1)
	select {
	case s.started <- struct{}{}:
	default:
	}
	<-s.release
	s.mu.Lock()
	s.saves++
	s.last = st
	s.mu.Unlock()
	return s.fail
}

// Issue 10: the checkpoint saved the state with an fsync on the event loop.
// With a State whose Save blocks, the node keeps answering datagrams and
// API calls; one writer runs at a time, the latest snapshot wins, and Close
// returns only after the last write, with its error.
func TestSlowStateDoesNotBlockLoop(t *testing.T) {
	st := &slowState{started: make(chan struct{}, 1), release: make(chan struct{}), fail: errors.New("disk full")}
	cfg := testConfig()
	cfg.BootstrapNode = true
	cfg.State = st
	cfg.FirstCheckpoint = 10 * time.Millisecond
	cfg.CheckpointInterval = 20 * time.Millisecond
	n := startNode(t, cfg)
	var releaseOnce sync.Once
	release := func() { releaseOnce.Do(func() { close(st.release) }) }
	t.Cleanup(release) // before the node's Close (cleanups run last first)
	mustJoin(t, n)
	select {
	case <-st.started:
	case <-time.After(10 * time.Second):
		t.Fatal("no checkpoint save began")
	}
	// The save is blocked: the loop must still answer a ping over UDP and
	// run API calls, checkpoints included (their snapshots queue).
	rc := newRawClient(t, n.Addr())
	for i := 0; i < 3; i++ {
		if m := rc.call(wire.AppendPing(nil, rc.nextTID(), rc.id)); m.Y != 'r' {
			t.Fatalf("ping while saving: %+v", m)
		}
		time.Sleep(30 * time.Millisecond) // let further checkpoints queue snapshots
	}
	if err := n.Do(func(c *Core, now time.Time) {}); err != nil {
		t.Fatal(err)
	}
	closed := make(chan error, 1)
	go func() { closed <- n.Close() }()
	select {
	case err := <-closed:
		t.Fatalf("Close returned (%v) while a save was still blocked", err)
	case <-time.After(50 * time.Millisecond):
	}
	release()
	if err := <-closed; err == nil || err.Error() != "disk full" {
		t.Fatalf("Close: %v, want the last write's error", err)
	}
	if st.overlap.Load() {
		t.Fatal("two saves ran at once")
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	// The first save, then at most one more: the snapshots queued while it
	// was blocked replaced each other, the last being Close's.
	if st.saves != 2 || st.last == nil || st.last.ID != n.ID() {
		t.Fatalf("%d saves (last %+v), want 2", st.saves, st.last)
	}
}
