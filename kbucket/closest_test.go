package kbucket

import (
	"slices"
	"sort"
	"testing"

	"github.com/apt-p2p/apt-p2p/wire"
)

// origClosest is the original's KTable.findNodes, ported as written: take
// the target's bucket, and while there are fewer than K nodes add both range
// neighbours (i−1 and i+1, then i−2 and i+2, ...), then sort by distance
// and keep K. It serves as the comparison in tests and benchmarks.
func origClosest(t *Table, target wire.ID, k int) []Node {
	var order [MaxBuckets]uint8
	ro := t.rangeOrder(&order)
	ti := t.bucketIndex(&target)
	i := slices.Index(ro, uint8(ti))
	nodes := slices.Clone(t.buckets[ti].nodes)
	if len(nodes) < k {
		lo, hi := i-1, i+1
		for len(nodes) < k && (lo >= 0 || hi < len(ro)) {
			if lo >= 0 {
				nodes = append(nodes, t.buckets[ro[lo]].nodes...)
			}
			if hi < len(ro) {
				nodes = append(nodes, t.buckets[ro[hi]].nodes...)
			}
			lo, hi = lo-1, hi+1
		}
	}
	sort.Slice(nodes, func(a, b int) bool { return target.CloserTo(nodes[a].ID, nodes[b].ID) })
	return nodes[:min(k, len(nodes))]
}

// closestScenario builds the table of testdata/closest.txt: our own ID ..1,
// 8 nodes in our bucket [0.., 2..), 2 in [2.., 4..), 2 in [4.., 8..) and 8 in
// [8.., 2^160).
func closestScenario(t testing.TB) *Table {
	tb := New(mustID(t, "..1"), Config{})
	ins := func(s string, i int) {
		if res, _ := tb.Insert(node(mustID(t, s), i), true, at(i)); res != Added {
			t.Fatalf("insert %s: %v", s, res)
		}
	}
	for i, s := range []string{"..2", "..3", "..4", "..5", "..6", "..7", "..8", "..9",
		"8..1", "8..2", "8..3", "8..4", "8..5", "8..6", "8..7", "8..8", "4..1", "4..2", "2..1", "2..2"} {
		ins(s, i)
	}
	if tb.NumBuckets() != 4 {
		t.Fatalf("scenario has %d buckets", tb.NumBuckets())
	}
	return tb
}

// The original's neighbour borrowing in range order returns farther nodes
// than exist; Closest does not.
func TestClosestOriginalMisses(t *testing.T) {
	tb := closestScenario(t)
	target := mustID(t, "7f..")
	want := bruteClosest(tb, target, 8, nil)
	got := tb.Closest(nil, target, 8)
	if !slices.Equal(ids(got), ids(want)) {
		t.Fatalf("Closest = %v, want %v", ids(got), ids(want))
	}
	orig := origClosest(tb, target, 8)
	far := 0
	for _, n := range orig {
		if n.ID[0] == 0x80 {
			far++
		}
	}
	if far != 4 || slices.Equal(ids(orig), ids(want)) {
		t.Fatalf("original's findNodes gave %v (%d from [8.., 2^160)); expected it to miss our own bucket", ids(orig), far)
	}
	// How often the original is wrong on random tables and targets: it must
	// be sometimes (or the fix would be pointless), ours never.
	r := newRand(40)
	wrong, total := 0, 0
	for range 20 {
		tb := New(randID(r), Config{})
		fillRandom(tb, r, 1000)
		// Targets in every bucket: the original goes wrong where a bucket
		// has fewer than K nodes, which happens near our own ID.
		for c := range tb.NumBuckets() {
			for range 20 {
				target := randID(r)
				copy(target[:], tb.self[:c/8+1])
				target = maskPrefix(target, c) // keep our first c bits...
				for j := c; j < 160; j++ {     // ...then random bits
					if r.IntN(2) == 1 {
						target[j/8] |= 0x80 >> uint(j%8)
					}
				}
				if c < tb.NumBuckets()-1 { // bucket c: bit c differs from ours
					target[c/8] = target[c/8]&^(0x80>>uint(c%8)) | (^tb.self[c/8])&(0x80>>uint(c%8))
				}
				if tb.bucketIndex(&target) != c {
					t.Fatalf("target %s not in bucket %d", target, c)
				}
				want := ids(bruteClosest(tb, target, 8, nil))
				if got := ids(tb.Closest(nil, target, 8)); !slices.Equal(got, want) {
					t.Fatalf("Closest(%s) = %v, want %v", target, got, want)
				}
				if !slices.Equal(ids(origClosest(tb, target, 8)), want) {
					wrong++
				}
				total++
			}
		}
	}
	t.Logf("original findNodes inexact for %d of %d random lookups", wrong, total)
	if wrong == 0 {
		t.Error("original findNodes never wrong on random tables: the test tables are too easy")
	}
}

// §6.5 extra (d): at most k, sorted, and borrowing from other buckets.
func TestClosestSortedAndBorrows(t *testing.T) {
	tb := closestScenario(t)
	target := mustID(t, "4..")
	got := tb.Closest(make([]Node, 0, 8), target, 8)
	if len(got) != 8 {
		t.Fatalf("%d nodes", len(got))
	}
	buckets := map[int]bool{}
	for i, n := range got {
		buckets[tb.bucketIndex(&n.ID)] = true
		if i > 0 && !target.CloserTo(got[i-1].ID, n.ID) {
			t.Fatalf("not sorted at %d: %v", i, ids(got))
		}
	}
	if len(buckets) < 2 {
		t.Fatalf("no borrowing: all from one bucket")
	}
	// dst's existing contents are kept; k larger than the table gives all.
	pre := []Node{{ID: mustID(t, "ff..")}}
	all := tb.Closest(pre, target, 100)
	if len(all) != 1+tb.Len() || all[0].ID != pre[0].ID {
		t.Fatalf("append semantics: %d nodes, first %s", len(all), all[0].ID)
	}
	if got := tb.Closest(nil, target, -1); got != nil {
		t.Fatalf("k<0: %v", got)
	}
}
