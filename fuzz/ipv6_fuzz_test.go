package fuzz

import (
	"net/netip"
	"testing"
	"time"

	"github.com/apt-p2p/apt-p2p/engine"
	"github.com/apt-p2p/apt-p2p/wire"
)

// addrSink records what a core sends and where.
type addrSink struct {
	to   []netip.AddrPort
	pkts [][]byte
}

func (s *addrSink) Send(to netip.AddrPort, pkt []byte) {
	s.to = append(s.to, to)
	s.pkts = append(s.pkts, append([]byte(nil), pkt...))
}

// FuzzDualStackHostileDatagrams feeds arbitrary datagrams from IPv4 and
// IPv6 sources to a dual-stack node's paired cores, as its runner hands
// them out by family, and checks the line between the two networks: nothing
// sent to an IPv4 address carries want, a value with an 18-byte contact or
// (unless that address asked for it with want n6, which no original does)
// nodes6, or exceeds 1472 bytes; nothing sent to an IPv6 address exceeds
// 1452; both cores still answer a ping afterwards.
func FuzzDualStackHostileDatagrams(f *testing.F) {
	var tid, id, key, tok wire.ID
	for i := range tid {
		tid[i], id[i], key[i], tok[i] = byte(i+1), byte(0xA0+i), byte(0x30+i), byte(0x70+i)
	}
	v6 := []byte("d1:c18:\xfd\x42\x00\x00\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00\x00\x05\x26\xf9e")
	f.Add(wire.AppendFindNodeWant(nil, tid, id, key, wire.WantN4|wire.WantN6), uint8(1))
	f.Add(wire.AppendFindNodeWant(nil, tid, id, key, wire.WantN4|wire.WantN6), uint8(2))
	f.Add(wire.AppendFindValueWant(nil, tid, id, key, wire.WantN6), uint8(3))
	f.Add(wire.AppendStoreValue(nil, tid, id, key, v6, tok), uint8(4))
	f.Add(wire.AppendStoreValue(nil, tid, id, key, v6, tok), uint8(5))
	f.Add(wire.AppendGetValue(nil, tid, id, key, 0), uint8(6))
	f.Add(wire.AppendJoin(nil, tid, id), uint8(7))
	f.Add(wire.AppendFindNodeRespWant(nil, tid, id, []wire.Node{{ID: key, Addr: netip.MustParseAddrPort("[fd42::9]:1")}, {ID: tok, Addr: netip.MustParseAddrPort("10.1.2.3:4")}}, wire.WantN4|wire.WantN6, tok), uint8(8))
	f.Fuzz(func(t *testing.T, pkt []byte, src uint8) {
		out := &addrSink{}
		cfg := engine.Default()
		cfg.LocalOK = true
		seed := [32]byte{2}
		cfg.Seed = &seed
		c4, err := engine.New(cfg, out)
		if err != nil {
			t.Fatal(err)
		}
		cfg.Family, cfg.NodeID = engine.IPv6, c4.ID()
		c6, err := engine.New(cfg, out)
		if err != nil {
			t.Fatal(err)
		}
		if err := engine.Pair(c4, c6); err != nil {
			t.Fatal(err)
		}
		now := time.Unix(1_000_000, 0)
		c4.Start(now, nil)
		c6.Start(now, nil)
		// Both families' tables hold a node, so that replies have nodes to list.
		seedNode := func(c *engine.Core, a string) {
			var nid wire.ID
			copy(nid[:], a)
			c.HandlePacket(now, netip.MustParseAddrPort(a), wire.AppendPing(nil, wire.ID{9}, nid))
			for i, to := range out.to {
				var m wire.Msg
				if m.Parse(out.pkts[i]) == nil && m.Y == 'q' && to == netip.MustParseAddrPort(a) {
					c.HandlePacket(now, to, wire.AppendIDResp(nil, m.TID, nid))
				}
			}
		}
		seedNode(c4, "10.9.9.9:9977")
		seedNode(c6, "[fd42::99]:9977")
		from := netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 0, 0, src}), 6881)
		core := c4
		if src%2 == 1 {
			from = netip.AddrPortFrom(netip.AddrFrom16([16]byte{0xfd, 0x42, 15: src}), 6881)
			core = c6
		}
		var in wire.Msg
		asked6 := in.Parse(pkt) == nil && in.Y == 'q' && in.Want&wire.WantN6 != 0
		out.to, out.pkts = nil, nil
		for i := range 3 {
			core.HandlePacket(now.Add(time.Duration(i)*time.Millisecond), from, pkt)
			c4.Tick(now.Add(time.Duration(i) * time.Second))
			c6.Tick(now.Add(time.Duration(i) * time.Second))
		}
		for i, p := range out.pkts {
			to := out.to[i]
			if wire.IsIPv6(to.Addr()) {
				if len(p) > wire.MaxPacketIPv6 {
					t.Fatalf("%d bytes to %v", len(p), to)
				}
				continue
			}
			var m wire.Msg
			err := m.Parse(p)
			if len(p) > wire.MaxPacketIPv4 || m.Has&wire.FieldWant != 0 || (m.Has&wire.FieldNodes6 != 0 && !(asked6 && to == from)) {
				t.Fatalf("to the IPv4 address %v: %q", to, p)
			}
			if err == nil {
				for v := range m.Values.All {
					var pv wire.PeerValue
					if pv.Parse(v) == nil && !pv.Contact.Addr().Is4() {
						t.Fatalf("a value with contact %v sent to %v", pv.Contact, to)
					}
				}
			}
		}
		for _, tc := range []struct {
			c    *engine.Core
			from string
		}{{c4, "10.0.0.250:7000"}, {c6, "[fd42::250]:7000"}} {
			out.to, out.pkts = nil, nil
			ptid := wire.ID{0xEE}
			tc.c.HandlePacket(now.Add(10*time.Second), netip.MustParseAddrPort(tc.from), wire.AppendPing(nil, ptid, id))
			answered := false
			for _, p := range out.pkts {
				var m wire.Msg
				if m.Parse(p) == nil && m.Y == 'r' && m.TID == ptid {
					answered = true
				}
			}
			if !answered {
				t.Fatalf("the %v core did not answer a ping after %q", tc.c.Family(), pkt)
			}
		}
	})
}
