package engine

import (
	"bytes"
	"fmt"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/apt-p2p/apt-p2p/wire"
)

// rawClient is a bare UDP socket speaking KRPC by hand.
type rawClient struct {
	t    testing.TB
	conn *net.UDPConn
	to   netip.AddrPort
	id   wire.ID
	buf  []byte
	msg  wire.Msg
	tid  wire.ID
}

func newRawClient(t testing.TB, to netip.AddrPort) *rawClient {
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	rc := &rawClient{t: t, conn: c, to: to, buf: make([]byte, 4096)}
	copy(rc.id[:], "raw-client-id-000000")
	return rc
}

func (rc *rawClient) nextTID() wire.ID {
	rc.tid[0]++
	if rc.tid[0] == 0 {
		rc.tid[1]++
	}
	return rc.tid
}

func (rc *rawClient) send(pkt []byte) {
	if _, err := rc.conn.WriteToUDPAddrPort(pkt, rc.to); err != nil {
		rc.t.Fatal(err)
	}
}

// recv waits for a reply and parses it; ok is false on timeout.
func (rc *rawClient) recv(d time.Duration) (*wire.Msg, bool) {
	rc.conn.SetReadDeadline(time.Now().Add(d))
	for {
		n, _, err := rc.conn.ReadFromUDPAddrPort(rc.buf)
		if err != nil {
			return nil, false
		}
		if rc.msg.Parse(rc.buf[:n]) == nil && rc.msg.Y != 'q' {
			return &rc.msg, true
		}
		// Ignore the node's own queries (its ping verifying us).
	}
}

func (rc *rawClient) call(pkt []byte) *wire.Msg {
	rc.send(pkt)
	m, ok := rc.recv(2 * time.Second)
	if !ok {
		rc.t.Fatalf("no reply to %q", pkt)
	}
	return m
}

func wantError(t *testing.T, m *wire.Msg, code int) {
	t.Helper()
	if m.Y != 'e' || m.ErrCode != int64(code) {
		t.Fatalf("got y=%c code %d (%s), want error %d", m.Y, m.ErrCode, m.ErrMsg, code)
	}
}

// §6.7 testUnknownMeth / testMalformedRequest, plus the token and
// response-size errors of §2.6.
func TestErrorReplies(t *testing.T) {
	cfg := testConfig()
	cfg.BootstrapNode = true
	n := startNode(t, cfg)
	mustJoin(t, n)
	rc := newRawClient(t, n.Addr())

	tid := rc.nextTID()
	unknown := fmt.Sprintf("d1:ad2:id20:%se1:q8:blahblah1:t20:%s1:y1:qe", rc.id[:], tid[:])
	wantError(t, rc.call([]byte(unknown)), wire.ErrCodeMethodUnknown)

	tid = rc.nextTID()
	extra := fmt.Sprintf("d1:ad3:foo3:bar2:id20:%se1:q4:ping1:t20:%s1:y1:qe", rc.id[:], tid[:])
	wantError(t, rc.call([]byte(extra)), wire.ErrCodeMalformedRequest)

	key := sha1Key("k")
	var badToken wire.ID
	wantError(t, rc.call(wire.AppendStoreValue(nil, rc.nextTID(), rc.id, key, []byte("v"), badToken)), wire.ErrCodeInvalidToken)

	// A valid token from find_node lets the store through.
	m := rc.call(wire.AppendFindNode(nil, rc.nextTID(), rc.id, key))
	if m.Y != 'r' || m.Has&wire.FieldToken == 0 {
		t.Fatalf("find_node reply without token: %+v", m)
	}
	tok := m.Token
	if m := rc.call(wire.AppendStoreValue(nil, rc.nextTID(), rc.id, key, []byte("v"), tok)); m.Y != 'r' {
		t.Fatalf("store with a valid token: y=%c %s", m.Y, m.ErrMsg)
	}

	// A stored value too large for any get_value reply gets 201 with the
	// reply's size, as the original answered (§2.8; wire/doc.go).
	big := bytes.Repeat([]byte("x"), 1450)
	bigKey := sha1Key("big")
	n.Do(func(c *Core, now time.Time) {
		if err := c.storeLocal(now, bigKey, big, netip.AddrPort{}); err != nil {
			t.Error(err)
		}
	})
	wantError(t, rc.call(wire.AppendGetValue(nil, rc.nextTID(), rc.id, bigKey, 0)), wire.ErrCodeServer)
	// The small value comes back.
	m = rc.call(wire.AppendGetValue(nil, rc.nextTID(), rc.id, key, 0))
	if m.Y != 'r' || m.Values.Len() != 1 || string(m.Values.At(0)) != "v" {
		t.Fatalf("get_value: %+v", m)
	}
}

// §6.7 testLongPackets: many values are cut to fit one datagram.
func TestLongReplyTruncated(t *testing.T) {
	cfg := testConfig()
	cfg.BootstrapNode = true
	n := startNode(t, cfg)
	mustJoin(t, n)
	key := sha1Key("many")
	n.Do(func(c *Core, now time.Time) {
		for i := 0; i < 200; i++ {
			c.storeLocal(now, key, []byte(fmt.Sprintf("value-%03d", i)), netip.AddrPort{})
		}
	})
	rc := newRawClient(t, n.Addr())
	rc.send(wire.AppendGetValue(nil, rc.nextTID(), rc.id, key, 0))
	rc.conn.SetReadDeadline(time.Now().Add(2 * time.Second))
	nb, _, err := rc.conn.ReadFromUDPAddrPort(rc.buf)
	if err != nil {
		t.Fatal(err)
	}
	if nb > wire.MaxPacketIPv4 || nb < wire.MaxPacketIPv4-20 {
		t.Fatalf("reply is %d bytes, want just under %d", nb, wire.MaxPacketIPv4)
	}
	var m wire.Msg
	if err := m.Parse(rc.buf[:nb]); err != nil || m.Values.Len() == 0 || m.Values.Len() >= 200 {
		t.Fatalf("parse %v, %d values", err, m.Values.Len())
	}
}

// Hostile input: garbage, truncated bencode, wrong types, oversized
// datagrams and 20 000 stores from one address. The node keeps answering
// and its storage stays within the configured bounds.
func TestHostileInput(t *testing.T) {
	cfg := testConfig()
	cfg.BootstrapNode = true
	n := startNode(t, cfg)
	mustJoin(t, n)
	rc := newRawClient(t, n.Addr())

	ping := wire.AppendPing(nil, rc.nextTID(), rc.id)
	tid := rc.nextTID()
	junk := [][]byte{
		[]byte("garbage"),
		{0xff, 0x00, 0x13},
		ping[:len(ping)-5], // truncated bencode
		[]byte(fmt.Sprintf("d1:ad2:idi5ee1:q4:ping1:t20:%s1:y1:qe", tid[:])),                                               // id is an int
		[]byte("d1:ad2:id20:01234567890123456789e1:q4:ping1:t3:abc1:y1:qe"),                                                // 3-byte TID
		[]byte(fmt.Sprintf("d1:rd2:id20:%se1:t20:%s1:y1:re", rc.id[:], tid[:])),                                            // reply to nothing
		bytes.Repeat([]byte("d"), 1500),                                                                                    // deeper than MaxDepth
		bytes.Repeat([]byte("l"), 60000),                                                                                   // deeper still, near the UDP maximum
		[]byte(fmt.Sprintf("d1:rd2:id20:%s1:x1500:%se1:t20:%s1:y1:re", rc.id[:], bytes.Repeat([]byte("r"), 1500), tid[:])), // reply over the packet limit
		[]byte(fmt.Sprintf("d1:ad2:id20:%se1:q4:ping1:t20:%s1:y1:xe", rc.id[:], tid[:])),                                   // unknown y
	}
	for _, j := range junk {
		rc.send(j)
	}
	// Only the ping whose id is an int gets an answer (204); the rest are dropped.
	errs := 0
	for {
		m, ok := rc.recv(300 * time.Millisecond)
		if !ok {
			break
		}
		if m.Y != 'e' || m.ErrCode != wire.ErrCodeMalformedRequest {
			t.Fatalf("unexpected reply to junk: %+v", m)
		}
		errs++
	}
	if errs != 1 {
		t.Fatalf("%d error replies to junk, want 1", errs)
	}

	// 20 000 stores from one address with a valid token, to many keys.
	m := rc.call(wire.AppendFindNode(nil, rc.nextTID(), rc.id, rc.id))
	tok := m.Token
	total := 20000
	if raceEnabled {
		total = 6000
	}
	replies := make(chan int, 1)
	go func() {
		got := 0
		buf := make([]byte, 2048)
		for {
			rc.conn.SetReadDeadline(time.Now().Add(time.Second))
			if _, _, err := rc.conn.ReadFromUDPAddrPort(buf); err != nil {
				replies <- got
				return
			}
			got++
		}
	}()
	var pkt []byte
	for i := 0; i < total; i++ {
		var key wire.ID
		copy(key[:], fmt.Sprintf("key-%08d", i%5000))
		pkt = wire.AppendStoreValue(pkt[:0], rc.nextTID(), rc.id, key, []byte(fmt.Sprintf("val-%08d-%s", i, bytes.Repeat([]byte("p"), 200))), tok)
		rc.send(pkt)
		if i%200 == 199 {
			time.Sleep(2 * time.Millisecond) // stay within the socket buffers
		}
	}
	got := <-replies
	s := n.Stats()
	if s.Values > cfg.MaxValuesPerIP || s.Values > Default().MaxValuesPerIP {
		t.Fatalf("%d values stored from one address, limit %d", s.Values, Default().MaxValuesPerIP)
	}
	if s.ValueBytes > s.Values*300 {
		t.Fatalf("value bytes %d for %d values", s.ValueBytes, s.Values)
	}
	if s.StoresRefused == 0 {
		t.Fatalf("no store was refused: %+v", s)
	}
	if s.Dropped[DropMalformed] < 5 || s.Dropped[DropOversize] < 1 || s.Dropped[DropUnknownTID] < 1 {
		t.Fatalf("drop counts %v", s.Dropped)
	}
	t.Logf("%d replies to %d stores; stored %d values (%d bytes), refused %d; dropped %v",
		got, total, s.Values, s.ValueBytes, s.StoresRefused, s.Dropped)
	// Still answering.
	rc2 := newRawClient(t, n.Addr())
	if m := rc2.call(wire.AppendPing(nil, rc2.nextTID(), rc2.id)); m.Y != 'r' {
		t.Fatalf("ping after the flood: %+v", m)
	}
}

// AptValidator refuses a value whose contact is not the storer, and a piece
// string under the wrong key.
func TestAptValidator(t *testing.T) {
	from := netip.MustParseAddrPort("1.2.3.4:5000")
	good := wire.AppendPeerValue(nil, &wire.PeerValue{Contact: netip.MustParseAddrPort("1.2.3.4:9977")})
	bad := wire.AppendPeerValue(nil, &wire.PeerValue{Contact: netip.MustParseAddrPort("5.6.7.8:9977")})
	key := sha1Key("file")
	if err := AptValidator(key, good, from); err != nil {
		t.Fatal(err)
	}
	if err := AptValidator(key, bad, from); err == nil {
		t.Fatal("third-party contact accepted")
	}
	if err := AptValidator(key, []byte("d1:xi1ee"), from); err == nil {
		t.Fatal("non-value accepted")
	}
	pieces := bytes.Repeat([]byte{7}, 100)
	ps := wire.AppendPieceString(nil, pieces)
	if err := AptValidator(sha1Key(string(pieces)), ps, from); err != nil {
		t.Fatal(err)
	}
	if err := AptValidator(key, ps, from); err == nil {
		t.Fatal("piece string under a foreign key accepted")
	}
}
