package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/apt-p2p/apt-p2p/internal/netbed"
	"github.com/apt-p2p/apt-p2p/internal/testrepo"
)

// TestWANBedTwoDaemons runs the test bed end to end: a mirror behind a WAN
// link (100 Mbit/s, 40 ms round trip), two daemons on a LAN, real apt-get on
// each daemon's host. The first host's apt gets its packages through daemon A
// from the mirror; the second's through daemon B, whose bytes must all come
// from A across the LAN (B's /stats.json, and the mirror serving no package
// byte), never from the mirror.
func TestWANBedTwoDaemons(t *testing.T) {
	bed := newBed(t)
	lan, err := bed.AddSegment(netbed.SegmentConfig{Name: "lan"})
	if err != nil {
		t.Fatal(err)
	}
	wan, err := bed.AddSegment(netbed.SegmentConfig{Name: "mirror", Uplink: netbed.WAN})
	if err != nil {
		t.Fatal(err)
	}
	hosts := map[string]*netbed.Host{}
	for _, hs := range []struct {
		name string
		seg  *netbed.Segment
	}{{"h1", lan}, {"h2", lan}, {"mirror", wan}} {
		if hosts[hs.name], err = bed.AddHost(hs.name, hs.seg, netbed.LAN); err != nil {
			t.Fatal(err)
		}
	}
	h1, h2, mh := hosts["h1"], hosts["h2"], hosts["mirror"]

	repo, mirror := mirrorIn(t, mh, mh.Addr4(),
		testrepo.PackageSpec{Name: "wan-tiny", Size: 40 << 10},
		testrepo.PackageSpec{Name: "wan-inline", Size: 1536 << 10},
		testrepo.PackageSpec{Name: "wan-torrent", Size: 6 << 20})

	const port = 9977 // each host is a namespace of its own: the port is free
	common := []string{"MIN_DOWNLOAD_PEERS=1", "MIRROR_DELAY=5s", "ALLOWED_CLIENTS=" + lan.Prefix4.String()}
	a := startDaemonIn(t, h1, "A", h1.Addr4().String(), port, append(common, "apt_p2p_Khashmir.BOOTSTRAP_NODE=yes")...)
	b := startDaemonIn(t, h2, "B", h2.Addr4().String(), port, append(common, "apt_p2p_Khashmir.BOOTSTRAP="+a.addr())...)
	waitFor(t, "B to join the DHT", 30*time.Second, func() (bool, string) {
		st, err := b.status()
		return err == nil && st.Joined && st.DHT.Nodes > 0, fmt.Sprintf("%+v %v", st, err)
	})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var total int64
	for _, p := range repo.Packages {
		total += p.Size
	}

	aptGet(t, ctx, h1, a, repo, mirror, false)
	// The mirror saw A's own LAN address: the bytes crossed the router and the
	// WAN link, end to end, not a relay.
	for _, p := range repo.Packages {
		if got := mirror.BytesServed("/debian/" + p.Filename); got != p.Size {
			t.Errorf("A: mirror sent %d bytes of %s, want its size %d", got, p.Name, p.Size)
		}
	}
	for _, r := range mirror.Log() {
		if !strings.HasPrefix(r.Remote, h1.Addr4().String()+":") {
			t.Errorf("the mirror saw a request from %s, want daemon A's address %s", r.Remote, h1.Addr4())
		}
	}
	waitAnnounced(t, b, repo, a.addr(), "A")

	mirror.Reset()
	aptGet(t, ctx, h2, b, repo, mirror, false)
	if n := packageBytes(repo, mirror); n != 0 {
		t.Errorf("B: the mirror sent %d package bytes; all should have come from A over the LAN", n)
	}
	stB, err := b.status()
	if err != nil {
		t.Fatal(err)
	}
	if stB.Session.Peers < total || stB.Session.Mirror >= total {
		t.Errorf("B's stats.json: %d bytes from peers and %d from the mirror; want all %d package bytes from peers",
			stB.Session.Peers, stB.Session.Mirror, total)
	}
	stA, err := a.status()
	if err != nil {
		t.Fatal(err)
	}
	if stA.Session.Uploaded < total {
		t.Errorf("A uploaded %d bytes, want at least %d", stA.Session.Uploaded, total)
	}
	t.Logf("delay lines: %+v; B: peers %d B, mirror %d B (indexes)", bed.LinkStats(), stB.Session.Peers, stB.Session.Mirror)
}
