package wire

import (
	"bytes"
	"net/netip"
	"testing"
)

func TestReachRoundTrip(t *testing.T) {
	var tid, id, nonce, tok ID
	copy(tid[:], "transaction-id-00001")
	copy(id[:], "requester-node-id-01")
	copy(nonce[:], "nonce-nonce-nonce-01")
	copy(tok[:], "token-token-token-01")
	for _, a := range []ReachArgs{
		{ID: id, Nonce: nonce},
		{ID: id, Nonce: nonce, Port: 9977, Token: tok, Has: FieldToken},
	} {
		pkt := AppendReach(nil, tid, &a)
		var m Msg
		if err := m.Parse(pkt); err != nil || m.Y != 'q' || m.Method != MethodUnknown || string(m.MethodName) != ReachMethod || m.TID != tid {
			t.Fatalf("Parse(%q): %v %+v", pkt, err, m)
		}
		var got ReachArgs
		if err := ParseReachArgs(pkt, &got); err != nil || got != a {
			t.Fatalf("ParseReachArgs(%q) = %+v, %v; want %+v", pkt, got, err, a)
		}
	}
	seen := netip.MustParseAddrPort("198.51.100.7:5000")
	pkt := AppendReachResp(nil, tid, id, seen, tok, true)
	var m Msg
	if err := m.Parse(pkt); err != nil || m.Y != 'r' || m.ID != id || m.Token != tok {
		t.Fatalf("reply %q: %v %+v", pkt, err, m)
	}
	var rr ReachReply
	if err := ParseReachReply(pkt, &rr); err != nil || rr.Seen != seen || rr.Token != tok || !rr.TCP || rr.Has != FieldToken|FieldIPAddr {
		t.Fatalf("ParseReachReply(%q) = %+v, %v", pkt, rr, err)
	}
	// Over IPv6 the address seen is an 18-byte compact contact.
	seen6 := netip.MustParseAddrPort("[2001:db8::7]:5000")
	pkt = AppendReachResp(nil, tid, id, seen6, tok, false)
	rr = ReachReply{}
	if err := ParseReachReply(pkt, &rr); err != nil || rr.Seen != seen6 || rr.TCP || rr.Has != FieldToken|FieldIPAddr {
		t.Fatalf("ParseReachReply(%q) = %+v, %v", pkt, rr, err)
	}
	// The probe is an ordinary reply whose TID is the nonce.
	if err := m.Parse(AppendReachProbe(nil, nonce, id)); err != nil || m.Y != 'r' || m.TID != nonce {
		t.Fatalf("probe: %v %+v", err, m)
	}
}

func TestReachArgsMalformed(t *testing.T) {
	for _, pkt := range []string{
		"d1:ad2:id20:aaaaaaaaaaaaaaaaaaaae1:q5:reach1:t20:tttttttttttttttttttt1:y1:qe",                                            // no nonce
		"d1:ad2:id20:aaaaaaaaaaaaaaaaaaaa5:nonce3:abce1:q5:reach1:t20:tttttttttttttttttttt1:y1:qe",                                // short nonce
		"d1:ad2:id20:aaaaaaaaaaaaaaaaaaaa5:nonce20:nnnnnnnnnnnnnnnnnnnn4:porti0ee1:q5:reach1:t20:tttttttttttttttttttt1:y1:qe",     // port 0
		"d1:ad2:id20:aaaaaaaaaaaaaaaaaaaa5:nonce20:nnnnnnnnnnnnnnnnnnnn4:porti65536ee1:q5:reach1:t20:tttttttttttttttttttt1:y1:qe", // port too large
		"d1:ad2:id20:aaaaaaaaaaaaaaaaaaaa5:nonce20:nnnnnnnnnnnnnnnnnnnn4:port2:xxe1:q5:reach1:t20:tttttttttttttttttttt1:y1:qe",    // port not an int
		"d1:q5:reach1:t20:tttttttttttttttttttt1:y1:qe",
	} {
		var a ReachArgs
		if err := ParseReachArgs([]byte(pkt), &a); err == nil {
			t.Errorf("ParseReachArgs(%q) accepted %+v", pkt, a)
		}
	}
	// Unknown keys are skipped: a later version may add some.
	ok := "d1:ad2:id20:aaaaaaaaaaaaaaaaaaaa5:nonce20:nnnnnnnnnnnnnnnnnnnn4:zzzzi5ee1:q5:reach1:t20:tttttttttttttttttttt1:y1:qe"
	var a ReachArgs
	if err := ParseReachArgs([]byte(ok), &a); err != nil || string(a.Nonce[:]) != "nnnnnnnnnnnnnnnnnnnn" {
		t.Errorf("ParseReachArgs with an unknown key: %v %+v", err, a)
	}
}

// BEP 43: ro = 1 goes into the top-level dict in key order, Parse reports
// it, and the rest of the query is unchanged (an original peer, which reads
// t, y, q and a only, sees the same query).
func TestReadOnlyFlag(t *testing.T) {
	var tid, id ID
	copy(tid[:], "transaction-id-00001")
	copy(id[:], "requester-node-id-01")
	for _, q := range [][]byte{
		AppendPing(nil, tid, id),
		AppendFindNode(nil, tid, id, id),
		AppendStoreValue(nil, tid, id, id, []byte("value"), id),
		AppendReach(nil, tid, &ReachArgs{ID: id, Nonce: id}),
	} {
		var plain, ro Msg
		if err := plain.Parse(q); err != nil || plain.ReadOnly {
			t.Fatalf("plain %q: %v ro=%v", q, err, plain.ReadOnly)
		}
		p := AppendReadOnly(bytes.Clone(q))
		if err := Valid(p); err != nil {
			t.Fatalf("%q is not strict bencode: %v", p, err)
		}
		if err := ro.Parse(p); err != nil || !ro.ReadOnly {
			t.Fatalf("with ro %q: %v ro=%v", p, err, ro.ReadOnly)
		}
		ro.ReadOnly = false
		if !bytes.Contains(p, []byte("2:roi1e1:t20:")) || len(p) != len(q)+len(roFlag) {
			t.Errorf("ro not placed before t: %q", p)
		}
		if again := AppendReadOnly(bytes.Clone(p)); !bytes.Equal(again, p) {
			t.Errorf("ro added twice: %q", again)
		}
		if ro.Method != plain.Method || ro.TID != plain.TID || ro.ID != plain.ID {
			t.Errorf("ro changed the query: %+v vs %+v", ro, plain)
		}
	}
	// ro = 0 is not read-only.
	var m Msg
	if err := m.Parse([]byte("d1:ad2:id20:aaaaaaaaaaaaaaaaaaaae1:q4:ping2:roi0e1:t20:tttttttttttttttttttt1:y1:qe")); err != nil || m.ReadOnly {
		t.Fatalf("ro=0: %v %v", err, m.ReadOnly)
	}
}

func FuzzParseReach(f *testing.F) {
	var id ID
	f.Add(AppendReach(nil, id, &ReachArgs{ID: id, Nonce: id, Port: 80, Token: id, Has: FieldToken}))
	f.Add(AppendReachResp(nil, id, id, netip.MustParseAddrPort("1.2.3.4:5"), id, true))
	f.Fuzz(func(t *testing.T, b []byte) {
		var a ReachArgs
		var r ReachReply
		_ = ParseReachArgs(b, &a)
		_ = ParseReachReply(b, &r)
		var m Msg
		if m.Parse(b) == nil && m.Y == 'q' {
			p := AppendReadOnly(bytes.Clone(b))
			var m2 Msg
			if err := m2.Parse(p); err != nil || !m2.ReadOnly && !bytes.Equal(p, b) {
				t.Fatalf("AppendReadOnly(%q) = %q: %v", b, p, err)
			}
		}
	})
}
