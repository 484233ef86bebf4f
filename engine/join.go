package engine

import (
	"net/netip"
	"time"

	"github.com/apt-p2p/apt-p2p/kbucket"
	"github.com/apt-p2p/apt-p2p/wire"
)

// joinState tracks joining (§2.14): join to every bootstrap address, pings to
// the saved routing table, then a find_node for our own neighbourhood.
type joinState struct {
	bootstrap    []netip.AddrPort
	backoff      time.Duration
	pending      int
	closeStarted bool
	inProgress   bool
	savedPinged  bool
	joined       bool
	attempts     int
	waiters      []func(error)
	reported     map[netip.Addr]int
	reportedPort map[uint16]int
	iface        []netip.Addr
}

func (j *joinState) fail(err error) {
	ws := j.waiters
	j.waiters = nil
	for _, w := range ws {
		w(err)
	}
}

// OnJoined calls fn once the node has joined (at once if it has), or with
// ErrClosed if the core closes first.
func (c *Core) OnJoined(fn func(error)) {
	switch {
	case c.closed:
		fn(ErrClosed)
	case c.join.joined:
		fn(nil)
	default:
		c.join.waiters = append(c.join.waiters, fn)
	}
}

// Joined reports whether the node has joined a network.
func (c *Core) Joined() bool { return c.join.joined }

// Rejoin starts a join attempt now unless one is running (for example after
// SetBootstrap gave new addresses).
func (c *Core) Rejoin(now time.Time) { c.joinAttempt(now) }

// SetBootstrap replaces the bootstrap addresses used by later join attempts.
func (c *Core) SetBootstrap(addrs []netip.AddrPort) {
	c.join.bootstrap = append(c.join.bootstrap[:0], addrs...)
}

func (c *Core) joinAttempt(now time.Time) {
	j := &c.join
	if j.inProgress || c.closed {
		return
	}
	j.inProgress = true
	j.attempts++
	j.pending = 0
	j.closeStarted = false
	c.joinThroughSibling(now)
	if !j.savedPinged {
		// §8.2 #3: the saved table is used. Its nodes are pinged and enter
		// the table only when they answer.
		j.savedPinged = true
		for _, n := range c.saved {
			if n.ID == c.id || !c.inFamily(n.Addr.Addr()) || !kbucket.AddrAllowed(n.Addr.Addr(), c.cfg.LocalOK) {
				continue
			}
			c.ping(now, n.ID, n.Addr, purposePingSaved, false)
			j.pending++
		}
		c.saved = nil
	}
	for _, a := range j.bootstrap {
		if !c.inFamily(a.Addr()) {
			continue // the other family's core joins through it
		}
		a = netip.AddrPortFrom(a.Addr().Unmap(), a.Port())
		t := c.newTxn(a, wire.ID{}, wire.MethodJoin, purposeJoin)
		t.pkt = wire.AppendJoin(t.pkt[:0], t.tid, c.id)
		c.startTxn(now, t)
		j.pending++
	}
	if j.pending == 0 {
		c.startFindClose(now)
	}
}

// joinReply records the address a bootstrap node saw us at and looks for
// our neighbours.
func (c *Core) joinReply(now time.Time, m *wire.Msg) {
	if m.Has&wire.FieldIPAddr != 0 {
		if ip, err := netip.ParseAddr(string(m.IPAddr)); err == nil && c.inFamily(ip) && kbucket.AddrAllowed(ip, c.cfg.LocalOK) {
			if c.join.reported == nil {
				c.join.reported = make(map[netip.Addr]int)
				c.join.reportedPort = make(map[uint16]int)
			}
			c.join.reported[ip.Unmap()]++
			if m.Has&wire.FieldPort != 0 && m.Port > 0 && m.Port < 65536 {
				c.join.reportedPort[uint16(m.Port)]++
			}
		}
	}
	c.startFindClose(now)
	c.joinStepDone(now)
}

// startFindClose is findCloseNodes: a find_node for our ID with the last
// byte incremented (§2.13).
func (c *Core) startFindClose(now time.Time) {
	c.join.closeStarted = true
	c.join.pending++
	target := c.id
	target[wire.IDLen-1]++
	c.findNode(now, target, func(now time.Time, l *lookup, err error) {
		c.joinStepDone(now)
	})
}

func (c *Core) joinStepDone(now time.Time) {
	j := &c.join
	if !j.inProgress {
		return
	}
	j.pending--
	if j.pending > 0 {
		return
	}
	if !j.closeStarted {
		c.startFindClose(now)
		return
	}
	j.inProgress = false
	if c.table.Len() > 0 || c.cfg.BootstrapNode {
		j.backoff = c.cfg.RejoinInitial
		// Fill the far buckets too: findCloseNodes only taught us our own
		// neighbourhood (the original's refreshTable(force=True), §2.13).
		c.refreshBuckets(now, -1)
		if !j.joined {
			j.joined = true
			ws := j.waiters
			j.waiters = nil
			for _, w := range ws {
				w(nil)
			}
		}
		return
	}
	c.st.JoinFailures++
	c.addTimer(timer{at: now.Add(j.backoff), kind: timerRejoin})
	j.backoff = min(2*j.backoff, c.cfg.RejoinMax)
}

// SetInterfaceAddrs gives the machine's interface addresses (the runner reads
// them with net.Interfaces) for external-address discovery.
func (c *Core) SetInterfaceAddrs(addrs []netip.Addr) {
	c.join.iface = append(c.join.iface[:0], addrs...)
}

// ExternalAddr is our best guess of our public IP (§2.14): the single most
// frequent address reported by join replies wins; otherwise the only usable
// interface address. Private addresses count only with LocalOK.
func (c *Core) ExternalAddr() (netip.Addr, bool) {
	var best netip.Addr
	bestN, tie := 0, false
	for ip, n := range c.join.reported {
		switch {
		case n > bestN:
			best, bestN, tie = ip, n, false
		case n == bestN:
			tie = true
		}
	}
	if bestN > 0 && !tie {
		return best, true
	}
	var cand netip.Addr
	count := 0
	for _, a := range c.join.iface {
		// Loopback and link-local addresses are on every machine and reach
		// no peer: counting them (127.0.0.1 passes AddrAllowed with LocalOK)
		// left a LAN daemon with one real address not knowing it.
		if a.IsLoopback() || a.IsLinkLocalUnicast() {
			continue
		}
		if kbucket.AddrAllowed(a, c.cfg.LocalOK) {
			cand = a
			count++
		}
	}
	if count == 1 {
		return cand, true
	}
	if bestN > 0 {
		// A tie among join reports and no single interface address: any of
		// the most reported ones is better than nothing.
		return best, true
	}
	return netip.Addr{}, false
}
