package wire

import (
	"bytes"
	"math/big"
	"reflect"
	"testing"

	zeebo "github.com/zeebo/bencode"
)

// toAny converts a Value to the shapes zeebo/bencode decodes into an
// interface{}: int64, string, []interface{}, map[string]interface{}.
func toAny(v *Value) any {
	switch v.Kind {
	case KindInt:
		if v.Big != nil {
			z, _ := new(big.Int).SetString(string(v.Big), 10)
			return z
		}
		return v.Int
	case KindString:
		return string(v.Str)
	case KindList:
		var l []any // zeebo leaves an empty list nil
		for i := range v.List {
			l = append(l, toAny(&v.List[i]))
		}
		return l
	case KindDict:
		m := make(map[string]any, len(v.Dict))
		for i := range v.Dict {
			m[string(v.Dict[i].Key)] = toAny(&v.Dict[i].Value)
		}
		return m
	}
	return nil
}

// zeeboSafe reports whether b can be given to zeebo/bencode: it allocates a
// declared string length before reading the data (up to 2 GiB), so inputs
// that declare lengths beyond their own size are kept from it.
func zeeboSafe(b []byte) bool {
	n, digits := 0, false
	for _, c := range b {
		switch {
		case c >= '0' && c <= '9':
			if n <= len(b) {
				n = n*10 + int(c-'0')
			}
			digits = true
		case c == ':' && digits && n > len(b):
			return false
		default:
			n, digits = 0, false
		}
	}
	return true
}

// zeeboDecode decodes b with zeebo/bencode, requiring it to consume all of b.
func zeeboDecode(b []byte) (any, bool) {
	d := zeebo.NewDecoder(bytes.NewReader(b))
	var x any
	if err := d.Decode(&x); err != nil || d.BytesParsed() != len(b) {
		return nil, false
	}
	return x, true
}

// zeeboStructure is the generic tree zeebo/bencode builds from b (which must
// be valid), for comparison with toAny(Decode(b)).
func zeeboStructure(t *testing.T, name string, b []byte) {
	t.Helper()
	x, ok := zeeboDecode(b)
	if !ok {
		t.Errorf("%s: zeebo/bencode rejects %q", name, b)
		return
	}
	v, err := Decode(b)
	if err != nil {
		t.Errorf("%s: Decode: %v", name, err)
		return
	}
	if want := toAny(&v); !reflect.DeepEqual(x, want) {
		t.Errorf("%s: zeebo/bencode reads %#v, Decode reads %#v", name, x, want)
	}
}

// Differential: every encoder's output, decoded by zeebo/bencode, has the
// structure the protocol defines.
func TestEncodersAgainstZeebo(t *testing.T) {
	self, target, key, token := idOf(1), idOf(2), idOf(3), idOf(4)
	nodes := testNodes(8)
	var compact []any
	for _, n := range nodes {
		compact = append(compact, string(AppendCompactNode(nil, n.ID, n.Addr)))
	}
	value := AppendPeerValue(nil, &PeerValue{Contact: refPeer, Form: FormInline, Pieces: pieces(3)})
	s := func(id ID) string { return string(id[:]) }
	tid := s(refTID)
	query := func(method string, args map[string]any) map[string]any {
		return map[string]any{"t": tid, "y": "q", "q": method, "a": args}
	}
	resp := func(r map[string]any) map[string]any { return map[string]any{"t": tid, "y": "r", "r": r} }
	gv, _ := AppendGetValueResp(nil, refTID, self, [][]byte{value, []byte("x")}, MaxPacketIPv6)
	tests := []struct {
		name string
		pkt  []byte
		want map[string]any
	}{
		{"ping", AppendPing(nil, refTID, self), query("ping", map[string]any{"id": s(self)})},
		{"join", AppendJoin(nil, refTID, self), query("join", map[string]any{"id": s(self)})},
		{"find_node", AppendFindNode(nil, refTID, self, target), query("find_node", map[string]any{"id": s(self), "target": s(target)})},
		{"find_value", AppendFindValue(nil, refTID, self, key), query("find_value", map[string]any{"id": s(self), "key": s(key)})},
		{"get_value", AppendGetValue(nil, refTID, self, key, 9), query("get_value", map[string]any{"id": s(self), "key": s(key), "num": int64(9)})},
		{"store_value", AppendStoreValue(nil, refTID, self, key, value, token),
			query("store_value", map[string]any{"id": s(self), "key": s(key), "token": s(token), "value": string(value)})},
		{"id response", AppendIDResp(nil, refTID, self), resp(map[string]any{"id": s(self)})},
		{"join response", AppendJoinResp(nil, refTID, self, refPeer),
			resp(map[string]any{"id": s(self), "ip_addr": "165.234.1.34", "port": int64(61234)})},
		{"find_node response", AppendFindNodeResp(nil, refTID, self, nodes, token),
			resp(map[string]any{"id": s(self), "nodes": compact, "token": s(token)})},
		{"find_value response", AppendFindValueResp(nil, refTID, self, nodes, 5),
			resp(map[string]any{"id": s(self), "nodes": compact, "num": int64(5)})},
		{"get_value response", gv, resp(map[string]any{"id": s(self), "values": []any{string(value), "x"}})},
		{"error", AppendError(nil, refTID, 205, "bad token"), map[string]any{"t": tid, "y": "e", "e": []any{int64(205), "bad token"}}},
	}
	for _, tc := range tests {
		x, ok := zeeboDecode(tc.pkt)
		if !ok {
			t.Errorf("%s: zeebo/bencode rejects %q", tc.name, tc.pkt)
			continue
		}
		if !reflect.DeepEqual(x, tc.want) {
			t.Errorf("%s: zeebo/bencode reads %#v, want %#v", tc.name, x, tc.want)
		}
		zeeboStructure(t, tc.name, tc.pkt)
		// Byte-exact against zeebo's own encoder of the same structure.
		if enc, err := zeebo.EncodeBytes(tc.want); err != nil || !bytes.Equal(enc, tc.pkt) {
			t.Errorf("%s: zeebo/bencode encodes %q, we encode %q (%v)", tc.name, enc, tc.pkt, err)
		}
	}
	// The value formats too.
	for _, v := range []PeerValue{
		{Contact: refPeer}, {Contact: refPeer, Form: FormInline, Pieces: pieces(4)},
		{Contact: refPeer, Form: FormHash, PiecesHash: key}, {Contact: refPeer, Form: FormLink, PiecesHash: key},
	} {
		zeeboStructure(t, "peer value", AppendPeerValue(nil, &v))
	}
	zeeboStructure(t, "piece string", AppendPieceString(nil, pieces(7)))
}

// The general encoder agrees byte for byte with zeebo/bencode's encoder.
func TestEncodeAgainstZeebo(t *testing.T) {
	for _, x := range []any{
		map[string]any{"z": []any{int64(1), "a", map[string]any{}}, "a": map[string]any{"c": "", "b": int64(-5)}},
		[]any{[]any{}, "", int64(0), int64(-1 << 63)},
	} {
		ours, err := Encode(nil, x)
		theirs, err2 := zeebo.EncodeBytes(x)
		if err != nil || err2 != nil || !bytes.Equal(ours, theirs) {
			t.Errorf("Encode(%#v) = %q, zeebo %q (%v, %v)", x, ours, theirs, err, err2)
		}
		zeeboStructure(t, "encode", ours)
	}
}
