package node

import (
	"testing"
	"time"

	"github.com/apt-p2p/apt-p2p/wire"
)

func TestClientMaxAge(t *testing.T) {
	for _, c := range []struct {
		cc, pragma string
		want       time.Duration
	}{
		{"", "", -1},
		{"max-age=0", "", 0},
		{"max-age=120", "", 2 * time.Minute},
		{"public, Max-Age=5", "", 5 * time.Second},
		{"no-cache", "", 0},
		{"", "no-cache", 0},
		{"max-age=x", "", 0},
		{"max-age=-3", "", 0},
		{"no-transform", "", -1},
	} {
		if got := clientMaxAge([]byte(c.cc), []byte(c.pragma)); got != c.want {
			t.Errorf("Cache-Control %q Pragma %q: %v, want %v", c.cc, c.pragma, got, c.want)
		}
	}
}

func TestPrune(t *testing.T) {
	n := &Node{noValues: map[wire.ID]time.Time{}, mirrorOnly: map[wire.ID]time.Time{}}
	now := time.Now()
	n.noValues[wire.ID{1}] = now.Add(-time.Minute)
	n.noValues[wire.ID{2}] = now.Add(-time.Second)
	n.mirrorOnly[wire.ID{3}] = now.Add(-11 * time.Minute)
	n.mirrorOnly[wire.ID{4}] = now.Add(-time.Minute)
	n.prune(now)
	if len(n.noValues) != 1 || len(n.mirrorOnly) != 1 {
		t.Fatalf("after prune: %d negative entries, %d mirror-only entries; want 1 and 1", len(n.noValues), len(n.mirrorOnly))
	}
	if _, ok := n.noValues[wire.ID{2}]; !ok {
		t.Error("a fresh negative entry was pruned")
	}
	if _, ok := n.mirrorOnly[wire.ID{4}]; !ok {
		t.Error("a fresh mirror-only entry was pruned")
	}
}
