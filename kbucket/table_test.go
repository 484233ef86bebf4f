package kbucket

import (
	"crypto/sha1"
	"math/big"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/apt-p2p/apt-p2p/wire"
)

// §6.2 TestIntify: IDs are big-endian integers.
func TestIDKnownIntegers(t *testing.T) {
	var zero, ones wire.ID
	for i := range ones {
		ones[i] = 0xff
	}
	if fromID(zero) != (u192{}) {
		t.Errorf("20×00 = %v, want 0", fromID(zero))
	}
	want := spanOfPrefix(0).sub(u192{0, 0, 1}) // 2^160 − 1
	if fromID(ones) != want {
		t.Errorf("20×ff = %x, want 2^160−1 = %x", fromID(ones), want)
	}
	if new(big.Int).SetBytes(ones[:]).Cmp(new(big.Int).Sub(new(big.Int).Lsh(big.NewInt(1), 160), big.NewInt(1))) != 0 {
		t.Error("big.Int reading of 20×ff is not 2^160−1")
	}
}

// §6.2 testEndianessOnce/Lots: incrementing the last byte adds exactly 1.
func TestIDEndianness(t *testing.T) {
	r := newRand(1)
	for range 1000 {
		a := randID(r)
		if a[19] == 0xff {
			continue
		}
		b := a
		b[19]++
		if fromID(b) != fromID(a).add(u192{0, 0, 1}) || fromID(a).cmp(fromID(b)) != -1 || a.Cmp(b) != -1 {
			t.Fatalf("%s + 1 != %s", a, b)
		}
		if fromID(a).toID() != a {
			t.Fatalf("fromID/toID round trip of %s", a)
		}
	}
}

// §6.2 TestDisantance.testKnown.
func TestXorDistanceKnown(t *testing.T) {
	var zero, ones wire.ID
	for i := range ones {
		ones[i] = 0xff
	}
	if zero.Xor(ones) != ones {
		t.Errorf("d(0, 2^160−1) = %s", zero.Xor(ones))
	}
	for _, s := range []string{"foo", "bar"} {
		x := wire.ID(sha1.Sum([]byte(s)))
		if !x.Xor(x).IsZero() {
			t.Errorf("d(x, x) = %s for sha1(%q)", x.Xor(x), s)
		}
	}
}

// §6.2 testCommutitive: d(x,y) ^ d(y,z) == d(x,z), and d is symmetric.
func TestXorDistanceProperties(t *testing.T) {
	r := newRand(2)
	for range 100 {
		x, y, z := randID(r), randID(r), randID(r)
		if x.Xor(y).Xor(y.Xor(z)) != x.Xor(z) {
			t.Fatalf("d(x,y)^d(y,z) != d(x,z) for %s %s %s", x, y, z)
		}
		if x.Xor(y) != y.Xor(x) {
			t.Fatalf("d(x,y) != d(y,x)")
		}
	}
}

// §6.2 TestRandRange: a ≤ c < b for random a < b, checked against math/big.
func TestRandInRange(t *testing.T) {
	r := newRand(3)
	for range 1000 {
		a, b, rr := randID(r), randID(r), randID(r)
		if r.IntN(4) == 0 { // also narrow ranges
			copy(b[:], a[:r.IntN(20)])
		}
		switch a.Cmp(b) {
		case 0:
			continue
		case 1:
			a, b = b, a
		}
		c := randInRange(a, fromID(b).sub(fromID(a)), rr)
		if a.Cmp(c) > 0 || c.Cmp(b) >= 0 {
			t.Fatalf("c = %s not in [%s, %s)", c, a, b)
		}
		ba, bb, br := new(big.Int).SetBytes(a[:]), new(big.Int).SetBytes(b[:]), new(big.Int).SetBytes(rr[:])
		want := new(big.Int).Add(ba, new(big.Int).Mod(br, new(big.Int).Sub(bb, ba)))
		if new(big.Int).SetBytes(c[:]).Cmp(want) != 0 {
			t.Fatalf("min + r mod (max-min) = %s, math/big says %x", c, want)
		}
	}
	// The whole space: the range of the first bucket is [0, 2^160).
	rr := randID(r)
	if got := randInRange(wire.ID{}, spanOfPrefix(0), rr); got != rr {
		t.Errorf("0 + r mod 2^160 = %s, want r = %s", got, rr)
	}
}

// §6.3 testUpdateLastSeen: answering makes LastSeen strictly later.
func TestLastSeenUpdated(t *testing.T) {
	r := newRand(4)
	tb := New(randID(r), Config{})
	id := randID(r)
	if res, _ := tb.Insert(node(id, 1), true, at(10)); res != Added {
		t.Fatalf("insert: %v", res)
	}
	n, ok := tb.Get(id)
	if !ok || !n.LastSeen.Equal(at(10)) || n.LastSeen.IsZero() {
		t.Fatalf("after first contact: %+v %v", n, ok)
	}
	if res, _ := tb.Insert(node(id, 1), true, at(11)); res != Updated {
		t.Fatalf("re-insert: %v", res)
	}
	m, _ := tb.Get(id)
	if !m.LastSeen.After(n.LastSeen) {
		t.Errorf("LastSeen %v not after %v", m.LastSeen, n.LastSeen)
	}
}

// §6.5 testAddNode: one contacted node lands in the only bucket.
func TestAddNode(t *testing.T) {
	r := newRand(5)
	tb := New(randID(r), Config{})
	n := node(randID(r), 1)
	if res, _ := tb.Insert(n, true, at(1)); res != Added {
		t.Fatalf("insert: %v", res)
	}
	got := tb.Nodes(nil)
	if tb.NumBuckets() != 1 || tb.Len() != 1 || len(got) != 1 || got[0].ID != n.ID || got[0].Addr != n.Addr {
		t.Fatalf("table after one insert: %d buckets, %+v", tb.NumBuckets(), got)
	}
	checkInvariants(t, tb)
}

// §6.5 testRemove: invalidating the node empties the bucket.
func TestRemove(t *testing.T) {
	r := newRand(6)
	tb := New(randID(r), Config{})
	n := node(randID(r), 1)
	tb.Insert(n, true, at(1))
	if !tb.Remove(n.ID) {
		t.Fatal("Remove of a present node returned false")
	}
	if tb.Len() != 0 || len(tb.Nodes(nil)) != 0 {
		t.Fatalf("table not empty: %v", tb.Nodes(nil))
	}
	if _, ok := tb.Get(n.ID); ok {
		t.Fatal("Get finds a removed node")
	}
	if tb.Remove(n.ID) {
		t.Fatal("second Remove returned true")
	}
	checkInvariants(t, tb)
}

// §6.5 testMergeBuckets: 1000 random nodes, then every node of the bucket
// holding our own ID is removed: the two deepest buckets merge once.
func TestMergeBuckets(t *testing.T) {
	r := newRand(7)
	tb := New(randID(r), Config{})
	fillRandom(tb, r, 1000)
	checkInvariants(t, tb)
	nb := tb.NumBuckets()
	if nb < 5 {
		t.Fatalf("1000 random nodes made only %d buckets", nb)
	}
	own := slices.Clone(tb.buckets[nb-1].nodes)
	sibling := len(tb.buckets[nb-2].nodes)
	for _, n := range own {
		if !tb.Remove(n.ID) {
			t.Fatalf("Remove(%s) = false", n.ID)
		}
		checkInvariants(t, tb)
	}
	// The sibling, now merged with the emptied bucket, merges further only
	// if it and the next bucket up fit in one bucket; with 1000 random nodes
	// that bucket is full.
	if len(tb.buckets[nb-3].nodes)+sibling <= tb.K() {
		t.Fatalf("seed gives a double merge; pick another (sizes %d+%d)", len(tb.buckets[nb-3].nodes), sibling)
	}
	if tb.NumBuckets() != nb-1 {
		t.Fatalf("after emptying our bucket: %d buckets, want %d", tb.NumBuckets(), nb-1)
	}
	if tb.Len() != 0 && len(tb.buckets[nb-2].nodes) != sibling {
		t.Fatalf("merged bucket holds %d, want the sibling's %d", len(tb.buckets[nb-2].nodes), sibling)
	}
}

// Removing everything merges back to the single initial bucket.
func TestMergeAll(t *testing.T) {
	r := newRand(8)
	tb := New(randID(r), Config{})
	fillRandom(tb, r, 500)
	all := tb.Nodes(nil)
	r.Shuffle(len(all), func(i, j int) { all[i], all[j] = all[j], all[i] })
	for _, n := range all {
		tb.Remove(n.ID)
		checkInvariants(t, tb)
	}
	if tb.NumBuckets() != 1 || tb.Len() != 0 {
		t.Fatalf("empty table has %d buckets, %d nodes", tb.NumBuckets(), tb.Len())
	}
}

// §6.5 testFail: present after MaxFailures−1 failures, gone after the next.
func TestFail(t *testing.T) {
	r := newRand(9)
	tb := New(randID(r), Config{})
	id := randID(r)
	tb.Insert(node(id, 1), true, at(1))
	for i := 1; i < DefaultMaxFailures; i++ {
		if tb.Failed(id) {
			t.Fatalf("removed after %d failures", i)
		}
		if n, ok := tb.Get(id); !ok || n.Fails != i {
			t.Fatalf("after %d failures: %+v %v", i, n, ok)
		}
	}
	if !tb.Failed(id) {
		t.Fatal("not removed at MaxFailures")
	}
	if _, ok := tb.Get(id); ok || tb.Len() != 0 {
		t.Fatal("still present after MaxFailures")
	}
	if tb.Failed(id) {
		t.Fatal("Failed of an unknown node reports a removal")
	}
}

// Failures must be consecutive: an answer resets the count.
func TestFailResetByContact(t *testing.T) {
	r := newRand(10)
	tb := New(randID(r), Config{MaxFailures: 2})
	id := randID(r)
	tb.Insert(node(id, 1), true, at(1))
	for round := range 5 {
		if tb.Failed(id) {
			t.Fatalf("round %d: removed after one failure with MaxFailures 2", round)
		}
		if res, _ := tb.Insert(node(id, 1), true, at(2+round)); res != Updated {
			t.Fatalf("refresh: %v", res)
		}
		if n, _ := tb.Get(id); n.Fails != 0 {
			t.Fatalf("Fails = %d after an answer", n.Fails)
		}
	}
	// An uncontacted sighting is not an answer.
	tb.Failed(id)
	tb.Insert(node(id, 1), false, at(20))
	if !tb.Failed(id) {
		t.Fatal("uncontacted sighting reset the failure count")
	}
}

// §6.5 extra (a): the 9th contacted node splits the only bucket, again and
// again while the half holding our ID is still full, and lands in the bucket
// whose range covers its ID.
func TestSplit(t *testing.T) {
	self := mustID(t, "c0..") // 1100…
	tb := New(self, Config{})
	for i := range 8 { // all in [2^159, 2^160) with prefix 11: every split keeps them with us
		id := self
		id[19] = byte(i + 1)
		if res, _ := tb.Insert(node(id, i), true, at(i)); res != Added {
			t.Fatalf("fill %d: %v", i, res)
		}
	}
	if tb.NumBuckets() != 1 {
		t.Fatalf("8 nodes: %d buckets", tb.NumBuckets())
	}
	ninth := mustID(t, "80..01") // 1000…: splits at bit 0 (keeps all with us), then bit 1 (goes to the 10 half)
	if res, _ := tb.Insert(node(ninth, 9), true, at(9)); res != Added {
		t.Fatalf("9th: %v", res)
	}
	checkInvariants(t, tb)
	got := tb.Buckets(nil)
	want := []struct {
		min  string
		plen int
		n    int
	}{{"00..", 1, 0}, {"80..", 2, 1}, {"c0..", 2, 8}}
	if len(got) != len(want) {
		t.Fatalf("buckets: %s", dumpTable(tb))
	}
	for i, w := range want {
		if got[i].Min != mustID(t, w.min) || got[i].PrefixLen != w.plen || got[i].Len != w.n {
			t.Errorf("bucket %d: %s/%d n=%d, want %s/%d n=%d", i, got[i].Min, got[i].PrefixLen, got[i].Len, w.min, w.plen, w.n)
		}
	}
	// The first split is in the middle: [0, 2^159) and [2^159, 2^160).
	if got[0].Min != (wire.ID{}) || got[1].Min != mustID(t, "8..") {
		t.Errorf("first split not at 2^159: %s", dumpTable(tb))
	}
}

// §6.5 extra (b): a full bucket not holding our ID offers its oldest node.
func TestFullBucketOffersOldest(t *testing.T) {
	self := mustID(t, "ff..")
	tb := New(self, Config{})
	var lower []wire.ID // all in [0, 2^159), the half without us
	for i := range 9 {
		id := mustID(t, "10..")
		id[19] = byte(i + 1)
		lower = append(lower, id)
	}
	for i := range 8 {
		if res, _ := tb.Insert(node(lower[i], i), true, at(100+i)); res != Added {
			t.Fatalf("insert %d: %v", i, res)
		}
	}
	// The 9th would only fill the lower half after a split: refused, and
	// the table is left as it was (the original split anyway).
	if res, o := tb.Insert(node(lower[8], 8), true, at(108)); res != BucketFull || o.ID != lower[0] || tb.NumBuckets() != 1 {
		t.Fatalf("9th lower node: %v oldest %s, %d buckets", res, o.ID, tb.NumBuckets())
	}
	// A node in our half splits the table in the middle.
	if res, _ := tb.Insert(node(mustID(t, "f0..01"), 50), true, at(150)); res != Added || tb.NumBuckets() != 2 {
		t.Fatalf("upper node: %v, %d buckets", res, tb.NumBuckets())
	}
	// Refresh the first one: the oldest is now lower[1].
	tb.Insert(node(lower[0], 0), true, at(200))
	res, oldest := tb.Insert(node(lower[8], 8), true, at(201))
	if res != BucketFull || oldest.ID != lower[1] {
		t.Fatalf("insert into full bucket: %v oldest %s, want bucket-full %s", res, oldest.ID, lower[1])
	}
	if !oldest.LastSeen.Equal(at(101)) {
		t.Errorf("oldest LastSeen %v", oldest.LastSeen)
	}
	// Uncontacted, too: the caller may ping the oldest to make room.
	if res, o := tb.Insert(node(lower[8], 8), false, at(202)); res != BucketFull || o.ID != lower[1] {
		t.Fatalf("uncontacted into full bucket: %v %s", res, o.ID)
	}
	// Evicting the oldest makes room for the newcomer.
	tb.Remove(oldest.ID)
	if res, _ := tb.Insert(node(lower[8], 8), true, at(203)); res != Added {
		t.Fatalf("after eviction: %v", res)
	}
	checkInvariants(t, tb)
}

// §6.5 extra (c), and §8.2 item 4: an uncontacted node never enters, not
// into a bucket with room and not after a split.
func TestUncontactedNotAdded(t *testing.T) {
	r := newRand(11)
	self := randID(r)
	tb := New(self, Config{})
	id := randID(r)
	if res, _ := tb.Insert(node(id, 1), false, at(1)); res != NeedsPing {
		t.Fatalf("uncontacted into room: %v", res)
	}
	if tb.Len() != 0 {
		t.Fatal("uncontacted node added")
	}
	// Fill our bucket so that the next node would need a split.
	for i := range 8 {
		n := self
		n[19] ^= byte(i + 1)
		tb.Insert(node(n, i+2), true, at(2+i))
	}
	before := tb.NumBuckets()
	far := self
	far[0] ^= 0x80
	if res, _ := tb.Insert(node(far, 20), false, at(20)); res != NeedsPing {
		t.Fatalf("uncontacted needing a split: %v", res)
	}
	if tb.Len() != 8 || tb.NumBuckets() != before {
		t.Fatalf("uncontacted node changed the table: %d nodes, %d buckets", tb.Len(), tb.NumBuckets())
	}
	if res, _ := tb.Insert(node(far, 20), true, at(21)); res != Added || tb.NumBuckets() != 2 {
		t.Fatalf("same node, contacted: %v, %d buckets", res, tb.NumBuckets())
	}
	checkInvariants(t, tb)
}

func TestIgnored(t *testing.T) {
	r := newRand(12)
	self := randID(r)
	tb := New(self, Config{})
	id := randID(r)
	cases := []struct {
		name string
		n    Node
	}{
		{"own ID", node(self, 1)},
		{"zero ID", node(wire.ID{}, 1)},
		{"private address", Node{ID: id, Addr: netip.MustParseAddrPort("192.168.1.2:6881")}},
		{"mapped loopback", Node{ID: id, Addr: netip.MustParseAddrPort("[::ffff:127.0.0.1]:6881")}},
		{"port 0", Node{ID: id, Addr: netip.MustParseAddrPort("11.1.1.1:0")}},
		{"no address", Node{ID: id}},
	}
	for _, c := range cases {
		for _, contacted := range []bool{true, false} {
			if res, _ := tb.Insert(c.n, contacted, at(1)); res != Ignored {
				t.Errorf("%s (contacted=%v): %v", c.name, contacted, res)
			}
		}
	}
	if tb.Len() != 0 {
		t.Fatalf("table holds %d nodes", tb.Len())
	}
	// With AllowLocal, private addresses are fine.
	lt := New(self, Config{AllowLocal: true})
	if res, _ := lt.Insert(Node{ID: id, Addr: netip.MustParseAddrPort("127.0.0.2:6881")}, true, at(1)); res != Added {
		t.Fatalf("loopback with AllowLocal: %v", res)
	}
	// An uncontacted re-sighting changes nothing, not even the address.
	if res, _ := lt.Insert(Node{ID: id, Addr: netip.MustParseAddrPort("127.0.0.3:6881")}, false, at(2)); res != Ignored {
		t.Fatalf("uncontacted re-sighting: %v", res)
	}
	if n, _ := lt.Get(id); n.Addr.String() != "127.0.0.2:6881" || !n.LastSeen.Equal(at(1)) {
		t.Fatalf("re-sighting changed the node: %+v", n)
	}
}

// A contacted re-insert keeps the new address and moves the node to the end.
func TestUpdateMovesToEnd(t *testing.T) {
	r := newRand(13)
	tb := New(randID(r), Config{})
	var all []wire.ID
	for i := range 5 {
		id := randID(r)
		all = append(all, id)
		tb.Insert(node(id, i), true, at(i))
	}
	// Same-bucket nodes (one bucket): refresh the first.
	newAddr := netip.MustParseAddrPort("12.0.0.1:7000")
	if res, _ := tb.Insert(Node{ID: all[0], Addr: newAddr}, true, at(10)); res != Updated {
		t.Fatalf("refresh: %v", res)
	}
	got := ids(tb.Nodes(nil))
	want := append(slices.Clone(all[1:]), all[0])
	if !slices.Equal(got, want) {
		t.Fatalf("order after refresh:\n got %v\nwant %v", got, want)
	}
	if n, _ := tb.Get(all[0]); n.Addr != newAddr {
		t.Fatalf("address not updated: %v", n.Addr)
	}
	// A clock that goes backwards still leaves the bucket ordered by LastSeen.
	tb.Insert(node(all[1], 1), true, at(2))
	checkInvariants(t, tb)
}

// With K = 1 and one node per bit of distance the table reaches MaxBuckets.
func TestMaxBuckets(t *testing.T) {
	r := newRand(14)
	self := randID(r)
	tb := New(self, Config{K: 1})
	for i := 159; i >= 0; i-- {
		id := self
		id[i/8] ^= 0x80 >> uint(i%8)
		if res, _ := tb.Insert(node(id, i), true, at(160-i)); res != Added {
			t.Fatalf("node differing at bit %d: %v", i, res)
		}
		checkInvariants(t, tb)
	}
	if tb.NumBuckets() != MaxBuckets || tb.Len() != 160 {
		t.Fatalf("%d buckets, %d nodes", tb.NumBuckets(), tb.Len())
	}
	other := self
	other[0] ^= 0x80
	other[19] ^= 1
	if res, o := tb.Insert(node(other, 999), true, at(999)); res != BucketFull || o.ID[0] != other[0] {
		t.Fatalf("into a full 1-node bucket: %v %s", res, o.ID)
	}
}

// Random operations keep every invariant and Closest exact.
func TestRandomOperations(t *testing.T) {
	ops := 6000
	if raceEnabled {
		ops = 1500
	}
	for seed := uint64(0); seed < 4; seed++ {
		r := newRand(100 + seed)
		self := randID(r)
		k := []int{8, 2, 3, 20}[seed]
		tb := New(self, Config{K: k, MaxFailures: 3})
		// Draw IDs from a small pool, many of them near our own ID, so that
		// re-insertions, deep splits and merges all happen.
		pool := make([]wire.ID, 300)
		for i := range pool {
			pool[i] = randID(r)
			if i%2 == 0 {
				keep := r.IntN(20)
				copy(pool[i][:keep], self[:keep])
			}
		}
		var dst []Node
		for op := range ops {
			id := pool[r.IntN(len(pool))]
			now := at(op)
			switch x := r.IntN(10); {
			case x < 5:
				_, before := tb.Get(id)
				res, oldest := tb.Insert(node(id, op), true, now)
				switch res {
				case Added, Updated:
					if n, ok := tb.Get(id); !ok || !n.LastSeen.Equal(now) || (res == Updated) != before {
						t.Fatalf("op %d: %v but Get says %+v %v (before %v)", op, res, n, ok, before)
					}
				case BucketFull:
					if _, ok := tb.Get(oldest.ID); !ok || before {
						t.Fatalf("op %d: bucket-full with oldest %s not in table", op, oldest.ID)
					}
				default:
					t.Fatalf("op %d: contacted insert gave %v", op, res)
				}
			case x < 7:
				nb, n := tb.NumBuckets(), tb.Len()
				res, _ := tb.Insert(node(id, op), false, now)
				if tb.NumBuckets() != nb || tb.Len() != n || res == Added || res == Updated {
					t.Fatalf("op %d: uncontacted insert %v changed the table", op, res)
				}
			case x < 9:
				tb.Failed(id)
			default:
				tb.Remove(id)
			}
			if err := invariantError(tb); err != nil {
				t.Fatalf("seed %d op %d: %v\n%s", seed, op, err, dumpTable(tb))
			}
			if op%7 == 0 {
				target := pool[r.IntN(len(pool))]
				target[19] ^= byte(r.Uint32())
				kk := 1 + r.IntN(2*k)
				dst = tb.Closest(dst[:0], target, kk)
				if want := bruteClosest(tb, target, kk, nil); !slices.Equal(ids(dst), ids(want)) {
					t.Fatalf("op %d: Closest(%s, %d) = %v, want %v", op, target, kk, ids(dst), ids(want))
				}
			}
		}
	}
}

func TestTouchAndStaleBuckets(t *testing.T) {
	r := newRand(15)
	self := randID(r)
	tb := New(self, Config{})
	fillRandom(tb, r, 300)
	nb := tb.NumBuckets()
	fill := func(b []byte) {
		for i := range b {
			b[i] = byte(r.Uint32())
		}
	}
	// Never touched: every bucket is stale (the original refreshes all at start).
	stale := tb.StaleBuckets(nil, at(0), time.Hour, fill)
	if len(stale) != nb {
		t.Fatalf("%d stale of %d fresh-from-New buckets", len(stale), nb)
	}
	infos := tb.Buckets(nil)
	for i, id := range stale {
		if commonPrefixLen(id, infos[i].Min) < infos[i].PrefixLen {
			t.Fatalf("random ID %s outside bucket %s/%d", id, infos[i].Min, infos[i].PrefixLen)
		}
	}
	// A lookup for each stale target touches its bucket; then none is stale
	// until the staleness passes.
	for _, id := range stale {
		tb.Touch(id, at(1000))
	}
	if s := tb.StaleBuckets(nil, at(1000+3600), time.Hour, fill); len(s) != 0 {
		t.Fatalf("stale right after touching all: %v", s)
	}
	tb.Touch(self, at(2000))
	s := tb.StaleBuckets(nil, at(1000+3601), time.Hour, fill)
	if len(s) != nb-1 {
		t.Fatalf("%d stale, want all but ours (%d)", len(s), nb-1)
	}
	for _, id := range s {
		if tb.bucketIndex(&id) == nb-1 {
			t.Fatalf("our touched bucket reported stale")
		}
	}
}

func mustID(tb testing.TB, s string) wire.ID {
	tb.Helper()
	id, err := parseShortID(s)
	if err != nil {
		tb.Fatal(err)
	}
	return id
}
