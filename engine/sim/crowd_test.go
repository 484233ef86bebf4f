package sim

import (
	"slices"
	"testing"
	"time"

	"github.com/apt-p2p/apt-p2p/engine"
)

func crowdConfig() CrowdConfig {
	nodes, askers, settle := 300, 60, 16*time.Minute
	if raceEnabled {
		nodes, askers, settle = 120, 30, 10*time.Minute
	}
	return CrowdConfig{
		Config: Config{Nodes: nodes, Settle: settle, Unresponsive: 0.5, RTTMin: 20 * time.Millisecond,
			RTTMax: 300 * time.Millisecond, Loss: 0.01, Seed: 3, Engine: engine.Default()},
		Askers: askers, Window: 2 * time.Second, Crowds: 2, Warmup: 2, Lone: 4,
	}
}

// claimBefore is the election's order: the earlier claim, then the lower contact.
func claimBefore(a, b *Asker) bool {
	if a.Claim != b.Claim {
		return a.Claim < b.Claim
	}
	return contactOf(a.Node).Compare(contactOf(b.Node)) < 0
}

// A crowd decides as internal/download does: everyone decides, someone
// leads, followers stream from earlier claimants, NATed daemons never claim.
func TestCrowdStructure(t *testing.T) {
	cfg := crowdConfig()
	rep, err := RunCrowd(cfg, CrowdVariant{Name: "download"}, CrowdVariant{Name: "no herd", Apply: func(c *CrowdConfig) { c.NoHerd = true }})
	if err != nil {
		t.Fatal(err)
	}
	t.Log(rep)
	if len(rep.Runs) != 2 {
		t.Fatalf("%d variant runs", len(rep.Runs))
	}
	herd, old := rep.Runs[0], rep.Runs[1]
	for c, run := range herd.Crowds {
		if len(run.Askers) != cfg.Askers {
			t.Fatalf("crowd %d: %d askers", c, len(run.Askers))
		}
		byNode := map[int]*Asker{}
		nodes := map[int]bool{}
		for i := range run.Askers {
			a := &run.Askers[i]
			if nodes[a.Node] {
				t.Fatalf("crowd %d: node %d asks twice", c, a.Node)
			}
			nodes[a.Node] = true
			byNode[a.Node] = a
		}
		sm := run.Summarize()
		if sm.Leaders < 1 || sm.Followers < 1 {
			t.Fatalf("crowd %d: %d leaders, %d followers", c, sm.Leaders, sm.Followers)
		}
		if sm.NATed == 0 || sm.NATed == sm.Askers {
			t.Fatalf("crowd %d: %d of %d askers NATed", c, sm.NATed, sm.Askers)
		}
		bound := herd.Cfg.MirrorDelay + herd.Cfg.extension()
		for i := range run.Askers {
			a := &run.Askers[i]
			if a.Decided <= 0 || a.Decided > bound {
				t.Fatalf("crowd %d: node %d decided after %v (bound %v)", c, a.Node, a.Decided, bound)
			}
			if a.TTFB <= a.Decided {
				t.Fatalf("crowd %d: node %d: first byte %v before its decision %v", c, a.Node, a.TTFB, a.Decided)
			}
			if a.NATed != (a.Claim == 0) {
				t.Fatalf("crowd %d: node %d NATed %v with claim %d", c, a.Node, a.NATed, a.Claim)
			}
			if a.Leads() {
				if a.Why == "" {
					t.Fatalf("crowd %d: leader %d without a reason", c, a.Node)
				}
				continue
			}
			p := byNode[a.Parent]
			if p == nil {
				t.Fatalf("crowd %d: node %d follows %d, not an asker", c, a.Node, a.Parent)
			}
			if p.NATed || p.Claim == 0 {
				t.Fatalf("crowd %d: node %d follows NATed node %d", c, a.Node, p.Node)
			}
			if !a.NATed && !claimBefore(p, a) {
				t.Fatalf("crowd %d: node %d (claim %d) follows a later claim: node %d (%d)", c, a.Node, a.Claim, p.Node, p.Claim)
			}
		}
		if run.Stores == 0 || run.NATedStores != 0 {
			t.Fatalf("crowd %d: %d claims stored, %d from NATed askers", c, run.Stores, run.NATedStores)
		}
		if sm.StoreReplyLeaders < 1 || sm.StoreReplyLeaders > sm.Askers {
			t.Fatalf("crowd %d: store-reply estimate of %d leaders", c, sm.StoreReplyLeaders)
		}
	}
	for c, run := range old.Crowds {
		sm := run.Summarize()
		if sm.Leaders != sm.Askers || run.Stores != 0 {
			t.Fatalf("no herd, crowd %d: %d of %d lead, %d claims stored", c, sm.Leaders, sm.Askers, run.Stores)
		}
		// The same askers at the same moments as the herd's crowd.
		if !slices.EqualFunc(run.Askers, herd.Crowds[c].Askers, func(a, b Asker) bool { return a.Node == b.Node && a.Start == b.Start }) {
			t.Fatalf("crowd %d: the variants' askers differ", c)
		}
	}
	if len(herd.Lone) != cfg.Lone {
		t.Fatalf("%d lone trials", len(herd.Lone))
	}
	for _, l := range herd.Lone {
		if l.Herd <= 0 || l.GetOnly <= 0 || l.HerdMsgs <= l.GetMsgs {
			t.Fatalf("lone trial %+v", l)
		}
	}
}

// A follower's first byte comes through its parent: never before the
// parent's, plus the one-way delay between them.
func TestCrowdTTFBThroughParent(t *testing.T) {
	cfg := crowdConfig()
	cfg.Crowds, cfg.Lone = 1, 0
	rep, err := RunCrowd(cfg)
	if err != nil {
		t.Fatal(err)
	}
	run := rep.Runs[0].Crowds[0]
	byNode := map[int]*Asker{}
	for i := range run.Askers {
		byNode[run.Askers[i].Node] = &run.Askers[i]
	}
	for _, a := range run.Askers {
		if a.Leads() {
			if a.TTFB != a.Decided+rep.Runs[0].Cfg.MirrorFirstByte {
				t.Fatalf("leader %d: first byte %v, decision %v", a.Node, a.TTFB, a.Decided)
			}
			continue
		}
		p := byNode[a.Parent]
		if p.Start+p.TTFB >= a.Start+a.TTFB {
			t.Fatalf("node %d's first byte (%v) is not after its parent %d's (%v)", a.Node, a.Start+a.TTFB, p.Node, p.Start+p.TTFB)
		}
	}
}

// The same seed gives the same crowds.
func TestCrowdReproducible(t *testing.T) {
	cfg := crowdConfig()
	cfg.Nodes, cfg.Askers, cfg.Crowds, cfg.Lone, cfg.Settle = 100, 20, 1, 2, 5*time.Minute
	a, err := RunCrowd(cfg)
	if err != nil {
		t.Fatal(err)
	}
	b, err := RunCrowd(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if a.Net.Events != b.Net.Events || !slices.Equal(a.Runs[0].Crowds[0].Askers, b.Runs[0].Crowds[0].Askers) ||
		!slices.Equal(a.Runs[0].Lone, b.Runs[0].Lone) {
		t.Fatalf("runs differ:\n%v\n%v", a, b)
	}
}

func TestContactIndex(t *testing.T) {
	for _, i := range []int{0, 1, 9999} {
		if got := contactIndex(contactOf(i)); got != i {
			t.Fatalf("contactIndex(contactOf(%d)) = %d", i, got)
		}
	}
}

// As download does today, NATed daemons may claim too: followers then skip
// them (nobody can connect to them) and stream from reachable claimants.
func TestCrowdNATClaims(t *testing.T) {
	cfg := crowdConfig()
	cfg.Crowds, cfg.Lone, cfg.NATClaims = 1, 0, true
	rep, err := RunCrowd(cfg)
	if err != nil {
		t.Fatal(err)
	}
	run := rep.Runs[0].Crowds[0]
	if run.NATedStores == 0 {
		t.Fatal("no NATed asker claimed")
	}
	byNode := map[int]*Asker{}
	for i := range run.Askers {
		byNode[run.Askers[i].Node] = &run.Askers[i]
	}
	for _, a := range run.Askers {
		if a.Claim == 0 {
			t.Fatalf("node %d (NATed %v) did not claim", a.Node, a.NATed)
		}
		if a.Leads() {
			continue
		}
		if p := byNode[a.Parent]; p == nil || p.NATed || !claimBefore(p, &a) {
			t.Fatalf("node %d follows %d, which is not a reachable earlier claimant", a.Node, a.Parent)
		}
	}
}
