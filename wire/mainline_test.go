package wire

import (
	"bytes"
	"crypto/sha1"
	"net/netip"
	"strings"
	"testing"
)

// The examples of BEP 5, byte for byte, both ways.
func TestMainlineBEP5Examples(t *testing.T) {
	var a, b ID
	copy(a[:], "abcdefghij0123456789")
	copy(b[:], "mnopqrstuvwxyz123456")
	h := &MLHeader{TID: []byte("aa")}
	cases := []struct {
		name string
		got  []byte
		want string
	}{
		{"ping", AppendMLPing(nil, h, a), "d1:ad2:id20:abcdefghij0123456789e1:q4:ping1:t2:aa1:y1:qe"},
		{"ping response", AppendMLResp(nil, h, netip.AddrPort{}, &MLResp{Self: b}), "d1:rd2:id20:mnopqrstuvwxyz123456e1:t2:aa1:y1:re"},
		{"find_node", AppendMLFindNode(nil, h, a, b), "d1:ad2:id20:abcdefghij01234567896:target20:mnopqrstuvwxyz123456e1:q9:find_node1:t2:aa1:y1:qe"},
		{"get_peers", AppendMLGetPeers(nil, h, a, b), "d1:ad2:id20:abcdefghij01234567899:info_hash20:mnopqrstuvwxyz123456e1:q9:get_peers1:t2:aa1:y1:qe"},
		{"get_peers values", AppendMLResp(nil, h, netip.AddrPort{}, &MLResp{Self: a, Token: []byte("aoeusnth"),
			Peers: []netip.AddrPort{peerOf("axje.u"), peerOf("idhtnm")}}),
			"d1:rd2:id20:abcdefghij01234567895:token8:aoeusnth6:valuesl6:axje.u6:idhtnmee1:t2:aa1:y1:re"},
		{"error", AppendMLError(nil, h, MLErrGeneric, "A Generic Error Ocurred"), "d1:eli201e23:A Generic Error Ocurrede1:t2:aa1:y1:ee"},
	}
	for _, c := range cases {
		if string(c.got) != c.want {
			t.Errorf("%s:\n got %q\nwant %q", c.name, c.got, c.want)
		}
		var m MLMsg
		if err := m.Parse([]byte(c.want)); err != nil || string(m.TID) != "aa" {
			t.Errorf("%s: parse %v", c.name, err)
		}
	}
	// BEP 5's announce_peer example (implied_port 1, so no port needed).
	ann := "d1:ad2:id20:abcdefghij012345678912:implied_porti1e9:info_hash20:mnopqrstuvwxyz1234564:porti6881e5:token8:aoeusnthe1:q13:announce_peer1:t2:aa1:y1:qe"
	var m MLMsg
	if err := m.Parse([]byte(ann)); err != nil || m.Method != MLAnnouncePeer || !m.ImpliedPort || m.Port != 6881 ||
		string(m.Token) != "aoeusnth" || m.InfoHash != b || m.ID != a {
		t.Fatalf("announce_peer: %v %+v", err, m)
	}
	// Ours: implied_port 0 and the given port.
	got := AppendMLAnnounce(nil, h, a, b, 9977, []byte("aoeusnth"))
	want := "d1:ad2:id20:abcdefghij012345678912:implied_porti0e9:info_hash20:mnopqrstuvwxyz1234564:porti9977e5:token8:aoeusnthe1:q13:announce_peer1:t2:aa1:y1:qe"
	if string(got) != want {
		t.Fatalf("announce:\n got %q\nwant %q", got, want)
	}
	// The get_peers reply's peers.
	if err := m.Parse(cases[4].got); err != nil || m.Peers.Len() != 2 {
		t.Fatalf("values: %v %d", err, m.Peers.Len())
	}
	var peers []netip.AddrPort
	for p := range m.Peers.All {
		peers = append(peers, p)
	}
	if peers[0] != peerOf("axje.u") || peers[1] != peerOf("idhtnm") {
		t.Fatalf("peers %v", peers)
	}
}

func peerOf(s string) netip.AddrPort {
	ap, err := ParseCompactPeer([]byte(s))
	if err != nil {
		panic(err)
	}
	return ap
}

// Replies carry the requester's address (BEP 42), compact nodes as one
// string, the client version; BEP 44 items round-trip.
func TestMainlineRoundTrip(t *testing.T) {
	h := &MLHeader{TID: []byte{1, 2, 3, 4}, Version: MLVersion}
	to := netip.MustParseAddrPort("1.2.3.4:6881")
	nodes := testNodes(8)
	item := []byte("11:hello world")
	pkt := AppendMLResp(nil, h, to, &MLResp{Self: idOf(1), Nodes: nodes, Token: []byte("12345678"), V: item})
	var m MLMsg
	if err := m.Parse(pkt); err != nil {
		t.Fatal(err)
	}
	if !m.HasIP || m.IP != to || m.Nodes.Len() != 8 || !bytes.Equal(m.V, item) || string(m.Version) != string(MLVersion) || m.Y != 'r' {
		t.Fatalf("%+v", m)
	}
	for i := range 8 {
		if m.Nodes.At(i) != nodes[i] {
			t.Fatalf("node %d: %v want %v", i, m.Nodes.At(i), nodes[i])
		}
	}
	put := AppendMLPut(nil, &MLHeader{TID: []byte("xy"), ReadOnly: true}, idOf(2), []byte("tok"), item)
	if err := m.Parse(put); err != nil || m.Method != MLPut || !bytes.Equal(m.V, item) || !m.ReadOnly || string(m.Token) != "tok" {
		t.Fatalf("put: %v %+v", err, m)
	}
	// Largest reply: 8 nodes, a token, a 1000-byte item, to IPv6 limits.
	big := append([]byte("996:"), bytes.Repeat([]byte("x"), 996)...)
	full := AppendMLResp(nil, &MLHeader{TID: make([]byte, MaxMLTIDLen), Version: MLVersion}, to,
		&MLResp{Self: idOf(1), Nodes: nodes, Token: make([]byte, MaxMLTokenLen), V: big})
	if len(full) > MaxPacketIPv6 {
		t.Fatalf("largest get reply %d bytes", len(full))
	}
	many := make([]netip.AddrPort, 200)
	for i := range many {
		many[i] = netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)}), 80)
	}
	full = AppendMLResp(nil, &MLHeader{TID: make([]byte, MaxMLTIDLen), Version: MLVersion}, to,
		&MLResp{Self: idOf(1), Nodes: nodes, Token: make([]byte, MaxMLTokenLen), Peers: many})
	if err := m.Parse(full); err != nil || m.Peers.Len() != MaxMLPeers || len(full) > MaxPacketIPv6 {
		t.Fatalf("get_peers reply with 200 peers: %v, %d peers, %d bytes", err, m.Peers.Len(), len(full))
	}
}

// What mainline clients send beyond the minimum is tolerated; what is
// wrong is refused.
func TestMainlineParseLeniencyAndErrors(t *testing.T) {
	id := strings.Repeat("i", 20)
	for _, c := range []struct {
		name, pkt string
		err       error
		method    MLMethod
	}{
		{"unsorted envelope and extra keys", "d1:t2:aa1:y1:q1:q9:get_peers1:ad9:info_hash20:" + id + "2:id20:" + id + "6:noseedi1e4:wantl2:n4ee1:v4:LT01e", nil, MLGetPeers},
		{"unknown method", "d1:ad2:id20:" + id + "e1:q17:sample_infohashes1:t2:aa1:y1:qe", nil, MLUnknown},
		{"missing info_hash", "d1:ad2:id20:" + id + "e1:q9:get_peers1:t2:aa1:y1:qe", ErrMLArgs, MLGetPeers},
		{"short id", "d1:ad2:id3:abce1:q4:ping1:t2:aa1:y1:qe", ErrMLArgs, MLPing},
		{"announce without port", "d1:ad2:id20:" + id + "9:info_hash20:" + id + "5:token2:abe1:q13:announce_peer1:t2:aa1:y1:qe", ErrMLArgs, MLAnnouncePeer},
		{"empty tid", "d1:ad2:id20:" + id + "e1:q4:ping1:t0:1:y1:qe", ErrMLEnvelope, 0},
		{"long tid", "d1:ad2:id20:" + id + "e1:q4:ping1:t33:" + strings.Repeat("t", 33) + "1:y1:qe", ErrMLEnvelope, 0},
		{"nodes not a multiple of 26", "d1:rd2:id20:" + id + "5:nodes3:abce1:t2:aa1:y1:re", nil, 0},
		{"trailing", "d1:rd2:id20:" + id + "e1:t2:aa1:y1:rex", ErrTrailing, 0},
	} {
		var m MLMsg
		err := m.Parse([]byte(c.pkt))
		if err != c.err || m.Method != c.method {
			t.Errorf("%s: err %v method %v, want %v %v", c.name, err, m.Method, c.err, c.method)
		}
	}
}

// The info-hash of a file is SHA-1("apt-p2p file " + key), computed here by
// hand for the reference's key.
func TestMainlineInfoHash(t *testing.T) {
	k := mustID("caecb80c00e707f87e5d298f9de55f42ff1ac421")
	want := sha1.Sum(append([]byte("apt-p2p file "), k[:]...))
	if got := MainlineInfoHash(k); got != want || got == k {
		t.Fatalf("%s", got)
	}
}
