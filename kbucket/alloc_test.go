//go:build !race

package kbucket

import (
	"testing"

	"github.com/apt-p2p/apt-p2p/wire"
)

// The routing table sits on the per-packet path: every query answered calls
// Closest, every packet received calls Insert. Neither may allocate.
func TestNoAllocs(t *testing.T) {
	r := newRand(30)
	tb := New(randID(r), Config{})
	fillRandom(tb, r, 1000)
	all := tb.Nodes(nil)
	targets := make([]wire.ID, 64)
	for i := range targets {
		targets[i] = randID(r)
	}
	dst := make([]Node, 0, 8)
	i := 0
	check := func(name string, f func()) {
		t.Helper()
		if n := testing.AllocsPerRun(200, f); n != 0 {
			t.Errorf("%s: %v allocs per run", name, n)
		}
	}
	check("Closest", func() {
		dst = tb.Closest(dst[:0], targets[i%len(targets)], 8)
		i++
	})
	check("ClosestExcluding", func() {
		dst = tb.ClosestExcluding(dst[:0], targets[i%len(targets)], 8, all[0].ID)
		i++
	})
	now := at(5000)
	check("Insert updated", func() {
		n := all[i%len(all)]
		if res, _ := tb.Insert(n, true, now); res != Updated {
			t.Fatalf("Insert: %v", res)
		}
		i++
	})
	check("Insert uncontacted / full / ignored", func() {
		n := node(targets[i%len(targets)], i)
		tb.Insert(n, false, now)
		tb.Insert(n, true, now) // mostly bucket-full with 1000 random nodes
		tb.Insert(node(tb.Self(), 1), true, now)
		i++
	})
	check("Get/Touch", func() {
		n := all[i%len(all)]
		tb.Get(n.ID)
		tb.Touch(n.ID, now)
		i++
	})
	var node0 = tb.Nodes(nil)[0]
	check("Failed", func() {
		tb.Failed(node0.ID)
		tb.Insert(node0, true, now)
	})
	checkInvariants(t, tb)

	// Remove then re-add a node whose removal merges three buckets into
	// one: the re-insert splits twice, reusing the merged buckets' storage.
	st := New(mustID(t, "c..1"), Config{})
	for j := range 8 {
		id := mustID(t, "c..")
		id[19] = byte(j + 2)
		st.Insert(node(id, j), true, at(j))
	}
	x := node(mustID(t, "8..1"), 100)
	st.Insert(x, true, at(10))
	if st.NumBuckets() != 3 {
		t.Fatalf("setup: %d buckets", st.NumBuckets())
	}
	check("Remove+Insert (merge and split)", func() {
		st.Remove(x.ID)
		if st.NumBuckets() != 1 {
			t.Fatalf("no merge: %d buckets", st.NumBuckets())
		}
		if res, _ := st.Insert(x, true, now); res != Added || st.NumBuckets() != 3 {
			t.Fatalf("re-insert: %v, %d buckets", res, st.NumBuckets())
		}
	})
	checkInvariants(t, st)
}
