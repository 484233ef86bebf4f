package engine

import (
	"bytes"
	"crypto/sha1"
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/apt-p2p/apt-p2p/wire"
)

// The tests in this file check the node against the original's formats
// (reference §2, §8.4), written out by hand from the reference rather than
// with the wire encoders, as an independently written peer would send and
// expect them. They pin the conformance defects an independent peer found.

// refID fills an ID with b (a readable test ID whose first byte orders it).
func refID(b byte) wire.ID {
	var id wire.ID
	for i := range id {
		id[i] = b
	}
	return id
}

// compactNode is the 26-byte compact node info of §2.4, by hand.
func compactNode(id wire.ID, ap netip.AddrPort) string {
	ip := ap.Addr().As4()
	return string(id[:]) + string(ip[:]) + string([]byte{byte(ap.Port() >> 8), byte(ap.Port())})
}

// joinedCore is a core joined through one bootstrap node (bootID at
// bootAddr, the far end of the ID space) that also holds peers which sent it
// requests and answered its verification pings, as a node on a live network
// does.
func joinedCore(t *testing.T, bootID wire.ID, bootAddr netip.AddrPort, peers map[wire.ID]netip.AddrPort) (*Core, *recordOutput, time.Time) {
	t.Helper()
	c, out := newTestCore(t, nil)
	now := time.Unix(1000, 0)
	c.Start(now, []netip.AddrPort{bootAddr})
	var m wire.Msg
	answer := func() {
		for _, p := range out.take() {
			if err := m.Parse(p.pkt); err != nil || m.Y != 'q' {
				continue
			}
			now = now.Add(10 * time.Millisecond)
			switch {
			case m.Method == wire.MethodJoin && p.to == bootAddr:
				c.HandlePacket(now, p.to, wire.AppendJoinResp(nil, m.TID, bootID, netip.MustParseAddrPort("8.8.4.4:9977")))
			case m.Method == wire.MethodFindNode && p.to == bootAddr:
				c.HandlePacket(now, p.to, wire.AppendFindNodeResp(nil, m.TID, bootID, nil, wire.ID{}))
			case m.Method == wire.MethodPing:
				for id, a := range peers {
					if a == p.to {
						c.HandlePacket(now, p.to, wire.AppendIDResp(nil, m.TID, id))
					}
				}
			}
		}
	}
	answer()
	answer()
	if !c.Joined() {
		t.Fatal("not joined through the bootstrap node")
	}
	var tid wire.ID
	for id, a := range peers {
		tid[0]++
		now = now.Add(10 * time.Millisecond)
		c.HandlePacket(now, a, wire.AppendPing(nil, tid, id))
		answer()
	}
	if got := c.Table().Len(); got != 1+len(peers) {
		t.Fatalf("table holds %d nodes, want %d", got, 1+len(peers))
	}
	out.take()
	return c, out, now
}

// Issue 11: nodes in find_node and find_value replies are sorted by XOR
// distance to the target even when the table holds the bootstrap node (it
// was listed first, farthest or not, because it was the only node not on
// NAT probation).
func TestReplyNodesSortedWithBootstrapNode(t *testing.T) {
	bootID, bootAddr := refID(0xf0), netip.MustParseAddrPort("9.9.9.9:9977")
	peers := map[wire.ID]netip.AddrPort{
		refID(0x01): netip.MustParseAddrPort("11.0.0.1:6001"),
		refID(0x02): netip.MustParseAddrPort("11.0.0.2:6002"),
		refID(0x40): netip.MustParseAddrPort("11.0.0.3:6003"),
	}
	c, out, now := joinedCore(t, bootID, bootAddr, peers)
	asker, askerID := netip.MustParseAddrPort("12.0.0.1:7000"), refID(0x77)
	tid := refID(0x99)
	target := refID(0x00)
	want := compactNode(refID(0x01), peers[refID(0x01)]) + compactNode(refID(0x02), peers[refID(0x02)]) +
		compactNode(refID(0x40), peers[refID(0x40)]) + compactNode(bootID, bootAddr)
	var nodes string
	for i := 0; i < 4; i++ {
		nodes += "26:" + want[26*i:26*(i+1)]
	}

	req := fmt.Sprintf("d1:ad2:id20:%s6:target20:%se1:q9:find_node1:t20:%s1:y1:qe", askerID[:], target[:], tid[:])
	c.HandlePacket(now, asker, []byte(req))
	got := repliesTo(out, asker)
	if len(got) != 1 {
		t.Fatalf("%d replies to find_node", len(got))
	}
	var m wire.Msg
	if err := m.Parse(got[0]); err != nil {
		t.Fatal(err)
	}
	self := c.ID()
	wantResp := fmt.Sprintf("d1:rd2:id20:%s5:nodesl%se5:token20:%se1:t20:%s1:y1:re", self[:], nodes, m.Token[:], tid[:])
	if string(got[0]) != wantResp {
		t.Fatalf("find_node reply\n got %q\nwant %q", got[0], wantResp)
	}

	req = fmt.Sprintf("d1:ad2:id20:%s3:key20:%se1:q10:find_value1:t20:%s1:y1:qe", askerID[:], target[:], tid[:])
	c.HandlePacket(now, asker, []byte(req))
	got = repliesTo(out, asker)
	wantResp = fmt.Sprintf("d1:rd2:id20:%s5:nodesl%se3:numi0ee1:t20:%s1:y1:re", self[:], nodes, tid[:])
	if len(got) != 1 || string(got[0]) != wantResp {
		t.Fatalf("find_value reply\n got %q\nwant %q", got, wantResp)
	}
}

// repliesTo takes the recorded datagrams and returns the replies (not
// queries) sent to a.
func repliesTo(out *recordOutput, a netip.AddrPort) [][]byte {
	var r [][]byte
	var m wire.Msg
	for _, p := range out.take() {
		if p.to == a && m.Parse(p.pkt) == nil && m.Y != 'q' {
			r = append(r, p.pkt)
		}
	}
	return r
}

// Issue 11: error 203 names the method as the original does, and a hostile
// long name cannot make the reply exceed the packet limit.
func TestUnknownMethodNamesIt(t *testing.T) {
	c, out := newTestCore(t, func(c *Config) { c.BootstrapNode = true })
	now := time.Unix(1000, 0)
	c.Start(now, nil)
	c.Tick(now.Add(5 * time.Second))
	asker, askerID, tid := netip.MustParseAddrPort("12.0.0.1:7000"), refID(0x77), refID(0x99)
	req := fmt.Sprintf("d1:ad2:id20:%s9:info_hash20:%se1:q9:get_peers1:t20:%s1:y1:qe", askerID[:], tid[:], tid[:])
	c.HandlePacket(now, asker, []byte(req))
	want := fmt.Sprintf("d1:eli203e24:unknown method get_peerse1:t20:%s1:y1:ee", tid[:])
	if got := repliesTo(out, asker); len(got) != 1 || string(got[0]) != want {
		t.Fatalf("203 reply\n got %q\nwant %q", got, want)
	}

	long := bytes.Repeat([]byte("m"), 60000)
	req = fmt.Sprintf("d1:ad2:id20:%se1:q%d:%s1:t20:%s1:y1:qe", askerID[:], len(long), long, tid[:])
	c.HandlePacket(now, asker, []byte(req))
	got := repliesTo(out, asker)
	if len(got) != 1 || len(got[0]) > wire.MaxPacketIPv6 {
		t.Fatalf("reply to a 60000-byte method name: %d replies, %d bytes", len(got), len(got[0]))
	}
	var m wire.Msg
	if err := m.Parse(got[0]); err != nil || m.ErrCode != wire.ErrCodeMethodUnknown || !bytes.HasPrefix(m.ErrMsg, []byte("unknown method mmmm")) {
		t.Fatalf("reply %q: %v", got[0], err)
	}
}

// originalStore is an original peer's store_value request (§2.5, §2.8), by
// hand: 163 + 20·n bytes for a piece string of n ≥ 50 pieces.
func originalStore(id, key, token, tid wire.ID, value []byte) []byte {
	return fmt.Appendf(nil, "d1:ad2:id20:%s3:key20:%s5:token20:%s5:value%d:%se1:q11:store_value1:t20:%s1:y1:qe",
		id[:], key[:], token[:], len(value), value, tid[:])
}

// pieceValue is the original's {'t': piece string} value of n pieces and its
// key, SHA1 of the piece string (§3.2).
func pieceValue(n int) (wire.ID, []byte) {
	pieces := make([]byte, 20*n)
	for i := range pieces {
		pieces[i] = byte(i*7 + n)
	}
	return sha1.Sum(pieces), fmt.Appendf(nil, "d1:t%d:%se", len(pieces), pieces)
}

// Issue 11: an original peer's store_value requests of 66 to 70 pieces
// (1483 to 1563 bytes) were dropped as oversized. Sent over a real UDP
// socket to a running node, they are stored. A 69-piece value comes back
// in a get_value reply of 1471 bytes; a 70-piece one cannot fit any reply
// (1491 bytes): find_value counts it, get_value answers error 201 with the
// size as the original did, and the node's own Get reads it.
func TestOriginalPeerStoresSeventyPieces(t *testing.T) {
	cfg := testConfig()
	cfg.BootstrapNode = true
	cfg.Validate = AptValidator
	n := startNode(t, cfg)
	mustJoin(t, n)
	rc := newRawClient(t, n.Addr())
	self := n.ID()

	tid := rc.nextTID()
	m := rc.call(fmt.Appendf(nil, "d1:ad2:id20:%s6:target20:%se1:q9:find_node1:t20:%s1:y1:qe", rc.id[:], rc.id[:], tid[:]))
	if m.Has&wire.FieldToken == 0 {
		t.Fatalf("find_node reply without token: %+v", m)
	}
	token := m.Token

	for _, pieces := range []int{69, 70} {
		key, value := pieceValue(pieces)
		req := originalStore(rc.id, key, token, rc.nextTID(), value)
		if len(req) != 163+20*pieces {
			t.Fatalf("%d-piece store_value is %d bytes, want %d", pieces, len(req), 163+20*pieces)
		}
		tid := rc.tid
		rc.send(req)
		if !rc.recvRaw(t, fmt.Sprintf("d1:rd2:id20:%se1:t20:%s1:y1:re", self[:], tid[:])) {
			t.Fatalf("%d pieces: store_value of %d bytes not acknowledged", pieces, len(req))
		}

		tid = rc.nextTID()
		rc.send(fmt.Appendf(nil, "d1:ad2:id20:%s3:key20:%se1:q10:find_value1:t20:%s1:y1:qe", rc.id[:], key[:], tid[:]))
		if m, ok := rc.recv(2 * time.Second); !ok || m.Y != 'r' || m.Num != 1 {
			t.Fatalf("%d pieces: find_value: %+v", pieces, m)
		}

		tid = rc.nextTID()
		rc.send(fmt.Appendf(nil, "d1:ad2:id20:%s3:key20:%s3:numi0ee1:q9:get_value1:t20:%s1:y1:qe", rc.id[:], key[:], tid[:]))
		var want string
		if pieces == 69 {
			want = fmt.Sprintf("d1:rd2:id20:%s6:valuesl%d:%see1:t20:%s1:y1:re", self[:], len(value), value, tid[:])
			if len(want) != 91+20*pieces || len(want) > wire.MaxPacketIPv4 {
				t.Fatalf("expected reply is %d bytes", len(want))
			}
		} else {
			resp := fmt.Sprintf("response was %d bytes", 91+20*pieces)
			want = fmt.Sprintf("d1:eli201e%d:%se1:t20:%s1:y1:ee", len(resp), resp, tid[:])
		}
		if !rc.recvRaw(t, want) {
			t.Fatalf("%d pieces: get_value reply is not %q", pieces, want)
		}

		vals, err := n.GetValues(ctxT(t, 10*time.Second), key)
		if err != nil || len(vals) != 1 || !bytes.Equal(vals[0], value) {
			t.Fatalf("%d pieces: the node's own get: %d values, %v", pieces, len(vals), err)
		}
	}
	if s := n.Stats(); s.Dropped[DropOversize] != 0 || s.StoresAccepted != 2 {
		t.Fatalf("oversize drops %d, stores accepted %d", s.Dropped[DropOversize], s.StoresAccepted)
	}
}

// recvRaw waits for the next reply datagram (skipping the node's own
// queries) and reports whether it is exactly want.
func (rc *rawClient) recvRaw(t *testing.T, want string) bool {
	t.Helper()
	rc.conn.SetReadDeadline(time.Now().Add(2 * time.Second))
	for {
		n, _, err := rc.conn.ReadFromUDPAddrPort(rc.buf)
		if err != nil {
			t.Logf("no reply: %v", err)
			return false
		}
		if rc.msg.Parse(rc.buf[:n]) == nil && rc.msg.Y == 'q' {
			continue
		}
		if string(rc.buf[:n]) != want {
			t.Logf("got  %q", rc.buf[:n])
			return false
		}
		return true
	}
}

// Requests up to the UDP maximum are parsed (bounded) and answered; a reply
// larger than the packet limit is still dropped as no conforming peer sends
// one.
func TestLargeRequestsAcceptedLargeRepliesDropped(t *testing.T) {
	c, out := newTestCore(t, func(c *Config) { c.BootstrapNode = true })
	now := time.Unix(1000, 0)
	c.Start(now, nil)
	c.Tick(now.Add(5 * time.Second))
	asker, askerID, tid := netip.MustParseAddrPort("12.0.0.1:7000"), refID(0x77), refID(0x99)
	// A ping padded with an unknown method's long argument: 203, answered.
	pad := bytes.Repeat([]byte("p"), 65000)
	req := fmt.Appendf(nil, "d1:ad2:id20:%s3:padi0e1:x%d:%se1:q4:pong1:t20:%s1:y1:qe", askerID[:], len(pad), pad, tid[:])
	c.HandlePacket(now, asker, req)
	if got := repliesTo(out, asker); len(got) != 1 {
		t.Fatalf("%d replies to a %d-byte request", len(got), len(req))
	}
	reply := fmt.Appendf(nil, "d1:rd2:id20:%s1:x%d:%se1:t20:%s1:y1:re", askerID[:], 1500, bytes.Repeat([]byte("r"), 1500), tid[:])
	c.HandlePacket(now, asker, reply)
	if s := c.Stats(now); s.Dropped[DropOversize] != 1 {
		t.Fatalf("oversized reply: drops %v", s.Dropped)
	}
}
