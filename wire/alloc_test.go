//go:build !race

package wire

import (
	"net/netip"
	"strings"
	"testing"
)

// Every Append encoder and Parse of every message type must not allocate.
func TestZeroAllocs(t *testing.T) {
	self, target, key, token := idOf(1), idOf(2), idOf(3), idOf(4)
	nodes := testNodes(8)
	nodes46 := append(testNodes(8), testNodes6(8)...)
	value := AppendPeerValue(nil, &PeerValue{Contact: refPeer, Form: FormInline, Pieces: pieces(4)})
	values := [][]byte{value, value, value}
	buf := make([]byte, 0, 2048)
	encoders := []struct {
		name string
		fn   func() []byte
	}{
		{"ping", func() []byte { return AppendPing(buf[:0], refTID, self) }},
		{"join", func() []byte { return AppendJoin(buf[:0], refTID, self) }},
		{"find_node", func() []byte { return AppendFindNode(buf[:0], refTID, self, target) }},
		{"find_value", func() []byte { return AppendFindValue(buf[:0], refTID, self, key) }},
		{"get_value", func() []byte { return AppendGetValue(buf[:0], refTID, self, key, 5) }},
		{"store_value", func() []byte { return AppendStoreValue(buf[:0], refTID, self, key, value, token) }},
		{"id response", func() []byte { return AppendIDResp(buf[:0], refTID, self) }},
		{"join response", func() []byte { return AppendJoinResp(buf[:0], refTID, self, refPeer) }},
		{"find_node response", func() []byte { return AppendFindNodeResp(buf[:0], refTID, self, nodes, token) }},
		{"find_value response", func() []byte { return AppendFindValueResp(buf[:0], refTID, self, nodes, 3) }},
		{"get_value response", func() []byte { p, _ := AppendGetValueResp(buf[:0], refTID, self, values, MaxPacketIPv4); return p }},
		{"error", func() []byte { return AppendError(buf[:0], refTID, ErrCodeInvalidToken, "token is invalid") }},
		{"unknown method", func() []byte { return AppendUnknownMethod(buf[:0], refTID, []byte("get_peers")) }},
		{"response too long", func() []byte { return AppendResponseTooLong(buf[:0], refTID, ErrCodeServer, 1491) }},
		{"peer value", func() []byte { return AppendPeerValue(buf[:0], &PeerValue{Contact: refPeer, Form: FormHash}) }},
		{"piece string", func() []byte { return AppendPieceString(buf[:0], value) }},
		// The IPv6 extension (ipv6.go).
		{"find_node want", func() []byte { return AppendFindNodeWant(buf[:0], refTID, self, target, WantN4|WantN6) }},
		{"find_value want", func() []byte { return AppendFindValueWant(buf[:0], refTID, self, key, WantN6) }},
		{"find_node response want", func() []byte { return AppendFindNodeRespWant(buf[:0], refTID, self, nodes46, WantN4|WantN6, token) }},
		{"find_value response want", func() []byte { return AppendFindValueRespWant(buf[:0], refTID, self, nodes46, WantN4|WantN6, 3) }},
		{"join response 6", func() []byte { return AppendJoinResp(buf[:0], refTID, self, refPeer6) }},
		{"peer value 6", func() []byte { return AppendPeerValue(buf[:0], &PeerValue{Contact: refPeer6, Form: FormHash}) }},
	}
	var m Msg
	for _, e := range encoders {
		pkt := append([]byte(nil), e.fn()...)
		if a := testing.AllocsPerRun(100, func() { e.fn() }); a != 0 {
			t.Errorf("%s: encode allocates %.1f times", e.name, a)
		}
		if strings.HasPrefix(e.name, "peer value") || e.name == "piece string" {
			continue
		}
		if err := m.Parse(pkt); err != nil {
			t.Errorf("%s: Parse: %v", e.name, err)
			continue
		}
		if a := testing.AllocsPerRun(100, func() { _ = m.Parse(pkt) }); a != 0 {
			t.Errorf("%s: Parse allocates %.1f times", e.name, a)
		}
	}
	// The error paths and the list views do not allocate either.
	bad := q("ping", "")
	if a := testing.AllocsPerRun(100, func() { _ = m.Parse(bad) }); a != 0 {
		t.Errorf("ErrBadArgs Parse allocates %.1f times", a)
	}
	resp := AppendFindNodeResp(nil, refTID, self, nodes, token)
	_ = m.Parse(resp)
	if a := testing.AllocsPerRun(100, func() {
		for i := range m.Nodes.Len() {
			_ = m.Nodes.At(i)
		}
	}); a != 0 {
		t.Errorf("NodeList.At allocates %.1f times", a)
	}
	gv, _ := AppendGetValueResp(nil, refTID, self, values, MaxPacketIPv4)
	_ = m.Parse(gv)
	if a := testing.AllocsPerRun(100, func() {
		for v := range m.Values.All {
			_ = v
		}
		_ = m.Values.At(2)
	}); a != 0 {
		t.Errorf("ValueList allocates %.1f times", a)
	}
	var pv PeerValue
	if a := testing.AllocsPerRun(100, func() { _ = pv.Parse(value) }); a != 0 {
		t.Errorf("PeerValue.Parse allocates %.1f times", a)
	}
	ps := AppendPieceString(nil, pieces(10))
	if a := testing.AllocsPerRun(100, func() { _, _ = ParsePieceString(ps) }); a != 0 {
		t.Errorf("ParsePieceString allocates %.1f times", a)
	}
	join := AppendJoinResp(nil, refTID, self, refPeer)
	_ = m.Parse(join)
	if a := testing.AllocsPerRun(100, func() { _, _ = m.JoinAddr() }); a != 0 {
		t.Errorf("JoinAddr allocates %.1f times", a)
	}
	_ = m.Parse(AppendJoinResp(nil, refTID, self, refPeer6))
	if a := testing.AllocsPerRun(100, func() { _, _ = m.JoinAddr() }); a != 0 {
		t.Errorf("JoinAddr of an IPv6 address allocates %.1f times", a)
	}
	_ = m.Parse(AppendFindNodeRespWant(nil, refTID, self, nodes46, WantN4|WantN6, token))
	if a := testing.AllocsPerRun(100, func() {
		for i := range m.Nodes6.Len() {
			_ = m.Nodes6.At(i)
		}
	}); a != 0 {
		t.Errorf("NodeList6.At allocates %.1f times", a)
	}
	value6 := AppendPeerValue(nil, &PeerValue{Contact: refPeer6, Form: FormInline, Pieces: pieces(4)})
	if a := testing.AllocsPerRun(100, func() { _ = pv.Parse(value6) }); a != 0 {
		t.Errorf("PeerValue.Parse of an IPv6 contact allocates %.1f times", a)
	}
}

// The mainline codec is allocation-free too.
func TestMainlineZeroAllocs(t *testing.T) {
	self, target := idOf(1), idOf(2)
	nodes := testNodes(8)
	peers := []netip.AddrPort{refPeer, refPeer}
	h := &MLHeader{TID: []byte("ab"), Version: MLVersion}
	buf := make([]byte, 0, 2048)
	item := []byte("5:hello")
	encoders := []struct {
		name string
		fn   func() []byte
	}{
		{"ping", func() []byte { return AppendMLPing(buf[:0], h, self) }},
		{"find_node", func() []byte { return AppendMLFindNode(buf[:0], h, self, target) }},
		{"get_peers", func() []byte { return AppendMLGetPeers(buf[:0], h, self, target) }},
		{"announce_peer", func() []byte { return AppendMLAnnounce(buf[:0], h, self, target, 9977, []byte("tokentok")) }},
		{"get", func() []byte { return AppendMLGet(buf[:0], h, self, target) }},
		{"put", func() []byte { return AppendMLPut(buf[:0], h, self, []byte("tokentok"), item) }},
		{"response", func() []byte {
			return AppendMLResp(buf[:0], h, refPeer, &MLResp{Self: self, Nodes: nodes, Token: []byte("tokentok"), Peers: peers})
		}},
		{"error", func() []byte { return AppendMLError(buf[:0], h, MLErrProtocol, "bad") }},
	}
	var m MLMsg
	for _, e := range encoders {
		pkt := append([]byte(nil), e.fn()...)
		if a := testing.AllocsPerRun(100, func() { e.fn() }); a != 0 {
			t.Errorf("%s: encode allocates %.1f times", e.name, a)
		}
		if err := m.Parse(pkt); err != nil {
			t.Errorf("%s: Parse: %v", e.name, err)
		}
		if a := testing.AllocsPerRun(100, func() { _ = m.Parse(pkt) }); a != 0 {
			t.Errorf("%s: Parse allocates %.1f times", e.name, a)
		}
	}
}
