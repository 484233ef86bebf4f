package wire

import (
	"errors"
	"net/netip"
	"strconv"
)

// ReachMethod is the query name of the reachability probe, an apt-p2p
// extension (doc.go, "Reachability"). Original peers answer it with error 203
// (unknown method); BitTorrent nodes would say 204.
const ReachMethod = "reach"

// ReachArgs are the arguments of a reach query.
type ReachArgs struct {
	ID    ID     // the requester's node ID
	Nonce ID     // echoed as the TID of the UDP probe and in the TCP probe's path
	Port  uint16 // TCP port to probe on the requester's address; 0: no TCP probe
	Token ID     // the responder's token for the requester's IP (from an earlier reach or find_node reply)
	Has   Field  // FieldToken when a token was sent
}

// ReachReply is what a reach response says besides the responder's id.
type ReachReply struct {
	Seen  netip.AddrPort // the requester's address as the responder saw it
	Token ID             // the responder's token for the requester's IP
	TCP   bool           // a TCP probe was started
	Has   Field          // FieldToken, FieldIPAddr when present
}

// ErrBadReach is returned for a reach query or reply whose fields are
// missing or malformed.
var ErrBadReach = errors.New("wire: malformed reach message")

// AppendReach appends a reach query. port 0 leaves the port out (no TCP
// probe); a zero token is left out.
func AppendReach(dst []byte, tid ID, a *ReachArgs) []byte {
	dst = append(dst, "d1:ad2:id20:"...)
	dst = appendID(dst, a.ID)
	dst = append(dst, "5:nonce20:"...)
	dst = appendID(dst, a.Nonce)
	if a.Port != 0 {
		dst = append(dst, "4:porti"...)
		dst = strconv.AppendUint(dst, uint64(a.Port), 10)
		dst = append(dst, 'e')
	}
	if a.Has&FieldToken != 0 {
		dst = append(dst, "5:token20:"...)
		dst = appendID(dst, a.Token)
	}
	dst = append(dst, "e1:q5:reach"...)
	return appendQueryTail(dst, tid)
}

// AppendReachResp appends the reply to a reach query: the responder's id, the
// requester's address as seen (ip: 6-byte compact, 18 bytes over IPv6), the token for that IP,
// and tcp = 1 when a TCP probe was started.
func AppendReachResp(dst []byte, tid, self ID, seen netip.AddrPort, token ID, tcp bool) []byte {
	dst = append(dst, "d1:rd2:id20:"...)
	dst = appendID(dst, self)
	if seen.Addr().Unmap().Is4() {
		dst = append(dst, "2:ip6:"...)
		dst = AppendCompactPeer(dst, netip.AddrPortFrom(seen.Addr().Unmap(), seen.Port()))
	} else if IsIPv6(seen.Addr()) {
		dst = append(dst, "2:ip18:"...)
		dst = AppendCompactPeer6(dst, seen)
	}
	if tcp {
		dst = append(dst, "3:tcpi1e"...)
	}
	dst = append(dst, "5:token20:"...)
	dst = appendID(dst, token)
	return appendRespTail(dst, tid)
}

// AppendReachProbe appends the UDP probe: a reply-shaped message whose TID is
// the requester's nonce, sent from another port than the responder's DHT
// port. A node that did not ask drops it as a reply to no request.
func AppendReachProbe(dst []byte, nonce, self ID) []byte { return AppendIDResp(dst, nonce, self) }

// dictAt returns the index just inside the top-level dict's value under key
// (one byte long) of a valid KRPC message pkt, or -1.
func dictAt(pkt []byte, key byte) int {
	if len(pkt) == 0 || pkt[0] != 'd' {
		return -1
	}
	for i := 1; i < len(pkt) && pkt[i] != 'e'; {
		k, j, err := readStr(pkt, i)
		if err != nil || j >= len(pkt) {
			return -1
		}
		if len(k) == 1 && k[0] == key {
			if pkt[j] != 'd' {
				return -1
			}
			return j + 1
		}
		if i, err = skip(pkt, j, 1, nil); err != nil {
			return -1
		}
	}
	return -1
}

// ParseReachArgs reads the arguments of a reach query (a message Parse has
// accepted with MethodName "reach"). id and nonce are required; port (1 to
// 65535) and token are optional; other keys are skipped, so later versions
// may add some.
func ParseReachArgs(pkt []byte, a *ReachArgs) error {
	*a = ReachArgs{}
	i := dictAt(pkt, 'a')
	if i < 0 {
		return ErrBadReach
	}
	var have Field
	for i < len(pkt) && pkt[i] != 'e' {
		k, j, err := readStr(pkt, i)
		if err != nil || j >= len(pkt) {
			return ErrBadReach
		}
		var dst *ID
		var f Field
		switch string(k) {
		case "id":
			dst, f = &a.ID, FieldID
		case "nonce":
			dst, f = &a.Nonce, FieldValue
		case "token":
			dst, f = &a.Token, FieldToken
		case "port":
			n, fits, next, err := readInt(pkt, j)
			if pkt[j] != 'i' || err != nil || !fits || n < 1 || n > 65535 {
				return ErrBadReach
			}
			a.Port, i = uint16(n), next
			continue
		}
		if dst == nil {
			if i, err = skip(pkt, j, 2, nil); err != nil {
				return ErrBadReach
			}
			continue
		}
		s, next, err := readStr(pkt, j)
		if err != nil || len(s) != IDLen {
			return ErrBadReach
		}
		*dst = ID(s)
		have |= f
		i = next
	}
	if have&(FieldID|FieldValue) != FieldID|FieldValue {
		return ErrBadReach
	}
	a.Has = have & FieldToken
	return nil
}

// ParseReachReply reads the extension fields of a reach response (a message
// Parse has accepted as a reply). Missing fields are left zero; a field of the
// wrong shape is an error.
func ParseReachReply(pkt []byte, r *ReachReply) error {
	*r = ReachReply{}
	i := dictAt(pkt, 'r')
	if i < 0 {
		return ErrBadReach
	}
	for i < len(pkt) && pkt[i] != 'e' {
		k, j, err := readStr(pkt, i)
		if err != nil || j >= len(pkt) {
			return ErrBadReach
		}
		switch string(k) {
		case "ip":
			s, next, err := readStr(pkt, j)
			if err != nil {
				return ErrBadReach
			}
			if r.Seen, err = ParseCompactContact(s); err != nil {
				return ErrBadReach
			}
			r.Has |= FieldIPAddr
			i = next
		case "token":
			s, next, err := readStr(pkt, j)
			if err != nil || len(s) != IDLen {
				return ErrBadReach
			}
			r.Token = ID(s)
			r.Has |= FieldToken
			i = next
		case "tcp":
			n, fits, next, err := readInt(pkt, j)
			if pkt[j] != 'i' || err != nil || !fits {
				return ErrBadReach
			}
			r.TCP = n == 1
			i = next
		default:
			if i, err = skip(pkt, j, 2, nil); err != nil {
				return ErrBadReach
			}
		}
	}
	return nil
}

// roFlag is BEP 43's top-level key of a read-only node's queries.
const roFlag = "2:roi1e"

// AppendReadOnly marks a query as sent by a read-only node (BEP 43): it
// inserts ro = 1 into the top-level dict of pkt, in key order (after q,
// before t), and returns the extended slice. A packet that already has it, or
// that is not a well-formed query, is returned unchanged. Original peers read
// only t, y, q and a and ignore the key; apt-p2p peers honour it.
func AppendReadOnly(pkt []byte) []byte {
	if len(pkt) == 0 || pkt[0] != 'd' {
		return pkt
	}
	for i := 1; i < len(pkt) && pkt[i] != 'e'; {
		k, j, err := readStr(pkt, i)
		if err != nil || j >= len(pkt) {
			return pkt
		}
		if string(k) == "ro" {
			return pkt
		}
		if keyLess([]byte("ro"), k) {
			n := len(pkt)
			pkt = append(pkt, roFlag...)
			copy(pkt[i+len(roFlag):], pkt[i:n])
			copy(pkt[i:], roFlag)
			return pkt
		}
		if i, err = skip(pkt, j, 1, nil); err != nil {
			return pkt
		}
	}
	return pkt
}
