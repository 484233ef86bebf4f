package sim

import (
	"testing"
	"time"

	"github.com/apt-p2p/apt-p2p/engine"
)

func run(t *testing.T, ec engine.Config, seed uint64) *Report {
	t.Helper()
	nodes, settle := 300, 20*time.Minute
	if raceEnabled {
		nodes, settle = 120, 16*time.Minute
	}
	rep, err := Run(Config{
		Nodes: nodes, Settle: settle, Unresponsive: 0.5, RTTMin: 20 * time.Millisecond, RTTMax: 300 * time.Millisecond,
		Loss: 0.01, Puts: 30, Gets: 120, Seed: seed, Engine: ec,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Log(rep)
	return rep
}

// The default profile finds the values and beats the original's timeouts
// on latency in a network where half the nodes are NATed.
func TestSimDefaultBeatsClassic(t *testing.T) {
	def := run(t, engine.Default(), 1)
	cls := run(t, engine.Classic(), 1)
	if def.Joined != def.Nodes || cls.Joined != cls.Nodes {
		t.Fatalf("joined %d and %d of %d", def.Joined, cls.Joined, def.Nodes)
	}
	if def.PutsOK != def.Puts {
		t.Fatalf("default: %d of %d puts stored", def.PutsOK, def.Puts)
	}
	if r := def.SuccessRate(); r < 0.98 {
		t.Fatalf("default profile found %.1f%% of values", 100*r)
	}
	if r := cls.SuccessRate(); r < 0.95 {
		t.Fatalf("classic profile found %.1f%% of values", 100*r)
	}
	for _, p := range []float64{50, 90, 99} {
		d, c := def.Percentile(p, Latency), cls.Percentile(p, Latency)
		if d >= c {
			t.Errorf("p%v latency: default %v, classic %v", p, d, c)
		}
	}
	if d := def.Percentile(90, Latency); d > 3*time.Second {
		t.Errorf("default p90 latency %v", d)
	}
}

// The same seed gives the same run.
func TestSimReproducible(t *testing.T) {
	cfg := Config{Nodes: 100, Unresponsive: 0.3, RTTMin: 20 * time.Millisecond, RTTMax: 200 * time.Millisecond,
		Loss: 0.02, Churn: 0.1, Puts: 10, Gets: 40, Seed: 9, Engine: engine.Default(), Settle: 2 * time.Minute}
	a, err := Run(cfg)
	if err != nil {
		t.Fatal(err)
	}
	b, err := Run(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if a.Events != b.Events || a.Datagrams != b.Datagrams || a.SimTime != b.SimTime || len(a.Gets) != len(b.Gets) {
		t.Fatalf("runs differ:\n%v\n%v", a, b)
	}
	for i := range a.Gets {
		if a.Gets[i] != b.Gets[i] {
			t.Fatalf("get %d differs: %+v vs %+v", i, a.Gets[i], b.Gets[i])
		}
	}
	if a.Left == 0 {
		t.Fatal("no churn happened")
	}
}

// The mainline personality on the same network model: announces are found
// by get_peers.
func TestSimMainline(t *testing.T) {
	nodes, settle := 300, 20*time.Minute
	if raceEnabled {
		nodes, settle = 120, 16*time.Minute
	}
	rep, err := Run(Config{
		Nodes: nodes, Settle: settle, Unresponsive: 0.5, RTTMin: 20 * time.Millisecond, RTTMax: 300 * time.Millisecond,
		Loss: 0.01, Puts: 30, Gets: 120, Seed: 1, Mainline: true, MainlineEngine: engine.MainlineDefault(),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Log(rep)
	if rep.Joined < rep.Nodes*95/100 || rep.PutsOK < rep.Puts*9/10 {
		t.Fatalf("joined %d of %d, announces %d of %d", rep.Joined, rep.Nodes, rep.PutsOK, rep.Puts)
	}
	if r := rep.SuccessRate(); r < 0.95 {
		t.Fatalf("get_peers found %.1f%% of announces", 100*r)
	}
}
