package kbucket

import (
	"encoding/binary"
	"math/bits"
	"net/netip"
	"strconv"
	"time"

	"github.com/apt-p2p/apt-p2p/wire"
)

// Defaults of Config, as in the original (K = 8, MAX_FAILURES = 3).
const (
	DefaultK           = 8
	DefaultMaxFailures = 3
)

// MaxBuckets is the most buckets a table can have ("Hash Table is FULL!" in
// the original): 159 splits of the bucket holding our own ID.
const MaxBuckets = 160

// maxDepth is the prefix length of the deepest bucket: the one holding our
// own ID once MaxBuckets exist (2 IDs wide: ours and one other).
const maxDepth = MaxBuckets - 1

// Config parameterises a Table. The zero value gives the defaults.
type Config struct {
	K           int  // bucket size, default 8
	MaxFailures int  // consecutive failures before removal, default 3
	AllowLocal  bool // LOCAL_OK: accept private, loopback, link-local... addresses
	// Family, when set, keeps the table to one address family (family.go):
	// a dual-stack node has one table per family (BEP 32).
	Family Family
}

// Node is a routing-table entry.
type Node struct {
	ID       wire.ID
	Addr     netip.AddrPort
	LastSeen time.Time // zero until the node has answered
	Fails    int       // consecutive failed requests since it last answered
}

// InsertResult says what Insert did.
type InsertResult uint8

// Results of Insert.
const (
	Added      InsertResult = iota // new contacted node added
	Updated                        // known node refreshed (contacted): moved to the end, new address kept
	NeedsPing                      // uncontacted node, bucket has room: ping it; insert again as contacted if it answers
	BucketFull                     // bucket full and cannot split: the returned Node is the oldest (replacement candidate)
	Ignored                        // our own ID, a refused address, or an uncontacted re-sighting
)

var insertResultNames = [...]string{"added", "updated", "needs-ping", "bucket-full", "ignored"}

func (r InsertResult) String() string {
	if int(r) < len(insertResultNames) {
		return insertResultNames[r]
	}
	return "InsertResult(" + strconv.Itoa(int(r)) + ")"
}

// bucket holds the nodes whose IDs share one prefix. Its range is implied by
// its index in Table.buckets (see Table).
type bucket struct {
	nodes        []Node // len ≤ K, cap K; ordered by LastSeen, oldest first
	lastAccessed time.Time
}

// Table is the routing table. Because only the bucket holding our own ID
// splits, bucket i (for i < len(buckets)-1) holds exactly the IDs whose
// common prefix with ours is i bits long (the sibling subtree at depth i+1),
// and the last bucket holds the IDs sharing at least len(buckets)-1 leading
// bits with ours. Finding a node's bucket is one leading-zeros count.
type Table struct {
	self    wire.ID
	k       int
	maxFail int
	local   bool
	family  Family
	buckets []bucket
	n       int
	spare   [][]Node // storage of merged-away buckets, reused by splits
}

// New returns an empty table (one bucket covering the whole ID space) for a
// node whose own ID is self.
func New(self wire.ID, cfg Config) *Table {
	t := &Table{self: self, k: cfg.K, maxFail: cfg.MaxFailures, local: cfg.AllowLocal, family: cfg.Family}
	if t.k <= 0 {
		t.k = DefaultK
	}
	if t.maxFail <= 0 {
		t.maxFail = DefaultMaxFailures
	}
	t.buckets = make([]bucket, 1, 8)
	t.buckets[0].nodes = make([]Node, 0, t.k)
	return t
}

// Self returns our own ID.
func (t *Table) Self() wire.ID { return t.self }

// K returns the bucket size in use.
func (t *Table) K() int { return t.k }

// Len returns the number of nodes in the table.
func (t *Table) Len() int { return t.n }

// NumBuckets returns the number of buckets (1 to MaxBuckets).
func (t *Table) NumBuckets() int { return len(t.buckets) }

// commonPrefixLen returns the number of leading bits a and b share (160 when equal).
func commonPrefixLen(a, b wire.ID) int {
	if x := binary.BigEndian.Uint64(a[0:]) ^ binary.BigEndian.Uint64(b[0:]); x != 0 {
		return bits.LeadingZeros64(x)
	}
	if x := binary.BigEndian.Uint64(a[8:]) ^ binary.BigEndian.Uint64(b[8:]); x != 0 {
		return 64 + bits.LeadingZeros64(x)
	}
	if x := binary.BigEndian.Uint32(a[16:]) ^ binary.BigEndian.Uint32(b[16:]); x != 0 {
		return 128 + bits.LeadingZeros32(x)
	}
	return 160
}

// bit returns bit i (0 = most significant) of id.
func bit(id *wire.ID, i int) byte { return id[i>>3] >> (7 - uint(i&7)) & 1 }

// bucketIndex returns the index of the bucket whose range holds id.
func (t *Table) bucketIndex(id *wire.ID) int {
	d := len(t.buckets) - 1
	if c := commonPrefixLen(*id, t.self); c < d {
		return c
	}
	return d
}

func (b *bucket) find(id *wire.ID) int {
	for i := range b.nodes {
		if b.nodes[i].ID == *id {
			return i
		}
	}
	return -1
}

// Get returns the node with the given ID, if the table holds it. The engine
// uses it to check that a response comes from the ID it expected.
func (t *Table) Get(id wire.ID) (Node, bool) {
	b := &t.buckets[t.bucketIndex(&id)]
	if i := b.find(&id); i >= 0 {
		return b.nodes[i], true
	}
	return Node{}, false
}

// Insert offers a node to the table; contacted says whether it has just
// answered us (a response, or a request it sent us). n.ID and n.Addr are
// used (an IPv4-mapped address is stored in its IPv4 form); the table sets
// LastSeen to now and Fails to 0 for a contacted node.
//
// Only contacted nodes enter the table. An uncontacted node that would fit
// gets NeedsPing and the table is left unchanged: the caller pings it and
// inserts it again as contacted when it answers. When the node's bucket is
// full and cannot split, Insert returns BucketFull and the bucket's oldest
// node, which the caller may ping and evict (Remove or Failed) before
// inserting the new node again.
//
// Our own ID, the zero ID (NULL_ID, "not known yet"), refused addresses
// (AddrPortAllowed) and uncontacted re-sightings of a known node are
// Ignored. A full bucket holding our own ID is split only when the new node
// will then be added, so a node that is not added never changes the layout
// (the original split first, and could split for a node it then refused).
func (t *Table) Insert(n Node, contacted bool, now time.Time) (InsertResult, Node) {
	if n.ID == t.self || n.ID.IsZero() || !AddrPortAllowed(n.Addr, t.local) || !t.family.holds(n.Addr.Addr()) {
		return Ignored, Node{}
	}
	if n.Addr.Addr().Is4In6() {
		n.Addr = netip.AddrPortFrom(n.Addr.Addr().Unmap(), n.Addr.Port())
	}
	bi := t.bucketIndex(&n.ID)
	b := &t.buckets[bi]
	if i := b.find(&n.ID); i >= 0 {
		if !contacted {
			return Ignored, Node{}
		}
		// Refresh: new contact info, fails reset, moved to its place by
		// LastSeen (the end, unless the caller's clock went backwards).
		copy(b.nodes[i:], b.nodes[i+1:])
		b.nodes = b.nodes[:len(b.nodes)-1]
		b.add(Node{ID: n.ID, Addr: n.Addr, LastSeen: now})
		return Updated, Node{}
	}
	if len(b.nodes) < t.k {
		if !contacted {
			return NeedsPing, Node{}
		}
		b.add(Node{ID: n.ID, Addr: n.Addr, LastSeen: now})
		t.n++
		return Added, Node{}
	}
	if bi != len(t.buckets)-1 {
		return BucketFull, b.nodes[0]
	}
	// Full bucket holding our own ID: find how deep it must split for the
	// new node to land in a bucket with room, without changing anything yet.
	need, ok, oldest := t.splitDepth(&n.ID)
	if !ok {
		return BucketFull, oldest
	}
	if !contacted {
		return NeedsPing, Node{}
	}
	for len(t.buckets) < need {
		t.split()
	}
	b = &t.buckets[t.bucketIndex(&n.ID)]
	b.add(Node{ID: n.ID, Addr: n.Addr, LastSeen: now})
	t.n++
	return Added, Node{}
}

// add puts n into b at its place by LastSeen (after nodes seen at the same time).
func (b *bucket) add(n Node) {
	i := len(b.nodes)
	b.nodes = append(b.nodes, n)
	for i > 0 && b.nodes[i-1].LastSeen.After(n.LastSeen) {
		b.nodes[i] = b.nodes[i-1]
		i--
	}
	b.nodes[i] = n
}

// splitDepth works out, for a node x not in the table whose bucket is the
// full bucket holding our own ID, how many buckets the table needs so that x
// lands in a bucket with room. ok is false when that cannot happen (x's half
// fills up without holding our ID, or MaxBuckets is reached); oldest is then
// the oldest node of the bucket x would land in.
func (t *Table) splitDepth(x *wire.ID) (buckets int, ok bool, oldest Node) {
	nodes := t.buckets[len(t.buckets)-1].nodes
	for d := len(t.buckets) - 1; d < maxDepth; d++ {
		// After splitting at depth d, x's half holds the nodes agreeing
		// with x on bit d (all agree with x above d).
		xb := bit(x, d)
		cnt, first := 0, -1
		for i := range nodes {
			if commonPrefixLen(nodes[i].ID, *x) > d {
				if first < 0 {
					first = i
				}
				cnt++
			}
		}
		if cnt < t.k {
			return d + 2, true, Node{}
		}
		if xb != bit(&t.self, d) {
			return 0, false, nodes[first]
		}
	}
	return 0, false, nodes[0]
}

// split splits the bucket holding our own ID in the middle: the half not
// holding our ID becomes a bucket of its own. Both halves keep the parent's
// lastAccessed: a lookup that refreshed the parent explored one half or the
// other, and a split is no reason to skip refreshing either.
func (t *Table) split() {
	d := len(t.buckets) - 1
	old := &t.buckets[d]
	var store []Node
	if len(t.spare) > 0 {
		store = t.spare[len(t.spare)-1][:0]
		t.spare = t.spare[:len(t.spare)-1]
	} else {
		store = make([]Node, 0, t.k)
	}
	// The new self bucket keeps the nodes agreeing with us on bit d; the
	// others stay in place, now forming the sibling bucket d.
	sb := bit(&t.self, d)
	kept := old.nodes[:0]
	for _, n := range old.nodes {
		if bit(&n.ID, d) == sb {
			store = append(store, n)
		} else {
			kept = append(kept, n)
		}
	}
	clear(old.nodes[len(kept):])
	old.nodes = kept
	t.buckets = append(t.buckets, bucket{nodes: store, lastAccessed: old.lastAccessed})
}

// Failed counts one failed request to the node; at MaxFailures consecutive
// failures the node is removed (and buckets merged) and removed is true.
// An unknown ID is ignored.
func (t *Table) Failed(id wire.ID) (removed bool) {
	bi := t.bucketIndex(&id)
	b := &t.buckets[bi]
	i := b.find(&id)
	if i < 0 {
		return false
	}
	b.nodes[i].Fails++
	if b.nodes[i].Fails < t.maxFail {
		return false
	}
	t.removeAt(bi, i)
	return true
}

// Remove takes the node out of the table (for example when it answered with
// another ID) and merges buckets that became small enough. It reports
// whether the node was there.
func (t *Table) Remove(id wire.ID) bool {
	bi := t.bucketIndex(&id)
	i := t.buckets[bi].find(&id)
	if i < 0 {
		return false
	}
	t.removeAt(bi, i)
	return true
}

func (t *Table) removeAt(bi, i int) {
	b := &t.buckets[bi]
	copy(b.nodes[i:], b.nodes[i+1:])
	b.nodes[len(b.nodes)-1] = Node{}
	b.nodes = b.nodes[:len(b.nodes)-1]
	t.n--
	t.merge()
}

// merge joins the two deepest buckets (the only two of the same size) while
// together they hold K nodes or fewer.
func (t *Table) merge() {
	for len(t.buckets) > 1 {
		d := len(t.buckets) - 1
		lo, hi := &t.buckets[d-1], &t.buckets[d]
		if len(lo.nodes)+len(hi.nodes) > t.k {
			return
		}
		// Merge the two LastSeen-ordered lists from the back into lo's
		// storage (cap K), keeping the order.
		a, b := len(lo.nodes)-1, len(hi.nodes)-1
		lo.nodes = lo.nodes[:len(lo.nodes)+len(hi.nodes)]
		for w := len(lo.nodes) - 1; b >= 0; w-- {
			if a >= 0 && lo.nodes[a].LastSeen.After(hi.nodes[b].LastSeen) {
				lo.nodes[w] = lo.nodes[a]
				a--
			} else {
				lo.nodes[w] = hi.nodes[b]
				b--
			}
		}
		if hi.lastAccessed.After(lo.lastAccessed) {
			lo.lastAccessed = hi.lastAccessed
		}
		clear(hi.nodes)
		t.spare = append(t.spare, hi.nodes[:0])
		*hi = bucket{}
		t.buckets = t.buckets[:d]
	}
}

// Touch records that a lookup targets an ID in target's bucket, which keeps
// that bucket from being refreshed by StaleBuckets.
func (t *Table) Touch(target wire.ID, now time.Time) {
	t.buckets[t.bucketIndex(&target)].lastAccessed = now
}

// Nodes appends all nodes, bucket by bucket in ascending range order, each
// bucket oldest first. It is meant for persisting the table.
func (t *Table) Nodes(dst []Node) []Node {
	var order [MaxBuckets]uint8
	for _, bi := range t.rangeOrder(&order) {
		dst = append(dst, t.buckets[bi].nodes...)
	}
	return dst
}

// rangeOrder fills order with the bucket indices sorted by range and
// returns the filled part. Bucket i < d lies below our own ID when our bit i
// is 1 (its prefix ends in 0); the deeper such a bucket, the higher it is.
func (t *Table) rangeOrder(order *[MaxBuckets]uint8) []uint8 {
	d := len(t.buckets) - 1
	o := order[:0]
	for i := range d {
		if bit(&t.self, i) == 1 {
			o = append(o, uint8(i))
		}
	}
	o = append(o, uint8(d))
	for i := d - 1; i >= 0; i-- {
		if bit(&t.self, i) == 0 {
			o = append(o, uint8(i))
		}
	}
	return o
}

// BucketInfo describes one bucket, for status pages, dumps and tests.
type BucketInfo struct {
	Min          wire.ID // lowest ID in the range
	PrefixLen    int     // the range is [Min, Min + 2^(160-PrefixLen))
	Len          int     // nodes in the bucket
	HoldsSelf    bool    // the range holds our own ID
	LastAccessed time.Time
}

// bucketRange returns the lowest ID and the prefix length of bucket bi.
func (t *Table) bucketRange(bi int) (wire.ID, int) {
	d := len(t.buckets) - 1
	plen := bi + 1 // a sibling bucket: our first bi bits, then the other bit
	if bi == d {
		plen = d
	}
	min := maskPrefix(t.self, plen)
	if bi < d {
		min[bi>>3] ^= 0x80 >> uint(bi&7)
	}
	return min, plen
}

// maskPrefix keeps the first plen bits of id and clears the rest.
func maskPrefix(id wire.ID, plen int) wire.ID {
	for i := range id {
		switch {
		case plen >= 8*(i+1):
		case plen <= 8*i:
			id[i] = 0
		default:
			id[i] &= 0xff << uint(8*(i+1)-plen)
		}
	}
	return id
}

// Buckets appends a description of every bucket in ascending range order.
func (t *Table) Buckets(dst []BucketInfo) []BucketInfo {
	var order [MaxBuckets]uint8
	d := len(t.buckets) - 1
	for _, bi := range t.rangeOrder(&order) {
		min, plen := t.bucketRange(int(bi))
		b := &t.buckets[bi]
		dst = append(dst, BucketInfo{Min: min, PrefixLen: plen, Len: len(b.nodes),
			HoldsSelf: int(bi) == d, LastAccessed: b.lastAccessed})
	}
	return dst
}

// StaleBuckets appends, for every bucket not accessed (Touch) for more than
// staleness, a random ID in its range, in ascending range order: the targets
// of the refresh lookups. A bucket never touched is stale, so a new table
// refreshes everything once, like the original's forced refresh at start. rnd fills a 20-byte buffer with random bytes; the ID
// is min + rnd mod (max − min) as in the original.
func (t *Table) StaleBuckets(dst []wire.ID, now time.Time, staleness time.Duration, rnd func([]byte)) []wire.ID {
	var order [MaxBuckets]uint8
	for _, bi := range t.rangeOrder(&order) {
		if now.Sub(t.buckets[bi].lastAccessed) <= staleness {
			continue
		}
		min, plen := t.bucketRange(int(bi))
		var r wire.ID
		rnd(r[:])
		dst = append(dst, randInRange(min, spanOfPrefix(plen), r))
	}
	return dst
}
