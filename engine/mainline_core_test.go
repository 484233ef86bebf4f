package engine

import (
	"bytes"
	"crypto/sha1"
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/apt-p2p/apt-p2p/kbucket"
	"github.com/apt-p2p/apt-p2p/wire"
)

// mlHarness is a MainlineCore on a fake clock with a recorded output.
type mlHarness struct {
	t   *testing.T
	c   *MainlineCore
	out *recordOutput
	now time.Time
	tid uint16
}

func newMLHarness(t *testing.T, mod func(*MainlineConfig)) *mlHarness {
	cfg := MainlineDefault()
	if mod != nil {
		mod(&cfg)
	}
	var seed [32]byte
	seed[0] = 42
	cfg.Seed = &seed
	out := &recordOutput{}
	h := &mlHarness{t: t, c: NewMainline(cfg, out), out: out, now: time.Unix(1000, 0)}
	h.c.Start(h.now, nil)
	return h
}

func (h *mlHarness) header() *wire.MLHeader {
	h.tid++
	return &wire.MLHeader{TID: []byte{byte(h.tid >> 8), byte(h.tid)}}
}

// query sends pkt from addr and returns the replies to addr.
func (h *mlHarness) query(from netip.AddrPort, pkt []byte) []*wire.MLMsg {
	h.c.HandlePacket(h.now, from, pkt)
	var r []*wire.MLMsg
	for _, p := range h.out.take() {
		if len(p.pkt) > wire.MaxPacketIPv4 {
			h.t.Fatalf("reply of %d bytes", len(p.pkt))
		}
		m := new(wire.MLMsg)
		if p.to == from && m.Parse(p.pkt) == nil && m.Y != 'q' {
			r = append(r, m)
		}
	}
	return r
}

func (h *mlHarness) one(from netip.AddrPort, pkt []byte) *wire.MLMsg {
	h.t.Helper()
	r := h.query(from, pkt)
	if len(r) != 1 {
		h.t.Fatalf("%d replies to %q", len(r), pkt)
	}
	return r[0]
}

func mlID(s string) wire.ID {
	var id wire.ID
	copy(id[:], s)
	return id
}

// Queries get the BEP 5 answers and errors; announces need a token from
// get_peers for the same IP; implied_port takes the UDP source port.
func TestMainlineQueries(t *testing.T) {
	h := newMLHarness(t, nil)
	a := netip.MustParseAddrPort("8.8.8.8:6881")
	b := netip.MustParseAddrPort("9.9.9.9:6881")
	ida := mlID("node-a")
	ih := mlID("infohash")
	if m := h.one(a, wire.AppendMLPing(nil, h.header(), ida)); m.Y != 'r' || m.ID != h.c.ID() || !m.HasIP || m.IP != a {
		t.Fatalf("ping: %+v", m)
	}
	m := h.one(a, []byte("d1:ad2:id20:node-a\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00e1:q6:vote_11:t2:xx1:y1:qe"))
	if m.Y != 'e' || m.ErrCode != wire.MLErrMethodUnknown {
		t.Fatalf("unknown method: %+v", m)
	}
	m = h.one(a, []byte("d1:ad2:id20:node-a\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00e1:q9:get_peers1:t2:xx1:y1:qe"))
	if m.Y != 'e' || m.ErrCode != wire.MLErrProtocol {
		t.Fatalf("missing info_hash: %+v", m)
	}
	// A token from get_peers is valid for that IP only.
	gp := h.one(a, wire.AppendMLGetPeers(nil, h.header(), ida, ih))
	if len(gp.Token) != wire.MLTokenLen {
		t.Fatalf("get_peers token %q", gp.Token)
	}
	tok := bytes.Clone(gp.Token)
	if m := h.one(b, wire.AppendMLAnnounce(nil, h.header(), mlID("node-b"), ih, 80, tok)); m.Y != 'e' || m.ErrCode != wire.MLErrProtocol {
		t.Fatalf("announce with another IP's token: %+v", m)
	}
	if m := h.one(a, wire.AppendMLAnnounce(nil, h.header(), ida, ih, 9977, tok)); m.Y != 'r' {
		t.Fatalf("announce: %+v", m)
	}
	implied := fmt.Appendf(nil, "d1:ad2:id20:%s12:implied_porti1e9:info_hash20:%s4:porti1e5:token8:%se1:q13:announce_peer1:t2:zz1:y1:qe", ida[:], ih[:], tok)
	if m := h.one(a, implied); m.Y != 'r' {
		t.Fatalf("implied_port announce: %+v", m)
	}
	gp = h.one(b, wire.AppendMLGetPeers(nil, h.header(), mlID("node-b"), ih))
	var peers []netip.AddrPort
	for p := range gp.Peers.All {
		peers = append(peers, p)
	}
	if len(peers) != 2 || peers[0] != a || peers[1] != netip.MustParseAddrPort("8.8.8.8:9977") {
		t.Fatalf("get_peers values %v", peers)
	}
	// The token still works after one rotation, not after three.
	h.now = h.now.Add(6 * time.Minute)
	h.c.Tick(h.now)
	if m := h.one(a, wire.AppendMLAnnounce(nil, h.header(), ida, ih, 9977, tok)); m.Y != 'r' {
		t.Fatalf("announce with the previous secret's token: %+v", m)
	}
	for range 3 {
		h.now = h.now.Add(6 * time.Minute)
		h.c.Tick(h.now)
	}
	if m := h.one(a, wire.AppendMLAnnounce(nil, h.header(), ida, ih, 9977, tok)); m.Y != 'e' {
		t.Fatalf("announce with an expired token: %+v", m)
	}
	// Announces expire after PeerExpire.
	h.now = h.now.Add(31 * time.Minute)
	h.c.Tick(h.now)
	if s := h.c.Stats(); s.Peers != 0 || s.InfoHashes != 0 {
		t.Fatalf("expired announces kept: %+v", s)
	}
}

// BEP 44: immutable items are stored under SHA-1(v); items over 1000
// bytes and mutable puts are refused.
func TestMainlineItems(t *testing.T) {
	h := newMLHarness(t, nil)
	a := netip.MustParseAddrPort("8.8.8.8:6881")
	ida := mlID("node-a")
	item := []byte("11:hello world")
	target := wire.ID(sha1Sum(item))
	g := h.one(a, wire.AppendMLGet(nil, h.header(), ida, target))
	if g.Has&wire.MLFieldV != 0 || len(g.Token) == 0 {
		t.Fatalf("get before put: %+v", g)
	}
	tok := bytes.Clone(g.Token)
	if m := h.one(a, wire.AppendMLPut(nil, h.header(), ida, tok, item)); m.Y != 'r' {
		t.Fatalf("put: %+v", m)
	}
	if g := h.one(a, wire.AppendMLGet(nil, h.header(), ida, target)); !bytes.Equal(g.V, item) {
		t.Fatalf("get: %q", g.V)
	}
	big := append([]byte("1000:"), bytes.Repeat([]byte("x"), 1000)...)
	if m := h.one(a, wire.AppendMLPut(nil, h.header(), ida, tok, big)); m.Y != 'e' || m.ErrCode != wire.MLErrProtocol {
		t.Fatalf("1005-byte item: %+v", m)
	}
	mutable := fmt.Appendf(nil, "d1:ad2:id20:%s1:k32:%s3:seqi1e3:sig64:%s5:token8:%s1:v1:xe1:q3:put1:t2:mm1:y1:qe",
		ida[:], bytes.Repeat([]byte("k"), 32), bytes.Repeat([]byte("s"), 64), tok)
	if m := h.one(a, mutable); m.Y != 'e' || m.ErrCode != wire.MLErrProtocol {
		t.Fatalf("mutable put: %+v", m)
	}
	if s := h.c.Stats(); s.Items != 1 {
		t.Fatalf("%d items", s.Items)
	}
}

// Hostile input: a flood from one address is rate limited while others are
// still answered; stores from one address are bounded; read-only nodes and
// (with EnforceNodeID) nodes with IDs BEP 42 does not allow stay out of the
// table; garbage is dropped and counted.
func TestMainlineHostile(t *testing.T) {
	h := newMLHarness(t, func(c *MainlineConfig) { c.EnforceNodeID = true; c.MaxPerIP = 20 })
	flood := netip.MustParseAddrPort("6.6.6.6:1000")
	answered := 0
	for i := range 1000 {
		var id wire.ID
		copy(id[:], fmt.Sprintf("flood-%d", i))
		answered += len(h.query(flood, wire.AppendMLPing(nil, h.header(), id)))
	}
	s := h.c.Stats()
	if answered > int(MainlineDefault().RateBurst)+1 || s.RateLimited < 800 {
		t.Fatalf("%d of 1000 flood pings answered, %d rate limited", answered, s.RateLimited)
	}
	if r := h.query(netip.MustParseAddrPort("7.7.7.7:1000"), wire.AppendMLPing(nil, h.header(), mlID("other"))); len(r) != 1 {
		t.Fatal("another address is not answered during the flood")
	}
	// Refill: one second later the flooder is answered again.
	h.now = h.now.Add(time.Second)
	if r := h.query(flood, wire.AppendMLPing(nil, h.header(), mlID("flood-x"))); len(r) != 1 {
		t.Fatal("the limit does not refill")
	}

	// Stores from one address: at most MaxPerIP.
	src := netip.MustParseAddrPort("5.5.5.5:1000")
	tok := bytes.Clone(h.one(src, wire.AppendMLGetPeers(nil, h.header(), mlID("storer"), mlID("x"))).Token)
	for i := range 50 {
		h.now = h.now.Add(100 * time.Millisecond)
		h.query(src, wire.AppendMLAnnounce(nil, h.header(), mlID("storer"), mlID(fmt.Sprintf("hash-%d", i)), 80, tok))
	}
	if s := h.c.Stats(); s.Peers != 20 || s.Refused != 30 {
		t.Fatalf("one address stored %d announces (%d refused), limit 20", s.Peers, s.Refused)
	}

	// A read-only querier is answered but never pinged nor added.
	h.out.take()
	ro := netip.MustParseAddrPort("4.4.4.4:1000")
	roID := wire.BEP42ID(mlID("read-only"), ro.Addr(), 3)
	m := h.one(ro, wire.AppendMLPing(nil, &wire.MLHeader{TID: []byte("ro"), ReadOnly: true}, roID))
	if m.Y != 'r' || len(h.out.pkts) != 0 {
		t.Fatalf("read-only ping: %+v, %d datagrams", m, len(h.out.pkts))
	}
	// A querier with a valid BEP 42 ID is verified (pinged); one without is not.
	refused := h.c.Stats().BEP42Refused
	h.query(netip.MustParseAddrPort("3.3.3.3:1000"), wire.AppendMLPing(nil, h.header(), mlID("no BEP 42")))
	if len(h.out.take()) != 0 {
		t.Fatal("a node whose ID BEP 42 forbids was pinged for the table")
	}
	good := netip.MustParseAddrPort("2.2.2.2:1000")
	h.c.HandlePacket(h.now, good, wire.AppendMLPing(nil, h.header(), wire.BEP42ID(mlID("good"), good.Addr(), 5)))
	if sent := h.out.take(); len(sent) != 2 { // the reply and our verification ping
		t.Fatalf("%d datagrams for a valid BEP 42 node", len(sent))
	}
	if s := h.c.Stats(); s.ReadOnlySeen != 1 || s.BEP42Refused != refused+1 {
		t.Fatalf("read-only %d, BEP 42 refused %d (before %d)", s.ReadOnlySeen, s.BEP42Refused, refused)
	}

	// Garbage and unsolicited replies are dropped and counted.
	for _, junk := range [][]byte{[]byte("garbage"), []byte("d1:t0:1:y1:qe"), bytes.Repeat([]byte("l"), 5000),
		wire.AppendMLResp(nil, &wire.MLHeader{TID: []byte("zzzz")}, good, &wire.MLResp{Self: mlID("x")})} {
		if r := h.query(netip.MustParseAddrPort("1.1.1.1:1000"), junk); len(r) != 0 {
			t.Fatalf("reply to junk %q", junk)
		}
	}
	if s := h.c.Stats(); s.Dropped[DropMalformed] != 3 || s.Dropped[DropUnknownTID] != 1 {
		t.Fatalf("drops %v", s.Dropped)
	}
}

// BEP 42: once three replies agree on our public address, our ID becomes
// one BEP 42 allows there, and the table keeps its nodes.
func TestMainlineAdoptsBEP42ID(t *testing.T) {
	h := newMLHarness(t, nil)
	ext := netip.MustParseAddrPort("203.0.113.7:6881")
	for i := range 5 {
		a := netip.AddrPortFrom(netip.AddrFrom4([4]byte{198, 51, 100, byte(i + 1)}), 6881)
		h.c.Table().Insert(kbucket.Node{ID: mlID(fmt.Sprintf("known-%d", i)), Addr: a}, true, h.now)
	}
	before := h.c.ID()
	if wire.BEP42Valid(before, ext.Addr()) {
		t.Fatal("the random ID is already valid; change the seed")
	}
	var done []Result
	h.c.FindNode(h.now, mlID("target"), func(r Result) { done = append(done, r) })
	for _, p := range h.out.take() {
		var m wire.MLMsg
		if m.Parse(p.pkt) != nil {
			continue
		}
		var id wire.ID
		h.c.Table() // the node answers with the address it saw us at
		for _, n := range h.c.Table().Nodes(nil) {
			if n.Addr == p.to {
				id = n.ID
			}
		}
		h.c.HandlePacket(h.now, p.to, wire.AppendMLResp(nil, &wire.MLHeader{TID: m.TID}, ext, &wire.MLResp{Self: id}))
	}
	if h.c.ID() == before || !wire.BEP42Valid(h.c.ID(), ext.Addr()) {
		t.Fatalf("ID %s not changed for %v", h.c.ID(), ext)
	}
	if a, ok := h.c.ExternalAddr(); !ok || a != ext.Addr() {
		t.Fatalf("external address %v", a)
	}
	if s := h.c.Stats(); s.IDChanges != 1 || s.Nodes != 5 {
		t.Fatalf("id changes %d, %d nodes kept", s.IDChanges, s.Nodes)
	}
}

// A cancelled get_peers stops in the core: nothing more is sent for it.
func TestMainlineCancel(t *testing.T) {
	h := newMLHarness(t, nil)
	for i := range 8 {
		a := netip.AddrPortFrom(netip.AddrFrom4([4]byte{198, 51, 100, byte(i + 1)}), 6881)
		h.c.Table().Insert(kbucket.Node{ID: mlID(fmt.Sprintf("known-%d", i)), Addr: a}, true, h.now)
	}
	h.c.joined = true
	var res []Result
	op := h.c.GetPeers(h.now, mlID("wanted"), nil, func(r Result) { res = append(res, r) })
	if sent := h.out.take(); len(sent) == 0 {
		t.Fatal("nothing sent")
	}
	h.c.Cancel(h.now, op)
	if len(res) != 1 || res[0].Err != ErrCanceled {
		t.Fatalf("results %+v", res)
	}
	for range 300 {
		h.now = h.now.Add(10 * time.Millisecond)
		h.c.Tick(h.now)
	}
	// Only the node's own upkeep (its re-join) may send; nothing for the get.
	var m wire.MLMsg
	for _, p := range h.out.take() {
		if m.Parse(p.pkt) == nil && m.Method == wire.MLGetPeers {
			t.Fatalf("get_peers sent to %v after cancel", p.to)
		}
	}
	if len(res) != 1 {
		t.Fatalf("results %d", len(res))
	}
	for i := range h.c.txns.slots {
		if tx := &h.c.txns.slots[i]; tx.inUse && tx.method == wire.MLGetPeers {
			t.Fatal("a get_peers request still holds a slot")
		}
	}
}

func sha1Sum(b []byte) [20]byte { return sha1.Sum(b) }
