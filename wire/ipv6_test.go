package wire

import (
	"bytes"
	"errors"
	"net/netip"
	"strings"
	"testing"
)

var refPeer6 = netip.MustParseAddrPort("[fd42:0:0:1::11]:9977")

// testNodes6 makes n IPv6 nodes in fd42:0:0:7::/64.
func testNodes6(n int) []Node {
	nodes := make([]Node, n)
	for i := range nodes {
		a := [16]byte{0xfd, 0x42, 0, 0, 0, 0, 0, 7, 14: byte(i >> 8), 15: byte(i)}
		nodes[i] = Node{ID: idOf(byte(0x80 + i)), Addr: netip.AddrPortFrom(netip.AddrFrom16(a), uint16(5000+i))}
	}
	return nodes
}

// ipv6Seeds are packets of the IPv6 extension for the packet fuzz targets.
func ipv6Seeds() [][]byte {
	mixed := append(testNodes(8), testNodes6(8)...)
	return [][]byte{
		AppendFindNodeWant(nil, refTID, refID, idOf(2), WantN4|WantN6),
		AppendFindValueWant(nil, refTID, refID, idOf(3), WantN6),
		AppendFindNodeRespWant(nil, refTID, refID, mixed, WantN4|WantN6, idOf(4)),
		AppendFindNodeRespWant(nil, refTID, refID, mixed, WantN6, idOf(4)),
		AppendFindValueRespWant(nil, refTID, refID, mixed, WantN4|WantN6, 3),
		AppendJoinResp(nil, refTID, refID, refPeer6),
		q("find_node", "2:id20:"+strings.Repeat("i", 20)+"6:target20:"+strings.Repeat("t", 20)+"4:wantl2:n61:x2:n4e"),
		q("find_node", "2:id20:"+strings.Repeat("i", 20)+"6:target20:"+strings.Repeat("t", 20)+"4:wantle"),
		q("ping", "2:id20:"+strings.Repeat("i", 20)+"4:wantl2:n4e"),
	}
}

// The compact IPv6 forms round-trip, refuse IPv4-mapped addresses and have
// the BEP 32 sizes.
func TestCompact6(t *testing.T) {
	b := AppendCompactNode6(nil, refID, refPeer6)
	if len(b) != CompactNode6Len || CompactNode6Len != 38 || CompactPeer6Len != 18 {
		t.Fatalf("compact node6 is %d bytes", len(b))
	}
	want := "caecb80c00e707f87e5d298f9de55f42ff1ac421" + "fd420000000000010000000000000011" + "26f9"
	if got := hexOf(b); got != want {
		t.Errorf("compact node6 = %s, want %s", got, want)
	}
	id, ap, err := ParseCompactNode6(b)
	if err != nil || id != refID || ap != refPeer6 {
		t.Errorf("ParseCompactNode6 = %v %v %v", id, ap, err)
	}
	if _, _, err := ParseCompactNode6(b[:37]); err != ErrCompactLen {
		t.Errorf("37 bytes: %v", err)
	}
	mapped := AppendCompactPeer6(nil, netip.MustParseAddrPort("[::ffff:1.2.3.4]:80"))
	if !bytes.Equal(mapped[:16], make([]byte, 16)) {
		t.Errorf("IPv4-mapped address written as %x, want ::", mapped)
	}
	raw := append(netip.MustParseAddr("::ffff:1.2.3.4").AsSlice(), 0, 80)
	if _, err := ParseCompactPeer6(raw); err == nil {
		t.Error("IPv4-mapped compact peer accepted")
	}
	for _, ap := range []netip.AddrPort{refPeer, refPeer6} {
		c := AppendCompactContact(nil, ap)
		if got, err := ParseCompactContact(c); err != nil || got != ap {
			t.Errorf("contact %v: %x → %v %v", ap, c, got, err)
		}
	}
	if got := AppendCompactContact(nil, netip.MustParseAddrPort("[::ffff:1.2.3.4]:80")); len(got) != CompactPeerLen {
		t.Errorf("IPv4-mapped contact is %d bytes, want the IPv4 form", len(got))
	}
}

func hexOf(b []byte) string {
	const digits = "0123456789abcdef"
	var s strings.Builder
	for _, c := range b {
		s.WriteByte(digits[c>>4])
		s.WriteByte(digits[c&15])
	}
	return s.String()
}

// want is sent as BEP 32 lists it, parsed back with unknown flags ignored,
// and accepted only on find_node and find_value: every other method answers
// it with 204 as it does any unknown argument, as the original did.
func TestWant(t *testing.T) {
	id, target := strings.Repeat("i", 20), strings.Repeat("t", 20)
	pkt := AppendFindNodeWant(nil, refTID, refID, idOf(2), WantN4|WantN6)
	wantPkt := "d1:ad2:id20:" + string(refID[:]) + "6:target20:" + string(idOf(2).bytes()) + "4:wantl2:n42:n6ee1:q9:find_node1:t20:" + string(refTID[:]) + "1:y1:qe"
	if string(pkt) != wantPkt {
		t.Errorf("find_node with want:\n%q\nwant\n%q", pkt, wantPkt)
	}
	if len(pkt) != MaxFindNodeWantLen {
		t.Errorf("find_node with want is %d bytes, MaxFindNodeWantLen %d", len(pkt), MaxFindNodeWantLen)
	}
	if n := len(AppendFindValueWant(nil, refTID, refID, idOf(2), WantN4|WantN6)); n != MaxFindValueWantLen {
		t.Errorf("find_value with want is %d bytes, MaxFindValueWantLen %d", n, MaxFindValueWantLen)
	}
	if !bytes.Equal(AppendFindNodeWant(nil, refTID, refID, idOf(2), 0), AppendFindNode(nil, refTID, refID, idOf(2))) {
		t.Error("the zero Want must give the original's find_node")
	}
	for _, tc := range []struct {
		method, args string
		want         Want
		err          error
	}{
		{"find_node", "2:id20:" + id + "6:target20:" + target + "4:wantl2:n4e", WantN4, nil},
		{"find_node", "2:id20:" + id + "6:target20:" + target + "4:wantl2:n6e", WantN6, nil},
		{"find_node", "2:id20:" + id + "6:target20:" + target + "4:wantl2:n62:n4e", WantN4 | WantN6, nil},
		{"find_node", "2:id20:" + id + "6:target20:" + target + "4:wantl2:n52:n63:n44e", WantN6, nil}, // unknown flags ignored
		{"find_node", "2:id20:" + id + "6:target20:" + target + "4:wantle", 0, nil},
		{"find_value", "2:id20:" + id + "3:key20:" + target + "4:wantl2:n6e", WantN6, nil},
		{"find_node", "2:id20:" + id + "6:target20:" + target + "4:want2:n4", 0, ErrBadArgs},  // not a list
		{"find_node", "2:id20:" + id + "6:target20:" + target + "4:wantli4ee", 0, ErrBadArgs}, // not strings
		{"ping", "2:id20:" + id + "4:wantl2:n4e", 0, ErrBadArgs},
		{"get_value", "2:id20:" + id + "3:key20:" + target + "3:numi0e4:wantl2:n4e", 0, ErrBadArgs},
		{"find_node", "2:id20:" + id + "6:nodes6le6:target20:" + target, 0, ErrBadArgs}, // a result key as an argument
	} {
		var m Msg
		err := m.Parse(q(tc.method, tc.args))
		if !errors.Is(err, tc.err) || (err == nil && m.Want != tc.want) {
			t.Errorf("%s %q: err %v want %b; expected %v, %b", tc.method, tc.args, err, m.Want, tc.err, tc.want)
		}
	}
	// A response carrying want is tolerated (an unknown result key).
	var m Msg
	resp := "d1:rd2:id20:" + id + "4:wantl2:n4ee1:t20:" + string(refTID[:]) + "1:y1:re"
	if err := m.Parse([]byte(resp)); err != nil || m.Has != FieldID {
		t.Errorf("response with want: %v %b", err, m.Has)
	}
}

func (a ID) bytes() []byte { return a[:] }

// A reply carries the node lists the requester wanted, each from its own
// family and capped at MaxNodes, within both packet limits; a reply with
// only nodes (IPv4) is byte for byte the original's.
func TestNodesWant(t *testing.T) {
	v4, v6 := testNodes(10), testNodes6(10)
	mixed := make([]Node, 0, 20)
	for i := range 10 { // interleaved, as a sorted table of both families would be
		mixed = append(mixed, v6[i], v4[i])
	}
	for _, w := range []Want{WantN4, WantN6, WantN4 | WantN6} {
		pkts := map[string][]byte{
			"find_node":  AppendFindNodeRespWant(nil, refTID, refID, mixed, w, idOf(4)),
			"find_value": AppendFindValueRespWant(nil, refTID, refID, mixed, w, 1<<40),
		}
		for name, p := range pkts {
			var m Msg
			if err := m.Parse(p); err != nil {
				t.Fatalf("%s %b: %v", name, w, err)
			}
			if len(p) > MaxPacketIPv6 {
				t.Errorf("%s %b: %d bytes over %d", name, w, len(p), MaxPacketIPv6)
			}
			n4, n6 := 0, 0
			if w&WantN4 != 0 {
				n4 = MaxNodes
			}
			if w&WantN6 != 0 {
				n6 = MaxNodes
			}
			if m.Nodes.Len() != n4 || m.Nodes6.Len() != n6 || (m.Has&FieldNodes != 0) != (n4 > 0) || (m.Has&FieldNodes6 != 0) != (n6 > 0) {
				t.Errorf("%s %b: %d nodes, %d nodes6, has %b", name, w, m.Nodes.Len(), m.Nodes6.Len(), m.Has)
			}
			for i := range m.Nodes6.Len() {
				if m.Nodes6.At(i) != v6[i] {
					t.Errorf("%s: node6 %d = %v, want %v", name, i, m.Nodes6.At(i), v6[i])
				}
			}
			for i := range m.Nodes.Len() {
				if m.Nodes.At(i) != v4[i] {
					t.Errorf("%s: node %d = %v, want %v", name, i, m.Nodes.At(i), v4[i])
				}
			}
		}
	}
	if !bytes.Equal(AppendFindNodeRespWant(nil, refTID, refID, mixed, WantN4, idOf(4)), AppendFindNodeResp(nil, refTID, refID, mixed, idOf(4))) {
		t.Error("a nodes-only reply differs from the original's")
	}
	if !bytes.Equal(AppendFindValueRespWant(nil, refTID, refID, mixed, WantN4, 3), AppendFindValueResp(nil, refTID, refID, mixed, 3)) {
		t.Error("a nodes-only find_value reply differs from the original's")
	}
	full := AppendFindNodeRespWant(nil, refTID, refID, mixed, WantN4|WantN6, idOf(4))
	if len(full) != MaxFindNodeRespWantLen || MaxFindNodeRespWantLen > MaxPacketIPv6 {
		t.Errorf("full find_node reply %d bytes, MaxFindNodeRespWantLen %d", len(full), MaxFindNodeRespWantLen)
	}
	if MaxFindValueRespWantLen > MaxPacketIPv6 {
		t.Errorf("MaxFindValueRespWantLen %d over %d", MaxFindValueRespWantLen, MaxPacketIPv6)
	}
	// A nodes6 entry with an IPv4-mapped address parses, with an invalid
	// address no caller takes; a 26-byte entry in nodes6 makes the reply bad.
	bad := Node{ID: idOf(9)}
	raw := append(append([]byte("38:"), idOf(9).bytes()...), append(netip.MustParseAddr("::ffff:1.2.3.4").AsSlice(), 0, 80)...)
	p := "d1:rd2:id20:" + string(refID[:]) + "6:nodes6l" + string(raw) + "e5:token20:" + string(refID[:]) + "e1:t20:" + string(refTID[:]) + "1:y1:re"
	var m Msg
	if err := m.Parse([]byte(p)); err != nil || m.Nodes6.Len() != 1 || m.Nodes6.At(0) != bad {
		t.Errorf("mapped nodes6 entry: %v %d %v", err, m.Nodes6.Len(), m.Nodes6.At(0))
	}
	p = "d1:rd2:id20:" + string(refID[:]) + "6:nodes6l26:" + strings.Repeat("n", 26) + "ee1:t20:" + string(refTID[:]) + "1:y1:re"
	if err := m.Parse([]byte(p)); err != ErrBadResponse {
		t.Errorf("26-byte nodes6 entry: %v", err)
	}
}

// A join over IPv6 reports the requester's IPv6 address, and JoinAddr reads
// it back.
func TestJoinResp6(t *testing.T) {
	p := AppendJoinResp(nil, refTID, refID, refPeer6)
	var m Msg
	if err := m.Parse(p); err != nil {
		t.Fatal(err)
	}
	if string(m.IPAddr) != "fd42:0:0:1::11" {
		t.Errorf("ip_addr = %q", m.IPAddr)
	}
	if ap, ok := m.JoinAddr(); !ok || ap != refPeer6 {
		t.Errorf("JoinAddr = %v %v", ap, ok)
	}
	if len(p) > MaxJoinRespLen {
		t.Errorf("join reply %d bytes over MaxJoinRespLen %d", len(p), MaxJoinRespLen)
	}
}

// Values of the IPv6 network carry an 18-byte c; everything else about them
// is the original's.
func TestPeerValue6(t *testing.T) {
	for _, v := range []PeerValue{
		{Contact: refPeer6},
		{Contact: refPeer6, Form: FormInline, Pieces: pieces(3)},
		{Contact: refPeer6, Form: FormHash, PiecesHash: idOf(5)},
		{Contact: refPeer6, Form: FormLink, PiecesHash: idOf(6), Claim: 1733472000123456},
	} {
		b := AppendPeerValue(nil, &v)
		if !bytes.HasPrefix(b, []byte("d1:c18:")) {
			t.Errorf("%+v: %q", v, b)
		}
		var w PeerValue
		if err := w.Parse(b); err != nil || w.Contact != v.Contact || w.Form != v.Form || !bytes.Equal(w.Pieces, v.Pieces) ||
			w.PiecesHash != v.PiecesHash || w.Claim != v.Claim {
			t.Errorf("%+v: round trip %+v %v", v, w, err)
		}
	}
	// {c} with an IPv6 contact: 26 bytes against the original's 13.
	if n := len(AppendPeerValue(nil, &PeerValue{Contact: refPeer6})); n != 26 {
		t.Errorf("IPv6 contact value = %d bytes, want 26", n)
	}
	var v PeerValue
	mapped := "d1:c18:" + string(netip.MustParseAddr("::ffff:1.2.3.4").AsSlice()) + "\x00\x50e"
	if err := v.Parse([]byte(mapped)); err == nil {
		t.Error("an IPv4-mapped 18-byte contact was accepted: it would let an IPv4 storer pass the contact check")
	}
	for _, n := range []int{5, 7, 17, 19} {
		if err := v.Parse([]byte("d1:c" + itoa(n) + ":" + strings.Repeat("\x01", n) + "e")); err == nil {
			t.Errorf("%d-byte contact accepted", n)
		}
	}
}

// FuzzJoinAddr6: the allocation-free text parser agrees with net/netip on
// every zone-free input.
func FuzzJoinAddr6(f *testing.F) {
	for _, s := range []string{"::1", "fd42:0:0:1::11", "::ffff:1.2.3.4", "1:2:3:4:5:6:7:8", "1::2::3", "::", "1:2:3:4:5:6:1.2.3.4",
		"1.2.3.4", "::1.2.3.4", "0001:0:0::", "fe80::1%eth0", "1:2:3:4:5:6:7::", "::2:3:4:5:6:7:8", ":::", "1:::2"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if strings.ContainsRune(s, '%') || !strings.ContainsRune(s, ':') {
			return
		}
		got, ok := parseIPv6Text([]byte(s))
		want, err := netip.ParseAddr(s)
		if ok != (err == nil) || (ok && got != want) {
			t.Fatalf("parseIPv6Text(%q) = %v %v; netip: %v %v", s, got, ok, want, err)
		}
	})
}
