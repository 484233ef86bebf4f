package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/apt-p2p/apt-p2p/wire"
)

// Options configure a Node: the DHT configuration plus what the runner
// needs to do I/O.
type Options struct {
	Config
	Listen    string    // UDP address to listen on, e.g. ":9977" or "127.0.0.1:0"
	Bootstrap []string  // bootstrap nodes as host:port; names are resolved at Start
	Transport Transport // nil: a UDPTransport on Listen
	Logger    *slog.Logger
	// Families are the networks to run (dualstack.go): IPv4, IPv6 or
	// DualStack. Zero runs Config.Family's, or IPv6 when Listen is an IPv6
	// address. A socket bound to one address runs that address's family.
	Families Family
}

// Node runs one Core in one event-loop goroutine on a real UDP transport
// with real time. Its methods are safe for concurrent use. A dual-stack
// node is two Nodes, one per family, on one loop (Other, dualstack.go).
type Node struct {
	core   *Core
	tr     Transport
	log    *slog.Logger
	reqs   chan func(now time.Time)
	done   chan struct{}
	closed atomic.Bool
	once   sync.Once
	addr   netip.AddrPort
	id     wire.ID
	state  *asyncState // nil when nothing is persisted
	reach  reachRunner // reach_node.go
	other  *Node       // the other family's Node on this loop (dualstack.go), or nil

	sendErrors atomic.Uint64
}

type transportOutput struct{ n *Node }

func (o transportOutput) Send(to netip.AddrPort, pkt []byte) {
	if err := o.n.tr.WriteTo(pkt, to); err != nil {
		o.n.sendErrors.Add(1)
	}
}

// Start opens the transport, loads the saved state, resolves the bootstrap
// addresses and starts the event loop, which joins the network.
func Start(o Options) (*Node, error) {
	n := &Node{
		log:  o.Logger,
		reqs: make(chan func(time.Time), 256),
		done: make(chan struct{}),
	}
	if n.log == nil {
		n.log = slog.Default()
	}
	n.tr = o.Transport
	if n.tr == nil {
		t, err := ListenUDPFamily(o.Listen, o.Families)
		if err != nil {
			return nil, fmt.Errorf("engine: listen %s: %w", o.Listen, err)
		}
		n.tr = t
	}
	fams := runFamilies(o.Families, o.Config.Family, n.tr.LocalAddr().Addr())
	o.Config.Family = fams
	if fams == DualStack {
		o.Config.Family = IPv4
	}
	// The checkpoint's fsync must not stall the loop: the core takes the
	// snapshot, another goroutine writes it.
	if o.Config.State == nil && o.Config.StateDir != "" {
		o.Config.State = FileState{Dir: o.Config.StateDir}
	}
	var pair *pairState
	if o.Config.State != nil {
		n.state = &asyncState{inner: o.Config.State}
		o.Config.State = n.state
		if fams == DualStack {
			pair = &pairState{inner: n.state}
			o.Config.State = pair.half(IPv4)
		}
	}
	n.reach.init(n.tr.LocalAddr().Addr())
	onChange := o.Config.Reach.OnChange
	o.Config.Reach.OnChange = func(s ReachStats) {
		n.reach.stats.Store(&s)
		if onChange != nil {
			onChange(s)
		}
	}
	core, err := New(o.Config, transportOutput{n})
	if err != nil {
		n.reach.close()
		n.tr.Close()
		return nil, err
	}
	n.core = core
	if err := core.LoadError(); err != nil {
		n.log.Warn("dht: saved state not usable, starting with a new ID and an empty table", "err", err)
	}
	n.id = core.ID()
	n.addr = n.tr.LocalAddr()
	var loop loopCore = core
	if fams == DualStack {
		c6 := o.Config
		c6.Family = IPv6
		c6.NodeID = core.ID()
		// The node's reachability is the IPv4 core's (reach rounds run on the
		// IPv4 network only): the IPv6 core's changes must not replace it in
		// n.reach.stats, which decides whether the daemon announces.
		c6.Reach.OnChange = nil
		if pair != nil {
			c6.State = pair.half(IPv6)
		}
		o6 := &Node{core: nil, tr: n.tr, log: n.log, reqs: n.reqs, done: n.done, addr: n.addr, id: n.id, state: n.state, other: n}
		if o6.core, err = New(c6, transportOutput{o6}); err != nil {
			n.tr.Close()
			return nil, err
		}
		n.other = o6
		Pair(core, o6.core)
		loop = dualCore{core, o6.core}
	}
	ifaces := interfaceAddrs()
	boot, names := splitBootstrap(o.Bootstrap)
	now := time.Now()
	for _, c := range n.cores() {
		c.SetInterfaceAddrs(FamilyAddrs(ifaces, c.Family()))
		c.Start(now, boot)
	}
	go runLoop(n.tr, loop, n.reqs, n.done, &n.closed, n.log)
	if len(names) > 0 {
		go n.resolveLoop(boot, names)
	}
	return n, nil
}

// splitBootstrap separates literal addresses from host names.
func splitBootstrap(hosts []string) (addrs []netip.AddrPort, names []string) {
	for _, h := range hosts {
		if ap, err := netip.ParseAddrPort(h); err == nil {
			addrs = append(addrs, netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()))
		} else {
			names = append(names, h)
		}
	}
	return addrs, names
}

// resolveLoop resolves the bootstrap host names off the event loop, hands
// the addresses to the core and starts a join, and tries again every
// minute until the node has joined (names may not resolve at boot, and the
// original resolved them at every join attempt).
func (n *Node) resolveLoop(literal []netip.AddrPort, names []string) {
	for {
		addrs := append(append([]netip.AddrPort(nil), literal...), resolveBootstrap(n.log, names)...)
		if !n.do(func(now time.Time) {
			for _, c := range n.cores() {
				c.SetBootstrap(addrs)
				if !c.Joined() {
					c.Rejoin(now)
				}
			}
		}) {
			return
		}
		select {
		case <-n.done:
			return
		case <-time.After(time.Minute):
		}
		ok := true
		if n.Do(func(*Core, time.Time) {
			for _, c := range n.cores() {
				ok = ok && c.Joined()
			}
		}) != nil || ok {
			return
		}
	}
}

// resolveBootstrap turns host:port names into addresses: the first of each
// family a name resolves to (each core joins through its own family's).
// Unresolvable entries are logged and skipped.
func resolveBootstrap(log *slog.Logger, hosts []string) []netip.AddrPort {
	var out []netip.AddrPort
	for _, h := range hosts {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		ua, err := (&net.Resolver{}).LookupNetIP(ctx, "ip", hostOf(h))
		cancel()
		port, perr := portOf(h)
		if err != nil || perr != nil || len(ua) == 0 {
			log.Warn("dht: cannot resolve bootstrap node", "node", h, "err", errors.Join(err, perr))
			continue
		}
		var seen Family
		for _, a := range ua {
			a = a.Unmap()
			if f := FamilyOf(a); seen&f == 0 && a.Zone() == "" {
				seen |= f
				out = append(out, netip.AddrPortFrom(a, port))
			}
		}
	}
	return out
}

func hostOf(hp string) string {
	h, _, err := net.SplitHostPort(hp)
	if err != nil {
		return hp
	}
	return h
}

func portOf(hp string) (uint16, error) {
	_, p, err := net.SplitHostPort(hp)
	if err != nil {
		return 0, err
	}
	port, err := net.LookupPort("udp", p)
	return uint16(port), err
}

// interfaceAddrs lists the machine's addresses (no shelling out, §8.2 #11).
func interfaceAddrs() []netip.Addr {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return nil
	}
	var out []netip.Addr
	for _, a := range addrs {
		if p, ok := a.(*net.IPNet); ok {
			if ip, ok := netip.AddrFromSlice(p.IP); ok {
				out = append(out, ip.Unmap())
			}
		}
	}
	return out
}

// readBufSize holds any UDP datagram: requests are accepted up to
// wire.MaxParseLen bytes (an original peer's store_value is up to 1563), and
// a datagram truncated by a smaller buffer would be misread. It is one
// buffer per node, reused for every datagram.
const readBufSize = wire.MaxParseLen + 1

// loopCore is what the event loop drives: Core or MainlineCore.
type loopCore interface {
	HandlePacket(now time.Time, from netip.AddrPort, pkt []byte)
	Tick(now time.Time)
	NextDeadline() (time.Time, bool)
	Closed() bool
}

// runLoop is a runner's event loop: requests from reqs, timers, and
// datagrams from tr, all handled on this goroutine. It closes done when the
// core has closed.
func runLoop(tr Transport, core loopCore, reqs chan func(time.Time), done chan struct{}, closed *atomic.Bool, log *slog.Logger) {
	defer close(done)
	buf := make([]byte, readBufSize)
	var cur time.Time
	for {
		for drained := false; !drained; {
			select {
			case f := <-reqs:
				f(time.Now())
			default:
				drained = true
			}
		}
		if core.Closed() {
			tr.Close()
			return
		}
		now := time.Now()
		core.Tick(now)
		dl, ok := core.NextDeadline()
		if !ok {
			dl = now.Add(time.Minute)
		}
		if !dl.Equal(cur) {
			tr.SetReadDeadline(dl)
			cur = dl
		}
		// A request queued after the drain above either is seen here or
		// interrupts the read (its sender moves the deadline to the past
		// after queueing).
		if len(reqs) > 0 {
			continue
		}
		nb, from, err := tr.ReadFrom(buf)
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				cur = time.Time{}
				continue
			}
			if closed.Load() {
				continue // Close queued its request; the drain above runs it
			}
			log.Warn("dht: read failed", "err", err)
			time.Sleep(10 * time.Millisecond)
			continue
		}
		core.HandlePacket(time.Now(), from, buf[:nb])
	}
}

// do runs f on the event loop. It returns false when the node is closed.
func (n *Node) do(f func(now time.Time)) bool {
	select {
	case <-n.done:
		return false
	default:
	}
	select {
	case n.reqs <- f:
	case <-n.done:
		return false
	}
	n.tr.SetReadDeadline(time.Unix(1, 0))
	return true
}

// Do runs f on the event loop with the core and waits for it: for tools and
// tests that need a consistent look at the core.
func (n *Node) Do(f func(c *Core, now time.Time)) error {
	ch := make(chan struct{})
	if !n.do(func(now time.Time) { f(n.core, now); close(ch) }) {
		return ErrClosed
	}
	select {
	case <-ch:
		return nil
	case <-n.done:
		return ErrClosed
	}
}

// ID is the node ID.
func (n *Node) ID() wire.ID { return n.id }

// Addr is the local UDP address.
func (n *Node) Addr() netip.AddrPort { return n.addr }

// WaitJoined blocks until the node has joined a network.
func (n *Node) WaitJoined(ctx context.Context) error {
	ch := make(chan error, 1)
	if !n.do(func(time.Time) { n.core.OnJoined(func(err error) { ch <- err }) }) {
		return ErrClosed
	}
	select {
	case err := <-ch:
		return err
	case <-ctx.Done():
		return ctx.Err()
	case <-n.done:
		return ErrClosed
	}
}

// getStream carries a get's values from the loop to the caller's goroutine.
type getStream struct {
	mu     sync.Mutex
	vals   [][]byte
	res    *Result
	notify chan struct{}
}

func (s *getStream) poke() {
	select {
	case s.notify <- struct{}{}:
	default:
	}
}

// Get looks up key (use wire.NormKey for hashes). onValue, if not nil, is
// called on the caller's goroutine for each distinct value as it arrives;
// Get returns when the lookup completes or ctx is done. A done ctx cancels
// the operation in the core (Core.Cancel): the lookup stops there unless
// another caller is waiting for the same key.
func (n *Node) Get(ctx context.Context, key wire.ID, onValue func([]byte)) (Result, error) {
	s := &getStream{notify: make(chan struct{}, 1)}
	var op Op // set and read on the loop only
	ok := n.do(func(now time.Time) {
		op = n.core.Get(now, key, func(v []byte) {
			s.mu.Lock()
			s.vals = append(s.vals, v)
			s.mu.Unlock()
			s.poke()
		}, func(r Result) {
			s.mu.Lock()
			s.res = &r
			s.mu.Unlock()
			s.poke()
		})
	})
	if !ok {
		return Result{Err: ErrClosed}, ErrClosed
	}
	for {
		select {
		case <-s.notify:
		case <-ctx.Done():
			n.do(func(now time.Time) { n.core.Cancel(now, op) })
			return Result{Err: ctx.Err()}, ctx.Err()
		case <-n.done:
			return Result{Err: ErrClosed}, ErrClosed
		}
		s.mu.Lock()
		vals, res := s.vals, s.res
		s.vals = nil
		s.mu.Unlock()
		if onValue != nil {
			for _, v := range vals {
				onValue(v)
			}
		}
		if res != nil {
			return *res, res.Err
		}
	}
}

// GetValues collects every value Get finds.
func (n *Node) GetValues(ctx context.Context, key wire.ID) ([][]byte, error) {
	var out [][]byte
	_, err := n.Get(ctx, key, func(v []byte) { out = append(out, v) })
	return out, err
}

// call runs an operation with a Result callback on the loop and waits; a
// done ctx cancels the operation in the core.
func (n *Node) call(ctx context.Context, start func(now time.Time, done func(Result)) Op) (Result, error) {
	ch := make(chan Result, 1)
	var op Op // set and read on the loop only
	if !n.do(func(now time.Time) { op = start(now, func(r Result) { ch <- r }) }) {
		return Result{Err: ErrClosed}, ErrClosed
	}
	select {
	case r := <-ch:
		return r, r.Err
	case <-ctx.Done():
		n.do(func(now time.Time) { n.core.Cancel(now, op) })
		return Result{Err: ctx.Err()}, ctx.Err()
	case <-n.done:
		return Result{Err: ErrClosed}, ErrClosed
	}
}

// Put stores value under key on the closest nodes; Result.Stored says on how many.
func (n *Node) Put(ctx context.Context, key wire.ID, value []byte) (Result, error) {
	value = append([]byte(nil), value...)
	return n.call(ctx, func(now time.Time, done func(Result)) Op { return n.core.Put(now, key, value, done) })
}

// FindNode returns the K closest nodes to target that answered.
func (n *Node) FindNode(ctx context.Context, target wire.ID) ([]wire.Node, error) {
	r, err := n.call(ctx, func(now time.Time, done func(Result)) Op { return n.core.FindNode(now, target, done) })
	return r.Nodes, err
}

// Stats returns a snapshot of the counters.
func (n *Node) Stats() Stats {
	var s Stats
	n.Do(func(c *Core, now time.Time) { s = c.Stats(now) })
	if n.state != nil {
		s.SaveErrors += n.state.errors()
	}
	return s
}

// ExternalAddr is the node's best guess of its public IP.
func (n *Node) ExternalAddr() (netip.Addr, bool) {
	var a netip.Addr
	var ok bool
	n.Do(func(c *Core, _ time.Time) { a, ok = c.ExternalAddr() })
	return a, ok
}

// Close saves the state, stops the loop and closes the transport, and
// returns once the last state write has ended (its error, if it failed).
// Pending operations fail with ErrClosed; nothing is processed afterwards.
// Closing either Node of a dual-stack pair closes both.
func (n *Node) Close() error {
	var err error
	n.once.Do(func() {
		n.closed.Store(true)
		if n.other != nil {
			n.other.closed.Store(true)
		}
		n.do(func(time.Time) { err = n.closeCores() })
		<-n.done
		n.reach.close()
		if n.state != nil {
			err = n.state.wait()
		}
	})
	return err
}

// Claim stores the value build makes under key and reads back, settle after
// the store, every value the storing nodes hold under it (Core.Claim). build
// runs on the event loop and must not block.
func (n *Node) Claim(ctx context.Context, key wire.ID, build func(now time.Time) []byte, settle time.Duration) (Result, [][]byte, error) {
	type claimed struct {
		r    Result
		vals [][]byte
	}
	ch := make(chan claimed, 1)
	var op Op // set and read on the loop only
	if !n.do(func(now time.Time) {
		op = n.core.Claim(now, key, build, settle, func(r Result, v [][]byte) { ch <- claimed{r, v} })
	}) {
		return Result{Err: ErrClosed}, nil, ErrClosed
	}
	select {
	case c := <-ch:
		return c.r, c.vals, c.r.Err
	case <-ctx.Done():
		n.do(func(now time.Time) { n.core.Cancel(now, op) })
		return Result{Err: ctx.Err()}, nil, ctx.Err()
	case <-n.done:
		return Result{Err: ErrClosed}, nil, ErrClosed
	}
}
