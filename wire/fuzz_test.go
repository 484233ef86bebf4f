package wire

import (
	"bytes"
	"errors"
	"net/netip"
	"reflect"
	"testing"
)

// fuzzSeeds are valid and nearly valid packets every packet fuzz target
// starts from (the golden transcript's packets are in testdata/fuzz too).
func fuzzSeeds(f *testing.F) {
	for _, c := range goldenCases() {
		f.Add(c.pkt)
	}
	for _, s := range bdecodeFail {
		f.Add([]byte(s))
	}
	f.Add([]byte("d1:ad2:id20:aaaaaaaaaaaaaaaaaaaa3:key20:bbbbbbbbbbbbbbbbbbbb3:numi0ee1:q9:get_value1:t20:cccccccccccccccccccc1:y1:qe"))
	f.Add([]byte("d1:eli201e0:e1:t20:cccccccccccccccccccc1:y1:ee"))
	f.Add([]byte("d1:rd2:id20:aaaaaaaaaaaaaaaaaaaa7:ip_addr7:1.2.3.44:porti0ee1:t20:cccccccccccccccccccc1:y1:re"))
	for _, p := range ipv6Seeds() {
		f.Add(p)
	}
}

// checkAgainstTree checks that what Parse read agrees with the general
// decoder's tree of the same packet.
func checkAgainstTree(t *testing.T, m *Msg, pkt []byte) {
	v, err := Decode(pkt)
	if err != nil {
		t.Fatalf("Parse accepted %q, Decode rejects it: %v", pkt, err)
	}
	if y := v.Get("y"); y == nil || string(y.Str) != string(m.Y) {
		t.Fatalf("y: Parse %q, tree %+v", m.Y, y)
	}
	if tid := v.Get("t"); tid == nil || !bytes.Equal(tid.Str, m.TID[:]) {
		t.Fatalf("t: Parse %x, tree %+v", m.TID, tid)
	}
	var body *Value
	switch m.Y {
	case 'q':
		if q := v.Get("q"); q == nil || !bytes.Equal(q.Str, m.MethodName) {
			t.Fatalf("q: Parse %q, tree %+v", m.MethodName, q)
		}
		body = v.Get("a")
	case 'r':
		body = v.Get("r")
	case 'e':
		e := v.Get("e")
		if e == nil || len(e.List) != 2 || e.List[0].Int != m.ErrCode || !bytes.Equal(e.List[1].Str, m.ErrMsg) {
			t.Fatalf("e: Parse %d %q, tree %+v", m.ErrCode, m.ErrMsg, e)
		}
		return
	}
	if body == nil || body.Kind != KindDict {
		t.Fatalf("body: tree %+v", body)
	}
	ids := []struct {
		f   Field
		key string
		id  *ID
	}{{FieldID, "id", &m.ID}, {FieldTarget, "target", &m.Target}, {FieldKey, "key", &m.Key}, {FieldToken, "token", &m.Token}}
	for _, x := range ids {
		if m.Has&x.f == 0 {
			continue
		}
		if e := body.Get(x.key); e == nil || !bytes.Equal(e.Str, x.id[:]) {
			t.Fatalf("%s: Parse %x, tree %+v", x.key, x.id, e)
		}
	}
	if m.Has&FieldNum != 0 && body.Get("num").Int != m.Num {
		t.Fatalf("num: Parse %d, tree %+v", m.Num, body.Get("num"))
	}
	if m.Has&FieldPort != 0 && body.Get("port").Int != m.Port {
		t.Fatalf("port: Parse %d, tree %+v", m.Port, body.Get("port"))
	}
	if m.Has&FieldValue != 0 && !bytes.Equal(body.Get("value").Str, m.Value) {
		t.Fatalf("value differs")
	}
	if m.Has&FieldIPAddr != 0 && !bytes.Equal(body.Get("ip_addr").Str, m.IPAddr) {
		t.Fatalf("ip_addr differs")
	}
	if m.Has&FieldNodes != 0 {
		l := body.Get("nodes").List
		if len(l) != m.Nodes.Len() {
			t.Fatalf("nodes: Parse %d, tree %d", m.Nodes.Len(), len(l))
		}
		for i := range l {
			n := m.Nodes.At(i)
			if !bytes.Equal(AppendCompactNode(nil, n.ID, n.Addr), l[i].Str) {
				t.Fatalf("node %d differs", i)
			}
		}
	}
	if m.Has&FieldNodes6 != 0 {
		l := body.Get("nodes6").List
		if len(l) != m.Nodes6.Len() {
			t.Fatalf("nodes6: Parse %d, tree %d", m.Nodes6.Len(), len(l))
		}
		for i := range l {
			n := m.Nodes6.At(i)
			if !n.Addr.IsValid() {
				// An IPv4-mapped entry: the view hides its address.
				if !netip.AddrFrom16([16]byte(l[i].Str[IDLen:IDLen+16])).Is4In6() || n.ID != ID(l[i].Str[:IDLen]) {
					t.Fatalf("node6 %d: invalid address for %x", i, l[i].Str)
				}
				continue
			}
			if !bytes.Equal(AppendCompactNode6(nil, n.ID, n.Addr), l[i].Str) {
				t.Fatalf("node6 %d differs", i)
			}
		}
	}
	if m.Has&FieldWant != 0 {
		var w Want
		for _, e := range body.Get("want").List {
			switch string(e.Str) {
			case "n4":
				w |= WantN4
			case "n6":
				w |= WantN6
			}
		}
		if w != m.Want {
			t.Fatalf("want: Parse %b, tree %b", m.Want, w)
		}
	}
	if m.Has&FieldValues != 0 {
		l := body.Get("values").List
		if len(l) != m.Values.Len() {
			t.Fatalf("values: Parse %d, tree %d", m.Values.Len(), len(l))
		}
		i := 0
		for s := range m.Values.All {
			if !bytes.Equal(s, l[i].Str) || !bytes.Equal(m.Values.At(i), s) {
				t.Fatalf("value %d differs", i)
			}
			i++
		}
	}
}

// FuzzParse: Parse never panics, never accepts what the strict general
// decoder rejects, and reads the same fields the general decoder does.
func FuzzParse(f *testing.F) {
	fuzzSeeds(f)
	f.Fuzz(func(t *testing.T, pkt []byte) {
		var m Msg
		err := m.Parse(pkt)
		if err != nil && !errors.Is(err, ErrBadArgs) {
			return
		}
		if verr := Valid(pkt); verr != nil {
			t.Fatalf("Parse accepted (%v) %q, Valid rejects it: %v", err, pkt, verr)
		}
		if err == nil {
			checkAgainstTree(t, &m, pkt)
		} else if m.Y != 'q' || m.Method == MethodUnknown {
			t.Fatalf("ErrBadArgs without a known query: %+v", m)
		}
	})
}

// reencode writes m again with the encoders. ok is false for messages no
// encoder produces (unknown methods, unusual result sets).
func reencode(m *Msg) (pkt []byte, ok bool) {
	switch m.Y {
	case 'q':
		switch m.Method {
		case MethodPing:
			return AppendPing(nil, m.TID, m.ID), true
		case MethodJoin:
			return AppendJoin(nil, m.TID, m.ID), true
		case MethodFindNode:
			if m.Has&FieldWant != 0 {
				return AppendFindNodeWant(nil, m.TID, m.ID, m.Target, m.Want), m.Want != 0
			}
			return AppendFindNode(nil, m.TID, m.ID, m.Target), true
		case MethodFindValue:
			if m.Has&FieldWant != 0 {
				return AppendFindValueWant(nil, m.TID, m.ID, m.Key, m.Want), m.Want != 0
			}
			return AppendFindValue(nil, m.TID, m.ID, m.Key), true
		case MethodGetValue:
			return AppendGetValue(nil, m.TID, m.ID, m.Key, int(m.Num)), true
		case MethodStoreValue:
			return AppendStoreValue(nil, m.TID, m.ID, m.Key, m.Value, m.Token), true
		}
	case 'r':
		var nodes []Node
		for i := range m.Nodes.Len() {
			nodes = append(nodes, m.Nodes.At(i))
		}
		var want Want
		if m.Has&FieldNodes != 0 {
			want |= WantN4
		}
		if m.Has&FieldNodes6 != 0 {
			want |= WantN6
			for i := range m.Nodes6.Len() {
				n := m.Nodes6.At(i)
				if !n.Addr.IsValid() {
					return nil, false // an IPv4-mapped entry: no encoder writes one
				}
				nodes = append(nodes, n)
			}
		}
		switch m.Has &^ FieldNodes6 {
		case FieldID:
			return AppendIDResp(nil, m.TID, m.ID), true
		case MethodJoin.Results():
			if ap, ok := m.JoinAddr(); ok {
				return AppendJoinResp(nil, m.TID, m.ID, ap), true
			}
		case MethodFindNode.Results(), FieldID | FieldToken:
			if m.Has&(FieldNodes|FieldNodes6) == 0 {
				return nil, false
			}
			return AppendFindNodeRespWant(nil, m.TID, m.ID, nodes, want, m.Token), true
		case MethodFindValue.Results(), FieldID | FieldNum:
			if m.Has&(FieldNodes|FieldNodes6) == 0 {
				return nil, false
			}
			return AppendFindValueRespWant(nil, m.TID, m.ID, nodes, want, int(m.Num)), true
		case MethodGetValue.Results():
			var values [][]byte
			for v := range m.Values.All {
				values = append(values, v)
			}
			p, n := AppendGetValueResp(nil, m.TID, m.ID, values, MaxParseLen)
			return p, n == len(values)
		}
	case 'e':
		return AppendError(nil, m.TID, int(m.ErrCode), string(m.ErrMsg)), true
	}
	return nil, false
}

// sameMsg compares two parsed messages field by field (views by content).
func sameMsg(a, b *Msg) bool {
	if a.Y != b.Y || a.TID != b.TID || a.Method != b.Method || !bytes.Equal(a.MethodName, b.MethodName) ||
		a.Has != b.Has || a.ID != b.ID || a.Target != b.Target || a.Key != b.Key || a.Token != b.Token ||
		a.Num != b.Num || !bytes.Equal(a.Value, b.Value) || !bytes.Equal(a.IPAddr, b.IPAddr) || a.Port != b.Port ||
		a.ErrCode != b.ErrCode || !bytes.Equal(a.ErrMsg, b.ErrMsg) || a.Nodes.Len() != b.Nodes.Len() || a.Values.Len() != b.Values.Len() ||
		a.Want != b.Want || a.Nodes6.Len() != b.Nodes6.Len() {
		return false
	}
	for i := range a.Nodes6.Len() {
		if a.Nodes6.At(i) != b.Nodes6.At(i) {
			return false
		}
	}
	for i := range a.Nodes.Len() {
		if a.Nodes.At(i) != b.Nodes.At(i) {
			return false
		}
	}
	for i := range a.Values.Len() {
		if !bytes.Equal(a.Values.At(i), b.Values.At(i)) {
			return false
		}
	}
	return true
}

// canonicalShape reports whether pkt holds exactly the keys the encoders write
// for m, so that re-encoding must give back the same bytes.
func canonicalShape(m *Msg, pkt []byte) bool {
	v, err := Decode(pkt)
	if err != nil {
		return false
	}
	switch m.Y {
	case 'q':
		if len(v.Dict) != 4 {
			return false
		}
		if w := v.Get("a").Get("want"); w != nil {
			// Canonical: exactly the flags known, in the encoder's order.
			var canon []string
			if m.Want&WantN4 != 0 {
				canon = append(canon, "n4")
			}
			if m.Want&WantN6 != 0 {
				canon = append(canon, "n6")
			}
			if len(w.List) != len(canon) {
				return false
			}
			for i := range canon {
				if string(w.List[i].Str) != canon[i] {
					return false
				}
			}
		}
		return len(v.Get("a").Dict) == popcount(m.Has)
	case 'r':
		if len(v.Dict) != 3 || m.Nodes.Len() > MaxNodes || m.Nodes6.Len() > MaxNodes {
			return false
		}
		return len(v.Get("r").Dict) == popcount(m.Has)
	case 'e':
		return len(v.Dict) == 3 && len(m.ErrMsg) <= MaxErrMsgLen
	}
	return false
}

func popcount(f Field) (n int) {
	for ; f != 0; f &= f - 1 {
		n++
	}
	return
}

// FuzzParseRoundTrip: parse → re-encode → parse gives the same message, and
// the same bytes when the packet had exactly the encoder's keys.
func FuzzParseRoundTrip(f *testing.F) {
	fuzzSeeds(f)
	f.Fuzz(func(t *testing.T, pkt []byte) {
		var m Msg
		if m.Parse(pkt) != nil {
			return
		}
		out, ok := reencode(&m)
		if !ok {
			return
		}
		var m2 Msg
		if err := m2.Parse(out); err != nil {
			t.Fatalf("re-encoded %q does not parse: %v", out, err)
		}
		// The encoders cap what the protocol caps: nodes to MaxNodes, messages to MaxErrMsgLen.
		want := m
		if want.Nodes.Len() > MaxNodes {
			want.Nodes.b = want.Nodes.b[:MaxNodes*nodeStride]
		}
		if want.Nodes6.Len() > MaxNodes {
			want.Nodes6.b = want.Nodes6.b[:MaxNodes*node6Stride]
		}
		if len(want.ErrMsg) > MaxErrMsgLen {
			want.ErrMsg = want.ErrMsg[:MaxErrMsgLen]
		}
		if !sameMsg(&want, &m2) {
			t.Fatalf("round trip differs:\n in  %q\n out %q", pkt, out)
		}
		if canonicalShape(&m, pkt) && !bytes.Equal(pkt, out) {
			t.Fatalf("re-encoding changed the bytes:\n in  %q\n out %q", pkt, out)
		}
		out2, _ := reencode(&m2)
		if !bytes.Equal(out, out2) {
			t.Fatalf("second re-encoding differs:\n %q\n %q", out, out2)
		}
	})
}

// FuzzDecodeZeebo: our strict general decoder and zeebo/bencode agree on
// accept/reject and on values, except where zeebo is laxer than the strict
// rules. zeebo accepts non-canonical encodings (unsorted or duplicate keys,
// leading zeros, "+"/"-0" in integers and in lengths of dict keys) and has no
// depth, size or item limits; for those inputs our decoder must reject, which
// the test checks by re-encoding zeebo's value canonically: the input was
// non-canonical iff that differs from it. zeebo is stricter on integers
// outside int64 (it rejects them; we keep them as text).
func FuzzDecodeZeebo(f *testing.F) {
	fuzzSeeds(f)
	for _, s := range []string{"i-0e", "i03e", "i+3e", "d1:b0:1:a0:e", "d1:a0:1:a0:e", "d+1:a0:e", "d-0:0:e",
		"i12345678901234567890e", "l" + string(bytes.Repeat([]byte("l"), 40)) + string(bytes.Repeat([]byte("e"), 41))} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		ours, err := Decode(b)
		if err == nil {
			// Strict means canonical: the encoder gives back the input.
			if out, eerr := AppendValue(nil, &ours); eerr != nil || !bytes.Equal(out, b) {
				t.Fatalf("Decode accepted %q but it re-encodes as %q (%v)", b, out, eerr)
			}
		}
		if !zeeboSafe(b) {
			return
		}
		theirs, zok := zeeboDecode(b)
		switch {
		case err == nil && zok:
			if want := toAny(&ours); !reflect.DeepEqual(theirs, want) {
				t.Fatalf("values differ for %q: zeebo %#v, ours %#v", b, theirs, want)
			}
		case err == nil && !zok:
			if !hasBig(&ours) {
				t.Fatalf("we accept %q, zeebo rejects it", b)
			}
		case err != nil && zok:
			if errors.Is(err, ErrDepth) || errors.Is(err, ErrTooLarge) {
				return
			}
			canon, eerr := Encode(nil, theirs)
			if eerr != nil {
				t.Fatalf("cannot re-encode zeebo's value of %q: %v", b, eerr)
			}
			if bytes.Equal(canon, b) {
				t.Fatalf("we reject the canonical %q (%v), zeebo accepts it", b, err)
			}
		}
	})
}

func hasBig(v *Value) bool {
	if v.Kind == KindInt && v.Big != nil {
		return true
	}
	for i := range v.List {
		if hasBig(&v.List[i]) {
			return true
		}
	}
	for i := range v.Dict {
		if hasBig(&v.Dict[i].Value) {
			return true
		}
	}
	return false
}

// FuzzEncodeLimits: no response encoder exceeds MaxPacketIPv6 whatever its
// inputs (node counts, value sizes, numbers, messages), every output parses,
// and store_value requests are exactly StoreValueLen long.
func FuzzEncodeLimits(f *testing.F) {
	f.Add(uint8(8), uint16(13), uint8(3), int64(5), int64(205), uint16(20), true, uint16(MaxPacketIPv4))
	f.Add(uint8(200), uint16(1400), uint8(1), int64(-1), int64(-1<<63), uint16(5000), false, uint16(MaxPacketIPv6))
	f.Add(uint8(0), uint16(0), uint8(255), int64(1<<62), int64(1<<62), uint16(0), true, uint16(0))
	f.Fuzz(func(t *testing.T, nNodes uint8, valSize uint16, nValues uint8, num, code int64, msgLen uint16, v4 bool, limit uint16) {
		var tid, self, tok ID
		for i := range tid {
			tid[i], self[i], tok[i] = byte(i), byte(i*3), byte(i*5)
		}
		nodes := make([]Node, nNodes)
		for i := range nodes {
			a := netip.AddrFrom4([4]byte{byte(i), 1, 2, 3})
			if !v4 && i%3 == 0 {
				a = netip.AddrFrom16([16]byte{0xfe, 0x80, 15: byte(i)})
			}
			nodes[i] = Node{ID: self, Addr: netip.AddrPortFrom(a, uint16(i))}
		}
		values := make([][]byte, nValues)
		for i := range values {
			values[i] = bytes.Repeat([]byte{'v'}, int(valSize)/(i+1))
		}
		msg := string(bytes.Repeat([]byte{'m'}, int(msgLen)))
		requester := netip.AddrPortFrom(netip.AddrFrom4([4]byte{255, 255, 255, 255}), 65535)
		if !v4 {
			requester = netip.MustParseAddrPort("[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535")
		}
		gv, n := AppendGetValueResp(nil, tid, self, values, int(limit))
		if len(gv) > int(limit) || n > len(values) {
			t.Fatalf("get_value reply %d bytes, limit %d, n %d", len(gv), limit, n)
		}
		if n < len(values) && len(gv) > 0 && GetValueRespLen(values[:n+1]) <= int(limit) {
			t.Fatalf("get_value reply left out value %d that fits", n)
		}
		if n == 0 && len(values) > 0 && len(gv) != 0 {
			t.Fatalf("n == 0 but %d bytes appended", len(gv))
		}
		pkts := [][]byte{
			AppendPing(nil, tid, self), AppendJoin(nil, tid, self), AppendFindNode(nil, tid, self, tok),
			AppendFindValue(nil, tid, self, tok), AppendGetValue(nil, tid, self, tok, int(num)),
			AppendIDResp(nil, tid, self), AppendJoinResp(nil, tid, self, requester),
			AppendFindNodeResp(nil, tid, self, nodes, tok), AppendFindValueResp(nil, tid, self, nodes, int(num)),
			AppendError(nil, tid, int(code), msg),
		}
		if len(gv) > 0 {
			var m Msg
			if err := m.Parse(gv); err != nil || m.Values.Len() != n {
				t.Fatalf("get_value reply %q does not parse (%v)", gv, err)
			}
		}
		for _, p := range pkts {
			if len(p) > MaxPacketIPv6 {
				t.Fatalf("%d bytes > %d: %q", len(p), MaxPacketIPv6, p)
			}
			var m Msg
			if err := m.Parse(p); err != nil {
				t.Fatalf("encoder output %q does not parse: %v", p, err)
			}
		}
		val := bytes.Repeat([]byte{'s'}, int(valSize))
		sv := AppendStoreValue(nil, tid, self, tok, val, tok)
		if len(sv) != StoreValueLen(len(val)) || (len(val) <= MaxStoreValueLen) != (len(sv) <= MaxPacketIPv6) {
			t.Fatalf("store_value with %d-byte value: %d bytes", len(val), len(sv))
		}
		// Piece strings of any count fit both messages iff the count is at most MaxHashPieces.
		np := int(valSize) % 200
		if np > 0 {
			ps := AppendPieceString(nil, bytes.Repeat([]byte{'p'}, np*PieceHashLen))
			_, k := AppendGetValueResp(nil, tid, self, [][]byte{ps}, MaxPacketIPv6)
			fits := StoreValueLen(len(ps)) <= MaxPacketIPv6 && k == 1
			if fits != (np <= MaxHashPieces) {
				t.Fatalf("%d pieces: fits = %v", np, fits)
			}
		}
	})
}

// FuzzPeerValue: PeerValue.Parse and ParsePieceString never accept what the
// strict decoder rejects, and round-trip what they accept.
func FuzzPeerValue(f *testing.F) {
	f.Add(AppendPeerValue(nil, &PeerValue{Contact: refPeer}))
	f.Add(AppendPeerValue(nil, &PeerValue{Contact: refPeer, Form: FormInline, Pieces: pieces(3)}))
	f.Add(AppendPeerValue(nil, &PeerValue{Contact: refPeer, Form: FormHash}))
	f.Add(AppendPeerValue(nil, &PeerValue{Contact: refPeer, Form: FormLink}))
	f.Add(AppendPieceString(nil, pieces(2)))
	f.Add(AppendPeerValue(nil, &PeerValue{Contact: refPeer6}))
	f.Add(AppendPeerValue(nil, &PeerValue{Contact: refPeer6, Form: FormInline, Pieces: pieces(2), Claim: 1733472000123456}))
	f.Add(AppendPeerValue(nil, &PeerValue{Contact: refPeer6, Form: FormLink}))
	f.Add([]byte("d1:c18:\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\xff\xff\x01\x02\x03\x04\x00\x50e"))        // IPv4-mapped: refused
	f.Add([]byte("d1:c18:\xfd\x42\x00\x00\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00\x00\x11\x26\xf92:c6i1ee")) // an unknown key
	f.Fuzz(func(t *testing.T, b []byte) {
		var v PeerValue
		if v.Parse(b) == nil {
			if Valid(b) != nil {
				t.Fatalf("PeerValue.Parse accepted invalid %q", b)
			}
			// Unknown keys are skipped (wire/doc.go), so the round trip
			// is exact only for values made of known keys; otherwise the
			// re-encoded value is the canonical form and parses the same.
			out := AppendPeerValue(nil, &v)
			var w PeerValue
			if err := w.Parse(out); err != nil || w.Contact != v.Contact || w.Form != v.Form ||
				!bytes.Equal(w.Pieces, v.Pieces) || w.PiecesHash != v.PiecesHash || w.Claim != v.Claim {
				t.Fatalf("peer value round trip: %q → %q (%v)", b, out, err)
			}
			if onlyKnownKeys(b) && !bytes.Equal(out, b) {
				t.Fatalf("peer value round trip: %q → %q", b, out)
			}
		}
		if p, err := ParsePieceString(b); err == nil {
			if Valid(b) != nil {
				t.Fatalf("ParsePieceString accepted invalid %q", b)
			}
			if out := AppendPieceString(nil, p); !bytes.Equal(out, b) {
				t.Fatalf("piece string round trip: %q → %q", b, out)
			}
		}
	})
}

// onlyKnownKeys reports whether a value dict holds only the keys PeerValue
// knows (c, h, l, p, t).
func onlyKnownKeys(b []byte) bool {
	d, err := Decode(b)
	if err != nil || d.Kind != KindDict {
		return false
	}
	for _, e := range d.Dict {
		switch string(e.Key) {
		case "c", "h", "l", "p", "t":
		default:
			return false
		}
	}
	return true
}

// FuzzMLParse: the mainline parser never panics, and what it accepts
// re-encodes (from the parsed fields) into a
// message that parses to the same fields, within the packet limits.
func FuzzMLParse(f *testing.F) {
	id := idOf(7)
	h := &MLHeader{TID: []byte("aa"), Version: MLVersion}
	f.Add(AppendMLPing(nil, h, id))
	f.Add(AppendMLFindNode(nil, h, id, idOf(8)))
	f.Add(AppendMLGetPeers(nil, h, id, idOf(8)))
	f.Add(AppendMLAnnounce(nil, h, id, idOf(8), 9977, []byte("tok")))
	f.Add(AppendMLGet(nil, h, id, idOf(8)))
	f.Add(AppendMLPut(nil, &MLHeader{TID: []byte("x"), ReadOnly: true}, id, []byte("tok"), []byte("3:abc")))
	f.Add(AppendMLResp(nil, h, refPeer, &MLResp{Self: id, Nodes: testNodes(3), Token: []byte("tok"), Peers: []netip.AddrPort{refPeer}}))
	f.Add(AppendMLError(nil, h, MLErrProtocol, "bad"))
	f.Add([]byte("d1:t2:aa1:y1:q1:q9:get_peers1:ad9:info_hash20:iiiiiiiiiiiiiiiiiiii2:id20:iiiiiiiiiiiiiiiiiiii6:noseedi1ee1:v4:LT01e"))
	f.Fuzz(func(t *testing.T, b []byte) {
		var m MLMsg
		err := m.Parse(b)
		if err == ErrMLArgs && (m.Y != 'q' || m.Method == MLUnknown) {
			t.Fatalf("ErrMLArgs for y=%c method %v", m.Y, m.Method)
		}
		if err != nil {
			return
		}
		// Key order is not checked (mainline clients do not all sort), so
		// Valid may refuse what Parse accepts; the re-encoding below is
		// canonical.
		hdr := &MLHeader{TID: m.TID, Version: m.Version, ReadOnly: m.ReadOnly}
		var out []byte
		switch {
		case m.Y == 'q' && m.Method == MLPing:
			out = AppendMLPing(nil, hdr, m.ID)
		case m.Y == 'q' && m.Method == MLFindNode:
			out = AppendMLFindNode(nil, hdr, m.ID, m.Target)
		case m.Y == 'q' && m.Method == MLGetPeers:
			out = AppendMLGetPeers(nil, hdr, m.ID, m.InfoHash)
		case m.Y == 'q' && m.Method == MLGet:
			out = AppendMLGet(nil, hdr, m.ID, m.Target)
		case m.Y == 'q' && m.Method == MLPut:
			out = AppendMLPut(nil, hdr, m.ID, m.Token, m.V)
		case m.Y == 'r':
			r := &MLResp{Self: m.ID, Token: m.Token, V: m.V}
			for i := range min(m.Nodes.Len(), MaxNodes) {
				r.Nodes = append(r.Nodes, m.Nodes.At(i))
			}
			for p := range m.Peers.All {
				r.Peers = append(r.Peers, p)
			}
			to := netip.AddrPort{}
			if m.HasIP {
				to = m.IP
			}
			hdr.ReadOnly = false
			out = AppendMLResp(nil, hdr, to, r)
			if len(out) > MaxPacketIPv6+2*MaxMLTIDLen && len(m.TID) <= 4 && len(m.Token) <= 20 {
				t.Fatalf("reply of %d bytes", len(out))
			}
		default:
			return
		}
		var m2 MLMsg
		if err := m2.Parse(out); err != nil {
			t.Fatalf("re-encoded %q → %q: %v", b, out, err)
		}
		if m2.Y != m.Y || m2.Method != m.Method || m2.ID != m.ID || m2.Target != m.Target || m2.InfoHash != m.InfoHash ||
			!bytes.Equal(m2.TID, m.TID) || !bytes.Equal(m2.Token, m.Token) || !bytes.Equal(m2.V, m.V) {
			t.Fatalf("round trip differs:\n%q\n%q", b, out)
		}
	})
}
