package fetch

import (
	"context"
	"testing"
	"time"

	"github.com/apt-p2p/apt-p2p/internal/clock"
	"github.com/apt-p2p/apt-p2p/internal/httpserve"
)

// A peer whose load header says it is busy (31 of 32 uploads running at
// 1 MiB/s in all: 32 KiB/s for one more request) gets no piece from a
// load-aware download (its answer to the HEAD that probes an unknown peer
// says so), while an idle peer of the same speed gets them all; ranked by
// speed alone (the same peers, the header ignored), the busy one gets its
// share like the other.
func TestLoadAwareAvoidsBusyPeer(t *testing.T) {
	t.Parallel()
	data, pieces := testFile(16*PieceSize, 21)
	for _, aware := range []bool{true, false} {
		busy := newServer(t, data, behavior{rate: 8 << 20, load: "uploads=31/32; rate=1048576; capacity=1048576"})
		idle := newServer(t, data, behavior{rate: 8 << 20, load: "uploads=1/32; rate=100; capacity=104857600"})
		cfg := testConfig()
		cfg.LoadAware = aware
		sink := newMemSink(int64(len(data)))
		res := fetchOK(t, New(cfg), &Job{Size: int64(len(data)), Pieces: pieces, Peers: peerChan(busy.source(peerPath), idle.source(peerPath)), Sink: sink})
		sink.check(t, data)
		checkAccounting(t, res, int64(len(data)))
		got := res.BytesBySource[busy.addr]
		if aware && got != 0 {
			t.Errorf("load-aware: the busy peer sent %d bytes, want none (%v)", got, res.BytesBySource)
		}
		if !aware && got <= PieceSize {
			t.Errorf("by speed: the busy peer sent %d bytes; want more than one piece (it is as fast as the other)", got)
		}
	}
}

// A peer tried for the first time that never answers does not hold the
// download up: a load-aware download asks an unknown peer HEAD, then (no
// answer in 2 s) gives it one piece request and no more until it answers,
// and the others finish the file (the piece it may hold by an endgame copy).
func TestLoadAwareProbeDoesNotStall(t *testing.T) {
	t.Parallel()
	data, pieces := testFile(6*PieceSize, 22)
	mute := newServer(t, data, behavior{silent: true})
	good := newServer(t, data, behavior{rate: 8 << 20})
	cfg := testConfig()
	cfg.LoadAware = true
	cfg.PeerIdleTimeout = time.Minute // the mute peer is not dropped for its silence during the test
	sink := newMemSink(int64(len(data)))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, err := New(cfg).Fetch(ctx, &Job{Size: int64(len(data)), Pieces: pieces, Peers: peerChan(mute.source(peerPath), good.source(peerPath)), Sink: sink})
	if err != nil {
		t.Fatal(err)
	}
	sink.check(t, data)
	if res.BytesBySource[good.addr] != int64(len(data)) || mute.reqs.Load() > 2 {
		t.Fatalf("bytes by source %v, %d requests to the mute peer; want everything from the other, at most a HEAD and a piece request to it", res.BytesBySource, mute.reqs.Load())
	}
}

// A peer measured while it was busy looks slow until something refreshes
// what this daemon knows of it: once its load header is older than
// loadFresh, a load-aware download asks it HEAD for a fresh one, and a peer
// that has become idle gets pieces again (without the HEAD it got none: its
// stale, slow rate ranked it behind a peer that has meanwhile become busy).
// The fake clock never moves during the download: no piece is ever overdue,
// and what the sources get follows the ranking alone. (It starts at the real
// time: piece deadlines are taken from it.)
func TestLoadAwareRefreshesStaleLoad(t *testing.T) {
	t.Parallel()
	data, pieces := testFile(16*PieceSize, 23)
	idleNow := newServer(t, data, behavior{rate: 8 << 20, load: "uploads=1/32; rate=100; capacity=104857600"})
	// 1 MiB/s for one more request: far better than the other's stale rate,
	// far worse than what the other offers now.
	busyNow := newServer(t, data, behavior{rate: 8 << 20, load: "uploads=7/32; rate=8388608; capacity=8388608"})
	clk := clock.NewFake(time.Now())
	cfg := testConfig()
	cfg.LoadAware = true
	cfg.Clock = clk
	d := New(cfg)
	// What earlier downloads saw 3 s ago: the one busy and measured slow,
	// the other idle and fast.
	d.noteLoad(idleNow.addr, httpserve.Load{Uploads: 31, MaxUploads: 32, Capacity: 1 << 20}, clk.Now())
	d.hist[idleNow.addr].rate = 32 << 10
	d.noteLoad(busyNow.addr, httpserve.Load{Uploads: 1, MaxUploads: 32, Capacity: 100 << 20}, clk.Now())
	d.hist[busyNow.addr].rate = 8 << 20
	clk.Advance(3 * time.Second)

	sink := newMemSink(int64(len(data)))
	res := fetchOK(t, d, &Job{Size: int64(len(data)), Pieces: pieces, Peers: peerChan(idleNow.source(peerPath), busyNow.source(peerPath)), Sink: sink})
	sink.check(t, data)
	checkAccounting(t, res, int64(len(data)))
	if got := res.BytesBySource[idleNow.addr]; got < int64(len(data))/2 {
		t.Errorf("the peer that became idle sent %d of %d bytes, want at least half (%v)", got, len(data), res.BytesBySource)
	}
}

// The rate estimate is the body's, without the latency the score adds to it,
// and a small body (a burst) moves the latency only: before, a peer seen with
// 30 KB files 40 ms away was taken for a 0.75 MB/s link.
func TestObserveSeparatesLatencyFromRate(t *testing.T) {
	t0 := time.Unix(1000, 0)
	s := &source{rate: defaultRate, lat: defaultLat}
	s.observe(30_000, t0, t0.Add(40*time.Millisecond), t0.Add(40*time.Millisecond+100*time.Microsecond))
	if s.rate != defaultRate {
		t.Fatalf("a 30 KB body changed the rate to %.0f B/s", s.rate)
	}
	if want := defaultLat + ewmaAlpha*(0.040-defaultLat); s.lat != want {
		t.Fatalf("lat %.4f s, want %.4f", s.lat, want)
	}
	// A whole piece: 50 ms of body after 40 ms of latency is 10.5 MB/s, not 5.8.
	lat := s.lat
	s.observe(PieceSize, t0, t0.Add(40*time.Millisecond), t0.Add(90*time.Millisecond))
	sample := float64(PieceSize) / 0.050
	if want := defaultRate + ewmaAlpha*(sample-defaultRate); s.rate < want*0.999 || s.rate > want*1.001 {
		t.Fatalf("rate %.0f B/s after a piece at %.0f B/s, want %.0f", s.rate, sample, want)
	}
	if want := lat + ewmaAlpha*(0.040-lat); s.lat != want {
		t.Fatalf("lat %.4f s, want %.4f", s.lat, want)
	}
	// A piece read at once (loopback) is bounded by rateMinSpan, not infinite.
	s = &source{rate: defaultRate, lat: defaultLat}
	s.observe(PieceSize, t0, t0, t0)
	if want := defaultRate + ewmaAlpha*(float64(PieceSize)/rateMinSpan-defaultRate); s.rate != want {
		t.Fatalf("rate %.0f after an instant piece, want %.0f", s.rate, want)
	}
}
