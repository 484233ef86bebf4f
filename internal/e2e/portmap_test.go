package e2e

import (
	"context"
	be "encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apt-p2p/apt-p2p/internal/apttest"
	"github.com/apt-p2p/apt-p2p/internal/netbed"
	"github.com/apt-p2p/apt-p2p/internal/testrepo"
)

// natPMPRouter is the NAT-PMP server (RFC 6886) of a test's NAT box: it
// answers on the inside address, UDP 5351, and installs a real nft DNAT rule
// on the WAN interface for each mapping asked for, removed when the mapping
// is deleted. TCP mappings get the suggested port plus tcpShift (a router
// whose port is taken by another machine's forward); UDP ones the port
// suggested.
type natPMPRouter struct {
	t        *testing.T
	ctx      context.Context
	box      *netbed.Host
	wan      string // interface name
	ext      netip.Addr
	tcpShift uint16
	conn     net.PacketConn
	start    time.Time
	done     chan struct{}

	mu       sync.Mutex
	mappings map[pmKey]pmMapping
	requests map[byte]int // by opcode
	deleted  int
	errs     []error
}

type pmKey struct {
	op       byte // 1 UDP, 2 TCP
	client   netip.Addr
	internal uint16
}

type pmMapping struct {
	ext    uint16
	handle string // the nft rule's
}

var nftHandle = regexp.MustCompile(`# handle (\d+)`)

func startNATPMPRouter(t *testing.T, ctx context.Context, box *netbed.Host, inside netip.Addr, wan string, ext netip.Addr, tcpShift uint16) *natPMPRouter {
	t.Helper()
	if out, err := box.Run(ctx, "nft", "add", "chain", "ip", "nat", "pre", "{ type nat hook prerouting priority -100 ; }"); err != nil {
		t.Fatalf("nft prerouting chain: %v %s", err, out)
	}
	c, err := box.ListenPacket("udp4", netip.AddrPortFrom(inside, 5351).String())
	if err != nil {
		t.Fatal(err)
	}
	r := &natPMPRouter{t: t, ctx: ctx, box: box, wan: wan, ext: ext, tcpShift: tcpShift, conn: c, start: time.Now(),
		done: make(chan struct{}), mappings: map[pmKey]pmMapping{}, requests: map[byte]int{}}
	go r.serve()
	t.Cleanup(func() {
		c.Close()
		<-r.done
	})
	return r
}

func (r *natPMPRouter) serve() {
	defer close(r.done)
	buf := make([]byte, 64)
	for {
		n, from, err := r.conn.ReadFrom(buf)
		if err != nil {
			return
		}
		ua, ok := from.(*net.UDPAddr)
		if !ok {
			continue
		}
		if reply := r.handle(buf[:n], ua.AddrPort().Addr().Unmap()); reply != nil {
			r.conn.WriteTo(reply, from)
		}
	}
}

// handle answers one request (RFC 6886 §3.2, §3.3); nil drops it.
func (r *natPMPRouter) handle(req []byte, client netip.Addr) []byte {
	if len(req) < 2 || req[0] != 0 {
		return nil
	}
	op := req[1]
	r.mu.Lock()
	defer r.mu.Unlock()
	r.requests[op]++
	epoch := uint32(time.Since(r.start) / time.Second)
	switch {
	case op == 0 && len(req) == 2:
		b := []byte{0, 128, 0, 0}
		b = be.BigEndian.AppendUint32(b, epoch)
		return append(b, r.ext.AsSlice()...)
	case (op == 1 || op == 2) && len(req) == 12:
		internal := be.BigEndian.Uint16(req[4:6])
		suggested := be.BigEndian.Uint16(req[6:8])
		life := be.BigEndian.Uint32(req[8:12])
		k := pmKey{op, client, internal}
		m, have := r.mappings[k]
		var result uint16
		switch {
		case life == 0: // deletion
			if have {
				if err := r.nft("delete", "rule", "ip", "nat", "pre", "handle", m.handle); err != nil {
					r.errs = append(r.errs, err)
					result = 3 // network failure
				} else {
					delete(r.mappings, k)
					r.deleted++
				}
			}
			m = pmMapping{}
		case !have:
			m.ext = cmp(suggested, internal)
			if op == 2 {
				m.ext += r.tcpShift
			}
			proto := map[byte]string{1: "udp", 2: "tcp"}[op]
			out, err := r.box.Run(r.ctx, "nft", "--echo", "--handle", "add", "rule", "ip", "nat", "pre", "iifname", r.wan,
				proto, "dport", strconv.Itoa(int(m.ext)), "dnat", "to", netip.AddrPortFrom(client, internal).String())
			h := nftHandle.FindStringSubmatch(out)
			if err != nil || h == nil {
				r.errs = append(r.errs, fmt.Errorf("nft add rule: %v %q", err, out))
				result, m, life = 3, pmMapping{}, 0
				break
			}
			m.handle = h[1]
			r.mappings[k] = m
		}
		b := []byte{0, 128 + op}
		b = be.BigEndian.AppendUint16(b, result)
		b = be.BigEndian.AppendUint32(b, epoch)
		b = be.BigEndian.AppendUint16(b, internal)
		b = be.BigEndian.AppendUint16(b, m.ext)
		return be.BigEndian.AppendUint32(b, life)
	}
	b := []byte{0, 128 + op, 0, 5} // unsupported opcode
	return be.BigEndian.AppendUint32(b, epoch)
}

// cmp is a if it is not 0, else b.
func cmp(a, b uint16) uint16 {
	if a != 0 {
		return a
	}
	return b
}

func (r *natPMPRouter) nft(args ...string) error {
	out, err := r.box.Run(r.ctx, "nft", args...)
	if err != nil {
		return fmt.Errorf("nft %s: %v %s", strings.Join(args, " "), err, out)
	}
	return nil
}

// state is the mappings held and the requests seen.
func (r *natPMPRouter) state() (map[pmKey]pmMapping, map[byte]int, int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	m := map[pmKey]pmMapping{}
	for k, v := range r.mappings {
		m[k] = v
	}
	q := map[byte]int{}
	for k, v := range r.requests {
		q[k] = v
	}
	return m, q, r.deleted, errors.Join(r.errs...)
}

// portMapStatus is what /stats.json says about port mapping.
type portMapStatus struct {
	PortMap *struct {
		Mode     string `json:"mode"`
		Gateway  string `json:"gateway"`
		External string `json:"external"`
		Err      string `json:"error"`
		Mappings []struct {
			Proto    string `json:"proto"`
			Internal uint16 `json:"internal"`
			External uint16 `json:"external"`
		} `json:"mappings"`
	} `json:"port_mapping"`
	Contact string `json:"contact"`
}

// TestPortMappedDaemon: the NATed daemon of TestNATedDaemon, this time with
// PORT_MAPPING = natpmp and a NAT box whose NAT-PMP server installs real
// DNAT rules. The daemon finds the gateway from its default route, maps its
// TCP and UDP ports (the router gives another TCP port than asked), and the
// reachability check, not the mapping, then finds it reachable over UDP and
// TCP. It announces with the mapped port, and a daemon outside downloads
// every .deb of a real apt-get run from it through the router. When it
// stops, it deletes its mappings. (Without PORT_MAPPING the same daemon stays
// unreachable: TestNATedDaemon.)
//
//	seg a: R, mirror      seg wan: natbox ─┐
//	                      seg home (no router): natbox, N
func TestPortMappedDaemon(t *testing.T) {
	bed, err := netbed.New(netbed.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := bed.Close(); err != nil {
			t.Error(err)
		}
	})
	seg := map[string]*netbed.Segment{}
	for _, sc := range []netbed.SegmentConfig{{Name: "a"}, {Name: "wan"}, {Name: "home", NoRouter: true}} {
		if seg[sc.Name], err = bed.AddSegment(sc); err != nil {
			t.Fatal(err)
		}
	}
	hosts := map[string]*netbed.Host{}
	for _, hs := range []struct{ name, seg string }{{"r", "a"}, {"mirror", "a"}, {"natbox", "wan"}} {
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
	rh, nh, mh := hosts["r"], hosts["n"], hosts["mirror"]
	if err := nh.IP("route add default via " + inside.Addr4.String()); err != nil {
		t.Fatal(err)
	}
	if err := natbox.Sysctl(map[string]string{"net/ipv4/ip_forward": "1"}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	for _, args := range [][]string{
		{"add", "table", "ip", "nat"},
		{"add", "chain", "ip", "nat", "post", "{ type nat hook postrouting priority 100 ; }"},
		{"add", "rule", "ip", "nat", "post", "oifname", "eth0", "masquerade"},
	} {
		if out, err := natbox.Run(ctx, "nft", args...); err != nil {
			t.Fatalf("kernel NAT (nft %s): %v %s (nftables: bash scripts/install-deps.sh test)", strings.Join(args, " "), err, out)
		}
	}
	const port, tcpShift = 9977, 3
	router := startNATPMPRouter(t, ctx, natbox, inside.Addr4, "eth0", natbox.Addr4(), tcpShift)

	base := t.TempDir()
	repo, err := testrepo.Build(filepath.Join(base, "debian"), testrepo.Options{ByHash: true, NoSHA1: true,
		Packages: []testrepo.PackageSpec{
			{Name: "pm-tiny", Size: 40 << 10},
			{Name: "pm-big", Size: 2 << 20},
		}})
	if err != nil {
		t.Fatal(err)
	}
	var mirror *testrepo.Mirror
	if err := mh.Do(func() (err error) {
		mirror, err = testrepo.ServeMirror(netip.AddrPortFrom(mh.Addr4(), 80).String(), base)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer mirror.Close()

	common := []string{"MIN_DOWNLOAD_PEERS=1", "MIRROR_DELAY=5s", "ALLOWED_CLIENTS=10.240.0.0/16", "REACH_INTERVAL=5s", "ADDRESS_FAMILIES=ipv4"}
	r := startDaemonIn(t, rh, "R", rh.Addr4().String(), port, append(common, "apt_p2p_Khashmir.BOOTSTRAP_NODE=yes")...)
	// N listens on every address: its contact is then the external address
	// the DHT learns, not a BIND_ADDRESS on the home network.
	n := startDaemonIn(t, nh, "N", nh.Addr4().String(), port, append(common, "apt_p2p_Khashmir.BOOTSTRAP="+r.addr(),
		"PORT_MAPPING=natpmp", "BIND_ADDRESS=")...)

	const mappedTCP = port + tcpShift
	wantContact := netip.AddrPortFrom(natbox.Addr4(), mappedTCP).String()
	var pm portMapStatus
	waitFor(t, "N's ports to be mapped", 30*time.Second, func() (bool, string) {
		err := n.getJSON("/stats.json", &pm)
		p := pm.PortMap
		return err == nil && p != nil && len(p.Mappings) == 2 && p.External == natbox.Addr4().String() && p.Gateway == inside.Addr4.String(),
			fmt.Sprintf("%+v %v", p, err)
	})
	for i, want := range []struct {
		proto    string
		internal uint16
		external uint16
	}{{"tcp", port, mappedTCP}, {"udp", port, port}} {
		if m := pm.PortMap.Mappings[i]; m.Proto != want.proto || m.Internal != want.internal || m.External != want.external {
			t.Errorf("mapping %d: %+v, want %+v", i, m, want)
		}
	}
	page, err := n.get("/")
	if line := fmt.Sprintf("tcp %d → %s:%d", port, natbox.Addr4(), mappedTCP); err != nil || !strings.Contains(page, "port mapping (natpmp)") || !strings.Contains(page, line) {
		t.Errorf("the status page does not show the mapping %q (%v):\n%s", line, err, page)
	}
	// Reachability is still the probes' verdict (REACH_INTERVAL=5s: two or
	// three rounds; a generous bound, not a timing assertion).
	waitFor(t, "the mapped daemon to find itself reachable", 2*time.Minute, func() (bool, string) {
		st, err := n.reach()
		return err == nil && st.Reach.UDP == "reachable" && st.Reach.TCP == "reachable" && !st.Reach.ReadOnly && st.Reach.Announce,
			fmt.Sprintf("%+v %v", st, err)
	})
	if err := n.getJSON("/stats.json", &pm); err != nil || pm.Contact != wantContact {
		t.Errorf("N's contact %q (%v), want the router's address and mapped port %s", pm.Contact, err, wantContact)
	}

	aptOn := func(h *netbed.Host, d *daemon) {
		t.Helper()
		root := newRoot(t)
		root.Start = h.Start
		if err := root.SetSources(repo.SourcesLine("http://" + d.addr() + "/" + mirror.Addr() + "/debian")); err != nil {
			t.Fatal(err)
		}
		if err := root.Update(ctx); err != nil {
			t.Fatal(err)
		}
		work := t.TempDir()
		if err := root.Download(ctx, work, repo.Names()...); err != nil {
			t.Fatal(err)
		}
		if err := apttest.VerifyFiles(repo, work); err != nil {
			t.Fatal(err)
		}
	}
	var total int64
	for _, p := range repo.Packages {
		total += p.Size
	}
	// N fetches from the mirror and announces itself at the mapped port.
	aptOn(nh, n)
	for _, p := range repo.Packages {
		waitFor(t, "N's announcement of "+p.Name, 30*time.Second, func() (bool, string) {
			l, err := r.lookup(p.SHA256)
			for _, peer := range l.Peers {
				if peer == wantContact {
					return true, ""
				}
			}
			return false, fmt.Sprintf("%+v %v", l, err)
		})
	}
	// R downloads everything from N, through the router's mappings.
	mirror.Reset()
	aptOn(rh, r)
	if got := packageBytes(repo, mirror); got != 0 {
		t.Errorf("R: the mirror sent %d package bytes; all should have come from N", got)
	}
	stN, err := n.reach()
	if err != nil {
		t.Fatal(err)
	}
	if stN.Session.Uploaded < total {
		t.Errorf("N uploaded %d bytes, want all %d package bytes", stN.Session.Uploaded, total)
	}

	// Stopping N deletes its mappings, and with them the router's rules.
	n.stop()
	held, reqs, deleted, err := router.state()
	if err != nil {
		t.Errorf("the NAT-PMP server: %v", err)
	}
	if len(held) != 0 || deleted != 2 {
		t.Errorf("after N stopped the router holds %v (%d deleted), want nothing", held, deleted)
	}
	out, err := natbox.Run(ctx, "nft", "list", "chain", "ip", "nat", "pre")
	if err != nil || strings.Contains(out, "dnat") {
		t.Errorf("DNAT rules left after N stopped (%v):\n%s", err, out)
	}
	t.Logf("NAT-PMP requests by opcode: %v; N: %+v", reqs, stN.Reach)
}
