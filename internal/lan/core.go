package lan

import (
	crand "crypto/rand"
	"encoding/binary"
	"math/rand/v2"
	"net/netip"
	"slices"
	"time"
)

// Config is the behaviour of a Core. Zero fields take the defaults of
// DefaultConfig; the defaults are the documented protocol (wire/doc.go).
type Config struct {
	// PeerPort and DHTPort are what we announce: our HTTP (TCP) port and our
	// DHT's UDP port.
	PeerPort, DHTPort uint16
	// GroupPort is the UDP port written in the Host header (Port).
	GroupPort uint16

	// StartSpread: a link's first hello waits a random time below it, so a
	// fleet that boots at one moment does not announce in one burst.
	StartSpread time.Duration
	// HelloRepeat: the second hello, in case the first was lost, this long
	// after the first.
	HelloRepeat time.Duration
	// Interval: periodic announcements are at least this far apart, and at
	// most 1.5 times it (uniform jitter).
	Interval time.Duration
	// ReplySpread is how long a reply to a hello waits at most (a random
	// time below it, plus ReplySpreadPerPeer per peer known, up to
	// MaxReplySpread): the replies of a large LAN are spread out, and all
	// the hellos heard meanwhile on that link share one reply.
	ReplySpread, ReplySpreadPerPeer, MaxReplySpread time.Duration
	// ReplyBurst and ReplyRefill bound replies: a bucket of ReplyBurst
	// tokens refilled one per ReplyRefill; a hello finding it empty gets no
	// reply (the periodic announcement will do).
	ReplyBurst  int
	ReplyRefill time.Duration
	// ReplySuppress: a peer's hellos are answered at most once in this long
	// (its second hello must not cost the LAN a second round of replies).
	ReplySuppress time.Duration
	// SourceBurst and SourceRefill bound what one source address may make us
	// handle: a bucket per address; messages beyond it are dropped unread.
	SourceBurst  int
	SourceRefill time.Duration
	// MaxSources bounds the per-source buckets kept; MaxPeers the peers
	// remembered (the least recently heard goes when full).
	MaxSources, MaxPeers int
	// PeerExpiry: a peer not heard from for this long is forgotten (it
	// stays in the DHT routing table while it answers there).
	PeerExpiry time.Duration

	// Rand draws the jitter; nil: seeded from crypto/rand. Cookie is drawn
	// from crypto/rand when zero.
	Rand   *rand.Rand
	Cookie Cookie
}

// DefaultConfig is the protocol's timing and bounds.
func DefaultConfig() Config {
	return Config{
		GroupPort:          Port,
		StartSpread:        200 * time.Millisecond,
		HelloRepeat:        2 * time.Second,
		Interval:           time.Minute,
		ReplySpread:        time.Second,
		ReplySpreadPerPeer: 20 * time.Millisecond,
		MaxReplySpread:     5 * time.Second,
		ReplyBurst:         10,
		ReplyRefill:        6 * time.Second,
		ReplySuppress:      30 * time.Second,
		SourceBurst:        10,
		SourceRefill:       6 * time.Second,
		MaxSources:         1024,
		MaxPeers:           256,
		PeerExpiry:         5 * time.Minute,
	}
}

func (c *Config) fill() {
	d := DefaultConfig()
	setDur := func(p *time.Duration, v time.Duration) {
		if *p <= 0 {
			*p = v
		}
	}
	setInt := func(p *int, v int) {
		if *p <= 0 {
			*p = v
		}
	}
	if c.GroupPort == 0 {
		c.GroupPort = d.GroupPort
	}
	setDur(&c.StartSpread, d.StartSpread)
	setDur(&c.HelloRepeat, d.HelloRepeat)
	setDur(&c.Interval, d.Interval)
	setDur(&c.ReplySpread, d.ReplySpread)
	setDur(&c.ReplySpreadPerPeer, d.ReplySpreadPerPeer)
	setDur(&c.MaxReplySpread, d.MaxReplySpread)
	setInt(&c.ReplyBurst, d.ReplyBurst)
	setDur(&c.ReplyRefill, d.ReplyRefill)
	setDur(&c.ReplySuppress, d.ReplySuppress)
	setInt(&c.SourceBurst, d.SourceBurst)
	setDur(&c.SourceRefill, d.SourceRefill)
	setInt(&c.MaxSources, d.MaxSources)
	setInt(&c.MaxPeers, d.MaxPeers)
	setDur(&c.PeerExpiry, d.PeerExpiry)
}

// Link is one interface and family: where we announce and listen.
type Link struct {
	Index  int // interface index
	Family Family
}

// Iface is a multicast-capable interface as the core needs it.
type Iface struct {
	Index int
	Name  string
	// Addrs are the interface's addresses with their prefix lengths: our
	// addresses on it, and the on-link subnets a peer's source must be in.
	Addrs []netip.Prefix
}

// Has reports whether the interface has an address of family f.
func (i *Iface) Has(f Family) bool {
	for _, p := range i.Addrs {
		if FamilyOf(p.Addr()) == f {
			return true
		}
	}
	return false
}

// onLink reports whether a (without zone) is inside one of the interface's
// subnets of its family; IPv6 link-local addresses always are.
func (i *Iface) onLink(a netip.Addr) bool {
	if a.Is6() && a.IsLinkLocalUnicast() {
		return true
	}
	for _, p := range i.Addrs {
		if p.Masked().Contains(a) {
			return true
		}
	}
	return false
}

// Kind is what a sent message was.
type Kind uint8

const (
	KindHello    Kind = iota // at start or on a new link; asks for replies
	KindAnnounce             // periodic
	KindReply                // an answer to hellos
	NumKinds
)

func (k Kind) String() string {
	return [...]string{"hello", "announce", "reply"}[k]
}

// DropReason says why a received datagram was dropped.
type DropReason uint8

const (
	DropOversize  DropReason = iota // longer than MaxMsgLen
	DropMalformed                   // Parse failed
	DropRate                        // its source exceeded its rate
	DropOffLink                     // source not on the interface's subnets, or an interface we do not use
	DropNotGroup                    // sent to another address than our group (unicast, another group)
	NumDropReasons
)

func (r DropReason) String() string {
	return [...]string{"oversize", "malformed", "rate", "off_link", "not_group"}[r]
}

// Stats are a core's counters since it started.
type Stats struct {
	Sent       [NumKinds]uint64
	SendErrors uint64
	Received   uint64 // datagrams handed to HandlePacket
	Accepted   uint64 // valid messages from peers
	Own        uint64 // our own messages, looped back (not counted as drops)
	Dropped    [NumDropReasons]uint64
	// RepliesLimited counts hellos left unanswered by the reply bucket.
	RepliesLimited uint64
	// Introductions counts peers handed to the DHT (Output.Introduce).
	Introductions uint64
	PeersEvicted  uint64 // forgotten because MaxPeers was reached
	Peers, Links  int
}

// SentTotal is every message sent.
func (s *Stats) SentTotal() uint64 {
	var n uint64
	for _, v := range s.Sent {
		n += v
	}
	return n
}

// DroppedTotal is every datagram dropped.
func (s *Stats) DroppedTotal() uint64 {
	var n uint64
	for _, v := range s.Dropped {
		n += v
	}
	return n
}

// Peer is a daemon heard on the LAN.
type Peer struct {
	// Contact is its DHT contact: the source address of its messages and
	// their DHT-Port.
	Contact  netip.AddrPort
	PeerPort uint16 // HTTP (TCP)
	Link     Link
	Iface    string
	Cookie   Cookie
	// First and Last are when it was first and last heard; Messages how
	// many of its messages were accepted.
	First, Last time.Time
	Messages    uint64
}

// HTTP is the peer's HTTP address (where its files are downloaded from).
func (p *Peer) HTTP() netip.AddrPort { return netip.AddrPortFrom(p.Contact.Addr(), p.PeerPort) }

// Output is what a core does to the world. Both are called from within the
// core's methods, on the caller's goroutine.
type Output interface {
	// Send multicasts pkt on link (to the family's group). pkt is reused
	// after Send returns.
	Send(l Link, pkt []byte) error
	// Introduce hands a peer to the DHT, which pings it unless it already
	// knows its contact. Called for every message accepted from a peer.
	Introduce(p Peer)
}

type linkState struct {
	iface   Iface
	helloAt time.Time // next hello; zero: none pending
	hellos  int       // hellos sent on this link
	replyAt time.Time // pending reply; zero: none
	own     netip.Addr
}

type bucket struct {
	tokens float64
	at     time.Time
}

// take refills the bucket for the time since it was last used and takes a
// token if there is one.
func (b *bucket) take(now time.Time, burst int, refill time.Duration) bool {
	if el := now.Sub(b.at); el > 0 {
		b.tokens = min(float64(burst), b.tokens+float64(el)/float64(refill))
	}
	b.at = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

type peerState struct {
	Peer
	repliedAt time.Time // when we last scheduled a reply to its hello
}

// Core is LAN discovery without I/O: datagrams (HandlePacket), interface
// lists (SetInterfaces) and the passing of time (Tick) go in; datagrams and
// introductions come out through Output. It never reads the clock; one
// goroutine at a time may use it.
type Core struct {
	cfg          Config
	out          Output
	rng          *rand.Rand
	links        map[Link]*linkState
	peers        map[netip.AddrPort]*peerState
	sources      map[netip.Addr]*bucket
	replies      bucket
	nextAnnounce time.Time // zero until the first SetInterfaces
	st           Stats
	buf          []byte
	msg          Msg
}

// NewCore makes a core; it sends nothing until SetInterfaces gives it links.
func NewCore(cfg Config, out Output) *Core {
	cfg.fill()
	if cfg.Rand == nil {
		var seed [16]byte
		_, _ = crand.Read(seed[:])
		cfg.Rand = rand.New(rand.NewPCG(binary.LittleEndian.Uint64(seed[:8]), binary.LittleEndian.Uint64(seed[8:])))
	}
	if cfg.Cookie == (Cookie{}) {
		_, _ = crand.Read(cfg.Cookie[:])
	}
	return &Core{
		cfg:     cfg,
		out:     out,
		rng:     cfg.Rand,
		links:   map[Link]*linkState{},
		peers:   map[netip.AddrPort]*peerState{},
		sources: map[netip.Addr]*bucket{},
		replies: bucket{tokens: float64(cfg.ReplyBurst)},
		buf:     make([]byte, 0, MaxMsgLen),
	}
}

// Cookie is this core's cookie.
func (c *Core) Cookie() Cookie { return c.cfg.Cookie }

// Config is the core's configuration with defaults filled in.
func (c *Core) Config() Config { return c.cfg }

// jitter is a uniform random duration in [0, d).
func (c *Core) jitter(d time.Duration) time.Duration {
	if d <= 0 {
		return 0
	}
	return time.Duration(c.rng.Int64N(int64(d)))
}

func (c *Core) interval() time.Duration { return c.cfg.Interval + c.jitter(c.cfg.Interval/2) }

// SetInterfaces gives the interfaces to use now, each on the families it has
// addresses of (families not in fams are left out; 0: both). A new link
// gets its hellos; a link that went takes its peers with it.
func (c *Core) SetInterfaces(now time.Time, ifs []Iface, fams ...Family) {
	want := map[Link]Iface{}
	for _, ifc := range ifs {
		for _, f := range []Family{IPv4, IPv6} {
			if (len(fams) == 0 || slices.Contains(fams, f)) && ifc.Has(f) {
				want[Link{ifc.Index, f}] = ifc
			}
		}
	}
	for l := range c.links {
		if _, ok := want[l]; !ok {
			delete(c.links, l)
			for k, p := range c.peers {
				if p.Link == l {
					delete(c.peers, k)
				}
			}
		}
	}
	for l, ifc := range want {
		if ls, ok := c.links[l]; ok {
			ls.iface = ifc // addresses may have changed
			continue
		}
		c.links[l] = &linkState{iface: ifc, helloAt: now.Add(c.jitter(c.cfg.StartSpread))}
	}
	if c.nextAnnounce.IsZero() {
		c.nextAnnounce = now.Add(c.interval())
	}
	c.st.Links, c.st.Peers = len(c.links), len(c.peers)
}

// Links lists the links in use.
func (c *Core) Links() []Link {
	out := make([]Link, 0, len(c.links))
	for l := range c.links {
		out = append(out, l)
	}
	slices.SortFunc(out, func(a, b Link) int {
		if a.Index != b.Index {
			return a.Index - b.Index
		}
		return int(a.Family) - int(b.Family)
	})
	return out
}

// OwnAddr is the source address our own messages arrived with on link l
// (the address LAN peers see us at); invalid until one has looped back.
func (c *Core) OwnAddr(l Link) netip.Addr {
	if ls, ok := c.links[l]; ok {
		return ls.own
	}
	return netip.Addr{}
}

// NextDeadline is when Tick has something to do; false when nothing is
// scheduled (no links).
func (c *Core) NextDeadline() (time.Time, bool) {
	if len(c.links) == 0 {
		return time.Time{}, false
	}
	next := c.nextAnnounce
	for _, ls := range c.links {
		for _, t := range []time.Time{ls.helloAt, ls.replyAt} {
			if !t.IsZero() && t.Before(next) {
				next = t
			}
		}
	}
	return next, true
}

// Tick sends what is due at now: hellos, replies and the periodic
// announcement, and forgets peers not heard from for PeerExpiry.
func (c *Core) Tick(now time.Time) {
	if len(c.links) == 0 {
		return
	}
	announce := !now.Before(c.nextAnnounce)
	if announce {
		c.nextAnnounce = now.Add(c.interval())
		c.expire(now)
	}
	for l, ls := range c.links {
		switch {
		case !ls.helloAt.IsZero() && !now.Before(ls.helloAt):
			c.send(l, KindHello, true)
			ls.hellos++
			ls.helloAt = time.Time{}
			if ls.hellos < 2 {
				ls.helloAt = now.Add(c.cfg.HelloRepeat)
			}
			ls.replyAt = time.Time{} // a hello announces us too
		case !ls.replyAt.IsZero() && !now.Before(ls.replyAt):
			c.send(l, KindReply, false)
			ls.replyAt = time.Time{}
		case announce && ls.helloAt.IsZero():
			c.send(l, KindAnnounce, false)
			ls.replyAt = time.Time{}
		}
	}
}

func (c *Core) send(l Link, k Kind, reply bool) {
	c.msg = Msg{Group: l.Family, GroupPort: c.cfg.GroupPort, PeerPort: c.cfg.PeerPort, DHTPort: c.cfg.DHTPort,
		Cookie: c.cfg.Cookie, Reply: reply}
	c.buf = AppendMsg(c.buf[:0], &c.msg)
	if err := c.out.Send(l, c.buf); err != nil {
		c.st.SendErrors++
		return
	}
	c.st.Sent[k]++
}

// expire forgets peers not heard from for PeerExpiry, and source buckets
// that have refilled.
func (c *Core) expire(now time.Time) {
	for k, p := range c.peers {
		if now.Sub(p.Last) >= c.cfg.PeerExpiry {
			delete(c.peers, k)
		}
	}
	full := time.Duration(c.cfg.SourceBurst) * c.cfg.SourceRefill
	for a, b := range c.sources {
		if now.Sub(b.at) >= full {
			delete(c.sources, a)
		}
	}
	c.st.Peers = len(c.peers)
}

// HandlePacket handles a datagram that arrived on link l from from. dst is
// the address it was sent to (invalid if unknown). pkt is not retained.
func (c *Core) HandlePacket(now time.Time, l Link, from netip.AddrPort, dst netip.Addr, pkt []byte) {
	c.st.Received++
	ls, ok := c.links[l]
	if !ok {
		c.st.Dropped[DropOffLink]++
		return
	}
	if dst.IsValid() && dst.Unmap().WithZone("") != l.Family.Group() {
		c.st.Dropped[DropNotGroup]++
		return
	}
	if len(pkt) > MaxMsgLen {
		c.st.Dropped[DropOversize]++
		return
	}
	src := from.Addr().Unmap()
	if !c.allowSource(now, src) {
		c.st.Dropped[DropRate]++
		return
	}
	m := &c.msg
	if err := m.Parse(pkt); err != nil {
		c.st.Dropped[DropMalformed]++
		return
	}
	if m.Cookie == c.cfg.Cookie {
		c.st.Own++
		ls.own = src
		return
	}
	if FamilyOf(src) != l.Family || !ls.iface.onLink(src.WithZone("")) {
		c.st.Dropped[DropOffLink]++
		return
	}
	c.st.Accepted++
	contact := netip.AddrPortFrom(src, m.DHTPort)
	p, ok := c.peers[contact]
	if !ok {
		if len(c.peers) >= c.cfg.MaxPeers {
			c.evictOldest()
		}
		p = &peerState{Peer: Peer{Contact: contact, First: now}}
		c.peers[contact] = p
	}
	if p.Cookie != m.Cookie {
		p.Cookie, p.repliedAt = m.Cookie, time.Time{} // a new run of that daemon
	}
	p.PeerPort, p.Link, p.Iface, p.Last = m.PeerPort, l, ls.iface.Name, now
	p.Messages++
	c.st.Peers = len(c.peers)
	if m.Reply {
		c.hello(now, ls, p)
	}
	c.st.Introductions++
	c.out.Introduce(p.Peer)
}

// hello schedules a reply on the link, unless one is pending (it will
// answer this hello too), this peer was answered a moment ago, a hello of
// ours is about to go out, or the reply bucket is empty.
func (c *Core) hello(now time.Time, ls *linkState, p *peerState) {
	if !ls.replyAt.IsZero() || !ls.helloAt.IsZero() {
		return
	}
	if !p.repliedAt.IsZero() && now.Sub(p.repliedAt) < c.cfg.ReplySuppress {
		return
	}
	if !c.replies.take(now, c.cfg.ReplyBurst, c.cfg.ReplyRefill) {
		c.st.RepliesLimited++
		return
	}
	p.repliedAt = now
	spread := min(c.cfg.ReplySpread+time.Duration(len(c.peers))*c.cfg.ReplySpreadPerPeer, c.cfg.MaxReplySpread)
	ls.replyAt = now.Add(c.jitter(spread))
}

// allowSource takes a token from src's bucket.
func (c *Core) allowSource(now time.Time, src netip.Addr) bool {
	b, ok := c.sources[src]
	if !ok {
		if len(c.sources) >= c.cfg.MaxSources {
			c.expire(now)
			if len(c.sources) >= c.cfg.MaxSources {
				// Still full of active sources: forget one at random (map
				// order) rather than refuse every newcomer.
				for a := range c.sources {
					delete(c.sources, a)
					break
				}
			}
		}
		b = &bucket{tokens: float64(c.cfg.SourceBurst), at: now}
		c.sources[src] = b
	}
	return b.take(now, c.cfg.SourceBurst, c.cfg.SourceRefill)
}

func (c *Core) evictOldest() {
	var oldest *peerState
	for _, p := range c.peers {
		if oldest == nil || p.Last.Before(oldest.Last) {
			oldest = p
		}
	}
	if oldest != nil {
		delete(c.peers, oldest.Contact)
		c.st.PeersEvicted++
	}
}

// Peers appends the peers heard within PeerExpiry to dst, ordered by contact.
func (c *Core) Peers(dst []Peer) []Peer {
	start := len(dst)
	for _, p := range c.peers {
		dst = append(dst, p.Peer)
	}
	slices.SortFunc(dst[start:], func(a, b Peer) int { return a.Contact.Compare(b.Contact) })
	return dst
}

// Stats are the counters.
func (c *Core) Stats() Stats { return c.st }
