package piecestore

import (
	"encoding/binary"
	"errors"
	"time"

	"github.com/apt-p2p/apt-p2p/internal/digest"
)

// The metadata record of one stored file, as kept in bbolt under its SHA-256.
// Layout (little-endian): version u8, size i64, have u8, each known hash in type order,
// pieces (u32 count of bytes, bytes), last access i64 ns, last announced i64 ns,
// name (u16 len, bytes), external (u16 len, bytes), external size i64, external mtime i64 ns,
// paths (u32 count, then u16 len + bytes each).
const recordVersion = 1

var errBadRecord = errors.New("piecestore: corrupt metadata record")

func unixNano(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

func fromUnixNano(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n)
}

func appendString16(b []byte, s string) []byte {
	b = binary.LittleEndian.AppendUint16(b, uint16(len(s)))
	return append(b, s...)
}

func (e *entry) appendRecord(b []byte) []byte {
	d := &e.info.Digest
	b = append(b, recordVersion)
	b = binary.LittleEndian.AppendUint64(b, uint64(d.Size))
	b = append(b, d.Have)
	for t := digest.MD5; t <= digest.SHA512; t++ {
		b = append(b, d.Get(t)...)
	}
	b = binary.LittleEndian.AppendUint32(b, uint32(len(e.info.Pieces)))
	b = append(b, e.info.Pieces...)
	b = binary.LittleEndian.AppendUint64(b, uint64(unixNano(e.info.LastAccess)))
	b = binary.LittleEndian.AppendUint64(b, uint64(unixNano(e.info.LastAnnounced)))
	b = appendString16(b, e.name)
	b = appendString16(b, e.info.External)
	b = binary.LittleEndian.AppendUint64(b, uint64(e.extSize))
	b = binary.LittleEndian.AppendUint64(b, uint64(e.extMtime))
	b = binary.LittleEndian.AppendUint32(b, uint32(len(e.info.Paths)))
	for _, p := range e.info.Paths {
		b = appendString16(b, p)
	}
	return b
}

type recReader struct {
	b   []byte
	bad bool
}

func (r *recReader) take(n int) []byte {
	if r.bad || n < 0 || len(r.b) < n {
		r.bad = true
		return nil
	}
	p := r.b[:n]
	r.b = r.b[n:]
	return p
}

func (r *recReader) u8() byte {
	p := r.take(1)
	if p == nil {
		return 0
	}
	return p[0]
}
func (r *recReader) u16() int {
	p := r.take(2)
	if p == nil {
		return 0
	}
	return int(binary.LittleEndian.Uint16(p))
}
func (r *recReader) u32() int {
	p := r.take(4)
	if p == nil {
		return 0
	}
	return int(binary.LittleEndian.Uint32(p))
}
func (r *recReader) i64() int64 {
	p := r.take(8)
	if p == nil {
		return 0
	}
	return int64(binary.LittleEndian.Uint64(p))
}
func (r *recReader) str16() string { return string(r.take(r.u16())) }

// decodeRecord parses a record; the result owns its memory (b may be bbolt's).
func decodeRecord(b []byte) (*entry, error) {
	r := recReader{b: b}
	if r.u8() != recordVersion {
		return nil, errBadRecord
	}
	e := &entry{}
	d := &e.info.Digest
	d.Size = r.i64()
	have := r.u8()
	for t := digest.MD5; t <= digest.SHA512; t++ {
		if have&(1<<t) != 0 {
			if h := r.take(t.Len()); h != nil {
				_ = d.Put(t, h)
			}
		}
	}
	if n := r.u32(); n > 0 {
		e.info.Pieces = append([]byte(nil), r.take(n)...)
	}
	e.info.LastAccess = fromUnixNano(r.i64())
	e.info.LastAnnounced = fromUnixNano(r.i64())
	e.name = r.str16()
	e.info.External = r.str16()
	e.extSize = r.i64()
	e.extMtime = r.i64()
	np := r.u32()
	if np > len(r.b) {
		r.bad = true
	}
	for i := 0; i < np && !r.bad; i++ {
		e.info.Paths = append(e.info.Paths, r.str16())
	}
	npb := len(e.info.Pieces)
	if r.bad || len(r.b) != 0 || have > 0x0f || !d.Has(digest.SHA256) || d.Size < 0 || npb%20 != 0 || npb == 20 {
		return nil, errBadRecord
	}
	e.setPieces(e.info.Pieces)
	e.info.Complete = true
	return e, nil
}
