package wire

import (
	"encoding/binary"
	"net/netip"
	"strconv"
)

// The IPv6 extension (package documentation, "IPv6"): 38-byte compact nodes
// in a nodes6 list, 18-byte contacts in values stored on the IPv6 network,
// and the want argument of find_node and find_value.

// CompactNode6Len is the length of an IPv6 compact node: ID, IPv6 address,
// port (BEP 32).
const CompactNode6Len = IDLen + 16 + 2

// CompactPeer6Len is the length of an IPv6 compact peer: IPv6 address, port.
const CompactPeer6Len = 16 + 2

// node6Stride is the size of one element of a validated nodes6 list: "38:"
// and the compact node.
const node6Stride = 3 + CompactNode6Len

// Want is the set of address families a find_node or find_value requester
// asks nodes of (the want argument: a list of "n4" and "n6"). The zero Want
// means the family the query arrived over.
type Want uint8

// The want flags.
const (
	WantN4 Want = 1 << iota // "n4": IPv4 nodes, in nodes
	WantN6                  // "n6": IPv6 nodes, in nodes6
)

// IsIPv6 reports whether a is an IPv6 address that is not an IPv4-mapped
// one: the addresses the IPv6 forms carry. IPv4-mapped addresses are IPv4
// peers and always use the IPv4 forms.
func IsIPv6(a netip.Addr) bool { return a.Is6() && !a.Is4In6() }

// AppendCompactPeer6 appends the 18-byte compact form of an IPv6 address and
// port. An address that is not IPv6 (IPv4 or IPv4-mapped) is written as ::,
// which no receiver accepts as a contact.
func AppendCompactPeer6(dst []byte, ap netip.AddrPort) []byte {
	var a16 [16]byte
	if a := ap.Addr(); IsIPv6(a) {
		a16 = a.As16()
	}
	dst = append(dst, a16[:]...)
	return binary.BigEndian.AppendUint16(dst, ap.Port())
}

// ParseCompactPeer6 decodes an 18-byte compact peer. An IPv4-mapped address
// is refused: an IPv4 peer has the 6-byte form.
func ParseCompactPeer6(b []byte) (netip.AddrPort, error) {
	if len(b) != CompactPeer6Len {
		return netip.AddrPort{}, ErrCompactLen
	}
	a := netip.AddrFrom16([16]byte(b[:16]))
	if a.Is4In6() {
		return netip.AddrPort{}, ErrCompactLen
	}
	return netip.AddrPortFrom(a, binary.BigEndian.Uint16(b[16:])), nil
}

// AppendCompactNode6 appends the 38-byte compact form of an IPv6 node.
func AppendCompactNode6(dst []byte, id ID, ap netip.AddrPort) []byte {
	dst = append(dst, id[:]...)
	return AppendCompactPeer6(dst, ap)
}

// ParseCompactNode6 decodes a 38-byte compact node.
func ParseCompactNode6(b []byte) (ID, netip.AddrPort, error) {
	if len(b) != CompactNode6Len {
		return ID{}, netip.AddrPort{}, ErrCompactLen
	}
	ap, err := ParseCompactPeer6(b[IDLen:])
	if err != nil {
		return ID{}, netip.AddrPort{}, err
	}
	return ID(b[:IDLen]), ap, nil
}

// AppendCompactContact appends the compact form of a contact in its own
// family: 6 bytes for IPv4 (and IPv4-mapped) addresses, 18 for IPv6.
func AppendCompactContact(dst []byte, ap netip.AddrPort) []byte {
	if IsIPv6(ap.Addr()) {
		return AppendCompactPeer6(dst, ap)
	}
	return AppendCompactPeer(dst, ap)
}

// ParseCompactContact decodes a 6-byte (IPv4) or 18-byte (IPv6) contact.
func ParseCompactContact(b []byte) (netip.AddrPort, error) {
	if len(b) == CompactPeer6Len {
		return ParseCompactPeer6(b)
	}
	return ParseCompactPeer(b)
}

// wantList is the bencoded want argument for each Want.
func wantList(w Want) string {
	switch w & (WantN4 | WantN6) {
	case WantN4:
		return "4:wantl2:n4e"
	case WantN6:
		return "4:wantl2:n6e"
	case WantN4 | WantN6:
		return "4:wantl2:n42:n6e"
	}
	return ""
}

// AppendFindNodeWant appends a find_node query with a want argument (none
// for the zero Want: then it is AppendFindNode). Only IPv6 peers are sent a
// want: the original answers an unknown argument with error 204.
func AppendFindNodeWant(dst []byte, tid, self, target ID, want Want) []byte {
	dst = append(dst, "d1:ad2:id20:"...)
	dst = appendID(dst, self)
	dst = append(dst, "6:target20:"...)
	dst = appendID(dst, target)
	dst = append(dst, wantList(want)...)
	dst = append(dst, "e1:q9:find_node"...)
	return appendQueryTail(dst, tid)
}

// AppendFindValueWant appends a find_value query with a want argument.
func AppendFindValueWant(dst []byte, tid, self, key ID, want Want) []byte {
	dst = append(dst, "d1:ad2:id20:"...)
	dst = appendID(dst, self)
	dst = append(dst, "3:key20:"...)
	dst = appendID(dst, key)
	dst = append(dst, wantList(want)...)
	dst = append(dst, "e1:q10:find_value"...)
	return appendQueryTail(dst, tid)
}

// appendNodes6 appends the nodes6 list: at most MaxNodes IPv6 nodes, skipping
// the others.
func appendNodes6(dst []byte, nodes []Node) []byte {
	dst = append(dst, "6:nodes6l"...)
	k := 0
	for i := range nodes {
		if k == MaxNodes {
			break
		}
		if !IsIPv6(nodes[i].Addr.Addr()) {
			continue
		}
		k++
		dst = append(dst, "38:"...)
		dst = AppendCompactNode6(dst, nodes[i].ID, nodes[i].Addr)
	}
	return append(dst, 'e')
}

// appendNodesWant appends nodes (IPv4, if want has WantN4) and nodes6 (IPv6,
// if want has WantN6), each from the first MaxNodes nodes of its family.
func appendNodesWant(dst []byte, nodes []Node, want Want) []byte {
	if want&WantN4 != 0 {
		dst = appendNodes(dst, nodes)
	}
	if want&WantN6 != 0 {
		dst = appendNodes6(dst, nodes)
	}
	return dst
}

// AppendFindNodeRespWant appends the response to find_node with the node
// lists want names: r = {id, nodes (IPv4), nodes6 (IPv6), token}. nodes may
// mix both families; each list takes the first MaxNodes of its own. With
// want == WantN4 it is AppendFindNodeResp.
func AppendFindNodeRespWant(dst []byte, tid, self ID, nodes []Node, want Want, token ID) []byte {
	dst = append(dst, "d1:rd2:id20:"...)
	dst = appendID(dst, self)
	dst = appendNodesWant(dst, nodes, want)
	dst = append(dst, "5:token20:"...)
	dst = appendID(dst, token)
	return appendRespTail(dst, tid)
}

// AppendFindValueRespWant appends the response to find_value with the node
// lists want names: r = {id, nodes, nodes6, num}.
func AppendFindValueRespWant(dst []byte, tid, self ID, nodes []Node, want Want, num int) []byte {
	dst = append(dst, "d1:rd2:id20:"...)
	dst = appendID(dst, self)
	dst = appendNodesWant(dst, nodes, want)
	dst = append(dst, "3:numi"...)
	dst = strconv.AppendInt(dst, int64(max(num, 0)), 10)
	dst = append(dst, 'e')
	return appendRespTail(dst, tid)
}

// Maximum sizes of the replies carrying both node lists (tests check them
// against the encoders and MaxPacketIPv6).
const (
	MaxFindNodeRespWantLen  = MaxFindNodeRespLen + len("6:nodes6l") + MaxNodes*node6Stride + len("e")
	MaxFindValueRespWantLen = MaxFindValueRespLen + len("6:nodes6l") + MaxNodes*node6Stride + len("e")
	MaxFindNodeWantLen      = FindNodeLen + len("4:wantl2:n42:n6e")
	MaxFindValueWantLen     = FindValueLen + len("4:wantl2:n42:n6e")
)

// parseWant validates a want argument at pkt[i]: a list of strings. It sets
// the flags it knows ("n4", "n6") and ignores other strings, as BEP 32 asks
// of unknown flags. ok is false for well-formed bencode of another shape.
func (m *Msg) parseWant(pkt []byte, i int) (next int, ok bool, err error) {
	if pkt[i] != 'l' {
		next, err = skip(pkt, i, 2, nil)
		return next, false, err
	}
	ok = true
	for j := i + 1; ; {
		if j >= len(pkt) {
			return j, false, ErrTruncated
		}
		if pkt[j] == 'e' {
			return j + 1, ok, nil
		}
		if pkt[j] >= '0' && pkt[j] <= '9' {
			var s []byte
			if s, j, err = readStr(pkt, j); err != nil {
				return j, false, err
			}
			if len(s) == 2 && s[0] == 'n' {
				switch s[1] {
				case '4':
					m.Want |= WantN4
				case '6':
					m.Want |= WantN6
				}
			}
			continue
		}
		ok = false
		if j, err = skip(pkt, j, 3, nil); err != nil {
			return j, false, err
		}
	}
}

// parseNodes6 validates a nodes6 list at pkt[i]: a list of 38-byte strings.
func (m *Msg) parseNodes6(pkt []byte, i int) (next int, ok bool, err error) {
	list, next, ok, err := scanFixedList(pkt, i, '3', '8', node6Stride)
	if ok {
		m.Nodes6 = NodeList6{b: list}
	}
	return next, ok, err
}

// NodeList6 is a view of a validated bencoded list of 38-byte compact nodes
// (nodes6) in a packet.
type NodeList6 struct {
	b []byte // the list's elements, each exactly "38:<38 bytes>"
}

// Len returns the number of nodes.
func (l NodeList6) Len() int { return len(l.b) / node6Stride }

// At returns node i, 0 ≤ i < Len(). An entry holding an IPv4-mapped address
// comes back with an invalid address, which no caller accepts as a node.
func (l NodeList6) At(i int) Node {
	e := (*[node6Stride]byte)(l.b[i*node6Stride:])
	a := netip.AddrFrom16([16]byte(e[3+IDLen : 3+IDLen+16]))
	if a.Is4In6() {
		return Node{ID: ID(e[3 : 3+IDLen])}
	}
	return Node{
		ID:   ID(e[3 : 3+IDLen]),
		Addr: netip.AddrPortFrom(a, uint16(e[node6Stride-2])<<8|uint16(e[node6Stride-1])),
	}
}

// parseIPv6Text parses the text form of an IPv6 address (RFC 4291 §2.2:
// groups of up to four hex digits, at most one "::", optionally ending in a
// dotted quad) without allocating. Zones are refused: a join reply names
// the address a remote node saw, which has none.
func parseIPv6Text(b []byte) (netip.Addr, bool) {
	var a [16]byte
	ellipsis := -1 // byte index in a where "::" stands
	i, k := 0, 0   // position in b, in a
	if len(b) >= 2 && b[0] == ':' && b[1] == ':' {
		ellipsis = 0
		i = 2
		if i == len(b) {
			return netip.AddrFrom16(a), true
		}
	}
	for k < 16 {
		// One group: hex digits, or a dotted quad in the last 4 bytes.
		n, d := 0, 0
		for d < 4 && i+d < len(b) {
			c := b[i+d]
			var v int
			switch {
			case c >= '0' && c <= '9':
				v = int(c - '0')
			case c >= 'a' && c <= 'f':
				v = int(c-'a') + 10
			case c >= 'A' && c <= 'F':
				v = int(c-'A') + 10
			default:
				v = -1
			}
			if v < 0 {
				break
			}
			n = n<<4 | v
			d++
		}
		if d == 0 {
			return netip.Addr{}, false
		}
		if i+d < len(b) && b[i+d] == '.' {
			// An embedded IPv4 address ends the text.
			if k > 12 {
				return netip.Addr{}, false
			}
			v4, ok := parseDottedQuad(b[i:])
			if !ok {
				return netip.Addr{}, false
			}
			copy(a[k:], v4[:])
			k += 4
			i = len(b)
			break
		}
		a[k], a[k+1] = byte(n>>8), byte(n)
		k += 2
		i += d
		if i == len(b) {
			break
		}
		if b[i] != ':' || i+1 == len(b) {
			return netip.Addr{}, false
		}
		i++
		if b[i] == ':' {
			if ellipsis >= 0 {
				return netip.Addr{}, false
			}
			ellipsis = k
			i++
			if i == len(b) {
				break
			}
		}
	}
	if i != len(b) {
		return netip.Addr{}, false
	}
	if k < 16 {
		if ellipsis < 0 {
			return netip.Addr{}, false
		}
		n := 16 - k
		copy(a[ellipsis+n:], a[ellipsis:k])
		clear(a[ellipsis : ellipsis+n])
	} else if ellipsis >= 0 {
		return netip.Addr{}, false // "::" must stand for at least one group
	}
	return netip.AddrFrom16(a), true
}

// parseDottedQuad parses a.b.c.d (no leading zeros) without allocating.
func parseDottedQuad(b []byte) (a [4]byte, ok bool) {
	for k := range 4 {
		if k > 0 {
			if len(b) == 0 || b[0] != '.' {
				return a, false
			}
			b = b[1:]
		}
		n, d := 0, 0
		for d < len(b) && d < 3 && b[d] >= '0' && b[d] <= '9' {
			n = n*10 + int(b[d]-'0')
			d++
		}
		if d == 0 || n > 255 || (d > 1 && b[0] == '0') {
			return a, false
		}
		a[k] = byte(n)
		b = b[d:]
	}
	return a, len(b) == 0
}
