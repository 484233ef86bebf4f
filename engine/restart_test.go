package engine

import (
	"fmt"
	"slices"
	"testing"
	"time"
)

// §8.2 #3: a restarted node rejoins from its saved routing table with no
// bootstrap node reachable, keeps its ID, and can read values.
func TestRestartFromSavedTable(t *testing.T) {
	dir := t.TempDir()
	nodes := startNet(t, 8, func(i int, c *Config) {
		if i == 7 {
			c.StateDir = dir
		}
	})
	x := nodes[7]
	if _, err := x.FindNode(ctxT(t, 10*time.Second), x.ID()); err != nil {
		t.Fatal(err)
	}
	if tableLen(x) < 2 {
		t.Fatalf("x knows only %d nodes", tableLen(x))
	}
	key := sha1Key("restart")
	if _, err := nodes[3].Put(ctxT(t, 10*time.Second), key, []byte("still here")); err != nil {
		t.Fatal(err)
	}
	oldID := x.ID()
	bootAddr := nodes[0].Addr()
	if err := x.Close(); err != nil {
		t.Fatal(err)
	}
	nodes[0].Close() // the bootstrap node is gone

	cfg := testConfig()
	cfg.StateDir = dir
	y := startNode(t, cfg, bootAddr)
	mustJoin(t, y)
	if y.ID() != oldID {
		t.Fatalf("ID changed across restart: %s → %s", oldID, y.ID())
	}
	if tableLen(y) < 2 {
		t.Fatalf("restarted node knows %d nodes", tableLen(y))
	}
	vals, err := y.GetValues(ctxT(t, 10*time.Second), key)
	if err != nil || len(vals) != 1 || string(vals[0]) != "still here" {
		t.Fatalf("get after restart: %q %v", vals, err)
	}

	// A different version suffix means a new ID (§2.3).
	y.Close()
	cfg.Version = "A001"
	z := startNode(t, cfg, bootAddr)
	if z.ID() == oldID {
		t.Fatal("ID reused across a version change")
	}
	if zid := z.ID(); string(zid[16:]) != "A001" {
		t.Fatalf("suffix %q", zid[16:])
	}
}

// §8.2 #2: RETRIEVE_VALUES = 0 means all values from all nodes.
func TestRetrieveAll(t *testing.T) {
	nodes := startNet(t, 10, func(_ int, c *Config) { c.RetrieveValues = 0 })
	key := sha1Key("all")
	var want []string
	for i := 0; i < 30; i++ {
		v := fmt.Sprintf("v%02d", i)
		want = append(want, v)
		if _, err := nodes[i%len(nodes)].Put(ctxT(t, 10*time.Second), key, []byte(v)); err != nil {
			t.Fatal(err)
		}
	}
	vals, err := nodes[5].GetValues(ctxT(t, 10*time.Second), key)
	if err != nil {
		t.Fatal(err)
	}
	if got := sortedStrings(vals); !slices.Equal(got, want) {
		t.Fatalf("got %q", got)
	}
	// A positive RETRIEVE_VALUES stops after that many values.
	var few [][]byte
	nodes[2].Do(func(c *Core, now time.Time) {
		c.cfg.RetrieveValues = 5
	})
	few, err = nodes[2].GetValues(ctxT(t, 10*time.Second), key)
	if err != nil || len(few) < 5 || len(few) >= 30 {
		t.Fatalf("RETRIEVE_VALUES=5 gave %d values (%v)", len(few), err)
	}
}

// Concurrent gets of one key share one lookup (§2.15).
func TestConcurrentGetsMerged(t *testing.T) {
	nodes := startNet(t, 10, nil)
	key := sha1Key("merged")
	if _, err := nodes[1].Put(ctxT(t, 10*time.Second), key, []byte("m")); err != nil {
		t.Fatal(err)
	}
	n := nodes[6]
	type res struct {
		vals []string
		r    Result
	}
	ch := make(chan res, 2)
	var before uint64
	n.Do(func(c *Core, now time.Time) {
		before = c.st.Lookups
		for i := 0; i < 2; i++ {
			out := &res{}
			c.Get(now, key, func(v []byte) { out.vals = append(out.vals, string(v)) }, func(r Result) {
				out.r = r
				ch <- *out
			})
		}
	})
	for i := 0; i < 2; i++ {
		select {
		case r := <-ch:
			if r.r.Err != nil || !slices.Equal(r.vals, []string{"m"}) {
				t.Fatalf("get %d: %+v", i, r)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("get did not finish")
		}
	}
	var after uint64
	n.Do(func(c *Core, now time.Time) { after = c.st.Lookups })
	if after-before != 2 { // one find_value and one get_value lookup for both callers
		t.Fatalf("%d lookups for two merged gets, want 2", after-before)
	}
}
