package front

import (
	"encoding/binary"

	"github.com/apt-p2p/apt-p2p/kbucket"
	"github.com/apt-p2p/apt-p2p/wire"
)

// How the number of users is estimated (the status page's "Estimated
// users"). The original showed K·2^(buckets−1): 8 for any network small
// enough to fit one bucket, whether 2 or 5 daemons ran.
const (
	// usersCounted: no bucket of the routing table refused a node (only a
	// full bucket not holding our own ID does: the one holding it splits),
	// so the table holds every node this one has heard of. Users = those
	// nodes + this one.
	usersCounted = "counted: the routing table holds every node heard of"
	// usersDensity: a bucket is full, so the table holds a sample. The
	// nodes closest to our own ID are the part of the ID space Kademlia
	// keeps complete, and their density gives the size: with N−1 other
	// nodes spread uniformly, the i-th closest lies at the fraction
	// x_i ≈ i/N of the ID space (XOR distance / 2^160). Fitting x_i = i/N
	// by least squares over the k closest gives N = Σi² / Σ(i·x_i). Never
	// less than the nodes actually known.
	usersDensity = "estimated from the distances of the closest nodes"
)

// estimateUsers estimates how many nodes the DHT has, this one included,
// from a snapshot of the routing table: closest are the table's k nodes
// closest to self (closest first), buckets its buckets.
func estimateUsers(self wire.ID, closest []kbucket.Node, buckets []kbucket.BucketInfo, k int) (float64, string) {
	known := 1
	full := false
	for _, b := range buckets {
		known += b.Len
		full = full || b.Len >= k && !b.HoldsSelf
	}
	if !full {
		return float64(known), usersCounted
	}
	var sii, six float64
	for i, n := range closest {
		x := distanceFraction(self, n.ID)
		sii += float64((i + 1) * (i + 1))
		six += float64(i+1) * x
	}
	if six <= 0 {
		return float64(known), usersCounted
	}
	return max(sii/six, float64(known)), usersDensity
}

// distanceFraction is the XOR distance of a and b as a fraction of the ID
// space, from its top 64 bits (enough for any network size).
func distanceFraction(a, b wire.ID) float64 {
	d := binary.BigEndian.Uint64(a[:8]) ^ binary.BigEndian.Uint64(b[:8])
	return float64(d) / (1 << 64)
}
