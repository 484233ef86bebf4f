package wire

import (
	"net/netip"
	"strconv"
)

// MaxNodes is the most nodes a find_node or find_value response carries (the
// bucket size K); the encoders drop the rest.
const MaxNodes = 8

// MaxErrMsgLen is the longest error message AppendError writes; longer ones
// are cut, which keeps every error packet under both packet limits.
const MaxErrMsgLen = 1024

// Longest decimal texts of an int64 ("-9223372036854775808") and of a
// non-negative one.
const (
	maxIntLen  = 20
	maxUintLen = 19
)

// Exact or maximum encoded sizes, in bytes, of every message (tests check each
// against the encoder's real output and against MaxPacketIPv6).
const (
	PingLen             = len("d1:ad2:id20:") + IDLen + len("e1:q4:ping1:t20:") + IDLen + len("1:y1:qe")
	JoinLen             = len("d1:ad2:id20:") + IDLen + len("e1:q4:join1:t20:") + IDLen + len("1:y1:qe")
	FindNodeLen         = len("d1:ad2:id20:") + IDLen + len("6:target20:") + IDLen + len("e1:q9:find_node1:t20:") + IDLen + len("1:y1:qe")
	FindValueLen        = len("d1:ad2:id20:") + IDLen + len("3:key20:") + IDLen + len("e1:q10:find_value1:t20:") + IDLen + len("1:y1:qe")
	MaxGetValueLen      = len("d1:ad2:id20:") + IDLen + len("3:key20:") + IDLen + len("3:numi") + maxUintLen + len("ee1:q9:get_value1:t20:") + IDLen + len("1:y1:qe")
	IDRespLen           = len("d1:rd2:id20:") + IDLen + len("e1:t20:") + IDLen + len("1:y1:re")
	MaxJoinRespLen      = len("d1:rd2:id20:") + IDLen + len("7:ip_addr39:") + 39 + len("4:porti65535e") + len("e1:t20:") + IDLen + len("1:y1:re")
	MaxFindNodeRespLen  = len("d1:rd2:id20:") + IDLen + len("5:nodesl") + MaxNodes*nodeStride + len("e5:token20:") + IDLen + len("e1:t20:") + IDLen + len("1:y1:re")
	MaxFindValueRespLen = len("d1:rd2:id20:") + IDLen + len("5:nodesl") + MaxNodes*nodeStride + len("e3:numi") + maxUintLen + len("ee1:t20:") + IDLen + len("1:y1:re")
	MaxErrorLen         = len("d1:eli") + maxIntLen + len("e1024:") + MaxErrMsgLen + len("e1:t20:") + IDLen + len("1:y1:ee")
	// getValueRespBase is a get_value response with an empty values list.
	getValueRespBase = len("d1:rd2:id20:") + IDLen + len("6:valuesl") + len("ee1:t20:") + IDLen + len("1:y1:re")
	// storeValueBase is a store_value request without the value string.
	storeValueBase = len("d1:ad2:id20:") + IDLen + len("3:key20:") + IDLen + len("5:token20:") + IDLen + len("5:value") + len("e1:q11:store_value1:t20:") + IDLen + len("1:y1:qe")
	// MaxStoreValueLen is the longest value whose store_value request fits
	// MaxPacketIPv6: 148 + len("1299:") + 1299 = 1452.
	MaxStoreValueLen = MaxPacketIPv6 - storeValueBase - 5
)

// strLen is the encoded size of a string of n bytes.
func strLen(n int) int { return decLen(n) + 1 + n }

// decLen is the number of decimal digits of n ≥ 0.
func decLen(n int) int {
	d := 1
	for n >= 10 {
		n /= 10
		d++
	}
	return d
}

// StoreValueLen is the size of a store_value request carrying a value of n bytes.
func StoreValueLen(n int) int { return storeValueBase + strLen(n) }

// SingleValueRespLen is the size of a get_value response carrying one value
// of n bytes: 91 + 20·p bytes for a piece string of 50 ≤ p < 500 pieces.
func SingleValueRespLen(n int) int { return getValueRespBase + strLen(n) }

// GetValueRespLen is the size of a get_value response carrying values.
func GetValueRespLen(values [][]byte) int {
	n := getValueRespBase
	for _, v := range values {
		n += strLen(len(v))
	}
	return n
}

func appendID(dst []byte, id ID) []byte { return append(dst, id[:]...) }

// appendTail closes a query: the method name is already written.
func appendQueryTail(dst []byte, tid ID) []byte {
	dst = append(dst, "1:t20:"...)
	dst = appendID(dst, tid)
	return append(dst, "1:y1:qe"...)
}

func appendRespTail(dst []byte, tid ID) []byte {
	dst = append(dst, "e1:t20:"...)
	dst = appendID(dst, tid)
	return append(dst, "1:y1:re"...)
}

// AppendPing appends a ping query.
func AppendPing(dst []byte, tid, self ID) []byte {
	dst = append(dst, "d1:ad2:id20:"...)
	dst = appendID(dst, self)
	dst = append(dst, "e1:q4:ping"...)
	return appendQueryTail(dst, tid)
}

// AppendJoin appends a join query.
func AppendJoin(dst []byte, tid, self ID) []byte {
	dst = append(dst, "d1:ad2:id20:"...)
	dst = appendID(dst, self)
	dst = append(dst, "e1:q4:join"...)
	return appendQueryTail(dst, tid)
}

// AppendFindNode appends a find_node query.
func AppendFindNode(dst []byte, tid, self, target ID) []byte {
	dst = append(dst, "d1:ad2:id20:"...)
	dst = appendID(dst, self)
	dst = append(dst, "6:target20:"...)
	dst = appendID(dst, target)
	dst = append(dst, "e1:q9:find_node"...)
	return appendQueryTail(dst, tid)
}

// AppendFindValue appends a find_value query.
func AppendFindValue(dst []byte, tid, self, key ID) []byte {
	dst = append(dst, "d1:ad2:id20:"...)
	dst = appendID(dst, self)
	dst = append(dst, "3:key20:"...)
	dst = appendID(dst, key)
	dst = append(dst, "e1:q10:find_value"...)
	return appendQueryTail(dst, tid)
}

// AppendGetValue appends a get_value query asking for num values (0: all). A
// negative num is sent as 0.
func AppendGetValue(dst []byte, tid, self, key ID, num int) []byte {
	dst = append(dst, "d1:ad2:id20:"...)
	dst = appendID(dst, self)
	dst = append(dst, "3:key20:"...)
	dst = appendID(dst, key)
	dst = append(dst, "3:numi"...)
	dst = strconv.AppendInt(dst, int64(max(num, 0)), 10)
	dst = append(dst, "ee1:q9:get_value"...)
	return appendQueryTail(dst, tid)
}

// AppendStoreValue appends a store_value query. Its size is
// StoreValueLen(len(value)); values longer than MaxStoreValueLen make a request
// over MaxPacketIPv6, which the caller should not send.
func AppendStoreValue(dst []byte, tid, self, key ID, value []byte, token ID) []byte {
	dst = append(dst, "d1:ad2:id20:"...)
	dst = appendID(dst, self)
	dst = append(dst, "3:key20:"...)
	dst = appendID(dst, key)
	dst = append(dst, "5:token20:"...)
	dst = appendID(dst, token)
	dst = append(dst, "5:value"...)
	dst = appendStr(dst, value)
	dst = append(dst, "e1:q11:store_value"...)
	return appendQueryTail(dst, tid)
}

// AppendIDResp appends the response to ping and store_value: r = {id}.
func AppendIDResp(dst []byte, tid, self ID) []byte {
	dst = append(dst, "d1:rd2:id20:"...)
	dst = appendID(dst, self)
	return appendRespTail(dst, tid)
}

// AppendJoinResp appends the response to join: r = {id, ip_addr, port}, where
// ip_addr is the requester's address as text (dotted quad for IPv4).
func AppendJoinResp(dst []byte, tid, self ID, requester netip.AddrPort) []byte {
	dst = append(dst, "d1:rd2:id20:"...)
	dst = appendID(dst, self)
	dst = append(dst, "7:ip_addr"...)
	var buf [48]byte
	ip := requester.Addr().Unmap().WithZone("").AppendTo(buf[:0])
	dst = appendStr(dst, ip)
	dst = append(dst, "4:porti"...)
	dst = strconv.AppendUint(dst, uint64(requester.Port()), 10)
	dst = append(dst, 'e')
	return appendRespTail(dst, tid)
}

// appendNodes appends the nodes list: at most MaxNodes nodes, skipping those
// without an IPv4 address (the compact format has no room for IPv6).
func appendNodes(dst []byte, nodes []Node) []byte {
	dst = append(dst, "5:nodesl"...)
	k := 0
	for i := range nodes {
		if k == MaxNodes {
			break
		}
		a := nodes[i].Addr.Addr().Unmap()
		if !a.Is4() {
			continue
		}
		k++
		a4 := a.As4()
		port := nodes[i].Addr.Port()
		dst = append(dst, "26:"...)
		dst = appendID(dst, nodes[i].ID)
		dst = append(dst, a4[0], a4[1], a4[2], a4[3], byte(port>>8), byte(port))
	}
	return append(dst, 'e')
}

// AppendFindNodeResp appends the response to find_node: r = {id, nodes, token}.
// It carries the first MaxNodes IPv4 nodes.
func AppendFindNodeResp(dst []byte, tid, self ID, nodes []Node, token ID) []byte {
	dst = append(dst, "d1:rd2:id20:"...)
	dst = appendID(dst, self)
	dst = appendNodes(dst, nodes)
	dst = append(dst, "5:token20:"...)
	dst = appendID(dst, token)
	return appendRespTail(dst, tid)
}

// AppendFindValueResp appends the response to find_value: r = {id, nodes, num}
// where num is the number of values stored locally (negative is sent as 0). It
// carries the first MaxNodes IPv4 nodes.
func AppendFindValueResp(dst []byte, tid, self ID, nodes []Node, num int) []byte {
	dst = append(dst, "d1:rd2:id20:"...)
	dst = appendID(dst, self)
	dst = appendNodes(dst, nodes)
	dst = append(dst, "3:numi"...)
	dst = strconv.AppendInt(dst, int64(max(num, 0)), 10)
	dst = append(dst, 'e')
	return appendRespTail(dst, tid)
}

// AppendGetValueResp appends r = {id, values} holding the first n values that
// fit in limit bytes (the packet itself, not counting what dst already holds).
// The fit is exact: the packet is at most limit bytes and adding value n would
// exceed it. n == 0 with len(values) > 0 means not even one fits: the caller
// answers error 206 instead, and nothing is appended. Nothing is appended
// either if limit is too small for an empty reply.
func AppendGetValueResp(dst []byte, tid, self ID, values [][]byte, limit int) (pkt []byte, n int) {
	size := getValueRespBase
	if size > limit {
		return dst, 0
	}
	for _, v := range values {
		s := strLen(len(v))
		if s > limit-size {
			break
		}
		size += s
		n++
	}
	if n == 0 && len(values) > 0 {
		return dst, 0
	}
	dst = append(dst, "d1:rd2:id20:"...)
	dst = appendID(dst, self)
	dst = append(dst, "6:valuesl"...)
	for _, v := range values[:n] {
		dst = appendStr(dst, v)
	}
	dst = append(dst, 'e')
	return appendRespTail(dst, tid), n
}

// unknownMethodPrefix starts the 203 message, as in the original.
const unknownMethodPrefix = "unknown method "

// AppendUnknownMethod appends error 203 worded as the original's
// ("unknown method <name>", reference §2.6). A long name is cut so that the
// message stays within MaxErrMsgLen: requests may be up to MaxParseLen
// bytes, replies never exceed MaxErrorLen.
func AppendUnknownMethod(dst []byte, tid ID, name []byte) []byte {
	if max := MaxErrMsgLen - len(unknownMethodPrefix); len(name) > max {
		name = name[:max]
	}
	dst = append(dst, "d1:eli203e"...)
	dst = strconv.AppendInt(dst, int64(len(unknownMethodPrefix)+len(name)), 10)
	dst = append(dst, ':')
	dst = append(dst, unknownMethodPrefix...)
	dst = append(dst, name...)
	dst = append(dst, "e1:t20:"...)
	dst = appendID(dst, tid)
	return append(dst, "1:y1:ee"...)
}

// AppendResponseTooLong appends an error whose message is the original's
// "response was <size> bytes" (206 there when a reply had nothing to shorten;
// apt-p2p also uses it with 201 for a value too large for any get_value
// reply, the code the original's requesters got in that case).
func AppendResponseTooLong(dst []byte, tid ID, code int, size int) []byte {
	dst = append(dst, "d1:eli"...)
	dst = strconv.AppendInt(dst, int64(code), 10)
	dst = append(dst, 'e')
	dst = strconv.AppendInt(dst, int64(len("response was  bytes")+decLen(size)), 10)
	dst = append(dst, ":response was "...)
	dst = strconv.AppendInt(dst, int64(size), 10)
	dst = append(dst, " bytes"...)
	dst = append(dst, "e1:t20:"...)
	dst = appendID(dst, tid)
	return append(dst, "1:y1:ee"...)
}

// AppendError appends an error reply: e = [code, msg]. Messages longer than
// MaxErrMsgLen bytes are cut to that length.
func AppendError(dst []byte, tid ID, code int, msg string) []byte {
	if len(msg) > MaxErrMsgLen {
		msg = msg[:MaxErrMsgLen]
	}
	dst = append(dst, "d1:eli"...)
	dst = strconv.AppendInt(dst, int64(code), 10)
	dst = append(dst, 'e')
	dst = strconv.AppendInt(dst, int64(len(msg)), 10)
	dst = append(dst, ':')
	dst = append(dst, msg...)
	dst = append(dst, "e1:t20:"...)
	dst = appendID(dst, tid)
	return append(dst, "1:y1:ee"...)
}
