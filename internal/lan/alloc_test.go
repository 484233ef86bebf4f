//go:build !race

package lan

import (
	"net/netip"
	"testing"
	"time"
)

// Parsing and writing a message, and handling a peer's datagram, allocate
// nothing (the peer already known): a busy LAN costs no garbage.
func TestNoAllocs(t *testing.T) {
	m := Msg{Group: IPv4, GroupPort: Port, PeerPort: 9977, DHTPort: 9977, Cookie: testCookie, Reply: true}
	buf := make([]byte, 0, MaxMsgLen)
	pkt := AppendMsg(nil, &m)
	var got Msg
	if n := testing.AllocsPerRun(100, func() {
		buf = AppendMsg(buf[:0], &m)
		if got.Parse(pkt) != nil {
			t.Fatal("parse failed")
		}
	}); n != 0 {
		t.Fatalf("AppendMsg+Parse: %v allocations", n)
	}

	out := &recorder{}
	c := NewCore(Config{PeerPort: 1, DHTPort: 1, SourceBurst: 1 << 30}, out)
	ifc := Iface{Index: 1, Name: "eth0", Addrs: []netip.Prefix{netip.MustParsePrefix("10.0.0.1/24")}}
	now := time.Unix(1000, 0)
	c.SetInterfaces(now, []Iface{ifc})
	m.Reply = false
	pkt = AppendMsg(nil, &m)
	from := netip.MustParseAddrPort("10.0.0.2:9976")
	c.HandlePacket(now, Link{1, IPv4}, from, Group4, pkt)
	out.intro = out.intro[:0:cap(out.intro)]
	if n := testing.AllocsPerRun(100, func() {
		c.HandlePacket(now, Link{1, IPv4}, from, Group4, pkt)
		out.intro = out.intro[:0]
	}); n != 0 {
		t.Fatalf("HandlePacket: %v allocations", n)
	}
}
