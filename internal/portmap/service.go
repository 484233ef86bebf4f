package portmap

import (
	"errors"
	"log/slog"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/apt-p2p/apt-p2p/internal/clock"
)

// Config configures a Service. Zero fields take the defaults given.
type Config struct {
	// Open finds the router and returns a Gateway for it. It is called
	// again after every failed round, so that a new default route (another
	// network) is followed.
	Open func() (Gateway, error)
	// Ports are the local ports to map.
	Ports []Port
	// Lease is the lifetime asked for (1 h); each lease is renewed at half
	// the lifetime granted.
	Lease time.Duration
	// Retry is the wait after a first failed round (1 min); it doubles with
	// every further failure, up to MaxRetry (1 h).
	Retry, MaxRetry time.Duration
	// MinRenew bounds how soon a renewal may come, whatever a router grants (30 s).
	MinRenew time.Duration
	// Watch names the network the mappings are made on: the default
	// gateway (DefaultGateway), or an error when there is none. nil: not
	// watched. Between rounds it is asked every WatchEvery (1 min), and a
	// change (another gateway, a gateway where there was none, none where
	// there was one) starts a round at once with the router found anew,
	// instead of at the next renewal (up to Lease/2) or retry (up to
	// MaxRetry): a laptop that moves, or a machine whose network comes up
	// after the daemon, is mapped within a minute.
	Watch      func() (netip.Addr, error)
	WatchEvery time.Duration
	Clock      clock.Clock
	Logger     *slog.Logger
	// OnChange is called, on the service's goroutine, with the new status
	// after the first round (whatever its outcome) and after every round
	// that changed the mappings, the external address or the error.
	OnChange func(Status)
}

func (c *Config) fill() {
	if c.Lease <= 0 {
		c.Lease = time.Hour
	}
	if c.Retry <= 0 {
		c.Retry = time.Minute
	}
	if c.MaxRetry <= 0 {
		c.MaxRetry = time.Hour
	}
	c.MaxRetry = max(c.MaxRetry, c.Retry)
	if c.MinRenew <= 0 {
		c.MinRenew = 30 * time.Second
	}
	if c.WatchEvery <= 0 {
		c.WatchEvery = time.Minute
	}
	if c.Clock == nil {
		c.Clock = clock.Real
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// Service keeps the ports of Config mapped until Close.
type Service struct {
	cfg  Config
	stop chan struct{}
	done chan struct{}

	gw     Gateway // the router of the last round; nil after a failure
	logged string  // the last error logged
	// The network (Config.Watch) when the last round started: its gateway,
	// or netOK false when there was none.
	net   netip.Addr
	netOK bool

	mu sync.Mutex
	st Status
}

// ErrClosed is returned by Close after the first.
var ErrClosed = errors.New("portmap: closed")

// Start starts mapping at once, in the background.
func Start(cfg Config) *Service {
	s := newService(cfg)
	go s.loop()
	return s
}

func newService(cfg Config) *Service {
	cfg.fill()
	return &Service{cfg: cfg, stop: make(chan struct{}), done: make(chan struct{}), st: Status{Mappings: []Mapping{}}}
}

// Status is a copy of the current status.
func (s *Service) Status() Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.st
	st.Mappings = slices.Clone(st.Mappings)
	return st
}

func (s *Service) loop() {
	defer close(s.done)
	for {
		due := s.cfg.Clock.Now().Add(s.round())
		for {
			step := due.Sub(s.cfg.Clock.Now())
			if s.cfg.Watch != nil {
				step = min(step, s.cfg.WatchEvery)
			}
			t := s.cfg.Clock.NewTimer(step)
			select {
			case <-t.C():
			case <-s.stop:
				t.Stop()
				return
			}
			if !s.cfg.Clock.Now().Before(due) || s.networkChanged() {
				break
			}
		}
	}
}

// watch records the network the round about to start maps on.
func (s *Service) watch() {
	if s.cfg.Watch == nil {
		return
	}
	a, err := s.cfg.Watch()
	s.net, s.netOK = a, err == nil
}

// networkChanged reports whether the network is not the one the last round
// mapped on; then the router is looked for again.
func (s *Service) networkChanged() bool {
	a, err := s.cfg.Watch()
	if ok := err == nil; ok == s.netOK && (!ok || a == s.net) {
		return false
	}
	s.cfg.Logger.Info("the network changed: mapping again", "gateway_was", s.net, "gateway", a, "err", err)
	s.gw = nil
	return true
}

// round maps (or renews) every port that needs it and returns the wait
// before the next round.
func (s *Service) round() time.Duration {
	s.watch()
	now := s.cfg.Clock.Now()
	s.mu.Lock()
	prev := s.st
	prev.Mappings = slices.Clone(prev.Mappings)
	st := s.st
	s.mu.Unlock()
	st.Rounds++
	// Mappings whose lease ran out are gone, whatever happens next.
	st.Mappings = slices.DeleteFunc(slices.Clone(st.Mappings), func(m Mapping) bool { return !now.Before(m.Expires) })

	err := s.mapAll(now, &st)
	var wait time.Duration
	if err != nil {
		s.gw = nil
		st.Failures++
		wait = s.cfg.Retry << min(st.Failures-1, 20)
		if wait > s.cfg.MaxRetry || wait <= 0 {
			wait = s.cfg.MaxRetry
		}
		if st.Err != err.Error() {
			st.Err, st.ErrSince = err.Error(), now
		}
		st.Backoff = wait
		// A mapping still valid is tried again before it runs out, at half
		// the time it has left (as DHCP does with a lease): a few tries
		// over its remaining life, not one per MinRenew.
		for _, m := range st.Mappings {
			wait = min(wait, max(m.Expires.Sub(now)/2, s.cfg.MinRenew))
		}
		if s.logged != st.Err {
			s.logged = st.Err
			s.cfg.Logger.Warn("port mapping failed: peers behind the same NAT rules cannot reach us unless ports are forwarded by hand",
				"err", err, "mapped", len(st.Mappings), "retry_in", st.Backoff)
		} else {
			s.cfg.Logger.Debug("port mapping failed again", "err", err, "failures", st.Failures, "retry_in", st.Backoff)
		}
	} else {
		if st.Failures > 0 || prev.Gateway != st.Gateway || len(prev.Mappings) != len(st.Mappings) {
			s.cfg.Logger.Info("ports mapped", "protocol", st.Protocol, "gateway", st.Gateway, "external", st.External, "mappings", st.Mappings)
		}
		st.Failures, st.Err, st.ErrSince, st.Backoff = 0, "", time.Time{}, 0
		s.logged = ""
		wait = s.cfg.Lease / 2
		for _, m := range st.Mappings {
			wait = min(wait, m.Renew.Sub(now))
		}
		wait = max(wait, s.cfg.MinRenew)
	}
	st.Next = now.Add(wait)
	s.mu.Lock()
	s.st = st
	s.mu.Unlock()
	if s.cfg.OnChange != nil && (st.Rounds == 1 || changed(prev, st)) {
		s.cfg.OnChange(st)
	}
	return wait
}

// mapAll asks for every port whose mapping is missing or due for renewal.
func (s *Service) mapAll(now time.Time, st *Status) error {
	if s.gw == nil {
		gw, err := s.cfg.Open()
		if err != nil {
			return err
		}
		s.gw = gw
		if st.Gateway != gw.Addr() {
			st.Mappings = st.Mappings[:0] // another router: the old one's mappings are not ours to count
		}
		st.Protocol, st.Gateway = gw.Protocol(), gw.Addr()
	}
	st.Requests++
	ext, err := s.gw.ExternalAddr()
	if err != nil {
		return err
	}
	st.External = ext
	for _, p := range s.cfg.Ports {
		i := slices.IndexFunc(st.Mappings, func(m Mapping) bool { return m.Proto == p.Proto && m.Internal == p.Internal })
		if i >= 0 && now.Before(st.Mappings[i].Renew) {
			continue
		}
		want := p.Internal // the same port outside: nothing changes for peers
		if i >= 0 {
			want = st.Mappings[i].External // keep what we have
		}
		st.Requests++
		got, lease, err := s.gw.Map(p.Proto, p.Internal, want, s.cfg.Lease)
		if err != nil {
			return err
		}
		m := Mapping{Proto: p.Proto, Internal: p.Internal, External: got, Expires: now.Add(lease), Renew: now.Add(lease / 2)}
		if i >= 0 {
			st.Mappings[i] = m
		} else {
			st.Mappings = append(st.Mappings, m)
		}
	}
	// Keep the order of Config.Ports.
	slices.SortStableFunc(st.Mappings, func(a, b Mapping) int { return s.portIndex(a) - s.portIndex(b) })
	return nil
}

func (s *Service) portIndex(m Mapping) int {
	return slices.IndexFunc(s.cfg.Ports, func(p Port) bool { return p.Proto == m.Proto && p.Internal == m.Internal })
}

// changed reports whether what the owner acts on changed: the mappings'
// ports, the external address, the gateway or the error.
func changed(a, b Status) bool {
	if a.External != b.External || a.Gateway != b.Gateway || a.Err != b.Err || len(a.Mappings) != len(b.Mappings) {
		return true
	}
	for i := range a.Mappings {
		if a.Mappings[i].Proto != b.Mappings[i].Proto || a.Mappings[i].Internal != b.Mappings[i].Internal ||
			a.Mappings[i].External != b.Mappings[i].External {
			return true
		}
	}
	return false
}

// Close stops the renewals and deletes the active mappings (each deletion
// bounded by the gateway's request timeout).
func (s *Service) Close() error {
	select {
	case <-s.stop:
		return ErrClosed
	default:
	}
	close(s.stop)
	<-s.done
	return s.release()
}

// release deletes the active mappings and forgets them.
func (s *Service) release() error {
	s.mu.Lock()
	ms := s.st.Mappings
	s.st.Mappings = []Mapping{}
	s.mu.Unlock()
	if len(ms) == 0 {
		return nil
	}
	gw := s.gw
	if gw == nil {
		var err error
		if gw, err = s.cfg.Open(); err != nil {
			return err
		}
	}
	var errs []error
	for _, m := range ms {
		if err := gw.Unmap(m.Proto, m.Internal, m.External); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	s.cfg.Logger.Info("port mappings deleted", "gateway", gw.Addr(), "mappings", len(ms))
	return nil
}
