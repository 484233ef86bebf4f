package download

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/apt-p2p/apt-p2p/engine"
	"github.com/apt-p2p/apt-p2p/internal/clock"
	"github.com/apt-p2p/apt-p2p/internal/digest"
	"github.com/apt-p2p/apt-p2p/internal/fetch"
	"github.com/apt-p2p/apt-p2p/piecestore"
	"github.com/apt-p2p/apt-p2p/wire"
)

// These tests run in a synctest bubble: the Manager is given the system
// clock (clock.Real), which inside the bubble is virtual. Time moves only
// when every goroutine of the test waits, so a lookup deadline never fires
// while a lookup is still computing, and nothing sleeps for real.

// memDHT is an in-memory DHT shared by the Managers of a test: every
// operation is atomic, and claims are stamped in the order they are made, a
// microsecond apart (on a real DHT they land in the order of their stamps).
type memDHT struct {
	mu     sync.Mutex
	vals   map[wire.ID][][]byte
	stamp  time.Duration
	gets   int
	claims int
	block  chan struct{} // if set, Get waits for it (or ctx)
}

func newMemDHT() *memDHT { return &memDHT{vals: map[wire.ID][][]byte{}} }

func (d *memDHT) put(key wire.ID, v []byte) {
	for _, x := range d.vals[key] {
		if bytes.Equal(x, v) {
			return
		}
	}
	d.vals[key] = append(d.vals[key], append([]byte(nil), v...))
}

// values returns the values under key.
func (d *memDHT) values(key wire.ID) [][]byte {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([][]byte(nil), d.vals[key]...)
}

func (d *memDHT) Get(ctx context.Context, key wire.ID, onValue func([]byte)) (engine.Result, error) {
	d.mu.Lock()
	d.gets++
	block := d.block
	vals := append([][]byte(nil), d.vals[key]...)
	d.mu.Unlock()
	if block != nil {
		select {
		case <-block:
		case <-ctx.Done():
			return engine.Result{Err: ctx.Err()}, ctx.Err()
		}
	}
	for _, v := range vals {
		onValue(v)
	}
	return engine.Result{Values: len(vals)}, nil
}

func (d *memDHT) GetValues(ctx context.Context, key wire.ID) ([][]byte, error) {
	var out [][]byte
	_, err := d.Get(ctx, key, func(v []byte) { out = append(out, v) })
	return out, err
}

func (d *memDHT) Put(_ context.Context, key wire.ID, value []byte) (engine.Result, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.put(key, value)
	return engine.Result{Stored: 1}, nil
}

func (d *memDHT) Claim(_ context.Context, key wire.ID, build func(time.Time) []byte, _ time.Duration) (engine.Result, [][]byte, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.claims++
	d.stamp += time.Microsecond
	d.put(key, build(time.Now().Add(d.stamp)))
	vals := append([][]byte(nil), d.vals[key]...)
	return engine.Result{Stored: 1, Values: len(vals)}, vals, nil
}

// fakeFetcher stands in for fetch.Downloader: it records every job and fills
// the sink with content, saying that piece i came from supplier(i).
type fakeFetcher struct {
	content  []byte
	supplier func(nth, i int) string // who sends piece i in the nth job (from 0); nil: the mirror
	corrupt  func(nth, i int) bool   // send piece i of the nth job with a flipped byte
	hold     chan struct{}           // if set, jobs wait for it before moving bytes

	mu    sync.Mutex
	jobs  []*fetch.Job
	peers [][]fetch.Source // the sources each job received
	bans  map[string]time.Time
}

func (f *fakeFetcher) Fetch(ctx context.Context, job *fetch.Job) (fetch.Result, error) {
	f.mu.Lock()
	f.jobs = append(f.jobs, job)
	idx := len(f.jobs) - 1
	f.peers = append(f.peers, nil)
	f.mu.Unlock()
	var got []fetch.Source
	for src := range job.Peers { // the lookup closes it when it ends
		got = append(got, src)
	}
	f.mu.Lock()
	f.peers[idx] = got
	f.mu.Unlock()
	if f.hold != nil {
		<-f.hold
	}
	n := piecestore.NumPieces(job.Size)
	res := fetch.Result{BytesBySource: map[string]int64{}, PieceSources: make([]string, n)}
	for i := range n {
		lo, hi := int64(i)*fetch.PieceSize, min(int64(i+1)*fetch.PieceSize, job.Size)
		data := append([]byte(nil), f.content[lo:hi]...)
		if f.corrupt != nil && f.corrupt(idx, i) {
			data[0] ^= 0xff
		}
		src := job.Mirror.Addr
		if f.supplier != nil {
			src = f.supplier(idx, i)
		}
		res.PieceSources[i] = src
		if err := job.Sink.WritePiece(i, data, nil); err != nil {
			return res, fmt.Errorf("%w: %w", fetch.ErrSink, err)
		}
		res.BytesBySource[src] += hi - lo
		if src == job.Mirror.Addr {
			res.MirrorBytes += hi - lo
		} else {
			res.PeerBytes += hi - lo
		}
	}
	return res, ctx.Err()
}

func (f *fakeFetcher) BanFor(addr string, until time.Time, _ string) { f.Ban(addr, until) }

func (f *fakeFetcher) Ban(addr string, until time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.bans == nil {
		f.bans = map[string]time.Time{}
	}
	f.bans[addr] = until
}

func (f *fakeFetcher) Banned(addr string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	until, ok := f.bans[addr]
	return ok && time.Now().Before(until)
}

func (f *fakeFetcher) PieceString(context.Context, netip.AddrPort, wire.ID) ([]byte, error) {
	return nil, errors.New("no piece strings here")
}

func (f *fakeFetcher) lastJob() (*fetch.Job, []fetch.Source) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.jobs[len(f.jobs)-1], f.peers[len(f.peers)-1]
}

// content returns n random bytes and the digest an index would give them.
func content(t *testing.T, n int, seed uint64) ([]byte, digest.Set) {
	t.Helper()
	b := make([]byte, n)
	r := rand.New(rand.NewPCG(seed, seed))
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	sum := sha256.Sum256(b)
	d := digest.Set{Size: int64(n)}
	if err := d.Put(digest.SHA256, sum[:]); err != nil {
		t.Fatal(err)
	}
	return b, d
}

type rig struct {
	dht   *memDHT
	store *piecestore.Store
	fetch *fakeFetcher
	m     *Manager
	self  netip.AddrPort
}

// newRig makes a Manager on a fresh store, sharing dht (nil: a new one).
func newRig(t *testing.T, dht *memDHT, self string, data []byte, cfg Config) *rig {
	t.Helper()
	if dht == nil {
		dht = newMemDHT()
	}
	st, err := piecestore.Open(t.TempDir(), piecestore.Options{FlushInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	r := &rig{dht: dht, store: st, fetch: &fakeFetcher{content: data}, self: netip.MustParseAddrPort(self)}
	cfg.Clock = clock.Real // virtual in the bubble
	cfg.Contact = func() (netip.AddrPort, bool) { return r.self, true }
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	r.m = New(cfg, dht, st, r.fetch)
	t.Cleanup(func() {
		r.m.Close()
		st.Close()
	})
	return r
}

func request(d digest.Set) Request {
	return Request{Digest: d, Mirror: fetch.Source{Addr: "mirror.test:80", Path: "/debian/pool/x.deb", Mirror: true}, Path: "mirror.test:80/debian/pool/x.deb"}
}

// run starts req on r and waits for it to end.
func (r *rig) run(t *testing.T, req Request) *Flight {
	t.Helper()
	f, err := r.m.Start(req)
	if err != nil {
		t.Fatal(err)
	}
	<-f.Done()
	return f
}

// TestLoneDownloadLeads: nobody holds the file and nobody else is fetching
// it: the mirror starts at once (no wait), the download is claimed under the
// partial key while it runs, and announced under its key when stored.
func TestLoneDownloadLeads(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		data, d := content(t, 3*fetch.PieceSize+100, 1)
		r := newRig(t, nil, "10.240.0.1:9977", data, Config{Herd: true})
		f := r.run(t, request(d))
		synctest.Wait() // the announcement follows the end of the download
		job, peers := r.fetch.lastJob()
		if f.Role() != RoleLeader || job.MirrorDelay != 0 || job.Herd || len(peers) != 0 {
			t.Fatalf("role %s, mirror delay %v, herd %v, peers %v; want a leader using the mirror at once", f.Role(), job.MirrorDelay, job.Herd, peers)
		}
		if f.Failure() != nil || f.Source() != SourceMirror {
			t.Fatalf("failure %v, source %s", f.Failure(), f.Source())
		}
		if _, ok := r.store.Lookup(&d); !ok {
			t.Fatal("not stored")
		}
		key, _ := d.Key()
		var claim wire.PeerValue
		if vals := r.dht.values(wire.PartialKey(key)); len(vals) != 1 || claim.Parse(vals[0]) != nil || claim.Contact != r.self || claim.Claim == 0 {
			t.Fatalf("claims under the partial key: %q", vals)
		}
		var v wire.PeerValue
		if vals := r.dht.values(key); len(vals) != 1 || v.Parse(vals[0]) != nil || v.Contact != r.self || v.Claim != 0 || v.Form != wire.FormInline {
			t.Fatalf("announcement under the key: %q", vals)
		}
		if r.m.Counters.Leaders.Load() != 1 || r.m.Counters.MirrorBytes.Load() != d.Size {
			t.Errorf("counters: %d leaders, %d mirror bytes", r.m.Counters.Leaders.Load(), r.m.Counters.MirrorBytes.Load())
		}
	})
}

// TestHerdElectsOneLeader: eight daemons start the same download at the same
// moment. One leads (the mirror at once); every other one follows, with the
// earlier claimants as partial sources, the leader first, and the mirror only
// after HerdPatience.
func TestHerdElectsOneLeader(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		data, d := content(t, 200<<10, 2)
		dht := newMemDHT()
		cfg := Config{Herd: true, HerdPatience: 3 * time.Second}
		var rigs []*rig
		hold := make(chan struct{}) // nobody finishes before everyone has decided
		for i := range 8 {
			r := newRig(t, dht, fmt.Sprintf("10.240.0.%d:9977", 20-i), data, cfg)
			r.fetch.hold = hold
			rigs = append(rigs, r)
		}
		flights := make([]*Flight, len(rigs))
		for i, r := range rigs {
			f, err := r.m.Start(request(d))
			if err != nil {
				t.Fatal(err)
			}
			flights[i] = f
		}
		synctest.Wait()
		close(hold)
		for _, f := range flights {
			<-f.Done()
		}
		leaders := 0
		var leader netip.AddrPort
		for i, r := range rigs {
			job, peers := r.fetch.lastJob()
			switch flights[i].Role() {
			case RoleLeader:
				leaders++
				leader = r.self
				if job.Herd || job.MirrorDelay != 0 {
					t.Errorf("leader %v: herd %v, mirror delay %v", r.self, job.Herd, job.MirrorDelay)
				}
			case RoleFollower:
				if !job.Herd || job.MirrorDelay != cfg.HerdPatience || len(peers) == 0 || !peers[0].Partial {
					t.Errorf("follower %v: herd %v, mirror delay %v, sources %+v", r.self, job.Herd, job.MirrorDelay, peers)
				}
			default:
				t.Errorf("daemon %v: role %s", r.self, flights[i].Role())
			}
		}
		if leaders != 1 {
			key, _ := d.Key()
			for _, v := range dht.values(wire.PartialKey(key)) {
				var pv wire.PeerValue
				pv.Parse(v)
				t.Logf("claim %v at %d", pv.Contact, pv.Claim)
			}
			for i, r := range rigs {
				t.Logf("%v: %s", r.self, flights[i].Role())
			}
			t.Fatalf("%d leaders, want 1", leaders)
		}
		// Every follower's first source is a claimant earlier than itself
		// (its parent in the crowd's random tree).
		key, _ := d.Key()
		at := map[netip.AddrPort]int64{}
		for _, v := range dht.values(wire.PartialKey(key)) {
			var pv wire.PeerValue
			if pv.Parse(v) == nil {
				at[pv.Contact] = pv.Claim
			}
		}
		for i, r := range rigs {
			if flights[i].Role() != RoleFollower {
				continue
			}
			_, peers := r.fetch.lastJob()
			parent := netip.MustParseAddrPort(peers[0].Addr)
			if pa, ok := at[parent]; !ok || pa >= at[r.self] {
				t.Errorf("follower %v (claimed at %d) follows %v (claimed at %d, known %v)", r.self, at[r.self], parent, pa, ok)
			}
			if peers[0].Addr != leader.String() && (len(peers) < 2 || peers[1].Addr != leader.String()) {
				t.Errorf("follower %v: the leader is not its first stand-in: %+v", r.self, peers)
			}
		}
	})
}

// TestUnreachableDoesNotClaim: a daemon that peers cannot reach stores no
// claim (its followers could not fetch from it); it reads the crowd's claims
// and follows one, or leads without claiming when there is none.
func TestUnreachableDoesNotClaim(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		data, d := content(t, 1000, 10)
		r := newRig(t, nil, "10.240.0.5:9977", data, Config{Herd: true})
		r.m.cfg.Reachable = func() bool { return false }
		key, _ := d.Key()
		if f := r.run(t, request(d)); f.Role() != RoleLeader || r.dht.claims != 0 || len(r.dht.values(wire.PartialKey(key))) != 0 {
			t.Fatalf("alone: role %s, %d claims stored", f.Role(), r.dht.claims)
		}
		data2, d2 := content(t, 1000, 11)
		r.fetch.content = data2
		key2, _ := d2.Key()
		leader := netip.MustParseAddrPort("10.240.0.9:9977")
		r.dht.put(wire.PartialKey(key2), wire.AppendPeerValue(nil, &wire.PeerValue{Contact: leader, Claim: time.Now().UnixMicro()}))
		f := r.run(t, request(d2))
		if _, peers := r.fetch.lastJob(); f.Role() != RoleFollower || len(peers) != 1 || peers[0].Addr != leader.String() || r.dht.claims != 0 {
			t.Fatalf("in a crowd: role %s, sources %+v, %d claims stored", f.Role(), peers, r.dht.claims)
		}
	})
}

// TestHerdOff: with Herd off no claim is made and a lone download leads.
func TestHerdOff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		data, d := content(t, 1000, 3)
		r := newRig(t, nil, "10.240.0.1:9977", data, Config{})
		f := r.run(t, request(d))
		if r.dht.claims != 0 || f.Role() != RoleLeader {
			t.Fatalf("%d claims, role %s", r.dht.claims, f.Role())
		}
	})
}

// TestCompleteHoldersFirst: when the lookup finds a complete holder, the
// download fetches from it and the mirror waits the adaptive delay, even if
// an earlier claim exists.
func TestCompleteHoldersFirst(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		data, d := content(t, 1000, 4)
		r := newRig(t, nil, "10.240.0.1:9977", data, Config{Herd: true, MirrorDelay: 800 * time.Millisecond})
		key, _ := d.Key()
		holder := netip.MustParseAddrPort("10.240.0.9:9977")
		r.dht.put(key, wire.AppendPeerValue(nil, &wire.PeerValue{Contact: holder}))
		f := r.run(t, request(d))
		job, peers := r.fetch.lastJob()
		if f.Role() != RolePeers || job.MirrorDelay != 800*time.Millisecond || job.Herd || len(peers) != 1 || peers[0].Addr != holder.String() || peers[0].Partial {
			t.Fatalf("role %s, delay %v, herd %v, peers %+v", f.Role(), job.MirrorDelay, job.Herd, peers)
		}
	})
}

// TestStaleOrBannedClaimsNotFollowed: claims older than ClaimWindow, and
// claims of banned peers, do not make a download follow.
func TestStaleOrBannedClaimsNotFollowed(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		data, d := content(t, 1000, 5)
		r := newRig(t, nil, "10.240.0.1:9977", data, Config{Herd: true, ClaimWindow: time.Minute})
		key, _ := d.Key()
		old := netip.MustParseAddrPort("10.240.0.7:9977")
		bad := netip.MustParseAddrPort("10.240.0.8:9977")
		r.dht.put(wire.PartialKey(key), wire.AppendPeerValue(nil, &wire.PeerValue{Contact: old, Claim: time.Now().Add(-2 * time.Minute).UnixMicro()}))
		r.dht.put(wire.PartialKey(key), wire.AppendPeerValue(nil, &wire.PeerValue{Contact: bad, Claim: time.Now().Add(-time.Second).UnixMicro()}))
		r.fetch.Ban(bad.String(), time.Now().Add(time.Hour))
		if f := r.run(t, request(d)); f.Role() != RoleLeader {
			t.Fatalf("role %s, want leader", f.Role())
		}
	})
}

// TestMismatchBansOnlyTheLiar: a download whose pieces came from three peers
// fails its whole-file hash; every reader is cut, the daemon refetches from
// the mirror at once, and when that copy is verified only the peer whose
// piece differed is banned — not the honest ones (which, without piece
// hashes, could not be told apart before).
func TestMismatchBansOnlyTheLiar(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		data, d := content(t, 3*fetch.PieceSize, 6)
		r := newRig(t, nil, "10.240.0.1:9977", data, Config{Herd: true})
		peers := []string{"10.240.0.2:9977", "10.240.0.3:9977", "10.240.0.4:9977"}
		r.fetch.supplier = func(nth, i int) string {
			if nth > 0 {
				return "mirror.test:80"
			}
			return peers[i]
		}
		r.fetch.corrupt = func(nth, i int) bool { return nth == 0 && i == 1 }
		f := r.run(t, request(d))
		if f.Failure() == nil || !f.refetchNow {
			t.Fatalf("the corrupt download did not fail: %v", f.Failure())
		}
		// The refetch runs by itself (a new request would join it): wait for
		// every goroutine to settle, then look at what it did.
		synctest.Wait()
		if n := len(r.fetch.jobs); n != 2 {
			t.Fatalf("%d downloads, want the failed one and its refetch", n)
		}
		if job, peers := r.fetch.lastJob(); len(peers) != 0 || job.Herd || job.MirrorDelay != 0 {
			t.Errorf("refetch: peers %v, herd %v, mirror delay %v; want the mirror alone", peers, job.Herd, job.MirrorDelay)
		}
		if _, ok := r.store.Lookup(&d); !ok {
			t.Fatal("the refetched copy is not stored")
		}
		for i, p := range peers {
			if want := i == 1; r.fetch.Banned(p) != want {
				t.Errorf("peer %s (piece %d): banned %v, want %v", p, i, r.fetch.Banned(p), want)
			}
		}
		if _, err := r.m.Start(request(d)); !errors.Is(err, ErrStored) {
			t.Errorf("after the refetch: %v, want ErrStored", err)
		}
	})
}

// TestCloseRefusesNewWork: Close ends running downloads (their DHT lookup is
// cancelled, not waited out) and refuses new ones with ErrClosed.
func TestCloseRefusesNewWork(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		data, d := content(t, 1000, 7)
		r := newRig(t, nil, "10.240.0.1:9977", data, Config{Herd: true})
		r.dht.block = make(chan struct{}) // the lookup never answers
		f, err := r.m.Start(request(d))
		if err != nil {
			t.Fatal(err)
		}
		r.m.Close() // a hang here is the failure
		<-f.Done()
		if _, err := r.m.Start(request(d)); !errors.Is(err, ErrClosed) {
			t.Fatalf("Start after Close: %v, want ErrClosed", err)
		}
	})
}

// TestPrune: expired negative-cache and mirror-only entries are forgotten,
// fresh ones kept (virtual time).
func TestPrune(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, nil, "10.240.0.1:9977", nil, Config{})
		m := r.m
		now := time.Now()
		m.noValues[wire.ID{1}] = now.Add(-time.Minute)
		m.noValues[wire.ID{2}] = now.Add(-time.Second)
		m.mirrorOnly[wire.ID{3}] = &mismatch{at: now.Add(-11 * time.Minute)}
		m.mirrorOnly[wire.ID{4}] = &mismatch{at: now.Add(-time.Minute)}
		m.Prune()
		if len(m.noValues) != 1 || len(m.mirrorOnly) != 1 {
			t.Fatalf("after prune: %d negative entries, %d mirror-only entries; want 1 and 1", len(m.noValues), len(m.mirrorOnly))
		}
		if _, ok := m.noValues[wire.ID{2}]; !ok {
			t.Error("a fresh negative entry was pruned")
		}
		if _, ok := m.mirrorOnly[wire.ID{4}]; !ok {
			t.Error("a fresh mirror-only entry was pruned")
		}
	})
}

// TestUnsharedKeyStillWaitsForClaim: a key the DHT had no values for a
// moment ago skips the lookup wait but not the claim: a daemon retrying a
// file while a crowd downloads it still follows the crowd's leader.
func TestUnsharedKeyStillWaitsForClaim(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		data, d := content(t, 1000, 8)
		r := newRig(t, nil, "10.240.0.5:9977", data, Config{Herd: true})
		key, _ := d.Key()
		r.m.noValues[key] = time.Now()
		leader := netip.MustParseAddrPort("10.240.0.9:9977")
		r.dht.put(wire.PartialKey(key), wire.AppendPeerValue(nil, &wire.PeerValue{Contact: leader, Claim: time.Now().Add(-time.Millisecond).UnixMicro()}))
		f := r.run(t, request(d))
		if _, peers := r.fetch.lastJob(); f.Role() != RoleFollower || len(peers) != 1 || peers[0].Addr != leader.String() {
			t.Fatalf("role %s, sources %+v; want to follow %v", f.Role(), peers, leader)
		}
	})
}

// TestReannounceAfterMove (issue 12 item 2): a daemon that comes back on
// another address announces every stored file again in its first refresh
// round, not when the files' refresh comes due hours later; one that comes
// back on the same address waits for the refresh.
func TestReannounceAfterMove(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		data, d := content(t, 1000, 9)
		r := newRig(t, nil, "10.240.0.1:9977", data, Config{})
		var saved netip.AddrPort
		r.m.cfg.AnnouncedAs = func() (netip.AddrPort, bool) { return saved, saved.IsValid() }
		r.m.cfg.SaveAnnouncedAs = func(ap netip.AddrPort) { saved = ap }
		r.run(t, request(d))
		synctest.Wait()
		key, _ := d.Key()
		count := func(c netip.AddrPort) int {
			n := 0
			for _, raw := range r.dht.values(key) {
				var v wire.PeerValue
				if v.Parse(raw) == nil && v.Contact == c {
					n++
				}
			}
			return n
		}
		if count(r.self) != 1 {
			t.Fatalf("first announcement: %q", r.dht.values(key))
		}
		r.dht.mu.Lock()
		delete(r.dht.vals, key)
		r.dht.mu.Unlock()
		r.m.refreshRound() // first round: remembers where we announced
		if saved != r.self {
			t.Fatalf("announced as %v, want %v", saved, r.self)
		}
		if n := len(r.dht.values(key)); n != 0 {
			t.Fatalf("a first run's first round re-announced what this run announced: %d values", n)
		}
		time.Sleep(time.Minute) // virtual: the bubble's clock
		moved := netip.MustParseAddrPort("10.240.0.1:19977")
		r.self = moved
		r.m.refreshRound()
		if count(moved) != 1 || saved != moved {
			t.Fatalf("after moving to %v: values %q, saved %v", moved, r.dht.values(key), saved)
		}
		r.dht.mu.Lock()
		delete(r.dht.vals, key)
		r.dht.mu.Unlock()
		time.Sleep(time.Minute)
		r.m.refreshRound() // same address: nothing is due for hours
		if len(r.dht.values(key)) != 0 {
			t.Fatalf("re-announced without a move: %q", r.dht.values(key))
		}
	})
}

// TestPace: a Request with Pace asks it before every write into the store (a
// volunteer's bandwidth limit), for every byte; once apt streams from the
// Flight, it is not asked (apt joining a preheat gets it at full speed).
func TestPace(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		data, d := content(t, 3*fetch.PieceSize+100, 7)
		r := newRig(t, nil, "10.240.0.1:9977", data, Config{})
		var paced, calls int64
		req := request(d)
		req.Pace = func(ctx context.Context, n int) error {
			paced += int64(n)
			calls++
			time.Sleep(time.Second) // a slow limit, on the bubble's clock
			return ctx.Err()
		}
		t0 := time.Now()
		if f := r.run(t, req); f.Failure() != nil {
			t.Fatal(f.Failure())
		}
		if paced != d.Size || calls != 4 || time.Since(t0) < 4*time.Second {
			t.Fatalf("paced %d bytes in %d calls over %v, want %d in 4 calls over at least 4 s", paced, calls, time.Since(t0), d.Size)
		}

		data2, d2 := content(t, 3*fetch.PieceSize+100, 8)
		r2 := newRig(t, nil, "10.240.0.2:9977", data2, Config{})
		r2.fetch.hold = make(chan struct{})
		paced = 0
		req2 := request(d2)
		req2.Pace = req.Pace
		f, err := r2.m.Start(req2)
		if err != nil {
			t.Fatal(err)
		}
		f.Join() // apt streams it
		close(r2.fetch.hold)
		<-f.Done()
		f.Leave()
		if f.Failure() != nil || paced != 0 {
			t.Fatalf("joined by apt: failure %v, paced %d bytes, want none", f.Failure(), paced)
		}
	})
}

// TestReannounceWithoutRecord: with no record of the contact announced
// under, files announced by an earlier run are announced again in the first
// round (their values may name an old address); this run's are not.
func TestReannounceWithoutRecord(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		data, d := content(t, 1000, 10)
		r := newRig(t, nil, "10.240.0.1:9977", data, Config{})
		var saved netip.AddrPort
		r.m.cfg.AnnouncedAs = func() (netip.AddrPort, bool) { return saved, saved.IsValid() }
		r.m.cfg.SaveAnnouncedAs = func(ap netip.AddrPort) { saved = ap }
		r.run(t, request(d))
		synctest.Wait()
		key, _ := d.Key()
		r.dht.mu.Lock()
		delete(r.dht.vals, key)
		r.dht.mu.Unlock()
		time.Sleep(time.Second)
		// As if this Manager had started after the announcement: the file
		// is an earlier run's.
		r.m.startedAt = time.Now()
		r.m.annContact = netip.AddrPort{}
		r.m.refreshRound()
		if n := len(r.dht.values(key)); n != 1 || saved != r.self {
			t.Fatalf("an earlier run's file: %d values after the first round, saved %v", n, saved)
		}
	})
}

// TestUnknownContactFollows: a daemon that does not know its own address
// yet cannot claim; it reads the claims like an unreachable one and follows
// an earlier claimant instead of leading unseen (a second leader per file).
func TestUnknownContactFollows(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		data, d := content(t, 1000, 11)
		r := newRig(t, nil, "10.240.0.5:9977", data, Config{Herd: true})
		r.m.cfg.Contact = func() (netip.AddrPort, bool) { return netip.AddrPort{}, false }
		key, _ := d.Key()
		leader := netip.MustParseAddrPort("10.240.0.9:9977")
		r.dht.put(wire.PartialKey(key), wire.AppendPeerValue(nil, &wire.PeerValue{Contact: leader, Claim: time.Now().Add(-time.Millisecond).UnixMicro()}))
		f := r.run(t, request(d))
		if _, peers := r.fetch.lastJob(); f.Role() != RoleFollower || len(peers) != 1 || peers[0].Addr != leader.String() {
			t.Fatalf("role %s, sources %+v; want to follow %v", f.Role(), peers, leader)
		}
		if n := len(r.dht.values(wire.PartialKey(key))); n != 1 {
			t.Fatalf("%d claims stored; a daemon without a contact must store none", n)
		}
	})
}
