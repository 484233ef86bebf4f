package lan

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/apt-p2p/apt-p2p/internal/clock"
)

// ServiceConfig configures a Service.
type ServiceConfig struct {
	Config
	// Bind is BIND_ADDRESS: announce only on the interface holding it, in its
	// family. Invalid or unspecified: every multicast interface, both
	// families. A loopback address leaves nothing to announce on.
	Bind netip.Addr
	// Port is the groups' UDP port; 0: Port.
	Port int
	// Clock drives the schedule; nil: clock.Real.
	Clock clock.Clock
	// Interfaces lists the candidate interfaces; nil: SystemInterfaces. It is
	// called at Start and every Rescan (interfaces come and go).
	Interfaces func() ([]Iface, error)
	// Rescan: how often the interfaces are listed again (1 min when 0).
	Rescan time.Duration
	// Families are the families to announce and listen in (ADDRESS_FAMILIES);
	// nil: both. Bind narrows them further to its own.
	Families []Family
	// Introduce is given every peer heard (the DHT pings it unless it knows
	// it); it is called without the service's lock held, from its reading
	// goroutines.
	Introduce func(Peer)
	// OnLinks, if set, is given the subnets of the links in use (each
	// interface address with its prefix length, in the link's family) by
	// Start and whenever a rescan changes them: LAN peers can only come
	// from there (the DHT's reachability check takes nothing from there as
	// evidence of being reachable from elsewhere). Called without the
	// service's lock held.
	OnLinks func([]netip.Prefix)
	Logger  *slog.Logger
}

// ErrClosed is returned for work asked of a closed Service.
var ErrClosed = errors.New("lan: service closed")

// Service runs a Core on real multicast sockets: one per family, bound to
// the group, created by Start (so on the calling thread's network
// namespace), one reading goroutine per socket and one for the schedule.
type Service struct {
	cfg  ServiceConfig
	clk  clock.Clock
	log  *slog.Logger
	fams []Family

	mu      sync.Mutex // guards everything below, and the core
	core    *Core
	conns   map[Family]*groupConn
	joined  map[Link]bool
	nets    []netip.Prefix // the links' subnets, as last given to OnLinks
	intro   []Peer         // introductions collected under mu, handed out after
	lastErr error
	closed  bool

	wake    chan struct{}
	closing chan struct{}
	wg      sync.WaitGroup
}

// Start opens the sockets, lists the interfaces, joins the groups and starts
// announcing. With a loopback Bind it opens nothing and announces nothing
// (Links stays empty). Errors opening one family's socket are kept for
// LastError when the other family works.
func Start(cfg ServiceConfig) (*Service, error) {
	if cfg.Port == 0 {
		cfg.Port = Port
	}
	cfg.Config.GroupPort = uint16(cfg.Port)
	if cfg.Clock == nil {
		cfg.Clock = clock.Real
	}
	if cfg.Interfaces == nil {
		cfg.Interfaces = SystemInterfaces
	}
	if cfg.Rescan <= 0 {
		cfg.Rescan = time.Minute
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	s := &Service{cfg: cfg, clk: cfg.Clock, log: cfg.Logger, conns: map[Family]*groupConn{}, joined: map[Link]bool{},
		wake: make(chan struct{}, 1), closing: make(chan struct{})}
	s.core = NewCore(cfg.Config, output{s})
	if cfg.Bind.IsValid() && cfg.Bind.Unmap().IsLoopback() {
		return s, nil // nothing can hear us, nor we them
	}
	_, s.fams = forBind(nil, cfg.Bind)
	if cfg.Families != nil {
		s.fams = slices.DeleteFunc(s.fams, func(f Family) bool { return !slices.Contains(cfg.Families, f) })
		if len(s.fams) == 0 {
			return s, nil // BIND_ADDRESS is of a family not in use: nothing to announce
		}
	}
	var errs []error
	for _, f := range s.fams {
		c, err := listenGroup(f, cfg.Port, cfg.Bind)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		s.conns[f] = c
	}
	if len(s.conns) == 0 {
		return nil, errors.Join(errs...)
	}
	s.lastErr = errors.Join(errs...)
	s.rescan()
	for _, c := range s.conns {
		s.wg.Go(func() { s.readLoop(c) })
	}
	s.wg.Go(s.run)
	return s, nil
}

type output struct{ s *Service }

func (o output) Send(l Link, pkt []byte) error {
	c := o.s.conns[l.Family]
	if c == nil {
		return fmt.Errorf("lan: no %s socket", l.Family)
	}
	return c.send(l.Index, pkt)
}

func (o output) Introduce(p Peer) { o.s.intro = append(o.s.intro, p) }

// unlockAndIntroduce releases mu and hands the introductions collected to
// cfg.Introduce.
func (s *Service) unlockAndIntroduce() {
	intro := s.intro
	s.intro = nil
	s.mu.Unlock()
	if s.cfg.Introduce != nil {
		for _, p := range intro {
			s.cfg.Introduce(p)
		}
	}
}

// rescan lists the interfaces, joins the group on new links, leaves it on
// links that went, and gives the core the new set.
func (s *Service) rescan() {
	ifs, err := s.cfg.Interfaces()
	if err != nil {
		s.mu.Lock()
		s.lastErr = fmt.Errorf("lan: listing interfaces: %w", err)
		s.mu.Unlock()
		s.log.Warn("LAN discovery: listing interfaces failed", "err", err)
		return
	}
	ifs, _ = forBind(ifs, s.cfg.Bind)
	s.mu.Lock()
	nets, changed := s.setLinks(ifs)
	s.mu.Unlock()
	if changed && s.cfg.OnLinks != nil {
		s.cfg.OnLinks(nets)
	}
}

// setLinks is rescan's work under mu, with the interfaces listed. It returns
// the links' subnets and whether they changed.
func (s *Service) setLinks(ifs []Iface) ([]netip.Prefix, bool) {
	if s.closed {
		return nil, false
	}
	var use []Iface
	want := map[Link]bool{}
	for _, ifc := range ifs {
		ok := false
		for _, f := range s.fams {
			c := s.conns[f]
			if c == nil || !ifc.Has(f) {
				continue
			}
			l := Link{ifc.Index, f}
			if !s.joined[l] {
				if err := c.membership(ifc.Index, true); err != nil {
					s.log.Debug("LAN discovery: cannot join the group", "iface", ifc.Name, "family", f, "err", err)
					continue
				}
				s.joined[l] = true
			}
			want[l], ok = true, true
		}
		if ok {
			use = append(use, ifc)
		}
	}
	for l := range s.joined {
		if !want[l] {
			_ = s.conns[l.Family].membership(l.Index, false) // fails when the interface is gone: nothing to leave
			delete(s.joined, l)
		}
	}
	var fams []Family
	for f := range s.conns {
		fams = append(fams, f)
	}
	// A link is used only in the families that joined on it.
	for i := range use {
		use[i].Addrs = slices.DeleteFunc(slices.Clone(use[i].Addrs), func(p netip.Prefix) bool {
			return !want[Link{use[i].Index, FamilyOf(p.Addr())}]
		})
	}
	s.core.SetInterfaces(s.clk.Now(), use, fams...)
	s.kick()
	var nets []netip.Prefix
	for _, ifc := range use {
		for _, p := range ifc.Addrs {
			nets = append(nets, p.Masked())
		}
	}
	slices.SortFunc(nets, func(a, b netip.Prefix) int {
		if c := a.Addr().Compare(b.Addr()); c != 0 {
			return c
		}
		return a.Bits() - b.Bits()
	})
	nets = slices.Compact(nets)
	if slices.Equal(nets, s.nets) {
		return nets, false
	}
	s.nets = nets
	return slices.Clone(nets), true
}

func (s *Service) kick() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// run is the schedule: Tick when the core's deadline comes, after every
// datagram (a reply may have been scheduled), and rescans.
func (s *Service) run() {
	t := s.clk.NewTimer(time.Hour)
	defer t.Stop()
	rescan := s.clk.NewTimer(s.cfg.Rescan)
	defer rescan.Stop()
	for {
		s.mu.Lock()
		now := s.clk.Now()
		s.core.Tick(now)
		dl, ok := s.core.NextDeadline()
		s.unlockAndIntroduce()
		wait := time.Hour
		if ok {
			wait = max(dl.Sub(now), 0)
		}
		t.Reset(wait)
		select {
		case <-s.closing:
			return
		case <-t.C():
		case <-s.wake:
		case <-rescan.C():
			s.rescan()
			rescan.Reset(s.cfg.Rescan)
		}
	}
}

func (s *Service) readLoop(c *groupConn) {
	buf := make([]byte, MaxMsgLen+1)
	oob := make([]byte, oobLen)
	for {
		n, from, ifindex, dst, trunc, err := c.read(buf, oob)
		if err != nil {
			select {
			case <-s.closing:
				return
			default:
			}
			if errors.Is(err, net.ErrClosed) {
				return
			}
			s.log.Debug("LAN discovery: read failed", "family", c.fam, "err", err)
			// Not a busy loop on a persistent error.
			t := s.clk.NewTimer(10 * time.Millisecond)
			select {
			case <-t.C():
			case <-s.closing:
				t.Stop()
				return
			}
			continue
		}
		if trunc {
			n = len(buf) // longer than MaxMsgLen: dropped as oversize
		}
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			return
		}
		s.core.HandlePacket(s.clk.Now(), Link{ifindex, c.fam}, from, dst, buf[:n])
		s.unlockAndIntroduce()
		s.kick()
	}
}

// Close stops announcing and listening; it returns when every goroutine of
// the service has ended. It is safe to call more than once.
func (s *Service) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	close(s.closing)
	var errs []error
	for _, c := range s.conns {
		errs = append(errs, c.close())
	}
	s.mu.Unlock()
	s.wg.Wait()
	return errors.Join(errs...)
}

// Peers lists the peers heard within the expiry time.
func (s *Service) Peers() []Peer {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.core.Peers(nil)
}

// Stats are the core's counters.
func (s *Service) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.core.Stats()
}

// LinkInfo describes a link in use.
type LinkInfo struct {
	Link
	Iface string
	// Own is the address our announcements leave with on this link, as
	// seen when they loop back (invalid until one has).
	Own netip.Addr
	// Addrs are the interface's addresses of the link's family.
	Addrs []netip.Prefix
}

// Links describes the links in use, ordered by interface and family.
func (s *Service) Links() []LinkInfo {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []LinkInfo
	for _, l := range s.core.Links() {
		ls := s.core.links[l]
		li := LinkInfo{Link: l, Iface: ls.iface.Name, Own: ls.own}
		for _, p := range ls.iface.Addrs {
			if FamilyOf(p.Addr()) == l.Family {
				li.Addrs = append(li.Addrs, p)
			}
		}
		out = append(out, li)
	}
	return out
}

// Cookie is this run's cookie.
func (s *Service) Cookie() Cookie { return s.core.Cookie() }

// LastError is the latest error opening a socket or listing interfaces (nil
// if none).
func (s *Service) LastError() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lastErr
}
