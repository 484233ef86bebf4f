package lan

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"testing"
	"time"
)

// recorder is an Output that keeps what a core sent and introduced.
type recorder struct {
	t     *testing.T
	at    time.Time // the virtual time of the current call
	sends []sentMsg
	intro []Peer
}

type sentMsg struct {
	at   time.Time
	link Link
	msg  Msg
}

func (r *recorder) Send(l Link, pkt []byte) error {
	var m Msg
	if err := m.Parse(pkt); err != nil && r.t != nil {
		r.t.Fatalf("the core sent a message it cannot parse: %v: %q", err, pkt)
	}
	r.sends = append(r.sends, sentMsg{r.at, l, m})
	return nil
}

func (r *recorder) Introduce(p Peer) { r.intro = append(r.intro, p) }

func (r *recorder) count(l Link, reply bool) int {
	n := 0
	for _, s := range r.sends {
		if s.link == l && s.msg.Reply == reply {
			n++
		}
	}
	return n
}

var (
	t0   = time.Unix(1_700_000_000, 0)
	eth0 = Iface{Index: 2, Name: "eth0", Addrs: []netip.Prefix{
		netip.MustParsePrefix("192.168.1.10/24"), netip.MustParsePrefix("fe80::1/64"), netip.MustParsePrefix("fd42::10/64")}}
	l4 = Link{2, IPv4}
	l6 = Link{2, IPv6}
)

func testConfig(seed uint64) Config {
	return Config{PeerPort: 9977, DHTPort: 9977, Rand: rand.New(rand.NewPCG(seed, 1)), Cookie: Cookie{0xaa, byte(seed)}}
}

func newTestCore(t *testing.T, cfg Config) (*Core, *recorder) {
	r := &recorder{t: t, at: t0}
	c := NewCore(cfg, r)
	c.SetInterfaces(t0, []Iface{eth0})
	return c, r
}

// advance runs c's schedule up to and including until.
func advance(c *Core, r *recorder, until time.Time) {
	for {
		dl, ok := c.NextDeadline()
		if !ok || dl.After(until) {
			r.at = until
			return
		}
		r.at = dl
		c.Tick(dl)
	}
}

// peerMsg is a datagram from another daemon.
func peerMsg(cookie byte, dhtPort uint16, reply bool, fam Family) []byte {
	return AppendMsg(nil, &Msg{Group: fam, GroupPort: Port, PeerPort: 9977, DHTPort: dhtPort, Cookie: Cookie{cookie}, Reply: reply})
}

func ap(s string) netip.AddrPort { return netip.MustParseAddrPort(s) }

// The schedule: on each link two hellos at start (the first within
// StartSpread, the second HelloRepeat later), then one announcement every
// [Interval, 1.5·Interval): over an hour between 40 and 60 per link, never
// two closer than Interval.
func TestScheduleHour(t *testing.T) {
	for seed := range uint64(20) {
		cfg := testConfig(seed)
		c, r := newTestCore(t, cfg)
		advance(c, r, t0.Add(time.Hour))
		d := DefaultConfig()
		for _, l := range []Link{l4, l6} {
			var times []time.Time
			for i, s := range r.sends {
				if s.link != l {
					continue
				}
				if len(times) < 2 != s.msg.Reply {
					t.Fatalf("seed %d %v: message %d Reply=%v; want the first two to be hellos and no other", seed, l, i, s.msg.Reply)
				}
				times = append(times, s.at)
			}
			if len(times) < 2 || times[0].Sub(t0) >= d.StartSpread || times[1].Sub(times[0]) != d.HelloRepeat {
				t.Fatalf("seed %d %v: hellos at %v", seed, l, times)
			}
			for i := 2; i < len(times); i++ {
				gap := times[i].Sub(times[i-1])
				if i == 2 {
					gap = times[i].Sub(t0) // the periodic schedule started at t0
				}
				if gap < d.Interval || gap >= d.Interval*3/2 {
					t.Fatalf("seed %d %v: announcement %d came %v after the one before; want [%v, %v)", seed, l, i, gap, d.Interval, d.Interval*3/2)
				}
			}
			if n := len(times) - 2; n < 40 || n > 60 {
				t.Fatalf("seed %d %v: %d announcements in an hour, want 40-60", seed, l, n)
			}
			for _, s := range r.sends {
				if s.link == l && (s.msg.Group != l.Family || s.msg.Cookie != cfg.Cookie || s.msg.DHTPort != 9977 || s.msg.GroupPort != Port) {
					t.Fatalf("seed %d: sent %+v on %v", seed, s.msg, l)
				}
			}
		}
	}
}

// A daemon's own messages loop back: they are recognised by the cookie,
// neither remembered as a peer nor introduced nor counted as drops, and
// their source is the address LAN peers see us at.
func TestOwnMessagesIgnored(t *testing.T) {
	c, r := newTestCore(t, testConfig(1))
	advance(c, r, t0.Add(time.Second))
	if len(r.sends) == 0 {
		t.Fatal("nothing sent")
	}
	for _, s := range r.sends {
		pkt := AppendMsg(nil, &s.msg)
		from := ap("192.168.1.10:9976")
		if s.link.Family == IPv6 {
			from = ap("[fd42::10]:9976")
		}
		c.HandlePacket(s.at, s.link, from, s.link.Family.Group(), pkt)
	}
	st := c.Stats()
	if st.Own != uint64(len(r.sends)) || st.Accepted != 0 || st.DroppedTotal() != 0 || st.Peers != 0 || len(r.intro) != 0 {
		t.Fatalf("own messages: %+v, introduced %v", st, r.intro)
	}
	if c.OwnAddr(l4) != netip.MustParseAddr("192.168.1.10") || c.OwnAddr(l6) != netip.MustParseAddr("fd42::10") {
		t.Fatalf("own addresses %v %v", c.OwnAddr(l4), c.OwnAddr(l6))
	}
	// Another daemon's message (another cookie) from the same address is a peer.
	c.HandlePacket(t0.Add(time.Second), l4, ap("192.168.1.10:9976"), Group4, peerMsg(0x55, 9000, false, IPv4))
	if st := c.Stats(); st.Accepted != 1 || st.Peers != 1 || len(r.intro) != 1 || r.intro[0].Contact != ap("192.168.1.10:9000") {
		t.Fatalf("a second daemon on this host: %+v %v", st, r.intro)
	}
}

// A peer heard is introduced with its DHT contact (source address, DHT-Port)
// and HTTP port, and listed.
func TestPeerLearned(t *testing.T) {
	c, r := newTestCore(t, testConfig(2))
	now := t0.Add(10 * time.Second)
	c.HandlePacket(now, l4, ap("192.168.1.20:9976"), Group4, peerMsg(7, 6000, false, IPv4))
	c.HandlePacket(now, l6, ap("[fe80::20%eth0]:9976"), Group6, peerMsg(7, 6000, false, IPv6))
	peers := c.Peers(nil)
	if len(peers) != 2 || len(r.intro) != 2 {
		t.Fatalf("peers %+v, introduced %+v", peers, r.intro)
	}
	p := peers[0]
	if p.Contact != ap("192.168.1.20:6000") || p.HTTP() != ap("192.168.1.20:9977") || p.Iface != "eth0" || p.Link != l4 ||
		p.Cookie != (Cookie{7}) || !p.First.Equal(now) || p.Messages != 1 {
		t.Fatalf("peer %+v", p)
	}
	if peers[1].Contact != ap("[fe80::20%eth0]:6000") {
		t.Fatalf("IPv6 link-local peer %+v: the zone must stay (it is needed to reach it)", peers[1])
	}
	// Heard again: the same entry, introduced again (the DHT skips known nodes).
	c.HandlePacket(now.Add(time.Minute), l4, ap("192.168.1.20:9976"), Group4, peerMsg(7, 6000, false, IPv4))
	if peers = c.Peers(nil); len(peers) != 2 || peers[0].Messages != 2 || !peers[0].Last.Equal(now.Add(time.Minute)) || len(r.intro) != 3 {
		t.Fatalf("heard again: %+v %d introductions", peers, len(r.intro))
	}
}

// A newcomer's hello is answered once per link after a random delay within
// the spread; the hellos of several newcomers heard meanwhile share that
// reply; the newcomer's second hello gets none (it was answered a moment
// ago); every newcomer is introduced.
func TestHelloRepliesCoalesced(t *testing.T) {
	c, r := newTestCore(t, testConfig(3))
	start := t0.Add(10 * time.Second)
	advance(c, r, start)
	before := len(r.sends)
	for i := range 5 {
		at := start.Add(time.Duration(i) * 100 * time.Millisecond)
		advance(c, r, at)
		c.HandlePacket(at, l4, ap(fmt.Sprintf("192.168.1.%d:9976", 30+i)), Group4, peerMsg(byte(30+i), 9977, true, IPv4))
	}
	advance(c, r, start.Add(DefaultConfig().MaxReplySpread+time.Second))
	replies := r.sends[before:]
	if len(replies) != 1 || replies[0].link != l4 || replies[0].msg.Reply {
		t.Fatalf("replies %+v; want one announcement on %v", replies, l4)
	}
	if d := replies[0].at.Sub(start); d < 0 || d >= DefaultConfig().ReplySpread+5*DefaultConfig().ReplySpreadPerPeer {
		t.Fatalf("reply after %v", d)
	}
	if c.Stats().Sent[KindReply] != 1 || len(r.intro) != 5 {
		t.Fatalf("stats %+v, %d introduced", c.Stats(), len(r.intro))
	}
	// The first newcomer's second hello, HelloRepeat later: no second reply.
	at := start.Add(DefaultConfig().HelloRepeat + 5*time.Second)
	advance(c, r, at)
	c.HandlePacket(at, l4, ap("192.168.1.30:9976"), Group4, peerMsg(30, 9977, true, IPv4))
	advance(c, r, at.Add(DefaultConfig().MaxReplySpread))
	if n := c.Stats().Sent[KindReply]; n != 1 {
		t.Fatalf("%d replies after the second hello, want still 1", n)
	}
	// The same daemon restarted (new cookie): answered again.
	at = at.Add(DefaultConfig().MaxReplySpread)
	c.HandlePacket(at, l4, ap("192.168.1.30:9976"), Group4, peerMsg(99, 9977, true, IPv4))
	advance(c, r, at.Add(DefaultConfig().MaxReplySpread))
	if n := c.Stats().Sent[KindReply]; n != 2 {
		t.Fatalf("%d replies after a restarted peer's hello, want 2", n)
	}
}

// While our own hello is still to go out, a hello heard gets no separate
// reply: ours announces us.
func TestNoReplyWhileOwnHelloPending(t *testing.T) {
	c, r := newTestCore(t, testConfig(4))
	c.HandlePacket(t0, l4, ap("192.168.1.40:9976"), Group4, peerMsg(40, 9977, true, IPv4))
	advance(c, r, t0.Add(time.Minute-time.Second))
	if n := c.Stats().Sent[KindReply]; n != 0 {
		t.Fatalf("%d replies", n)
	}
	if r.count(l4, true) != 2 {
		t.Fatalf("hellos on %v: %d", l4, r.count(l4, true))
	}
}

// Replies are bounded by the bucket: a stream of hellos from ever new
// sources gets at most ReplyBurst + (time / ReplyRefill) replies, and the
// ones left out are counted.
func TestRepliesRateLimited(t *testing.T) {
	c, r := newTestCore(t, testConfig(5))
	d := DefaultConfig()
	start := t0.Add(10 * time.Second)
	advance(c, r, start)
	const hellos = 200
	span := 2 * time.Minute
	for i := range hellos {
		at := start.Add(span * time.Duration(i) / hellos)
		advance(c, r, at)
		src := netip.AddrFrom4([4]byte{192, 168, 1, byte(i + 1)})
		c.HandlePacket(at, l4, netip.AddrPortFrom(src, 9976), Group4, peerMsg(byte(i), uint16(1000+i), true, IPv4))
	}
	advance(c, r, start.Add(span+d.MaxReplySpread))
	st := c.Stats()
	limit := uint64(d.ReplyBurst) + uint64(span/d.ReplyRefill) + 1
	if st.Sent[KindReply] > limit || st.Sent[KindReply] < uint64(d.ReplyBurst) {
		t.Fatalf("%d replies to %d hellos in %v; want at least %d and at most %d", st.Sent[KindReply], hellos, span, d.ReplyBurst, limit)
	}
	if st.RepliesLimited == 0 || st.Accepted != hellos {
		t.Fatalf("stats %+v", st)
	}
}

// One source sending too fast loses its excess, unread; it is heard again
// once its bucket refills. Other sources are not affected.
func TestSourceRateLimit(t *testing.T) {
	c, _ := newTestCore(t, testConfig(6))
	d := DefaultConfig()
	now := t0.Add(time.Minute)
	for range 100 {
		c.HandlePacket(now, l4, ap("192.168.1.50:9976"), Group4, peerMsg(50, 9977, false, IPv4))
	}
	st := c.Stats()
	if st.Accepted != uint64(d.SourceBurst) || st.Dropped[DropRate] != 100-uint64(d.SourceBurst) {
		t.Fatalf("flood: %+v", st)
	}
	c.HandlePacket(now, l4, ap("192.168.1.51:9976"), Group4, []byte("garbage"))
	c.HandlePacket(now, l4, ap("192.168.1.52:9976"), Group4, peerMsg(52, 9977, false, IPv4))
	if st := c.Stats(); st.Accepted != uint64(d.SourceBurst)+1 || st.Dropped[DropMalformed] != 1 {
		t.Fatalf("other sources: %+v", st)
	}
	c.HandlePacket(now.Add(d.SourceRefill), l4, ap("192.168.1.50:9976"), Group4, peerMsg(50, 9977, false, IPv4))
	if st := c.Stats(); st.Accepted != uint64(d.SourceBurst)+2 {
		t.Fatalf("after a refill: %+v", st)
	}
}

// The per-source buckets are bounded: many sources (spoofed, say) never
// grow the map beyond MaxSources.
func TestSourcesBounded(t *testing.T) {
	cfg := testConfig(7)
	cfg.MaxSources = 64
	c, _ := newTestCore(t, cfg)
	for i := range 1000 {
		src := netip.AddrFrom4([4]byte{192, 168, 1, byte(i)})
		c.HandlePacket(t0, l4, netip.AddrPortFrom(src, 9976), Group4, []byte("x"))
		if len(c.sources) > cfg.MaxSources {
			t.Fatalf("%d sources kept, MaxSources %d", len(c.sources), cfg.MaxSources)
		}
	}
}

// Malformed, oversized, misdirected and off-link datagrams are dropped and
// counted by reason; none of them makes a peer.
func TestDropsCounted(t *testing.T) {
	c, r := newTestCore(t, testConfig(8))
	now := t0.Add(time.Second)
	valid := peerMsg(9, 9977, true, IPv4)
	bep14 := []byte("BT-SEARCH * HTTP/1.1\r\nHost: 239.192.152.143:6771\r\nPort: 6881\r\n" +
		"Infohash: 0123456789abcdef0123456789abcdef01234567\r\n\r\n\r\n")
	cases := []struct {
		name string
		link Link
		from netip.AddrPort
		dst  netip.Addr
		pkt  []byte
		want DropReason
	}{
		{"garbage", l4, ap("192.168.1.60:9976"), Group4, []byte("\x00\x01hello"), DropMalformed},
		{"BEP 14", l4, ap("192.168.1.61:6771"), Group4, bep14, DropMalformed},
		{"truncated", l4, ap("192.168.1.62:9976"), Group4, valid[:len(valid)-2], DropMalformed},
		{"oversize", l4, ap("192.168.1.63:9976"), Group4, make([]byte, MaxMsgLen+1), DropOversize},
		{"unicast", l4, ap("192.168.1.64:9976"), netip.MustParseAddr("192.168.1.10"), valid, DropNotGroup},
		{"other group", l4, ap("192.168.1.65:9976"), netip.MustParseAddr("239.192.152.144"), valid, DropNotGroup},
		{"off-link source", l4, ap("10.9.9.9:9976"), Group4, valid, DropOffLink},
		{"IPv6 source on the IPv4 link", l4, ap("[fd42::66]:9976"), Group4, valid, DropOffLink},
		{"off-link IPv6", l6, ap("[2001:db8::1]:9976"), Group6, peerMsg(9, 9977, false, IPv6), DropOffLink},
		{"unknown interface", Link{7, IPv4}, ap("192.168.1.67:9976"), Group4, valid, DropOffLink},
	}
	for _, k := range cases {
		before := c.Stats().Dropped[k.want]
		c.HandlePacket(now, k.link, k.from, k.dst, k.pkt)
		if got := c.Stats().Dropped[k.want]; got != before+1 {
			t.Errorf("%s: %v drops %d → %d", k.name, k.want, before, got)
		}
	}
	st := c.Stats()
	if st.Peers != 0 || st.Accepted != 0 || len(r.intro) != 0 || st.DroppedTotal() != uint64(len(cases)) || st.Received != uint64(len(cases)) {
		t.Fatalf("stats %+v, introduced %v", st, r.intro)
	}
	advance(c, r, now.Add(DefaultConfig().MaxReplySpread))
	if st := c.Stats(); st.Sent[KindReply] != 0 {
		t.Fatalf("a dropped hello was answered: %+v", st)
	}
	// An unknown destination (the kernel did not say) is not a drop.
	c.HandlePacket(now, l4, ap("192.168.1.68:9976"), netip.Addr{}, valid)
	if st := c.Stats(); st.Accepted != 1 {
		t.Fatalf("no destination given: %+v", st)
	}
}

// The peers remembered are bounded (the least recently heard goes) and
// expire PeerExpiry after they were last heard.
func TestPeersBoundedAndExpire(t *testing.T) {
	cfg := testConfig(9)
	cfg.MaxPeers = 4
	c, r := newTestCore(t, cfg)
	for i := range 6 {
		at := t0.Add(time.Duration(i) * time.Second)
		c.HandlePacket(at, l4, netip.AddrPortFrom(netip.AddrFrom4([4]byte{192, 168, 1, byte(100 + i)}), 9976), Group4, peerMsg(byte(i), 9977, false, IPv4))
	}
	peers := c.Peers(nil)
	var got []string
	for _, p := range peers {
		got = append(got, p.Contact.Addr().String())
	}
	if want := []string{"192.168.1.102", "192.168.1.103", "192.168.1.104", "192.168.1.105"}; !slices.Equal(got, want) {
		t.Fatalf("peers %v, want %v", got, want)
	}
	if st := c.Stats(); st.PeersEvicted != 2 || st.Peers != 4 {
		t.Fatalf("stats %+v", st)
	}
	// One keeps talking; the others go quiet and expire.
	for i := time.Duration(1); i <= 6; i++ {
		at := t0.Add(i * time.Minute)
		advance(c, r, at)
		c.HandlePacket(at, l4, ap("192.168.1.105:9976"), Group4, peerMsg(5, 9977, false, IPv4))
	}
	advance(c, r, t0.Add(DefaultConfig().PeerExpiry+3*time.Minute))
	if peers := c.Peers(nil); len(peers) != 1 || peers[0].Contact.Addr() != netip.MustParseAddr("192.168.1.105") {
		t.Fatalf("after expiry: %+v", peers)
	}
}

// Interfaces come and go: a new link gets its hellos, a link that went is
// no longer sent on and its peers are forgotten; families not asked for are
// left out.
func TestInterfacesChange(t *testing.T) {
	c, r := newTestCore(t, testConfig(10))
	advance(c, r, t0.Add(5*time.Second))
	c.HandlePacket(t0.Add(5*time.Second), l4, ap("192.168.1.70:9976"), Group4, peerMsg(70, 9977, false, IPv4))
	wlan := Iface{Index: 3, Name: "wlan0", Addrs: []netip.Prefix{netip.MustParsePrefix("10.1.0.5/16")}}
	now := t0.Add(10 * time.Second)
	c.SetInterfaces(now, []Iface{wlan})
	r.sends = nil
	advance(c, r, now.Add(5*time.Minute))
	for _, s := range r.sends {
		if s.link.Index != 3 || s.link.Family != IPv4 {
			t.Fatalf("sent on %v after eth0 went", s.link)
		}
	}
	if r.count(Link{3, IPv4}, true) != 2 || c.Stats().Peers != 0 || c.Stats().Links != 1 {
		t.Fatalf("new link: %d hellos, stats %+v", r.count(Link{3, IPv4}, true), c.Stats())
	}
	c.SetInterfaces(now, []Iface{eth0}, IPv4)
	if got := c.Links(); !slices.Equal(got, []Link{l4}) {
		t.Fatalf("IPv4 only: links %v", got)
	}
}

// A failed send is counted, not retried in a loop.
func TestSendErrorsCounted(t *testing.T) {
	c := NewCore(testConfig(11), failing{})
	c.SetInterfaces(t0, []Iface{eth0})
	for range 10 {
		dl, _ := c.NextDeadline()
		c.Tick(dl)
	}
	if st := c.Stats(); st.SendErrors == 0 || st.SentTotal() != 0 {
		t.Fatalf("stats %+v", st)
	}
}

type failing struct{}

func (failing) Send(Link, []byte) error { return fmt.Errorf("no route") }
func (failing) Introduce(Peer)          {}
