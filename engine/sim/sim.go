// Package sim runs many engine cores on a virtual clock and a simulated
// network: per-node access latencies, packet loss, a fraction of NATed
// nodes that can send but do not receive unsolicited datagrams, and churn.
// A run is single-threaded, seeded and reproducible: the same Config gives
// the same Report.
//
// It is a measurement tool for the engine's lookups (latency, hops,
// messages, success) under a chosen timeout profile, not a model of any
// particular real network. RunCrowd (crowd.go) uses the same network for
// flash crowds: many daemons asking for one new file at once, each deciding
// as internal/download does whether to fetch from the mirror or from an
// earlier claimant.
package sim

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"time"

	"github.com/apt-p2p/apt-p2p/engine"
	"github.com/apt-p2p/apt-p2p/wire"
)

// Config describes one simulation.
type Config struct {
	Nodes        int
	Unresponsive float64       // fraction of nodes behind NAT (reachable only by peers they sent to recently)
	RTTMin       time.Duration // round-trip times between node pairs lie in [RTTMin, RTTMax]
	RTTMax       time.Duration
	Loss         float64       // probability that a datagram is lost
	Churn        float64       // fraction of nodes that leave after the puts, before the gets
	NATTimeout   time.Duration // lifetime of a NAT mapping (60 s)
	JoinSpacing  time.Duration // delay between two nodes starting (20 ms)
	Settle       time.Duration // time between the last start and the first put (20 min: covers the re-ping of new nodes)
	Puts, Gets   int
	OpSpacing    time.Duration // delay between two puts, and between two gets (50 ms)
	Seed         uint64
	Engine       engine.Config // the per-node configuration (timeout profile, K, α, ...)
	// Mainline runs the BitTorrent mainline personality (engine.MainlineCore)
	// instead: a put is an announce_peer of the putter's address under the
	// key, a get a get_peers that must return it.
	Mainline       bool
	MainlineEngine engine.MainlineConfig
	// Families is the address families of every node (family.go): IPv4
	// (zero), IPv6, or DualStack (a paired IPv4 and IPv6 core per node,
	// putting and getting on both networks).
	Families engine.Family
}

func (c *Config) fill() {
	if c.NATTimeout == 0 {
		c.NATTimeout = time.Minute
	}
	if c.JoinSpacing == 0 {
		c.JoinSpacing = 20 * time.Millisecond
	}
	if c.Settle == 0 {
		c.Settle = 20 * time.Minute
	}
	if c.OpSpacing == 0 {
		c.OpSpacing = 50 * time.Millisecond
	}
	if c.RTTMax < c.RTTMin {
		c.RTTMax = c.RTTMin
	}
}

// GetSample is the outcome of one get.
type GetSample struct {
	Found      bool
	Elapsed    time.Duration
	FirstValue time.Duration
	Hops       int
	Messages   int
}

// Report summarises a run.
type Report struct {
	Profile            string
	Nodes, NATed, Left int
	Joined             int
	Puts, PutsOK       int
	PutStored          float64 // mean nodes storing each put
	Gets               []GetSample
	Events             uint64
	Datagrams          uint64
	Bytes              uint64 // of all datagrams sent
	SimTime            time.Duration
	Wall               time.Duration
}

// Found is the number of gets that returned the value.
func (r *Report) Found() int {
	n := 0
	for _, g := range r.Gets {
		if g.Found {
			n++
		}
	}
	return n
}

// SuccessRate is Found / len(Gets).
func (r *Report) SuccessRate() float64 {
	if len(r.Gets) == 0 {
		return 0
	}
	return float64(r.Found()) / float64(len(r.Gets))
}

// Percentile returns the p-th percentile (0..100) of f over the gets that
// found the value.
func (r *Report) Percentile(p float64, f func(GetSample) time.Duration) time.Duration {
	var d []time.Duration
	for _, g := range r.Gets {
		if g.Found {
			d = append(d, f(g))
		}
	}
	if len(d) == 0 {
		return 0
	}
	slices.Sort(d)
	i := int(p/100*float64(len(d))+0.5) - 1
	return d[min(max(i, 0), len(d)-1)]
}

// Mean returns the mean of f over all gets.
func (r *Report) Mean(f func(GetSample) float64) float64 {
	if len(r.Gets) == 0 {
		return 0
	}
	s := 0.0
	for _, g := range r.Gets {
		s += f(g)
	}
	return s / float64(len(r.Gets))
}

// Latency and FirstValue select what Percentile measures.
func Latency(g GetSample) time.Duration    { return g.Elapsed }
func FirstValue(g GetSample) time.Duration { return g.FirstValue }

// String is a human-readable summary.
func (r *Report) String() string {
	return fmt.Sprintf("profile %-8s nodes %d (NATed %d, left %d, joined %d)  puts %d/%d (%.1f copies)  gets %d: found %.2f%%\n"+
		"  get latency p50 %v p90 %v p99 %v   first value p50 %v p90 %v p99 %v\n"+
		"  hops %.2f  messages/get %.1f   %d events, %d datagrams, %v simulated in %v",
		r.Profile, r.Nodes, r.NATed, r.Left, r.Joined, r.PutsOK, r.Puts, r.PutStored, len(r.Gets), 100*r.SuccessRate(),
		r.Percentile(50, Latency).Round(time.Millisecond), r.Percentile(90, Latency).Round(time.Millisecond), r.Percentile(99, Latency).Round(time.Millisecond),
		r.Percentile(50, FirstValue).Round(time.Millisecond), r.Percentile(90, FirstValue).Round(time.Millisecond), r.Percentile(99, FirstValue).Round(time.Millisecond),
		r.Mean(func(g GetSample) float64 { return float64(g.Hops) }), r.Mean(func(g GetSample) float64 { return float64(g.Messages) }),
		r.Events, r.Datagrams, r.SimTime.Round(time.Second), r.Wall.Round(time.Millisecond))
}

const (
	evDeliver uint8 = iota
	evWake
	evAction
)

// event is one entry of the global queue, ordered by (at, seq).
type event struct {
	at   int64
	seq  uint64
	kind uint8
	node int32
	from int32 // evDeliver: the sender
	buf  int32 // evDeliver: packet buffer; evAction: action index
	v6   bool  // evDeliver: sent to the node's IPv6 address (family.go)
}

// simCore is what the simulator drives: an apt-p2p Core or a MainlineCore
// behind the same put/get scenario.
type simCore interface {
	Start(now time.Time, boot []netip.AddrPort)
	HandlePacket(now time.Time, from netip.AddrPort, pkt []byte)
	Tick(now time.Time)
	NextDeadline() (time.Time, bool)
	Joined() bool
	Close()
	put(now time.Time, key wire.ID, value []byte, done func(engine.Result))
	get(now time.Time, key wire.ID, onValue func([]byte), done func(engine.Result))
}

type aptCore struct{ *engine.Core }

func (c aptCore) put(now time.Time, key wire.ID, value []byte, done func(engine.Result)) {
	c.Put(now, key, value, done)
}

func (c aptCore) get(now time.Time, key wire.ID, onValue func([]byte), done func(engine.Result)) {
	c.Get(now, key, onValue, done)
}

// mlPort is the port a mainline putter announces (its HTTP port).
const mlPort = 9977

type mlCore struct{ *engine.MainlineCore }

func (c mlCore) put(now time.Time, key wire.ID, _ []byte, done func(engine.Result)) {
	c.Announce(now, key, mlPort, done)
}

func (c mlCore) get(now time.Time, key wire.ID, onValue func([]byte), done func(engine.Result)) {
	c.GetPeers(now, key, func(p netip.AddrPort) { onValue(wire.AppendCompactPeer(nil, p)) }, done)
}

type simNode struct {
	core   simCore
	addr   netip.AddrPort
	addr6  netip.AddrPort // IPv6 and dual-stack networks (family.go)
	delay  int64          // access delay: one-way(a→b) = (delay_a + delay_b) / 2
	nat    bool
	down   bool
	wakeAt int64
	maps   map[int32]int64 // NAT: peer → last outbound time
}

// Sim is one simulated network.
type Sim struct {
	cfg     Config
	rng     *rand.Rand // the network: latencies, NAT, loss
	ops     *rand.Rand // the scenario: keys, putters, churn, getters (the same for every profile)
	epoch   time.Time
	now     int64
	seq     uint64
	queue   []event
	nodes   []*simNode
	bufs    [][]byte
	free    []int32
	actions []func()
	events  uint64
	sent    uint64
	bytes   uint64
	track   *crowdTrack // during a crowd: watches the claims' datagrams
	// crowdRand draws a crowd's random choices (RandomParent).
	crowdRand *rand.Rand
}

var baseAddr = binary.BigEndian.Uint32([]byte{11, 0, 0, 0})

func nodeAddr(i int) netip.AddrPort {
	var a [4]byte
	binary.BigEndian.PutUint32(a[:], baseAddr+uint32(i)+1)
	return netip.AddrPortFrom(netip.AddrFrom4(a), 6881)
}

func nodeIndex(ap netip.AddrPort) int {
	if !ap.Addr().Is4() || ap.Port() != 6881 {
		return -1
	}
	a := ap.Addr().As4()
	return int(binary.BigEndian.Uint32(a[:])-baseAddr) - 1
}

type output struct {
	s *Sim
	i int32
}

func (o output) Send(to netip.AddrPort, pkt []byte) { o.s.send(o.i, to, pkt) }

func (s *Sim) time() time.Time { return s.epoch.Add(time.Duration(s.now)) }

func (s *Sim) push(e event) {
	s.seq++
	e.seq = s.seq
	s.queue = append(s.queue, e)
	q := s.queue
	i := len(q) - 1
	for i > 0 {
		p := (i - 1) / 2
		if !evLess(&q[i], &q[p]) {
			break
		}
		q[i], q[p] = q[p], q[i]
		i = p
	}
}

func evLess(a, b *event) bool { return a.at < b.at || (a.at == b.at && a.seq < b.seq) }

func (s *Sim) pop() event {
	q := s.queue
	e := q[0]
	n := len(q) - 1
	q[0] = q[n]
	q = q[:n]
	i := 0
	for {
		l := 2*i + 1
		if l >= n {
			break
		}
		m := l
		if r := l + 1; r < n && evLess(&q[r], &q[l]) {
			m = r
		}
		if !evLess(&q[m], &q[i]) {
			break
		}
		q[i], q[m] = q[m], q[i]
		i = m
	}
	s.queue = q
	return e
}

// send models the network between two nodes.
func (s *Sim) send(from int32, to netip.AddrPort, pkt []byte) {
	s.sent++
	s.bytes += uint64(len(pkt))
	src := s.nodes[from]
	if src.down {
		return
	}
	dst, v6 := anyIndex(to)
	if dst < 0 || dst >= len(s.nodes) {
		return
	}
	if src.nat {
		src.maps[mapKey(int32(dst), v6)] = s.now
	}
	if s.cfg.Loss > 0 && s.rng.Float64() < s.cfg.Loss {
		return
	}
	var b int32
	if n := len(s.free); n > 0 {
		b = s.free[n-1]
		s.free = s.free[:n-1]
	} else {
		s.bufs = append(s.bufs, make([]byte, 0, 512))
		b = int32(len(s.bufs) - 1)
	}
	s.bufs[b] = append(s.bufs[b][:0], pkt...)
	oneWay := (src.delay + s.nodes[dst].delay) / 2
	s.push(event{at: s.now + oneWay, kind: evDeliver, node: int32(dst), from: from, buf: b, v6: v6})
}

// mapped reports whether a NATed node has a live mapping towards peer.
func (s *Sim) mapped(n *simNode, peer int32) bool {
	t, ok := n.maps[peer]
	return ok && s.now-t <= int64(s.cfg.NATTimeout)
}

// rewake makes sure node i is woken at its core's next deadline.
func (s *Sim) rewake(i int32) {
	n := s.nodes[i]
	d, ok := n.core.NextDeadline()
	if !ok {
		return
	}
	at := max(int64(d.Sub(s.epoch)), s.now)
	if n.wakeAt == 0 || at < n.wakeAt {
		n.wakeAt = at
		s.push(event{at: at, kind: evWake, node: i})
	}
}

func (s *Sim) at(t int64, f func()) {
	s.actions = append(s.actions, f)
	s.push(event{at: t, kind: evAction, buf: int32(len(s.actions) - 1)})
}

// runUntil processes events up to time t (or until the queue empties).
func (s *Sim) runUntil(t int64, stop func() bool) {
	for len(s.queue) > 0 && s.queue[0].at <= t {
		if stop != nil && stop() {
			return
		}
		e := s.pop()
		s.now = e.at
		s.events++
		switch e.kind {
		case evDeliver:
			n := s.nodes[e.node]
			pkt := s.bufs[e.buf]
			if !n.down && (!n.nat || s.mapped(n, mapKey(e.from, e.v6))) {
				if s.track != nil {
					s.track.deliver(s.now, e.from, e.node, pkt)
				}
				from := s.nodes[e.from].addr
				if e.v6 {
					from = s.nodes[e.from].addr6
				}
				n.core.HandlePacket(s.time(), from, pkt)
				s.rewake(e.node)
			}
			s.free = append(s.free, e.buf)
		case evWake:
			n := s.nodes[e.node]
			if n.wakeAt != e.at {
				continue // superseded by an earlier wake-up
			}
			n.wakeAt = 0
			if !n.down {
				n.core.Tick(s.time())
				s.rewake(e.node)
			}
		case evAction:
			s.actions[e.buf]()
			s.actions[e.buf] = nil
		}
	}
	if len(s.queue) == 0 || s.queue[0].at > t {
		s.now = max(s.now, t)
	}
}

// Run builds the network, joins every node, puts, gets, and reports.
func Run(cfg Config) (*Report, error) {
	start := time.Now()
	s, rep, err := build(cfg)
	if err != nil {
		return nil, err
	}
	cfg = s.cfg
	t := s.now

	// Puts from random nodes, random keys.
	keys := make([]wire.ID, cfg.Puts)
	vals := make([][]byte, cfg.Puts)
	putters := make([]int32, cfg.Puts)
	pending := 0
	stored := 0
	for p := range keys {
		for j := range keys[p] {
			keys[p][j] = byte(s.ops.Uint32())
		}
		vals[p] = fmt.Appendf(nil, "value-%d", p)
		putters[p] = int32(s.ops.IntN(len(s.nodes)))
		if cfg.Mainline {
			vals[p] = wire.AppendCompactPeer(nil, netip.AddrPortFrom(nodeAddr(int(putters[p])).Addr(), mlPort))
		}
		p := p
		pending++
		s.at(t+int64(p)*int64(cfg.OpSpacing), func() {
			i := putters[p]
			s.nodes[i].core.put(s.time(), keys[p], vals[p], func(r engine.Result) {
				pending--
				rep.Puts++
				if r.Err == nil {
					rep.PutsOK++
					stored += r.Stored
				}
			})
			s.rewake(i)
		})
	}
	s.runUntil(s.now+int64(2*time.Hour), func() bool { return pending == 0 })
	if rep.PutsOK > 0 {
		rep.PutStored = float64(stored) / float64(rep.PutsOK)
	}
	// Churn: some nodes leave (never the bootstrap node or a putter's target... any node).
	for i := 1; i < len(s.nodes); i++ {
		if cfg.Churn > 0 && s.ops.Float64() < cfg.Churn {
			s.nodes[i].down = true
			s.nodes[i].core.Close()
			rep.Left++
		}
	}
	// Gets of random put keys from random other live nodes.
	t = s.now + int64(time.Second)
	for g := 0; g < cfg.Gets && cfg.Puts > 0; g++ {
		p := s.ops.IntN(cfg.Puts)
		var i int32
		for {
			i = int32(s.ops.IntN(len(s.nodes)))
			if i != putters[p] && !s.nodes[i].down {
				break
			}
		}
		pending++
		s.at(t+int64(g)*int64(cfg.OpSpacing), func() {
			found := false
			s.nodes[i].core.get(s.time(), keys[p], func(v []byte) {
				if string(v) == string(vals[p]) {
					found = true
				}
			}, func(r engine.Result) {
				pending--
				rep.Gets = append(rep.Gets, GetSample{Found: found && r.Err == nil, Elapsed: r.Elapsed,
					FirstValue: r.FirstValue, Hops: r.Hops, Messages: r.Messages})
			})
			s.rewake(i)
		})
	}
	s.runUntil(s.now+int64(2*time.Hour), func() bool { return pending == 0 })
	rep.Events = s.events
	rep.Datagrams = s.sent
	rep.Bytes = s.bytes
	rep.SimTime = time.Duration(s.now)
	rep.Wall = time.Since(start)
	return rep, nil
}

// build makes the network of cfg and joins every node through node 0, one
// after another; it returns when the network has settled (cfg.Settle after
// the last start), with the report's network fields filled in.
func build(cfg Config) (*Sim, *Report, error) {
	cfg.fill()
	if cfg.Nodes < 2 {
		return nil, nil, fmt.Errorf("sim: need at least 2 nodes")
	}
	s := &Sim{cfg: cfg, rng: rand.New(rand.NewPCG(cfg.Seed, cfg.Seed^0x9e3779b97f4a7c15)),
		ops: rand.New(rand.NewPCG(cfg.Seed^0x5851f42d4c957f2d, cfg.Seed)), epoch: time.Unix(1_700_000_000, 0)}
	rep := &Report{Profile: cfg.Engine.Profile.String(), Nodes: cfg.Nodes}
	if cfg.Mainline {
		rep.Profile = "mainline"
	}
	boot := []netip.AddrPort{nodeAddr(0)}
	if cfg.Families&engine.IPv6 != 0 {
		boot = append(boot, nodeAddr6(0))
	}
	for i := 0; i < cfg.Nodes; i++ {
		ec := cfg.Engine
		ec.LocalOK = false
		ec.Validate = nil
		ec.State = nil
		ec.StateDir = ""
		ec.BootstrapNode = i == 0
		var seed [32]byte
		binary.LittleEndian.PutUint64(seed[:], cfg.Seed)
		binary.LittleEndian.PutUint64(seed[8:], uint64(i))
		ec.Seed = &seed
		n := &simNode{addr: nodeAddr(i), addr6: nodeAddr6(i)}
		lo, hi := int64(cfg.RTTMin/2), int64(cfg.RTTMax/2)
		n.delay = lo
		if hi > lo {
			n.delay += s.rng.Int64N(hi - lo + 1)
		}
		if i > 0 && s.rng.Float64() < cfg.Unresponsive {
			n.nat = true
			n.maps = make(map[int32]int64)
			rep.NATed++
		}
		if cfg.Mainline {
			mc := cfg.MainlineEngine
			mc.LocalOK = false
			mc.Seed = &seed
			n.core = mlCore{engine.NewMainline(mc, output{s, int32(i)})}
		} else {
			c, err := s.newAptCore(ec, cfg.Families, int32(i))
			if err != nil {
				return nil, nil, err
			}
			n.core = c
		}
		s.nodes = append(s.nodes, n)
	}
	// Start the nodes one after another through node 0.
	for i := range s.nodes {
		i := int32(i)
		s.at(int64(i)*int64(cfg.JoinSpacing), func() {
			s.nodes[i].core.Start(s.time(), boot)
			s.rewake(i)
		})
	}
	t := int64(len(s.nodes))*int64(cfg.JoinSpacing) + int64(cfg.Settle)
	s.runUntil(t, nil)
	for _, n := range s.nodes {
		if n.core.Joined() {
			rep.Joined++
		}
	}
	return s, rep, nil
}
