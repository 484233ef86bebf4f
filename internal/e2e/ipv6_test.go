package e2e

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/apt-p2p/apt-p2p/internal/netbed"
	"github.com/apt-p2p/apt-p2p/internal/testrepo"
	"github.com/apt-p2p/apt-p2p/wire"
)

// families reads a daemon's address families from stats.json.
type familyState struct {
	Family  string `json:"family"`
	Contact string `json:"contact"`
	Joined  bool   `json:"joined"`
	Nodes   int    `json:"nodes"`
}

func (d *daemon) families() (map[string]familyState, error) {
	resp, err := d.client.Get("http://" + d.addr() + "/stats.json")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var st struct {
		Families []familyState `json:"families"`
	}
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, err
	}
	out := map[string]familyState{}
	for _, f := range st.Families {
		out[f.Family] = f
	}
	return out, nil
}

// ipv6Packages are the packages of the IPv6 tests: one of each value form
// but the l form (a contact, inline piece hashes, piece hashes in the DHT).
var ipv6Packages = []testrepo.PackageSpec{
	{Name: "six-tiny", Size: 40 << 10},
	{Name: "six-inline", Size: 1536 << 10},
	{Name: "six-torrent", Size: 3 << 20},
}

// TestIPv6OnlyLAN (issue 13): a LAN and a mirror with no IPv4 at all. Daemon
// A runs with the defaults (dual-stack, listening on every address: its IPv4
// DHT finds nobody, its IPv6 DHT is the network), B with
// ADDRESS_FAMILIES=ipv6 bound to its address. apt-get on A's host fetches
// through A in URL-prefix mode (the mirror written as a bracketed literal
// after A's bracketed address), apt-get on B's host through B in proxy mode;
// every .deb B hands apt comes from A over IPv6, none from the mirror.
func TestIPv6OnlyLAN(t *testing.T) {
	bed := newBed(t)
	lan, err := bed.AddSegment(netbed.SegmentConfig{Name: "lan6", Family: netbed.IPv6})
	if err != nil {
		t.Fatal(err)
	}
	far, err := bed.AddSegment(netbed.SegmentConfig{Name: "mirror6", Family: netbed.IPv6})
	if err != nil {
		t.Fatal(err)
	}
	h1, err := bed.AddHost("h1", lan, netbed.LAN)
	if err != nil {
		t.Fatal(err)
	}
	h2, err := bed.AddHost("h2", lan, netbed.LAN)
	if err != nil {
		t.Fatal(err)
	}
	mh, err := bed.AddHost("mirror", far, netbed.LAN)
	if err != nil {
		t.Fatal(err)
	}
	if h1.Addr4().IsValid() || !h1.Addr6().IsValid() {
		t.Fatalf("h1 has %v / %v", h1.Addr4(), h1.Addr6())
	}
	repo, mirror := mirrorIn(t, mh, mh.Addr6(), ipv6Packages...)

	const port = 9977
	common := []string{"MIN_DOWNLOAD_PEERS=1", "MIRROR_DELAY=5s", "ALLOWED_CLIENTS=" + lan.Prefix6.String()}
	a := startDaemonIn(t, h1, "A", h1.Addr6().String(), port, append(common, "BIND_ADDRESS=", "apt_p2p_Khashmir.BOOTSTRAP_NODE=yes")...)
	boot := netip.AddrPortFrom(h1.Addr6(), port).String()
	b := startDaemonIn(t, h2, "B", h2.Addr6().String(), port, append(common, "ADDRESS_FAMILIES=ipv6", "apt_p2p_Khashmir.BOOTSTRAP="+boot)...)
	waitFor(t, "B to join the IPv6 DHT", 30*time.Second, func() (bool, string) {
		st, err := b.status()
		return err == nil && st.Joined && st.DHT.Nodes > 0, fmt.Sprintf("%+v %v", st, err)
	})
	waitFor(t, "A's IPv6 contact", 10*time.Second, func() (bool, string) {
		fs, err := a.families()
		return err == nil && fs["IPv6"].Contact == a.addr(), fmt.Sprintf("%+v %v", fs, err)
	})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	aptGet(t, ctx, h1, a, repo, mirror, false)
	for _, r := range mirror.Log() {
		if !strings.HasPrefix(r.Remote, "["+h1.Addr6().String()+"]:") {
			t.Errorf("the mirror saw a request from %s, want daemon A's address %s", r.Remote, h1.Addr6())
		}
	}
	for _, p := range repo.Packages {
		waitFor(t, "A's announcement of "+p.Name, 30*time.Second, func() (bool, string) {
			l, err := b.lookup(p.SHA256)
			return err == nil && slices.Contains(l.Peers, a.addr()), fmt.Sprintf("%+v %v", l, err)
		})
	}
	mirror.Reset()
	aptGet(t, ctx, h2, b, repo, mirror, true)
	if n := packageBytes(repo, mirror); n != 0 {
		t.Errorf("B: the mirror sent %d package bytes; all should have come from A over IPv6", n)
	}
	var total int64
	for _, p := range repo.Packages {
		total += p.Size
	}
	stB, err := b.status()
	if err != nil {
		t.Fatal(err)
	}
	if stB.Session.Peers < total {
		t.Errorf("B's stats.json: %d bytes from peers, want all %d package bytes", stB.Session.Peers, total)
	}
	fa, err := a.families()
	if err != nil {
		t.Fatal(err)
	}
	// A is a bootstrap node (counted as joined on its own) with no IPv4
	// address but loopback: no IPv4 contact, nobody in its IPv4 table.
	if fa["IPv4"].Nodes != 0 || fa["IPv4"].Contact != "" || !fa["IPv6"].Joined || fa["IPv6"].Nodes == 0 {
		t.Errorf("A's families on an IPv6-only LAN: %+v", fa)
	}
	fb, err := b.families()
	if err != nil || len(fb) != 1 || !fb["IPv6"].Joined {
		t.Errorf("B (ADDRESS_FAMILIES=ipv6) runs %+v %v", fb, err)
	}
	// The status page shows the IPv6 contact, and the daemon's stats
	// contact is it (it has no IPv4 one).
	resp, err := a.client.Get("http://" + a.addr() + "/")
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(page), "Address families") || !strings.Contains(string(page), a.addr()) {
		t.Errorf("A's status page does not show its IPv6 contact %s", a.addr())
	}
	if st, err := a.status(); err != nil || !st.Joined {
		t.Errorf("A's stats: %+v %v", st, err)
	}
}

// TestDualStackOriginalPeer (issue 13): on a dual-stack LAN, two dual-stack
// daemons (defaults, every address) share through both DHTs, and an
// IPv4-only test double of the original apt-p2p node sees no change: it
// joins through A, A and B keep it in their IPv4 tables and query it during
// their lookups, it finds both daemons' files under their keys in the
// original's value format with their IPv4 contacts, downloads them piece by
// piece, stores a value of its own, and nothing it receives has a want, a
// nodes6, an 18-byte contact or more than 1472 bytes.
func TestDualStackOriginalPeer(t *testing.T) {
	bed := newBed(t)
	lan, err := bed.AddSegment(netbed.SegmentConfig{Name: "lan46", Family: netbed.DualStack})
	if err != nil {
		t.Fatal(err)
	}
	hosts := map[string]*netbed.Host{}
	for _, name := range []string{"h1", "h2", "orig", "mirror"} {
		if hosts[name], err = bed.AddHost(name, lan, netbed.LAN); err != nil {
			t.Fatal(err)
		}
	}
	h1, h2, ho, mh := hosts["h1"], hosts["h2"], hosts["orig"], hosts["mirror"]
	repo, mirror := mirrorIn(t, mh, mh.Addr6(), ipv6Packages...)

	const port = 9977
	a4, a6 := netip.AddrPortFrom(h1.Addr4(), port), netip.AddrPortFrom(h1.Addr6(), port)
	b4, b6 := netip.AddrPortFrom(h2.Addr4(), port), netip.AddrPortFrom(h2.Addr6(), port)
	allowed := "ALLOWED_CLIENTS=" + lan.Prefix4.String() + " " + lan.Prefix6.String()
	common := []string{"MIN_DOWNLOAD_PEERS=1", "MIRROR_DELAY=5s", allowed, "BIND_ADDRESS="}
	a := startDaemonIn(t, h1, "A", h1.Addr4().String(), port, append(common, "apt_p2p_Khashmir.BOOTSTRAP_NODE=yes")...)
	b := startDaemonIn(t, h2, "B", h2.Addr4().String(), port, append(common, "apt_p2p_Khashmir.BOOTSTRAP="+a4.String()+" "+a6.String())...)
	for _, d := range []*daemon{a, b} {
		waitFor(t, d.name+" on both networks", 30*time.Second, func() (bool, string) {
			fs, err := d.families()
			return err == nil && fs["IPv4"].Joined && fs["IPv6"].Joined && fs["IPv4"].Contact != "" && fs["IPv6"].Contact != "" &&
				(d == a || fs["IPv4"].Nodes > 0 && fs["IPv6"].Nodes > 0), fmt.Sprintf("%+v %v", fs, err)
		})
	}
	fa, _ := a.families()
	if fa["IPv4"].Contact != a4.String() || fa["IPv6"].Contact != a6.String() {
		t.Fatalf("A's contacts: %+v", fa)
	}

	// The original node: IPv4 only, in its own host.
	var conn net.PacketConn
	if err := ho.Do(func() (err error) {
		conn, err = net.ListenPacket("udp4", netip.AddrPortFrom(ho.Addr4(), 9977).String())
		return err
	}); err != nil {
		t.Fatal(err)
	}
	orig := newOrigNode(t, conn)
	r, err := orig.call(a4, "join", map[string]any{})
	if err != nil || string(r.Get("ip_addr").Str) != ho.Addr4().String() || r.Get("port").Int != 9977 {
		t.Fatalf("join: %v %v", r, err)
	}
	// A and B verify it with a ping (answered by the double's loop) and keep
	// it in their IPv4 tables: it takes part in their lookups from then on.
	var target [20]byte
	copy(target[:], "somewhere-in-the-dht")
	r, err = orig.call(b4, "find_node", map[string]any{"target": target[:]})
	if err != nil || !slices.Contains(nodesOf(r), a4) {
		t.Fatalf("find_node to B: %v %v", nodesOf(r), err)
	}
	waitFor(t, "both daemons to ping the original node", 10*time.Second, func() (bool, string) {
		return orig.askedBy(h1.Addr4()) && orig.askedBy(h2.Addr4()), ""
	})

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	aptGet(t, ctx, h1, a, repo, mirror, false) // A: from the mirror, over IPv6
	for _, p := range repo.Packages {
		waitFor(t, "A's announcement of "+p.Name+" on both networks", 30*time.Second, func() (bool, string) {
			l, err := b.lookup(p.SHA256)
			return err == nil && slices.Contains(l.Peers, a4.String()) && slices.Contains(l.Peers, a6.String()), fmt.Sprintf("%+v %v", l, err)
		})
	}
	mirror.Reset()
	aptGet(t, ctx, h2, b, repo, mirror, true) // B: from A, proxy mode
	if n := packageBytes(repo, mirror); n != 0 {
		t.Errorf("B: the mirror sent %d package bytes; all should have come from A", n)
	}

	// The original node finds both daemons under each file's key, by their
	// IPv4 contacts only, and downloads each file from them.
	client := ho.HTTPClient(30 * time.Second)
	for _, p := range repo.Packages {
		h, _ := hex.DecodeString(p.SHA256)
		key := wire.NormKey(h)
		var contacts []string
		var vals [][]byte
		waitFor(t, "both daemons under "+p.Name+" on the IPv4 DHT", 30*time.Second, func() (bool, string) {
			vals, contacts = nil, nil
			for _, d := range []netip.AddrPort{a4, b4} {
				vs, err := orig.values(d, key)
				if err != nil {
					return false, err.Error()
				}
				vals = append(vals, vs...)
			}
			for _, raw := range vals {
				v, err := wire.Decode(raw)
				if err == nil && v.Get("c") != nil && len(v.Get("c").Str) == 6 {
					c := v.Get("c").Str
					contacts = append(contacts, netip.AddrPortFrom(netip.AddrFrom4([4]byte(c[:4])), uint16(c[4])<<8|uint16(c[5])).String())
				}
			}
			return slices.Contains(contacts, a4.String()) && slices.Contains(contacts, b4.String()), fmt.Sprintf("%v", contacts)
		})
		for _, c := range contacts {
			if c != a4.String() && c != b4.String() {
				t.Errorf("%s: a value names %s", p.Name, c)
			}
		}
		for _, raw := range vals {
			if err := orig.fetch(client, a4, raw, h, p.SHA256, p.Size); err != nil {
				t.Errorf("%s: the original node's download: %v", p.Name, err)
			}
		}
	}
	// It stores a value of its own, as the original announces (§3.2): a
	// find_node for a token, then store_value with its IPv4 contact.
	var key [20]byte
	copy(key[:], "original-node-file-1")
	r, err = orig.call(a4, "find_node", map[string]any{"target": key[:]})
	if err != nil || r.Get("token") == nil {
		t.Fatalf("find_node for a token: %v %v", r, err)
	}
	val := "d1:c6:" + string(wire.AppendCompactPeer(nil, netip.AddrPortFrom(ho.Addr4(), 9977))) + "e"
	if _, err := orig.call(a4, "store_value", map[string]any{"key": key[:], "value": val, "token": r.Get("token").Str}); err != nil {
		t.Fatalf("store_value: %v", err)
	}
	if vals, err := orig.values(a4, key); err != nil || len(vals) != 1 || string(vals[0]) != val {
		t.Fatalf("the stored value read back: %q %v", vals, err)
	}
	// Until the daemons' maintenance and lookups have reached it.
	waitFor(t, "the daemons' pings and lookups at the original node", 30*time.Second, func() (bool, string) {
		received, queries, _ := orig.report()
		return received > 0 && queries["ping"] > 0 && queries["store_value"]+queries["find_node"]+queries["find_value"] > 0,
			fmt.Sprintf("%d datagrams, queries %v", received, queries)
	})
	received, queries, violations := orig.report()
	for _, v := range violations {
		t.Error("the original node received: " + v)
	}
	if received == 0 || queries["ping"] == 0 || queries["store_value"]+queries["find_node"]+queries["find_value"] == 0 {
		t.Errorf("the original node received %d datagrams, queries %v: the daemons never looked anything up through it", received, queries)
	}
	t.Logf("the original node received %d datagrams; queries by method %v", received, queries)
	_ = b6
}
