package engine

import (
	"bytes"
	"errors"
	"net/netip"
	"slices"
	"time"

	"github.com/apt-p2p/apt-p2p/wire"
)

// Result is the completion of a caller operation.
type Result struct {
	Err        error
	Values     int           // Get: distinct values delivered
	Stored     int           // Put: nodes that stored the value (ourselves included)
	Nodes      []wire.Node   // FindNode: the closest nodes that answered
	Elapsed    time.Duration // from the call to completion
	FirstValue time.Duration // Get: from the call to the first value; 0 if none
	Hops       int           // longest chain of referrals followed
	Messages   int           // requests sent (first transmissions), every phase
}

// Op names a running caller operation (Get, Put, FindNode, Claim) so that
// its caller can cancel it. The zero Op names nothing.
type Op uint64

// ErrCanceled is the result of an operation its caller cancelled.
var ErrCanceled = errors.New("engine: operation cancelled")

// opRun is what Cancel needs to stop an operation.
type opRun struct {
	get    *getOp    // Get: the shared get the waiter belongs to
	lks    []*lookup // Put, FindNode, Claim: the lookups started for it
	onDone func(Result)
}

// newOp registers an operation; done is its caller's completion.
func (c *Core) newOp(done func(Result)) (Op, *opRun) {
	c.nextOp++
	r := &opRun{onDone: done}
	c.ops[Op(c.nextOp)] = r
	return Op(c.nextOp), r
}

// Cancel ends an operation its caller no longer wants: its onDone runs at
// once with ErrCanceled, and the lookups it alone was waiting for stop
// there, their outstanding requests released (no retransmission, no slot
// held; a late reply is dropped as unknown). A Get shared with other
// callers of the same key goes on for them. Cancelling an operation that
// has completed, or the zero Op, does nothing.
func (c *Core) Cancel(now time.Time, op Op) {
	r := c.ops[op]
	if r == nil {
		return
	}
	delete(c.ops, op)
	c.st.Cancelled++
	if g := r.get; g != nil {
		g.waiters = slices.DeleteFunc(g.waiters, func(w getWaiter) bool { return w.op == op })
		if len(g.waiters) == 0 {
			if c.gets[g.key] == g {
				delete(c.gets, g.key)
			}
			for _, l := range g.lks {
				c.stopLookup(l)
			}
		}
	}
	for _, l := range r.lks {
		c.stopLookup(l)
	}
	r.onDone(Result{Err: ErrCanceled})
}

// stopLookup ends a lookup without completing it and releases its
// outstanding transactions.
func (c *Core) stopLookup(l *lookup) {
	if l.done {
		return
	}
	l.done = true
	delete(c.lookups, l.id)
	for i := range c.txns.slots {
		t := &c.txns.slots[i]
		if t.inUse && t.purpose == purposeLookup && t.lookup == l.id {
			c.txns.release(uint32(i))
		}
	}
}

// finishOp forgets a completed operation.
func (c *Core) finishOp(op Op) { delete(c.ops, op) }

// getOp is one running get; concurrent gets of one key share it (§2.15).
type getOp struct {
	key     wire.ID
	start   time.Time
	first   time.Duration
	seen    [][]byte
	waiters []getWaiter
	lks     []*lookup // its find_value and get_value lookups
	hops    int
	msgs    int
}

type getWaiter struct {
	op      Op
	onValue func([]byte)
	onDone  func(Result)
}

// Get looks up the values stored under key (normalise it with wire.NormKey
// first). onValue is called once per distinct value as it arrives, with a
// slice the caller may keep but must not modify; onDone is called once at
// the end. Concurrent gets of one key are merged into one lookup, and a
// late caller first receives the values already found. Both callbacks run
// on the core's goroutine and must not block. The Op cancels this caller's
// wait (Cancel); the lookup stops when no caller is left.
func (c *Core) Get(now time.Time, key wire.ID, onValue func([]byte), onDone func(Result)) Op {
	if err := c.ready(); err != nil {
		onDone(Result{Err: err})
		return 0
	}
	c.st.Gets++
	op, run := c.newOp(onDone)
	w := getWaiter{op: op, onValue: onValue, onDone: onDone}
	if g := c.gets[key]; g != nil {
		run.get = g
		g.waiters = append(g.waiters, w)
		for _, v := range g.seen {
			onValue(v)
		}
		return op
	}
	g := &getOp{key: key, start: now, waiters: []getWaiter{w}}
	run.get = g
	c.gets[key] = g
	l := c.newLookup(now, lookupFindValue, key)
	l.seed(c, now)
	l.get = g
	g.lks = append(g.lks, l)
	if !c.cfg.PipelineGets {
		l.onDone = c.foundValueNodes
		l.schedule(c, now)
		return op
	}
	gl := c.newLookup(now, lookupGetValue, key)
	gl.get = g
	g.lks = append(g.lks, gl)
	gl.more = true
	l.pipe = gl
	c.localValues(now, gl, c.store.count(key))
	gl.onDone = func(c *Core, now time.Time, gl *lookup, err error) {
		g.msgs += gl.sent
		if !l.done {
			// Enough nodes answered: the find_value has served its purpose.
			g.hops = l.maxHop()
			g.msgs += l.sent
			l.done = true
			delete(c.lookups, l.id)
		}
		c.completeGet(now, g, err)
	}
	l.onDone = func(c *Core, now time.Time, l *lookup, err error) {
		g.hops = l.maxHop()
		g.msgs += l.sent
		if err != nil {
			gl.finish(c, now, err)
			return
		}
		gl.more = false
		gl.schedule(c, now)
	}
	gl.schedule(c, now)
	if !gl.done {
		l.schedule(c, now)
	}
	return op
}

// localValues delivers our own values for a get as the local get_value
// handler would answer (num semantics); we count as one answering node.
func (c *Core) localValues(now time.Time, l *lookup, num int) {
	if num == 0 {
		return
	}
	n := 0
	if r := c.cfg.RetrieveValues; r != 0 {
		n = max(r, -r) - l.results
		if n > num || n < 0 {
			n = 0
		}
	}
	// A copy: deliver runs callers' callbacks, which may use the core.
	vals := append([][]byte(nil), c.pickValues(l.target, int64(n))...)
	clear(c.vals)
	for _, v := range vals {
		if l.get.deliver(c, now, v) {
			l.results++
		}
	}
	l.answered++
}

func (c *Core) ready() error {
	if c.closed {
		return ErrClosed
	}
	if !c.join.joined {
		return ErrNotJoined
	}
	return nil
}

// foundValueNodes starts the second phase of a get: get_value on the nodes
// that said they hold values, nearest first.
func (c *Core) foundValueNodes(_ *Core, now time.Time, fl *lookup, err error) {
	g := fl.get
	g.hops = fl.maxHop()
	g.msgs += fl.sent
	if err != nil {
		c.completeGet(now, g, err)
		return
	}
	l := c.newLookup(now, lookupGetValue, g.key)
	l.get = g
	g.lks = append(g.lks, l)
	l.onDone = c.gotValues
	for i := range fl.cands {
		cd := fl.cands[i]
		if cd.state != candAnswered || cd.num == 0 {
			continue
		}
		if cd.self {
			c.localValues(now, l, cd.num)
			continue
		}
		cd.state = candNew
		cd.slow = false
		l.cands = append(l.cands, cd)
	}
	l.schedule(c, now)
}

func (c *Core) gotValues(_ *Core, now time.Time, l *lookup, err error) {
	g := l.get
	g.msgs += l.sent
	c.completeGet(now, g, err)
}

// deliver hands a value to the waiters if it is new; it reports whether it was.
func (g *getOp) deliver(c *Core, now time.Time, v []byte) bool {
	for _, s := range g.seen {
		if bytes.Equal(s, v) {
			return false
		}
	}
	if len(g.seen) == 0 {
		g.first = now.Sub(g.start)
	}
	v = bytes.Clone(v)
	g.seen = append(g.seen, v)
	for _, w := range g.waiters {
		w.onValue(v)
	}
	return true
}

func (c *Core) completeGet(now time.Time, g *getOp, err error) {
	if c.gets[g.key] == g {
		delete(c.gets, g.key)
	}
	if err == nil {
		c.st.GetsDone++
		c.st.GetLatency.Add(now.Sub(g.start))
		if len(g.seen) > 0 {
			c.st.GetsFound++
		}
	}
	g.complete(c, err, now.Sub(g.start))
}

func (g *getOp) complete(c *Core, err error, elapsed time.Duration) {
	r := Result{Err: err, Values: len(g.seen), Elapsed: elapsed, FirstValue: g.first, Hops: g.hops + 1, Messages: g.msgs}
	ws := g.waiters
	g.waiters = nil
	for _, w := range ws {
		c.finishOp(w.op)
		w.onDone(r)
	}
}

// Put stores value under key on the StoreRedundancy closest nodes that gave
// us a token (find_node, then store_value, §2.11). onDone gets the number of
// nodes that stored it; Err is ErrNotStored when none did. The Op cancels
// it (Cancel).
func (c *Core) Put(now time.Time, key wire.ID, value []byte, onDone func(Result)) Op {
	if err := c.ready(); err != nil {
		onDone(Result{Err: err})
		return 0
	}
	if err := c.checkValueFamily(value); err != nil {
		onDone(Result{Err: err})
		return 0
	}
	op, run := c.newOp(onDone)
	value = bytes.Clone(value)
	c.put(now, run, key, func(time.Time) []byte { return value }, func(_ time.Time, r Result, _ []cand) {
		c.finishOp(op)
		onDone(r)
	})
	return op
}

// put is Put with the value made when the store starts (build), and with the
// completion time and the candidates the store went to (those with a token
// among the K closest, ourselves included). Its lookups are added to run so
// that Cancel stops them.
func (c *Core) put(now time.Time, run *opRun, key wire.ID, build func(now time.Time) []byte, onDone func(now time.Time, r Result, to []cand)) {
	c.st.Puts++
	start := now
	fl := c.newLookup(now, lookupFindNode, key)
	run.lks = append(run.lks, fl)
	fl.seed(c, now)
	fl.onDone = func(c *Core, now time.Time, fl *lookup, err error) {
		if err != nil {
			onDone(now, Result{Err: err, Elapsed: now.Sub(start), Messages: fl.sent}, nil)
			return
		}
		value := build(now)
		if err := c.checkValueFamily(value); err != nil {
			onDone(now, Result{Err: err, Elapsed: now.Sub(start), Messages: fl.sent}, nil)
			return
		}
		l := c.newLookup(now, lookupStoreValue, key)
		run.lks = append(run.lks, l)
		l.value = value
		var to []cand
		for _, cd := range fl.closest(nil, c.cfg.K, true) {
			if !cd.hasToken {
				continue
			}
			to = append(to, cd)
			if cd.self {
				if c.storeLocal(now, key, value, netip.AddrPort{}) == nil {
					l.results++
				}
				continue
			}
			cd.state = candNew
			cd.slow = false
			l.cands = append(l.cands, cd)
		}
		hops, msgs := fl.maxHop(), fl.sent
		l.onDone = func(c *Core, now time.Time, l *lookup, err error) {
			r := Result{Err: err, Stored: l.results, Elapsed: now.Sub(start), Hops: hops, Messages: msgs + l.sent}
			if err == nil && l.results == 0 {
				r.Err = ErrNotStored
			}
			if r.Err == nil {
				c.st.PutsOK++
			}
			onDone(now, r, to)
		}
		l.schedule(c, now)
	}
	fl.schedule(c, now)
}

// Claim stores a value under key like Put, then asks the nodes the store went
// to for every value they hold under key (get_value with num 0). onDone gets
// the Put's counts and the values found, ours included: the caller learns
// which claims were stored by the time its own had settled. Daemons that start
// the same download at the same moment use it to elect the one that fetches
// from the mirror (internal/download): of any two claimants storing on a
// common node, at least one sees the other's claim there.
//
// The value is made by build when the store starts, after the find_node, so
// that a time it carries is close to when it lands. The check waits settle
// after the stores have been answered: a claim that was sent before ours but
// arrived a little later (a slower path) is then seen as well. A claim stored
// only here (no other node) checks at once. The check costs settle plus one
// round trip, and original nodes answer it as any get_value.
//
// The Op cancels it (Cancel): onDone then gets ErrCanceled and no values.
func (c *Core) Claim(now time.Time, key wire.ID, build func(now time.Time) []byte, settle time.Duration, onDone func(Result, [][]byte)) Op {
	if err := c.ready(); err != nil {
		onDone(Result{Err: err}, nil)
		return 0
	}
	start := now
	op, run := c.newOp(func(r Result) { onDone(r, nil) })
	c.put(now, run, key, build, func(now time.Time, pr Result, to []cand) {
		if pr.Err != nil && pr.Err != ErrNotStored || c.closed || len(to) == 0 {
			c.finishOp(op)
			onDone(pr, nil)
			return
		}
		pc := &pendingClaim{op: op, run: run, key: key, start: start, pr: pr, to: to, onDone: onDone}
		if settle <= 0 || len(to) == 1 && to[0].self {
			c.checkClaim(now, pc)
			return
		}
		c.nextClaim++
		c.claims[c.nextClaim] = pc
		c.addTimer(timer{at: now.Add(settle), kind: timerClaim, slot: c.nextClaim})
	})
	return op
}

// pendingClaim is a Claim between its store and its check.
type pendingClaim struct {
	op     Op
	run    *opRun
	key    wire.ID
	start  time.Time
	pr     Result
	to     []cand
	onDone func(Result, [][]byte)
}

func (c *Core) claimTimer(now time.Time, slot uint32) {
	pc := c.claims[slot]
	delete(c.claims, slot)
	if pc == nil || c.ops[pc.op] == nil { // cancelled meanwhile
		return
	}
	c.checkClaim(now, pc)
}

// checkClaim reads back the values under the claimed key from the nodes the
// store went to. It runs on a get of its own, never merged with a concurrent
// Get of the key, since its values must be read after the store.
func (c *Core) checkClaim(now time.Time, pc *pendingClaim) {
	g := &getOp{key: pc.key, start: now}
	var vals [][]byte
	pr := pc.pr
	g.waiters = []getWaiter{{
		onValue: func(v []byte) { vals = append(vals, v) },
		op:      pc.op,
		onDone: func(r Result) {
			pr.Elapsed = now.Add(r.Elapsed).Sub(pc.start)
			pr.Messages += r.Messages
			pr.Values = len(vals)
			if r.Err != nil && pr.Err == nil {
				pr.Err = r.Err
			}
			pc.onDone(pr, vals)
		},
	}}
	l := c.newLookup(now, lookupGetValue, pc.key)
	l.get = g
	pc.run.lks = append(pc.run.lks, l)
	l.onDone = func(c *Core, now time.Time, l *lookup, err error) {
		g.msgs += l.sent
		g.complete(c, err, now.Sub(g.start))
	}
	for _, cd := range pc.to {
		if cd.self {
			c.localValues(now, l, c.store.count(pc.key))
			continue
		}
		cd.state = candNew
		cd.slow = false
		cd.num = 0
		l.cands = append(l.cands, cd)
	}
	l.schedule(c, now)
}

// FindNode runs an iterative find_node for target and returns the K closest
// nodes that answered (ourselves excluded). The Op cancels it (Cancel).
func (c *Core) FindNode(now time.Time, target wire.ID, onDone func(Result)) Op {
	if c.closed {
		onDone(Result{Err: ErrClosed})
		return 0
	}
	op, run := c.newOp(onDone)
	run.lks = append(run.lks, c.findNode(now, target, func(now time.Time, l *lookup, err error) {
		c.finishOp(op)
		r := Result{Err: err, Elapsed: now.Sub(l.start), Hops: l.maxHop(), Messages: l.sent}
		if err == nil {
			for _, cd := range l.closest(nil, c.cfg.K, false) {
				r.Nodes = append(r.Nodes, wire.Node{ID: cd.id, Addr: cd.addr})
			}
		}
		onDone(r)
	}))
	return op
}

// findNode starts a find_node lookup with an internal completion.
func (c *Core) findNode(now time.Time, target wire.ID, done func(now time.Time, l *lookup, err error)) *lookup {
	l := c.newLookup(now, lookupFindNode, target)
	l.seed(c, now)
	if done != nil {
		l.onDone = func(_ *Core, now time.Time, l *lookup, err error) { done(now, l, err) }
	}
	l.schedule(c, now)
	return l
}
