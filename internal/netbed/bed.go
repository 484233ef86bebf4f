package netbed

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Link is the character of a connection between a host (or the router) and a
// segment: a rate limit each way and an added round-trip time.
type Link struct {
	// Rate is the bit rate each way; 0 leaves the link unshaped (veth speed).
	Rate int64
	// RTT is the added round-trip time, half of it each way; 0 adds none.
	RTT time.Duration
	// Queue is how long the bottleneck queue of a shaped link may hold a packet
	// (tbf latency; at Rate it holds Rate×Queue bits). Zero: max(RTT, 5 ms), about
	// one bandwidth-delay product, enough for a single TCP flow to fill the link.
	Queue time.Duration
}

// The link profiles.
var (
	// LAN is a switched local network: unshaped veth pairs, no added delay
	// (round trips of tens of microseconds).
	LAN = Link{}
	// WAN is a mirror across the internet: 100 Mbit/s each way, 40 ms round trip.
	WAN = Link{Rate: 100_000_000, RTT: 40 * time.Millisecond}
)

func (l Link) zero() bool { return l.Rate <= 0 && l.RTT <= 0 }

func (l Link) String() string {
	if l.zero() {
		return "LAN (unshaped, no added delay)"
	}
	var parts []string
	if l.Rate > 0 {
		parts = append(parts, fmt.Sprintf("%g Mbit/s", float64(l.Rate)/1e6))
	}
	if l.RTT > 0 {
		parts = append(parts, fmt.Sprintf("%v RTT", l.RTT))
	}
	return strings.Join(parts, ", ")
}

// Family says which address families a segment carries.
type Family uint8

const (
	IPv4      Family = 1 << iota // 10.240.<segment>.0/24
	IPv6                         // fd42:0:0:<segment>::/64
	DualStack = IPv4 | IPv6
)

// SegmentConfig describes a segment: one layer-2 network (a bridge).
type SegmentConfig struct {
	// Name is for people reading `ip netns` and logs: lower-case letters and
	// digits, at most 12.
	Name string
	// Family is IPv4 when zero.
	Family Family
	// NoRouter leaves the router off this segment: its hosts reach nothing else
	// unless a host of theirs routes (a LAN behind a NAT host).
	NoRouter bool
	// Uplink is the link between the router and the segment: a mirror behind a
	// WAN link, a site behind its access line. LAN when zero.
	Uplink Link
}

// Segment is one bridged network of a bed. Its addresses are
// 10.240.<Index>.0/24 and fd42:0:0:<Index>::/64; the router is .1 and ::1,
// hosts get .11, .12, … in the order they attach.
type Segment struct {
	Name    string
	Index   int
	Family  Family
	Prefix4 netip.Prefix // invalid when the segment has no IPv4
	Prefix6 netip.Prefix // invalid when the segment has no IPv6
	// Gateway4 and Gateway6 are the router's addresses on the segment (invalid
	// with NoRouter or without that family).
	Gateway4, Gateway6 netip.Addr

	sw       *Namespace // holds the bridge br0
	nextPort int
	nextHost int
}

func (s *Segment) addr4(n int) netip.Addr {
	return netip.AddrFrom4([4]byte{10, 240, byte(s.Index), byte(n)})
}

func (s *Segment) addr6(n int) netip.Addr {
	return netip.AddrFrom16([16]byte{0xfd, 0x42, 6: 0, 7: byte(s.Index), 14: byte(n >> 8), 15: byte(n)})
}

// Host is a namespace with interfaces on segments: a machine of the bed (the
// router is one too). Its Namespace runs its processes and sockets.
type Host struct {
	*Namespace
	HostName string
	// Ifaces are its interfaces in the order attached (eth0, eth1, …).
	Ifaces []*Iface
	router bool
}

// Iface is one interface of a host on a segment.
type Iface struct {
	Name         string // eth0, …
	Segment      *Segment
	Addr4, Addr6 netip.Addr // invalid for a family the segment does not carry
}

// Addr4 is the host's first IPv4 address (invalid if it has none).
func (h *Host) Addr4() netip.Addr {
	for _, i := range h.Ifaces {
		if i.Addr4.IsValid() {
			return i.Addr4
		}
	}
	return netip.Addr{}
}

// Addr6 is the host's first IPv6 address (invalid if it has none).
func (h *Host) Addr6() netip.Addr {
	for _, i := range h.Ifaces {
		if i.Addr6.IsValid() {
			return i.Addr6
		}
	}
	return netip.Addr{}
}

// Addr is the host's first address, IPv4 if it has one.
func (h *Host) Addr() netip.Addr {
	if a := h.Addr4(); a.IsValid() {
		return a
	}
	return h.Addr6()
}

// Bed is one private network made of namespaces: a router, segments (bridges)
// attached to it, and hosts on the segments, with shaped and delayed links
// where asked. Nothing of it is visible from the test process's own namespace.
type Bed struct {
	// ID prefixes every namespace name of the bed: netbed-<pid>-<start>-<n>.
	ID string

	mu     sync.Mutex
	closed bool
	nss    []*Namespace // in creation order
	router *Host
	segs   []*Segment
	hosts  map[string]*Host
	links  []*delayedLink
	nlinks int
	// ifindex is the last interface index given to a veth end.
	ifindex int
}

type delayedLink struct {
	taps  []*os.File
	lines []*delayLine
	wg    sync.WaitGroup
}

// Options configures New.
type Options struct {
	// KeepStale leaves namespaces of earlier, dead runs in place (by default New
	// removes them first).
	KeepStale bool
}

const namePrefix = "netbed-"

var bedSeq atomic.Int64

// ErrPrerequisite wraps what New found missing on this machine.
var ErrPrerequisite = errors.New("netbed: prerequisite missing")

// New checks that this machine can build beds, removes namespaces left by
// earlier runs that died (their creating process is gone), and creates a bed
// with its router. Close it when done (t.Cleanup(bed.Close)).
func New(opts Options) (*Bed, error) {
	if err := Check(); err != nil {
		return nil, err
	}
	if !opts.KeepStale {
		if _, err := CleanStale(); err != nil {
			return nil, err
		}
	}
	start, err := procStart(os.Getpid())
	if err != nil {
		return nil, err
	}
	b := &Bed{ID: fmt.Sprintf("%s%d-%d-%d", namePrefix, os.Getpid(), start, bedSeq.Add(1)), hosts: map[string]*Host{}}
	rt, err := b.newNS("rt")
	if err != nil {
		return nil, err
	}
	err = rt.Sysctl(map[string]string{
		"net/ipv4/ip_forward":              "1",
		"net/ipv6/conf/all/forwarding":     "1",
		"net/ipv6/conf/default/forwarding": "1",
	})
	if err != nil {
		b.Close()
		return nil, err
	}
	b.router = &Host{Namespace: rt, HostName: "router", router: true}
	return b, nil
}

// Check reports what this machine lacks to build beds, with what to do about
// it: root, iproute2's ip and tc, and network namespace support.
func Check() error {
	if os.Geteuid() != 0 {
		return fmt.Errorf("%w: network namespaces need root (CAP_SYS_ADMIN, CAP_NET_ADMIN); run the tests as root, as CI does", ErrPrerequisite)
	}
	for _, tool := range []string{"ip", "tc"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("%w: %s not found: install iproute2 (bash scripts/install-deps.sh test)", ErrPrerequisite, tool)
		}
	}
	if _, err := os.Stat("/proc/self/ns/net"); err != nil {
		return fmt.Errorf("%w: the kernel has no network namespaces (CONFIG_NET_NS): %v", ErrPrerequisite, err)
	}
	return nil
}

func (b *Bed) newNS(role string) (*Namespace, error) {
	ns, err := newNamespace(b.ID + "-" + role)
	if err != nil {
		return nil, err
	}
	b.nss = append(b.nss, ns)
	return ns, nil
}

// Router is the bed's router: forwarding on, one interface on every routed
// segment.
func (b *Bed) Router() *Host { return b.router }

var nameRE = regexp.MustCompile(`^[a-z][a-z0-9]{0,11}$`)

// AddSegment creates a segment and, unless cfg.NoRouter, attaches the router to
// it through cfg.Uplink.
func (b *Bed) AddSegment(cfg SegmentConfig) (*Segment, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil, ErrClosed
	}
	if !nameRE.MatchString(cfg.Name) {
		return nil, fmt.Errorf("netbed: segment name %q: want 1-12 lower-case letters and digits", cfg.Name)
	}
	if len(b.segs) >= 127 {
		return nil, errors.New("netbed: at most 127 segments")
	}
	if cfg.Family == 0 {
		cfg.Family = IPv4
	}
	s := &Segment{Name: cfg.Name, Index: len(b.segs) + 1, Family: cfg.Family, nextHost: 11}
	if cfg.Family&IPv4 != 0 {
		s.Prefix4 = netip.PrefixFrom(s.addr4(0), 24)
	}
	if cfg.Family&IPv6 != 0 {
		s.Prefix6 = netip.PrefixFrom(s.addr6(0), 64)
	}
	sw, err := b.newNS(fmt.Sprintf("sw%d-%s", s.Index, s.Name))
	if err != nil {
		return nil, err
	}
	// No STP and no multicast snooping: every port forwards at once and
	// multicast (LAN discovery) reaches every host.
	if err := sw.IP("link add name br0 type bridge stp_state 0 forward_delay 0 mcast_snooping 0", "link set br0 up"); err != nil {
		return nil, err
	}
	s.sw = sw
	b.segs = append(b.segs, s)
	if !cfg.NoRouter {
		ifc, err := b.attach(b.router, s, cfg.Uplink, 1)
		if err != nil {
			return nil, err
		}
		s.Gateway4, s.Gateway6 = ifc.Addr4, ifc.Addr6
	}
	return s, nil
}

// AddHost creates a host with one interface on seg, reached through link. Its
// default routes point at the segment's router.
func (b *Bed) AddHost(name string, seg *Segment, link Link) (*Host, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil, ErrClosed
	}
	if !nameRE.MatchString(name) {
		return nil, fmt.Errorf("netbed: host name %q: want 1-12 lower-case letters and digits", name)
	}
	if _, dup := b.hosts[name]; dup || name == "router" {
		return nil, fmt.Errorf("netbed: host %q exists", name)
	}
	ns, err := b.newNS("h-" + name)
	if err != nil {
		return nil, err
	}
	h := &Host{Namespace: ns, HostName: name}
	b.hosts[name] = h
	if _, err := b.attach(h, seg, link, 0); err != nil {
		return nil, err
	}
	return h, nil
}

// Attach gives h another interface, on seg through link (a multi-homed host:
// a NAT box between two segments). No route is added for it beyond the
// segment's own.
func (b *Bed) Attach(h *Host, seg *Segment, link Link) (*Iface, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil, ErrClosed
	}
	return b.attach(h, seg, link, 0)
}

// attach connects h to seg through link; hostNum 0 takes the segment's next
// host number. A host's first interface on a routed segment gets the default
// routes.
func (b *Bed) attach(h *Host, seg *Segment, link Link, hostNum int) (*Iface, error) {
	if hostNum == 0 {
		if seg.nextHost > 250 {
			return nil, fmt.Errorf("netbed: segment %s is full", seg.Name)
		}
		hostNum = seg.nextHost
		seg.nextHost++
	}
	ifname := "eth" + strconv.Itoa(len(h.Ifaces))
	if h.router {
		ifname = "s" + strconv.Itoa(seg.Index)
	}
	port := "p" + strconv.Itoa(seg.nextPort)
	seg.nextPort++
	if link.zero() {
		if err := h.IP(b.veth(ifname, port, seg.sw.Name)); err != nil {
			return nil, err
		}
	} else if err := b.addLink(h, ifname, seg, port, link); err != nil {
		return nil, err
	}
	if err := seg.sw.IP("link set "+port+" master br0", "link set "+port+" up"); err != nil {
		return nil, err
	}
	ifc := &Iface{Name: ifname, Segment: seg}
	var cmds []string
	if seg.Family&IPv4 != 0 {
		ifc.Addr4 = seg.addr4(hostNum)
		cmds = append(cmds, fmt.Sprintf("addr add %s/24 dev %s", ifc.Addr4, ifname))
	}
	if seg.Family&IPv6 != 0 {
		ifc.Addr6 = seg.addr6(hostNum)
		cmds = append(cmds, fmt.Sprintf("addr add %s/64 dev %s nodad", ifc.Addr6, ifname))
	}
	cmds = append(cmds, "link set "+ifname+" up")
	if !h.router && !h.hasDefault() {
		if seg.Gateway4.IsValid() {
			cmds = append(cmds, "route add default via "+seg.Gateway4.String())
		}
		if seg.Gateway6.IsValid() {
			cmds = append(cmds, "route add ::/0 via "+seg.Gateway6.String())
		}
	}
	if err := h.IP(cmds...); err != nil {
		return nil, err
	}
	h.Ifaces = append(h.Ifaces, ifc)
	return ifc, nil
}

// veth is the ip command that creates a veth pair, name here and peer in the
// namespace peerNS. Every veth of a bed gets its own interface index: each
// namespace numbers its interfaces from 1, so the two ends of a pair would
// often share an index, and the kernel takes a device whose index equals its
// link's for one with no lower device and handles its carrier changes in the
// once-a-second batch (linkwatch), leaving a fresh port dropping frames for up
// to a second.
func (b *Bed) veth(name, peer, peerNS string) string {
	b.ifindex += 2
	return fmt.Sprintf("link add name %s index %d type veth peer name %s index %d netns %s",
		name, 999+b.ifindex, peer, 1000+b.ifindex, peerNS)
}

func (h *Host) hasDefault() bool {
	for _, i := range h.Ifaces {
		if i.Segment.Gateway4.IsValid() || i.Segment.Gateway6.IsValid() {
			return true
		}
	}
	return false
}

// addLink puts a link namespace between h's interface ifname and the segment's
// port: veth tohost faces the host, veth toseg the segment. Each has a tbf
// queue at link.Rate on its way out (the bottleneck sits in the middle of the
// path, as at a router, not in a sender's own qdisc). With an RTT the two are
// not bridged directly: each is bridged to a TAP device (taph, taps) and a
// delay line in this process moves frames from one TAP to the other RTT/2
// later, each way.
func (b *Bed) addLink(h *Host, ifname string, seg *Segment, port string, link Link) error {
	b.nlinks++
	ln, err := b.newNS("ln" + strconv.Itoa(b.nlinks))
	if err != nil {
		return err
	}
	if err := h.IP(b.veth(ifname, "tohost", ln.Name)); err != nil {
		return err
	}
	if err := ln.IP(b.veth("toseg", port, seg.sw.Name)); err != nil {
		return err
	}
	const br = "type bridge stp_state 0 forward_delay 0 mcast_snooping 0"
	if link.RTT <= 0 {
		if err := ln.IP("link add name br0 "+br, "link set tohost master br0", "link set toseg master br0",
			"link set br0 up", "link set tohost up", "link set toseg up"); err != nil {
			return err
		}
	} else {
		dl := &delayedLink{}
		b.links = append(b.links, dl)
		err := ln.Do(func() error {
			for _, name := range []string{"taph", "taps"} {
				f, err := openTap(name)
				if err != nil {
					return err
				}
				dl.taps = append(dl.taps, f)
			}
			return nil
		})
		if err != nil {
			return err
		}
		if err := ln.IP("link add name brh "+br, "link add name brs "+br,
			"link set tohost master brh", "link set taph master brh", "link set toseg master brs", "link set taps master brs",
			"link set brh up", "link set brs up", "link set taph up", "link set taps up", "link set tohost up", "link set toseg up"); err != nil {
			return err
		}
		oneWay := link.RTT / 2
		dl.lines = []*delayLine{
			newDelayLine(dl.taps[0], dl.taps[1], oneWay, realClock{}, delayQueue), // host → segment
			newDelayLine(dl.taps[1], dl.taps[0], link.RTT-oneWay, realClock{}, delayQueue),
		}
		for _, l := range dl.lines {
			dl.wg.Go(l.run)
		}
	}
	if link.Rate > 0 {
		q := link.Queue
		if q <= 0 {
			q = max(link.RTT, 5*time.Millisecond)
		}
		// The bucket holds 2 ms at the rate (at least 16 KiB): hrtimer-driven tbf
		// keeps the rate with that, and frames larger than it (GSO) are split.
		burst := max(int64(16<<10), link.Rate/8/500)
		var cmds []string
		for _, dev := range []string{"tohost", "toseg"} {
			cmds = append(cmds, fmt.Sprintf("qdisc replace dev %s root tbf rate %dbit burst %d latency %dus",
				dev, link.Rate, burst, q.Microseconds()))
		}
		if err := ln.TC(cmds...); err != nil {
			return err
		}
	}
	return nil
}

// LinkStats are the counters of a bed's delay lines.
type LinkStats struct {
	Forwarded, Dropped, WriteErrors int64
}

// LinkStats sums the counters of every delay line of the bed.
func (b *Bed) LinkStats() LinkStats {
	b.mu.Lock()
	defer b.mu.Unlock()
	var s LinkStats
	for _, dl := range b.links {
		for _, l := range dl.lines {
			s.Forwarded += l.Forwarded.Load()
			s.Dropped += l.Dropped.Load()
			s.WriteErrors += l.WriteErrs.Load()
		}
	}
	return s
}

// Namespaces lists the names of the bed's namespaces, in creation order.
func (b *Bed) Namespaces() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []string
	for _, ns := range b.nss {
		out = append(out, ns.Name)
	}
	return out
}

// Close kills whatever still runs inside the bed's namespaces, stops the delay
// lines and deletes the namespaces (which deletes their interfaces). It is safe
// to call more than once.
func (b *Bed) Close() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	nss, links := b.nss, b.links
	b.mu.Unlock()
	var errs []error
	for _, ns := range nss {
		killInside(ns.Name)
	}
	for _, dl := range links {
		for _, f := range dl.taps {
			f.Close()
		}
		dl.wg.Wait()
	}
	for i := len(nss) - 1; i >= 0; i-- {
		if err := nss[i].close(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// killInside kills (SIGKILL) every process in the named namespace: daemons
// and apt-get runs a test or an earlier, killed run started there.
func killInside(name string) {
	out, err := exec.Command("ip", "netns", "pids", name).Output()
	if err != nil {
		return
	}
	for _, f := range strings.Fields(string(out)) {
		if pid, err := strconv.Atoi(f); err == nil && pid != os.Getpid() {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}

var staleRE = regexp.MustCompile(`^netbed-(\d+)-(\d+)-\d+-`)

// CleanStale removes the namespaces of beds whose creating process is gone (a
// test killed by a timeout or a signal never runs its cleanups), killing any
// process left inside them. Namespaces of running beds, and any namespace
// not named by this package, are left alone. It returns the names removed.
func CleanStale() ([]string, error) {
	ents, err := os.ReadDir(netnsDir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("netbed: listing %s: %w", netnsDir, err)
	}
	var removed []string
	var errs []error
	for _, e := range ents {
		m := staleRE.FindStringSubmatch(e.Name())
		if m == nil {
			continue
		}
		pid, _ := strconv.Atoi(m[1])
		start, _ := strconv.ParseUint(m[2], 10, 64)
		if st, err := procStart(pid); err == nil && st == start {
			continue // its bed is still running
		}
		killInside(e.Name())
		if err := deleteNamespace(e.Name()); err != nil {
			errs = append(errs, err)
			continue
		}
		removed = append(removed, e.Name())
	}
	return removed, errors.Join(errs...)
}

// procStart is the start time of process pid (clock ticks since boot, field 22
// of /proc/<pid>/stat): with the pid it names one process even across pid reuse.
func procStart(pid int) (uint64, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, fmt.Errorf("netbed: malformed /proc/%d/stat", pid)
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 20 {
		return 0, fmt.Errorf("netbed: malformed /proc/%d/stat", pid)
	}
	return strconv.ParseUint(f[19], 10, 64)
}
