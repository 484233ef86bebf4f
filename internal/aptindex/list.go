package aptindex

import (
	"encoding/binary"
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

// entry is one file an index lists. Its name and then its known hashes (in
// digest.Type order, only those whose bit is set in have) are stored at
// data[off:] of its list.
type entry struct {
	size int64 // -1 when the index gives none
	off  uint32
	nlen uint16
	have uint8
}

// list is the parsed content of one Packages or Sources file.
type list struct {
	slot string // uncompressed path of the index, e.g. "/dists/bookworm/main/binary-amd64/Packages"
	src  string // the path it was loaded from (Packages.xz, a by-hash path, ...)
	seq  uint64 // Add order: newer lists win lookups

	data  []byte
	ents  []entry
	slots []uint32 // open addressing by xxhash(name); entry index + 1, 0 = empty

	refOnce  sync.Once
	refSlots []uint32 // by hash prefix, for Referenced; built on first use
	// refBytes is the size of refSlots, readable by Stats while another
	// reader builds the table under the shared lock.
	refBytes atomic.Int64
}

func (l *list) name(e *entry) []byte { return l.data[e.off : e.off+uint32(e.nlen)] }

// set expands an entry into a digest.Set.
func (l *list) set(e *entry) digest.Set {
	s := digest.Set{Size: e.size, Have: e.have}
	p := l.data[e.off+uint32(e.nlen):]
	for t := range 4 {
		if e.have&(1<<t) == 0 {
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

// hashOf returns the raw hash of type t of e, or nil.
func (l *list) hashOf(e *entry, t int) []byte {
	if e.have&(1<<t) == 0 {
		return nil
	}
	p := e.off + uint32(e.nlen)
	for u := range t {
		if e.have&(1<<u) != 0 {
			p += uint32(hashLens[u])
		}
	}
	return l.data[p : p+uint32(hashLens[t])]
}

// builder accumulates a list while a file is parsed.
type builder struct {
	data []byte
	ents []entry
	err  error
}

// add appends one file. name may be given in two parts (Sources: Directory and
// file name) joined by a slash.
func (b *builder) add(dir, name []byte, size int64, have uint8, hashes *[4][64]byte) {
	n := len(name)
	if len(dir) > 0 {
		n += len(dir) + 1
	}
	if have == 0 || n == 0 || n > maxNameLen {
		return // nothing to verify against, or not a sane name
	}
	if len(b.data)+n+132 > maxArenaSize {
		b.err = errTooBig
		return
	}
	e := entry{size: size, off: uint32(len(b.data)), nlen: uint16(n), have: have}
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
	b.ents = append(b.ents, e)
}

// finish trims the arenas to size and builds the name table.
func (b *builder) finish(slot, src string, seq uint64) *list {
	l := &list{slot: slot, src: src, seq: seq}
	// Exact-size copies: append's doubling would otherwise leave up to half of
	// each arena unused for the lifetime of the index.
	l.data = append(make([]byte, 0, len(b.data)), b.data...)
	l.ents = append(make([]entry, 0, len(b.ents)), b.ents...)
	l.slots = make([]uint32, tableSize(len(l.ents)))
	mask := uint64(len(l.slots) - 1)
	for i := range l.ents {
		nm := l.name(&l.ents[i])
		for pos := xxhash.Sum64(nm) & mask; ; pos = (pos + 1) & mask {
			s := l.slots[pos]
			if s == 0 {
				l.slots[pos] = uint32(i + 1)
				break
			}
			if string(l.name(&l.ents[s-1])) == string(nm) {
				l.slots[pos] = uint32(i + 1) // a later record of the same file wins
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

// find looks a name up; h is xxhash.Sum64String(name).
func (l *list) find(name string, h uint64) *entry {
	mask := uint64(len(l.slots) - 1)
	for pos := h & mask; ; pos = (pos + 1) & mask {
		s := l.slots[pos]
		if s == 0 {
			return nil
		}
		e := &l.ents[s-1]
		if int(e.nlen) == len(name) && string(l.name(e)) == name {
			return e
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
	for i := range l.ents {
		for t := range 4 {
			if l.ents[i].have&(1<<t) != 0 {
				n++
			}
		}
	}
	l.refSlots = make([]uint32, tableSize(n))
	l.refBytes.Store(int64(len(l.refSlots)) * 4)
	mask := uint64(len(l.refSlots) - 1)
	for i := range l.ents {
		for t := range 4 {
			h := l.hashOf(&l.ents[i], t)
			if h == nil {
				continue
			}
			pos := refKey(t, h) & mask
			for l.refSlots[pos] != 0 {
				pos = (pos + 1) & mask
			}
			l.refSlots[pos] = uint32(i + 1)
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
			e := &l.ents[l.refSlots[pos]-1]
			if h := l.hashOf(e, t); h != nil && string(h) == string(want) {
				s := l.set(e)
				if s.Matches(d) {
					return true
				}
			}
		}
	}
	return false
}

func (l *list) bytes() int64 {
	return int64(cap(l.data)) + int64(cap(l.ents))*16 + int64(cap(l.slots))*4 + l.refBytes.Load() + 128
}
