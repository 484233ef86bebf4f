// Command dhtsim simulates an apt-p2p DHT of many nodes on a virtual clock
// (package engine/sim) and prints the get latency distribution, hops,
// messages per lookup and success rate for a timeout profile.
//
//	go run ./cmd/dhtsim -nodes 10000 -unresponsive 0.5 -rtt-min 20ms -rtt-max 300ms -loss 0.01 -profile both
//
// With -crowd N it runs flash crowds instead (sim.RunCrowd, issue 10): N
// daemons asking for one new file within -window, deciding as
// internal/download does; it prints how many fetch from the mirror, the
// time to first byte, and with -lone the cost of the claim to a lone user.
//
//	go run ./cmd/dhtsim -nodes 10000 -unresponsive 0.5 -rtt-min 20ms -rtt-max 300ms -loss 0.01 -crowd 1000 -window 2s -crowds 3 -lone 40
package main

import (
	"cmp"
	"flag"
	"fmt"
	"os"
	"runtime/pprof"
	"strings"
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
	families := flag.String("families", "ipv4", "address families of every node: ipv4, ipv6 or dual (a paired IPv4 and IPv6 core per node, BEP 32 style)")
	crowd := flag.Int("crowd", 0, "flash crowd: daemons asking for one new file (0: run puts and gets instead)")
	window := flag.Duration("window", 2*time.Second, "crowd: the askers start within this window")
	crowds := flag.Int("crowds", 1, "crowd: crowds in a row on the same network, each for a new file")
	every := flag.Duration("every", 0, "crowd: time between two crowds' starts (0: 10 s after the previous one ends)")
	warmup := flag.Int("warmup", 3, "crowd: gets per asker beforehand, to set its lookup average (0: freshly started daemons)")
	lone := flag.Int("lone", 0, "crowd: lone-asker trials, each with the claim and with the Get alone")
	mirrorFB := flag.Duration("mirror-first-byte", 150*time.Millisecond, "crowd: a mirror request's time to first byte")
	skew := flag.Duration("skew", 0, "crowd: each asker's clock is off by up to ± this")
	noHerd := flag.Bool("no-herd", false, "crowd: Get only, no claims (the behaviour before the herd)")
	natReread := flag.Duration("nat-reread", 0, "crowd: a NATed asker that read no claim reads again this long after (0: never)")
	variants := flag.String("variants", "", "crowd: compare variants on the same network, comma-separated, each a +-joined list of: "+
		"download (as the daemon does), no-herd, ext<dur> (claim extension; download: 2s), settle<dur> (fixed settle; settle0: none), "+
		"reread<dur>, natdelay<dur> (NATed askers read the claims that late; natdelay0: at once), nat-claims (NATed askers claim too), skew<dur>; e.g. download,ext1s+natdelay0")
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
	if *crowd > 0 {
		ec := engine.Default()
		if *profile == "classic" {
			ec = engine.Classic()
		}
		vs, err := parseVariants(*variants)
		if err != nil {
			fmt.Fprintln(os.Stderr, "dhtsim:", err)
			os.Exit(2)
		}
		rep, err := sim.RunCrowd(sim.CrowdConfig{
			Config: sim.Config{Nodes: *nodes, Unresponsive: *unresp, RTTMin: *rttMin, RTTMax: *rttMax, Loss: *loss,
				Seed: *seed, Settle: *settle, Engine: ec},
			Askers: *crowd, Window: *window, Crowds: *crowds, Every: *every, Warmup: *warmup, Lone: *lone, MirrorFirstByte: *mirrorFB,
			ClockSkew: *skew, NoHerd: *noHerd, NATReread: *natReread,
		}, vs...)
		if err != nil {
			fmt.Fprintln(os.Stderr, "dhtsim:", err)
			os.Exit(1)
		}
		fmt.Println(rep)
		return
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
		fams := map[string]engine.Family{"ipv4": engine.IPv4, "ipv6": engine.IPv6, "dual": engine.DualStack}[*families]
		if fams == 0 {
			fmt.Fprintf(os.Stderr, "dhtsim: unknown -families %q (ipv4, ipv6 or dual)\n", *families)
			os.Exit(2)
		}
		rep, err := sim.Run(sim.Config{
			Nodes: *nodes, Unresponsive: *unresp, RTTMin: *rttMin, RTTMax: *rttMax, Loss: *loss,
			Churn: *churn, Puts: *puts, Gets: *gets, Seed: *seed, Settle: *settle, Engine: ec, Families: fams,
		})
		if err != nil {
			fmt.Fprintln(os.Stderr, "dhtsim:", err)
			return
		}
		fmt.Println(rep)
		fmt.Printf("  families %s: %d datagram bytes in all (%.0f per datagram)\n", *families, rep.Bytes, float64(rep.Bytes)/float64(max(rep.Datagrams, 1)))
	}
}

// parseVariants reads -variants: comma-separated variants, each a +-joined
// list of changes to the crowd's behaviour.
func parseVariants(list string) ([]sim.CrowdVariant, error) {
	if list == "" {
		return nil, nil
	}
	var out []sim.CrowdVariant
	for _, name := range strings.Split(list, ",") {
		var changes []func(*sim.CrowdConfig)
		for _, part := range strings.Split(name, "+") {
			dur := func(prefix string) (time.Duration, bool) {
				v, ok := strings.CutPrefix(part, prefix)
				if !ok {
					return 0, false
				}
				if v == "0" {
					return 0, true
				}
				d, err := time.ParseDuration(v)
				return d, err == nil
			}
			if d, ok := dur("ext"); ok {
				changes = append(changes, func(c *sim.CrowdConfig) { c.ClaimExtension = d })
			} else if d, ok := dur("settle"); ok {
				changes = append(changes, func(c *sim.CrowdConfig) { c.ClaimSettle = cmp.Or(d, -1) })
			} else if d, ok := dur("reread"); ok {
				changes = append(changes, func(c *sim.CrowdConfig) { c.NATReread = d })
			} else if d, ok := dur("natdelay"); ok {
				changes = append(changes, func(c *sim.CrowdConfig) { c.NATReadDelay = cmp.Or(d, -1) })
			} else if d, ok := dur("skew"); ok {
				changes = append(changes, func(c *sim.CrowdConfig) { c.ClockSkew = d })
			} else {
				switch part {
				case "download":
				case "no-herd":
					changes = append(changes, func(c *sim.CrowdConfig) { c.NoHerd = true })
				case "nat-claims":
					changes = append(changes, func(c *sim.CrowdConfig) { c.NATClaims = true })
				default:
					return nil, fmt.Errorf("unknown variant %q in %q", part, name)
				}
			}
		}
		out = append(out, sim.CrowdVariant{Name: name, Apply: func(c *sim.CrowdConfig) {
			for _, f := range changes {
				f(c)
			}
		}})
	}
	return out, nil
}
