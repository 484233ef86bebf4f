package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/apt-p2p/apt-p2p/internal/netbed"
	"github.com/apt-p2p/apt-p2p/internal/testrepo"
)

// reachStatus is what /stats.json says about reachability and the table.
type reachStatus struct {
	Reach struct {
		UDP      string `json:"udp"`
		TCP      string `json:"tcp"`
		ReadOnly bool   `json:"read_only"`
		Announce bool   `json:"announce"`
		Counters struct {
			ReadOnlySeen uint64
			Asked        uint64
			Served       uint64
		} `json:"counters"`
	} `json:"reach"`
	DHT struct {
		Nodes int `json:"Nodes"`
	} `json:"dht"`
	Session struct {
		Peers    int64 `json:"peer_down"`
		Uploaded int64 `json:"peer_up"`
	} `json:"session"`
}

func (d *daemon) reach() (reachStatus, error) {
	var st reachStatus
	resp, err := d.client.Get("http://" + d.addr() + "/stats.json")
	if err != nil {
		return st, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return st, json.Unmarshal(b, &st)
}

// TestNATedDaemon: a daemon behind a kernel NAT (nft masquerade: a datagram
// or connection gets in only as a reply to one sent out) among two reachable
// daemons on other networks. The NATed one finds itself unreachable over UDP
// and TCP, uses the DHT read-only (the others keep it out of their tables),
// announces nothing, and still gets every .deb of a real apt-get run from the
// peers; the reachable ones find themselves reachable.
//
//	seg a: R1, mirror      seg b: R2      seg wan: natbox ─┐
//	                                       seg home (no router): natbox, N
func TestNATedDaemon(t *testing.T) {
	bed := newBed(t)
	var err error
	seg := map[string]*netbed.Segment{}
	for _, sc := range []netbed.SegmentConfig{{Name: "a"}, {Name: "b"}, {Name: "wan"}, {Name: "home", NoRouter: true}} {
		if seg[sc.Name], err = bed.AddSegment(sc); err != nil {
			t.Fatal(err)
		}
	}
	hosts := map[string]*netbed.Host{}
	for _, hs := range []struct{ name, seg string }{{"r1", "a"}, {"mirror", "a"}, {"r2", "b"}, {"natbox", "wan"}} {
		if hosts[hs.name], err = bed.AddHost(hs.name, seg[hs.seg], netbed.LAN); err != nil {
			t.Fatal(err)
		}
	}
	natbox := hosts["natbox"]
	inside, err := bed.Attach(natbox, seg["home"], netbed.LAN)
	if err != nil {
		t.Fatal(err)
	}
	if hosts["n"], err = bed.AddHost("n", seg["home"], netbed.LAN); err != nil {
		t.Fatal(err)
	}
	r1h, r2h, nh, mh := hosts["r1"], hosts["r2"], hosts["n"], hosts["mirror"]
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	natRouter(t, ctx, natbox, nh, inside)

	repo, mirror := mirrorIn(t, mh, mh.Addr4(),
		testrepo.PackageSpec{Name: "nat-tiny", Size: 40 << 10},
		testrepo.PackageSpec{Name: "nat-inline", Size: 1536 << 10},
		testrepo.PackageSpec{Name: "nat-big", Size: 3 << 20})

	const port = 9977
	common := []string{"MIN_DOWNLOAD_PEERS=1", "MIRROR_DELAY=5s", "ALLOWED_CLIENTS=10.240.0.0/16", "REACH_INTERVAL=5s"}
	r1 := startDaemonIn(t, r1h, "R1", r1h.Addr4().String(), port, append(common, "apt_p2p_Khashmir.BOOTSTRAP_NODE=yes")...)
	boot := "apt_p2p_Khashmir.BOOTSTRAP=" + r1.addr()
	r2 := startDaemonIn(t, r2h, "R2", r2h.Addr4().String(), port, append(common, boot)...)
	n := startDaemonIn(t, nh, "N", nh.Addr4().String(), port, append(common, boot)...)

	// A generous bound, not a timing assertion: with REACH_INTERVAL=5s the
	// states settle in two to three probe rounds (each 5 s plus a 10 s wait).
	const settle = 2 * time.Minute
	waitFor(t, "the NATed daemon to find itself unreachable", settle, func() (bool, string) {
		st, err := n.reach()
		return err == nil && st.Reach.UDP == "unreachable" && st.Reach.TCP == "unreachable" && st.Reach.ReadOnly && !st.Reach.Announce,
			fmt.Sprintf("%+v %v", st, err)
	})
	for _, d := range []*daemon{r1, r2} {
		waitFor(t, d.name+" to find itself reachable", settle, func() (bool, string) {
			st, err := d.reach()
			return err == nil && st.Reach.UDP == "reachable" && st.Reach.TCP == "reachable" && !st.Reach.ReadOnly && st.Reach.Announce,
				fmt.Sprintf("%+v %v", st, err)
		})
	}

	var total int64
	for _, p := range repo.Packages {
		total += p.Size
	}
	// R1 fetches from the mirror and announces; R2 sees the announcements.
	aptGet(t, ctx, r1h, r1, repo, mirror, false)
	waitAnnounced(t, r2, repo, r1.addr(), "R1")

	// N, behind the NAT, gets every package from R1.
	mirror.Reset()
	aptGet(t, ctx, nh, n, repo, mirror, false)
	if got := packageBytes(repo, mirror); got != 0 {
		t.Errorf("N: the mirror sent %d package bytes; all should have come from peers", got)
	}
	stN, err := n.reach()
	if err != nil {
		t.Fatal(err)
	}
	if stN.Session.Peers < total {
		t.Errorf("N got %d bytes from peers, want all %d package bytes", stN.Session.Peers, total)
	}

	// R2 downloads too: from R1 only; N is never a source.
	mirror.Reset()
	aptGet(t, ctx, r2h, r2, repo, mirror, false)
	if got := packageBytes(repo, mirror); got != 0 {
		t.Errorf("R2: the mirror sent %d package bytes", got)
	}
	nAddrs := []string{nh.Addr4().String() + ":", natbox.Addr4().String() + ":"}
	for _, p := range repo.Packages {
		for _, d := range []*daemon{r1, r2} {
			l, err := d.lookup(p.SHA256)
			if err != nil {
				t.Fatal(err)
			}
			for _, peer := range l.Peers {
				for _, a := range nAddrs {
					if strings.HasPrefix(peer, a) {
						t.Errorf("%s's lookup of %s hands out the NATed daemon (%s): %v", d.name, p.Name, peer, l.Peers)
					}
				}
			}
		}
	}
	if stN, err = n.reach(); err != nil || stN.Session.Uploaded != 0 {
		t.Errorf("N uploaded %d bytes (%v): it should never be a source", stN.Session.Uploaded, err)
	}
	// The reachable daemons keep the read-only one out of their tables: each
	// knows only the other.
	for _, d := range []*daemon{r1, r2} {
		st, err := d.reach()
		if err != nil {
			t.Fatal(err)
		}
		if st.DHT.Nodes != 1 || st.Reach.Counters.ReadOnlySeen == 0 {
			t.Errorf("%s: %d nodes in its table, %d read-only queries seen; want only the other reachable daemon", d.name, st.DHT.Nodes, st.Reach.Counters.ReadOnlySeen)
		}
	}
	t.Logf("N: %+v", stN.Reach)
}
