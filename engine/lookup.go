package engine

import (
	"net/netip"
	"time"

	"github.com/apt-p2p/apt-p2p/wire"
)

type lookupKind uint8

const (
	lookupFindNode lookupKind = iota
	lookupFindValue
	lookupGetValue
	lookupStoreValue
)

type candState uint8

const (
	candNew candState = iota
	candQueried
	candAnswered
	candFailed
)

// maxCands bounds a lookup's candidate list: replies can only add K nodes
// each, but a long lookup through hostile nodes must not grow without end.
const maxCands = 256

// cand is one node a lookup knows about.
type cand struct {
	id       wire.ID
	addr     netip.AddrPort
	state    candState
	slow     bool // its request passed the first RTO: it no longer holds a concurrency slot
	self     bool // our own node, answered locally
	hasToken bool
	token    wire.ID
	num      int   // find_value: values the node holds
	hop      uint8 // 0 for us, 1 for our table's nodes, parent+1 for learned nodes
}

func (cd *cand) excluded() bool {
	return cd.state == candFailed || (cd.state == candQueried && cd.slow)
}

// lookup is the state machine of one iterative operation (§2.11).
type lookup struct {
	id       uint32
	kind     lookupKind
	target   wire.ID
	cands    []cand // find_node/find_value: sorted by distance to target; get/store: fixed order
	start    time.Time
	value    []byte // store_value
	results  int    // get: distinct new values; store: successful stores
	answered int
	sent     int
	done     bool
	onDone   func(c *Core, now time.Time, l *lookup, err error)
	get      *getOp
	pipe     *lookup // find_value of a pipelined get: its get_value lookup
	more     bool    // get_value of a pipelined get: candidates may still come
}

func (c *Core) newLookup(now time.Time, kind lookupKind, target wire.ID) *lookup {
	c.nextLookup++
	l := &lookup{id: c.nextLookup, kind: kind, target: target, start: now}
	c.lookups[l.id] = l
	c.st.Lookups++
	return l
}

// seed fills the start set of a recursive search: our own node (answered
// locally, §2.11) and the K closest nodes of our table.
func (l *lookup) seed(c *Core, now time.Time) {
	c.table.Touch(l.target, now)
	self := cand{id: c.id, self: true, state: candAnswered, hasToken: true}
	if l.kind == lookupFindValue {
		self.num = c.store.count(l.target)
	}
	l.cands = append(l.cands, self) // the first: the list is sorted from here on
	l.answered++
	c.knodes = c.table.Closest(c.knodes[:0], l.target, c.cfg.K)
	for _, n := range c.knodes {
		if !c.isDead(now, n.Addr) {
			l.add(n.ID, n.Addr, 1)
		}
	}
}

// add inserts a node in distance order unless it is known already.
func (l *lookup) add(id wire.ID, addr netip.AddrPort, hop uint8) {
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
	l.cands = append(l.cands, cand{})
	copy(l.cands[i+1:], l.cands[i:])
	l.cands[i] = cand{id: id, addr: addr, hop: hop}
}

func (l *lookup) find(id wire.ID) *cand {
	for i := range l.cands {
		if l.cands[i].id == id {
			return &l.cands[i]
		}
	}
	return nil
}

// schedule sends what may be sent and finishes the lookup when it is done.
func (l *lookup) schedule(c *Core, now time.Time) {
	if l.done {
		return
	}
	k, alpha := c.cfg.K, c.cfg.ConcurrentReqs
	switch l.kind {
	case lookupFindNode, lookupFindValue:
		// The K closest nodes that have not failed.
		// A request past its first RTO (adaptive profile) is treated as
		// failed here: a silent node costs one RTO, and if it answers
		// later its reply still counts.
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
		// Abort early: the K closest have answered, whatever is still
		// outstanding farther away.
		if answered >= k {
			l.finish(c, now, nil)
			return
		}
		// Leap-frog: requests to nodes pushed out of the K closest were not
		// counted above, so their slots go to closer nodes.
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
		if pending == 0 {
			l.finish(c, now, nil)
		}
	case lookupGetValue:
		r := c.cfg.RetrieveValues
		if (r > 0 && l.results >= r) || (r < 0 && (l.results >= -r || l.answered >= c.cfg.StoreRedundancy)) {
			l.finish(c, now, nil)
			return
		}
		inflight, pending, expected := 0, 0, 0
		for i := range l.cands {
			if cd := &l.cands[i]; cd.state == candQueried {
				pending++
				expected += cd.num
				if !cd.slow {
					inflight++
				}
			}
		}
		for i := range l.cands {
			if inflight >= alpha || (r > 0 && l.results+expected >= r) {
				break
			}
			if r < 0 && l.answered+pending >= c.cfg.StoreRedundancy {
				break
			}
			if cd := &l.cands[i]; cd.state == candNew {
				l.query(c, now, cd)
				inflight++
				pending++
				expected += cd.num
			}
		}
		// As in find_value, a request past its first RTO does not hold the
		// get open (adaptive profile; classic never marks requests slow).
		if inflight == 0 && !l.more {
			l.finish(c, now, nil)
		}
	case lookupStoreValue:
		want := c.cfg.StoreRedundancy
		if l.results >= want {
			l.finish(c, now, nil)
			return
		}
		inflight, pending := 0, 0
		for i := range l.cands {
			if cd := &l.cands[i]; cd.state == candQueried {
				pending++
				if !cd.slow {
					inflight++
				}
			}
		}
		for i := range l.cands {
			if inflight >= alpha || l.results+pending >= want {
				break
			}
			if cd := &l.cands[i]; cd.state == candNew {
				l.query(c, now, cd)
				inflight++
				pending++
			}
		}
		if pending == 0 {
			l.finish(c, now, nil)
		}
	}
}

// query sends the lookup's RPC to one candidate.
func (l *lookup) query(c *Core, now time.Time, cd *cand) {
	var m wire.Method
	switch l.kind {
	case lookupFindNode:
		m = wire.MethodFindNode
	case lookupFindValue:
		m = wire.MethodFindValue
	case lookupGetValue:
		m = wire.MethodGetValue
	default:
		m = wire.MethodStoreValue
	}
	t := c.newTxn(cd.addr, cd.id, m, purposeLookup)
	t.lookup = l.id
	t.cand = cd.id
	switch l.kind {
	case lookupFindNode:
		t.pkt = wire.AppendFindNodeWant(t.pkt[:0], t.tid, c.id, l.target, c.queryWant())
	case lookupFindValue:
		t.pkt = wire.AppendFindValueWant(t.pkt[:0], t.tid, c.id, l.target, c.queryWant())
	case lookupGetValue:
		// Ask for what is still wanted; 0 (all) when the node holds no more.
		n := 0
		if r := c.cfg.RetrieveValues; r != 0 {
			n = max(r, -r) - l.results
			if n > cd.num || n < 0 {
				n = 0
			}
		}
		t.pkt = wire.AppendGetValue(t.pkt[:0], t.tid, c.id, l.target, n)
	default:
		t.pkt = wire.AppendStoreValue(t.pkt[:0], t.tid, c.id, l.target, l.value, cd.token)
	}
	cd.state = candQueried
	l.sent++
	c.startTxn(now, t)
}

func (l *lookup) onReply(c *Core, now time.Time, id wire.ID, m *wire.Msg) {
	if l.done {
		return
	}
	cd := l.find(id)
	if cd == nil || cd.state != candQueried {
		return
	}
	cd.state = candAnswered
	l.answered++
	hop := cd.hop + 1
	switch l.kind {
	case lookupFindNode:
		if m.Has&wire.FieldToken != 0 {
			cd.token = m.Token
			cd.hasToken = true
		}
		l.addNodes(c, now, m, hop)
	case lookupFindValue:
		if m.Has&wire.FieldNum != 0 && m.Num > 0 {
			cd.num = int(min(m.Num, 1<<20))
			if gl := l.pipe; gl != nil && !gl.done {
				nc := *cd
				nc.state = candNew
				nc.slow = false
				gl.cands = append(gl.cands, nc)
				gl.schedule(c, now)
				if l.done {
					return
				}
			}
		}
		l.addNodes(c, now, m, hop)
	case lookupGetValue:
		if l.get != nil {
			// All walks the list once; At(i) rescans from the start each time.
			for v := range m.Values.All {
				if l.get.deliver(c, now, v) {
					l.results++
				}
			}
		}
	case lookupStoreValue:
		l.results++
	}
	l.schedule(c, now)
}

// addNodes adds the nodes of a reply of our family (replyNodes, family.go).
// cd may move: it is not used after.
func (l *lookup) addNodes(c *Core, now time.Time, m *wire.Msg, hop uint8) {
	l.replyNodes(c, now, m, hop)
}

func (l *lookup) onFail(c *Core, now time.Time, id wire.ID) {
	if l.done {
		return
	}
	cd := l.find(id)
	if cd == nil || cd.state != candQueried {
		return
	}
	cd.state = candFailed
	l.schedule(c, now)
}

// markSlow frees the concurrency slot of a request that passed its first
// RTO (adaptive profile): a NATed or dead node then costs one RTO, not two.
func (l *lookup) markSlow(c *Core, now time.Time, id wire.ID) {
	if l.done {
		return
	}
	if cd := l.find(id); cd != nil && cd.state == candQueried {
		cd.slow = true
		l.schedule(c, now)
	}
}

func (l *lookup) finish(c *Core, now time.Time, err error) {
	if l.done {
		return
	}
	l.done = true
	delete(c.lookups, l.id)
	if l.onDone != nil {
		l.onDone(c, now, l, err)
	}
}

func (l *lookup) finishErr(c *Core, err error) {
	if l.done {
		return
	}
	l.done = true
	if l.onDone != nil {
		l.onDone(c, time.Time{}, l, err)
	}
}

// closest appends the K closest answered candidates (ourselves included
// when includeSelf).
func (l *lookup) closest(dst []cand, k int, includeSelf bool) []cand {
	for i := range l.cands {
		cd := &l.cands[i]
		if cd.state == candFailed {
			continue
		}
		if len(dst) == k {
			break
		}
		if cd.state != candAnswered || (cd.self && !includeSelf) {
			continue
		}
		dst = append(dst, *cd)
	}
	return dst
}

// maxHop is the largest hop count among answered candidates.
func (l *lookup) maxHop() int {
	h := 0
	for i := range l.cands {
		if l.cands[i].state == candAnswered && int(l.cands[i].hop) > h {
			h = int(l.cands[i].hop)
		}
	}
	return h
}
