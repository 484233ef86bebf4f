package kbucket

import (
	"encoding/binary"
	"math/bits"

	"github.com/apt-p2p/apt-p2p/wire"
)

// u192 is an unsigned integer in three 64-bit words, most significant first.
// It holds any 160-bit ID and also 2^160, the end of the ID space, which a
// wire.ID cannot: bucket ranges are [min, max) with max up to 2^160.
type u192 [3]uint64

// fromID reads id as a big-endian 160-bit integer.
func fromID(id wire.ID) u192 {
	return u192{uint64(binary.BigEndian.Uint32(id[0:])), binary.BigEndian.Uint64(id[4:]), binary.BigEndian.Uint64(id[12:])}
}

// toID writes the low 160 bits of x big-endian.
func (x u192) toID() wire.ID {
	var id wire.ID
	binary.BigEndian.PutUint32(id[0:], uint32(x[0]))
	binary.BigEndian.PutUint64(id[4:], x[1])
	binary.BigEndian.PutUint64(id[12:], x[2])
	return id
}

func (x u192) cmp(y u192) int {
	for i := range x {
		if x[i] != y[i] {
			if x[i] < y[i] {
				return -1
			}
			return 1
		}
	}
	return 0
}

func (x u192) add(y u192) u192 {
	var c uint64
	x[2], c = bits.Add64(x[2], y[2], 0)
	x[1], c = bits.Add64(x[1], y[1], c)
	x[0], _ = bits.Add64(x[0], y[0], c)
	return x
}

func (x u192) sub(y u192) u192 {
	var b uint64
	x[2], b = bits.Sub64(x[2], y[2], 0)
	x[1], b = bits.Sub64(x[1], y[1], b)
	x[0], _ = bits.Sub64(x[0], y[0], b)
	return x
}

func (x u192) shl1() u192 {
	return u192{x[0]<<1 | x[1]>>63, x[1]<<1 | x[2]>>63, x[2] << 1}
}

// mod returns x mod m (m > 0) by binary long division. It is not on a hot
// path (one call per stale bucket per checkpoint), so clarity wins over speed.
func (x u192) mod(m u192) u192 {
	var r u192
	for i := 191; i >= 0; i-- {
		r = r.shl1()
		r[2] |= x[2-i/64] >> uint(i%64) & 1
		if r.cmp(m) >= 0 {
			r = r.sub(m)
		}
	}
	return r
}

// spanOfPrefix returns 2^(160-plen), the width of a range of IDs sharing a
// plen-bit prefix.
func spanOfPrefix(plen int) u192 {
	var x u192
	e := 160 - plen
	x[2-e/64] = 1 << uint(e%64)
	return x
}

// randInRange returns min + r mod span, the original's random ID inside the
// range [min, min+span) (reference §2.3); span > 0 and min+span ≤ 2^160.
func randInRange(min wire.ID, span u192, r wire.ID) wire.ID {
	return fromID(min).add(fromID(r).mod(span)).toID()
}
