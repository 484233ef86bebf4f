package fetch

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"log/slog"
	"net"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apt-p2p/apt-p2p/internal/clock"
)

const peerPath = "/~/%CA+%B8%0C%00%E7%07%F8%7E%5D%29%2B%9D%E5_B%FF%1A%C4%21"

func fetchOK(t *testing.T, d *Downloader, job *Job) Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, err := d.Fetch(ctx, job)
	if err != nil {
		t.Fatalf("Fetch: %v", err)
	}
	return res
}

func checkAccounting(t *testing.T, res Result, size int64) {
	t.Helper()
	var sum int64
	for _, b := range res.BytesBySource {
		sum += b
	}
	if sum != size || res.PeerBytes+res.MirrorBytes != size {
		t.Fatalf("bytes by source add up to %d (peers %d + mirror %d), want %d: %v",
			sum, res.PeerBytes, res.MirrorBytes, size, res.BytesBySource)
	}
	for i, s := range res.PieceSources {
		if s == "" {
			t.Fatalf("piece %d has no recorded source", i)
		}
	}
}

func TestOnePeer(t *testing.T) {
	t.Parallel()
	data, pieces := testFile(3*PieceSize+12345, 1)
	p := newServer(t, data, behavior{})
	sink := newMemSink(int64(len(data)))
	d := New(testConfig())
	res := fetchOK(t, d, &Job{Size: int64(len(data)), Pieces: pieces, Peers: peerChan(p.source(peerPath)), Sink: sink})
	sink.check(t, data)
	checkAccounting(t, res, int64(len(data)))
	if res.BytesBySource[p.addr] != int64(len(data)) || sink.pieces != 4 {
		t.Fatalf("bytes by source %v, %d pieces written; want all from %s as 4 pieces", res.BytesBySource, sink.pieces, p.addr)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for i := range p.uris {
		if p.uris[i] != peerPath {
			t.Errorf("request URI %q, want the quoted path %q sent as is", p.uris[i], peerPath)
		}
		if p.hosts[i] != p.addr {
			t.Errorf("Host %q, want %q (with the non-default port)", p.hosts[i], p.addr)
		}
		if p.uas[i] != "apt-p2p/test" {
			t.Errorf("User-Agent %q", p.uas[i])
		}
		if !strings.HasPrefix(p.rngs[i], "bytes=") {
			t.Errorf("request %d without Range: %q", i, p.rngs[i])
		}
	}
}

func TestFivePeers(t *testing.T) {
	t.Parallel()
	data, pieces := testFile(24*PieceSize+777, 2)
	var srcs []Source
	var servers []*testServer
	for range 5 {
		s := newServer(t, data, behavior{rate: 4 << 20})
		servers = append(servers, s)
		srcs = append(srcs, s.source(peerPath))
	}
	sink := newFileSink(t, int64(len(data)))
	res := fetchOK(t, New(testConfig()), &Job{Size: int64(len(data)), Pieces: pieces, Peers: peerChan(srcs...), Sink: sink})
	sink.checkFile(t, data)
	checkAccounting(t, res, int64(len(data)))
	for _, s := range servers {
		if res.BytesBySource[s.addr] == 0 {
			t.Errorf("peer %s was not used: %v", s.addr, res.BytesBySource)
		}
	}
	t.Logf("bytes by source: %v", res.BytesBySource)
}

func TestCorruptPeerBanned(t *testing.T) {
	t.Parallel()
	data, pieces := testFile(10*PieceSize, 3)
	bad := newServer(t, data, behavior{corrupt: true})
	good := newServer(t, data, behavior{rate: 8 << 20})
	sink := newMemSink(int64(len(data)))
	d := New(testConfig())
	res := fetchOK(t, d, &Job{Size: int64(len(data)), Pieces: pieces, Peers: peerChan(bad.source(peerPath), good.source(peerPath)), Sink: sink})
	sink.check(t, data)
	checkAccounting(t, res, int64(len(data)))
	if !slices.Contains(res.Banned, bad.addr) || !d.Banned(bad.addr) {
		t.Fatalf("corrupt peer %s not banned: %v", bad.addr, res.Banned)
	}
	if res.BytesBySource[bad.addr] != 0 {
		t.Fatalf("corrupt peer supplied %d bytes", res.BytesBySource[bad.addr])
	}
	// A banned peer is not even asked next time.
	before := bad.reqs.Load()
	sink2 := newMemSink(int64(len(data)))
	fetchOK(t, d, &Job{Size: int64(len(data)), Pieces: pieces, Peers: peerChan(bad.source(peerPath), good.source(peerPath)), Sink: sink2})
	sink2.check(t, data)
	if bad.reqs.Load() != before {
		t.Fatalf("banned peer got %d more requests", bad.reqs.Load()-before)
	}
}

func TestPeerDiesMidTransfer(t *testing.T) {
	t.Parallel()
	data, pieces := testFile(12*PieceSize+5, 4)
	dying := newServer(t, data, behavior{dieAfter: 3*PieceSize + 1000})
	good := newServer(t, data, behavior{rate: 6 << 20})
	sink := newMemSink(int64(len(data)))
	res := fetchOK(t, New(testConfig()), &Job{Size: int64(len(data)), Pieces: pieces, Peers: peerChan(dying.source(peerPath), good.source(peerPath)), Sink: sink})
	sink.check(t, data)
	checkAccounting(t, res, int64(len(data)))
	if dying.sent.Load() < 3*PieceSize {
		t.Fatalf("dying peer sent only %d bytes: the test did not exercise a death mid-transfer", dying.sent.Load())
	}
}

func TestAllPeersDieMirrorFinishes(t *testing.T) {
	t.Parallel()
	data, pieces := testFile(8*PieceSize+99, 5)
	dying := newServer(t, data, behavior{dieAfter: PieceSize + 10})
	mirror := newServer(t, data, behavior{})
	sink := newMemSink(int64(len(data)))
	m := mirror.source("/debian/pool/f.deb")
	res := fetchOK(t, New(testConfig()), &Job{Size: int64(len(data)), Pieces: pieces, Peers: peerChan(dying.source(peerPath)),
		Mirror: &m, MirrorDelay: 50 * time.Millisecond, Sink: sink})
	sink.check(t, data)
	checkAccounting(t, res, int64(len(data)))
	if res.MirrorBytes == 0 {
		t.Fatalf("mirror not used: %v", res.BytesBySource)
	}
}

func TestMirrorIgnoresRangeAlone(t *testing.T) {
	t.Parallel()
	data, pieces := testFile(6*PieceSize+3, 6)
	mirror := newServer(t, data, behavior{ignoreRange: true})
	m := mirror.source("/debian/pool/f.deb")
	sink := newMemSink(int64(len(data)))
	res := fetchOK(t, New(testConfig()), &Job{Size: int64(len(data)), Pieces: pieces, Mirror: &m, Sink: sink})
	sink.check(t, data)
	checkAccounting(t, res, int64(len(data)))
	if sink.appends == 0 || sink.pieces != 0 {
		t.Fatalf("mirror alone should stream with WriteAt: %d appends, %d pieces", sink.appends, sink.pieces)
	}
}

// The mirror joins as a Range source next to a peer that dies; it answers
// every Range request with 200 and the whole file. Nothing may be corrupted
// and the mirror must not be banned: it is streamed instead.
func TestMirrorIgnoresRangeAsPieceSource(t *testing.T) {
	t.Parallel()
	data, pieces := testFile(10*PieceSize+3, 7)
	dying := newServer(t, data, behavior{dieAfter: 2*PieceSize + 17, rate: 4 << 20})
	mirror := newServer(t, data, behavior{ignoreRange: true})
	m := mirror.source("/debian/pool/f.deb")
	sink := newMemSink(int64(len(data)))
	d := New(testConfig())
	res := fetchOK(t, d, &Job{Size: int64(len(data)), Pieces: pieces, Peers: peerChan(dying.source(peerPath)),
		Mirror: &m, MinPeers: 3, MirrorDelay: time.Hour, Sink: sink})
	sink.check(t, data)
	checkAccounting(t, res, int64(len(data)))
	if d.Banned(mirror.addr) || slices.Contains(res.Banned, mirror.addr) {
		t.Fatal("mirror banned for ignoring Range")
	}
	mirror.mu.Lock()
	ranged := slices.ContainsFunc(mirror.rngs, func(s string) bool { return s != "" })
	mirror.mu.Unlock()
	if !ranged {
		t.Fatal("the mirror never got a Range request: the test did not exercise row 5")
	}
}

func TestNoPeersStraightToMirror(t *testing.T) {
	t.Parallel()
	data, pieces := testFile(16*PieceSize+1, 8)
	mirror := newServer(t, data, behavior{})
	m := mirror.source("/debian/pool/f.deb")
	m.Host = "deb.example.org"
	for _, name := range []string{"nil channel", "closed empty channel"} {
		t.Run(name, func(t *testing.T) {
			var peers <-chan Source
			if name != "nil channel" {
				peers = peerChan()
			}
			sink := newMemSink(int64(len(data)))
			t0 := time.Now()
			res := fetchOK(t, New(testConfig()), &Job{Size: int64(len(data)), Pieces: pieces, Peers: peers, Mirror: &m,
				MirrorDelay: 10 * time.Second, MinPeers: 3, Sink: sink})
			el := time.Since(t0)
			sink.check(t, data)
			checkAccounting(t, res, int64(len(data)))
			if el > 5*time.Second {
				t.Fatalf("took %v: the mirror waited for MirrorDelay although no peer could come", el)
			}
			if res.MirrorBytes != int64(len(data)) {
				t.Fatalf("mirror bytes %d", res.MirrorBytes)
			}
		})
	}
	mirror.mu.Lock()
	defer mirror.mu.Unlock()
	if want := "deb.example.org:" + mirror.addr[strings.LastIndexByte(mirror.addr, ':')+1:]; mirror.hosts[0] != want {
		t.Fatalf("mirror Host header %q, want %q", mirror.hosts[0], want)
	}
}

func TestPeersArriveLate(t *testing.T) {
	t.Parallel()
	data, pieces := testFile(12*PieceSize, 9)
	p1 := newServer(t, data, behavior{rate: 3 << 20})
	p2 := newServer(t, data, behavior{rate: 3 << 20})
	ch := make(chan Source)
	go func() {
		time.Sleep(100 * time.Millisecond)
		ch <- p1.source(peerPath)
		time.Sleep(300 * time.Millisecond)
		ch <- p2.source(peerPath)
		close(ch)
	}()
	sink := newMemSink(int64(len(data)))
	res := fetchOK(t, New(testConfig()), &Job{Size: int64(len(data)), Pieces: pieces, Peers: ch, Sink: sink})
	sink.check(t, data)
	checkAccounting(t, res, int64(len(data)))
	if res.BytesBySource[p1.addr] == 0 || res.BytesBySource[p2.addr] == 0 {
		t.Fatalf("both late peers should be used: %v", res.BytesBySource)
	}
}

func TestMirrorDelayRace(t *testing.T) {
	t.Parallel()
	data, pieces := testFile(6*PieceSize, 10)
	silent := newServer(t, data, behavior{silent: true})
	mirror := newServer(t, data, behavior{})
	m := mirror.source("/debian/pool/f.deb")
	ch := make(chan Source, 1)
	ch <- silent.source(peerPath) // the lookup is still running: the channel stays open
	defer close(ch)
	sink := newMemSink(int64(len(data)))
	cfg := testConfig()
	cfg.PeerIdleTimeout = 10 * time.Second
	const delay = 300 * time.Millisecond
	t0 := time.Now()
	res := fetchOK(t, New(cfg), &Job{Size: int64(len(data)), Pieces: pieces, Peers: ch, Mirror: &m, MirrorDelay: delay, Sink: sink})
	el := time.Since(t0)
	sink.check(t, data)
	checkAccounting(t, res, int64(len(data)))
	if res.MirrorBytes != int64(len(data)) {
		t.Fatalf("mirror bytes %d of %d", res.MirrorBytes, len(data))
	}
	if el < delay {
		t.Fatalf("done in %v, before MirrorDelay: the mirror did not wait for peers", el)
	}
	if el > 5*time.Second {
		t.Fatalf("took %v: silent peer's pieces were not taken over", el)
	}
	if silent.reqs.Load() == 0 {
		t.Fatal("the silent peer was never asked")
	}
}

func TestEndgame(t *testing.T) {
	t.Parallel()
	data, pieces := testFile(8*PieceSize, 11)
	slow := newServer(t, data, behavior{rate: 32 << 10}) // 16 s per piece
	fast := newServer(t, data, behavior{})
	// The slow peer arrives first so it holds pieces when the fast one comes.
	ch := make(chan Source)
	go func() {
		ch <- slow.source(peerPath)
		time.Sleep(50 * time.Millisecond)
		ch <- fast.source(peerPath)
		close(ch)
	}()
	sink := newMemSink(int64(len(data)))
	t0 := time.Now()
	res := fetchOK(t, New(testConfig()), &Job{Size: int64(len(data)), Pieces: pieces, Peers: ch, Sink: sink})
	el := time.Since(t0)
	sink.check(t, data)
	checkAccounting(t, res, int64(len(data)))
	if slow.reqs.Load() == 0 {
		t.Fatal("slow peer got no request: endgame not exercised")
	}
	if el > 8*time.Second {
		t.Fatalf("took %v: pieces held by the slow peer were not asked of the fast one", el)
	}
	if res.BytesBySource[fast.addr] != int64(len(data)) {
		t.Fatalf("fast peer supplied %d of %d bytes: %v", res.BytesBySource[fast.addr], len(data), res.BytesBySource)
	}
}

func TestWrongContentRangeBanned(t *testing.T) {
	t.Parallel()
	data, pieces := testFile(6*PieceSize, 12)
	bad := newServer(t, data, behavior{wrongRange: true})
	good := newServer(t, data, behavior{rate: 8 << 20})
	sink := newMemSink(int64(len(data)))
	d := New(testConfig())
	res := fetchOK(t, d, &Job{Size: int64(len(data)), Pieces: pieces, Peers: peerChan(bad.source(peerPath), good.source(peerPath)), Sink: sink})
	sink.check(t, data)
	if !d.Banned(bad.addr) || !slices.Contains(res.Banned, bad.addr) {
		t.Fatal("peer with a wrong Content-Range not banned")
	}
}

func TestPeerIgnoringRangeBanned(t *testing.T) {
	t.Parallel()
	data, pieces := testFile(6*PieceSize, 13)
	bad := newServer(t, data, behavior{ignoreRange: true})
	good := newServer(t, data, behavior{rate: 8 << 20})
	sink := newMemSink(int64(len(data)))
	d := New(testConfig())
	res := fetchOK(t, d, &Job{Size: int64(len(data)), Pieces: pieces, Peers: peerChan(bad.source(peerPath), good.source(peerPath)), Sink: sink})
	sink.check(t, data)
	if !d.Banned(bad.addr) || res.BytesBySource[bad.addr] != 0 {
		t.Fatalf("peer answering 200 to Range: banned %v, bytes %d", d.Banned(bad.addr), res.BytesBySource[bad.addr])
	}
	if n := bad.reqs.Load(); n > int64(d.cfg.Depth) {
		t.Fatalf("peer answering 200 got %d requests: not dropped after its first answers", n)
	}
}

func TestNotFoundAndDeadPeers(t *testing.T) {
	t.Parallel()
	data, pieces := testFile(4*PieceSize+1, 14)
	nf := newServer(t, data, behavior{notFound: true})
	// A port nothing listens on: connection refused.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().String()
	ln.Close()
	mirror := newServer(t, data, behavior{})
	m := mirror.source("/debian/f.deb")
	sink := newMemSink(int64(len(data)))
	d := New(testConfig())
	t0 := time.Now()
	res := fetchOK(t, d, &Job{Size: int64(len(data)), Pieces: pieces, Peers: peerChan(nf.source(peerPath), Source{Addr: dead, Path: peerPath}),
		Mirror: &m, MirrorDelay: 5 * time.Second, Sink: sink})
	sink.check(t, data)
	checkAccounting(t, res, int64(len(data)))
	if el := time.Since(t0); el > 3*time.Second {
		t.Fatalf("took %v: failed peers should hand over to the mirror at once", el)
	}
	if d.Banned(nf.addr) || d.Banned(dead) {
		t.Fatal("404 or a refused connection is no reason for a ban")
	}
}

func TestSlowFirstByte(t *testing.T) {
	t.Parallel()
	data, pieces := testFile(4*PieceSize, 15)
	stall := newServer(t, data, behavior{firstByte: 20 * time.Second})
	good := newServer(t, data, behavior{rate: 4 << 20})
	cfg := testConfig()
	cfg.PeerIdleTimeout = time.Second
	sink := newMemSink(int64(len(data)))
	res := fetchOK(t, New(cfg), &Job{Size: int64(len(data)), Pieces: pieces, Peers: peerChan(stall.source(peerPath), good.source(peerPath)), Sink: sink})
	sink.check(t, data)
	if res.BytesBySource[stall.addr] != 0 {
		t.Fatal("stalled peer credited")
	}
}

func TestSinglePieceFile(t *testing.T) {
	t.Parallel()
	data, _ := testFile(200_000, 16)
	a := newServer(t, data, behavior{})
	b := newServer(t, data, behavior{})
	sink := newMemSink(int64(len(data)))
	res := fetchOK(t, New(testConfig()), &Job{Size: int64(len(data)), Peers: peerChan(a.source(peerPath), b.source(peerPath)), Sink: sink})
	sink.check(t, data)
	checkAccounting(t, res, int64(len(data)))
	if n := a.reqs.Load() + b.reqs.Load(); n != 1 {
		t.Fatalf("%d requests for a single-piece file, want 1", n)
	}
	for _, s := range []*testServer{a, b} {
		s.mu.Lock()
		for _, r := range s.rngs {
			if r != "" {
				t.Errorf("single-piece file fetched with Range %q", r)
			}
		}
		s.mu.Unlock()
	}
}

func TestSinglePieceNextSourceOnFailure(t *testing.T) {
	t.Parallel()
	data, _ := testFile(300_000, 17)
	bad := newServer(t, data, behavior{dieAfter: 1000})
	good := newServer(t, data, behavior{})
	sink := newMemSink(int64(len(data)))
	d := New(testConfig())
	res := fetchOK(t, d, &Job{Size: int64(len(data)), Peers: peerChan(bad.source(peerPath), good.source(peerPath)), Sink: sink})
	sink.check(t, data)
	if res.BytesBySource[good.addr] != int64(len(data)) {
		t.Fatalf("bytes by source %v", res.BytesBySource)
	}
}

func TestUnknownPieceHashes(t *testing.T) {
	t.Parallel()
	data, _ := testFile(9*PieceSize+4, 18)
	var srcs []Source
	for range 3 {
		srcs = append(srcs, newServer(t, data, behavior{rate: 4 << 20}).source(peerPath))
	}
	sink := newMemSink(int64(len(data)))
	res := fetchOK(t, New(testConfig()), &Job{Size: int64(len(data)), Peers: peerChan(srcs...), Sink: sink})
	sink.check(t, data)
	checkAccounting(t, res, int64(len(data)))
	if len(res.PieceSources) != 10 {
		t.Fatalf("PieceSources has %d entries", len(res.PieceSources))
	}
}

func TestAllSourcesFail(t *testing.T) {
	t.Parallel()
	data, pieces := testFile(3*PieceSize, 19)
	bad := newServer(t, data, behavior{corrupt: true})
	nf := newServer(t, data, behavior{notFound: true})
	sink := newMemSink(int64(len(data)))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := New(testConfig()).Fetch(ctx, &Job{Size: int64(len(data)), Pieces: pieces, Peers: peerChan(bad.source(peerPath), nf.source(peerPath)), Sink: sink})
	if !errors.Is(err, ErrNoSources) {
		t.Fatalf("err = %v, want ErrNoSources", err)
	}
	if !strings.Contains(err.Error(), "fetch:") {
		t.Fatalf("error without detail: %v", err)
	}
}

func TestCancel(t *testing.T) {
	t.Parallel()
	data, pieces := testFile(3*PieceSize, 20)
	silent := newServer(t, data, behavior{silent: true})
	sink := newMemSink(int64(len(data)))
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	t0 := time.Now()
	_, err := New(testConfig()).Fetch(ctx, &Job{Size: int64(len(data)), Pieces: pieces, Peers: peerChan(silent.source(peerPath)), Sink: sink})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v", err)
	}
	if el := time.Since(t0); el > time.Second {
		t.Fatalf("returned %v after the deadline", el)
	}
}

func TestResume(t *testing.T) {
	t.Parallel()
	data, pieces := testFile(5*PieceSize, 21)
	p := newServer(t, data, behavior{})
	sink := newMemSink(int64(len(data)))
	for _, i := range []int{0, 3} {
		piece := data[i*PieceSize : (i+1)*PieceSize]
		sum := [20]byte(pieces[20*i : 20*i+20])
		if err := sink.WritePiece(i, piece, &sum); err != nil {
			t.Fatal(err)
		}
	}
	fetchOK(t, New(testConfig()), &Job{Size: int64(len(data)), Pieces: pieces, Peers: peerChan(p.source(peerPath)), Sink: sink})
	sink.check(t, data)
	if n := p.reqs.Load(); n != 3 {
		t.Fatalf("%d requests, want 3 (pieces 1, 2, 4)", n)
	}
}

func TestHostHeader(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		s    Source
		want string
	}{
		{Source{Addr: "10.0.0.1:9977"}, "10.0.0.1:9977"},
		{Source{Addr: "deb.debian.org:80", Host: "deb.debian.org"}, "deb.debian.org"},
		{Source{Addr: "deb.debian.org:80", Host: "deb.debian.org:80"}, "deb.debian.org"},
		{Source{Addr: "mirror:8080", Host: "mirror.example"}, "mirror.example:8080"},
		{Source{Addr: "mirror:443", Host: "mirror.example", TLS: true}, "mirror.example"},
		{Source{Addr: "mirror:443", Host: "mirror.example:443", TLS: true}, "mirror.example"},
		{Source{Addr: "[::1]:3142"}, "[::1]:3142"},
		{Source{Addr: "[::1]:80"}, "[::1]"},
	} {
		if got := hostHeader(&c.s); got != c.want {
			t.Errorf("hostHeader(%+v) = %q, want %q", c.s, got, c.want)
		}
	}
}

func TestParseContentRange(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		in      string
		a, b, n int64
		ok      bool
	}{
		{"bytes 0-524287/1048576", 0, 524287, 1048576, true},
		{"bytes 5-5/6", 5, 5, 6, true},
		{"bytes 5-4/6", 0, 0, 0, false},
		{"bytes 0-9/9", 0, 0, 0, false},
		{"bytes */100", 0, 0, 0, false},
		{"bits 0-1/2", 0, 0, 0, false},
		{"bytes 0-1/", 0, 0, 0, false},
		{"bytes -1-2/5", 0, 0, 0, false},
	} {
		a, b, n, ok := parseContentRange([]byte(c.in))
		if ok != c.ok || ok && (a != c.a || b != c.b || n != c.n) {
			t.Errorf("parseContentRange(%q) = %d %d %d %v", c.in, a, b, n, ok)
		}
	}
}

// No more than MaxPeers peers at once; the others stand in for failures.
func TestMaxPeersStandby(t *testing.T) {
	t.Parallel()
	data, pieces := testFile(8*PieceSize, 47)
	nf1 := newServer(t, data, behavior{notFound: true})
	nf2 := newServer(t, data, behavior{notFound: true})
	var good []*testServer
	srcs := []Source{nf1.source(peerPath), nf2.source(peerPath)}
	for range 4 {
		g := newServer(t, data, behavior{rate: 8 << 20})
		good = append(good, g)
		srcs = append(srcs, g.source(peerPath))
	}
	cfg := testConfig()
	cfg.MaxPeers = 2
	sink := newMemSink(int64(len(data)))
	res := fetchOK(t, New(cfg), &Job{Size: int64(len(data)), Pieces: pieces, Peers: peerChan(srcs...), Sink: sink})
	sink.check(t, data)
	checkAccounting(t, res, int64(len(data)))
	asked := 0
	for _, g := range good {
		if g.reqs.Load() > 0 {
			asked++
		}
	}
	if asked != 2 || nf1.reqs.Load() == 0 || nf2.reqs.Load() == 0 {
		t.Fatalf("%d stand-in peers asked (want 2 replacing the two 404s)", asked)
	}
}

func TestTLSMirror(t *testing.T) {
	t.Parallel()
	data, pieces := testFile(3*PieceSize+7, 46)
	h := newServer(t, data, behavior{}) // its handler, served again over TLS below
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(h)
	srv.Listener.Close()
	srv.Listener = ln
	srv.StartTLS()
	defer srv.Close()
	pool := x509.NewCertPool()
	pool.AddCert(srv.Certificate())
	cfg := testConfig()
	cfg.TLSConfig = &tls.Config{RootCAs: pool}
	m := Source{Addr: ln.Addr().String(), Path: "/debian/f.deb", TLS: true}
	sink := newMemSink(int64(len(data)))
	res := fetchOK(t, New(cfg), &Job{Size: int64(len(data)), Pieces: pieces, Mirror: &m, Sink: sink})
	sink.check(t, data)
	checkAccounting(t, res, int64(len(data)))
}

// Poisoned piece info: every honest peer "fails" the expected hashes. The
// download fails, and nobody is banned for it.
func TestWrongPieceHashesBanNobody(t *testing.T) {
	t.Parallel()
	data, _ := testFile(4*PieceSize, 49)
	_, wrong := testFile(4*PieceSize, 50)
	a := newServer(t, data, behavior{})
	b := newServer(t, data, behavior{})
	d := New(testConfig())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res, err := d.Fetch(ctx, &Job{Size: int64(len(data)), Pieces: wrong, Peers: peerChan(a.source(peerPath), b.source(peerPath)), Sink: newMemSink(int64(len(data)))})
	if !errors.Is(err, ErrNoSources) || !strings.Contains(err.Error(), "hash mismatch") {
		t.Fatalf("err = %v", err)
	}
	if d.Banned(a.addr) || d.Banned(b.addr) || len(res.Banned) != 0 {
		t.Fatalf("honest peers banned over wrong piece hashes: %v", res.Banned)
	}
}

// A peer trickling bytes fast enough to dodge the idle timeout still fails
// its pieces at PieceTimeout (here it is the only source, so the download
// fails quickly instead of taking 13 s per piece).
func TestTricklingPeer(t *testing.T) {
	t.Parallel()
	data, pieces := testFile(6*PieceSize, 51)
	trickle := newServer(t, data, behavior{rate: 40 << 10})
	cfg := testConfig()
	cfg.PieceTimeout = 400 * time.Millisecond
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	t0 := time.Now()
	_, err := New(cfg).Fetch(ctx, &Job{Size: int64(len(data)), Pieces: pieces, Peers: peerChan(trickle.source(peerPath)), Sink: newMemSink(int64(len(data)))})
	if !errors.Is(err, ErrNoSources) || !strings.Contains(err.Error(), "timeout") {
		t.Fatalf("err = %v, want ErrNoSources after timeouts", err)
	}
	if el := time.Since(t0); el > 5*time.Second {
		t.Fatalf("took %v", el)
	}
}

// TestUnreachablePeerSkipped (issue 12 item 2): a DHT value naming a peer
// that has stopped costs one failed connect; later downloads skip it (not
// banned: it sent nothing wrong) and go on with the live sources.
func TestUnreachablePeerSkipped(t *testing.T) {
	t.Parallel()
	data, pieces := testFile(3*PieceSize, 61)
	gone := newServer(t, data, behavior{})
	goneAddr := gone.addr
	gone.close() // nothing listens there any more
	live := newServer(t, data, behavior{})
	cfg := testConfig()
	var logged lockedBuffer
	cfg.Logger = slog.New(slog.NewTextHandler(&logged, &slog.HandlerOptions{Level: slog.LevelDebug}))
	d := New(cfg)
	for i := range 2 {
		sink := newMemSink(int64(len(data)))
		res := fetchOK(t, d, &Job{Size: int64(len(data)), Pieces: pieces,
			Peers: peerChan(Source{Addr: goneAddr, Path: peerPath}, live.source(peerPath)), Sink: sink})
		sink.check(t, data)
		if res.BytesBySource[live.addr] != int64(len(data)) {
			t.Fatalf("download %d: %v", i, res.BytesBySource)
		}
		if !d.Unreachable(goneAddr) || d.Banned(goneAddr) {
			t.Fatalf("download %d: unreachable %v, banned %v; want unreachable, not banned", i, d.Unreachable(goneAddr), d.Banned(goneAddr))
		}
	}
	if n := strings.Count(logged.String(), "peer unreachable"); n != 1 {
		t.Errorf("%d failed connects to the stopped peer over two downloads, want 1:\n%s", n, logged.String())
	}
}

// lockedBuffer is a bytes.Buffer safe for a logger's concurrent writes.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestMirrorStartsWhenEveryPeerFailed (issue 12 item 2): the lookup found one
// peer, a stale value (nothing listens there any more), and is still running;
// the mirror must start as soon as that peer has failed, not when the lookup
// or the mirror delay ends. The clock is a fake one that never moves, so the
// delay can never pass: the download ends only if the mirror started early.
func TestMirrorStartsWhenEveryPeerFailed(t *testing.T) {
	t.Parallel()
	data, pieces := testFile(3*PieceSize, 62)
	gone := newServer(t, data, behavior{})
	goneAddr := gone.addr
	gone.close()
	mirror := newServer(t, data, behavior{})
	m := mirror.source("/debian/f.deb")
	peers := make(chan Source, 1)
	peers <- Source{Addr: goneAddr, Path: peerPath}
	defer close(peers) // the lookup goes on until the download is over
	cfg := testConfig()
	cfg.Clock = clock.NewFake(time.Unix(1e9, 0))
	sink := newMemSink(int64(len(data)))
	res := fetchOK(t, New(cfg), &Job{Size: int64(len(data)), Pieces: pieces, Peers: peers, Mirror: &m,
		MirrorDelay: 5 * time.Second, Sink: sink})
	sink.check(t, data)
	if res.MirrorBytes != int64(len(data)) {
		t.Fatalf("%+v", res)
	}
}
