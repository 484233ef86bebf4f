package engine

import (
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"
)

// TestClaimSeesEarlierClaims: a claim reads back what was stored under the
// key before it, its own value included; of claims made at the same moment,
// every pair has at least one member that saw the other.
func TestClaimSeesEarlierClaims(t *testing.T) {
	cfg := testConfig()
	cfg.BootstrapNode = true
	boot := startNode(t, cfg)
	mustJoin(t, boot)
	nodes := []*Node{boot}
	for range 7 {
		n := startNode(t, testConfig(), boot.Addr())
		mustJoin(t, n)
		nodes = append(nodes, n)
	}
	key := sha1Key("claimed")
	_, vals, err := nodes[1].Claim(ctxT(t, 10*time.Second), key, fixed("first"), 0)
	if err != nil || !slices.ContainsFunc(vals, func(v []byte) bool { return string(v) == "first" }) {
		t.Fatalf("first claim: %q %v", vals, err)
	}
	r, vals, err := nodes[2].Claim(ctxT(t, 10*time.Second), key, fixed("second"), time.Millisecond)
	if err != nil || r.Stored < 1 {
		t.Fatalf("second claim: %+v %v", r, err)
	}
	got := map[string]bool{}
	for _, v := range vals {
		got[string(v)] = true
	}
	if !got["first"] || !got["second"] {
		t.Fatalf("second claim saw %q, want first and second", vals)
	}

	key = sha1Key("herd")
	seen := make([]map[string]bool, len(nodes))
	var wg sync.WaitGroup
	for i, n := range nodes {
		wg.Go(func() {
			_, vals, err := n.Claim(ctxT(t, 10*time.Second), key, fixed(fmt.Sprintf("claim-%d", i)), 0)
			if err != nil {
				t.Errorf("claim %d: %v", i, err)
			}
			seen[i] = map[string]bool{}
			for _, v := range vals {
				seen[i][string(v)] = true
			}
		})
	}
	wg.Wait()
	for i := range nodes {
		for j := i + 1; j < len(nodes); j++ {
			if !seen[i][fmt.Sprintf("claim-%d", j)] && !seen[j][fmt.Sprintf("claim-%d", i)] {
				t.Errorf("claims %d and %d did not see each other: %v / %v", i, j, seen[i], seen[j])
			}
		}
	}
}

func fixed(v string) func(time.Time) []byte { return func(time.Time) []byte { return []byte(v) } }
