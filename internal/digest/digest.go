// Package digest describes what is known about a file's content: its size and
// the hashes the signed apt index chain gives for it. It is the common currency
// between the apt index (which learns expected hashes), the piece store (which
// finds files by any of their hashes) and the DHT (which keys files by one of them).
package digest

import (
	"bytes"
	"encoding/hex"
	"fmt"

	"github.com/apt-p2p/apt-p2p/wire"
)

// Type is a hash algorithm that apt indexes carry.
type Type uint8

// Hash types, in the bit order of Set.Have.
const (
	MD5 Type = iota
	SHA1
	SHA256
	SHA512
	numTypes
)

var typeNames = [numTypes]string{"MD5", "SHA1", "SHA256", "SHA512"}
var typeLens = [numTypes]int{16, 20, 32, 64}

func (t Type) String() string {
	if t < numTypes {
		return typeNames[t]
	}
	return fmt.Sprintf("digest.Type(%d)", t)
}

// Len is the digest length of t in bytes.
func (t Type) Len() int { return typeLens[t] }

// Set holds a file's size and whichever of its hashes are known.
// The zero Set knows nothing. Size < 0 means the size is unknown.
type Set struct {
	Size   int64
	Have   uint8 // bit 1<<Type is set for each known hash
	MD5    [16]byte
	SHA1   [20]byte
	SHA256 [32]byte
	SHA512 [64]byte
}

// Has reports whether the hash of type t is known.
func (s *Set) Has(t Type) bool { return s.Have&(1<<t) != 0 }

// Get returns the hash of type t, or nil if it is not known. The slice aliases s.
func (s *Set) Get(t Type) []byte {
	if !s.Has(t) {
		return nil
	}
	switch t {
	case MD5:
		return s.MD5[:]
	case SHA1:
		return s.SHA1[:]
	case SHA256:
		return s.SHA256[:]
	default:
		return s.SHA512[:]
	}
}

// Put records the hash h of type t; h must have t's length.
func (s *Set) Put(t Type, h []byte) error {
	if t >= numTypes || len(h) != t.Len() {
		return fmt.Errorf("digest: %v hash of %d bytes", t, len(h))
	}
	switch t {
	case MD5:
		copy(s.MD5[:], h)
	case SHA1:
		copy(s.SHA1[:], h)
	case SHA256:
		copy(s.SHA256[:], h)
	default:
		copy(s.SHA512[:], h)
	}
	s.Have |= 1 << t
	return nil
}

// PutHex records a hex-encoded hash.
func (s *Set) PutHex(t Type, hx string) error {
	var buf [64]byte
	if t >= numTypes || len(hx) != 2*t.Len() {
		return fmt.Errorf("digest: %v hash %q has the wrong length", t, hx)
	}
	if _, err := hex.Decode(buf[:t.Len()], []byte(hx)); err != nil {
		return fmt.Errorf("digest: %v hash %q: %w", t, hx, err)
	}
	return s.Put(t, buf[:t.Len()])
}

// KeyType is the hash that names the file in the DHT: SHA1, else SHA256, else MD5,
// the original apt-p2p's order. ok is false when none is known.
func (s *Set) KeyType() (t Type, ok bool) {
	for _, t := range [...]Type{SHA1, SHA256, MD5} {
		if s.Has(t) {
			return t, true
		}
	}
	return 0, false
}

// Key is the 20-byte DHT key: the KeyType hash, padded or truncated to 20 bytes.
func (s *Set) Key() (wire.ID, bool) {
	t, ok := s.KeyType()
	if !ok {
		return wire.ID{}, false
	}
	return wire.NormKey(s.Get(t)), true
}

// Strongest is the strongest known hash type, used to verify whole files.
func (s *Set) Strongest() (t Type, ok bool) {
	for _, t := range [...]Type{SHA512, SHA256, SHA1, MD5} {
		if s.Has(t) {
			return t, true
		}
	}
	return 0, false
}

// Matches reports whether every hash known to both sets agrees, at least one hash
// is known to both, and the sizes agree where both are known.
func (s *Set) Matches(o *Set) bool {
	if s.Size >= 0 && o.Size >= 0 && s.Size != o.Size {
		return false
	}
	common := s.Have & o.Have
	if common == 0 {
		return false
	}
	for t := MD5; t < numTypes; t++ {
		if common&(1<<t) != 0 && !bytes.Equal(s.Get(t), o.Get(t)) {
			return false
		}
	}
	return true
}

// Merge adds o's hashes to s (o's size too if s has none). It does not check that they agree.
func (s *Set) Merge(o *Set) {
	for t := MD5; t < numTypes; t++ {
		if o.Has(t) && !s.Has(t) {
			_ = s.Put(t, o.Get(t))
		}
	}
	if s.Size < 0 {
		s.Size = o.Size
	}
}

func (s Set) String() string {
	var b []byte
	b = fmt.Appendf(b, "size=%d", s.Size)
	for t := MD5; t < numTypes; t++ {
		if s.Has(t) {
			b = fmt.Appendf(b, " %v=%x", t, s.Get(t))
		}
	}
	return string(b)
}
