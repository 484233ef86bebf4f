package fuzz

import (
	"bytes"
	"net/netip"
	"testing"
	"time"

	"github.com/apt-p2p/apt-p2p/engine"
	"github.com/apt-p2p/apt-p2p/wire"
)

// FuzzMainlineHostileDatagrams is FuzzCoreHostileDatagrams for the mainline
// personality: arbitrary datagrams from arbitrary sources through
// MainlineCore (wire.MLMsg.Parse → handlers → kbucket → storage → encoders).
// It never panics, never sends over the IPv4 limit, sends only what its own
// parser accepts, and still answers a ping afterwards.
func FuzzMainlineHostileDatagrams(f *testing.F) {
	id, ih := wire.ID{0xA0, 1, 2}, wire.ID{0x30, 1, 2}
	h := &wire.MLHeader{TID: []byte("aa"), Version: wire.MLVersion}
	f.Add([]byte("not bencode"), uint8(1))
	f.Add(wire.AppendMLPing(nil, h, id), uint8(2))
	f.Add(wire.AppendMLFindNode(nil, h, id, ih), uint8(3))
	f.Add(wire.AppendMLGetPeers(nil, h, id, ih), uint8(4))
	f.Add(wire.AppendMLAnnounce(nil, h, id, ih, 80, []byte("12345678")), uint8(5))
	f.Add(wire.AppendMLGet(nil, h, id, ih), uint8(6))
	f.Add(wire.AppendMLPut(nil, h, id, []byte("12345678"), []byte("5:hello")), uint8(7))
	f.Add(wire.AppendMLPut(nil, h, id, []byte("12345678"), append([]byte("990:"), bytes.Repeat([]byte("x"), 990)...)), uint8(8))
	f.Add(wire.AppendMLResp(nil, h, netip.MustParseAddrPort("1.2.3.4:5"), &wire.MLResp{Self: id, Token: []byte("t")}), uint8(9))
	f.Add(wire.AppendMLError(nil, h, 201, "boom"), uint8(10))
	f.Add(wire.AppendMLPing(nil, &wire.MLHeader{TID: []byte("ro"), ReadOnly: true}, id), uint8(11))

	f.Fuzz(func(t *testing.T, pkt []byte, src uint8) {
		cfg := engine.MainlineDefault()
		cfg.LocalOK = true
		seed := [32]byte{1}
		cfg.Seed = &seed
		out := &sink{}
		c := engine.NewMainline(cfg, out)
		now := time.Unix(1_000_000, 0)
		c.Start(now, nil)
		from := netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, 0, 1 + src%200}), 6881+uint16(src))
		for i := range 3 {
			c.HandlePacket(now.Add(time.Duration(i)*time.Millisecond), from, pkt)
			c.Tick(now.Add(time.Duration(i) * time.Second))
		}
		for _, p := range out.pkts {
			if len(p) > wire.MaxPacketIPv4 {
				t.Fatalf("sent %d bytes, over the %d-byte limit", len(p), wire.MaxPacketIPv4)
			}
			var m wire.MLMsg
			if err := m.Parse(p); err != nil {
				t.Fatalf("sent a datagram our own parser rejects (%v): %q", err, p)
			}
		}
		out.pkts = nil
		c.HandlePacket(now.Add(10*time.Second), netip.MustParseAddrPort("127.0.0.250:7000"), wire.AppendMLPing(nil, &wire.MLHeader{TID: []byte("zz")}, id))
		answered := false
		for _, p := range out.pkts {
			var m wire.MLMsg
			if m.Parse(p) == nil && m.Y == 'r' && string(m.TID) == "zz" {
				answered = true
			}
		}
		if !answered {
			t.Fatalf("no ping reply after the datagram %q", pkt)
		}
	})
}
