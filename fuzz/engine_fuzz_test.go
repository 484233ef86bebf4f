package fuzz

import (
	"bytes"
	"net/netip"
	"testing"
	"time"

	"github.com/apt-p2p/apt-p2p/engine"
	"github.com/apt-p2p/apt-p2p/wire"
)

// sink records what the core sends.
type sink struct{ pkts [][]byte }

func (s *sink) Send(_ netip.AddrPort, pkt []byte) {
	s.pkts = append(s.pkts, append([]byte(nil), pkt...))
}

// FuzzCoreHostileDatagrams feeds arbitrary datagrams from arbitrary sources
// through the DHT core as the runner would (wire.Parse → handlers → kbucket →
// storage → wire encoders) and checks that it never panics, never sends a
// datagram over the IPv4 limit, answers only with well-formed KRPC, and still
// answers a ping afterwards.
func FuzzCoreHostileDatagrams(f *testing.F) {
	var tid, id, key, tok wire.ID
	for i := range tid {
		tid[i], id[i], key[i], tok[i] = byte(i+1), byte(0xA0+i), byte(0x30+i), byte(0x70+i)
	}
	f.Add([]byte("not bencode"), uint8(1))
	f.Add(wire.AppendPing(nil, tid, id), uint8(2))
	f.Add(wire.AppendFindNode(nil, tid, id, key), uint8(3))
	f.Add(wire.AppendFindValue(nil, tid, id, key), uint8(4))
	f.Add(wire.AppendGetValue(nil, tid, id, key, 0), uint8(5))
	f.Add(wire.AppendStoreValue(nil, tid, id, key, []byte("d1:c6:\x7f\x00\x00\x05\x26\xf9e"), tok), uint8(5))
	f.Add(wire.AppendStoreValue(nil, tid, id, key, bytes.Repeat([]byte{'x'}, 1200), tok), uint8(6))
	f.Add(wire.AppendJoin(nil, tid, id), uint8(7))
	f.Add(wire.AppendIDResp(nil, tid, id), uint8(8))
	f.Add(wire.AppendError(nil, tid, 201, "boom"), uint8(9))
	f.Add([]byte("d1:ad2:id20:aaaaaaaaaaaaaaaaaaaae1:q4:ping1:t2:xx1:y1:qe"), uint8(10))

	f.Fuzz(func(t *testing.T, pkt []byte, src uint8) {
		cfg := engine.Default()
		cfg.LocalOK = true
		cfg.Validate = nil
		seed := [32]byte{1}
		cfg.Seed = &seed
		out := &sink{}
		c, err := engine.New(cfg, out)
		if err != nil {
			t.Fatal(err)
		}
		now := time.Unix(1_000_000, 0)
		c.Start(now, nil)
		from := netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, 0, 1 + src%200}), 6881+uint16(src))
		// The same datagram several times, interleaved with timers, as a
		// retransmitting or flooding sender would.
		for i := range 3 {
			c.HandlePacket(now.Add(time.Duration(i)*time.Millisecond), from, pkt)
			c.Tick(now.Add(time.Duration(i) * time.Second))
		}
		for _, p := range out.pkts {
			if len(p) > wire.MaxPacketIPv4 {
				t.Fatalf("sent %d bytes, over the %d-byte limit", len(p), wire.MaxPacketIPv4)
			}
			var m wire.Msg
			if err := m.Parse(p); err != nil && err != wire.ErrBadArgs {
				t.Fatalf("sent a datagram our own parser rejects (%v): %q", err, p)
			}
		}
		// Still alive: a well-formed ping from elsewhere gets its answer.
		out.pkts = nil
		var ptid wire.ID
		ptid[0] = 0xEE
		c.HandlePacket(now.Add(10*time.Second), netip.MustParseAddrPort("127.0.0.250:7000"), wire.AppendPing(nil, ptid, id))
		answered := false
		for _, p := range out.pkts {
			var m wire.Msg
			if m.Parse(p) == nil && m.Y == 'r' && m.TID == ptid {
				answered = true
			}
		}
		if !answered {
			t.Fatalf("no ping reply after the datagram %q", pkt)
		}
	})
}
