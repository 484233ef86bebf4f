package engine

import (
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/apt-p2p/apt-p2p/wire"
)

// memState is an in-memory StateStore.
type memState struct{ st *State }

func (m *memState) Load() (*State, error) { return m.st, nil }
func (m *memState) Save(s *State) error   { c := *s; m.st = &c; return nil }

func newTestCore(t *testing.T, mod func(*Config)) (*Core, *recordOutput) {
	t.Helper()
	cfg := testConfig()
	cfg.LocalOK = false
	if mod != nil {
		mod(&cfg)
	}
	out := &recordOutput{}
	c, err := New(cfg, out)
	if err != nil {
		t.Fatal(err)
	}
	return c, out
}

// External address: the IP most join replies report wins; private ones are
// ignored without LocalOK; interface addresses are the fallback (§2.14).
func TestExternalAddrMajority(t *testing.T) {
	c, out := newTestCore(t, nil)
	boots := []netip.AddrPort{
		netip.MustParseAddrPort("9.9.9.1:9977"), netip.MustParseAddrPort("9.9.9.2:9977"),
		netip.MustParseAddrPort("9.9.9.3:9977"), netip.MustParseAddrPort("9.9.9.4:9977"),
	}
	now := time.Unix(1000, 0)
	c.SetInterfaceAddrs([]netip.Addr{netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("192.168.1.5"), netip.MustParseAddr("8.8.4.4")})
	if a, ok := c.ExternalAddr(); !ok || a != netip.MustParseAddr("8.8.4.4") {
		t.Fatalf("interface fallback: %v %v", a, ok)
	}
	c.Start(now, boots)
	seen := map[netip.AddrPort]string{
		boots[0]: "1.2.3.4:5000", boots[1]: "1.2.3.4:5000", boots[2]: "5.6.7.8:5000", boots[3]: "10.0.0.1:5000",
	}
	var m wire.Msg
	for _, p := range out.take() {
		if err := m.Parse(p.pkt); err != nil || m.Method != wire.MethodJoin {
			continue
		}
		var id wire.ID
		copy(id[:], p.to.String())
		reply := wire.AppendJoinResp(nil, m.TID, id, netip.MustParseAddrPort(seen[p.to]))
		c.HandlePacket(now.Add(10*time.Millisecond), p.to, reply)
	}
	if a, ok := c.ExternalAddr(); !ok || a != netip.MustParseAddr("1.2.3.4") {
		t.Fatalf("external address %v %v, want 1.2.3.4", a, ok)
	}
}

// A node that sends us a request enters the table only after answering our
// ping (§2.10; §8.2 #4), and is pinged again MIN_PING_INTERVAL later.
func TestUncontactedNeedsPing(t *testing.T) {
	c, out := newTestCore(t, func(c *Config) { c.BootstrapNode = true })
	now := time.Unix(1000, 0)
	c.Start(now, nil)
	c.Tick(now.Add(5 * time.Second))
	if !c.Joined() {
		t.Fatal("bootstrap node not joined")
	}
	out.take()
	peer := netip.MustParseAddrPort("8.8.8.8:6881")
	var pid, tid wire.ID
	copy(pid[:], "peer-node-id-0000000")
	now = now.Add(6 * time.Second)
	c.HandlePacket(now, peer, wire.AppendPing(nil, tid, pid))
	sent := out.take()
	if len(sent) != 2 {
		t.Fatalf("sent %d datagrams, want the pong and a verification ping", len(sent))
	}
	if c.Table().Len() != 0 {
		t.Fatal("uncontacted node entered the table")
	}
	var m wire.Msg
	if err := m.Parse(sent[1].pkt); err != nil || m.Method != wire.MethodPing || sent[1].to != peer {
		t.Fatalf("second datagram is not a ping to the peer: %q", sent[1].pkt)
	}
	// No answer: it never enters.
	c.Tick(now.Add(3 * time.Second))
	if c.Table().Len() != 0 {
		t.Fatal("silent node entered the table")
	}
	// It asks again and this time answers our ping.
	now = now.Add(4 * time.Second)
	c.HandlePacket(now, peer, wire.AppendPing(nil, tid, pid))
	sent = out.take()
	if err := m.Parse(sent[len(sent)-1].pkt); err != nil || m.Method != wire.MethodPing {
		t.Fatal("no verification ping")
	}
	c.HandlePacket(now.Add(50*time.Millisecond), peer, wire.AppendIDResp(nil, m.TID, pid))
	if c.Table().Len() != 1 {
		t.Fatal("verified node not in the table")
	}
	// The re-ping comes MIN_PING_INTERVAL later.
	out.take()
	c.Tick(now.Add(14 * time.Minute))
	for _, p := range out.take() {
		if p.to == peer {
			t.Fatal("re-ping too early")
		}
	}
	c.Tick(now.Add(15*time.Minute + time.Second))
	found := false
	for _, p := range out.take() {
		if p.to == peer && m.Parse(p.pkt) == nil && m.Method == wire.MethodPing {
			found = true
		}
	}
	if !found {
		t.Fatal("no re-ping after MIN_PING_INTERVAL")
	}
}

// Checkpoints rotate tokens (a token survives two rotations, not three),
// expire values after KEY_EXPIRE and save the ID and table.
func TestCheckpoint(t *testing.T) {
	ms := &memState{}
	c, _ := newTestCore(t, func(cfg *Config) {
		cfg.BootstrapNode = true
		cfg.State = ms
		cfg.KeyExpire = time.Hour
	})
	now := time.Unix(1000, 0)
	c.Start(now, nil)
	ip := netip.MustParseAddr("8.8.8.8")
	tok := c.tok.current(ip)
	key := sha1Key("k")
	if err := c.store.put(key, []byte("v"), ip, now); err != nil {
		t.Fatal(err)
	}
	c.table.Insert(kbucketNode(sha1Key("n"), netip.MustParseAddrPort("8.8.8.8:1")), true, now)
	// First checkpoint at 60 s, then every 5 min ±10%.
	c.Tick(now.Add(61 * time.Second))
	if ms.st == nil || ms.st.ID != c.ID() || len(ms.st.Nodes) != 1 {
		t.Fatalf("state not saved: %+v", ms.st)
	}
	if !c.tok.valid(tok, ip) {
		t.Fatal("token invalid after one rotation")
	}
	c.Tick(now.Add(61*time.Second + 5*time.Minute + 31*time.Second))
	if !c.tok.valid(tok, ip) {
		t.Fatal("token invalid after two rotations")
	}
	if c.store.count(key) != 1 {
		t.Fatal("value expired early")
	}
	c.Tick(now.Add(61*time.Second + 10*time.Minute + 62*time.Second))
	if c.tok.valid(tok, ip) {
		t.Fatal("token still valid after three rotations")
	}
	c.Tick(now.Add(time.Hour + 10*time.Minute))
	if c.store.count(key) != 0 || c.store.nvalues != 0 || len(c.store.perIP) != 0 {
		t.Fatal("value not expired after KEY_EXPIRE")
	}
}

// After Close nothing is processed (§8.2 #5) and pending operations fail.
func TestNoProcessingAfterClose(t *testing.T) {
	c, out := newTestCore(t, func(cfg *Config) { cfg.BootstrapNode = true })
	now := time.Unix(1000, 0)
	c.Start(now, nil)
	c.Tick(now.Add(time.Second))
	var got error
	c.FindNode(now, sha1Key("x"), func(r Result) { got = r.Err })
	c.Close()
	out.take()
	var tid, pid wire.ID
	c.HandlePacket(now, netip.MustParseAddrPort("8.8.8.8:1"), wire.AppendPing(nil, tid, pid))
	c.Tick(now.Add(time.Hour))
	if len(out.take()) != 0 {
		t.Fatal("closed core sent datagrams")
	}
	c.Get(now, sha1Key("x"), func([]byte) {}, func(r Result) { got = r.Err })
	if got != ErrClosed {
		t.Fatalf("get after close: %v", got)
	}
}

// Requests from many new sources (a spoofed flood) do not turn into as many
// pings: verifications in flight are bounded. IPv6 sources are dropped.
func TestVerificationBounded(t *testing.T) {
	c, out := newTestCore(t, func(cfg *Config) { cfg.BootstrapNode = true })
	now := time.Unix(1000, 0)
	c.Start(now, nil)
	c.Tick(now.Add(2 * time.Second))
	out.take()
	var m wire.Msg
	for i := 0; i < 5000; i++ {
		var id, tid wire.ID
		id[0], id[1], id[2] = byte(i), byte(i>>8), 0x5a
		from := netip.AddrPortFrom(netip.AddrFrom4([4]byte{8, byte(i >> 8), byte(i), 1}), 6881)
		c.HandlePacket(now.Add(2*time.Second), from, wire.AppendPing(nil, tid, id))
	}
	pings := 0
	for _, p := range out.take() {
		if m.Parse(p.pkt) == nil && m.Y == 'q' {
			pings++
		}
	}
	if pings > maxVerifying {
		t.Fatalf("%d verification pings for 5000 new sources, bound %d", pings, maxVerifying)
	}
	if c.Stats(now).VerifySkipped == 0 {
		t.Fatal("nothing skipped")
	}
	var id, tid wire.ID
	c.HandlePacket(now, netip.MustParseAddrPort("[2001:db8::1]:6881"), wire.AppendPing(nil, tid, id))
	if c.Stats(now).Dropped[DropNotIPv4] != 1 || len(out.take()) != 0 {
		t.Fatal("IPv6 datagram not dropped")
	}
}

// FileState round-trips and replaces the file atomically; a corrupt file is
// an error, a missing one is not.
func TestFileState(t *testing.T) {
	dir := t.TempDir()
	fs := FileState{Dir: dir}
	if st, err := fs.Load(); st != nil || err != nil {
		t.Fatalf("empty dir: %v %v", st, err)
	}
	want := &State{ID: sha1Key("me"), Nodes: []wire.Node{
		{ID: sha1Key("a"), Addr: netip.MustParseAddrPort("1.2.3.4:9977")},
		{ID: sha1Key("b"), Addr: netip.MustParseAddrPort("5.6.7.8:1")},
	}}
	if err := fs.Save(want); err != nil {
		t.Fatal(err)
	}
	got, err := fs.Load()
	if err != nil || got.ID != want.ID || len(got.Nodes) != 2 || got.Nodes[1] != want.Nodes[1] {
		t.Fatalf("round trip: %+v %v", got, err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Fatalf("%d files in the state dir, want 1 (no temporary left)", len(entries))
	}
	os.WriteFile(filepath.Join(dir, stateFile), []byte("{not json"), 0o644)
	if _, err := fs.Load(); err == nil {
		t.Fatal("corrupt state accepted")
	}
}

// Our own values are part of a get even when closer nodes are in the table
// (regression: the pipelined get looked at the first candidate, not at us).
func TestGetIncludesLocalValues(t *testing.T) {
	for _, pipeline := range []bool{true, false} {
		c, _ := newTestCore(t, func(cfg *Config) { cfg.BootstrapNode = true; cfg.PipelineGets = pipeline })
		now := time.Unix(1000, 0)
		c.Start(now, nil)
		c.Tick(now.Add(2 * time.Second))
		key := sha1Key("mine")
		near := key
		near[19] ^= 1 // closer to the key than we are
		c.table.Insert(kbucketNode(near, netip.MustParseAddrPort("8.8.8.8:1")), true, now)
		c.store.put(key, []byte("local"), netip.Addr{}, now)
		var got []string
		done := false
		c.Get(now, key, func(v []byte) { got = append(got, string(v)) }, func(Result) { done = true })
		for i := 0; i < 50 && !done; i++ {
			now = now.Add(100 * time.Millisecond)
			c.Tick(now)
		}
		if !done || len(got) != 1 || got[0] != "local" {
			t.Fatalf("pipeline=%v: done %v, values %q", pipeline, done, got)
		}
	}
}

func TestVersionSuffix(t *testing.T) {
	if got := VersionSuffix(0, 1, 5); got != "A015" {
		t.Fatalf("VersionSuffix(0, 1, 5) = %q", got)
	}
	if got := VersionSuffix(1, 10, 63, 64); got != "A1A-0" {
		t.Fatalf("VersionSuffix(1, 10, 63, 64) = %q", got)
	}
}

// With LocalOK (a LAN), a machine's one real address is its contact: its
// loopback and link-local addresses, which every machine has, do not count.
func TestExternalAddrLANInterface(t *testing.T) {
	c, _ := newTestCore(t, func(c *Config) { c.LocalOK = true })
	c.SetInterfaceAddrs([]netip.Addr{netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("::1"),
		netip.MustParseAddr("fe80::1"), netip.MustParseAddr("10.240.1.11")})
	if a, ok := c.ExternalAddr(); !ok || a != netip.MustParseAddr("10.240.1.11") {
		t.Fatalf("interface fallback on a LAN: %v %v", a, ok)
	}
}
