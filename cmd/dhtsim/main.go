// Command dhtsim simulates an apt-p2p DHT of many nodes on a virtual clock
// (package engine/sim) and prints the get latency distribution, hops,
// messages per lookup and success rate for a timeout profile.
//
//	go run ./cmd/dhtsim -nodes 10000 -unresponsive 0.5 -rtt-min 20ms -rtt-max 300ms -loss 0.01 -profile both
package main

import (
	"flag"
	"fmt"
	"os"
	"runtime/pprof"
	"time"

	"github.com/apt-p2p/apt-p2p/engine"
	"github.com/apt-p2p/apt-p2p/engine/sim"
)

func main() {
	nodes := flag.Int("nodes", 1000, "number of nodes")
	unresp := flag.Float64("unresponsive", 0.5, "fraction of NATed nodes (send, but receive only from peers they sent to)")
	rttMin := flag.Duration("rtt-min", 20*time.Millisecond, "smallest round-trip time")
	rttMax := flag.Duration("rtt-max", 300*time.Millisecond, "largest round-trip time")
	loss := flag.Float64("loss", 0.01, "datagram loss probability")
	churn := flag.Float64("churn", 0, "fraction of nodes that leave between the puts and the gets")
	puts := flag.Int("puts", 200, "number of puts")
	gets := flag.Int("gets", 1000, "number of gets")
	profile := flag.String("profile", "both", "timeout profile: default, classic or both")
	seed := flag.Uint64("seed", 1, "random seed")
	settle := flag.Duration("settle", 20*time.Minute, "simulated time between the last join and the first put")
	noProbation := flag.Bool("no-probation", false, "default profile without NAT probation (to measure its effect)")
	noPipeline := flag.Bool("no-pipeline", false, "default profile with the strictly two-phase get (to measure its effect)")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile to this file")
	flag.Parse()
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err != nil {
			fmt.Fprintln(os.Stderr, "dhtsim:", err)
			os.Exit(1)
		}
		pprof.StartCPUProfile(f)
		defer pprof.StopCPUProfile()
	}

	var profiles []engine.TimeoutProfile
	switch *profile {
	case "default":
		profiles = []engine.TimeoutProfile{engine.ProfileAdaptive}
	case "classic":
		profiles = []engine.TimeoutProfile{engine.ProfileClassic}
	case "both":
		profiles = []engine.TimeoutProfile{engine.ProfileAdaptive, engine.ProfileClassic}
	default:
		fmt.Fprintf(os.Stderr, "dhtsim: unknown profile %q (default, classic or both)\n", *profile)
		os.Exit(2)
	}
	for _, p := range profiles {
		// "classic" is the original's behaviour as a whole (timeouts, no NAT
		// probation, two-phase gets); "default" is this engine's.
		ec := engine.Default()
		if p == engine.ProfileClassic {
			ec = engine.Classic()
		} else {
			ec.NATProbation = !*noProbation
			ec.PipelineGets = !*noPipeline
		}
		rep, err := sim.Run(sim.Config{
			Nodes: *nodes, Unresponsive: *unresp, RTTMin: *rttMin, RTTMax: *rttMax, Loss: *loss,
			Churn: *churn, Puts: *puts, Gets: *gets, Seed: *seed, Settle: *settle, Engine: ec,
		})
		if err != nil {
			fmt.Fprintln(os.Stderr, "dhtsim:", err)
			return
		}
		fmt.Println(rep)
	}
}
