package engine

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/apt-p2p/apt-p2p/wire"
)

// TestAcceptance200 runs 200 engines on loopback UDP: after 50 random puts,
// gets from 20 random other nodes each must all return the stored value.
func TestAcceptance200(t *testing.T) {
	nNodes, nPuts, nGets := 200, 50, 20
	if raceEnabled {
		nNodes, nPuts, nGets = 60, 15, 10
	}
	cfg := testConfig()
	cfg.BootstrapNode = true
	boot := startNode(t, cfg)
	mustJoin(t, boot)
	nodes := []*Node{boot}
	for i := 1; i < nNodes; i++ {
		nodes = append(nodes, startNode(t, testConfig(), boot.Addr()))
	}
	ctx := ctxT(t, 60*time.Second)
	parallel(t, len(nodes), 50, func(i int) error { return nodes[i].WaitJoined(ctx) })
	// Nodes that joined early saw a small network: look up our neighbourhood
	// once more, as the original's MultiTest does.
	parallel(t, len(nodes), 50, func(i int) error {
		_, err := nodes[i].FindNode(ctx, nodes[i].ID())
		return err
	})

	rng := rand.New(rand.NewPCG(7, 8))
	type put struct {
		key    wire.ID
		val    []byte
		source int
	}
	puts := make([]put, nPuts)
	for i := range puts {
		for j := range puts[i].key {
			puts[i].key[j] = byte(rng.Uint32())
		}
		puts[i].val = []byte(fmt.Sprintf("v%d-%x", i, rng.Uint64()))
		puts[i].source = rng.IntN(len(nodes))
	}
	putRes := make([]Result, len(puts))

	parallel(t, len(puts), 25, func(i int) error {
		p := puts[i]
		r, err := nodes[p.source].Put(ctx, p.key, p.val)
		putRes[i] = r
		if err == nil && r.Stored < 1 {
			err = fmt.Errorf("stored on no node")
		}
		return err
	})

	type get struct{ put, node int }
	var gets []get
	for i, p := range puts {
		for _, n := range rng.Perm(len(nodes))[:nGets+1] {
			if n != p.source && len(gets) < (i+1)*nGets {
				gets = append(gets, get{i, n})
			}
		}
	}
	var mu sync.Mutex
	missing := 0
	parallel(t, len(gets), 50, func(i int) error {
		g := gets[i]
		vals, err := nodes[g.node].GetValues(ctx, puts[g.put].key)
		if err != nil {
			return err
		}
		for _, v := range vals {
			if bytes.Equal(v, puts[g.put].val) {
				return nil
			}
		}
		mu.Lock()
		missing++
		mu.Unlock()
		holders := 0
		key := puts[g.put].key
		ids := make([]wire.ID, 0, len(nodes))
		for _, nd := range nodes {
			ids = append(ids, nd.ID())
		}
		slices.SortFunc(ids, func(a, b wire.ID) int { return a.Xor(key).Cmp(b.Xor(key)) })
		for _, nd := range nodes {
			nd.Do(func(c *Core, _ time.Time) {
				if c.store.count(key) > 0 {
					holders++
					t.Logf("holder rank %d (putter %v)", slices.Index(ids, c.ID()), nd == nodes[puts[g.put].source])
				}
			})
		}
		src := nodes[puts[g.put].source]
		fr, _ := src.call(ctx, func(now time.Time, done func(Result)) Op { return src.core.FindNode(now, key, done) })
		for _, fn := range fr.Nodes {
			t.Logf("putter's find_node: rank %d", slices.Index(ids, fn.ID))
		}
		t.Logf("put result %+v key %s top %s %s", putRes[g.put], key, ids[0], ids[1])
		t.Logf("putter table %d, rank of putter %d, result %+v", tableLen(src), slices.Index(ids, src.ID()), fr)
		r, _ := nodes[g.node].Get(ctx, puts[g.put].key, nil)
		t.Logf("miss: key %d from node %d: %d holders; retry %+v", g.put, g.node, holders, r)
		return nil
	})
	if missing > 0 {
		t.Fatalf("%d of %d gets did not return the stored value", missing, len(gets))
	}
	t.Logf("%d nodes, %d puts, %d gets: all found", len(nodes), len(puts), len(gets))
}

// parallel runs f(0..n-1) with at most width at a time and fails on the first error.
func parallel(t testing.TB, n, width int, f func(i int) error) {
	t.Helper()
	sem := make(chan struct{}, width)
	errs := make(chan error, n)
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		sem <- struct{}{}
		go func(i int) {
			defer wg.Done()
			defer func() { <-sem }()
			if err := f(i); err != nil {
				errs <- fmt.Errorf("%d: %w", i, err)
			}
		}(i)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}
