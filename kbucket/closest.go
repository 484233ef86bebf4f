package kbucket

import (
	"encoding/binary"

	"github.com/apt-p2p/apt-p2p/wire"
)

// Closest appends to dst up to k nodes of the table closest to target by XOR
// distance, closest first. It does not allocate when dst has room for k more
// nodes.
//
// The result is exact. The original borrowed from neighbouring buckets in
// range order (i−1, i+1, i−2, …) and stopped once it had K nodes, which can
// miss closer nodes: the buckets on one side of target's bucket may all be
// farther than those on the other. Here the buckets are visited by distance
// class instead. With c = the common prefix length of target and our own ID:
//
//   - target's own bucket first (its nodes share more than c bits with target);
//   - then, if target is not in our own bucket, all buckets deeper than c
//     together (their nodes share exactly c bits with target, so they are
//     ordered by their lower bits and must be compared as one group);
//   - then buckets c−1, c−2, …, 0, each strictly farther than the one before.
//
// Every node of a class is closer than every node of a later class, so the
// scan stops after the first class that completes k nodes.
func (t *Table) Closest(dst []Node, target wire.ID, k int) []Node {
	return t.closest(dst, target, k, false, wire.ID{})
}

// ClosestExcluding is Closest for the nodes list of a reply: it leaves out
// the node exclude (the requester) and nodes that have failed since they last
// answered, so that replies do not send others to dead nodes or back to the
// asker (the original's §8.2 item 16).
func (t *Table) ClosestExcluding(dst []Node, target wire.ID, k int, exclude wire.ID) []Node {
	return t.closest(dst, target, k, true, exclude)
}

// distKey is a target split into big-endian words, so a distance comparison
// is at most three XORs and compares instead of a 20-byte loop.
type distKey struct {
	a, b uint64
	c    uint32
}

func makeDistKey(id *wire.ID) distKey {
	return distKey{binary.BigEndian.Uint64(id[0:]), binary.BigEndian.Uint64(id[8:]), binary.BigEndian.Uint32(id[16:])}
}

// closer reports whether x is strictly closer to the key's target than y.
func (k *distKey) closer(x, y *wire.ID) bool {
	dx, dy := binary.BigEndian.Uint64(x[0:])^k.a, binary.BigEndian.Uint64(y[0:])^k.a
	if dx != dy {
		return dx < dy
	}
	dx, dy = binary.BigEndian.Uint64(x[8:])^k.b, binary.BigEndian.Uint64(y[8:])^k.b
	if dx != dy {
		return dx < dy
	}
	return binary.BigEndian.Uint32(x[16:])^k.c < binary.BigEndian.Uint32(y[16:])^k.c
}

// selection keeps dst[base:] sorted by distance, at most k long.
type selection struct {
	dst     []Node
	base, k int
	key     distKey
	filter  bool
	exclude wire.ID
}

func (s *selection) full() bool { return len(s.dst)-s.base >= s.k }

func (s *selection) offer(nodes []Node) {
	for i := range nodes {
		n := &nodes[i]
		if s.filter && (n.Fails > 0 || n.ID == s.exclude) {
			continue
		}
		j := len(s.dst)
		if j-s.base < s.k {
			s.dst = append(s.dst, *n)
		} else if s.key.closer(&n.ID, &s.dst[j-1].ID) {
			j--
		} else {
			continue
		}
		for j > s.base && s.key.closer(&n.ID, &s.dst[j-1].ID) {
			s.dst[j] = s.dst[j-1]
			j--
		}
		s.dst[j] = *n
	}
}

func (t *Table) closest(dst []Node, target wire.ID, k int, filter bool, exclude wire.ID) []Node {
	if k <= 0 {
		return dst
	}
	s := selection{dst: dst, base: len(dst), k: k, key: makeDistKey(&target), filter: filter, exclude: exclude}
	d := len(t.buckets) - 1
	c := commonPrefixLen(target, t.self)
	next := c - 1 // the next bucket of the strictly-farther classes
	if c >= d {
		s.offer(t.buckets[d].nodes)
		next = d - 1
	} else {
		s.offer(t.buckets[c].nodes)
		if !s.full() {
			for i := c + 1; i <= d; i++ {
				s.offer(t.buckets[i].nodes)
			}
		}
	}
	for i := next; i >= 0 && !s.full(); i-- {
		s.offer(t.buckets[i].nodes)
	}
	return s.dst
}
