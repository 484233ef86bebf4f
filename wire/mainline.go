package wire

import (
	"crypto/sha1"
	"errors"
	"net/netip"
	"strconv"
)

// This file is the codec of the BitTorrent mainline DHT (BEP 5, with the
// top-level ip of BEP 42, ro of BEP 43 and immutable items of BEP 44): the
// second personality of the engine. The package documentation ("The
// mainline DHT") says how apt-p2p content maps onto it.

// BEP 5 error codes (they differ from the apt-p2p protocol's: 203 is a
// protocol error there, 204 an unknown method) and BEP 44's.
const (
	MLErrGeneric       = 201
	MLErrServer        = 202
	MLErrProtocol      = 203
	MLErrMethodUnknown = 204
	MLErrTooBig        = 205 // BEP 44: v larger than MaxItemLen
)

// Limits of the mainline codec.
const (
	// MaxMLTIDLen bounds a transaction ID: BEP 5 leaves its length open;
	// clients use 2 to 4 bytes. A longer one is refused.
	MaxMLTIDLen = 32
	// MaxMLTokenLen bounds a token (libtorrent's are 4 bytes, ours 8).
	MaxMLTokenLen = 64
	// MaxItemLen is BEP 44's limit on the bencoded v of an item.
	MaxItemLen = 1000
	// MLTokenLen is the length of the tokens this implementation hands out.
	MLTokenLen = 8
	// MaxMLPeers is the most peers a get_peers reply carries (libtorrent
	// sends at most 100; 50 keep a reply far under both packet limits).
	MaxMLPeers = 50
)

// MLMethod is a mainline DHT query method.
type MLMethod uint8

// The methods this implementation answers.
const (
	MLUnknown      MLMethod = iota // anything else: error 204
	MLPing                         // ping
	MLFindNode                     // find_node
	MLGetPeers                     // get_peers
	MLAnnouncePeer                 // announce_peer
	MLGet                          // get (BEP 44)
	MLPut                          // put (BEP 44, immutable items only)
)

var mlMethodNames = [...]string{"unknown", "ping", "find_node", "get_peers", "announce_peer", "get", "put"}

// String returns the wire name of the method.
func (m MLMethod) String() string {
	if int(m) < len(mlMethodNames) {
		return mlMethodNames[m]
	}
	return "unknown"
}

func lookupMLMethod(b []byte) MLMethod {
	switch string(b) {
	case "ping":
		return MLPing
	case "find_node":
		return MLFindNode
	case "get_peers":
		return MLGetPeers
	case "announce_peer":
		return MLAnnouncePeer
	case "get":
		return MLGet
	case "put":
		return MLPut
	}
	return MLUnknown
}

// MLField bits say which keys of a or r were present and well formed.
type MLField uint32

// One bit per argument or result key.
const (
	MLFieldID MLField = 1 << iota
	MLFieldTarget
	MLFieldInfoHash
	MLFieldToken
	MLFieldPort
	MLFieldImpliedPort
	MLFieldNodes
	MLFieldValues
	MLFieldV
	MLFieldMutable // k, sig, salt, seq or cas: a mutable item (not supported)
)

// Errors of the mainline parser.
var (
	ErrMLEnvelope = errors.New("wire: malformed mainline KRPC envelope")
	ErrMLArgs     = errors.New("wire: malformed mainline KRPC arguments")
)

// MLMsg is a decoded mainline KRPC message. Parse fills it in place: byte
// slices and the node and peer views alias the packet and stay valid until
// that buffer is reused.
type MLMsg struct {
	Y          byte
	TID        []byte // 1..MaxMLTIDLen bytes
	Method     MLMethod
	MethodName []byte
	ReadOnly   bool           // ro = 1 (BEP 43): the sender answers no queries
	IP         netip.AddrPort // top-level ip (BEP 42): how the responder sees us
	HasIP      bool
	Version    []byte // top-level v: the client's name and version
	Has        MLField

	ID, Target, InfoHash ID
	Token                []byte
	Port                 int64
	ImpliedPort          bool
	Nodes                CompactNodes // r.nodes: concatenated 26-byte nodes
	Peers                PeerList     // r.values: 6-byte IPv4 peers (IPv6 entries are skipped)
	V                    []byte       // BEP 44 item: the raw bencoded value

	ErrCode int64
	ErrMsg  []byte
}

// CompactNodes is a view of BEP 5's concatenated compact node infos.
type CompactNodes struct{ b []byte }

// Len returns the number of nodes.
func (l CompactNodes) Len() int { return len(l.b) / CompactNodeLen }

// At returns node i.
func (l CompactNodes) At(i int) Node {
	e := l.b[i*CompactNodeLen : (i+1)*CompactNodeLen]
	return Node{ID: ID(e[:IDLen]), Addr: netip.AddrPortFrom(netip.AddrFrom4([4]byte(e[IDLen:])), uint16(e[IDLen+4])<<8|uint16(e[IDLen+5]))}
}

// PeerList is a view of a values list: bencoded strings, of which the
// 6-byte ones are IPv4 peers.
type PeerList struct {
	b []byte
	n int // 6-byte entries
}

// Len returns the number of IPv4 peers.
func (l PeerList) Len() int { return l.n }

// All yields every IPv4 peer.
func (l PeerList) All(yield func(netip.AddrPort) bool) {
	for j := 0; j < len(l.b); {
		s, next, _ := readStr(l.b, j)
		j = next
		if len(s) != CompactPeerLen {
			continue
		}
		if !yield(netip.AddrPortFrom(netip.AddrFrom4([4]byte(s[:4])), uint16(s[4])<<8|uint16(s[5]))) {
			return
		}
	}
}

// Args returns the arguments a query of the method must carry.
func (m MLMethod) Args() MLField {
	switch m {
	case MLPing:
		return MLFieldID
	case MLFindNode, MLGet:
		return MLFieldID | MLFieldTarget
	case MLGetPeers:
		return MLFieldID | MLFieldInfoHash
	case MLAnnouncePeer:
		return MLFieldID | MLFieldInfoHash | MLFieldToken // port, unless implied_port
	case MLPut:
		return MLFieldID | MLFieldToken | MLFieldV
	}
	return 0
}

// Parse decodes a mainline datagram. Unlike the apt-p2p protocol's Parse it
// is lenient where BEP 5 implementations are: unknown keys anywhere are
// skipped (clients add want, noseed, scrape, name, …), dict keys of the
// envelope and of a and r may come in any order, and a transaction ID is any
// string of 1..MaxMLTIDLen bytes. Values are still strict bencode and
// bounded (MaxParseLen, MaxDepth). A query of a known method missing a
// required argument, or with one of the wrong type, returns ErrMLArgs with
// Y, TID and Method set, so the caller can answer error 203.
func (m *MLMsg) Parse(pkt []byte) error {
	*m = MLMsg{}
	if len(pkt) > MaxParseLen {
		return ErrTooLarge
	}
	if len(pkt) == 0 {
		return ErrTruncated
	}
	if pkt[0] != 'd' {
		return ErrMLEnvelope
	}
	var a, r, e bool
	argBad := false
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
		if j >= len(pkt) {
			return ErrTruncated
		}
		isStr := pkt[j] >= '0' && pkt[j] <= '9'
		switch {
		case len(k) == 1 && k[0] == 'a' && pkt[j] == 'd':
			a = true
			i, argBad, err = m.parseMLDict(pkt, j)
		case len(k) == 1 && k[0] == 'r' && pkt[j] == 'd':
			r = true
			i, _, err = m.parseMLDict(pkt, j)
		case len(k) == 1 && k[0] == 'e' && pkt[j] == 'l':
			e = true
			i, err = m.parseMLErr(pkt, j)
		case len(k) == 1 && k[0] == 'q' && isStr:
			m.MethodName, i, err = readStr(pkt, j)
		case len(k) == 1 && k[0] == 't' && isStr:
			m.TID, i, err = readStr(pkt, j)
		case len(k) == 1 && k[0] == 'y' && isStr:
			var y []byte
			y, i, err = readStr(pkt, j)
			if len(y) == 1 {
				m.Y = y[0]
			}
		case len(k) == 1 && k[0] == 'v' && isStr:
			m.Version, i, err = readStr(pkt, j)
		case string(k) == "ip" && isStr:
			var s []byte
			s, i, err = readStr(pkt, j)
			if len(s) == CompactPeerLen {
				m.IP, m.HasIP = netip.AddrPortFrom(netip.AddrFrom4([4]byte(s[:4])), uint16(s[4])<<8|uint16(s[5])), true
			}
		case string(k) == "ro" && pkt[j] == 'i':
			var n int64
			n, _, i, err = readInt(pkt, j)
			m.ReadOnly = n == 1
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
	if len(m.TID) == 0 || len(m.TID) > MaxMLTIDLen {
		return ErrMLEnvelope
	}
	switch m.Y {
	case 'q':
		if !a || m.MethodName == nil {
			return ErrMLEnvelope
		}
		m.Method = lookupMLMethod(m.MethodName)
		if m.Method == MLUnknown {
			return nil
		}
		need := m.Method.Args()
		if m.Method == MLAnnouncePeer && !m.ImpliedPort {
			need |= MLFieldPort
		}
		if argBad || m.Has&need != need {
			return ErrMLArgs
		}
		return nil
	case 'r':
		if !r || m.Has&MLFieldID == 0 {
			return ErrMLEnvelope
		}
		return nil
	case 'e':
		if !e {
			return ErrMLEnvelope
		}
		return nil
	}
	return ErrMLEnvelope
}

// parseMLDict reads the a or r dict at pkt[i] == 'd'. bad reports a known
// key with a value of the wrong type or length.
func (m *MLMsg) parseMLDict(pkt []byte, i int) (next int, bad bool, err error) {
	i++
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
		if j >= len(pkt) {
			return j, bad, ErrTruncated
		}
		isStr := pkt[j] >= '0' && pkt[j] <= '9'
		var f MLField
		var dst *ID
		switch string(k) {
		case "id":
			f, dst = MLFieldID, &m.ID
		case "target":
			f, dst = MLFieldTarget, &m.Target
		case "info_hash":
			f, dst = MLFieldInfoHash, &m.InfoHash
		case "token":
			f = MLFieldToken
		case "port":
			f = MLFieldPort
		case "implied_port":
			f = MLFieldImpliedPort
		case "nodes":
			f = MLFieldNodes
		case "values":
			f = MLFieldValues
		case "v":
			f = MLFieldV
		case "k", "sig", "salt", "seq", "cas":
			f = MLFieldMutable
		}
		ok := false
		switch {
		case f == 0 || f == MLFieldMutable:
			i, err = skip(pkt, j, 2, nil)
			ok = true
		case dst != nil && isStr:
			var s []byte
			if s, i, err = readStr(pkt, j); err == nil && len(s) == IDLen {
				*dst, ok = ID(s), true
			}
		case f == MLFieldToken && isStr:
			var s []byte
			if s, i, err = readStr(pkt, j); err == nil && len(s) > 0 && len(s) <= MaxMLTokenLen {
				m.Token, ok = s, true
			}
		case (f == MLFieldPort || f == MLFieldImpliedPort) && pkt[j] == 'i':
			var n int64
			var fits bool
			if n, fits, i, err = readInt(pkt, j); err == nil && fits {
				if f == MLFieldPort && n >= 1 && n <= 65535 {
					m.Port, ok = n, true
				} else if f == MLFieldImpliedPort && (n == 0 || n == 1) {
					m.ImpliedPort, ok = n == 1, true
				}
			}
		case f == MLFieldNodes && isStr:
			var s []byte
			if s, i, err = readStr(pkt, j); err == nil && len(s)%CompactNodeLen == 0 {
				m.Nodes, ok = CompactNodes{b: s}, true
			}
		case f == MLFieldValues && pkt[j] == 'l':
			i, ok, err = m.parseMLPeers(pkt, j)
		case f == MLFieldV:
			start := j
			if i, err = skip(pkt, j, 2, nil); err == nil && i-start <= MaxItemLen {
				m.V, ok = pkt[start:i:i], true
			}
		default:
			i, err = skip(pkt, j, 2, nil)
		}
		if err != nil {
			return i, bad, err
		}
		if ok {
			m.Has |= f
		} else {
			bad = true
		}
	}
}

// parseMLPeers validates a values list at pkt[i] == 'l': strings only.
func (m *MLMsg) parseMLPeers(pkt []byte, i int) (next int, ok bool, err error) {
	start := i + 1
	n := 0
	for j := start; ; {
		if j >= len(pkt) {
			return j, false, ErrTruncated
		}
		if pkt[j] == 'e' {
			m.Peers = PeerList{b: pkt[start:j:j], n: n}
			return j + 1, true, nil
		}
		if pkt[j] < '0' || pkt[j] > '9' {
			j, err = skip(pkt, j, 3, nil)
			if err != nil {
				return j, false, err
			}
			return j, false, skipRestOfList(pkt, &j)
		}
		var s []byte
		if s, j, err = readStr(pkt, j); err != nil {
			return j, false, err
		}
		if len(s) == CompactPeerLen {
			n++
		}
	}
}

// skipRestOfList skips to just past the end of the list *j is inside.
func skipRestOfList(pkt []byte, j *int) error {
	for {
		if *j >= len(pkt) {
			return ErrTruncated
		}
		if pkt[*j] == 'e' {
			*j++
			return nil
		}
		var err error
		if *j, err = skip(pkt, *j, 3, nil); err != nil {
			return err
		}
	}
}

// parseMLErr reads the e list: [code, message]; anything else is tolerated
// as an error with code 0.
func (m *MLMsg) parseMLErr(pkt []byte, i int) (int, error) {
	j := i + 1
	for idx := 0; ; idx++ {
		if j >= len(pkt) {
			return j, ErrTruncated
		}
		if pkt[j] == 'e' {
			return j + 1, nil
		}
		var err error
		switch {
		case idx == 0 && pkt[j] == 'i':
			m.ErrCode, _, j, err = readInt(pkt, j)
		case idx == 1 && pkt[j] >= '0' && pkt[j] <= '9':
			m.ErrMsg, j, err = readStr(pkt, j)
		default:
			j, err = skip(pkt, j, 2, nil)
		}
		if err != nil {
			return j, err
		}
	}
}

// MLHeader is what every message this implementation sends carries at the
// top level besides a, r or e.
type MLHeader struct {
	TID      []byte
	Version  []byte // v: 4 bytes, client and version (nil: none)
	ReadOnly bool   // ro = 1 on queries (BEP 43)
}

// MLVersion is the v this implementation sends: "AP" and a version.
var MLVersion = []byte{'A', 'P', 1, 0}

func appendBStr(dst, s []byte) []byte {
	dst = strconv.AppendInt(dst, int64(len(s)), 10)
	dst = append(dst, ':')
	return append(dst, s...)
}

func appendMLQueryTail(dst []byte, h *MLHeader) []byte {
	if h.ReadOnly {
		dst = append(dst, "2:roi1e"...)
	}
	dst = append(dst, "1:t"...)
	dst = appendBStr(dst, h.TID)
	if h.Version != nil {
		dst = append(dst, "1:v"...)
		dst = appendBStr(dst, h.Version)
	}
	return append(dst, "1:y1:qe"...)
}

// AppendMLPing appends a ping query.
func AppendMLPing(dst []byte, h *MLHeader, self ID) []byte {
	dst = append(dst, "d1:ad2:id20:"...)
	dst = appendID(dst, self)
	dst = append(dst, "e1:q4:ping"...)
	return appendMLQueryTail(dst, h)
}

// AppendMLFindNode appends a find_node query.
func AppendMLFindNode(dst []byte, h *MLHeader, self, target ID) []byte {
	dst = append(dst, "d1:ad2:id20:"...)
	dst = appendID(dst, self)
	dst = append(dst, "6:target20:"...)
	dst = appendID(dst, target)
	dst = append(dst, "e1:q9:find_node"...)
	return appendMLQueryTail(dst, h)
}

// AppendMLGetPeers appends a get_peers query.
func AppendMLGetPeers(dst []byte, h *MLHeader, self, infoHash ID) []byte {
	dst = append(dst, "d1:ad2:id20:"...)
	dst = appendID(dst, self)
	dst = append(dst, "9:info_hash20:"...)
	dst = appendID(dst, infoHash)
	dst = append(dst, "e1:q9:get_peers"...)
	return appendMLQueryTail(dst, h)
}

// AppendMLAnnounce appends an announce_peer query for port (implied_port 0:
// the port is the announcer's HTTP port, not its UDP source port).
func AppendMLAnnounce(dst []byte, h *MLHeader, self, infoHash ID, port uint16, token []byte) []byte {
	dst = append(dst, "d1:ad2:id20:"...)
	dst = appendID(dst, self)
	dst = append(dst, "12:implied_porti0e9:info_hash20:"...)
	dst = appendID(dst, infoHash)
	dst = append(dst, "4:porti"...)
	dst = strconv.AppendInt(dst, int64(port), 10)
	dst = append(dst, "e5:token"...)
	dst = appendBStr(dst, token)
	dst = append(dst, "e1:q13:announce_peer"...)
	return appendMLQueryTail(dst, h)
}

// AppendMLGet appends a BEP 44 get query.
func AppendMLGet(dst []byte, h *MLHeader, self, target ID) []byte {
	dst = append(dst, "d1:ad2:id20:"...)
	dst = appendID(dst, self)
	dst = append(dst, "6:target20:"...)
	dst = appendID(dst, target)
	dst = append(dst, "e1:q3:get"...)
	return appendMLQueryTail(dst, h)
}

// AppendMLPut appends a BEP 44 put of an immutable item; v is its bencoded
// value (at most MaxItemLen bytes).
func AppendMLPut(dst []byte, h *MLHeader, self ID, token, v []byte) []byte {
	dst = append(dst, "d1:ad2:id20:"...)
	dst = appendID(dst, self)
	dst = append(dst, "5:token"...)
	dst = appendBStr(dst, token)
	dst = append(dst, "1:v"...)
	dst = append(dst, v...)
	dst = append(dst, "e1:q3:put"...)
	return appendMLQueryTail(dst, h)
}

// MLResp is the content of a reply this implementation sends. Fields left
// empty are not written.
type MLResp struct {
	Self  ID
	Nodes []Node           // find_node, get_peers, get
	Token []byte           // get_peers, get
	Peers []netip.AddrPort // get_peers: IPv4 peers
	V     []byte           // get: a stored immutable item
}

// AppendMLResp appends a reply to the requester at to (its address goes
// into the top-level ip of BEP 42). It writes at most MaxNodes nodes and
// MaxMLPeers peers; with those bounds and V ≤ MaxItemLen a reply stays
// under MaxPacketIPv6.
func AppendMLResp(dst []byte, h *MLHeader, to netip.AddrPort, r *MLResp) []byte {
	dst = append(dst, 'd')
	if to.Addr().Is4() {
		dst = append(dst, "2:ip6:"...)
		dst = AppendCompactPeer(dst, to)
	}
	dst = append(dst, "1:rd2:id20:"...)
	dst = appendID(dst, r.Self)
	if len(r.Nodes) > 0 {
		n := min(len(r.Nodes), MaxNodes)
		dst = append(dst, "5:nodes"...)
		dst = strconv.AppendInt(dst, int64(n*CompactNodeLen), 10)
		dst = append(dst, ':')
		for _, nd := range r.Nodes[:n] {
			dst = AppendCompactNode(dst, nd.ID, nd.Addr)
		}
	}
	if r.Token != nil {
		dst = append(dst, "5:token"...)
		dst = appendBStr(dst, r.Token)
	}
	if r.V != nil {
		dst = append(dst, "1:v"...)
		dst = append(dst, r.V...)
	}
	if r.Peers != nil {
		dst = append(dst, "6:valuesl"...)
		k := 0
		for _, p := range r.Peers {
			if !p.Addr().Is4() || k == MaxMLPeers {
				continue
			}
			dst = append(dst, "6:"...)
			dst = AppendCompactPeer(dst, p)
			k++
		}
		dst = append(dst, 'e')
	}
	dst = append(dst, "e1:t"...)
	dst = appendBStr(dst, h.TID)
	if h.Version != nil {
		dst = append(dst, "1:v"...)
		dst = appendBStr(dst, h.Version)
	}
	return append(dst, "1:y1:re"...)
}

// AppendMLError appends an error reply; msg is cut to MaxErrMsgLen bytes.
func AppendMLError(dst []byte, h *MLHeader, code int, msg string) []byte {
	if len(msg) > MaxErrMsgLen {
		msg = msg[:MaxErrMsgLen]
	}
	dst = append(dst, "d1:eli"...)
	dst = strconv.AppendInt(dst, int64(code), 10)
	dst = append(dst, 'e')
	dst = strconv.AppendInt(dst, int64(len(msg)), 10)
	dst = append(dst, ':')
	dst = append(dst, msg...)
	dst = append(dst, "e1:t"...)
	dst = appendBStr(dst, h.TID)
	if h.Version != nil {
		dst = append(dst, "1:v"...)
		dst = appendBStr(dst, h.Version)
	}
	return append(dst, "1:y1:ee"...)
}

// MainlineInfoHash is the info-hash a file whose apt-p2p DHT key is k is
// announced under on the mainline DHT (package documentation, "The mainline
// DHT").
func MainlineInfoHash(k ID) ID {
	var b [len(mainlinePrefix) + IDLen]byte
	copy(b[:], mainlinePrefix)
	copy(b[len(mainlinePrefix):], k[:])
	return sha1.Sum(b[:])
}

const mainlinePrefix = "apt-p2p file "
