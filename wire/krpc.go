package wire

import (
	"errors"
	"net/netip"
)

// Packet limits: the largest UDP payload that fits a 1500-byte Ethernet MTU
// without fragmentation.
const (
	MaxPacketIPv4 = 1472 // 1500 - 20 (IPv4 header) - 8 (UDP header)
	MaxPacketIPv6 = 1452 // 1500 - 40 (IPv6 header) - 8 (UDP header)
)

// Remote KRPC error codes (reference §2.6).
const (
	ErrCodeServer           = 201
	ErrCodeMalformedPacket  = 202
	ErrCodeMethodUnknown    = 203
	ErrCodeMalformedRequest = 204
	ErrCodeInvalidToken     = 205
	ErrCodeResponseTooLong  = 206
)

// Method is a KRPC query method.
type Method uint8

// The six methods of the apt-p2p DHT.
const (
	MethodUnknown Method = iota // a query whose name is none of the six (answer 203)
	MethodPing
	MethodJoin
	MethodFindNode
	MethodFindValue
	MethodGetValue
	MethodStoreValue
)

var methodNames = [...]string{"unknown", "ping", "join", "find_node", "find_value", "get_value", "store_value"}

// String returns the method's wire name ("unknown" for MethodUnknown).
func (m Method) String() string {
	if int(m) < len(methodNames) {
		return methodNames[m]
	}
	return "unknown"
}

// lookupMethod maps a wire method name to its Method.
func lookupMethod(name []byte) Method {
	switch string(name) {
	case "ping":
		return MethodPing
	case "join":
		return MethodJoin
	case "find_node":
		return MethodFindNode
	case "find_value":
		return MethodFindValue
	case "get_value":
		return MethodGetValue
	case "store_value":
		return MethodStoreValue
	}
	return MethodUnknown
}

// Node is one compact node: a node ID and its UDP address (IPv4 in nodes,
// IPv6 in nodes6).
type Node struct {
	ID   ID
	Addr netip.AddrPort
}

// Field bits say which argument/result keys were present.
type Field uint16

// One bit per argument or result key.
const (
	FieldID Field = 1 << iota
	FieldTarget
	FieldKey
	FieldToken
	FieldNum
	FieldValue
	FieldNodes
	FieldValues
	FieldIPAddr
	FieldPort
	FieldNodes6 // response nodes6: IPv6 nodes (the IPv6 extension, ipv6.go)
	FieldWant   // find_node and find_value argument want (ipv6.go)
)

// takesWant reports whether the method's query may carry want (the IPv6
// extension: the methods whose replies carry nodes).
func (m Method) takesWant() bool { return m == MethodFindNode || m == MethodFindValue }

// Args returns the exact argument set of a method's query, or 0 for
// MethodUnknown. find_node and find_value may also carry want.
func (m Method) Args() Field {
	switch m {
	case MethodPing, MethodJoin:
		return FieldID
	case MethodFindNode:
		return FieldID | FieldTarget
	case MethodFindValue:
		return FieldID | FieldKey
	case MethodGetValue:
		return FieldID | FieldKey | FieldNum
	case MethodStoreValue:
		return FieldID | FieldKey | FieldValue | FieldToken
	}
	return 0
}

// Results returns the result keys a successful response to the method
// carries (reference §2.5).
func (m Method) Results() Field {
	switch m {
	case MethodPing, MethodStoreValue:
		return FieldID
	case MethodJoin:
		return FieldID | FieldIPAddr | FieldPort
	case MethodFindNode:
		return FieldID | FieldNodes | FieldToken
	case MethodFindValue:
		return FieldID | FieldNodes | FieldNum
	case MethodGetValue:
		return FieldID | FieldValues
	}
	return 0
}

// Msg is a decoded KRPC message. Parse fills it in place: byte-slice fields and
// the Nodes and Values views alias the packet given to Parse and stay valid
// until that buffer is reused.
type Msg struct {
	Y          byte   // 'q', 'r' or 'e'
	TID        ID     // transaction ID (copied; packets whose t is not exactly 20 bytes are rejected)
	Method     Method // queries only
	MethodName []byte // raw `q` value, queries only
	Has        Field
	// 20-byte fields of `a` (queries) or `r` (responses).
	ID, Target, Key, Token ID
	Num                    int64
	Value                  []byte    // store_value argument
	Nodes                  NodeList  // response `nodes`: a bencoded LIST of 26-byte strings (validated in Parse)
	Values                 ValueList // get_value response `values`: list of strings
	Nodes6                 NodeList6 // response `nodes6`: a bencoded list of 38-byte strings (IPv6 extension)
	Want                   Want      // find_node / find_value argument `want` (IPv6 extension)
	IPAddr                 []byte    // join response, dotted quad
	Port                   int64     // join response
	ErrCode                int64     // errors: e[0]
	ErrMsg                 []byte    // errors: e[1]
	ReadOnly               bool      // top-level ro = 1 (BEP 43): the sender is read-only (reach.go)
}

// nodeStride is the size of one element of a validated nodes list: "26:" and
// the compact node.
const nodeStride = 3 + CompactNodeLen

// NodeList is a view of a validated bencoded list of compact nodes in a packet.
type NodeList struct {
	b []byte // the list's elements, each exactly "26:<26 bytes>"
}

// Len returns the number of nodes.
func (l NodeList) Len() int { return len(l.b) / nodeStride }

// At returns node i, 0 ≤ i < Len().
func (l NodeList) At(i int) Node {
	e := (*[nodeStride]byte)(l.b[i*nodeStride:])
	return Node{
		ID:   ID(e[3 : 3+IDLen]),
		Addr: netip.AddrPortFrom(netip.AddrFrom4([4]byte(e[3+IDLen:])), uint16(e[nodeStride-2])<<8|uint16(e[nodeStride-1])),
	}
}

// ValueList is a view of a validated bencoded list of strings in a packet.
type ValueList struct {
	b []byte // the list's elements, each a well-formed string
	n int
}

// Len returns the number of values.
func (l ValueList) Len() int { return l.n }

// At returns value i, 0 ≤ i < Len(). It scans from the start of the list, so
// iterate with All when reading every value.
func (l ValueList) At(i int) []byte {
	if uint(i) >= uint(l.n) {
		panic("wire: ValueList index out of range")
	}
	j := 0
	for {
		s, next, _ := readStr(l.b, j)
		if i == 0 {
			return s
		}
		i--
		j = next
	}
}

// All yields every value in order. The slices alias the packet.
func (l ValueList) All(yield func([]byte) bool) {
	for j := 0; j < len(l.b); {
		s, next, _ := readStr(l.b, j)
		if !yield(s) {
			return
		}
		j = next
	}
}

// Errors of (*Msg).Parse. Every one but ErrBadArgs means: drop the datagram.
var (
	ErrBadArgs     = errors.New("wire: malformed request")
	ErrTID         = errors.New("wire: transaction ID missing or not 20 bytes")
	ErrEnvelope    = errors.New("wire: malformed KRPC envelope")
	ErrMsgType     = errors.New("wire: unknown KRPC message type")
	ErrBadResponse = errors.New("wire: malformed KRPC response")
	ErrBadError    = errors.New("wire: malformed KRPC error")
)

// Presence bits of the envelope keys, internal to Parse.
const (
	envA uint8 = 1 << iota
	envE
	envQ
	envR
	envT
	envY
	envBad // a is not a dict, r is not a dict or q is not a string
)

// Parse decodes one KRPC datagram into m in a single pass without allocating.
//
// The bencode must be strict (see Decode) and consume the whole packet; t must
// be a 20-byte string; y must be "q" with a string q and a dict a, "r" with a
// dict r, or "e" with a list e of [integer, string]. A message carrying keys of
// another type (an a in a response, say) is rejected: the original never sends
// one. Unknown envelope keys and unknown result keys are skipped (after strict
// validation).
//
// For a query of a known method whose argument names are not exactly the
// method's set, or whose arguments have the wrong type or length (id, target,
// key and token are 20-byte strings, num an integer ≥ 0, value a string), Parse
// returns ErrBadArgs with m.Y, m.TID, m.Method and m.MethodName valid, so the
// caller can answer error 204. A query of an unknown method parses with
// m.Method == MethodUnknown and its arguments unchecked (answer 203).
//
// A response must carry a 20-byte id; nodes must be a list of 26-byte strings,
// nodes6 a list of 38-byte strings, values a list of strings, token 20 bytes,
// num an integer ≥ 0, ip_addr a string and port an integer in 0..65535. A
// find_node or find_value query may add want, a list of strings (ipv6.go).
func (m *Msg) Parse(pkt []byte) error {
	*m = Msg{}
	if len(pkt) > MaxParseLen {
		return ErrTooLarge
	}
	if len(pkt) == 0 {
		return ErrTruncated
	}
	if pkt[0] != 'd' {
		return ErrEnvelope
	}
	var (
		env     uint8
		tidOK   bool
		yOK     bool
		argBad  bool // a known argument of the wrong type, or an unknown one
		respBad bool
		errBad  bool
		prev    []byte
		first   = true
	)
	i := 1
	for {
		if i >= len(pkt) {
			return ErrTruncated
		}
		if pkt[i] == 'e' {
			i++
			break
		}
		if pkt[i] < '0' || pkt[i] > '9' {
			return ErrKeyType
		}
		k, j, err := readStr(pkt, i)
		if err != nil {
			return err
		}
		if !first && !keyLess(prev, k) {
			return ErrKeyOrder
		}
		prev, first = k, false
		if j >= len(pkt) {
			return ErrTruncated
		}
		if len(k) != 1 {
			if string(k) == "ro" && pkt[j] == 'i' {
				var n int64
				if n, _, i, err = readInt(pkt, j); err != nil {
					return err
				}
				m.ReadOnly = n == 1
				continue
			}
			if i, err = skip(pkt, j, 1, nil); err != nil {
				return err
			}
			continue
		}
		switch k[0] {
		case 'a':
			env |= envA
			if pkt[j] != 'd' {
				if i, err = skip(pkt, j, 1, nil); err != nil {
					return err
				}
				env |= envBad
				continue
			}
			i, argBad, err = m.parseDict(pkt, j, true)
		case 'r':
			env |= envR
			if pkt[j] != 'd' {
				if i, err = skip(pkt, j, 1, nil); err != nil {
					return err
				}
				env |= envBad
				continue
			}
			i, respBad, err = m.parseDict(pkt, j, false)
		case 'e':
			env |= envE
			i, errBad, err = m.parseErr(pkt, j)
		case 'q':
			env |= envQ
			if pkt[j] >= '0' && pkt[j] <= '9' {
				m.MethodName, i, err = readStr(pkt, j)
			} else {
				i, err = skip(pkt, j, 1, nil)
				env |= envBad
			}
		case 't':
			env |= envT
			if pkt[j] >= '0' && pkt[j] <= '9' {
				var t []byte
				t, i, err = readStr(pkt, j)
				if len(t) == IDLen {
					m.TID, tidOK = ID(t), true
				}
			} else {
				i, err = skip(pkt, j, 1, nil)
			}
		case 'y':
			env |= envY
			if pkt[j] >= '0' && pkt[j] <= '9' {
				var y []byte
				y, i, err = readStr(pkt, j)
				if len(y) == 1 {
					m.Y, yOK = y[0], true
				}
			} else {
				i, err = skip(pkt, j, 1, nil)
			}
		default:
			i, err = skip(pkt, j, 1, nil)
		}
		if err != nil {
			return err
		}
	}
	if i != len(pkt) {
		return ErrTrailing
	}
	if !tidOK {
		return ErrTID
	}
	if !yOK {
		m.Y = 0
		return ErrMsgType
	}
	switch m.Y {
	case 'q':
		if env&envBad != 0 || env&(envA|envQ) != envA|envQ || env&(envR|envE) != 0 {
			return ErrEnvelope
		}
		m.Method = lookupMethod(m.MethodName)
		if m.Method == MethodUnknown {
			return nil
		}
		if argBad || m.Has&^FieldWant != m.Method.Args() || (m.Has&FieldWant != 0 && !m.Method.takesWant()) {
			return ErrBadArgs
		}
		return nil
	case 'r':
		if env&(envA|envQ|envE|envBad) != 0 || env&envR == 0 {
			return ErrEnvelope
		}
		if respBad || m.Has&FieldID == 0 {
			return ErrBadResponse
		}
		return nil
	case 'e':
		if env&(envA|envQ|envR|envBad) != 0 || env&envE == 0 {
			return ErrEnvelope
		}
		if errBad {
			return ErrBadError
		}
		return nil
	}
	return ErrMsgType
}

// parseDict parses the a (args) or r (results) dict at pkt[i] == 'd' into m.
// bad reports a field of the wrong type or length, or (for args) an unknown
// key; err reports invalid bencode.
func (m *Msg) parseDict(pkt []byte, i int, args bool) (next int, bad bool, err error) {
	i++
	var prev []byte
	first := true
	for {
		if i >= len(pkt) {
			return i, bad, ErrTruncated
		}
		if pkt[i] == 'e' {
			return i + 1, bad, nil
		}
		if pkt[i] < '0' || pkt[i] > '9' {
			return i, bad, ErrKeyType
		}
		k, j, err := readStr(pkt, i)
		if err != nil {
			return j, bad, err
		}
		if !first && !keyLess(prev, k) {
			return i, bad, ErrKeyOrder
		}
		prev, first = k, false
		if j >= len(pkt) {
			return j, bad, ErrTruncated
		}
		isStr := pkt[j] >= '0' && pkt[j] <= '9'
		var f Field
		var dst *ID
		switch string(k) {
		case "id":
			f, dst = FieldID, &m.ID
		case "target":
			f, dst = FieldTarget, &m.Target
		case "key":
			f, dst = FieldKey, &m.Key
		case "token":
			f, dst = FieldToken, &m.Token
		case "num":
			f = FieldNum
		case "value":
			f = FieldValue
		case "nodes":
			f = FieldNodes
		case "values":
			f = FieldValues
		case "ip_addr":
			f = FieldIPAddr
		case "port":
			f = FieldPort
		case "nodes6":
			f = FieldNodes6
		case "want":
			f = FieldWant
		}
		if args && f&(FieldNodes|FieldValues|FieldIPAddr|FieldPort|FieldNodes6) != 0 {
			f = 0
		}
		if !args && f&(FieldTarget|FieldKey|FieldValue|FieldWant) != 0 {
			f = 0
		}
		if f == 0 {
			bad = bad || args // unknown result keys are ignored, unknown arguments are not
			if i, err = skip(pkt, j, 2, nil); err != nil {
				return i, bad, err
			}
			continue
		}
		ok := false
		switch {
		case dst != nil:
			if isStr {
				var s []byte
				if s, i, err = readStr(pkt, j); err == nil && len(s) == IDLen {
					*dst, ok = ID(s), true
				}
			} else {
				i, err = skip(pkt, j, 2, nil)
			}
		case f == FieldNum || f == FieldPort:
			if pkt[j] == 'i' {
				var n int64
				var fits bool
				if n, fits, i, err = readInt(pkt, j); err == nil && fits && n >= 0 {
					if f == FieldNum {
						m.Num, ok = n, true
					} else if n <= 65535 {
						m.Port, ok = n, true
					}
				}
			} else {
				i, err = skip(pkt, j, 2, nil)
			}
		case f == FieldValue || f == FieldIPAddr:
			if isStr {
				var s []byte
				if s, i, err = readStr(pkt, j); err == nil {
					if f == FieldValue {
						m.Value = s
					} else {
						m.IPAddr = s
					}
					ok = true
				}
			} else {
				i, err = skip(pkt, j, 2, nil)
			}
		case f == FieldNodes:
			i, ok, err = m.parseNodes(pkt, j)
		case f == FieldValues:
			i, ok, err = m.parseValues(pkt, j)
		case f == FieldNodes6:
			i, ok, err = m.parseNodes6(pkt, j)
		case f == FieldWant:
			i, ok, err = m.parseWant(pkt, j)
		}
		if err != nil {
			return i, bad, err
		}
		if ok {
			// Only a field of the right shape counts as present: a query of
			// an unknown method is not checked further (FuzzParse found an
			// id of the wrong type marked present).
			m.Has |= f
		}
		bad = bad || !ok
	}
}

// parseNodes validates a nodes list at pkt[i]. ok is false (with a nil error)
// for well-formed bencode that is not a list of 26-byte strings.
func (m *Msg) parseNodes(pkt []byte, i int) (next int, ok bool, err error) {
	list, next, ok, err := scanFixedList(pkt, i, '2', '6', nodeStride)
	if ok {
		m.Nodes = NodeList{b: list}
	}
	return next, ok, err
}

// scanFixedList validates a bencoded list at pkt[i] whose items should all be
// strings of one two-digit length (d0 d1, "26" for nodes, "38" for nodes6;
// stride = 3 + that length). ok is false (with a nil error) for well-formed
// bencode that is not such a list; list is the items' bytes when ok.
func scanFixedList(pkt []byte, i int, d0, d1 byte, stride int) (list []byte, next int, ok bool, err error) {
	if pkt[i] != 'l' {
		next, err = skip(pkt, i, 2, nil)
		return nil, next, false, err
	}
	start := i + 1
	ok = true
	for j := start; ; {
		if j >= len(pkt) {
			return nil, j, false, ErrTruncated
		}
		if pkt[j] == 'e' {
			if ok {
				list = pkt[start:j:j]
			}
			return list, j + 1, ok, nil
		}
		// Fast path: exactly "<d0><d1>:" followed by that many bytes.
		if j+stride <= len(pkt) && pkt[j] == d0 && pkt[j+1] == d1 && pkt[j+2] == ':' {
			j += stride
			continue
		}
		ok = false
		if j, err = skip(pkt, j, 3, nil); err != nil {
			return nil, j, false, err
		}
	}
}

// parseValues validates a values list of strings at pkt[i].
func (m *Msg) parseValues(pkt []byte, i int) (next int, ok bool, err error) {
	if pkt[i] != 'l' {
		next, err = skip(pkt, i, 2, nil)
		return next, false, err
	}
	start := i + 1
	ok = true
	n := 0
	for j := start; ; {
		if j >= len(pkt) {
			return j, false, ErrTruncated
		}
		if pkt[j] == 'e' {
			if ok {
				m.Values = ValueList{b: pkt[start:j:j], n: n}
			}
			return j + 1, ok, nil
		}
		if pkt[j] >= '0' && pkt[j] <= '9' {
			if _, j, err = readStr(pkt, j); err != nil {
				return j, false, err
			}
			n++
			continue
		}
		ok = false
		if j, err = skip(pkt, j, 3, nil); err != nil {
			return j, false, err
		}
	}
}

// parseErr parses the e list at pkt[i]: [integer code, string message].
func (m *Msg) parseErr(pkt []byte, i int) (next int, bad bool, err error) {
	if pkt[i] != 'l' {
		next, err = skip(pkt, i, 1, nil)
		return next, true, err
	}
	j := i + 1
	for idx := 0; ; idx++ {
		if j >= len(pkt) {
			return j, true, ErrTruncated
		}
		if pkt[j] == 'e' {
			return j + 1, bad || idx != 2, nil
		}
		switch {
		case idx == 0 && pkt[j] == 'i':
			var fits bool
			if m.ErrCode, fits, j, err = readInt(pkt, j); err != nil {
				return j, true, err
			}
			bad = bad || !fits
		case idx == 1 && pkt[j] >= '0' && pkt[j] <= '9':
			if m.ErrMsg, j, err = readStr(pkt, j); err != nil {
				return j, true, err
			}
		default:
			bad = true
			if j, err = skip(pkt, j, 2, nil); err != nil {
				return j, true, err
			}
		}
	}
}

// JoinAddr returns the address a join response reports (ip_addr and port),
// parsed without allocating. ok is false if the response has none or ip_addr is
// neither a dotted-quad IPv4 address nor an IPv6 address in text form (a
// join over IPv6 reports the requester's IPv6 address).
func (m *Msg) JoinAddr() (ap netip.AddrPort, ok bool) {
	if m.Has&(FieldIPAddr|FieldPort) != FieldIPAddr|FieldPort {
		return ap, false
	}
	for _, c := range m.IPAddr {
		if c == ':' {
			a, ok := parseIPv6Text(m.IPAddr)
			if !ok {
				return ap, false
			}
			return netip.AddrPortFrom(a.Unmap(), uint16(m.Port)), true
		}
	}
	a, ok := parseDottedQuad(m.IPAddr)
	if !ok {
		return ap, false
	}
	return netip.AddrPortFrom(netip.AddrFrom4(a), uint16(m.Port)), true
}
