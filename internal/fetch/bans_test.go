package fetch

import (
	"slices"
	"testing"
	"time"

	"github.com/apt-p2p/apt-p2p/internal/clock"
)

// TestBansListed: the bans a Downloader holds can be listed (issue 11 item 5:
// a banned peer was visible only in a DEBUG line), soonest end first, with
// the reason given to BanFor, and without the expired ones.
func TestBansListed(t *testing.T) {
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	clk := clock.NewFake(t0)
	cfg := testConfig()
	cfg.Clock = clk
	d := New(cfg)
	if b := d.Bans(); len(b) != 0 {
		t.Fatalf("new downloader: %v", b)
	}
	d.Ban("10.240.0.9:9977", t0.Add(10*time.Minute))
	d.BanFor("10.240.0.7:9977", t0.Add(5*time.Minute), "whole-file hash mismatch")
	d.BanFor("10.240.0.8:9977", t0.Add(time.Minute), "piece 3 failed its hash")
	want := []Ban{
		{"10.240.0.8:9977", t0.Add(time.Minute), "piece 3 failed its hash"},
		{"10.240.0.7:9977", t0.Add(5 * time.Minute), "whole-file hash mismatch"},
		{"10.240.0.9:9977", t0.Add(10 * time.Minute), ""},
	}
	if got := d.Bans(); !slices.Equal(got, want) {
		t.Errorf("Bans = %v, want %v", got, want)
	}
	clk.Set(t0.Add(2 * time.Minute))
	if got := d.Bans(); !slices.Equal(got, want[1:]) {
		t.Errorf("after the first ended: %v, want %v", got, want[1:])
	}
	// A plain Ban extends the ban, not the reason given with the earlier one.
	d.Ban("10.240.0.7:9977", t0.Add(20*time.Minute))
	clk.Set(t0.Add(6 * time.Minute))
	got := d.Bans()
	if len(got) != 2 || got[1] != (Ban{"10.240.0.7:9977", t0.Add(20 * time.Minute), ""}) {
		t.Errorf("extended ban: %v", got)
	}
	clk.Set(t0.Add(time.Hour))
	if got := d.Bans(); len(got) != 0 {
		t.Errorf("an hour later: %v", got)
	}
}

// TestBansAfterCorruptPeer: a peer banned by a real download shows up.
func TestBansAfterCorruptPeer(t *testing.T) {
	t.Parallel()
	data, pieces := testFile(4*PieceSize, 11)
	bad := newServer(t, data, behavior{corrupt: true})
	good := newServer(t, data, behavior{rate: 8 << 20})
	d := New(testConfig())
	fetchOK(t, d, &Job{Size: int64(len(data)), Pieces: pieces, Peers: peerChan(bad.source(peerPath), good.source(peerPath)), Sink: newMemSink(int64(len(data)))})
	bans := d.Bans()
	if len(bans) != 1 || bans[0].Addr != bad.addr || !bans[0].Until.After(time.Now()) {
		t.Errorf("bans after a corrupt peer: %v, want %s", bans, bad.addr)
	}
}
