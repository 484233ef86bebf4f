package engine

import (
	"bytes"
	"crypto/sha1"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/apt-p2p/apt-p2p/wire"
)

func mainlineTestConfig() MainlineConfig {
	c := MainlineDefault()
	c.LocalOK = true
	return c
}

func startMainlineNode(t testing.TB, cfg MainlineConfig, boot ...netip.AddrPort) *MainlineNode {
	t.Helper()
	var b []string
	for _, a := range boot {
		b = append(b, a.String())
	}
	n, err := StartMainline(MainlineOptions{MainlineConfig: cfg, Listen: "127.0.0.1:0", Bootstrap: b})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	return n
}

// A small mainline network of our own nodes on loopback: join, announce,
// get_peers, BEP 44 put and get.
func TestMainlineLoopbackNetwork(t *testing.T) {
	first := startMainlineNode(t, mainlineTestConfig())
	nodes := []*MainlineNode{first}
	for range 9 {
		n := startMainlineNode(t, mainlineTestConfig(), first.Addr())
		nodes = append(nodes, n)
	}
	for _, n := range nodes[1:] {
		if err := n.WaitJoined(ctxT(t, 20*time.Second)); err != nil {
			t.Fatal(err)
		}
	}
	// The first node joins through those that contacted it.
	nodes[0].Do(func(c *MainlineCore, now time.Time) { c.SetBootstrap(now, []netip.AddrPort{nodes[1].Addr()}) })
	if err := first.WaitJoined(ctxT(t, 20*time.Second)); err != nil {
		t.Fatal(err)
	}
	ih := sha1Key("some file")
	r, err := nodes[3].Announce(ctxT(t, 10*time.Second), ih, 9977)
	if err != nil || r.Stored == 0 {
		t.Fatalf("announce: %+v %v", r, err)
	}
	peers, _, err := nodes[7].GetPeers(ctxT(t, 10*time.Second), ih)
	want := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), 9977)
	if err != nil || !slices.Contains(peers, want) {
		t.Fatalf("get_peers: %v %v, want %v", peers, err, want)
	}
	item := []byte("12:piece hashes")
	target, pr, err := nodes[2].PutItem(ctxT(t, 10*time.Second), item)
	if err != nil || pr.Stored == 0 || target != sha1.Sum(item) {
		t.Fatalf("put: %+v %v", pr, err)
	}
	got, err := nodes[8].GetItem(ctxT(t, 10*time.Second), target)
	if err != nil || !bytes.Equal(got, item) {
		t.Fatalf("get item: %q %v", got, err)
	}
	if s := nodes[8].Stats(); s.Nodes == 0 || !s.Joined {
		t.Fatalf("stats %+v", s)
	}
	var missing wire.ID
	if got, err := nodes[5].GetItem(ctxT(t, 10*time.Second), missing); err != nil || got != nil {
		t.Fatalf("missing item: %q %v", got, err)
	}
}
