package aptindex

import (
	"encoding/binary"
	"math/bits"
	"sync"
	"sync/atomic"

	"github.com/apt-p2p/apt-p2p/internal/digest"
	"github.com/cespare/xxhash/v2"
)

// Limits that keep a hostile or corrupt index from costing unbounded memory per
// record. Real Debian records are far below them.
const (
	maxNameLen   = 4096     // longest file name stored (Filename, Directory + name)
	maxStanza    = 16 << 20 // longest stanza (a Sources stanza with a huge Binary list is ~100 KiB)
	maxArenaSize = 1<<32 - 1
)

// hash type lengths in digest.Type order.
var hashLens = [4]int{16, 20, 32, 64}

// A record is one file an index lists, stored in its list's arena as
//
//	size+1 (uint64 LE, 0 = unknown) | name length (uint16 LE) | have (1 byte) | name | hashes
//
// where hashes are the known ones (bit t of have) in digest.Type order.
// Keeping the header beside the name means a lookup touches two cache lines
// at random (the table slot and the record), not three.
const recHeader = 11

// hashesLen is the length of the hashes of a record with these bits.
func hashesLen(have uint8) int {
	n := 0
	for t := range 4 {
		if have&(1<<t) != 0 {
			n += hashLens[t]
		}
	}
	return n
}

// list is the parsed content of one Packages or Sources file.
type list struct {
	slot string // uncompressed path of the index, e.g. "/dists/bookworm/main/binary-amd64/Packages"
	src  string // the path it was loaded from (Packages.xz, a by-hash path, ...)
	seq  uint64 // Add order

	data  []byte   // records, back to back
	n     int      // number of records
	slots []uint32 // open addressing by xxhash(name): record offset + 1, 0 = empty

	refOnce  sync.Once
	refSlots []uint32 // by hash prefix, for Referenced; built on first use
	// refBytes is the size of refSlots, readable by Stats while another
	// reader builds the table under the shared lock.
	refBytes atomic.Int64
}

func (l *list) nameLen(off uint32) int {
	return int(binary.LittleEndian.Uint16(l.data[off+8:]))
}

func (l *list) name(off uint32) []byte {
	return l.data[off+recHeader : off+recHeader+uint32(l.nameLen(off))]
}

func (l *list) size(off uint32) int64 {
	return int64(binary.LittleEndian.Uint64(l.data[off:])) - 1
}

func (l *list) have(off uint32) uint8 { return l.data[off+10] }

// next is the offset of the record after the one at off.
func (l *list) next(off uint32) uint32 {
	return off + recHeader + uint32(l.nameLen(off)+hashesLen(l.have(off)))
}

// set expands a record into a digest.Set.
func (l *list) set(off uint32) digest.Set {
	have := l.have(off)
	s := digest.Set{Size: l.size(off), Have: have}
	p := l.data[off+recHeader+uint32(l.nameLen(off)):]
	for t := range 4 {
		if have&(1<<t) == 0 {
			continue
		}
		n := hashLens[t]
		switch t {
		case 0:
			copy(s.MD5[:], p[:n])
		case 1:
			copy(s.SHA1[:], p[:n])
		case 2:
			copy(s.SHA256[:], p[:n])
		default:
			copy(s.SHA512[:], p[:n])
		}
		p = p[n:]
	}
	return s
}

// hashOf returns the raw hash of type t of a record, or nil.
func (l *list) hashOf(off uint32, t int) []byte {
	have := l.have(off)
	if have&(1<<t) == 0 {
		return nil
	}
	p := off + recHeader + uint32(l.nameLen(off)) + uint32(hashesLen(have&(1<<t-1)))
	return l.data[p : p+uint32(hashLens[t])]
}

// builder accumulates a list while a file is parsed.
type builder struct {
	// prefix goes before every name: the index's own directory for a flat
	// repository (no dists/), whose Filename and Directory fields are
	// relative to the directory the Packages or Sources is in.
	prefix []byte
	data   []byte
	n      int
	err    error
}

// add appends one file. name may be given in two parts (Sources: Directory and
// file name) joined by a slash.
func (b *builder) add(dir, name []byte, size int64, have uint8, hashes *[4][64]byte) {
	n := len(name) + len(b.prefix)
	if len(dir) > 0 {
		n += len(dir) + 1
	}
	if have == 0 || n == 0 || n > maxNameLen {
		return // nothing to verify against, or not a sane name
	}
	if len(b.data)+recHeader+n+hashesLen(have) > maxArenaSize {
		b.err = errTooBig
		return
	}
	b.data = binary.LittleEndian.AppendUint64(b.data, uint64(size+1))
	b.data = binary.LittleEndian.AppendUint16(b.data, uint16(n))
	b.data = append(b.data, have)
	b.data = append(b.data, b.prefix...)
	if len(dir) > 0 {
		b.data = append(b.data, dir...)
		b.data = append(b.data, '/')
	}
	b.data = append(b.data, name...)
	for t := range 4 {
		if have&(1<<t) != 0 {
			b.data = append(b.data, hashes[t][:hashLens[t]]...)
		}
	}
	b.n++
}

// finish trims the arena to size and builds the name table.
func (b *builder) finish(slot, src string, seq uint64) *list {
	// An exact-size copy: append's doubling would otherwise leave up to
	// half of the arena unused for the lifetime of the index.
	l := &list{slot: slot, src: src, seq: seq, n: b.n, data: append(make([]byte, 0, len(b.data)), b.data...)}
	l.slots = make([]uint32, tableSize(l.n))
	mask := uint64(len(l.slots) - 1)
	for off := uint32(0); int(off) < len(l.data); off = l.next(off) {
		nm := l.name(off)
		for pos := xxhash.Sum64(nm) & mask; ; pos = (pos + 1) & mask {
			s := l.slots[pos]
			if s == 0 {
				l.slots[pos] = off + 1
				break
			}
			if string(l.name(s-1)) == string(nm) {
				l.slots[pos] = off + 1 // a later record of the same file wins
				break
			}
		}
	}
	return l
}

// tableSize is a power of two at least twice n, so probes stay short.
func tableSize(n int) int {
	s := 8
	for s < 2*n {
		s <<= 1
	}
	return s
}

// find looks a name up (h is xxhash.Sum64String(name)) and returns its
// record's offset.
func (l *list) find(name string, h uint64) (uint32, bool) {
	mask := uint64(len(l.slots) - 1)
	for pos := h & mask; ; pos = (pos + 1) & mask {
		s := l.slots[pos]
		if s == 0 {
			return 0, false
		}
		if off := s - 1; l.nameLen(off) == len(name) && string(l.name(off)) == name {
			return off, true
		}
	}
}

// refKey is the table key for a raw hash of type t: its first 8 bytes, mixed
// with the type so an MD5 and a SHA256 prefix never meet.
func refKey(t int, h []byte) uint64 {
	return binary.LittleEndian.Uint64(h[:8]) ^ uint64(t+1)*0x9e3779b97f4a7c15
}

func (l *list) buildRef() {
	n := 0
	for off := uint32(0); int(off) < len(l.data); off = l.next(off) {
		n += bits.OnesCount8(l.have(off))
	}
	l.refSlots = make([]uint32, tableSize(n))
	l.refBytes.Store(int64(len(l.refSlots)) * 4)
	mask := uint64(len(l.refSlots) - 1)
	for off := uint32(0); int(off) < len(l.data); off = l.next(off) {
		for t := range 4 {
			h := l.hashOf(off, t)
			if h == nil {
				continue
			}
			pos := refKey(t, h) & mask
			for l.refSlots[pos] != 0 {
				pos = (pos + 1) & mask
			}
			l.refSlots[pos] = off + 1
		}
	}
}

// references reports whether the list names a file whose hashes match d.
func (l *list) references(d *digest.Set) bool {
	l.refOnce.Do(l.buildRef)
	mask := uint64(len(l.refSlots) - 1)
	for t := range 4 {
		want := d.Get(digest.Type(t))
		if want == nil {
			continue
		}
		for pos := refKey(t, want) & mask; l.refSlots[pos] != 0; pos = (pos + 1) & mask {
			off := l.refSlots[pos] - 1
			if h := l.hashOf(off, t); h != nil && string(h) == string(want) {
				s := l.set(off)
				if s.Matches(d) {
					return true
				}
			}
		}
	}
	return false
}

func (l *list) bytes() int64 {
	return int64(cap(l.data)) + int64(cap(l.slots))*4 + l.refBytes.Load() + 128
}
