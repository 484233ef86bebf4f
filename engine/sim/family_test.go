package sim

import (
	"testing"
	"time"

	"github.com/apt-p2p/apt-p2p/engine"
)

// The same network and scenario as IPv4, IPv6-only and dual-stack: every
// node joins, every put is stored and the gets find their values as often
// on IPv6 as on IPv4; dual-stack nodes look up on both networks (about
// twice the messages) and find at least as much.
func TestSimFamilies(t *testing.T) {
	nodes := 200
	if raceEnabled {
		nodes = 80
	}
	reps := map[engine.Family]*Report{}
	for _, f := range []engine.Family{engine.IPv4, engine.IPv6, engine.DualStack} {
		rep, err := Run(Config{
			Nodes: nodes, Settle: 16 * time.Minute, Unresponsive: 0.3, RTTMin: 20 * time.Millisecond, RTTMax: 200 * time.Millisecond,
			Loss: 0.01, Puts: 20, Gets: 60, Seed: 3, Engine: engine.Default(), Families: f,
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%v: %v", f, rep)
		if rep.Joined != rep.Nodes || rep.PutsOK != rep.Puts {
			t.Fatalf("%v: joined %d of %d, stored %d of %d puts", f, rep.Joined, rep.Nodes, rep.PutsOK, rep.Puts)
		}
		if r := rep.SuccessRate(); r < 0.95 {
			t.Fatalf("%v: found %.1f%% of values", f, 100*r)
		}
		reps[f] = rep
	}
	m := func(f engine.Family) float64 {
		return reps[f].Mean(func(g GetSample) float64 { return float64(g.Messages) })
	}
	if m(engine.DualStack) < 1.5*m(engine.IPv4) {
		t.Errorf("dual-stack gets sent %.1f messages, IPv4 ones %.1f: not both networks", m(engine.DualStack), m(engine.IPv4))
	}
	if reps[engine.DualStack].SuccessRate() < reps[engine.IPv4].SuccessRate() {
		t.Errorf("dual-stack found less than IPv4: %.3f < %.3f", reps[engine.DualStack].SuccessRate(), reps[engine.IPv4].SuccessRate())
	}
}
