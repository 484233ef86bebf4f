package wire_test

import (
	"fmt"
	"net/netip"

	"github.com/apt-p2p/apt-p2p/wire"
)

// A responder's receive path: parse in place, answer from a reused buffer.
func ExampleMsg_Parse() {
	var tid, self, peer wire.ID
	tid[0], self[0], peer[0] = 1, 2, 3
	pkt := wire.AppendFindNode(nil, tid, peer, self)

	var m wire.Msg
	var buf [wire.MaxPacketIPv4]byte
	switch err := m.Parse(pkt); {
	case err == wire.ErrBadArgs:
		_ = wire.AppendError(buf[:0], m.TID, wire.ErrCodeMalformedRequest, "malformed request")
	case err != nil:
		return // drop silently
	case m.Y == 'q' && m.Method == wire.MethodFindNode:
		nodes := []wire.Node{{ID: peer, Addr: netip.MustParseAddrPort("192.0.2.1:9977")}}
		out := wire.AppendFindNodeResp(buf[:0], m.TID, self, nodes, wire.ID{})
		fmt.Println(m.Method, m.Target == self, len(out))
	}
	// Output: find_node true 134
}

func ExampleAppendGetValueResp() {
	var tid, self wire.ID
	v := wire.AppendPeerValue(nil, &wire.PeerValue{Contact: netip.MustParseAddrPort("192.0.2.1:9977")})
	values := make([][]byte, 100)
	for i := range values {
		values[i] = v
	}
	pkt, n := wire.AppendGetValueResp(nil, tid, self, values, wire.MaxPacketIPv6)
	fmt.Println(n, len(pkt) <= wire.MaxPacketIPv6)
	// Output: 86 true
}
