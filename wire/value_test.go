package wire

import (
	"bytes"
	"crypto/sha1"
	"errors"
	"net/netip"
	"strings"
	"testing"
)

func pieces(n int) []byte {
	p := make([]byte, n*PieceHashLen)
	for i := range p {
		p[i] = byte(i * 7)
	}
	return p
}

func TestChooseForm(t *testing.T) {
	for _, tc := range []struct {
		n    int
		want ValueForm
	}{{-1, FormContact}, {0, FormContact}, {1, FormContact}, {2, FormInline}, {4, FormInline}, {5, FormHash},
		{MaxHashPieces, FormHash}, {MaxHashPieces + 1, FormLink}, {70, FormLink}, {100000, FormLink}} {
		if got := ChooseForm(tc.n); got != tc.want {
			t.Errorf("ChooseForm(%d) = %d, want %d", tc.n, got, tc.want)
		}
	}
}

// §3.2 byte examples.
func TestPeerValueVectors(t *testing.T) {
	peer := string([]byte{165, 234, 1, 34, 0xef, 0x32})
	h := idOf(9)
	tests := []struct {
		v    PeerValue
		want string
	}{
		{PeerValue{Contact: refPeer}, "d1:c6:" + peer + "e"},
		{PeerValue{Contact: refPeer, Form: FormHash, PiecesHash: h}, "d1:c6:" + peer + "1:h20:" + string(h[:]) + "e"},
		{PeerValue{Contact: refPeer, Form: FormLink, PiecesHash: h}, "d1:c6:" + peer + "1:l20:" + string(h[:]) + "e"},
		{PeerValue{Contact: refPeer, Form: FormInline, Pieces: pieces(2)}, "d1:c6:" + peer + "1:td1:t40:" + string(pieces(2)) + "ee"},
	}
	for _, tc := range tests {
		got := AppendPeerValue(nil, &tc.v)
		if string(got) != tc.want {
			t.Errorf("AppendPeerValue(%+v) = %q, want %q", tc.v, got, tc.want)
		}
		var back PeerValue
		if err := back.Parse(got); err != nil || back.Contact != tc.v.Contact || back.Form != tc.v.Form ||
			back.PiecesHash != tc.v.PiecesHash || !bytes.Equal(back.Pieces, tc.v.Pieces) {
			t.Errorf("Parse(%q) = %+v, %v", got, back, err)
		}
	}
	if n := len(AppendPeerValue(nil, &tests[1].v)); n != 39 {
		t.Errorf("h value = %d bytes, want 39", n)
	}
	if n := len(AppendPeerValue(nil, &tests[3].v)); n != 64 {
		t.Errorf("2-piece value = %d bytes, want 64", n)
	}
	four := PeerValue{Contact: refPeer, Form: FormInline, Pieces: pieces(4)}
	if n := len(AppendPeerValue(nil, &four)); n != 104 {
		t.Errorf("4-piece value = %d bytes, want 104", n)
	}
	// An IPv6 contact takes the 18-byte form of the IPv6 extension; an
	// IPv4-mapped one is an IPv4 peer and keeps the original's 6 bytes.
	v6 := AppendPeerValue(nil, &PeerValue{Contact: netip.MustParseAddrPort("[::1]:80")})
	if string(v6) != "d1:c18:"+strings.Repeat("\x00", 15)+"\x01\x00\x50e" {
		t.Errorf("IPv6 contact = %q", v6)
	}
	mapped := AppendPeerValue(nil, &PeerValue{Contact: netip.MustParseAddrPort("[::ffff:1.2.3.4]:80")})
	if string(mapped) != "d1:c6:\x01\x02\x03\x04\x00\x50e" {
		t.Errorf("IPv4-mapped contact = %q", mapped)
	}
	// Neither family: 0.0.0.0, which nobody uses.
	if bad := AppendPeerValue(nil, &PeerValue{}); string(bad) != "d1:c6:\x00\x00\x00\x00\x00\x00e" {
		t.Errorf("invalid contact = %q", bad)
	}
}

func TestPeerValueRejects(t *testing.T) {
	peer := "6:" + string([]byte{1, 2, 3, 4, 0, 80})
	h := "20:" + strings.Repeat("h", 20)
	for _, in := range []string{
		"", "de", "le", "d1:c5:abcdee", "d1:ci1ee", "d1:c" + peer + "1:h19:" + strings.Repeat("h", 19) + "e",
		"d1:c" + peer + "1:h" + h + "1:l" + h + "e",  // two forms
		"d1:c" + peer + "1:td1:t0:ee",                // empty piece string
		"d1:c" + peer + "1:td1:t3:abcee",             // not a multiple of 20
		"d1:c" + peer + "1:t" + h + "e",              // t not a dict
		"d1:c" + peer + "1:td1:t" + h + "1:u0:ee",    // extra key in t
		"d1:c" + peer + "e1:x",                       // trailing data
		"d1:h" + h + "e",                             // no c
		"d1:c" + peer + "1:c" + peer + "e",           // duplicate
		"d2:cc" + peer + "e",                         // c missing (cc is another key)
		"d1:c" + peer + "1:pi0ee",                    // claim not positive
		"d1:c" + peer + "1:p3:abce",                  // claim not an integer
		"d1:c" + peer + "1:pi99999999999999999999ee", // claim beyond int64
	} {
		var v PeerValue
		if err := v.Parse([]byte(in)); err == nil {
			t.Errorf("Parse(%q) = %+v, want an error", in, v)
		}
	}
}

func TestPieceString(t *testing.T) {
	p := pieces(3)
	enc := AppendPieceString(nil, p)
	if string(enc) != "d1:t60:"+string(p)+"e" || len(enc) != PieceStringLen(3) {
		t.Fatalf("AppendPieceString = %q", enc)
	}
	got, err := ParsePieceString(enc)
	if err != nil || !bytes.Equal(got, p) {
		t.Fatalf("ParsePieceString = %x, %v", got, err)
	}
	v, err := Decode(enc)
	if err != nil || !bytes.Equal(v.Get("t").Str, p) {
		t.Fatalf("Decode(piece string) = %+v, %v", v, err)
	}
	for _, in := range []string{"", "d1:t0:e", "d1:t3:abce", "d1:t60:" + string(p), "d1:t60:" + string(p) + "ee",
		"d1:u20:" + string(p[:20]) + "e", "d1:t020:" + string(p[:20]) + "e", "d1:t20:" + string(p[:20]) + "1:u0:e"} {
		if _, err := ParsePieceString([]byte(in)); err == nil {
			t.Errorf("ParsePieceString(%q) succeeded", in)
		}
	}
}

// The value-form thresholds (package doc): the largest h-form piece string fits
// a store_value request and a get_value reply under both limits, and one more
// piece does not.
func TestMaxHashPiecesFits(t *testing.T) {
	for _, limit := range []int{MaxPacketIPv4, MaxPacketIPv6} {
		ps := AppendPieceString(nil, pieces(MaxHashPieces))
		req := AppendStoreValue(nil, refTID, refID, refID, ps, refID)
		if len(req) > limit || len(req) != StoreValueLen(len(ps)) {
			t.Errorf("limit %d: store_value with %d pieces = %d bytes", limit, MaxHashPieces, len(req))
		}
		resp, n := AppendGetValueResp(nil, refTID, refID, [][]byte{ps}, limit)
		if n != 1 || len(resp) > limit {
			t.Errorf("limit %d: get_value reply with %d pieces: n = %d, %d bytes", limit, MaxHashPieces, n, len(resp))
		}
	}
	// Exact sizes from the package documentation.
	if n := StoreValueLen(PieceStringLen(64)); n != 1443 {
		t.Errorf("store_value with 64 pieces = %d bytes, want 1443", n)
	}
	if n := GetValueRespLen([][]byte{make([]byte, PieceStringLen(70))}); n != 1491 {
		t.Errorf("get_value reply with 70 pieces = %d bytes, want 1491 (reference §2.8)", n)
	}
	ps := AppendPieceString(nil, pieces(MaxHashPieces+1))
	if req := AppendStoreValue(nil, refTID, refID, refID, ps, refID); len(req) <= MaxPacketIPv6 {
		t.Errorf("store_value with %d pieces = %d bytes, want > %d", MaxHashPieces+1, len(req), MaxPacketIPv6)
	}
	// The inline form at its maximum, inside a store_value request.
	v := AppendPeerValue(nil, &PeerValue{Contact: refPeer, Form: FormInline, Pieces: pieces(MaxInlinePieces)})
	if n := len(AppendStoreValue(nil, refTID, refID, refID, v, refID)); n > MaxPacketIPv6 {
		t.Errorf("inline store_value = %d bytes", n)
	}
	// MaxStoreValueLen is exact.
	if n := StoreValueLen(MaxStoreValueLen); n != MaxPacketIPv6 {
		t.Errorf("StoreValueLen(MaxStoreValueLen) = %d", n)
	}
	if n := len(AppendStoreValue(nil, refTID, refID, refID, make([]byte, MaxStoreValueLen+1), refID)); n <= MaxPacketIPv6 {
		t.Errorf("store_value with %d-byte value = %d bytes", MaxStoreValueLen+1, n)
	}
}

func TestGetValueRespFit(t *testing.T) {
	plain := AppendPeerValue(nil, &PeerValue{Contact: refPeer})
	many := make([][]byte, 200)
	for i := range many {
		many[i] = plain
	}
	// §2.8: at most 87 plain values per 1472-byte reply.
	pkt, n := AppendGetValueResp(nil, refTID, refID, many, MaxPacketIPv4)
	if n != 87 || len(pkt) > MaxPacketIPv4 || len(pkt)+16 <= MaxPacketIPv4 {
		t.Errorf("plain values: n = %d, %d bytes", n, len(pkt))
	}
	// The fit includes the last value exactly: a reply of exactly limit bytes.
	for _, limit := range []int{MaxPacketIPv4, MaxPacketIPv6} {
		one := make([]byte, limit-getValueRespBase-5) // "1391:" is 5 bytes
		pkt, n := AppendGetValueResp(nil, refTID, refID, [][]byte{one}, limit)
		if n != 1 || len(pkt) != limit {
			t.Errorf("limit %d: exact fit n = %d, %d bytes", limit, n, len(pkt))
		}
		two := [][]byte{plain, make([]byte, limit-getValueRespBase-len(plain)-3-5)}
		pkt, n = AppendGetValueResp(nil, refTID, refID, two, limit)
		if n != 2 || len(pkt) != limit {
			t.Errorf("limit %d: last value exact fit n = %d, %d bytes", limit, n, len(pkt))
		}
		tooBig := [][]byte{make([]byte, limit-getValueRespBase-5+1), plain}
		dst := []byte("prefix")
		pkt, n = AppendGetValueResp(dst, refTID, refID, tooBig, limit)
		if n != 0 || string(pkt) != "prefix" {
			t.Errorf("limit %d: too big n = %d, %q", limit, n, pkt)
		}
	}
	pkt, n = AppendGetValueResp(nil, refTID, refID, nil, MaxPacketIPv6)
	var m Msg
	if n != 0 || m.Parse(pkt) != nil || m.Values.Len() != 0 || m.Has != FieldID|FieldValues {
		t.Errorf("empty values: n = %d, %q", n, pkt)
	}
	if pkt, n := AppendGetValueResp(nil, refTID, refID, nil, 10); n != 0 || len(pkt) != 0 {
		t.Errorf("tiny limit: %d, %q", n, pkt)
	}
}

// Every fixed-shape encoder's maximum size is exact and under MaxPacketIPv6.
func TestMaxLens(t *testing.T) {
	nodes := testNodes(20)
	v6 := netip.MustParseAddrPort("[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff%eth0]:65535")
	long := strings.Repeat("m", 5000)
	tests := []struct {
		name     string
		got, max int
	}{
		{"ping", len(AppendPing(nil, refTID, refID)), PingLen},
		{"join", len(AppendJoin(nil, refTID, refID)), JoinLen},
		{"find_node", len(AppendFindNode(nil, refTID, refID, refID)), FindNodeLen},
		{"find_value", len(AppendFindValue(nil, refTID, refID, refID)), FindValueLen},
		{"get_value", len(AppendGetValue(nil, refTID, refID, refID, 1<<63-1)), MaxGetValueLen},
		{"id response", len(AppendIDResp(nil, refTID, refID)), IDRespLen},
		{"join response", len(AppendJoinResp(nil, refTID, refID, v6)), MaxJoinRespLen},
		{"find_node response", len(AppendFindNodeResp(nil, refTID, refID, nodes, refID)), MaxFindNodeRespLen},
		{"find_value response", len(AppendFindValueResp(nil, refTID, refID, nodes, 1<<63-1)), MaxFindValueRespLen},
		{"error", len(AppendError(nil, refTID, -1<<63, long)), MaxErrorLen},
	}
	for _, tc := range tests {
		if tc.got != tc.max || tc.max > MaxPacketIPv6 {
			t.Errorf("%s: %d bytes, max %d (limit %d)", tc.name, tc.got, tc.max, MaxPacketIPv6)
		}
	}
	if MaxFindNodeRespLen != 337 {
		t.Errorf("MaxFindNodeRespLen = %d, want 337", MaxFindNodeRespLen)
	}
	// IPv6 nodes are skipped, not truncated into garbage.
	mixed := []Node{{ID: refID, Addr: v6}, {ID: refID, Addr: refPeer}}
	var m Msg
	if err := m.Parse(AppendFindNodeResp(nil, refTID, refID, mixed, refID)); err != nil || m.Nodes.Len() != 1 {
		t.Errorf("mixed nodes: %v, %d", err, m.Nodes.Len())
	}
}

func TestPeerValueErrors(t *testing.T) {
	var v PeerValue
	if err := v.Parse([]byte("d1:c5:abcdee")); !errors.Is(err, ErrPeerValue) {
		t.Errorf("err = %v", err)
	}
}

// TestPeerValueExtensions: unknown keys are skipped (a later extension must
// not make a daemon drop the value, as the original skipped them too), and
// the claim of a download in progress round-trips in sorted key order.
func TestPeerValueExtensions(t *testing.T) {
	peer := "6:" + string([]byte{1, 2, 3, 4, 0, 80})
	h := "20:" + strings.Repeat("h", 20)
	for _, in := range []string{
		"d1:c" + peer + "1:x0:e",
		"d1:c" + peer + "1:h" + h + "4:xtrai7ee",
		"d4:aaaali1ei2ee1:c" + peer + "1:zd1:qi1eee",
	} {
		var v PeerValue
		if err := v.Parse([]byte(in)); err != nil || v.Contact != refPeer2 {
			t.Errorf("Parse(%q) = %+v, %v; want contact %v", in, v, err, refPeer2)
		}
	}
	for _, v := range []PeerValue{
		{Contact: refPeer2, Claim: 1733472000123},
		{Contact: refPeer2, Form: FormInline, Pieces: pieces(2), Claim: 7},
		{Contact: refPeer2, Form: FormHash, PiecesHash: ID{1}, Claim: 9},
	} {
		enc := AppendPeerValue(nil, &v)
		if err := Valid(enc); err != nil {
			t.Fatalf("%q is not valid bencode: %v", enc, err)
		}
		var got PeerValue
		if err := got.Parse(enc); err != nil || got.Claim != v.Claim || got.Form != v.Form || got.Contact != v.Contact {
			t.Errorf("round trip of %+v: %+v, %v (%q)", v, got, err, enc)
		}
	}
	if got := AppendPeerValue(nil, &PeerValue{Contact: refPeer2, Claim: 5}); string(got) != "d1:c"+peer+"1:pi5ee" {
		t.Errorf("claim value = %q", got)
	}
}

var refPeer2 = netip.MustParseAddrPort("1.2.3.4:80")

// TestPartialKey pins the derivation: SHA1("apt-p2p partial " + key).
func TestPartialKey(t *testing.T) {
	k := ID{0xca, 0xec, 0xb8}
	want := sha1.Sum(append([]byte("apt-p2p partial "), k[:]...))
	if got := PartialKey(k); got != ID(want) || got == k {
		t.Fatalf("PartialKey = %v, want %x", got, want)
	}
}
