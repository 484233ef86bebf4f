package engine

import (
	"bytes"
	"crypto/sha1"
	"net/netip"
	"time"

	"github.com/apt-p2p/apt-p2p/kbucket"
	"github.com/apt-p2p/apt-p2p/wire"
)

type mlPurpose uint8

const (
	mlPurposePing    mlPurpose = iota + 1 // verify a new node, or re-ping after a failure
	mlPurposeReplace                      // the oldest node of a full bucket
	mlPurposeBoot                         // find_node to a bootstrap address
	mlPurposeLookup                       // a request of a lookup
)

// mlTxn is one outstanding request; its datagram is kept for resends.
type mlTxn struct {
	tid      [4]byte
	gen      uint32
	inUse    bool
	slow     bool
	method   wire.MLMethod
	purpose  mlPurpose
	sends    int
	to       netip.AddrPort
	expect   wire.ID
	pkt      []byte
	first    time.Time
	nextSend time.Time
	deadline time.Time
	delay    time.Duration
	lookup   uint32
	cand     wire.ID
	repl     kbucket.Node
	replCont bool
}

type mlTxnTable struct {
	slots []mlTxn
	free  []uint32
	byTID map[uint32]uint32
}

func tidKey(b []byte) uint32 {
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
}

func (t *mlTxnTable) release(i uint32) {
	s := &t.slots[i]
	delete(t.byTID, tidKey(s.tid[:]))
	pkt, gen := s.pkt[:0], s.gen+1
	*s = mlTxn{pkt: pkt, gen: gen}
	t.free = append(t.free, i)
}

func (c *MainlineCore) newTxn(to netip.AddrPort, expect wire.ID, m wire.MLMethod, p mlPurpose) *mlTxn {
	var i uint32
	if n := len(c.txns.free); n > 0 {
		i = c.txns.free[n-1]
		c.txns.free = c.txns.free[:n-1]
	} else {
		c.txns.slots = append(c.txns.slots, mlTxn{})
		i = uint32(len(c.txns.slots) - 1)
	}
	t := &c.txns.slots[i]
	t.inUse, t.to, t.expect, t.method, t.purpose = true, to, expect, m, p
	for {
		c.rng.Read(t.tid[:])
		if _, dup := c.txns.byTID[tidKey(t.tid[:])]; !dup {
			break
		}
	}
	c.txns.byTID[tidKey(t.tid[:])] = i
	return t
}

func (c *MainlineCore) startTxn(now time.Time, t *mlTxn) {
	t.first = now
	t.sends = 1
	t.delay = c.rtt.rto(t.to, c.cfg.RTOMin, c.cfg.RTOMax, c.cfg.RTOUnknown)
	t.deadline = now.Add(2 * t.delay)
	t.nextSend = now.Add(t.delay)
	c.send(t.to, t.pkt)
	c.armTxn(t)
}

func (c *MainlineCore) armTxn(t *mlTxn) {
	at := t.nextSend
	if t.deadline.Before(at) {
		at = t.deadline
	}
	c.addTimer(timer{at: at, kind: timerTxn, slot: c.txns.byTID[tidKey(t.tid[:])], gen: t.gen})
}

// txnTimer resends once after the RTO (the request then stops holding a
// lookup slot) and fails it after a second RTO.
func (c *MainlineCore) txnTimer(now time.Time, slot, gen uint32) {
	t := &c.txns.slots[slot]
	if !t.inUse || t.gen != gen {
		return
	}
	if !now.Before(t.deadline) {
		c.failTxn(now, slot)
		return
	}
	t.sends++
	t.delay *= 2
	t.nextSend = now.Add(t.delay)
	c.send(t.to, t.pkt)
	if t.purpose == mlPurposeLookup && !t.slow {
		t.slow = true
		if l := c.lookups[t.lookup]; l != nil {
			l.markSlow(c, now, t.cand)
		}
	}
	c.armTxn(t)
}

type mlKind uint8

const (
	mlFindNode mlKind = iota
	mlGetPeers
	mlGet
	mlAnnounce // store phase: announce_peer to the chosen nodes
	mlPut      // store phase: put to the chosen nodes
)

type mlCand struct {
	id    wire.ID
	addr  netip.AddrPort
	state candState
	slow  bool
	token []byte
	hop   uint8
}

func (cd *mlCand) excluded() bool {
	return cd.state == candFailed || (cd.state == candQueried && cd.slow)
}

// mlLookup is one iterative lookup (find_node, get_peers, get) or the store
// phase after one (announce_peer or put to the closest nodes with tokens).
type mlLookup struct {
	id       uint32
	kind     mlKind
	target   wire.ID
	cands    []mlCand
	start    time.Time
	sent     int
	results  int // store phase: acknowledgements
	done     bool
	hold     bool // more candidates may come (the join's bootstrap replies)
	forPut   bool // a get run for the tokens of a put: an item found does not end it
	onDone   func(now time.Time, l *mlLookup)
	onPeer   func(netip.AddrPort)
	seen     map[netip.AddrPort]struct{}
	item     []byte // get: the item found
	port     uint16 // announce
	value    []byte // put
	maxHop   int
	firstHit time.Duration
}

func (c *MainlineCore) newLookup(now time.Time, kind mlKind, target wire.ID) *mlLookup {
	c.nextLk++
	l := &mlLookup{id: c.nextLk, kind: kind, target: target, start: now}
	c.lookups[l.id] = l
	c.st.Lookups++
	return l
}

// seed starts a lookup from the K closest nodes of the table.
func (l *mlLookup) seed(c *MainlineCore) {
	c.table.Touch(l.target, l.start)
	c.kn = c.table.Closest(c.kn[:0], l.target, c.cfg.K)
	for _, n := range c.kn {
		l.add(n.ID, n.Addr, 1)
	}
}

func (l *mlLookup) add(id wire.ID, addr netip.AddrPort, hop uint8) {
	i := 0
	for ; i < len(l.cands); i++ {
		if l.cands[i].id == id {
			return
		}
		if l.target.CloserTo(id, l.cands[i].id) {
			break
		}
	}
	for j := i; j < len(l.cands); j++ {
		if l.cands[j].id == id {
			return
		}
	}
	if len(l.cands) >= maxCands {
		if i >= maxCands {
			return
		}
		l.cands = l.cands[:maxCands-1]
	}
	l.cands = append(l.cands, mlCand{})
	copy(l.cands[i+1:], l.cands[i:])
	l.cands[i] = mlCand{id: id, addr: addr, hop: hop}
}

func (l *mlLookup) find(id wire.ID) *mlCand {
	for i := range l.cands {
		if l.cands[i].id == id {
			return &l.cands[i]
		}
	}
	return nil
}

func (l *mlLookup) schedule(c *MainlineCore, now time.Time) {
	if l.done {
		return
	}
	if l.kind == mlAnnounce || l.kind == mlPut {
		pending := 0
		for i := range l.cands {
			cd := &l.cands[i]
			if cd.state == candNew {
				l.query(c, now, cd)
			}
			if cd.state == candQueried {
				pending++
			}
		}
		if pending == 0 {
			l.finish(c, now)
		}
		return
	}
	if l.kind == mlGet && l.item != nil && !l.forPut {
		l.finish(c, now)
		return
	}
	k, alpha := c.cfg.K, c.cfg.Alpha
	top, answered, inflight, pending := 0, 0, 0, 0
	for i := range l.cands {
		cd := &l.cands[i]
		if cd.excluded() {
			continue
		}
		if top == k {
			break
		}
		top++
		switch cd.state {
		case candAnswered:
			answered++
		case candQueried:
			pending++
			if !cd.slow {
				inflight++
			}
		}
	}
	if answered >= k {
		l.finish(c, now)
		return
	}
	top = 0
	for i := range l.cands {
		if inflight >= alpha {
			break
		}
		cd := &l.cands[i]
		if cd.excluded() {
			continue
		}
		if top == k {
			break
		}
		top++
		if cd.state == candNew {
			l.query(c, now, cd)
			inflight++
			pending++
		}
	}
	if pending == 0 && !l.hold {
		l.finish(c, now)
	}
}

func (l *mlLookup) query(c *MainlineCore, now time.Time, cd *mlCand) {
	var m wire.MLMethod
	switch l.kind {
	case mlFindNode:
		m = wire.MLFindNode
	case mlGetPeers:
		m = wire.MLGetPeers
	case mlGet:
		m = wire.MLGet
	case mlAnnounce:
		m = wire.MLAnnouncePeer
	default:
		m = wire.MLPut
	}
	t := c.newTxn(cd.addr, cd.id, m, mlPurposeLookup)
	t.lookup, t.cand = l.id, cd.id
	h := c.header(t)
	switch l.kind {
	case mlFindNode:
		t.pkt = wire.AppendMLFindNode(t.pkt[:0], h, c.id, l.target)
	case mlGetPeers:
		t.pkt = wire.AppendMLGetPeers(t.pkt[:0], h, c.id, l.target)
	case mlGet:
		t.pkt = wire.AppendMLGet(t.pkt[:0], h, c.id, l.target)
	case mlAnnounce:
		t.pkt = wire.AppendMLAnnounce(t.pkt[:0], h, c.id, l.target, l.port, cd.token)
	default:
		t.pkt = wire.AppendMLPut(t.pkt[:0], h, c.id, cd.token, l.value)
	}
	cd.state = candQueried
	l.sent++
	c.startTxn(now, t)
}

func (l *mlLookup) onReply(c *MainlineCore, now time.Time, id wire.ID, m *wire.MLMsg) {
	if l.done {
		return
	}
	cd := l.find(id)
	if cd == nil || cd.state != candQueried {
		return
	}
	cd.state = candAnswered
	l.maxHop = max(l.maxHop, int(cd.hop))
	hop := cd.hop + 1
	if m.Has&wire.MLFieldToken != 0 {
		cd.token = bytes.Clone(m.Token)
	}
	switch l.kind {
	case mlAnnounce, mlPut:
		l.results++
	case mlGetPeers:
		for p := range m.Peers.All {
			if !kbucket.AddrPortAllowed(p, c.cfg.LocalOK) {
				continue
			}
			if l.seen == nil {
				l.seen = make(map[netip.AddrPort]struct{})
			}
			if _, dup := l.seen[p]; dup || len(l.seen) >= 4096 {
				continue
			}
			if len(l.seen) == 0 {
				l.firstHit = now.Sub(l.start)
			}
			l.seen[p] = struct{}{}
			if l.onPeer != nil {
				l.onPeer(p)
			}
		}
	case mlGet:
		if m.Has&wire.MLFieldV != 0 && l.item == nil && sha1.Sum(m.V) == l.target {
			l.item = bytes.Clone(m.V)
			l.firstHit = now.Sub(l.start)
		}
	}
	if l.done {
		return // a callback cancelled it
	}
	if l.kind != mlAnnounce && l.kind != mlPut {
		l.addNodes(c, m, hop)
	}
	l.schedule(c, now)
}

func (l *mlLookup) addNodes(c *MainlineCore, m *wire.MLMsg, hop uint8) {
	for i := 0; i < m.Nodes.Len(); i++ {
		n := m.Nodes.At(i)
		if n.ID == c.id || n.ID.IsZero() || !kbucket.AddrPortAllowed(n.Addr, c.cfg.LocalOK) {
			continue
		}
		l.add(n.ID, n.Addr, hop)
	}
}

func (l *mlLookup) onFail(c *MainlineCore, now time.Time, id wire.ID) {
	if l.done {
		return
	}
	if cd := l.find(id); cd != nil && cd.state == candQueried {
		cd.state = candFailed
		l.schedule(c, now)
	}
}

func (l *mlLookup) markSlow(c *MainlineCore, now time.Time, id wire.ID) {
	if l.done || l.kind == mlAnnounce || l.kind == mlPut {
		return
	}
	if cd := l.find(id); cd != nil && cd.state == candQueried {
		cd.slow = true
		l.schedule(c, now)
	}
}

func (l *mlLookup) finish(c *MainlineCore, now time.Time) {
	if l.done {
		return
	}
	l.done = true
	delete(c.lookups, l.id)
	if l.onDone != nil {
		l.onDone(now, l)
	}
}

// stop ends a lookup without completing it and releases its requests.
func (c *MainlineCore) stop(l *mlLookup) {
	if l.done {
		return
	}
	l.done = true
	delete(c.lookups, l.id)
	for i := range c.txns.slots {
		t := &c.txns.slots[i]
		if t.inUse && t.purpose == mlPurposeLookup && t.lookup == l.id {
			c.txns.release(uint32(i))
		}
	}
}

// closestWithTokens returns up to K answered candidates that gave a token.
func (l *mlLookup) closestWithTokens(k int) []mlCand {
	var out []mlCand
	for i := range l.cands {
		cd := l.cands[i]
		if cd.state != candAnswered {
			continue
		}
		if len(out) == k {
			break
		}
		if cd.token == nil {
			continue
		}
		cd.state = candNew
		cd.slow = false
		out = append(out, cd)
	}
	return out
}

// mlOp is a caller operation that Cancel can stop.
type mlOp struct {
	lks    []*mlLookup
	onDone func(Result)
}

func (c *MainlineCore) newOp(done func(Result)) (Op, *mlOp) {
	c.nextOp++
	o := &mlOp{onDone: done}
	c.ops[Op(c.nextOp)] = o
	return Op(c.nextOp), o
}

// Cancel ends an operation: its completion runs at once with ErrCanceled
// and its lookups stop, their requests released. A finished or zero Op is
// ignored.
func (c *MainlineCore) Cancel(now time.Time, op Op) {
	o := c.ops[op]
	if o == nil {
		return
	}
	delete(c.ops, op)
	c.st.Cancelled++
	for _, l := range o.lks {
		c.stop(l)
	}
	o.onDone(Result{Err: ErrCanceled})
}

// complete ends op with r unless it was cancelled.
func (c *MainlineCore) complete(op Op, r Result) {
	if o := c.ops[op]; o != nil {
		delete(c.ops, op)
		o.onDone(r)
	}
}

func (c *MainlineCore) ready() error {
	if c.closed {
		return ErrClosed
	}
	if !c.joined {
		return ErrNotJoined
	}
	return nil
}

// GetPeers looks up the peers announced under infoHash; onPeer gets each
// distinct one as it arrives, onDone the end (Result.Values: peers found).
func (c *MainlineCore) GetPeers(now time.Time, infoHash wire.ID, onPeer func(netip.AddrPort), onDone func(Result)) Op {
	if err := c.ready(); err != nil {
		onDone(Result{Err: err})
		return 0
	}
	c.st.GetPeers++
	op, o := c.newOp(onDone)
	l := c.newLookup(now, mlGetPeers, infoHash)
	o.lks = append(o.lks, l)
	l.onPeer = onPeer
	// Our own store first.
	if ps := c.peers[infoHash]; ps != nil {
		l.seen = make(map[netip.AddrPort]struct{})
		for _, p := range ps.list {
			l.seen[p.addr] = struct{}{}
			if onPeer != nil {
				onPeer(p.addr)
			}
		}
	}
	l.seed(c)
	l.onDone = func(now time.Time, l *mlLookup) {
		r := Result{Values: len(l.seen), Elapsed: now.Sub(l.start), FirstValue: l.firstHit, Hops: l.maxHop, Messages: l.sent}
		c.st.GetPeersLatency.Add(r.Elapsed)
		if len(l.seen) > 0 {
			c.st.GetPeersFound++
		}
		c.complete(op, r)
	}
	l.schedule(c, now)
	return op
}

// Announce announces that we hold infoHash, reachable at port (the HTTP
// port: implied_port is 0), to the K closest nodes that gave a token in a
// get_peers lookup. Result.Stored is the number that acknowledged;
// ErrNotStored when none did.
func (c *MainlineCore) Announce(now time.Time, infoHash wire.ID, port uint16, onDone func(Result)) Op {
	if err := c.ready(); err != nil {
		onDone(Result{Err: err})
		return 0
	}
	c.st.Announces++
	op, o := c.newOp(onDone)
	l := c.newLookup(now, mlGetPeers, infoHash)
	o.lks = append(o.lks, l)
	l.seed(c)
	l.onDone = func(now time.Time, l *mlLookup) {
		sl := c.newLookup(now, mlAnnounce, infoHash)
		o.lks = append(o.lks, sl)
		sl.port = port
		sl.cands = l.closestWithTokens(c.cfg.K)
		msgs := l.sent
		sl.onDone = func(now time.Time, sl *mlLookup) {
			r := Result{Stored: sl.results, Elapsed: now.Sub(l.start), Hops: l.maxHop, Messages: msgs + sl.sent}
			if sl.results == 0 {
				r.Err = ErrNotStored
			} else {
				c.st.AnnouncesOK++
			}
			c.complete(op, r)
		}
		sl.schedule(c, now)
	}
	l.schedule(c, now)
	return op
}

// GetItem looks up the BEP 44 immutable item whose target is the SHA-1 of
// its bencoded value; onDone gets the value (nil if not found).
func (c *MainlineCore) GetItem(now time.Time, target wire.ID, onDone func(v []byte, r Result)) Op {
	if it, ok := c.items[target]; ok && !c.closed {
		onDone(bytes.Clone(it.v), Result{Values: 1})
		return 0
	}
	if err := c.ready(); err != nil {
		onDone(nil, Result{Err: err})
		return 0
	}
	var found []byte
	op, o := c.newOp(func(r Result) { onDone(found, r) })
	l := c.newLookup(now, mlGet, target)
	o.lks = append(o.lks, l)
	l.seed(c)
	l.onDone = func(now time.Time, l *mlLookup) {
		found = l.item
		r := Result{Elapsed: now.Sub(l.start), FirstValue: l.firstHit, Hops: l.maxHop, Messages: l.sent}
		if found != nil {
			r.Values = 1
		}
		c.complete(op, r)
	}
	l.schedule(c, now)
	return op
}

// PutItem stores a BEP 44 immutable item (v is its bencoded value, at most
// wire.MaxItemLen bytes) on the K closest nodes to SHA-1(v), and keeps it
// locally. Result.Stored counts the nodes that acknowledged.
func (c *MainlineCore) PutItem(now time.Time, v []byte, onDone func(Result)) Op {
	if len(v) > wire.MaxItemLen {
		onDone(Result{Err: ErrItemTooBig})
		return 0
	}
	if err := wire.Valid(v); err != nil {
		onDone(Result{Err: err})
		return 0
	}
	if err := c.ready(); err != nil {
		onDone(Result{Err: err})
		return 0
	}
	v = bytes.Clone(v)
	target := wire.ID(sha1.Sum(v))
	c.items[target] = mlItem{v: v, at: now}
	op, o := c.newOp(onDone)
	l := c.newLookup(now, mlGet, target)
	o.lks = append(o.lks, l)
	l.seed(c)
	l.onDone = func(now time.Time, l *mlLookup) {
		sl := c.newLookup(now, mlPut, target)
		o.lks = append(o.lks, sl)
		sl.value = v
		sl.cands = l.closestWithTokens(c.cfg.K)
		msgs := l.sent
		sl.onDone = func(now time.Time, sl *mlLookup) {
			r := Result{Stored: sl.results, Elapsed: now.Sub(l.start), Messages: msgs + sl.sent}
			if sl.results == 0 {
				r.Err = ErrNotStored
			}
			c.complete(op, r)
		}
		sl.schedule(c, now)
	}
	l.forPut = true
	l.schedule(c, now)
	return op
}

// FindNode returns the K closest nodes to target that answered.
func (c *MainlineCore) FindNode(now time.Time, target wire.ID, onDone func(Result)) Op {
	if c.closed {
		onDone(Result{Err: ErrClosed})
		return 0
	}
	op, o := c.newOp(onDone)
	l := c.newLookup(now, mlFindNode, target)
	o.lks = append(o.lks, l)
	l.seed(c)
	l.onDone = func(now time.Time, l *mlLookup) {
		r := Result{Elapsed: now.Sub(l.start), Hops: l.maxHop, Messages: l.sent}
		for _, cd := range l.cands {
			if cd.state == candAnswered && len(r.Nodes) < c.cfg.K {
				r.Nodes = append(r.Nodes, wire.Node{ID: cd.id, Addr: cd.addr})
			}
		}
		c.complete(op, r)
	}
	l.schedule(c, now)
	return op
}
