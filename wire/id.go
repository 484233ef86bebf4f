package wire

import (
	"encoding/binary"
	"encoding/hex"
	"errors"
	"net/netip"
)

// IDLen is the length of node IDs, DHT keys and transaction IDs.
const IDLen = 20

// ID is a 160-bit node ID or DHT key, read as a big-endian unsigned integer.
type ID [IDLen]byte

// Errors for the compact formats.
var (
	ErrCompactLen = errors.New("wire: compact value has the wrong length")
	ErrNotIPv4    = errors.New("wire: compact formats carry IPv4 addresses only")
	ErrIDHex      = errors.New("wire: ID is not 40 hex digits")
)

// Xor returns the XOR distance between a and b.
func (a ID) Xor(b ID) ID {
	var d ID
	for i := range d {
		d[i] = a[i] ^ b[i]
	}
	return d
}

// Cmp compares a and b as big-endian integers: -1, 0 or +1.
func (a ID) Cmp(b ID) int {
	for i := 0; i < IDLen; i += 4 {
		x, y := binary.BigEndian.Uint32(a[i:]), binary.BigEndian.Uint32(b[i:])
		if x != y {
			if x < y {
				return -1
			}
			return 1
		}
	}
	return 0
}

// CloserTo reports whether a is strictly closer than b to target by XOR distance.
func (target ID) CloserTo(a, b ID) bool {
	for i := range IDLen {
		x, y := a[i]^target[i], b[i]^target[i]
		if x != y {
			return x < y
		}
	}
	return false
}

// IsZero reports whether id is the NULL_ID (all zero bytes).
func (a ID) IsZero() bool { return a == ID{} }

// String returns the lower-case hex form.
func (a ID) String() string { return hex.EncodeToString(a[:]) }

// ParseID parses 40 hex digits.
func ParseID(s string) (ID, error) {
	var id ID
	if len(s) != 2*IDLen {
		return id, ErrIDHex
	}
	if _, err := hex.Decode(id[:], []byte(s)); err != nil {
		return id, ErrIDHex
	}
	return id, nil
}

// NormKey turns a hash of any length into a 20-byte DHT key as the original
// does: shorter hashes (MD5) are right-padded with zero bytes, longer ones
// (SHA256, SHA512) keep their first 20 bytes.
func NormKey(h []byte) ID {
	var k ID
	copy(k[:], h)
	return k
}

// CompactNodeLen is the length of a compact node: ID, IPv4 address, port.
const CompactNodeLen = 26

// CompactPeerLen is the length of a compact peer: IPv4 address, port.
const CompactPeerLen = 6

// AppendCompactPeer appends the 6-byte compact form of an IPv4 address and port.
// The format has no room for IPv6: such an address is written as 0.0.0.0, which
// no receiver accepts as a contact, instead of panicking on a hostile or
// misconfigured input.
func AppendCompactPeer(dst []byte, ap netip.AddrPort) []byte {
	var a4 [4]byte
	if a := ap.Addr().Unmap(); a.Is4() {
		a4 = a.As4()
	}
	dst = append(dst, a4[:]...)
	return binary.BigEndian.AppendUint16(dst, ap.Port())
}

// ParseCompactPeer decodes a 6-byte compact peer.
func ParseCompactPeer(b []byte) (netip.AddrPort, error) {
	if len(b) != CompactPeerLen {
		return netip.AddrPort{}, ErrCompactLen
	}
	return netip.AddrPortFrom(netip.AddrFrom4([4]byte(b[:4])), binary.BigEndian.Uint16(b[4:])), nil
}

// AppendCompactNode appends the 26-byte compact form of a node.
func AppendCompactNode(dst []byte, id ID, ap netip.AddrPort) []byte {
	dst = append(dst, id[:]...)
	return AppendCompactPeer(dst, ap)
}

// ParseCompactNode decodes a 26-byte compact node.
func ParseCompactNode(b []byte) (ID, netip.AddrPort, error) {
	if len(b) != CompactNodeLen {
		return ID{}, netip.AddrPort{}, ErrCompactLen
	}
	ap, _ := ParseCompactPeer(b[IDLen:])
	return ID(b[:IDLen]), ap, nil
}
