package engine

import (
	crand "crypto/rand"
	"errors"
	"math/rand/v2"
	"net/netip"
	"slices"
	"time"

	"github.com/apt-p2p/apt-p2p/kbucket"
	"github.com/apt-p2p/apt-p2p/wire"
)

// Errors reported to callers.
var (
	ErrNotJoined = errors.New("engine: have not joined a network yet")
	ErrClosed    = errors.New("engine: closed")
	ErrTimeout   = errors.New("engine: timeout") // local 102
	ErrIDChanged = errors.New("engine: node ID has changed")
	ErrNotStored = errors.New("engine: could not store value")
)

// maxVerifying bounds the verification pings in flight.
const maxVerifying = 64

// Output receives the datagrams the core sends. Send must copy pkt or send it
// before returning: the core reuses the buffer.
type Output interface {
	Send(to netip.AddrPort, pkt []byte)
}

// Core is the sans-IO DHT node: datagrams and timer events go in, datagrams
// and caller results come out. It never reads the clock, sleeps or touches a
// socket; every method takes the current time. It is not safe for concurrent
// use: one goroutine (the runner's event loop, or the simulator) owns it.
type Core struct {
	cfg   Config
	out   Output
	rng   *rand.ChaCha8
	id    wire.ID
	table *kbucket.Table
	// sibling is the other family's core of a dual-stack node (Pair), run
	// by the same goroutine; nil otherwise.
	sibling *Core

	timers  timerHeap
	txns    txnTable
	tok     tokens
	store   *valueStore
	rtt     rttTable
	pinging map[wire.ID]struct{}
	// probation holds nodes admitted by a verification ping only (see
	// Config.NATProbation).
	probation map[wire.ID]struct{}
	verifying int // verification pings in flight

	lookups    map[uint32]*lookup
	nextLookup uint32
	gets       map[wire.ID]*getOp
	ops        map[Op]*opRun // caller operations that can still be cancelled
	nextOp     uint64
	claims     map[uint32]*pendingClaim // Claims waiting to check
	nextClaim  uint32
	dead       map[netip.AddrPort]time.Time // addresses that timed out lately (Config.DeadMemory)

	join joinState

	started   time.Time
	closed    bool
	reachable bool
	saved     []wire.Node // nodes from the saved table, pinged at start
	loadErr   error

	st      Stats
	reach   reachCore      // reachability (reach.go)
	lanNets []netip.Prefix // our LANs' subnets, from LAN discovery (lan.go)

	// Scratch buffers reused by the packet path.
	pkt    []byte // the datagram being handled
	msg    wire.Msg
	buf    []byte
	knodes []kbucket.Node
	wnodes []wire.Node
	mixed  []wire.Node // a reply's nodes of both families (family.go)
	vals   [][]byte
}

// New builds a core. It loads the saved state (node ID and routing table)
// through cfg.State when set; the ID is reused only when its suffix is
// cfg.Version.
func New(cfg Config, out Output) (*Core, error) {
	cfg.fill()
	c := &Core{
		cfg:       cfg,
		out:       out,
		pinging:   make(map[wire.ID]struct{}),
		probation: make(map[wire.ID]struct{}),
		lookups:   make(map[uint32]*lookup),
		gets:      make(map[wire.ID]*getOp),
		ops:       make(map[Op]*opRun),
		claims:    make(map[uint32]*pendingClaim),
		dead:      make(map[netip.AddrPort]time.Time),
		buf:       make([]byte, 0, 2048),
	}
	c.txns.byTID = make(map[wire.ID]uint32)
	var seed [32]byte
	if cfg.Seed != nil {
		seed = *cfg.Seed
	} else {
		crand.Read(seed[:])
	}
	c.rng = rand.NewChaCha8(seed)
	if cfg.State == nil && cfg.StateDir != "" {
		cfg.State = FileState{Dir: cfg.StateDir}
		c.cfg.State = cfg.State
	}
	var st *State
	if cfg.State != nil {
		// A corrupt or unreadable state file costs the saved table, not the
		// node: start fresh and let the caller report it (LoadError).
		st, c.loadErr = cfg.State.Load()
	}
	switch {
	case !cfg.NodeID.IsZero():
		c.id = cfg.NodeID
	case st != nil && string(st.ID[wire.IDLen-len(cfg.Version):]) == cfg.Version:
		c.id = st.ID
	default:
		c.id = c.newNodeID()
	}
	if st != nil {
		c.saved = st.Nodes
	}
	c.table = kbucket.New(c.id, kbucket.Config{K: cfg.K, MaxFailures: cfg.MaxFailures, AllowLocal: cfg.LocalOK, Family: tableFamily(cfg.Family)})
	c.store = newValueStore(&cfg)
	c.tok.rotate(c.randID())
	c.reachInit()
	return c, nil
}

// newNodeID is 20 random bytes with the version suffix (§2.3).
func (c *Core) newNodeID() wire.ID {
	id := c.randID()
	copy(id[wire.IDLen-len(c.cfg.Version):], c.cfg.Version)
	return id
}

func (c *Core) randID() wire.ID {
	var id wire.ID
	c.rng.Read(id[:])
	return id
}

// LoadError is the error met loading the saved state in New, if any (the
// core then started with a new ID and an empty table).
func (c *Core) LoadError() error { return c.loadErr }

// ID is this node's ID.
func (c *Core) ID() wire.ID { return c.id }

// Table gives read access to the routing table (for tests and tools; the
// owner goroutine only).
func (c *Core) Table() *kbucket.Table { return c.table }

// Start begins operation: pings the saved routing table, schedules the first
// checkpoint and joins through the bootstrap addresses.
func (c *Core) Start(now time.Time, bootstrap []netip.AddrPort) {
	c.started = now
	c.addTimer(timer{at: now.Add(c.cfg.FirstCheckpoint), kind: timerCheckpoint})
	c.join.backoff = c.cfg.RejoinInitial
	c.join.bootstrap = append([]netip.AddrPort(nil), bootstrap...)
	c.reachStart(now)
	c.joinAttempt(now)
}

// Close fails every pending operation with ErrClosed; afterwards the core
// ignores packets and timers (§8.2: no processing after stop).
func (c *Core) Close() {
	if c.closed {
		return
	}
	c.closed = true
	for _, l := range c.lookups {
		l.finishErr(c, ErrClosed)
	}
	clear(c.lookups)
	for _, g := range c.gets {
		g.complete(c, ErrClosed, 0)
	}
	clear(c.gets)
	for _, pc := range c.claims {
		if c.ops[pc.op] != nil {
			pc.onDone(Result{Err: ErrClosed}, nil)
		}
	}
	clear(c.claims)
	clear(c.ops)
	c.join.fail(ErrClosed)
	c.timers = c.timers[:0]
}

// Closed reports whether Close was called.
func (c *Core) Closed() bool { return c.closed }

// NextDeadline is when Tick must next be called, if any timer is pending.
func (c *Core) NextDeadline() (time.Time, bool) { return c.timers.next() }

// Tick fires every timer due at or before now.
func (c *Core) Tick(now time.Time) {
	c.reach.now = now
	for !c.closed && len(c.timers) > 0 && !c.timers[0].at.After(now) {
		t := c.timers.pop()
		switch t.kind {
		case timerTxn:
			c.txnTimer(now, t.slot, t.gen)
		case timerPing:
			c.scheduledPing(now, t.id, t.addr)
		case timerCheckpoint:
			c.checkpoint(now)
		case timerRejoin:
			c.joinAttempt(now)
		case timerClaim:
			c.claimTimer(now, t.slot)
		case timerReach:
			c.reachTimer(now)
		case timerReachEval:
			c.reachEval(now, t.id)
		}
	}
}

func (c *Core) addTimer(t timer) { c.timers.push(t) }

func (c *Core) send(to netip.AddrPort, pkt []byte) {
	c.st.PacketsOut++
	c.st.BytesOut += uint64(len(pkt))
	if c.cfg.Reach.Probe {
		c.noteSent(to.Addr())
	}
	c.out.Send(to, pkt)
}

// packetLimit is the largest datagram accepted from or sent to a: 1472 bytes
// for IPv4, 1452 for IPv6 (an unfragmented 1500-byte MTU).
func packetLimit(a netip.Addr) int {
	if a.Is4() || a.Is4In6() {
		return wire.MaxPacketIPv4
	}
	return wire.MaxPacketIPv6
}

// HandlePacket processes one received datagram. pkt is not retained.
func (c *Core) HandlePacket(now time.Time, from netip.AddrPort, pkt []byte) {
	if c.closed {
		return
	}
	from = netip.AddrPortFrom(from.Addr().Unmap(), from.Port())
	c.reach.now = now
	if len(c.dead) > 0 {
		delete(c.dead, from) // it is alive after all
	}
	c.st.PacketsIn++
	c.st.BytesIn += uint64(len(pkt))
	if !c.inFamily(from.Addr()) {
		// A core serves one family (family.go): an IPv4 core's 26-byte
		// compact nodes could not hand an IPv6 contact on, so it must not
		// enter the table; a dual-stack node's runner gives each core its
		// own family's datagrams.
		c.st.Dropped[DropOtherFamily]++
		return
	}
	// Requests may be as large as a UDP datagram: the original bounds only
	// responses, and its peers send store_value requests of up to 1563 bytes
	// (a 70-piece piece string, reference §2.8). Parse is bounded by
	// MaxParseLen and MaxDepth whatever arrives.
	if len(pkt) > wire.MaxParseLen {
		c.st.Dropped[DropOversize]++
		return
	}
	m := &c.msg
	c.pkt = pkt
	err := m.Parse(pkt)
	if err != nil {
		if err == wire.ErrBadArgs && m.Y == 'q' {
			c.handleQuery(now, from, m, true)
			return
		}
		c.st.Dropped[DropMalformed]++
		return
	}
	switch m.Y {
	case 'q':
		c.handleQuery(now, from, m, false)
	case 'r', 'e':
		// Replies are bound by the packet limit in every implementation: a
		// larger one is not from a conforming peer.
		if len(pkt) > packetLimit(from.Addr()) {
			c.st.Dropped[DropOversize]++
			return
		}
		c.handleReply(now, from, m)
	default:
		c.st.Dropped[DropBadType]++
	}
}

func (c *Core) sendError(to netip.AddrPort, tid wire.ID, code int, msg string) {
	c.st.ErrorsSent++
	c.send(to, wire.AppendError(c.buf[:0], tid, code, msg))
}

func (c *Core) handleQuery(now time.Time, from netip.AddrPort, m *wire.Msg, badArgs bool) {
	c.reachable = true
	c.reachQueryIn(now, from)
	meth := m.Method
	if meth > wire.MethodStoreValue {
		meth = wire.MethodUnknown
	}
	c.st.RPC[meth].Received++
	if meth == wire.MethodUnknown && string(m.MethodName) == wire.ReachMethod && c.serveReach(now, from, m, c.pkt) {
		return
	}
	if meth == wire.MethodUnknown {
		c.st.ErrorsSent++
		c.send(from, wire.AppendUnknownMethod(c.buf[:0], m.TID, m.MethodName))
		return
	}
	if badArgs {
		c.sendError(from, m.TID, wire.ErrCodeMalformedRequest, "malformed request")
		return
	}
	limit := packetLimit(from.Addr())
	var out []byte
	switch meth {
	case wire.MethodPing:
		out = wire.AppendIDResp(c.buf[:0], m.TID, c.id)
	case wire.MethodJoin:
		out = wire.AppendJoinResp(c.buf[:0], m.TID, c.id, from)
	case wire.MethodFindNode:
		out = c.findNodeReply(now, from, m)
	case wire.MethodFindValue:
		out = c.findValueReply(now, m)
	case wire.MethodGetValue:
		vals, tooBig := c.replyValues(m.Key, m.Num, limit)
		var n int
		out, n = wire.AppendGetValueResp(c.buf[:0], m.TID, c.id, vals, limit)
		clear(c.vals)
		if n == 0 && tooBig > 0 {
			// Every value picked is too large for any reply (a piece string
			// of 70 pieces stored by an original peer is 1410 bytes, its
			// reply 1491): error 201 as the original sent, with the size.
			c.st.ErrorsSent++
			c.send(from, wire.AppendResponseTooLong(c.buf[:0], m.TID, wire.ErrCodeServer, wire.SingleValueRespLen(tooBig)))
			c.noteQuerier(now, m, from)
			return
		}
	case wire.MethodStoreValue:
		if !c.tok.valid(m.Token, from.Addr()) {
			c.sendError(from, m.TID, wire.ErrCodeInvalidToken, "token is invalid, do a find_nodes to get a fresh one")
			c.noteQuerier(now, m, from)
			return
		}
		err := c.storeLocal(now, m.Key, m.Value, from)
		if err != nil {
			c.sendError(from, m.TID, wire.ErrCodeServer, err.Error())
			c.noteQuerier(now, m, from)
			return
		}
		out = wire.AppendIDResp(c.buf[:0], m.TID, c.id)
	}
	if len(out) > limit {
		c.st.ErrorsSent++
		c.send(from, wire.AppendResponseTooLong(c.buf[:0], m.TID, wire.ErrCodeResponseTooLong, len(out)))
	} else {
		c.send(from, out)
	}
	// Every request makes the sender an uncontacted candidate (§2.5).
	c.noteQuerier(now, m, from)
}

// storeLocal validates and stores a value (from a store_value request, or
// from our own put when we are among the closest nodes).
func (c *Core) storeLocal(now time.Time, key wire.ID, value []byte, from netip.AddrPort) error {
	if c.cfg.Validate != nil {
		if err := c.cfg.Validate(key, value, from); err != nil {
			c.st.StoresRefused++
			return err
		}
	}
	if err := c.store.put(key, value, from.Addr(), now); err != nil {
		c.st.StoresRefused++
		return err
	}
	c.st.StoresAccepted++
	return nil
}

// closestFor returns up to K nodes closest to target for a reply, leaving
// out the requester and nodes failing right now (§8.2 #16), as wire nodes in
// a scratch slice, closest first as the original's replies are.
//
// Nodes on probation only fill what verified nodes leave (a young network
// has no verified nodes yet); the choice is made in that order, but the
// reply is sorted by distance afterwards: a peer may take the first entry
// for the closest.
func (c *Core) closestFor(now time.Time, target, requester wire.ID) []wire.Node {
	c.chooseFor(target, requester)
	w := c.wnodes
	if len(c.dead) > 0 {
		w = slices.DeleteFunc(w, func(n wire.Node) bool { return c.isDead(now, n.Addr) })
		c.wnodes = w
	}
	for i := 1; i < len(w); i++ {
		for j := i; j > 0 && target.CloserTo(w[j].ID, w[j-1].ID); j-- {
			w[j], w[j-1] = w[j-1], w[j]
		}
	}
	return w
}

// chooseFor fills c.wnodes with the nodes of a reply, verified ones first.
func (c *Core) chooseFor(target, requester wire.ID) {
	want := c.cfg.K
	if c.cfg.NATProbation && len(c.probation) > 0 {
		want += c.cfg.K
	}
	c.knodes = c.table.ClosestExcluding(c.knodes[:0], target, want, requester)
	c.wnodes = c.wnodes[:0]
	for pass := 0; pass < 2; pass++ {
		for _, n := range c.knodes {
			if len(c.wnodes) == c.cfg.K {
				return
			}
			if want > c.cfg.K {
				if _, p := c.probation[n.ID]; p != (pass == 1) {
					continue
				}
			} else if pass == 1 {
				return
			}
			c.wnodes = append(c.wnodes, wire.Node{ID: n.ID, Addr: n.Addr})
		}
	}
}

// replyValues picks the values of a get_value reply (pickValues) and leaves
// out those that could not fit a reply to this peer even alone, so that one
// oversized value does not hide the others. tooBig is the size of the
// smallest value left out, 0 if none was.
func (c *Core) replyValues(key wire.ID, num int64, limit int) (vals [][]byte, tooBig int) {
	vals = c.pickValues(key, num)
	j := 0
	for _, v := range vals {
		if wire.SingleValueRespLen(len(v)) > limit {
			if tooBig == 0 || len(v) < tooBig {
				tooBig = len(v)
			}
			continue
		}
		vals[j] = v
		j++
	}
	return vals[:j], tooBig
}

// pickValues returns the values under key: all if num is 0 or at least their
// count, otherwise num drawn at random (§2.5).
func (c *Core) pickValues(key wire.ID, num int64) [][]byte {
	c.vals = c.store.appendValues(c.vals[:0], key)
	v := c.vals
	if num <= 0 || num >= int64(len(v)) {
		return v
	}
	for i := 0; i < int(num); i++ {
		j := i + int(c.rng.Uint64()%uint64(len(v)-i))
		v[i], v[j] = v[j], v[i]
	}
	return v[:num]
}

// noteNode applies the insert policy of §2.10 to a node we heard from.
// contacted is true when it answered one of our requests.
func (c *Core) noteNode(now time.Time, id wire.ID, addr netip.AddrPort, contacted bool) {
	if id == c.id || id.IsZero() {
		return
	}
	res, old := c.table.Insert(kbucket.Node{ID: id, Addr: addr}, contacted, now)
	switch res {
	case kbucket.NeedsPing:
		if _, busy := c.pinging[id]; busy {
			return
		}
		if c.verifying >= maxVerifying {
			// A flood of requests from new (perhaps spoofed) sources must
			// not turn into a flood of pings: they can ask again later.
			c.st.VerifySkipped++
			return
		}
		c.pinging[id] = struct{}{}
		c.verifying++
		c.ping(now, id, addr, purposePing, true)
	case kbucket.BucketFull:
		if now.Sub(old.LastSeen) <= c.cfg.MinPingInterval {
			return
		}
		if _, busy := c.pinging[old.ID]; busy {
			return
		}
		c.pinging[old.ID] = struct{}{}
		t := c.ping(now, old.ID, old.Addr, purposeReplace, false)
		t.repl = kbucket.Node{ID: id, Addr: addr}
		t.replCont = contacted
	}
}

// ping sends a ping and returns its transaction.
func (c *Core) ping(now time.Time, id wire.ID, addr netip.AddrPort, p purpose, verify bool) *txn {
	t := c.newTxn(addr, id, wire.MethodPing, p)
	t.verify = verify
	t.pkt = wire.AppendPing(t.pkt[:0], t.tid, c.id)
	c.startTxn(now, t)
	return t
}

// scheduledPing fires a ping planned MIN_PING_INTERVAL earlier (re-ping of
// a new node, or ping after a failure).
func (c *Core) scheduledPing(now time.Time, id wire.ID, addr netip.AddrPort) {
	if _, ok := c.table.Get(id); !ok {
		delete(c.pinging, id)
		return
	}
	c.ping(now, id, addr, purposePing, false)
}

func (c *Core) schedulePing(now time.Time, id wire.ID, addr netip.AddrPort) {
	c.pinging[id] = struct{}{}
	c.addTimer(timer{at: now.Add(c.cfg.MinPingInterval), kind: timerPing, id: id, addr: addr})
}

// nodeFailed counts a failed request against a node (§2.10); a node that
// stays in the table gets a ping MIN_PING_INTERVAL later.
// maxDead bounds the dead-address memory.
const maxDead = 4096

// markDead remembers that addr let a request time out.
func (c *Core) markDead(now time.Time, addr netip.AddrPort) {
	if c.cfg.DeadMemory < 0 {
		return
	}
	if len(c.dead) >= maxDead {
		for a, t := range c.dead {
			if now.Sub(t) > c.cfg.DeadMemory {
				delete(c.dead, a)
			}
		}
		if len(c.dead) >= maxDead {
			return
		}
	}
	c.dead[addr] = now
}

// isDead reports whether addr timed out within DeadMemory and has been
// silent since.
func (c *Core) isDead(now time.Time, addr netip.AddrPort) bool {
	t, ok := c.dead[addr]
	if !ok {
		return false
	}
	if now.Sub(t) > c.cfg.DeadMemory {
		delete(c.dead, addr)
		return false
	}
	return true
}

func (c *Core) nodeFailed(now time.Time, id wire.ID, addr netip.AddrPort) {
	if id.IsZero() {
		return
	}
	if c.table.Failed(id) {
		return
	}
	if _, ok := c.table.Get(id); !ok {
		return
	}
	if _, busy := c.pinging[id]; !busy {
		c.schedulePing(now, id, addr)
	}
}

// newTxn allocates a transaction with a fresh random TID.
func (c *Core) newTxn(to netip.AddrPort, expect wire.ID, m wire.Method, p purpose) *txn {
	i := c.txns.alloc()
	t := &c.txns.slots[i]
	t.inUse = true
	t.to = to
	t.expect = expect
	t.method = m
	t.purpose = p
	for {
		c.rng.Read(t.tid[:])
		if _, dup := c.txns.byTID[t.tid]; !dup {
			break
		}
	}
	c.txns.byTID[t.tid] = i
	return t
}

func (c *Core) slotOf(t *txn) uint32 { return c.txns.byTID[t.tid] }

// startTxn sends the first datagram and arms the resend timer.
func (c *Core) startTxn(now time.Time, t *txn) {
	t.first = now
	t.sends = 1
	if c.cfg.Profile == ProfileClassic {
		t.delay = c.cfg.KRPCInitialDelay
		t.deadline = now.Add(c.cfg.KRPCTimeout)
	} else {
		t.delay = c.rtt.rto(t.to, c.cfg.RTOMin, c.cfg.RTOMax, c.cfg.RTOUnknown)
		t.deadline = now.Add(2 * t.delay)
	}
	t.nextSend = now.Add(t.delay)
	c.st.RPC[t.method].Sent++
	c.reach.now = now
	if c.reach.readOnly {
		t.pkt = wire.AppendReadOnly(t.pkt) // BEP 43: do not add us, we cannot be reached
	}
	c.send(t.to, t.pkt)
	c.armTxn(t)
}

func (c *Core) armTxn(t *txn) {
	at := t.nextSend
	if t.deadline.Before(at) {
		at = t.deadline
	}
	c.addTimer(timer{at: at, kind: timerTxn, slot: c.slotOf(t), gen: t.gen})
}

// txnTimer resends the identical datagram or fails the transaction (§2.9).
func (c *Core) txnTimer(now time.Time, slot, gen uint32) {
	t := &c.txns.slots[slot]
	if !t.inUse || t.gen != gen {
		return
	}
	if !now.Before(t.deadline) {
		c.failTxn(now, slot, ErrTimeout)
		return
	}
	t.sends++
	t.delay *= 2
	t.nextSend = now.Add(t.delay)
	c.st.RPC[t.method].Retransmits++
	c.send(t.to, t.pkt)
	if c.cfg.Profile == ProfileAdaptive && !t.slow && t.purpose == purposeLookup {
		t.slow = true
		if l := c.lookups[t.lookup]; l != nil {
			l.markSlow(c, now, t.cand)
		}
	}
	c.armTxn(t)
}

func (c *Core) handleReply(now time.Time, from netip.AddrPort, m *wire.Msg) {
	slot, ok := c.txns.byTID[m.TID]
	if !ok {
		if len(c.reach.pending) > 0 && c.reachProbeIn(now, from, m) {
			return
		}
		c.st.Dropped[DropUnknownTID]++
		return
	}
	t := &c.txns.slots[slot]
	if t.to != from {
		c.st.Dropped[DropWrongSource]++
		return
	}
	if m.Y == 'e' {
		c.st.RPC[t.method].ErrorsReceived++
		if t.purpose == purposeReach {
			// An original peer's 203, a BitTorrent node's 204, or a rate
			// limit: no evidence either way.
			c.reachNoEvidence(now, t.cand, max(m.ErrCode, 1))
		}
		c.failTxn(now, slot, errRemote)
		return
	}
	if m.Has&wire.FieldID == 0 {
		c.failTxn(now, slot, ErrTimeout)
		return
	}
	if !t.expect.IsZero() && m.ID != t.expect {
		c.table.Remove(t.expect)
		c.failTxn(now, slot, ErrIDChanged)
		return
	}
	rs := &c.st.RPC[t.method]
	rs.OK++
	rs.OKDelay += now.Sub(t.first)
	if t.sends == 1 {
		c.rtt.sample(t.to, now.Sub(t.first))
	}
	// Copy what the handlers need, then free the slot before dispatching so
	// handlers can start new transactions.
	p, verify, lk, cand, expect := t.purpose, t.verify, t.lookup, t.cand, t.expect
	c.txns.release(slot)

	c.noteNode(now, m.ID, from, true)
	switch p {
	case purposePing:
		delete(c.pinging, expect)
		if verify {
			c.verifying--
			if c.cfg.NATProbation {
				c.probation[expect] = struct{}{}
			}
			c.schedulePing(now, expect, from)
		} else {
			delete(c.probation, expect)
		}
	case purposeReplace:
		delete(c.pinging, expect)
	case purposePingSaved:
		c.joinStepDone(now)
	case purposeJoin:
		c.joinReply(now, m)
	case purposeLookup:
		// It answered a request it had no reason to expect: reachable.
		delete(c.probation, expect)
		if l := c.lookups[lk]; l != nil {
			l.onReply(c, now, cand, m)
		}
	case purposeReach:
		c.reachReplied(now, from, cand, c.pkt)
	}
}

// errRemote marks a failure caused by a KRPC error reply.
var errRemote = errors.New("engine: remote error")

// failTxn ends a transaction with an error and tells its owner.
func (c *Core) failTxn(now time.Time, slot uint32, err error) {
	t := &c.txns.slots[slot]
	rs := &c.st.RPC[t.method]
	rs.Failed++
	rs.FailedDelay += now.Sub(t.first)
	p, lk, cand := t.purpose, t.lookup, t.cand
	repl, replCont, expect, to := t.repl, t.replCont, t.expect, t.to
	if t.verify {
		c.verifying--
	}
	c.txns.release(slot)
	if err == ErrIDChanged {
		// The node at this address is not the one we knew: nothing more to count.
		delete(c.pinging, expect)
	} else {
		if err == ErrTimeout {
			c.markDead(now, to)
		}
		switch p {
		case purposePing:
			delete(c.pinging, expect)
			c.nodeFailed(now, expect, to)
		case purposeReplace:
			delete(c.pinging, expect)
			c.table.Remove(expect)
			c.noteNode(now, repl.ID, repl.Addr, replCont)
		case purposeLookup:
			c.nodeFailed(now, expect, to)
		}
	}
	switch p {
	case purposePingSaved:
		c.joinStepDone(now)
	case purposeJoin:
		c.joinStepDone(now)
	case purposeLookup:
		if l := c.lookups[lk]; l != nil {
			l.onFail(c, now, cand)
		}
	case purposeReach:
		c.reachNoEvidence(now, cand, 0)
	}
}
