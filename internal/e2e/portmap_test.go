package e2e

import (
	"context"
	be "encoding/binary"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apt-p2p/apt-p2p/internal/netbed"
	"github.com/apt-p2p/apt-p2p/internal/testrepo"
)

// testRouter is the port-mapping side of a test's NAT box: each mapping a
// client asks for becomes a real nft DNAT rule on the WAN interface, removed
// when the mapping is deleted. natPMP and upnp are its two front ends.
type testRouter struct {
	t   *testing.T
	ctx context.Context
	box *netbed.Host
	wan string // interface name
	ext netip.Addr

	mu       sync.Mutex
	mappings map[pmKey]pmMapping
	requests map[string]int // by protocol and operation
	deleted  int
	errs     []error
}

type pmKey struct {
	proto string // tcp, udp
	ext   uint16
}

type pmMapping struct {
	client   netip.Addr
	internal uint16
	handle   string // the nft rule's
}

var nftHandle = regexp.MustCompile(`# handle (\d+)`)

func newTestRouter(t *testing.T, ctx context.Context, box *netbed.Host, wan string, ext netip.Addr) *testRouter {
	t.Helper()
	if out, err := box.Run(ctx, "nft", "add", "chain", "ip", "nat", "pre", "{ type nat hook prerouting priority -100 ; }"); err != nil {
		t.Fatalf("nft prerouting chain: %v %s", err, out)
	}
	return &testRouter{t: t, ctx: ctx, box: box, wan: wan, ext: ext, mappings: map[pmKey]pmMapping{}, requests: map[string]int{}}
}

// find is the external port mapped to client:internal (r.mu held).
func (r *testRouter) find(proto string, client netip.Addr, internal uint16) (uint16, bool) {
	for k, m := range r.mappings {
		if k.proto == proto && m.client == client && m.internal == internal {
			return k.ext, true
		}
	}
	return 0, false
}

// add maps ext to client:internal with a DNAT rule (r.mu held). A port
// mapped to another client is refused.
func (r *testRouter) add(proto string, ext uint16, client netip.Addr, internal uint16) error {
	k := pmKey{proto, ext}
	if m, ok := r.mappings[k]; ok {
		if m.client == client && m.internal == internal {
			return nil // a renewal
		}
		return fmt.Errorf("%s/%d is mapped to %s:%d", proto, ext, m.client, m.internal)
	}
	out, err := r.box.Run(r.ctx, "nft", "--echo", "--handle", "add", "rule", "ip", "nat", "pre", "iifname", r.wan,
		proto, "dport", strconv.Itoa(int(ext)), "dnat", "to", netip.AddrPortFrom(client, internal).String())
	h := nftHandle.FindStringSubmatch(out)
	if err != nil || h == nil {
		err = fmt.Errorf("nft add rule: %v %q", err, out)
		r.errs = append(r.errs, err)
		return err
	}
	r.mappings[k] = pmMapping{client: client, internal: internal, handle: h[1]}
	return nil
}

// del deletes the mapping of ext and its rule (r.mu held).
func (r *testRouter) del(proto string, ext uint16) error {
	k := pmKey{proto, ext}
	m, ok := r.mappings[k]
	if !ok {
		return nil
	}
	if out, err := r.box.Run(r.ctx, "nft", "delete", "rule", "ip", "nat", "pre", "handle", m.handle); err != nil {
		err = fmt.Errorf("nft delete rule: %v %s", err, out)
		r.errs = append(r.errs, err)
		return err
	}
	delete(r.mappings, k)
	r.deleted++
	return nil
}

// state is the mappings held and the requests seen.
func (r *testRouter) state() (map[pmKey]pmMapping, map[string]int, int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	m := map[pmKey]pmMapping{}
	for k, v := range r.mappings {
		m[k] = v
	}
	q := map[string]int{}
	for k, v := range r.requests {
		q[k] = v
	}
	return m, q, r.deleted, errors.Join(r.errs...)
}

// serveNATPMP answers NAT-PMP (RFC 6886) on inside, UDP 5351. TCP mappings
// get the suggested port plus tcpShift (a router whose port is taken by
// another machine's forward), UDP ones the port suggested.
func (r *testRouter) serveNATPMP(inside netip.Addr, tcpShift uint16) {
	c, err := r.box.ListenPacket("udp4", netip.AddrPortFrom(inside, 5351).String())
	if err != nil {
		r.t.Fatal(err)
	}
	done := make(chan struct{})
	r.t.Cleanup(func() { c.Close(); <-done })
	start := time.Now()
	go func() {
		defer close(done)
		buf := make([]byte, 64)
		for {
			n, from, err := c.ReadFrom(buf)
			if err != nil {
				return
			}
			if ua, ok := from.(*net.UDPAddr); ok {
				epoch := uint32(time.Since(start) / time.Second)
				if reply := r.natPMP(buf[:n], ua.AddrPort().Addr().Unmap(), epoch, tcpShift); reply != nil {
					c.WriteTo(reply, from)
				}
			}
		}
	}()
}

// natPMP answers one NAT-PMP request (RFC 6886 §3.2, §3.3); nil drops it.
func (r *testRouter) natPMP(req []byte, client netip.Addr, epoch uint32, tcpShift uint16) []byte {
	if len(req) < 2 || req[0] != 0 {
		return nil
	}
	op := req[1]
	r.mu.Lock()
	defer r.mu.Unlock()
	r.requests[fmt.Sprintf("natpmp op %d", op)]++
	switch {
	case op == 0 && len(req) == 2:
		b := []byte{0, 128, 0, 0}
		b = be.BigEndian.AppendUint32(b, epoch)
		return append(b, r.ext.AsSlice()...)
	case (op == 1 || op == 2) && len(req) == 12:
		proto := map[byte]string{1: "udp", 2: "tcp"}[op]
		internal := be.BigEndian.Uint16(req[4:6])
		suggested := be.BigEndian.Uint16(req[6:8])
		life := be.BigEndian.Uint32(req[8:12])
		ext, have := r.find(proto, client, internal)
		var result uint16
		switch {
		case life == 0: // deletion
			if have && r.del(proto, ext) != nil {
				result = 3 // network failure
			}
			ext = 0
		case !have:
			ext = suggested
			if ext == 0 {
				ext = internal
			}
			if op == 2 {
				ext += tcpShift
			}
			if r.add(proto, ext, client, internal) != nil {
				result, ext, life = 3, 0, 0
			}
		}
		b := []byte{0, 128 + op}
		b = be.BigEndian.AppendUint16(b, result)
		b = be.BigEndian.AppendUint32(b, epoch)
		b = be.BigEndian.AppendUint16(b, internal)
		b = be.BigEndian.AppendUint16(b, ext)
		return be.BigEndian.AppendUint32(b, life)
	}
	b := []byte{0, 128 + op, 0, 5} // unsupported opcode
	return be.BigEndian.AppendUint32(b, epoch)
}

const (
	ssdpGroup   = "239.255.255.250:1900"
	upnpService = "urn:schemas-upnp-org:service:WANIPConnection:1"
)

// serveUPnP is an Internet Gateway Device on the inside interface: SSDP
// answers to searches for WANIPConnection:1, a device description and the
// SOAP actions a client needs (GetExternalIPAddress, AddPortMapping,
// DeletePortMapping). The TCP ports in taken are another machine's: asking
// for one gets 718 ConflictInMappingEntry.
func (r *testRouter) serveUPnP(iface string, inside netip.Addr, taken ...uint16) {
	var ssdp *net.UDPConn
	if err := r.box.Do(func() error {
		ifi, err := net.InterfaceByName(iface)
		if err != nil {
			return err
		}
		ssdp, err = net.ListenMulticastUDP("udp4", ifi, net.UDPAddrFromAddrPort(netip.MustParseAddrPort(ssdpGroup)))
		return err
	}); err != nil {
		r.t.Fatal(err)
	}
	ln, err := r.box.Listen("tcp4", netip.AddrPortFrom(inside, 0).String())
	if err != nil {
		r.t.Fatal(err)
	}
	loc := "http://" + ln.Addr().String() + "/rootDesc.xml"
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, q *http.Request) {
		client, _ := netip.ParseAddrPort(q.RemoteAddr)
		switch q.URL.Path {
		case "/rootDesc.xml":
			r.mu.Lock()
			r.requests["upnp description"]++
			r.mu.Unlock()
			w.Header().Set("Content-Type", `text/xml; charset="utf-8"`)
			io.WriteString(w, igdDescription)
		case "/ctl/IPConn":
			r.soap(w, q, client.Addr().Unmap(), taken)
		default:
			http.NotFound(w, q)
		}
	})}
	done := make(chan struct{})
	go func() { srv.Serve(ln) }()
	go func() {
		defer close(done)
		buf := make([]byte, 2048)
		for {
			n, from, err := ssdp.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			req := string(buf[:n])
			if !strings.HasPrefix(req, "M-SEARCH") {
				continue
			}
			st := ""
			for _, l := range strings.Split(req, "\r\n") {
				if k, v, ok := strings.Cut(l, ":"); ok && strings.EqualFold(strings.TrimSpace(k), "ST") {
					st = strings.TrimSpace(v)
				}
			}
			r.mu.Lock()
			r.requests["ssdp "+st]++
			r.mu.Unlock()
			if st != upnpService && st != "ssdp:all" {
				continue
			}
			reply := "HTTP/1.1 200 OK\r\nCACHE-CONTROL: max-age=120\r\nST: " + upnpService + "\r\nUSN: uuid:aptp2p-test-igd-1::" + upnpService +
				"\r\nEXT:\r\nSERVER: Linux UPnP/1.1 apt-p2p-test/1\r\nLOCATION: " + loc + "\r\n\r\n"
			ssdp.WriteToUDPAddrPort([]byte(reply), from)
		}
	}()
	r.t.Cleanup(func() {
		ssdp.Close()
		srv.Close()
		<-done
	})
}

// soap answers one SOAP action of WANIPConnection:1.
func (r *testRouter) soap(w http.ResponseWriter, q *http.Request, client netip.Addr, taken []uint16) {
	action := strings.Trim(q.Header.Get("SOAPAction"), `"`)
	_, action, _ = strings.Cut(action, "#")
	args := map[string]string{}
	dec := xml.NewDecoder(io.LimitReader(q.Body, 1<<16))
	var name string
	for {
		tok, err := dec.Token()
		if err != nil {
			break
		}
		switch t := tok.(type) {
		case xml.StartElement:
			name = t.Name.Local
		case xml.CharData:
			args[name] += string(t)
		case xml.EndElement:
			name = ""
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.requests["upnp "+action]++
	port, _ := strconv.Atoi(args["NewExternalPort"])
	proto := strings.ToLower(args["NewProtocol"])
	out := ""
	fault := func(code int, desc string) {
		w.Header().Set("Content-Type", `text/xml; charset="utf-8"`)
		w.WriteHeader(http.StatusInternalServerError)
		fmt.Fprintf(w, `<?xml version="1.0"?><s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/" s:encodingStyle="http://schemas.xmlsoap.org/soap/encoding/"><s:Body><s:Fault><faultcode>s:Client</faultcode><faultstring>UPnPError</faultstring><detail><UPnPError xmlns="urn:schemas-upnp-org:control-1-0"><errorCode>%d</errorCode><errorDescription>%s</errorDescription></UPnPError></detail></s:Fault></s:Body></s:Envelope>`, code, desc)
	}
	switch action {
	case "GetExternalIPAddress":
		out = "<NewExternalIPAddress>" + r.ext.String() + "</NewExternalIPAddress>"
	case "AddPortMapping":
		internal, _ := strconv.Atoi(args["NewInternalPort"])
		to, err := netip.ParseAddr(args["NewInternalClient"])
		if err != nil || to != client || port == 0 || internal == 0 || (proto != "tcp" && proto != "udp") {
			fault(402, "Invalid Args")
			return
		}
		if proto == "tcp" && slices.Contains(taken, uint16(port)) {
			fault(718, "ConflictInMappingEntry")
			return
		}
		if err := r.add(proto, uint16(port), client, uint16(internal)); err != nil {
			fault(718, "ConflictInMappingEntry")
			return
		}
	case "DeletePortMapping":
		if m, ok := r.mappings[pmKey{proto, uint16(port)}]; !ok || m.client != client {
			fault(714, "NoSuchEntryInArray")
			return
		}
		if err := r.del(proto, uint16(port)); err != nil {
			fault(501, "Action Failed")
			return
		}
	default:
		fault(401, "Invalid Action")
		return
	}
	w.Header().Set("Content-Type", `text/xml; charset="utf-8"`)
	fmt.Fprintf(w, `<?xml version="1.0"?><s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/" s:encodingStyle="http://schemas.xmlsoap.org/soap/encoding/"><s:Body><u:%sResponse xmlns:u="%s">%s</u:%sResponse></s:Body></s:Envelope>`,
		action, upnpService, out, action)
}

const igdDescription = `<?xml version="1.0"?>
<root xmlns="urn:schemas-upnp-org:device-1-0">
<specVersion><major>1</major><minor>0</minor></specVersion>
<device>
<deviceType>urn:schemas-upnp-org:device:InternetGatewayDevice:1</deviceType>
<friendlyName>apt-p2p test router</friendlyName><UDN>uuid:aptp2p-test-igd-1</UDN>
<deviceList><device>
<deviceType>urn:schemas-upnp-org:device:WANDevice:1</deviceType><UDN>uuid:aptp2p-test-igd-2</UDN>
<deviceList><device>
<deviceType>urn:schemas-upnp-org:device:WANConnectionDevice:1</deviceType><UDN>uuid:aptp2p-test-igd-3</UDN>
<serviceList><service>
<serviceType>urn:schemas-upnp-org:service:WANIPConnection:1</serviceType>
<serviceId>urn:upnp-org:serviceId:WANIPConn1</serviceId>
<controlURL>/ctl/IPConn</controlURL><eventSubURL>/evt/IPConn</eventSubURL><SCPDURL>/WANIPCn.xml</SCPDURL>
</service></serviceList>
</device></deviceList>
</device></deviceList>
</device>
</root>
`

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
// PORT_MAPPING set and a NAT box whose port-mapping server (NAT-PMP, or a
// UPnP IGD found by SSDP, with PORT_MAPPING = upnp or auto) installs real DNAT rules. The daemon finds the
// router, maps its TCP and UDP ports (the router gives another TCP port than
// the local one), and the reachability check, not the mapping, then finds it
// reachable over UDP and TCP. It announces itself at the mapped port, and a
// daemon outside downloads every .deb of a real apt-get run from it through
// the router. When it stops, it deletes its mappings. (Without PORT_MAPPING
// the same daemon stays unreachable: TestNATedDaemon.)
//
//	seg a: R, mirror      seg wan: natbox ─┐
//	                      seg home (no router): natbox, N
func TestPortMappedDaemon(t *testing.T) {
	// upnp and auto run against a router that speaks UPnP only: with auto,
	// NAT-PMP is refused (no server on 5351) and the daemon falls back to
	// UPnP; with upnp it asks UPnP alone.
	for _, mode := range []string{"natpmp", "upnp", "auto"} {
		t.Run(mode, func(t *testing.T) { portMappedDaemon(t, mode) })
	}
}

func portMappedDaemon(t *testing.T, mode string) {
	bed := newBed(t)
	var err error
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
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	natRouter(t, ctx, natbox, nh, inside)
	const port = 9977
	router := newTestRouter(t, ctx, natbox, "eth0", natbox.Addr4())
	var mappedTCP uint16
	switch mode {
	case "natpmp":
		router.serveNATPMP(inside.Addr4, 3) // grants TCP port+3
		mappedTCP = port + 3
	case "upnp", "auto":
		router.serveUPnP(inside.Name, inside.Addr4, port) // TCP port is taken: the client tries the next
		mappedTCP = port + 1
	}

	repo, mirror := mirrorIn(t, mh, mh.Addr4(),
		testrepo.PackageSpec{Name: "pm-tiny", Size: 40 << 10},
		testrepo.PackageSpec{Name: "pm-big", Size: 2 << 20})

	common := []string{"MIN_DOWNLOAD_PEERS=1", "MIRROR_DELAY=5s", "ALLOWED_CLIENTS=10.240.0.0/16", "REACH_INTERVAL=5s", "ADDRESS_FAMILIES=ipv4"}
	r := startDaemonIn(t, rh, "R", rh.Addr4().String(), port, append(common, "apt_p2p_Khashmir.BOOTSTRAP_NODE=yes")...)
	// N listens on every address: its contact is then the external address
	// the DHT learns, not a BIND_ADDRESS on the home network.
	n := startDaemonIn(t, nh, "N", nh.Addr4().String(), port, append(common, "apt_p2p_Khashmir.BOOTSTRAP="+r.addr(),
		"PORT_MAPPING="+mode, "BIND_ADDRESS=")...)

	wantContact := netip.AddrPortFrom(natbox.Addr4(), mappedTCP).String()
	began := time.Now()
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
	t.Logf("%s: mapped after %s", mode, time.Since(began).Round(time.Millisecond))
	page, err := n.get("/")
	if line := fmt.Sprintf("tcp %d → %s:%d", port, natbox.Addr4(), mappedTCP); err != nil || !strings.Contains(page, "port mapping ("+mode+")") || !strings.Contains(page, line) {
		t.Errorf("the status page does not show the mapping %q (%v):\n%s", line, err, page)
	}
	metric := fmt.Sprintf(`aptp2p_port_mapped{proto="tcp",internal="%d"} %d`, port, mappedTCP)
	if m, err := n.get("/metrics"); err != nil || !strings.Contains(m, metric) {
		t.Errorf("/metrics lacks %s (%v)", metric, err)
	}
	if out, err := nh.Run(ctx, binary, "status", "--addr", n.addr()); err != nil || !strings.Contains(out, "port mapping ("+mode+"): ") {
		t.Errorf("apt-p2p status does not show the mapping (%v):\n%s", err, out)
	}
	// Reachability is still the probes' verdict (REACH_INTERVAL=5s: two or
	// three rounds; a generous bound, not a timing assertion).
	waitFor(t, "the mapped daemon to find itself reachable", 2*time.Minute, func() (bool, string) {
		st, err := n.reach()
		return err == nil && st.Reach.UDP == "reachable" && st.Reach.TCP == "reachable" && !st.Reach.ReadOnly && st.Reach.Announce,
			fmt.Sprintf("%+v %v", st, err)
	})
	t.Logf("%s: reachable after %s", mode, time.Since(began).Round(time.Millisecond))
	if err := n.getJSON("/stats.json", &pm); err != nil || pm.Contact != wantContact {
		t.Errorf("N's contact %q (%v), want the router's address and mapped port %s", pm.Contact, err, wantContact)
	}

	var total int64
	for _, p := range repo.Packages {
		total += p.Size
	}
	// N fetches from the mirror and announces itself at the mapped port.
	aptGet(t, ctx, nh, n, repo, mirror, false)
	waitAnnounced(t, r, repo, wantContact, "N")
	t.Logf("%s: announced after %s", mode, time.Since(began).Round(time.Millisecond))
	// R downloads everything from N, through the router's mappings.
	mirror.Reset()
	aptGet(t, ctx, rh, r, repo, mirror, false)
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
		t.Errorf("the router: %v", err)
	}
	if len(held) != 0 || deleted != 2 {
		t.Errorf("after N stopped the router holds %v (%d deleted), want nothing", held, deleted)
	}
	out, err := natbox.Run(ctx, "nft", "list", "chain", "ip", "nat", "pre")
	if err != nil || strings.Contains(out, "dnat") {
		t.Errorf("DNAT rules left after N stopped (%v):\n%s", err, out)
	}
	t.Logf("requests to the router: %v; N: %+v", reqs, stN.Reach)
}
