package wire

import (
	"bytes"
	"encoding/hex"
	"errors"
	"net/netip"
	"strings"
	"testing"
)

// The reference's example identities (§8.4): TID = bytes 0x01..0x14.
var (
	refTID = func() (t ID) {
		for i := range t {
			t[i] = byte(i + 1)
		}
		return
	}()
	refID   = mustID("caecb80c00e707f87e5d298f9de55f42ff1ac421")
	refPeer = netip.MustParseAddrPort("165.234.1.34:61234")
)

func mustID(s string) ID {
	id, err := ParseID(s)
	if err != nil {
		panic(err)
	}
	return id
}

func idOf(b byte) (id ID) {
	for i := range id {
		id[i] = b + byte(i)
	}
	return
}

// testNodes returns n distinct IPv4 nodes.
func testNodes(n int) []Node {
	nodes := make([]Node, n)
	for i := range nodes {
		nodes[i] = Node{ID: idOf(byte(0x40 + i)), Addr: netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)}), uint16(4000+i))}
	}
	return nodes
}

// §6.4 and §2.4: the compact node and compact peer vectors.
func TestCompactVectors(t *testing.T) {
	want, _ := hex.DecodeString("caecb80c00e707f87e5d298f9de55f42ff1ac421a5ea0122ef32")
	got := AppendCompactNode(nil, refID, refPeer)
	if !bytes.Equal(got, want) {
		t.Fatalf("compact node = %x, want %x", got, want)
	}
	id, ap, err := ParseCompactNode(got)
	if err != nil || id != refID || ap != refPeer {
		t.Fatalf("ParseCompactNode = %v %v %v", id, ap, err)
	}
	if p := AppendCompactPeer(nil, refPeer); hex.EncodeToString(p) != "a5ea0122ef32" {
		t.Fatalf("compact peer = %x", p)
	}
	// The same node through a nodes list.
	pkt := AppendFindNodeResp(nil, refTID, refID, []Node{{ID: refID, Addr: refPeer}}, refID)
	var m Msg
	if err := m.Parse(pkt); err != nil || m.Nodes.Len() != 1 || m.Nodes.At(0) != (Node{ID: refID, Addr: refPeer}) {
		t.Fatalf("Parse nodes: %v %+v", err, m.Nodes)
	}
}

// §8.4: byte-exact packets.
func TestReferenceVectors(t *testing.T) {
	id, tid := string(refID[:]), string(refTID[:])
	tests := []struct {
		name string
		got  []byte
		want string
		size int
	}{
		{"ping", AppendPing(nil, refTID, refID), "d1:ad2:id20:" + id + "e1:q4:ping1:t20:" + tid + "1:y1:qe", 75},
		{"join response", AppendJoinResp(nil, refTID, refID, refPeer),
			"d1:rd2:id20:" + id + "7:ip_addr12:165.234.1.344:porti61234ee1:t20:" + tid + "1:y1:re", 103},
		{"token error", AppendError(nil, refTID, ErrCodeInvalidToken, "token is invalid, do a find_nodes to get a fresh one"),
			"d1:eli205e52:token is invalid, do a find_nodes to get a fresh onee1:t20:" + tid + "1:y1:ee", 99},
		{"id response", AppendIDResp(nil, refTID, refID), "d1:rd2:id20:" + id + "e1:t20:" + tid + "1:y1:re", IDRespLen},
	}
	for _, tc := range tests {
		if string(tc.got) != tc.want || len(tc.got) != tc.size {
			t.Errorf("%s = %q (%d bytes), want %q (%d bytes)", tc.name, tc.got, len(tc.got), tc.want, tc.size)
		}
	}
	v := AppendPeerValue(nil, &PeerValue{Contact: refPeer})
	if hex.EncodeToString(v) != "64313a63363aa5ea0122ef3265" {
		t.Errorf("peer value = %x", v)
	}
	if n := len(AppendFindNodeResp(nil, refTID, refID, testNodes(8), refID)); n != 337 {
		t.Errorf("find_node reply with 8 nodes = %d bytes, want 337", n)
	}
	if n := len(AppendFindValueResp(nil, refTID, refID, testNodes(8), 3)); n != 315 {
		t.Errorf("find_value reply with 8 nodes = %d bytes, want 315", n)
	}
}

// Every query round-trips through Parse with exactly its argument set.
func TestParseQueries(t *testing.T) {
	self, target, key, token := idOf(1), idOf(2), idOf(3), idOf(4)
	value := []byte("d1:c6:abcdefe")
	tests := []struct {
		pkt    []byte
		method Method
		check  func(m *Msg) bool
	}{
		{AppendPing(nil, refTID, self), MethodPing, func(m *Msg) bool { return true }},
		{AppendJoin(nil, refTID, self), MethodJoin, func(m *Msg) bool { return true }},
		{AppendFindNode(nil, refTID, self, target), MethodFindNode, func(m *Msg) bool { return m.Target == target }},
		{AppendFindValue(nil, refTID, self, key), MethodFindValue, func(m *Msg) bool { return m.Key == key }},
		{AppendGetValue(nil, refTID, self, key, 7), MethodGetValue, func(m *Msg) bool { return m.Key == key && m.Num == 7 }},
		{AppendGetValue(nil, refTID, self, key, -3), MethodGetValue, func(m *Msg) bool { return m.Num == 0 }},
		{AppendStoreValue(nil, refTID, self, key, value, token), MethodStoreValue, func(m *Msg) bool {
			return m.Key == key && m.Token == token && bytes.Equal(m.Value, value)
		}},
	}
	for _, tc := range tests {
		var m Msg
		if err := m.Parse(tc.pkt); err != nil {
			t.Errorf("%s: Parse(%q): %v", tc.method, tc.pkt, err)
			continue
		}
		if m.Y != 'q' || m.TID != refTID || m.Method != tc.method || string(m.MethodName) != tc.method.String() ||
			m.ID != self || m.Has != tc.method.Args() || !tc.check(&m) {
			t.Errorf("%s: Parse(%q) = %+v", tc.method, tc.pkt, m)
		}
	}
}

func TestParseResponses(t *testing.T) {
	self, token := idOf(1), idOf(4)
	nodes := testNodes(8)
	var m Msg
	if err := m.Parse(AppendIDResp(nil, refTID, self)); err != nil || m.Y != 'r' || m.ID != self || m.Has != FieldID {
		t.Errorf("id response: %v %+v", err, m)
	}
	if err := m.Parse(AppendJoinResp(nil, refTID, self, refPeer)); err != nil || m.Has != MethodJoin.Results() {
		t.Errorf("join response: %v %+v", err, m)
	} else if ap, ok := m.JoinAddr(); !ok || ap != refPeer {
		t.Errorf("JoinAddr = %v %v", ap, ok)
	}
	if err := m.Parse(AppendFindNodeResp(nil, refTID, self, nodes, token)); err != nil || m.Has != MethodFindNode.Results() || m.Token != token {
		t.Errorf("find_node response: %v %+v", err, m)
	}
	checkNodes(t, &m, nodes)
	if err := m.Parse(AppendFindValueResp(nil, refTID, self, nodes[:3], 42)); err != nil || m.Has != MethodFindValue.Results() || m.Num != 42 {
		t.Errorf("find_value response: %v %+v", err, m)
	}
	checkNodes(t, &m, nodes[:3])
	values := [][]byte{[]byte("d1:c6:abcdefe"), {}, []byte("x")}
	pkt, n := AppendGetValueResp(nil, refTID, self, values, MaxPacketIPv6)
	if n != 3 {
		t.Fatalf("AppendGetValueResp n = %d", n)
	}
	if err := m.Parse(pkt); err != nil || m.Has != MethodGetValue.Results() || m.Values.Len() != 3 {
		t.Fatalf("get_value response: %v %+v", err, m)
	}
	i := 0
	for v := range m.Values.All {
		if !bytes.Equal(v, values[i]) || !bytes.Equal(m.Values.At(i), values[i]) {
			t.Errorf("value %d = %q / %q, want %q", i, v, m.Values.At(i), values[i])
		}
		i++
	}
	if err := m.Parse(AppendError(nil, refTID, ErrCodeMethodUnknown, "unknown method foo")); err != nil ||
		m.Y != 'e' || m.ErrCode != 203 || string(m.ErrMsg) != "unknown method foo" {
		t.Errorf("error: %v %+v", err, m)
	}
}

func checkNodes(t *testing.T, m *Msg, want []Node) {
	t.Helper()
	if m.Nodes.Len() != len(want) {
		t.Fatalf("nodes: %d, want %d", m.Nodes.Len(), len(want))
	}
	for i := range want {
		if m.Nodes.At(i) != want[i] {
			t.Errorf("node %d = %+v, want %+v", i, m.Nodes.At(i), want[i])
		}
	}
}

// q builds a query packet from raw bencoded args.
func q(method, args string) []byte {
	return []byte("d1:ad" + args + "e1:q" + itoa(len(method)) + ":" + method + "1:t20:" + string(refTID[:]) + "1:y1:qe")
}

func itoa(n int) string { return string(AppendStrLenForTest(n)) }

// AppendStrLenForTest formats n in decimal.
func AppendStrLenForTest(n int) []byte {
	if n == 0 {
		return []byte("0")
	}
	var b []byte
	for ; n > 0; n /= 10 {
		b = append([]byte{byte('0' + n%10)}, b...)
	}
	return b
}

func str(s string) string { return itoa(len(s)) + ":" + s }

func TestParseBadArgs(t *testing.T) {
	id := str(strings.Repeat("i", 20))
	key := str(strings.Repeat("k", 20))
	tests := []struct {
		method, args string
		m            Method
	}{
		{"ping", "", MethodPing},                            // missing id
		{"ping", "2:id" + id + "6:target" + id, MethodPing}, // extra argument
		{"ping", "2:id" + str("short"), MethodPing},         // id not 20 bytes
		{"ping", "2:idi5e", MethodPing},                     // id not a string
		{"join", "1:a0:2:id" + id, MethodJoin},              // unknown argument
		{"find_node", "2:id" + id, MethodFindNode},          // missing target
		{"find_node", "2:id" + id + "6:target" + str("x"), MethodFindNode},
		{"find_value", "2:id" + id + "3:keyle", MethodFindValue}, // key a list
		{"get_value", "2:id" + id + "3:key" + key, MethodGetValue},
		{"get_value", "2:id" + id + "3:key" + key + "3:numi-1e", MethodGetValue},
		{"get_value", "2:id" + id + "3:key" + key + "3:num1:1", MethodGetValue},
		{"get_value", "2:id" + id + "3:key" + key + "3:numi99999999999999999999e", MethodGetValue},
		{"store_value", "2:id" + id + "3:key" + key + "5:token" + id, MethodStoreValue},
		{"store_value", "2:id" + id + "3:key" + key + "5:token" + id + "5:valuei1e", MethodStoreValue},
		{"store_value", "2:id" + id + "3:key" + key + "5:nodesle5:token" + id + "5:value0:", MethodStoreValue},
	}
	for _, tc := range tests {
		var m Msg
		pkt := q(tc.method, tc.args)
		err := m.Parse(pkt)
		if !errors.Is(err, ErrBadArgs) || m.Y != 'q' || m.TID != refTID || m.Method != tc.m {
			t.Errorf("Parse(%q) = %v, %+v; want ErrBadArgs with the envelope", pkt, err, m)
		}
	}
	// The exact sets parse.
	for _, pkt := range [][]byte{
		q("ping", "2:id"+id),
		q("get_value", "2:id"+id+"3:key"+key+"3:numi0e"),
		q("store_value", "2:id"+id+"3:key"+key+"5:token"+id+"5:value0:"),
	} {
		var m Msg
		if err := m.Parse(pkt); err != nil {
			t.Errorf("Parse(%q): %v", pkt, err)
		}
	}
	// An unknown method parses (answer 203) whatever its arguments.
	var m Msg
	if err := m.Parse(q("announce_peer", "4:port5:hello")); err != nil || m.Method != MethodUnknown || string(m.MethodName) != "announce_peer" {
		t.Errorf("unknown method: %v %+v", err, m)
	}
}

// Packets that must be dropped (any error but ErrBadArgs).
func TestParseDrops(t *testing.T) {
	tid := string(refTID[:])
	id := str(strings.Repeat("i", 20))
	r := func(res string) string { return "d1:rd" + res + "e1:t20:" + tid + "1:y1:re" }
	tests := []string{
		"",
		"le",
		"d1:y1:qe",
		"d1:ad2:id" + id + "e1:q4:ping1:t2:aa1:y1:qe",                              // short TID
		"d1:ad2:id" + id + "e1:q4:ping1:y1:qe",                                     // no TID
		"d1:ad2:id" + id + "e1:q4:ping1:ti1e1:y1:qe",                               // TID not a string
		"d1:ad2:id" + id + "e1:q4:ping1:t20:" + tid + "e",                          // no y
		"d1:ad2:id" + id + "e1:q4:ping1:t20:" + tid + "1:y1:xe",                    // unknown y
		"d1:ad2:id" + id + "e1:q4:ping1:t20:" + tid + "1:y2:qqe",                   // long y
		"d1:ad2:id" + id + "e1:t20:" + tid + "1:y1:qe",                             // no q
		"d1:q4:ping1:t20:" + tid + "1:y1:qe",                                       // no a
		"d1:ale1:q4:ping1:t20:" + tid + "1:y1:qe",                                  // a not a dict
		"d1:ad2:id" + id + "e1:qi1e1:t20:" + tid + "1:y1:qe",                       // q not a string
		"d1:ad2:id" + id + "e1:q4:ping1:t20:" + tid + "1:y1:qe1:x",                 // trailing data
		"d1:ad2:id" + id + "e1:q4:ping1:t20:" + tid + "1:y1:qee",                   // trailing data
		"d1:q4:ping1:ad2:id" + id + "e1:t20:" + tid + "1:y1:qe",                    // unsorted keys
		"d1:ad2:id" + id + "2:id" + id + "e1:q4:ping1:t20:" + tid + "1:y1:qe",      // duplicate arg key
		"d1:ad2:id" + id + "e1:q4:ping1:rd2:id" + id + "e1:t20:" + tid + "1:y1:qe", // a query with r
		"d1:ad2:id" + id + "e1:q4:ping1:t20:" + tid + "1:y1:q",                     // unterminated
		"d1:ad2:id" + id + "e1:q04:ping1:t20:" + tid + "1:y1:qe",                   // leading zero
		r(""),                    // response without id
		r("2:id" + str("short")), // short id
		r("2:id" + id + "5:nodes26:" + strings.Repeat("n", 26)), // nodes a string (BEP 5 form)
		r("2:id" + id + "5:nodesl25:" + strings.Repeat("n", 25) + "e"),
		r("2:id" + id + "5:nodesli1ee"),
		r("2:id" + id + "6:valuesli1ee"),
		r("2:id" + id + "6:values0:"),
		r("2:id" + id + "5:token3:abc"),
		r("2:id" + id + "3:numi-1e"),
		r("2:id" + id + "4:porti65536e"),
		r("2:id" + id + "7:ip_addri1e"),
		"d1:rle1:t20:" + tid + "1:y1:re",                          // r not a dict
		"d1:eli201ee1:t20:" + tid + "1:y1:ee",                     // e too short
		"d1:eli201e1:xi3ee1:t20:" + tid + "1:y1:ee",               // e too long
		"d1:el1:x1:ye1:t20:" + tid + "1:y1:ee",                    // code not an int
		"d1:eli201ei2ee1:t20:" + tid + "1:y1:ee",                  // message not a string
		"d1:e3:abc1:t20:" + tid + "1:y1:ee",                       // e not a list
		"d1:eli99999999999999999999e1:xe1:t20:" + tid + "1:y1:ee", // code overflows
		"d1:t20:" + tid + "1:y1:ee",                               // no e
		"d1:ad2:id" + id + strings.Repeat("l", 40) + strings.Repeat("e", 40) + "e1:q4:ping1:t20:" + tid + "1:y1:qe",
	}
	for _, in := range tests {
		var m Msg
		err := m.Parse([]byte(in))
		if err == nil || errors.Is(err, ErrBadArgs) {
			t.Errorf("Parse(%q) = %v, want a drop error", in, err)
		}
	}
}

// Unknown envelope keys in sorted position are skipped, as the original ignores them.
func TestParseUnknownEnvelopeKey(t *testing.T) {
	id := str(strings.Repeat("i", 20))
	pkt := "d1:ad2:id" + id + "e1:q4:ping1:t20:" + string(refTID[:]) + "1:vd1:ai1ee1:y1:qe"
	var m Msg
	if err := m.Parse([]byte(pkt)); err != nil || m.Method != MethodPing {
		t.Errorf("Parse(%q) = %v, %+v", pkt, err, m)
	}
}

func TestJoinAddr(t *testing.T) {
	for _, tc := range []struct {
		ip string
		ok bool
	}{{"1.2.3.4", true}, {"255.255.255.255", true}, {"1.2.3", false}, {"1.2.3.4.5", false}, {"01.2.3.4", false},
		{"256.1.1.1", false}, {"1.2.3.4 ", false}, {"", false}, {"1..3.4", false},
		// A join over IPv6 reports an IPv6 address (the IPv6 extension).
		{"::1", true}, {"fd42:0:0:1::11", true}, {"2001:db8::", true}, {"::", true}, {"1:2:3:4:5:6:7:8", true},
		{"::ffff:1.2.3.4", true}, {"fe80::1%eth0", false}, {"1:2:3:4:5:6:7:8:9", false}, {"1::2::3", false},
		{":1::", false}, {"1:", false}, {"12345::", false}, {"1:2:3:4:5:6:7::8", false}, {"g::", false}, {"1.2.3.4::", false}} {
		m := Msg{Has: FieldIPAddr | FieldPort, IPAddr: []byte(tc.ip), Port: 80}
		ap, ok := m.JoinAddr()
		want := netip.AddrPort{}
		if a, err := netip.ParseAddr(tc.ip); err == nil {
			want = netip.AddrPortFrom(a.Unmap(), 80)
		}
		if ok != tc.ok || (ok && ap != want) {
			t.Errorf("JoinAddr(%q) = %v, %v", tc.ip, ap, ok)
		}
	}
}

func TestListViewsOutOfRange(t *testing.T) {
	var m Msg
	pkt, _ := AppendGetValueResp(nil, refTID, refID, [][]byte{[]byte("a")}, MaxPacketIPv4)
	if err := m.Parse(pkt); err != nil {
		t.Fatal(err)
	}
	for _, i := range []int{-1, 1, 5} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("Values.At(%d) did not panic", i)
				}
			}()
			m.Values.At(i)
		}()
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("Nodes.At(%d) did not panic", i)
				}
			}()
			m.Nodes.At(i)
		}()
	}
}
