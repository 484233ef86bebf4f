package engine

import (
	"bytes"
	crand "crypto/rand"
	"crypto/sha1"
	"errors"
	"math/rand/v2"
	"net/netip"
	"time"

	"github.com/apt-p2p/apt-p2p/kbucket"
	"github.com/apt-p2p/apt-p2p/wire"
)

// MainlineConfig configures the BitTorrent mainline DHT personality (BEP 5).
// Zero fields take the values of MainlineDefault.
type MainlineConfig struct {
	K          int           // bucket size and lookup width (8)
	Alpha      int           // requests in flight per lookup (4)
	RTOMin     time.Duration // adaptive timeouts as in Config (150 ms, 1 s, 500 ms)
	RTOMax     time.Duration
	RTOUnknown time.Duration
	LocalOK    bool // private and loopback addresses allowed (tests, LANs)
	// ReadOnly is BEP 43: queries carry ro=1 and incoming queries are not
	// answered, so nobody adds us to a routing table (for a node that
	// cannot receive unsolicited datagrams).
	ReadOnly bool
	// EnforceNodeID admits to the routing table only nodes whose ID BEP 42
	// allows at their address (local addresses are exempt). Off by
	// default, as in libtorrent: much of the network predates BEP 42. Our
	// own ID follows BEP 42 either way once our external address is known.
	EnforceNodeID bool

	CheckpointInterval time.Duration // token secret rotation and expiry (5 min)
	BucketRefresh      time.Duration // a bucket not looked up for this long is refreshed (15 min)
	MinPingInterval    time.Duration // a node is not pinged more often (15 min)
	MaxFailures        int           // failed requests before a node leaves the table (3)
	RejoinInitial      time.Duration // re-join backoff (1 s, doubling, to RejoinMax 30 s)
	RejoinMax          time.Duration

	// Storage limits (announced peers, BEP 44 items) and their lifetimes.
	PeerExpire      time.Duration // 30 min (BEP 5 suggests announces last 30 min)
	ItemExpire      time.Duration // 2 h (BEP 44)
	MaxInfoHashes   int           // distinct info-hashes held (20000)
	MaxPeersPerHash int           // peers per info-hash (200; the oldest goes)
	MaxPerIP        int           // announces and items stored from one IP (100)
	MaxItems        int           // immutable items (2000, each ≤ 1000 bytes)

	// Rate limit on queries per source IP: a token bucket of RateBurst
	// refilled at RatePerSecond; excess queries are dropped and counted.
	RatePerSecond float64 // 20
	RateBurst     float64 // 100

	Version []byte    // the v sent (wire.MLVersion)
	Seed    *[32]byte // reproducible randomness (simulator); nil: crypto/rand
}

// MainlineDefault returns the defaults.
func MainlineDefault() MainlineConfig {
	return MainlineConfig{
		K: 8, Alpha: 4,
		RTOMin: 150 * time.Millisecond, RTOMax: time.Second, RTOUnknown: 500 * time.Millisecond,
		CheckpointInterval: 5 * time.Minute, BucketRefresh: 15 * time.Minute, MinPingInterval: 15 * time.Minute,
		MaxFailures: 3, RejoinInitial: time.Second, RejoinMax: 30 * time.Second,
		PeerExpire: 30 * time.Minute, ItemExpire: 2 * time.Hour,
		MaxInfoHashes: 20000, MaxPeersPerHash: 200, MaxPerIP: 100, MaxItems: 2000,
		RatePerSecond: 20, RateBurst: 100,
		Version: wire.MLVersion,
	}
}

func (c *MainlineConfig) fill() {
	d := MainlineDefault()
	for _, p := range []struct{ v, d *int }{{&c.K, &d.K}, {&c.Alpha, &d.Alpha}, {&c.MaxFailures, &d.MaxFailures},
		{&c.MaxInfoHashes, &d.MaxInfoHashes}, {&c.MaxPeersPerHash, &d.MaxPeersPerHash}, {&c.MaxPerIP, &d.MaxPerIP}, {&c.MaxItems, &d.MaxItems}} {
		if *p.v == 0 {
			*p.v = *p.d
		}
	}
	for _, p := range []struct{ v, d *time.Duration }{{&c.RTOMin, &d.RTOMin}, {&c.RTOMax, &d.RTOMax}, {&c.RTOUnknown, &d.RTOUnknown},
		{&c.CheckpointInterval, &d.CheckpointInterval}, {&c.BucketRefresh, &d.BucketRefresh}, {&c.MinPingInterval, &d.MinPingInterval},
		{&c.RejoinInitial, &d.RejoinInitial}, {&c.RejoinMax, &d.RejoinMax}, {&c.PeerExpire, &d.PeerExpire}, {&c.ItemExpire, &d.ItemExpire}} {
		if *p.v == 0 {
			*p.v = *p.d
		}
	}
	if c.RatePerSecond == 0 {
		c.RatePerSecond = d.RatePerSecond
	}
	if c.RateBurst == 0 {
		c.RateBurst = d.RateBurst
	}
	if c.Version == nil {
		c.Version = d.Version
	}
}

// MainlineStats are the mainline core's counters.
type MainlineStats struct {
	ID           wire.ID
	Joined       bool
	ExternalAddr netip.Addr
	Nodes        int
	Buckets      int

	PacketsIn, PacketsOut, BytesIn, BytesOut uint64
	Dropped                                  [NumDropReasons]uint64
	RateLimited                              uint64 // queries dropped by the per-IP rate limit
	ReadOnlySeen                             uint64 // queries from read-only nodes (answered, never added to the table)
	BEP42Refused                             uint64 // nodes kept out of the table for an ID BEP 42 does not allow
	IDChanges                                uint64 // our ID changed to follow BEP 42
	ErrorsSent                               uint64
	Queries                                  [wire.MLPut + 1]uint64 // received, by method

	InfoHashes, Peers, Items   int
	AnnouncesStored, Refused   uint64
	Lookups, Cancelled         uint64
	GetPeers, GetPeersFound    uint64
	Announces, AnnouncesOK     uint64
	GetPeersLatency            Histogram
	JoinFailures, Transactions uint64
}

// MainlineCore is the BitTorrent mainline DHT node (BEP 5, with BEP 42 node
// IDs, BEP 43 read-only nodes and BEP 44 immutable items), a sans-IO state
// machine like Core: HandlePacket and Tick go in, Output.Send and callbacks
// come out, one goroutine owns it.
type MainlineCore struct {
	cfg   MainlineConfig
	out   Output
	rng   *rand.ChaCha8
	id    wire.ID
	table *kbucket.Table

	timers  timerHeap
	txns    mlTxnTable
	tok     tokens
	rtt     rttTable
	pinging map[wire.ID]struct{}
	limits  map[netip.Addr]*rateBucket

	peers   map[wire.ID]*mlPeers
	items   map[wire.ID]mlItem
	perIP   map[netip.Addr]int
	npeers  int
	lookups map[uint32]*mlLookup
	nextLk  uint32
	ops     map[Op]*mlOp
	nextOp  uint64

	bootstrap []netip.AddrPort
	joining   *mlLookup
	bootWait  int
	backoff   time.Duration
	joined    bool
	joinWait  []func(error)
	votes     map[netip.Addr]int
	ext       netip.Addr
	closed    bool

	st  MainlineStats
	msg wire.MLMsg
	buf []byte
	kn  []kbucket.Node
	wn  []wire.Node
	hdr wire.MLHeader
}

// rateBucket is one source's token bucket.
type rateBucket struct {
	tokens float64
	last   time.Time
}

// maxRateEntries bounds the rate-limit table; a flood of sources resets it.
const maxRateEntries = 1 << 16

type mlPeer struct {
	addr netip.AddrPort
	at   time.Time
}

type mlPeers struct{ list []mlPeer }

type mlItem struct {
	v    []byte
	at   time.Time
	from netip.Addr
}

// ErrItemTooBig refuses a BEP 44 item over wire.MaxItemLen bytes.
var ErrItemTooBig = errors.New("engine: item larger than 1000 bytes")

// NewMainline builds a mainline core with a random ID (made BEP 42 valid
// once the external address is known).
func NewMainline(cfg MainlineConfig, out Output) *MainlineCore {
	cfg.fill()
	c := &MainlineCore{
		cfg: cfg, out: out,
		pinging: make(map[wire.ID]struct{}),
		limits:  make(map[netip.Addr]*rateBucket),
		peers:   make(map[wire.ID]*mlPeers),
		items:   make(map[wire.ID]mlItem),
		perIP:   make(map[netip.Addr]int),
		lookups: make(map[uint32]*mlLookup),
		ops:     make(map[Op]*mlOp),
		votes:   make(map[netip.Addr]int),
		buf:     make([]byte, 0, 2048),
	}
	c.txns.byTID = make(map[uint32]uint32)
	var seed [32]byte
	if cfg.Seed != nil {
		seed = *cfg.Seed
	} else {
		crand.Read(seed[:])
	}
	c.rng = rand.NewChaCha8(seed)
	c.rng.Read(c.id[:])
	c.table = kbucket.New(c.id, kbucket.Config{K: cfg.K, MaxFailures: cfg.MaxFailures, AllowLocal: cfg.LocalOK})
	var s [wire.IDLen]byte
	c.rng.Read(s[:])
	c.tok.rotate(s)
	c.hdr.Version = cfg.Version
	c.hdr.ReadOnly = cfg.ReadOnly
	return c
}

// ID is the node ID.
func (c *MainlineCore) ID() wire.ID { return c.id }

// Table gives the owner goroutine read access to the routing table.
func (c *MainlineCore) Table() *kbucket.Table { return c.table }

// Joined reports whether the node has joined the network.
func (c *MainlineCore) Joined() bool { return c.joined }

// Closed reports whether Close was called.
func (c *MainlineCore) Closed() bool { return c.closed }

// ExternalAddr is the address most replies said they saw us at.
func (c *MainlineCore) ExternalAddr() (netip.Addr, bool) { return c.ext, c.ext.IsValid() }

// NextDeadline is when Tick must next be called.
func (c *MainlineCore) NextDeadline() (time.Time, bool) { return c.timers.next() }

// OnJoined calls fn once the node has joined, or with ErrClosed.
func (c *MainlineCore) OnJoined(fn func(error)) {
	switch {
	case c.closed:
		fn(ErrClosed)
	case c.joined:
		fn(nil)
	default:
		c.joinWait = append(c.joinWait, fn)
	}
}

// Start joins through the bootstrap addresses (routers or known nodes): a
// find_node for our own ID to each, then a lookup from what they return.
func (c *MainlineCore) Start(now time.Time, bootstrap []netip.AddrPort) {
	c.bootstrap = append(c.bootstrap[:0], bootstrap...)
	c.backoff = c.cfg.RejoinInitial
	c.addTimer(timer{at: now.Add(c.cfg.CheckpointInterval), kind: timerCheckpoint})
	c.join(now)
}

// SetBootstrap replaces the bootstrap addresses (resolved names).
func (c *MainlineCore) SetBootstrap(now time.Time, addrs []netip.AddrPort) {
	c.bootstrap = append(c.bootstrap[:0], addrs...)
	if !c.joined && c.joining == nil {
		c.join(now)
	}
}

func (c *MainlineCore) join(now time.Time) {
	if c.closed || c.joining != nil {
		return
	}
	l := c.newLookup(now, mlFindNode, c.id)
	l.seed(c)
	l.hold = true
	c.joining = l
	c.bootWait = 0
	for _, a := range c.bootstrap {
		a = netip.AddrPortFrom(a.Addr().Unmap(), a.Port())
		if !a.Addr().Is4() {
			continue
		}
		t := c.newTxn(a, wire.ID{}, wire.MLFindNode, mlPurposeBoot)
		t.pkt = wire.AppendMLFindNode(t.pkt[:0], c.header(t), c.id, c.id)
		c.startTxn(now, t)
		c.bootWait++
	}
	l.onDone = func(now time.Time, l *mlLookup) {
		c.joining = nil
		if c.table.Len() > 0 {
			c.backoff = c.cfg.RejoinInitial
			c.refresh(now, -1)
			if !c.joined {
				c.joined = true
				ws := c.joinWait
				c.joinWait = nil
				for _, w := range ws {
					w(nil)
				}
			}
			return
		}
		c.st.JoinFailures++
		c.addTimer(timer{at: now.Add(c.backoff), kind: timerRejoin})
		c.backoff = min(2*c.backoff, c.cfg.RejoinMax)
	}
	if c.bootWait == 0 {
		l.hold = false
	}
	l.schedule(c, now)
}

// bootDone counts a bootstrap request that ended; the join lookup goes on
// alone once all have.
func (c *MainlineCore) bootDone(now time.Time) {
	c.bootWait--
	if l := c.joining; l != nil && c.bootWait <= 0 {
		l.hold = false
		l.schedule(c, now)
	}
}

// Close fails pending operations with ErrClosed; the core then ignores
// everything.
func (c *MainlineCore) Close() {
	if c.closed {
		return
	}
	c.closed = true
	for op, o := range c.ops {
		delete(c.ops, op)
		o.onDone(Result{Err: ErrClosed})
	}
	clear(c.lookups)
	for _, w := range c.joinWait {
		w(ErrClosed)
	}
	c.joinWait = nil
	c.timers = c.timers[:0]
}

func (c *MainlineCore) addTimer(t timer) { c.timers.push(t) }

// Tick fires the timers due at or before now.
func (c *MainlineCore) Tick(now time.Time) {
	for !c.closed && len(c.timers) > 0 && !c.timers[0].at.After(now) {
		t := c.timers.pop()
		switch t.kind {
		case timerTxn:
			c.txnTimer(now, t.slot, t.gen)
		case timerPing:
			if _, ok := c.table.Get(t.id); ok {
				c.ping(now, t.id, t.addr, mlPurposePing)
			} else {
				delete(c.pinging, t.id)
			}
		case timerCheckpoint:
			c.checkpoint(now)
		case timerRejoin:
			c.join(now)
		}
	}
}

func (c *MainlineCore) checkpoint(now time.Time) {
	var s [wire.IDLen]byte
	c.rng.Read(s[:])
	c.tok.rotate(s)
	c.expire(now)
	c.refresh(now, c.cfg.BucketRefresh)
	if c.joined && c.table.Len() == 0 {
		c.join(now)
	}
	c.addTimer(timer{at: now.Add(c.cfg.CheckpointInterval), kind: timerCheckpoint})
}

// refresh looks up a random ID in every bucket not looked up for staleness
// (every bucket when staleness < 0).
func (c *MainlineCore) refresh(now time.Time, staleness time.Duration) {
	for _, target := range c.table.StaleBuckets(nil, now, staleness, func(b []byte) { c.rng.Read(b) }) {
		l := c.newLookup(now, mlFindNode, target)
		l.seed(c)
		l.schedule(c, now)
	}
}

func (c *MainlineCore) send(to netip.AddrPort, pkt []byte) {
	c.st.PacketsOut++
	c.st.BytesOut += uint64(len(pkt))
	c.out.Send(to, pkt)
}

// header is the top level of a query of transaction t.
func (c *MainlineCore) header(t *mlTxn) *wire.MLHeader {
	c.hdr.TID = t.tid[:]
	c.hdr.ReadOnly = c.cfg.ReadOnly
	return &c.hdr
}

// allow applies the per-IP rate limit to a query.
func (c *MainlineCore) allow(now time.Time, ip netip.Addr) bool {
	b := c.limits[ip]
	if b == nil {
		if len(c.limits) >= maxRateEntries {
			clear(c.limits)
		}
		b = &rateBucket{tokens: c.cfg.RateBurst, last: now}
		c.limits[ip] = b
	}
	b.tokens = min(c.cfg.RateBurst, b.tokens+now.Sub(b.last).Seconds()*c.cfg.RatePerSecond)
	b.last = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// HandlePacket processes one datagram; pkt is not retained.
func (c *MainlineCore) HandlePacket(now time.Time, from netip.AddrPort, pkt []byte) {
	if c.closed {
		return
	}
	from = netip.AddrPortFrom(from.Addr().Unmap(), from.Port())
	c.st.PacketsIn++
	c.st.BytesIn += uint64(len(pkt))
	if !from.Addr().Is4() {
		c.st.Dropped[DropNotIPv4]++
		return
	}
	if !kbucket.AddrPortAllowed(from, c.cfg.LocalOK) {
		c.st.Dropped[DropMalformed]++
		return
	}
	m := &c.msg
	err := m.Parse(pkt)
	switch {
	case err == wire.ErrMLArgs:
		if c.cfg.ReadOnly || !c.allow(now, from.Addr()) {
			c.st.RateLimited++
			return
		}
		c.replyError(from, m.TID, wire.MLErrProtocol, "Protocol Error: bad or missing arguments")
		return
	case err != nil:
		c.st.Dropped[DropMalformed]++
		return
	}
	switch m.Y {
	case 'q':
		if c.cfg.ReadOnly {
			return
		}
		if !c.allow(now, from.Addr()) {
			c.st.RateLimited++
			return
		}
		c.handleQuery(now, from, m)
	case 'r', 'e':
		if len(pkt) > packetLimit(from.Addr()) {
			c.st.Dropped[DropOversize]++
			return
		}
		c.handleReply(now, from, m)
	default:
		c.st.Dropped[DropBadType]++
	}
}

func (c *MainlineCore) replyError(to netip.AddrPort, tid []byte, code int, msg string) {
	c.st.ErrorsSent++
	h := wire.MLHeader{TID: tid, Version: c.cfg.Version}
	c.send(to, wire.AppendMLError(c.buf[:0], &h, code, msg))
}

func (c *MainlineCore) token(ip netip.Addr) []byte {
	t := c.tok.current(ip)
	return t[:wire.MLTokenLen]
}

func (c *MainlineCore) tokenValid(tok []byte, ip netip.Addr) bool {
	if len(tok) != wire.MLTokenLen {
		return false
	}
	for i := 0; i < c.tok.n; i++ {
		t := tokenFor(&c.tok.secrets[i], ip)
		if bytes.Equal(t[:wire.MLTokenLen], tok) {
			return true
		}
	}
	return false
}

func (c *MainlineCore) handleQuery(now time.Time, from netip.AddrPort, m *wire.MLMsg) {
	c.st.Queries[m.Method]++
	if m.Method == wire.MLUnknown {
		c.replyError(from, m.TID, wire.MLErrMethodUnknown, "Method Unknown")
		return
	}
	h := wire.MLHeader{TID: m.TID, Version: c.cfg.Version}
	r := wire.MLResp{Self: c.id}
	switch m.Method {
	case wire.MLFindNode:
		r.Nodes = c.closest(m.Target, m.ID)
	case wire.MLGetPeers:
		r.Token = c.token(from.Addr())
		r.Nodes = c.closest(m.InfoHash, m.ID)
		if ps := c.peers[m.InfoHash]; ps != nil {
			r.Peers = make([]netip.AddrPort, 0, min(len(ps.list), wire.MaxMLPeers))
			// The newest announces first: they are the likeliest alive.
			for i := len(ps.list) - 1; i >= 0 && len(r.Peers) < wire.MaxMLPeers; i-- {
				r.Peers = append(r.Peers, ps.list[i].addr)
			}
		}
	case wire.MLGet:
		r.Token = c.token(from.Addr())
		r.Nodes = c.closest(m.Target, m.ID)
		if it, ok := c.items[m.Target]; ok {
			r.V = it.v
		}
	case wire.MLAnnouncePeer:
		if !c.tokenValid(m.Token, from.Addr()) {
			c.replyError(from, m.TID, wire.MLErrProtocol, "Protocol Error: bad token")
			return
		}
		port := uint16(m.Port)
		if m.ImpliedPort {
			port = from.Port()
		}
		if err := c.storePeer(now, m.InfoHash, netip.AddrPortFrom(from.Addr(), port), from.Addr()); err != nil {
			c.replyError(from, m.TID, wire.MLErrServer, err.Error())
			return
		}
	case wire.MLPut:
		if m.Has&wire.MLFieldMutable != 0 {
			c.replyError(from, m.TID, wire.MLErrProtocol, "Protocol Error: mutable items are not supported")
			return
		}
		if !c.tokenValid(m.Token, from.Addr()) {
			c.replyError(from, m.TID, wire.MLErrProtocol, "Protocol Error: bad token")
			return
		}
		if err := c.storeItem(now, m.V, from.Addr()); err != nil {
			c.replyError(from, m.TID, wire.MLErrServer, err.Error())
			return
		}
	}
	c.send(from, wire.AppendMLResp(c.buf[:0], &h, from, &r))
	if m.ReadOnly {
		// BEP 43: a read-only node answers no queries; it must not enter
		// the table.
		c.st.ReadOnlySeen++
		return
	}
	c.noteNode(now, m.ID, from, false)
}

// closest is the nodes list of a reply, closest first, without the
// requester and nodes failing now.
func (c *MainlineCore) closest(target, requester wire.ID) []wire.Node {
	c.kn = c.table.ClosestExcluding(c.kn[:0], target, c.cfg.K, requester)
	c.wn = c.wn[:0]
	for _, n := range c.kn {
		c.wn = append(c.wn, wire.Node{ID: n.ID, Addr: n.Addr})
	}
	return c.wn
}

var (
	errStoreFull = errors.New("storage full")
	errQuota     = errors.New("too many stores from this address")
)

// storePeer records an announce: the newest address wins a slot, the
// oldest goes when the info-hash is full.
func (c *MainlineCore) storePeer(now time.Time, ih wire.ID, p netip.AddrPort, src netip.Addr) error {
	ps := c.peers[ih]
	if ps == nil {
		if len(c.peers) >= c.cfg.MaxInfoHashes {
			c.st.Refused++
			return errStoreFull
		}
		ps = &mlPeers{}
		c.peers[ih] = ps
	}
	for i := range ps.list {
		if ps.list[i].addr == p {
			e := ps.list[i]
			e.at = now
			copy(ps.list[i:], ps.list[i+1:])
			ps.list[len(ps.list)-1] = e
			c.st.AnnouncesStored++
			return nil
		}
	}
	if c.perIP[src] >= c.cfg.MaxPerIP {
		c.st.Refused++
		if len(ps.list) == 0 {
			delete(c.peers, ih)
		}
		return errQuota
	}
	if len(ps.list) >= c.cfg.MaxPeersPerHash {
		c.dropPeer(ps, 0)
	}
	ps.list = append(ps.list, mlPeer{addr: p, at: now})
	c.perIP[src]++
	c.npeers++
	c.st.AnnouncesStored++
	return nil
}

func (c *MainlineCore) dropPeer(ps *mlPeers, i int) {
	ip := ps.list[i].addr.Addr()
	if c.perIP[ip]--; c.perIP[ip] <= 0 {
		delete(c.perIP, ip)
	}
	ps.list = append(ps.list[:i], ps.list[i+1:]...)
	c.npeers--
}

func (c *MainlineCore) storeItem(now time.Time, v []byte, src netip.Addr) error {
	if len(v) > wire.MaxItemLen {
		return ErrItemTooBig
	}
	target := wire.ID(sha1.Sum(v))
	if it, ok := c.items[target]; ok {
		it.at = now
		c.items[target] = it
		return nil
	}
	if len(c.items) >= c.cfg.MaxItems {
		c.st.Refused++
		return errStoreFull
	}
	if c.perIP[src] >= c.cfg.MaxPerIP {
		c.st.Refused++
		return errQuota
	}
	c.perIP[src]++
	c.items[target] = mlItem{v: bytes.Clone(v), at: now, from: src}
	return nil
}

func (c *MainlineCore) expire(now time.Time) {
	for ih, ps := range c.peers {
		for i := 0; i < len(ps.list); {
			if now.Sub(ps.list[i].at) > c.cfg.PeerExpire {
				c.dropPeer(ps, i)
				continue
			}
			i++
		}
		if len(ps.list) == 0 {
			delete(c.peers, ih)
		}
	}
	for k, it := range c.items {
		if now.Sub(it.at) > c.cfg.ItemExpire {
			delete(c.items, k)
			if c.perIP[it.from]--; c.perIP[it.from] <= 0 {
				delete(c.perIP, it.from)
			}
		}
	}
}

// noteNode applies the table's insert policy to a node heard from.
func (c *MainlineCore) noteNode(now time.Time, id wire.ID, addr netip.AddrPort, contacted bool) {
	if id == c.id || id.IsZero() {
		return
	}
	if c.cfg.EnforceNodeID && !wire.BEP42Valid(id, addr.Addr()) {
		c.st.BEP42Refused++
		return
	}
	res, old := c.table.Insert(kbucket.Node{ID: id, Addr: addr}, contacted, now)
	switch res {
	case kbucket.NeedsPing:
		if _, busy := c.pinging[id]; busy || len(c.pinging) >= maxVerifying {
			return
		}
		c.pinging[id] = struct{}{}
		c.ping(now, id, addr, mlPurposePing)
	case kbucket.BucketFull:
		if now.Sub(old.LastSeen) <= c.cfg.MinPingInterval {
			return
		}
		if _, busy := c.pinging[old.ID]; busy {
			return
		}
		c.pinging[old.ID] = struct{}{}
		t := c.ping(now, old.ID, old.Addr, mlPurposeReplace)
		t.repl = kbucket.Node{ID: id, Addr: addr}
		t.replCont = contacted
	}
}

func (c *MainlineCore) ping(now time.Time, id wire.ID, addr netip.AddrPort, p mlPurpose) *mlTxn {
	t := c.newTxn(addr, id, wire.MLPing, p)
	t.pkt = wire.AppendMLPing(t.pkt[:0], c.header(t), c.id)
	c.startTxn(now, t)
	return t
}

// vote counts the address a reply says it saw us at (BEP 42's ip). Once
// three replies agree on a public address that our ID does not fit, the ID
// changes to one BEP 42 allows there, and the table is rebuilt around it.
func (c *MainlineCore) vote(now time.Time, ip netip.Addr) {
	if !ip.Is4() || ip.IsUnspecified() {
		return
	}
	if len(c.votes) > 64 {
		clear(c.votes)
	}
	c.votes[ip]++
	if c.votes[ip] < 3 || ip == c.ext {
		return
	}
	for a, n := range c.votes {
		if a != ip && n >= c.votes[ip] {
			return
		}
	}
	c.ext = ip
	if wire.BEP42Valid(c.id, ip) {
		return
	}
	var id wire.ID
	c.rng.Read(id[:])
	c.adoptID(now, wire.BEP42ID(id, ip, id[19]&7))
}

// adoptID changes our node ID and rebuilds the routing table around it.
func (c *MainlineCore) adoptID(now time.Time, id wire.ID) {
	c.st.IDChanges++
	old := c.table.Nodes(nil)
	c.id = id
	c.table = kbucket.New(id, kbucket.Config{K: c.cfg.K, MaxFailures: c.cfg.MaxFailures, AllowLocal: c.cfg.LocalOK})
	for _, n := range old {
		if n.LastSeen.IsZero() {
			continue
		}
		c.table.Insert(kbucket.Node{ID: n.ID, Addr: n.Addr}, true, n.LastSeen)
	}
	if c.joined {
		l := c.newLookup(now, mlFindNode, id)
		l.seed(c)
		l.schedule(c, now)
	}
}

func (c *MainlineCore) handleReply(now time.Time, from netip.AddrPort, m *wire.MLMsg) {
	if len(m.TID) != 4 {
		c.st.Dropped[DropUnknownTID]++
		return
	}
	slot, ok := c.txns.byTID[tidKey(m.TID)]
	if !ok {
		c.st.Dropped[DropUnknownTID]++
		return
	}
	t := &c.txns.slots[slot]
	if t.to != from {
		c.st.Dropped[DropWrongSource]++
		return
	}
	if m.Y == 'e' || m.Has&wire.MLFieldID == 0 {
		c.failTxn(now, slot)
		return
	}
	if !t.expect.IsZero() && m.ID != t.expect {
		c.table.Remove(t.expect)
		delete(c.pinging, t.expect)
		c.failTxn(now, slot)
		return
	}
	if t.sends == 1 {
		c.rtt.sample(t.to, now.Sub(t.first))
	}
	p, lk, expect := t.purpose, t.lookup, t.expect
	c.txns.release(slot)
	if m.HasIP {
		c.vote(now, m.IP.Addr())
	}
	c.noteNode(now, m.ID, from, true)
	switch p {
	case mlPurposePing:
		delete(c.pinging, expect)
	case mlPurposeReplace:
		delete(c.pinging, expect)
	case mlPurposeBoot:
		if l := c.joining; l != nil {
			l.addNodes(c, m, 1)
		}
		c.bootDone(now)
	case mlPurposeLookup:
		if l := c.lookups[lk]; l != nil {
			l.onReply(c, now, m.ID, m)
		}
	}
}

func (c *MainlineCore) failTxn(now time.Time, slot uint32) {
	t := &c.txns.slots[slot]
	p, lk, expect, to, repl, replCont, cand := t.purpose, t.lookup, t.expect, t.to, t.repl, t.replCont, t.cand
	c.txns.release(slot)
	switch p {
	case mlPurposePing:
		delete(c.pinging, expect)
		c.nodeFailed(now, expect, to)
	case mlPurposeReplace:
		delete(c.pinging, expect)
		c.table.Remove(expect)
		c.noteNode(now, repl.ID, repl.Addr, replCont)
	case mlPurposeBoot:
		c.bootDone(now)
	case mlPurposeLookup:
		c.nodeFailed(now, expect, to)
		if l := c.lookups[lk]; l != nil {
			l.onFail(c, now, cand)
		}
	}
}

func (c *MainlineCore) nodeFailed(now time.Time, id wire.ID, addr netip.AddrPort) {
	if id.IsZero() || c.table.Failed(id) {
		return
	}
	if _, ok := c.table.Get(id); !ok {
		return
	}
	if _, busy := c.pinging[id]; !busy {
		c.pinging[id] = struct{}{}
		c.addTimer(timer{at: now.Add(c.cfg.MinPingInterval), kind: timerPing, id: id, addr: addr})
	}
}

// Stats returns a snapshot of the counters.
func (c *MainlineCore) Stats() MainlineStats {
	s := c.st
	s.ID = c.id
	s.Joined = c.joined
	s.ExternalAddr = c.ext
	s.Nodes = c.table.Len()
	s.Buckets = c.table.NumBuckets()
	s.InfoHashes = len(c.peers)
	s.Peers = c.npeers
	s.Items = len(c.items)
	s.Transactions = uint64(len(c.txns.byTID))
	return s
}
