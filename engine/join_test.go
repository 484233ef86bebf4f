package engine

import (
	"bytes"
	"net"
	"net/netip"
	"strconv"
	"testing"
	"time"

	"github.com/apt-p2p/apt-p2p/wire"
)

// freeAddr returns a loopback UDP address nobody listens on (yet).
func freeAddr(t *testing.T) netip.AddrPort {
	t.Helper()
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	a := c.LocalAddr().(*net.UDPAddr).AddrPort()
	c.Close()
	return a
}

// §6.8 test_failed_join: B joins while A is down; A starts later; B's
// re-join (exponential backoff) reaches it.
func TestFailedJoinRejoin(t *testing.T) {
	aAddr := freeAddr(t)
	cfg := testConfig()
	cfg.RejoinInitial = 300 * time.Millisecond
	b := startNode(t, cfg, aAddr)
	time.Sleep(1500 * time.Millisecond) // first attempt fails at ~1 s (2 × RTO for an unknown node)
	acfg := testConfig()
	acfg.BootstrapNode = true
	startNodeAt(t, acfg, aAddr.String())
	mustJoin(t, b)
	s := b.Stats()
	if s.JoinFailures < 1 {
		t.Fatalf("join failures = %d, want ≥ 1", s.JoinFailures)
	}
	if s.Nodes != 1 {
		t.Fatalf("B holds %d nodes", s.Nodes)
	}
}

// §6.8 test_timeout_retransmit with the classic profile scaled down: sends
// at 0, 0.3, 0.9 s, failure at 1.4 s; A starts at 0.5 s, so the
// retransmitted join (same TID) is answered and the first attempt succeeds.
func TestTimeoutRetransmitClassic(t *testing.T) {
	aAddr := freeAddr(t)
	cfg := testConfig()
	cfg.Profile = ProfileClassic
	// Sends at 0, 1 and 3 s, failure at 4.5 s; A starts at 1.5 s, so only the
	// retransmission at 3 s can be answered, with a margin of 1.5 s on each side
	// for a loaded machine.
	cfg.KRPCInitialDelay = time.Second
	cfg.KRPCTimeout = 4500 * time.Millisecond
	b := startNode(t, cfg, aAddr)
	time.Sleep(1500 * time.Millisecond)
	acfg := testConfig()
	acfg.BootstrapNode = true
	a := startNodeAt(t, acfg, aAddr.String())
	mustJoin(t, b)
	s := b.Stats()
	if s.JoinFailures != 0 {
		t.Fatalf("join failed %d times; the retransmission should have been answered", s.JoinFailures)
	}
	if s.RPC[wire.MethodJoin].Retransmits < 1 {
		t.Fatal("no join retransmission")
	}
	// Normally only the join sent at 3 s reaches A; a loaded machine may
	// delay the 1 s one past A's start, never make it zero.
	if got := a.Stats().RPC[wire.MethodJoin].Received; got < 1 || got > 2 {
		t.Fatalf("A received %d joins, want 1", got)
	}
}

// The classic schedule itself: sends at 0, 2, 6 s and failure at 9 s, on a
// virtual clock.
func TestClassicSchedule(t *testing.T) {
	cfg := testConfig()
	cfg.Profile = ProfileClassic
	cfg.RejoinInitial = 20 * time.Second
	out := &recordOutput{}
	c, err := New(cfg, out)
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Unix(1000, 0)
	dead := netip.MustParseAddrPort("127.0.0.1:9")
	c.Start(t0, []netip.AddrPort{dead})
	var first []byte
	for now := t0; now.Before(t0.Add(20 * time.Second)); now = now.Add(100 * time.Millisecond) {
		c.Tick(now)
		for _, p := range out.take() {
			if first == nil {
				first = p.pkt
			} else if !bytes.Equal(p.pkt, first) {
				t.Fatalf("retransmission at %v differs from the first datagram:\n%q\n%q", now.Sub(t0), p.pkt, first)
			}
			out.times = append(out.times, now.Sub(t0))
		}
	}
	want := []time.Duration{0, 2 * time.Second, 6 * time.Second}
	if len(out.times) < 3 || out.times[0] != want[0] || out.times[1] != want[1] || out.times[2] != want[2] {
		t.Fatalf("sends at %v, want %v then a re-join", out.times, want)
	}
	if f := c.Stats(t0).RPC[wire.MethodJoin]; f.Failed < 1 || f.AvgFailed() != 9*time.Second {
		t.Fatalf("join failed %d times after %v, want after 9s", f.Failed, f.AvgFailed())
	}
	// The next attempt starts after the 20 s backoff: at 9 + 20 = 29 s.
	if len(out.times) > 3 {
		t.Fatalf("re-join too early: %v", out.times)
	}
}

type sentPacket struct {
	to  netip.AddrPort
	pkt []byte
}

// recordOutput keeps copies of what the core sends.
type recordOutput struct {
	pkts  []sentPacket
	times []time.Duration
}

func (o *recordOutput) Send(to netip.AddrPort, pkt []byte) {
	o.pkts = append(o.pkts, sentPacket{to, append([]byte(nil), pkt...)})
}

func (o *recordOutput) take() []sentPacket {
	p := o.pkts
	o.pkts = nil
	return p
}

// Bootstrap entries may be host names; they are resolved off the event loop.
func TestBootstrapByName(t *testing.T) {
	cfg := testConfig()
	cfg.BootstrapNode = true
	a := startNode(t, cfg)
	mustJoin(t, a)
	b, err := Start(Options{Config: testConfig(), Listen: "127.0.0.1:0",
		Bootstrap: []string{"localhost:" + strconv.Itoa(int(a.Addr().Port()))}})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	mustJoin(t, b)
	if tableLen(b) != 1 {
		t.Fatalf("b knows %d nodes", tableLen(b))
	}
}

// Issue 11: a daemon started before its bootstrap peer reported "not
// joined" for over 30 s after the peer came up (re-join backoff from 20 s).
// With the default backoff (1 s, doubling, capped at RejoinMax) it joins a
// few seconds after, on the virtual clock.
func TestJoinRetriesSoonAfterBootstrapComesUp(t *testing.T) {
	cfg := Default()
	cfg.Validate = nil
	out := &recordOutput{}
	c, err := New(cfg, out)
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Unix(1000, 0)
	boot := netip.MustParseAddrPort("9.9.9.9:9977")
	var bootID wire.ID
	copy(bootID[:], "bootstrap-node-id-00")
	c.Start(t0, []netip.AddrPort{boot})
	up := t0.Add(30 * time.Second)
	var joinedAt time.Time
	attempts := 0
	var m wire.Msg
	for now := t0; now.Before(t0.Add(5 * time.Minute)); now = now.Add(50 * time.Millisecond) {
		c.Tick(now)
		for _, p := range out.take() {
			if m.Parse(p.pkt) != nil || m.Y != 'q' || p.to != boot {
				continue
			}
			if m.Method == wire.MethodJoin {
				attempts++
			}
			if now.Before(up) {
				continue // the bootstrap peer is not running yet
			}
			switch m.Method {
			case wire.MethodJoin:
				c.HandlePacket(now, boot, wire.AppendJoinResp(nil, m.TID, bootID, netip.MustParseAddrPort("8.8.4.4:9977")))
			case wire.MethodFindNode:
				c.HandlePacket(now, boot, wire.AppendFindNodeResp(nil, m.TID, bootID, nil, wire.ID{}))
			}
		}
		if c.Joined() {
			joinedAt = now
			break
		}
	}
	if joinedAt.IsZero() {
		t.Fatal("never joined")
	}
	if wait := joinedAt.Sub(up); wait > 10*time.Second {
		t.Fatalf("joined %v after the bootstrap peer came up (%d join attempts before), want within 10 s", wait, attempts)
	}
	if attempts < 4 {
		t.Fatalf("%d join attempts in the first 30 s, want a backoff starting near 1 s", attempts)
	}
}
