package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apt-p2p/apt-p2p/engine"
	"github.com/apt-p2p/apt-p2p/internal/front"
	"github.com/apt-p2p/apt-p2p/internal/lan"
	"github.com/apt-p2p/apt-p2p/internal/netbed"
	"github.com/apt-p2p/apt-p2p/internal/testrepo"
)

// fullStatus is the daemon's whole /stats.json.
func (d *daemon) fullStatus() (front.Status, error) {
	var st front.Status
	err := d.getJSON("/stats.json", &st)
	return st, err
}

func (d *daemon) get(path string) (string, error) {
	resp, err := d.client.Get("http://" + d.addr() + path)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		return "", fmt.Errorf("%s: status %d", path, resp.StatusCode)
	}
	return string(b), err
}

func (d *daemon) getJSON(path string, v any) error {
	b, err := d.get(path)
	if err != nil {
		return err
	}
	return json.Unmarshal([]byte(b), v)
}

// lanBed is a dual-stack LAN segment with the given hosts and a mirror host
// on a segment of its own behind the router.
func lanBed(t *testing.T, names ...string) (*netbed.Bed, *netbed.Segment, []*netbed.Host, *netbed.Host) {
	t.Helper()
	bed := newBed(t)
	seg, err := bed.AddSegment(netbed.SegmentConfig{Name: "lan", Family: netbed.DualStack})
	if err != nil {
		t.Fatal(err)
	}
	mseg, err := bed.AddSegment(netbed.SegmentConfig{Name: "mirror"})
	if err != nil {
		t.Fatal(err)
	}
	var hosts []*netbed.Host
	for _, n := range names {
		h, err := bed.AddHost(n, seg, netbed.LAN)
		if err != nil {
			t.Fatal(err)
		}
		hosts = append(hosts, h)
	}
	mh, err := bed.AddHost("mirror", mseg, netbed.LAN)
	if err != nil {
		t.Fatal(err)
	}
	return bed, seg, hosts, mh
}

// TestLANNoBootstrap is issue 13's "three daemons on a namespace LAN with no
// BOOTSTRAP set share every .deb of a real apt-get run". The daemons run
// the built-in configuration plus only what makes the test robust on a
// loaded machine (MIN_DOWNLOAD_PEERS, MIRROR_DELAY): no BOOTSTRAP, no
// BIND_ADDRESS, no LOCAL_OK, no ALLOWED_CLIENTS (apt on each host talks to
// its daemon on 127.0.0.1). They find each other by LAN discovery alone:
// each one's DHT holds the other two, and each one's contact is its LAN
// address. apt on h1 fetches through A from the mirror; apt on h2 through B
// and apt on h3 through C get every package byte from the LAN peers.
func TestLANNoBootstrap(t *testing.T) {
	_, _, hosts, mh := lanBed(t, "h1", "h2", "h3")
	repo, mirror := mirrorIn(t, mh, mh.Addr4(),
		testrepo.PackageSpec{Name: "lan-tiny", Size: 40 << 10},
		testrepo.PackageSpec{Name: "lan-inline", Size: 1536 << 10},
		testrepo.PackageSpec{Name: "lan-torrent", Size: 6 << 20})

	const port = 9977
	var ds []*daemon
	for i, h := range hosts {
		ds = append(ds, startDaemonIn(t, h, string(rune('A'+i)), "127.0.0.1", port,
			"BIND_ADDRESS=", "!LOCAL_OK", "MIN_DOWNLOAD_PEERS=1", "MIRROR_DELAY=5s"))
	}
	contact := func(i int) string { return netip.AddrPortFrom(hosts[i].Addr4(), port).String() }
	contact6 := func(i int) string { return netip.AddrPortFrom(hosts[i].Addr6(), port).String() }
	// The daemons are dual-stack (ADDRESS_FAMILIES = both): a peer heard on
	// the IPv4 group enters the IPv4 DHT, one heard on the IPv6 group the
	// IPv6 DHT, and each has a contact of each family on the LAN.
	for i, d := range ds {
		waitFor(t, d.name+"'s DHTs and LAN list to hold the two others", 30*time.Second, func() (bool, string) {
			st, err := d.fullStatus()
			if err != nil || st.LAN == nil {
				return false, fmt.Sprint(err)
			}
			listed := 0
			for j := range hosts {
				if j != i && slices.ContainsFunc(st.LAN.Peers, func(p front.LANPeer) bool { return p.DHT == contact(j) }) {
					listed++
				}
			}
			fams := map[string]front.FamilyStatus{}
			for _, f := range st.Families {
				fams[f.Family] = f
			}
			return fams["IPv4"].Nodes == 2 && fams["IPv6"].Nodes == 2 && st.Contact == contact(i) &&
					fams["IPv4"].Contact == contact(i) && fams["IPv6"].Contact == contact6(i) && listed == 2 && st.LAN.Sent["hello"] == 4,
				fmt.Sprintf("contact %s, families %+v, LAN %+v", st.Contact, st.Families, st.LAN)
		})
	}
	for i, d := range ds {
		st, err := d.fullStatus()
		if err != nil {
			t.Fatal(err)
		}
		for j := range hosts {
			want := netip.AddrPortFrom(hosts[j].Addr4(), port).String()
			has := slices.ContainsFunc(st.LAN.Peers, func(p front.LANPeer) bool { return p.DHT == want && p.HTTP == want })
			if has != (i != j) {
				t.Errorf("%s's LAN peers %+v: %s listed %v", d.name, st.LAN.Peers, want, has)
			}
		}
		if st.LAN.Sent["hello"] < 2 || st.LAN.Own == 0 || len(st.LAN.Links) != 2 {
			t.Errorf("%s's LAN discovery: %+v", d.name, st.LAN)
		}
	}

	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	announced := func(who int, by ...int) {
		t.Helper()
		for _, p := range repo.Packages {
			for _, b := range by {
				waitFor(t, ds[who].name+"'s announcement of "+p.Name+" seen by "+ds[b].name, 30*time.Second, func() (bool, string) {
					l, err := ds[b].lookup(p.SHA256)
					return slices.Contains(l.Peers, contact(who)), fmt.Sprintf("%+v %v", l, err)
				})
			}
		}
	}
	var total int64
	for _, p := range repo.Packages {
		total += p.Size
	}

	aptGet(t, ctx, hosts[0], ds[0], repo, mirror, false)
	if n := packageBytes(repo, mirror); n != total {
		t.Fatalf("A: the mirror sent %d package bytes, want all %d", n, total)
	}
	announced(0, 1, 2)
	for i := 1; i < 3; i++ {
		mirror.Reset()
		aptGet(t, ctx, hosts[i], ds[i], repo, mirror, false)
		if n := packageBytes(repo, mirror); n != 0 {
			t.Errorf("%s: the mirror sent %d package bytes; all should have come from the LAN peers", ds[i].name, n)
		}
		st, err := ds[i].status()
		if err != nil {
			t.Fatal(err)
		}
		if st.Session.Peers < total {
			t.Errorf("%s: %d bytes from peers, want at least %d", ds[i].name, st.Session.Peers, total)
		}
		if i == 1 {
			announced(1, 2)
		}
	}

	// LAN peers query each daemon before it has sent them anything: that is
	// no evidence of being reachable from elsewhere, on either network (the
	// IPv6 LAN is a /64, beyond the /24 rule of interface addresses).
	for _, d := range ds {
		st, err := d.fullStatus()
		if err != nil {
			t.Fatal(err)
		}
		if st.Reach.UDP != engine.ReachUnknown || st.Reach.Stats.Unsolicited != 0 || !st.Reach.Announce {
			t.Errorf("%s took LAN peers as reachability evidence: %+v", d.name, st.Reach)
		}
	}

	// The status page and /metrics show it.
	page, err := ds[0].get("/")
	if err != nil || !strings.Contains(page, "LAN discovery") || !strings.Contains(page, contact(1)) {
		t.Errorf("A's status page lacks the LAN section or B (%v)", err)
	}
	metrics, err := ds[0].get("/metrics")
	if err != nil || !strings.Contains(metrics, `aptp2p_lan_sent_total{kind="hello"} 4`) || !strings.Contains(metrics, "aptp2p_lan_peers ") {
		t.Errorf("A's /metrics lacks LAN discovery (%v)", err)
	}
}

// TestLANDiscoveryOff: with LAN_DISCOVERY = no a daemon sends nothing to
// the groups, has no socket on the discovery port and joins no group, and
// is not found; a daemon with it on, started after it on the same LAN, is
// heard by a listener there (the control) and finds nobody.
func TestLANDiscoveryOff(t *testing.T) {
	_, _, hosts, _ := lanBed(t, "on", "off", "ear")
	on, off, ear := hosts[0], hosts[1], hosts[2]
	heard := listenLAN(t, ear)

	const port = 9977
	y := startDaemonIn(t, off, "Y", "127.0.0.1", port, "BIND_ADDRESS=", "!LOCAL_OK", "LAN_DISCOVERY=no")
	x := startDaemonIn(t, on, "X", "127.0.0.1", port, "BIND_ADDRESS=", "!LOCAL_OK")
	waitFor(t, "the listener to hear X's two hellos on IPv4 and IPv6", 30*time.Second, func() (bool, string) {
		n := map[lan.Family]int{}
		for _, h := range heard.all() {
			if h.msg.Reply {
				n[lan.FamilyOf(h.from)]++
			}
		}
		return n[lan.IPv4] >= 2 && n[lan.IPv6] >= 2, fmt.Sprint(heard.all())
	})
	xst, err := x.fullStatus()
	if err != nil {
		t.Fatal(err)
	}
	cookieX := ""
	for _, h := range heard.all() {
		if h.from == on.Addr4() {
			cookieX = h.msg.Cookie.String()
		}
	}
	for _, h := range heard.all() {
		if h.msg.Cookie.String() != cookieX || h.from != on.Addr4() && h.from != on.Addr6() && !h.from.IsLinkLocalUnicast() {
			t.Errorf("the listener heard a message that is not X's: %+v", h)
		}
	}
	if xst.LAN == nil || len(xst.LAN.Peers) != 0 || xst.DHT.Nodes != 0 {
		t.Errorf("X found someone: LAN %+v, DHT nodes %d", xst.LAN, xst.DHT.Nodes)
	}
	yst, err := y.fullStatus()
	if err != nil {
		t.Fatal(err)
	}
	if yst.LAN != nil || yst.DHT.Nodes != 0 {
		t.Errorf("Y (off): LAN %+v, DHT nodes %d", yst.LAN, yst.DHT.Nodes)
	}
	if m, err := y.get("/metrics"); err != nil || strings.Contains(m, "aptp2p_lan_") {
		t.Errorf("Y's /metrics has LAN discovery counters (%v)", err)
	}
	// No socket on the discovery port and no group joined, in Y's namespace;
	// X (the control) has both.
	for _, c := range []struct {
		d    *daemon
		want bool
	}{{x, true}, {y, false}} {
		pid := c.d.cmd.Process.Pid
		if got := hasUDPPort(t, pid, lan.Port); got != c.want {
			t.Errorf("%s: socket on UDP %d: %v, want %v", c.d.name, lan.Port, got, c.want)
		}
		if got := joinedGroup4(t, pid); got != c.want {
			t.Errorf("%s: member of %v: %v, want %v", c.d.name, lan.Group4, got, c.want)
		}
	}
}

// heardMsg is one announcement a listener received.
type heardMsg struct {
	from netip.Addr
	msg  lan.Msg
}

type heardLog struct {
	mu   sync.Mutex
	msgs []heardMsg
}

func (l *heardLog) all() []heardMsg {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.msgs)
}

// listenLAN joins both groups on h's eth0 and records every announcement.
func listenLAN(t *testing.T, h *netbed.Host) *heardLog {
	t.Helper()
	log := &heardLog{}
	for _, g := range []struct {
		network string
		group   netip.Addr
	}{{"udp4", lan.Group4}, {"udp6", lan.Group6}} {
		var c *net.UDPConn
		if err := h.Do(func() error {
			ifi, err := net.InterfaceByName("eth0")
			if err != nil {
				return err
			}
			c, err = net.ListenMulticastUDP(g.network, ifi, net.UDPAddrFromAddrPort(netip.AddrPortFrom(g.group, lan.Port)))
			return err
		}); err != nil {
			t.Fatal(err)
		}
		done := make(chan struct{})
		t.Cleanup(func() { c.Close(); <-done })
		go func() {
			defer close(done)
			buf := make([]byte, 2048)
			for {
				n, from, err := c.ReadFromUDPAddrPort(buf)
				if err != nil {
					return
				}
				var m lan.Msg
				if m.Parse(buf[:n]) != nil {
					continue
				}
				log.mu.Lock()
				log.msgs = append(log.msgs, heardMsg{from.Addr().Unmap().WithZone(""), m})
				log.mu.Unlock()
			}
		}()
	}
	return log
}

// hasUDPPort reports whether process pid's network namespace has a UDP
// socket on port (/proc/<pid>/net/udp and udp6).
func hasUDPPort(t *testing.T, pid, port int) bool {
	t.Helper()
	want := fmt.Sprintf(":%04X ", port)
	for _, f := range []string{"udp", "udp6"} {
		b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/net/" + f)
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(strings.NewReader(string(b)))
		for sc.Scan() {
			fields := strings.Fields(sc.Text())
			if len(fields) > 1 && strings.HasSuffix(fields[1]+" ", want) {
				return true
			}
		}
	}
	return false
}

// joinedGroup4 reports whether any interface of process pid's network
// namespace is a member of lan.Group4 (/proc/<pid>/net/igmp lists groups as
// hex in host byte order).
func joinedGroup4(t *testing.T, pid int) bool {
	t.Helper()
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/net/igmp")
	if err != nil {
		t.Fatal(err)
	}
	a := lan.Group4.As4()
	want := fmt.Sprintf("%02X%02X%02X%02X", a[3], a[2], a[1], a[0]) // little-endian hosts
	return strings.Contains(string(b), want)
}

// TestLANAddressFamilies: LAN discovery follows ADDRESS_FAMILIES. V runs
// IPv4 only: it joins the IPv4 group only, and D, dual-stack, hears it
// there and nowhere else. Each puts the other in its IPv4 DHT; D's IPv6
// DHT stays empty (V has none), and V's single table holds D.
func TestLANAddressFamilies(t *testing.T) {
	_, _, hosts, _ := lanBed(t, "v", "d")
	const port = 9977
	v := startDaemonIn(t, hosts[0], "V", "127.0.0.1", port, "BIND_ADDRESS=", "!LOCAL_OK", "ADDRESS_FAMILIES=ipv4")
	d := startDaemonIn(t, hosts[1], "D", "127.0.0.1", port, "BIND_ADDRESS=", "!LOCAL_OK")
	v4 := netip.AddrPortFrom(hosts[0].Addr4(), port).String()
	d4 := netip.AddrPortFrom(hosts[1].Addr4(), port).String()
	nodes := func(st front.Status) map[string]int {
		m := map[string]int{}
		for _, f := range st.Families {
			m[f.Family] = f.Nodes
		}
		return m
	}
	waitFor(t, "V and D in each other's IPv4 DHT", 30*time.Second, func() (bool, string) {
		vs, err1 := v.fullStatus()
		ds, err2 := d.fullStatus()
		if err1 != nil || err2 != nil || vs.LAN == nil || ds.LAN == nil {
			return false, fmt.Sprint(err1, err2)
		}
		return nodes(vs)["IPv4"] == 1 && nodes(ds)["IPv4"] == 1, fmt.Sprintf("V %+v, D %+v", vs.Families, ds.Families)
	})
	// Until D has heard two of V's messages and V has sent its second hello:
	// by then anything V sent on IPv6 would have been heard too.
	waitFor(t, "V's second hello, heard by D", 30*time.Second, func() (bool, string) {
		vs, err1 := v.fullStatus()
		ds, err2 := d.fullStatus()
		if err1 != nil || err2 != nil || vs.LAN == nil || ds.LAN == nil {
			return false, fmt.Sprint(err1, err2)
		}
		heard := uint64(0)
		for _, p := range ds.LAN.Peers {
			if p.DHT == v4 {
				heard = p.Msgs
			}
		}
		return vs.LAN.Sent["hello"] >= 2 && heard >= 2, fmt.Sprintf("V sent %v, D heard V %d times", vs.LAN.Sent, heard)
	})
	vs, err := v.fullStatus()
	if err != nil {
		t.Fatal(err)
	}
	ds, err := d.fullStatus()
	if err != nil {
		t.Fatal(err)
	}
	if len(vs.LAN.Links) != 1 || vs.LAN.Links[0].Family != "IPv4" || len(vs.Families) != 1 {
		t.Errorf("V (ipv4 only): LAN links %+v, families %+v", vs.LAN.Links, vs.Families)
	}
	if len(vs.LAN.Peers) != 1 || vs.LAN.Peers[0].DHT != d4 {
		t.Errorf("V's LAN peers %+v, want D at %s only", vs.LAN.Peers, d4)
	}
	if len(ds.LAN.Peers) != 1 || ds.LAN.Peers[0].DHT != v4 {
		t.Errorf("D's LAN peers %+v, want V at %s only (nothing on IPv6)", ds.LAN.Peers, v4)
	}
	if n := nodes(ds); n["IPv6"] != 0 || len(ds.LAN.Links) != 2 {
		t.Errorf("D: families %+v, LAN links %+v", ds.Families, ds.LAN.Links)
	}
}
