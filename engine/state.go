package engine

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/apt-p2p/apt-p2p/wire"
)

// State is what a node persists across restarts: its ID and routing table.
type State struct {
	ID    wire.ID
	Nodes []wire.Node
}

// StateStore loads and saves State. Load returns nil, nil when there is none.
type StateStore interface {
	Load() (*State, error)
	Save(*State) error
}

// FileState keeps the state in Dir/dht-state.json, replaced atomically
// (write to a temporary file, fsync, rename, fsync the directory).
type FileState struct {
	Dir string
}

const stateFile = "dht-state.json"

type stateJSON struct {
	ID    string   `json:"id"`
	Nodes []string `json:"nodes"` // "hexid@ip:port"
}

// Load reads the saved state; a missing file is not an error.
func (f FileState) Load() (*State, error) {
	b, err := os.ReadFile(filepath.Join(f.Dir, stateFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("engine: loading state: %w", err)
	}
	var sj stateJSON
	if err := json.Unmarshal(b, &sj); err != nil {
		return nil, fmt.Errorf("engine: state file %s: %w", filepath.Join(f.Dir, stateFile), err)
	}
	id, err := wire.ParseID(sj.ID)
	if err != nil {
		return nil, fmt.Errorf("engine: state file: %w", err)
	}
	st := &State{ID: id}
	for _, s := range sj.Nodes {
		if len(s) < 2*wire.IDLen+2 || s[2*wire.IDLen] != '@' {
			continue
		}
		nid, err := wire.ParseID(s[:2*wire.IDLen])
		if err != nil {
			continue
		}
		ap, err := netip.ParseAddrPort(s[2*wire.IDLen+1:])
		if err != nil {
			continue
		}
		st.Nodes = append(st.Nodes, wire.Node{ID: nid, Addr: ap})
	}
	return st, nil
}

// Save writes the state atomically.
func (f FileState) Save(st *State) error {
	sj := stateJSON{ID: st.ID.String()}
	for _, n := range st.Nodes {
		sj.Nodes = append(sj.Nodes, n.ID.String()+"@"+n.Addr.String())
	}
	b, err := json.Marshal(&sj)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(f.Dir, 0o755); err != nil {
		return fmt.Errorf("engine: saving state: %w", err)
	}
	tmp, err := os.CreateTemp(f.Dir, stateFile+".tmp*")
	if err != nil {
		return fmt.Errorf("engine: saving state: %w", err)
	}
	_, err = tmp.Write(b)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), filepath.Join(f.Dir, stateFile))
	}
	if err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("engine: saving state: %w", err)
	}
	if d, err := os.Open(f.Dir); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}

// SaveState persists the state now (the checkpoint does it periodically;
// the runner also calls it on Close).
func (c *Core) SaveState() error {
	if c.cfg.State == nil {
		return nil
	}
	st := &State{ID: c.id}
	for _, n := range c.table.Nodes(nil) {
		st.Nodes = append(st.Nodes, wire.Node{ID: n.ID, Addr: n.Addr})
	}
	err := c.cfg.State.Save(st)
	if err != nil {
		c.st.SaveErrors++
	}
	return err
}

// refreshBuckets runs a find_node for a random ID in every bucket not
// looked up for staleness (every bucket when staleness < 0).
func (c *Core) refreshBuckets(now time.Time, staleness time.Duration) {
	for _, target := range c.table.StaleBuckets(nil, now, staleness, func(b []byte) { c.rng.Read(b) }) {
		c.st.Refreshes++
		c.findNode(now, target, nil)
	}
}

// checkpoint is the periodic maintenance of §2.13: rotate the token
// secrets, save the state, expire values, refresh stale buckets.
func (c *Core) checkpoint(now time.Time) {
	c.tok.rotate(c.randID())
	c.SaveState()
	c.st.ValuesExpired += uint64(c.store.expire(now.Add(-c.cfg.KeyExpire)))
	c.refreshBuckets(now, c.cfg.BucketStaleness)
	for id := range c.probation {
		if _, ok := c.table.Get(id); !ok {
			delete(c.probation, id)
		}
	}
	// A node that lost every contact (long churn, network change) joins again.
	if c.join.joined && c.table.Len() == 0 && !c.join.inProgress && len(c.join.bootstrap) > 0 {
		c.joinAttempt(now)
	}
	// Next one after CHECKPOINT_INTERVAL ±10%.
	iv := c.cfg.CheckpointInterval
	jitter := time.Duration(c.rng.Uint64()%uint64(iv/5+1)) - iv/10
	c.addTimer(timer{at: now.Add(iv + jitter), kind: timerCheckpoint})
}

// asyncState moves durable writes off the event loop: the loop takes the
// snapshot (Core.SaveState builds a fresh State from the table) and Save
// only hands it over. One writer goroutine at a time saves through the
// wrapped StateStore; snapshots that arrive while it writes replace each
// other, so the latest wins and a slow disk never queues up old ones. wait
// blocks until the last handed-over snapshot is written.
type asyncState struct {
	inner StateStore

	mu      sync.Mutex
	pending *State
	running bool
	lastErr error // of the last write
	errs    uint64
	wg      sync.WaitGroup
}

func (a *asyncState) Load() (*State, error) { return a.inner.Load() }

// Save queues st for writing and returns at once.
func (a *asyncState) Save(st *State) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.pending = st
	if !a.running {
		a.running = true
		a.wg.Add(1)
		go a.write()
	}
	return nil
}

func (a *asyncState) write() {
	defer a.wg.Done()
	for {
		a.mu.Lock()
		st := a.pending
		a.pending = nil
		if st == nil {
			a.running = false
			a.mu.Unlock()
			return
		}
		a.mu.Unlock()
		err := a.inner.Save(st)
		a.mu.Lock()
		a.lastErr = err
		if err != nil {
			a.errs++
		}
		a.mu.Unlock()
	}
}

// wait blocks until nothing is left to write and returns the last write's
// error. Saves must have stopped (the loop has ended).
func (a *asyncState) wait() error {
	a.wg.Wait()
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.lastErr
}

// errors is the number of failed writes so far.
func (a *asyncState) errors() uint64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.errs
}
