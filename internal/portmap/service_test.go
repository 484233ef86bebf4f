package portmap

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apt-p2p/apt-p2p/internal/clock"
)

// fakeGateway is a router in memory: it grants what it is told to and
// records every request.
type fakeGateway struct {
	mu     sync.Mutex
	addr   netip.Addr
	ext    netip.Addr
	offset uint16        // external = requested + offset (0: as asked)
	lease  time.Duration // granted (0: as asked)
	err    error         // every request fails with it
	calls  []string
	mapped map[Port]uint16
}

func newFakeGateway() *fakeGateway {
	return &fakeGateway{addr: netip.MustParseAddr("10.240.9.1"), ext: netip.MustParseAddr("10.240.8.2"), mapped: map[Port]uint16{}}
}

func (g *fakeGateway) Protocol() string { return "FAKE" }
func (g *fakeGateway) Addr() netip.Addr { return g.addr }

func (g *fakeGateway) ExternalAddr() (netip.Addr, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.calls = append(g.calls, "ext")
	return g.ext, g.err
}

func (g *fakeGateway) Map(p Proto, internal, external uint16, lease time.Duration) (uint16, time.Duration, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.calls = append(g.calls, fmt.Sprintf("map %s/%d→%d %s", p, internal, external, lease))
	if g.err != nil {
		return 0, 0, g.err
	}
	if g.lease != 0 {
		lease = g.lease
	}
	if _, ok := g.mapped[Port{p, internal}]; !ok {
		external += g.offset
	}
	g.mapped[Port{p, internal}] = external
	return external, lease, nil
}

func (g *fakeGateway) Unmap(p Proto, internal, external uint16) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.calls = append(g.calls, fmt.Sprintf("unmap %s/%d→%d", p, internal, external))
	if g.err != nil {
		return g.err
	}
	delete(g.mapped, Port{p, internal})
	return nil
}

// take returns the calls since the last take.
func (g *fakeGateway) take() []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	c := g.calls
	g.calls = nil
	return c
}

func (g *fakeGateway) fail(err error) {
	g.mu.Lock()
	g.err = err
	g.mu.Unlock()
}

// logCount counts log records by level.
type logCount struct {
	mu sync.Mutex
	n  map[slog.Level]int
}

func (l *logCount) Enabled(context.Context, slog.Level) bool { return true }
func (l *logCount) Handle(_ context.Context, r slog.Record) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.n[r.Level]++
	return nil
}
func (l *logCount) WithAttrs([]slog.Attr) slog.Handler { return l }
func (l *logCount) WithGroup(string) slog.Handler      { return l }

func (l *logCount) get(lv slog.Level) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.n[lv]
}

var (
	tcp9977 = Port{TCP, 9977}
	udp9977 = Port{UDP, 9977}
)

func testService(g *fakeGateway, clk clock.Clock) (*Service, *logCount, *int) {
	lc := &logCount{n: map[slog.Level]int{}}
	opens := 0
	s := newService(Config{
		Open: func() (Gateway, error) {
			opens++
			if g == nil {
				return nil, ErrNoGateway
			}
			return g, nil
		},
		Ports:  []Port{tcp9977, udp9977},
		Clock:  clk,
		Logger: slog.New(lc),
	})
	return s, lc, &opens
}

// Each lease is renewed at half the life granted, keeping the external
// port the router gave.
func TestRenewAtHalfLife(t *testing.T) {
	clk := clock.NewFake(time.Unix(1e9, 0))
	g := newFakeGateway()
	s, lc, _ := testService(g, clk)

	if w := s.round(); w != 30*time.Minute {
		t.Fatalf("first round: next in %s, want 30m (half the 1 h lease)", w)
	}
	want := []string{"ext", "map tcp/9977→9977 1h0m0s", "map udp/9977→9977 1h0m0s"}
	if c := g.take(); !slices.Equal(c, want) {
		t.Fatalf("first round asked %q, want %q", c, want)
	}
	st := s.Status()
	if p, ok := st.Mapped(tcp9977); !ok || p != 9977 || st.External != g.ext || st.Gateway != g.addr || len(st.Mappings) != 2 {
		t.Fatalf("status %+v", st)
	}
	if lc.get(slog.LevelInfo) != 1 {
		t.Errorf("%d info records, want one (ports mapped)", lc.get(slog.LevelInfo))
	}

	// The router grants 10 minutes at the renewal: the next one comes after 5.
	clk.Advance(30 * time.Minute)
	g.lease = 10 * time.Minute
	if w := s.round(); w != 5*time.Minute {
		t.Fatalf("renewal: next in %s, want 5m", w)
	}
	if c := g.take(); len(c) != 3 {
		t.Fatalf("renewal asked %q, want the address and both ports", c)
	}
	if st := s.Status(); st.Mappings[0].Expires != clk.Now().Add(10*time.Minute) {
		t.Errorf("expiry %s, want 10 min from now", st.Mappings[0].Expires)
	}
	if lc.get(slog.LevelInfo) != 1 || lc.get(slog.LevelWarn) != 0 {
		t.Errorf("a renewal logged: %v", lc.n)
	}
}

// A router that gives another external port: the service reports it and
// asks for the same one at renewals.
func TestOtherExternalPort(t *testing.T) {
	clk := clock.NewFake(time.Unix(1e9, 0))
	g := newFakeGateway()
	g.offset = 1000
	s, _, _ := testService(g, clk)
	var changes []Status
	s.cfg.OnChange = func(st Status) { changes = append(changes, st) }
	s.round()
	g.take()
	if p, ok := s.Status().Mapped(udp9977); !ok || p != 10977 {
		t.Fatalf("UDP mapped to %d (%v), want 10977", p, ok)
	}
	clk.Advance(30 * time.Minute)
	s.round()
	want := []string{"ext", "map tcp/9977→10977 1h0m0s", "map udp/9977→10977 1h0m0s"}
	if c := g.take(); !slices.Equal(c, want) {
		t.Fatalf("renewal asked %q, want %q", c, want)
	}
	if len(changes) != 1 {
		t.Errorf("%d changes reported, want 1 (a renewal that changes nothing is none)", len(changes))
	}
}

// A router that does not answer costs one request per round, rounds back
// off exponentially up to MaxRetry, and the failure is logged once (again
// only when the error changes).
func TestBackoff(t *testing.T) {
	clk := clock.NewFake(time.Unix(1e9, 0))
	g := newFakeGateway()
	g.fail(errors.New("timed out"))
	s, lc, opens := testService(g, clk)
	var waits []time.Duration
	for range 9 {
		w := s.round()
		waits = append(waits, w)
		clk.Advance(w)
	}
	want := []time.Duration{time.Minute, 2 * time.Minute, 4 * time.Minute, 8 * time.Minute, 16 * time.Minute,
		32 * time.Minute, time.Hour, time.Hour, time.Hour}
	if !slices.Equal(waits, want) {
		t.Fatalf("waits %v, want %v", waits, want)
	}
	if c := g.take(); len(c) != 9 {
		t.Errorf("%d requests in 9 rounds, want one each: %q", len(c), c)
	}
	if *opens != 9 {
		t.Errorf("the gateway was looked up %d times in 9 failed rounds, want 9 (a new route is followed)", *opens)
	}
	if lc.get(slog.LevelWarn) != 1 {
		t.Errorf("%d warnings for one error repeated, want 1", lc.get(slog.LevelWarn))
	}
	st := s.Status()
	if st.Failures != 9 || st.Err == "" || len(st.Mappings) != 0 || !strings.Contains(st.Line(), "timed out") {
		t.Errorf("status %+v (%s)", st, st.Line())
	}

	g.fail(errors.New("refused"))
	s.round()
	if lc.get(slog.LevelWarn) != 2 {
		t.Errorf("a new error was not logged: %d warnings", lc.get(slog.LevelWarn))
	}

	// The router comes back: mapped at the next round, backoff forgotten.
	g.fail(nil)
	if w := s.round(); w != 30*time.Minute {
		t.Errorf("next in %s after success, want 30m", w)
	}
	if st := s.Status(); st.Failures != 0 || st.Err != "" || len(st.Mappings) != 2 {
		t.Errorf("after success: %+v", st)
	}
	g.fail(errors.New("timed out"))
	if w := s.round(); w > 15*time.Minute {
		// Mappings are valid for 1 h: the first retry comes within half that.
		t.Errorf("first retry after a failed renewal in %s", w)
	}
}

// No default route: the same backoff, nothing sent.
func TestNoGateway(t *testing.T) {
	clk := clock.NewFake(time.Unix(1e9, 0))
	s, lc, _ := testService(nil, clk)
	if w := s.round(); w != time.Minute {
		t.Errorf("next in %s, want 1m", w)
	}
	if w := s.round(); w != 2*time.Minute {
		t.Errorf("next in %s, want 2m", w)
	}
	if st := s.Status(); !strings.Contains(st.Err, "no IPv4 default route") || lc.get(slog.LevelWarn) != 1 {
		t.Errorf("status %+v, %d warnings", st, lc.get(slog.LevelWarn))
	}
}

// A renewal that fails keeps the mapping until its lease runs out, trying
// again at half the time left, then drops it and says so.
func TestFailedRenewal(t *testing.T) {
	clk := clock.NewFake(time.Unix(1e9, 0))
	g := newFakeGateway()
	s, _, _ := testService(g, clk)
	var last Status
	changes := 0
	s.cfg.OnChange = func(st Status) { last = st; changes++ }
	clk.Advance(s.round())
	g.take()
	g.fail(errors.New("timed out"))

	var waits []time.Duration
	for clk.Now().Before(time.Unix(1e9, 0).Add(time.Hour)) {
		if n := len(s.Status().Mappings); n != 2 {
			t.Fatalf("at %s: %d mappings before the lease ran out", clk.Now().Sub(time.Unix(1e9, 0)), n)
		}
		w := s.round()
		waits = append(waits, w)
		clk.Advance(w)
	}
	// The backoff (1, 2, 4, 8 min), then half the time left (7.5, 3.75,
	// ... min, at least 30 s): about ten tries in the half hour left.
	t.Logf("waits %v", waits)
	if len(waits) > 12 || waits[0] != time.Minute {
		t.Errorf("%d rounds while the lease ran out: %v", len(waits), waits)
	}
	s.round()
	if len(last.Mappings) != 0 || last.Err == "" || changes != 3 {
		t.Errorf("after the lease ran out: %+v, %d changes (want mapped, failed, expired)", last, changes)
	}
}

// The loop on a fake clock: mapped at start, renewed when the clock says,
// and Close deletes the mappings.
func TestServiceLoop(t *testing.T) {
	clk := clock.NewFake(time.Unix(1e9, 0))
	g := newFakeGateway()
	// settled waits until the loop made n requests and armed its timer
	// (synchronisation with its goroutine, not a timing assertion).
	settled := func(n int) {
		t.Helper()
		clk.WaitPending(1) // the loop arms its timer once the round's requests are made
		g.mu.Lock()
		got := len(g.calls)
		g.mu.Unlock()
		if got != n || clk.Pending() != 1 {
			t.Fatalf("the loop made %d requests, want %d; %d timers", got, n, clk.Pending())
		}
	}
	s := Start(Config{Open: func() (Gateway, error) { return g, nil }, Ports: []Port{tcp9977, udp9977}, Clock: clk})
	settled(3)
	if next, _ := clk.Next(); next != time.Unix(1e9, 0).Add(30*time.Minute) {
		t.Errorf("renewal due at %s", next)
	}
	g.take()
	clk.Advance(30 * time.Minute)
	settled(3)
	if c := g.take(); len(c) != 3 {
		t.Fatalf("renewal asked %q", c)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	want := []string{"unmap tcp/9977→9977", "unmap udp/9977→9977"}
	if c := g.take(); !slices.Equal(c, want) {
		t.Fatalf("Close asked %q, want %q", c, want)
	}
	if len(g.mapped) != 0 || len(s.Status().Mappings) != 0 {
		t.Errorf("left mapped: %v / %+v", g.mapped, s.Status())
	}
	if err := s.Close(); !errors.Is(err, ErrClosed) {
		t.Errorf("second Close: %v", err)
	}
}

func TestParseRoutes(t *testing.T) {
	// Two default routes (metrics 100 and 50), a gatewayless one, a LAN.
	const table = "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n" +
		"eth1\t00000000\t0101A8C0\t0003\t0\t0\t100\t00000000\t0\t0\t0\n" +
		"eth0\t00000000\t0100F00A\t0003\t0\t0\t50\t00000000\t0\t0\t0\n" +
		"tun0\t00000000\t00000000\t0001\t0\t0\t10\t00000000\t0\t0\t0\n" +
		"eth0\t0000F00A\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n"
	gw, err := ParseRoutes(strings.NewReader(table))
	if err != nil || gw != netip.MustParseAddr("10.240.0.1") {
		t.Fatalf("gateway %s, %v; want 10.240.0.1", gw, err)
	}
	_, err = ParseRoutes(strings.NewReader(table[:strings.Index(table, "eth1")] + "eth0\t0000F00A\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n"))
	if !errors.Is(err, ErrNoGateway) {
		t.Errorf("no default route: %v", err)
	}
}

// The status reads back from its JSON (apt-p2p status reads /stats.json).
func TestStatusJSON(t *testing.T) {
	clk := clock.NewFake(time.Unix(1e9, 0))
	g := newFakeGateway()
	g.offset = 3
	s, _, _ := testService(g, clk)
	s.round()
	st := s.Status()
	b, err := json.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	var back Status
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatalf("%v: %s", err, b)
	}
	if back.Line() != st.Line() || back.Mappings[1].Proto != UDP || !strings.Contains(st.Line(), "tcp 9977 → 10.240.8.2:9980") {
		t.Errorf("read back %q from %s, want %q", back.Line(), b, st.Line())
	}
	var p Proto
	if err := json.Unmarshal([]byte(`"sctp"`), &p); err == nil {
		t.Error("sctp read as a protocol")
	}
}

// The network is watched between rounds: a network that comes up after the
// daemon is mapped within WatchEvery, not after the retry backoff, and a move
// to another gateway maps there within WatchEvery, not at the next renewal.
func TestNetworkChangeMapsAgain(t *testing.T) {
	clk := clock.NewFake(time.Unix(1e9, 0))
	g1, g2 := newFakeGateway(), newFakeGateway()
	g2.addr = netip.MustParseAddr("10.240.19.1")
	var mu sync.Mutex
	var cur *fakeGateway // the network's router; nil: no network
	network := func() (*fakeGateway, error) {
		mu.Lock()
		defer mu.Unlock()
		if cur == nil {
			return nil, ErrNoGateway
		}
		return cur, nil
	}
	move := func(g *fakeGateway) { mu.Lock(); cur = g; mu.Unlock() }
	s := Start(Config{
		Open: func() (Gateway, error) {
			g, err := network()
			if err != nil {
				return nil, err
			}
			return g, nil
		},
		Watch: func() (netip.Addr, error) {
			g, err := network()
			if err != nil {
				return netip.Addr{}, err
			}
			return g.addr, nil
		},
		Ports: []Port{tcp9977, udp9977},
		Clock: clk,
	})
	defer s.Close()
	// step advances the virtual clock by d and waits for the loop to arm its
	// next timer (synchronisation with its goroutine, not a timing assertion).
	step := func(d time.Duration) {
		t.Helper()
		clk.WaitPending(1)
		clk.Advance(d)
		clk.WaitPending(1)
	}
	start := clk.Now()
	// No network: the retries back off (1, 2, 4, 8 min...).
	for s.Status().Failures < 4 {
		step(time.Minute)
		if clk.Now().Sub(start) > time.Hour {
			t.Fatalf("%d failures after an hour", s.Status().Failures)
		}
	}
	if st := s.Status(); st.Backoff < 8*time.Minute || len(st.Mappings) != 0 {
		t.Fatalf("without a network: %+v", st)
	}
	// The network comes up: mapped at the next watch, within a minute.
	move(g1)
	step(time.Minute)
	if st := s.Status(); len(st.Mappings) != 2 || st.Gateway != g1.addr || st.Err != "" {
		t.Fatalf("a minute after the network came up: %+v", st)
	}
	g1.take()
	// Nothing changes: the watch asks the routing table, not the router.
	step(time.Minute)
	if c := g1.take(); len(c) != 0 {
		t.Fatalf("a watch with no change asked the router %q", c)
	}
	// Another network: mapped on its router within a minute, although the
	// renewal is 29 minutes away.
	move(g2)
	step(time.Minute)
	st := s.Status()
	if len(st.Mappings) != 2 || st.Gateway != g2.addr || st.Err != "" {
		t.Fatalf("a minute after moving to another network: %+v", st)
	}
	if c := g2.take(); len(c) != 3 {
		t.Fatalf("the new router was asked %q, want its address and two mappings", c)
	}
}
