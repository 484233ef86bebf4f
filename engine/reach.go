package engine

import (
	"encoding/hex"
	"net/netip"
	"time"

	"github.com/apt-p2p/apt-p2p/kbucket"
	"github.com/apt-p2p/apt-p2p/wire"
)

// Reachability: can nodes that never heard from us reach us, over UDP (the
// DHT port) and over TCP (the HTTP peer port)? wire/doc.go ("Reachability")
// describes the reach query; this file is its state machine, the prober that
// asks others, and the server that answers them.
//
// Evidence comes from two sources:
//
//   - An unsolicited query: a query from an IP address we have sent nothing
//     to for ContactMemory, and that is not on one of our own networks (the
//     same /24 as an interface address, or loopback). Behind a NAT it could
//     only have come through a port forward or a NAT that filters nothing.
//     This is what libtorrent counts. It proves UDP reachability only.
//   - A reach probe: we ask up to Fanout nodes of the routing table (those
//     we have not talked to lately first) to send a datagram to our address
//     from another port than their DHT port, and, when we hold their token
//     for our IP, to open a TCP connection to our peer port and request
//     /~reach/<nonce>. A probe that arrives is a success; one that did not
//     arrive within Wait of the prober's answer is a failure. A prober that
//     answers with an error (203 from an original peer, 204 from a BitTorrent
//     node, 201 when it is rate limiting) or not at all gives no evidence.
//
// Each transport's state is unknown → reachable / unreachable with
// hysteresis: one success makes it reachable (a probe cannot come through a
// NAT that blocks it), FailThreshold consecutive failures, from at least two
// different IPs (one if the table has no more), make it unreachable. Rounds
// repeat every Retry while a state is unknown, every Interval once both are
// known, and at once when the external address changes.
//
// Unknown behaves as reachable: the original protocol's behaviour, and what a
// daemon among original peers (which cannot answer) keeps. Unreachable over
// UDP makes the node read-only (BEP 43): its queries carry ro = 1.

// ReachState is what is known of one transport's reachability.
type ReachState uint8

const (
	ReachUnknown     ReachState = iota // no evidence yet (behaves as reachable)
	ReachReachable                     // a probe or an unsolicited query arrived
	ReachUnreachable                   // FailThreshold probes in a row did not
)

var reachNames = [...]string{"unknown", "reachable", "unreachable"}

func (s ReachState) String() string {
	if int(s) < len(reachNames) {
		return reachNames[s]
	}
	return "unknown"
}

// MarshalText writes the state's name (JSON: "reachable").
func (s ReachState) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText reads what MarshalText writes.
func (s *ReachState) UnmarshalText(b []byte) error {
	for i, n := range reachNames {
		if string(b) == n {
			*s = ReachState(i)
			return nil
		}
	}
	*s = ReachUnknown
	return nil
}

// ReachConfig configures reachability checking and the answering of others'
// reach queries. Zero fields take the defaults given.
type ReachConfig struct {
	// Probe turns checking on: probe rounds, unsolicited-query evidence and
	// read-only mode while unreachable over UDP. Off, the states stay unknown.
	Probe bool
	// TCPPort is the port TCP probes connect to (the HTTP peer port); 0
	// probes UDP only.
	TCPPort uint16
	// Interval is the time between rounds once both states are known (15 min).
	Interval time.Duration
	// Retry is the time between rounds while a state is unknown (20 s; at
	// most Interval).
	Retry time.Duration
	// First is the delay of the first round after start, once joined (2 s).
	First time.Duration
	// Wait is how long after a prober's answer its probes may still arrive (10 s).
	Wait time.Duration
	// Fanout is the number of probers asked per round (3).
	Fanout int
	// FailThreshold is the number of failed probes in a row that make a
	// transport unreachable (3).
	FailThreshold int
	// ContactMemory is how long a query from an address we sent to is not
	// taken as unsolicited (10 min: above the UDP mapping lifetime of NATs,
	// 2 to 5 min, RFC 4787).
	ContactMemory time.Duration
	// Ready, if set, holds probe rounds back until it reports true (asked
	// when a round is due, then every second): the owner's port mapping
	// (internal/portmap) gets its answer from the router before peers are
	// asked. A probe that comes before the router's mapping is a miss, and
	// on a Linux router it leaves a connection-tracking entry that drops
	// the same prober's next probes too.
	Ready func() bool

	// NoServe answers others' reach queries with 203 (unknown method), as an
	// original peer does.
	NoServe bool
	// ServePerIP and ServeGlobal bound the probes sent for others: per
	// requester IP and in all, per ServeWindow (2, 6 and 1 min). A probe
	// goes only to the requester's own source address (UDP) and to the port
	// it names on that IP (TCP, only with a valid token for that IP).
	ServePerIP, ServeGlobal int
	ServeWindow             time.Duration

	// OnChange, if set, is called on the core's goroutine whenever a state or
	// the read-only mode changes, and once at Start.
	OnChange func(ReachStats)
}

func (r *ReachConfig) fill() {
	dur := func(p *time.Duration, v time.Duration) {
		if *p <= 0 {
			*p = v
		}
	}
	num := func(p *int, v int) {
		if *p <= 0 {
			*p = v
		}
	}
	dur(&r.Interval, 15*time.Minute)
	dur(&r.Retry, 20*time.Second)
	r.Retry = min(r.Retry, r.Interval)
	dur(&r.First, 2*time.Second)
	dur(&r.Wait, 10*time.Second)
	dur(&r.ContactMemory, 10*time.Minute)
	dur(&r.ServeWindow, time.Minute)
	num(&r.Fanout, 3)
	num(&r.FailThreshold, 3)
	num(&r.ServePerIP, 2)
	num(&r.ServeGlobal, 6)
}

// ReachStats is the reachability part of Stats.
type ReachStats struct {
	UDP, TCP           ReachState
	UDPSince, TCPSince time.Time // when the state was last set
	UDPWhy, TCPWhy     string    // the evidence that set it
	ReadOnly           bool      // our queries carry ro = 1 (BEP 43)
	SeenAs             netip.AddrPort

	Rounds      uint64 // probe rounds started
	Asked       uint64 // reach queries sent
	Answered    uint64 // … answered with a reach reply
	NoEvidence  uint64 // … answered with an error (unknown method, rate limited) or not at all
	UDPArrived  uint64 // UDP probes that arrived
	UDPMissed   uint64 // UDP probes that did not arrive within Wait
	TCPArrived  uint64 // TCP probes that arrived
	TCPMissed   uint64 // TCP probes that did not arrive within Wait
	Unsolicited uint64 // queries from addresses we never contacted (off our networks)

	Served       uint64 // reach queries of others answered with probes
	ServedTCP    uint64 // … with a TCP probe too
	Refused      uint64 // … refused by the rate limits
	ReadOnlySeen uint64 // queries from read-only nodes: answered, kept out of the table
}

// Announceable reports whether peers can be expected to download from us:
// TCP reachable, or unknown while UDP is not known to be blocked.
func (s ReachStats) Announceable() bool {
	return s.TCP == ReachReachable || s.TCP == ReachUnknown && s.UDP != ReachUnreachable
}

// reachTrack is the state of one transport.
type reachTrack struct {
	state   ReachState
	since   time.Time
	why     string
	fails   int
	failIPs [4]netip.Addr // distinct IPs among the consecutive failures
	nIPs    int
}

// success records a probe that arrived (or an unsolicited query); it
// reports whether the state changed.
func (t *reachTrack) success(now time.Time, why string) bool {
	t.fails, t.nIPs = 0, 0
	if t.state == ReachReachable {
		return false
	}
	t.state, t.since, t.why = ReachReachable, now, why
	return true
}

// failure records a probe that did not arrive; needIPs is how many distinct
// prober IPs the failures must come from.
func (t *reachTrack) failure(now time.Time, ip netip.Addr, threshold, needIPs int, why string) bool {
	t.fails++
	known := false
	for _, a := range t.failIPs[:t.nIPs] {
		known = known || a == ip
	}
	if !known && t.nIPs < len(t.failIPs) {
		t.failIPs[t.nIPs] = ip
		t.nIPs++
	}
	if t.state == ReachUnreachable || t.fails < threshold || t.nIPs < needIPs {
		return false
	}
	t.state, t.since, t.why = ReachUnreachable, now, why
	return true
}

// reachProbe is one reach query we sent, by nonce.
type reachProbe struct {
	to         netip.AddrPort
	answered   bool
	tcpStarted bool // the reply says a TCP probe was started
	udpIn      bool
	tcpIn      bool
}

type reachToken struct {
	tok wire.ID
	at  time.Time
}

// reachWindow counts probes served in the current window.
type reachWindow struct {
	start time.Time
	n     int
}

func (w *reachWindow) take(now time.Time, window time.Duration, limit int) bool {
	if now.Sub(w.start) >= window {
		w.start, w.n = now, 0
	}
	if w.n >= limit {
		return false
	}
	w.n++
	return true
}

// Bounds of the reachability bookkeeping.
const (
	maxContacted    = 8192 // IPs remembered as sent to
	maxReachPending = 32   // our reach queries awaiting evaluation
	maxReachTokens  = 256  // probers' tokens for our IP
	maxUnsupported  = 1024 // probers that answered with an error
	maxServed       = 1024 // requester IPs in the serving window
	reachTokenLife  = 5 * time.Minute
	unsupportedFor  = time.Hour
)

// reachCore is the Core's reachability state.
type reachCore struct {
	udp, tcp    reachTrack
	readOnly    bool
	now         time.Time // the latest time the core was given (for send)
	contacted   map[netip.Addr]time.Time
	blindUntil  time.Time // contacted overflowed: no unsolicited evidence until then
	pending     map[wire.ID]*reachProbe
	tokens      map[netip.Addr]reachToken
	unsupported map[netip.Addr]time.Time
	served      map[netip.Addr]*reachWindow
	servedAll   reachWindow
	next        time.Time  // the next round
	ext         netip.Addr // the external address at the last round
	poolIPs     int        // distinct usable prober IPs at the last round
	st          ReachStats
}

func (c *Core) reachInit() {
	r := &c.reach
	r.pending = make(map[wire.ID]*reachProbe)
	r.served = make(map[netip.Addr]*reachWindow)
	if c.cfg.Reach.Probe {
		r.contacted = make(map[netip.Addr]time.Time)
		r.tokens = make(map[netip.Addr]reachToken)
		r.unsupported = make(map[netip.Addr]time.Time)
	}
}

// reachStart schedules the first round.
func (c *Core) reachStart(now time.Time) {
	c.reach.now = now
	if !c.cfg.Reach.Probe {
		return
	}
	c.reachSchedule(now.Add(c.cfg.Reach.First))
	c.reachChanged()
}

func (c *Core) reachSchedule(at time.Time) {
	c.reach.next = at
	c.addTimer(timer{at: at, kind: timerReach})
}

// Reach returns the reachability states and counters.
func (c *Core) Reach() ReachStats {
	s := c.reach.st
	s.UDP, s.UDPSince, s.UDPWhy = c.reach.udp.state, c.reach.udp.since, c.reach.udp.why
	s.TCP, s.TCPSince, s.TCPWhy = c.reach.tcp.state, c.reach.tcp.since, c.reach.tcp.why
	s.ReadOnly = c.reach.readOnly
	return s
}

// reachChanged updates the read-only mode and tells the owner.
func (c *Core) reachChanged() {
	c.reach.readOnly = c.cfg.Reach.Probe && c.reach.udp.state == ReachUnreachable
	if f := c.cfg.Reach.OnChange; f != nil {
		f(c.Reach())
	}
}

// noteSent remembers that we sent to ip (send calls it when probing is on).
func (c *Core) noteSent(ip netip.Addr) {
	r := &c.reach
	if _, ok := r.contacted[ip]; !ok && len(r.contacted) >= maxContacted {
		for a, t := range r.contacted {
			if r.now.Sub(t) > c.cfg.Reach.ContactMemory {
				delete(r.contacted, a)
			}
		}
		if len(r.contacted) >= maxContacted {
			// Too many to remember: take no query as unsolicited until
			// everything forgotten now would have expired.
			clear(r.contacted)
			r.blindUntil = r.now.Add(c.cfg.Reach.ContactMemory)
		}
	}
	r.contacted[ip] = r.now
}

// contactedLately reports whether we sent to ip within ContactMemory.
func (c *Core) contactedLately(ip netip.Addr) bool {
	t, ok := c.reach.contacted[ip]
	return ok && c.reach.now.Sub(t) <= c.cfg.Reach.ContactMemory
}

// onLink reports whether ip is on one of our own networks (loopback, the
// /24 of an IPv4 interface address, or a subnet LAN discovery runs on,
// lan.go): evidence from there says nothing about peers elsewhere.
func (c *Core) onLink(ip netip.Addr) bool {
	ip = ip.Unmap()
	if ip.IsLoopback() || c.onLAN(ip) {
		return true
	}
	if !ip.Is4() {
		return false
	}
	for _, a := range c.join.iface {
		if a.Is4() && !a.IsLoopback() {
			if p, err := a.Prefix(24); err == nil && p.Contains(ip) {
				return true
			}
		}
	}
	return false
}

// reachQueryIn looks at every query for evidence and for BEP 43's ro.
func (c *Core) reachQueryIn(now time.Time, from netip.AddrPort) {
	r := &c.reach
	r.now = now
	if !c.cfg.Reach.Probe || now.Before(r.blindUntil) || c.contactedLately(from.Addr()) || c.onLink(from.Addr()) {
		return
	}
	r.st.Unsolicited++
	if r.udp.success(now, "unsolicited query") {
		c.reachChanged()
	}
}

// noteQuerier applies the insert policy to the sender of a query, except a
// read-only one (BEP 43): it is answered but never pinged nor added, and it
// leaves the table if it was there, so it is not handed out in replies.
func (c *Core) noteQuerier(now time.Time, m *wire.Msg, from netip.AddrPort) {
	if !m.ReadOnly {
		c.noteNode(now, m.ID, from, false)
		return
	}
	c.reach.st.ReadOnlySeen++
	if n, ok := c.table.Get(m.ID); ok && n.Addr == from {
		c.table.Remove(m.ID)
		delete(c.probation, m.ID)
	}
}

// ReachPathPrefix starts the path a TCP probe requests: /~reach/<40 hex
// digits of the nonce>.
const ReachPathPrefix = "/~reach/"

// ReachPath is the path a TCP probe requests.
func ReachPath(nonce wire.ID) string { return ReachPathPrefix + hex.EncodeToString(nonce[:]) }

// ParseReachPath reads the nonce of a TCP probe's path.
func ParseReachPath(p []byte) (wire.ID, bool) {
	var id wire.ID
	if len(p) != len(ReachPathPrefix)+2*wire.IDLen || string(p[:len(ReachPathPrefix)]) != ReachPathPrefix {
		return id, false
	}
	if _, err := hex.Decode(id[:], p[len(ReachPathPrefix):]); err != nil {
		return id, false
	}
	return id, true
}

// ProbeOutput is what a core's Output also offers to answer reach queries
// with probes. Without it the core answers them 203, as an original peer.
type ProbeOutput interface {
	// SendProbe sends pkt to `to` from another local UDP port than the
	// DHT's (a datagram from the DHT port would pass any NAT the requester
	// just sent through).
	SendProbe(to netip.AddrPort, pkt []byte)
	// DialProbe connects to `to` over TCP in the background and requests
	// ReachPath(nonce); it gives up after a few seconds.
	DialProbe(to netip.AddrPort, nonce wire.ID)
}

// serveReach answers a reach query. It reports false when the core does not
// serve probes (the caller answers 203).
func (c *Core) serveReach(now time.Time, from netip.AddrPort, m *wire.Msg, pkt []byte) bool {
	po, ok := c.out.(ProbeOutput)
	if !ok || c.cfg.Reach.NoServe {
		return false
	}
	var a wire.ReachArgs
	if wire.ParseReachArgs(pkt, &a) != nil {
		c.sendError(from, m.TID, wire.ErrCodeMalformedRequest, "malformed request")
		return true
	}
	if !c.reachAllow(now, from.Addr()) {
		c.reach.st.Refused++
		c.sendError(from, m.TID, wire.ErrCodeServer, "reach: too many probes, ask later")
		return true
	}
	// TCP only to the port named on the requester's own IP, and only when
	// the token proves that IP is the requester's (no spoofed source).
	tcp := a.Port != 0 && a.Has&wire.FieldToken != 0 && c.tok.valid(a.Token, from.Addr())
	c.send(from, wire.AppendReachResp(c.buf[:0], m.TID, c.id, from, c.tok.current(from.Addr()), tcp))
	po.SendProbe(from, wire.AppendReachProbe(c.buf[:0], a.Nonce, c.id))
	c.reach.st.Served++
	if tcp {
		c.reach.st.ServedTCP++
		po.DialProbe(netip.AddrPortFrom(from.Addr(), a.Port), a.Nonce)
	}
	if !a.ID.IsZero() {
		m.ID = a.ID
		c.noteQuerier(now, m, from)
	}
	return true
}

// reachAllow applies the serving limits: per requester IP and in all.
func (c *Core) reachAllow(now time.Time, ip netip.Addr) bool {
	r := &c.reach
	cfg := &c.cfg.Reach
	w := r.served[ip]
	if w == nil {
		if len(r.served) >= maxServed {
			for a, x := range r.served {
				if now.Sub(x.start) >= cfg.ServeWindow {
					delete(r.served, a)
				}
			}
			if len(r.served) >= maxServed {
				return false
			}
		}
		w = &reachWindow{start: now}
		r.served[ip] = w
	}
	if now.Sub(w.start) < cfg.ServeWindow && w.n >= cfg.ServePerIP {
		return false
	}
	if !r.servedAll.take(now, cfg.ServeWindow, cfg.ServeGlobal) {
		return false
	}
	return w.take(now, cfg.ServeWindow, cfg.ServePerIP)
}

// reachTimer runs a probe round when one is due.
func (c *Core) reachTimer(now time.Time) {
	r := &c.reach
	r.now = now
	if !c.cfg.Reach.Probe || now.Before(r.next) {
		return // a round was moved earlier meanwhile
	}
	cfg := &c.cfg.Reach
	if !c.join.joined {
		c.reachSchedule(now.Add(cfg.Retry))
		return
	}
	if cfg.Ready != nil && !cfg.Ready() {
		c.reachSchedule(now.Add(time.Second))
		return
	}
	if ext, ok := c.ExternalAddr(); ok && ext != r.ext {
		if r.ext.IsValid() {
			// A new address: what we learned was about the old one.
			r.udp.fails, r.udp.nIPs, r.tcp.fails, r.tcp.nIPs = 0, 0, 0, 0
		}
		r.ext = ext
	}
	probers := c.reachProbers(now)
	if len(probers) > 0 {
		r.st.Rounds++
	}
	for _, n := range probers {
		c.reachAsk(now, n)
	}
	iv := cfg.Interval
	if r.udp.state == ReachUnknown || cfg.TCPPort != 0 && r.tcp.state == ReachUnknown {
		iv = cfg.Retry
	}
	if len(probers) > 0 {
		iv += cfg.Wait
	}
	c.reachSchedule(now.Add(iv))
}

// reachProbers picks up to Fanout nodes of distinct IPs to ask: off our own
// networks, not our own address, not known to give no evidence, and those we
// have not sent to lately first.
func (c *Core) reachProbers(now time.Time) []kbucket.Node {
	r := &c.reach
	all := c.table.Nodes(nil)
	for i := len(all) - 1; i > 0; i-- {
		j := int(c.rng.Uint64() % uint64(i+1))
		all[i], all[j] = all[j], all[i]
	}
	busy := make(map[netip.Addr]bool, len(r.pending))
	for _, p := range r.pending {
		busy[p.to.Addr()] = true
	}
	seen := map[netip.Addr]bool{}
	var fresh, talked []kbucket.Node
	for _, n := range all {
		ip := n.Addr.Addr()
		if !ip.Is4() || seen[ip] || ip == r.ext || c.onLink(ip) {
			continue
		}
		seen[ip] = true
		if t, bad := r.unsupported[ip]; bad && now.Sub(t) < unsupportedFor {
			continue
		}
		if busy[ip] {
			continue
		}
		if c.contactedLately(ip) {
			talked = append(talked, n)
		} else {
			fresh = append(fresh, n)
		}
	}
	r.poolIPs = len(seen)
	out := append(fresh, talked...)
	n := min(len(out), c.cfg.Reach.Fanout, maxReachPending-len(r.pending))
	return out[:max(n, 0)]
}

// reachAsk sends one reach query.
func (c *Core) reachAsk(now time.Time, n kbucket.Node) {
	r := &c.reach
	a := wire.ReachArgs{ID: c.id, Nonce: c.randID()}
	if tk, ok := r.tokens[n.Addr.Addr()]; ok && now.Sub(tk.at) < reachTokenLife && c.cfg.Reach.TCPPort != 0 {
		a.Token, a.Has, a.Port = tk.tok, wire.FieldToken, c.cfg.Reach.TCPPort
	}
	r.pending[a.Nonce] = &reachProbe{to: n.Addr}
	t := c.newTxn(n.Addr, n.ID, wire.MethodUnknown, purposeReach)
	t.cand = a.Nonce
	t.pkt = wire.AppendReach(t.pkt[:0], t.tid, &a)
	r.st.Asked++
	c.startTxn(now, t)
}

// reachReplied handles a prober's reach reply.
func (c *Core) reachReplied(now time.Time, from netip.AddrPort, nonce wire.ID, pkt []byte) {
	r := &c.reach
	p := r.pending[nonce]
	if p == nil {
		return
	}
	var rr wire.ReachReply
	if wire.ParseReachReply(pkt, &rr) != nil {
		delete(r.pending, nonce)
		r.st.NoEvidence++
		return
	}
	r.st.Answered++
	p.answered, p.tcpStarted = true, rr.TCP
	if rr.Has&wire.FieldToken != 0 {
		if _, ok := r.tokens[from.Addr()]; ok || len(r.tokens) < maxReachTokens {
			r.tokens[from.Addr()] = reachToken{tok: rr.Token, at: now}
		}
	}
	if rr.Has&wire.FieldIPAddr != 0 {
		if r.st.SeenAs.IsValid() && rr.Seen.Addr() != r.st.SeenAs.Addr() {
			// Our address changed under us: check again once this round is done.
			r.udp.fails, r.udp.nIPs, r.tcp.fails, r.tcp.nIPs = 0, 0, 0, 0
			if at := now.Add(c.cfg.Reach.Wait); at.Before(r.next) {
				c.reachSchedule(at)
			}
		}
		r.st.SeenAs = rr.Seen
	}
	c.addTimer(timer{at: now.Add(c.cfg.Reach.Wait), kind: timerReachEval, id: nonce})
}

// reachNoEvidence handles a reach query that failed: an error reply or a
// timeout. An error other than rate limiting marks the prober as one that
// cannot answer for a while.
func (c *Core) reachNoEvidence(now time.Time, nonce wire.ID, code int64) {
	r := &c.reach
	p := r.pending[nonce]
	if p == nil {
		return
	}
	delete(r.pending, nonce)
	r.st.NoEvidence++
	if code != 0 && code != wire.ErrCodeServer && len(r.unsupported) < maxUnsupported {
		r.unsupported[p.to.Addr()] = now
	}
}

// reachProbeIn takes a reply to no request of ours: a UDP probe if its TID
// is one of our nonces and it came from the prober's IP but not from the
// port we asked.
func (c *Core) reachProbeIn(now time.Time, from netip.AddrPort, m *wire.Msg) bool {
	r := &c.reach
	p := r.pending[m.TID]
	if p == nil || m.Y != 'r' || p.udpIn || from.Addr() != p.to.Addr() || from == p.to {
		return false
	}
	p.udpIn = true
	r.st.UDPArrived++
	if r.udp.success(now, "probe from "+from.Addr().String()) {
		c.reachChanged()
	}
	return true
}

// ReachTCPHit records a TCP probe that reached our peer port with nonce (the
// HTTP front calls it through Node.NoteTCPProbe). It reports whether the
// nonce was ours.
func (c *Core) ReachTCPHit(now time.Time, nonce wire.ID) bool {
	r := &c.reach
	r.now = now
	p := r.pending[nonce]
	if p == nil || p.tcpIn {
		return false
	}
	p.tcpIn = true
	r.st.TCPArrived++
	if r.tcp.success(now, "probe from "+p.to.Addr().String()) {
		c.reachChanged()
	}
	return true
}

// reachEval judges a probe Wait after its prober answered.
func (c *Core) reachEval(now time.Time, nonce wire.ID) {
	r := &c.reach
	r.now = now
	p := r.pending[nonce]
	if p == nil {
		return
	}
	delete(r.pending, nonce)
	cfg := &c.cfg.Reach
	need := min(2, max(r.poolIPs, 1))
	ip := p.to.Addr()
	changed := false
	if !p.udpIn {
		r.st.UDPMissed++
		changed = r.udp.failure(now, ip, cfg.FailThreshold, need, "no UDP probe arrived") || changed
	}
	if p.tcpStarted && !p.tcpIn {
		r.st.TCPMissed++
		changed = r.tcp.failure(now, ip, cfg.FailThreshold, need, "no TCP probe arrived") || changed
	}
	if changed {
		c.reachChanged()
	}
}
