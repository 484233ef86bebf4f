package engine

import (
	"net/netip"
	"testing"
	"time"

	"github.com/apt-p2p/apt-p2p/wire"
)

// TestDeadContactsLeftOut (issue 12 item 2): a node that has gone lets one
// lookup's request time out; after that, lookups no longer ask it, although
// every other node keeps listing it (it sits in their tables for a while),
// and we do not list it to others either. Once it sends us anything again it
// is asked again. Before, every lookup near it waited for its timeout (about
// 200 ms each on a LAN, 17 downloads in a row in the report).
func TestDeadContactsLeftOut(t *testing.T) {
	n := newCancelNet(t)
	n.answer[wire.MethodFindNode] = true
	n.answer[wire.MethodPing] = true
	var dead netip.AddrPort
	var deadID wire.ID
	for a, id := range n.peers {
		dead, deadID = a, id
		break
	}
	n.silent = map[netip.AddrPort]bool{dead: true}
	n.listed = []wire.Node{{ID: deadID, Addr: dead}}
	n.sentTo = map[netip.AddrPort]int{}
	// Every lookup targets the dead node's own ID, so it is always among the
	// closest nodes and would be asked if it were not left out.
	find := func(what string) int {
		t.Helper()
		before := n.sentTo[dead]
		var d doneLog
		n.c.FindNode(n.now, deadID, d.done)
		n.advance(5 * time.Second)
		d.wantOnce(t, "find_node "+what, nil)
		return n.sentTo[dead] - before
	}
	if got := find("first"); got == 0 {
		t.Fatal("not the case under test: the first lookup did not ask the dead node")
	}
	for _, target := range []string{"second", "third", "fourth"} {
		if got := find(target); got != 0 {
			t.Errorf("lookup %s sent %d datagram(s) to a node that timed out before", target, got)
		}
	}
	// It is not handed out to others either.
	var m wire.Msg
	q := wire.AppendFindNode(nil, wire.ID{9}, wire.ID{8}, deadID)
	n.c.HandlePacket(n.now, netip.MustParseAddrPort("20.0.0.200:6881"), q)
	for _, p := range n.out.take() {
		if m.Parse(p.pkt) == nil && m.Y == 'r' {
			for i := range m.Nodes.Len() {
				if m.Nodes.At(i).Addr == dead {
					t.Error("a reply lists the dead node")
				}
			}
		}
	}
	// It comes back: any datagram from it makes it a contact again.
	delete(n.silent, dead)
	n.c.HandlePacket(n.now, dead, wire.AppendPing(nil, wire.ID{7}, deadID))
	n.out.take()
	if got := find("fifth"); got == 0 {
		t.Error("the node that came back was not asked again")
	}
}
