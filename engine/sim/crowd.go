package sim

import (
	"cmp"
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/apt-p2p/apt-p2p/engine"
	"github.com/apt-p2p/apt-p2p/internal/download"
	"github.com/apt-p2p/apt-p2p/wire"
)

// CrowdConfig describes flash crowds (issue 10): many daemons of one network
// asking for the same file, which nobody holds yet, within a short window.
// Each asker decides as internal/download decides (doc.go "Flash crowds",
// lookup.go): a reachable daemon looks the file's key K up (Get) and, at the
// same time, claims its place under wire.PartialKey(K) (engine.Core.Claim);
// the decision waits for both, bounded by MirrorDelay and extended once by
// download.ClaimExtension while the claim is pending; download.Follow then
// names the earlier claimants to follow (a random one of them first), or
// none: lead (fetch from the mirror).
//
// A NATed daemon cannot serve others, so it does not claim: it reads the
// claims with a Get of PartialKey(K), download.UnreachableReadDelay after its
// Get of K, follows one of the claimants it finds, and otherwise fetches from
// the mirror without claiming.
type CrowdConfig struct {
	Config // the network; Puts, Gets and Churn are not used

	Askers int           // daemons in one crowd, random joined nodes (1000)
	Window time.Duration // their starts are uniform in [0, Window) (2 s)
	Crowds int           // crowds in a row on the same network, each for a new key (1)
	// Every is the time from one crowd's start to the next's; 0: 10 s after
	// the previous crowd's last asker is done.
	Every time.Duration

	// Warmup is how many gets of stored keys each asker makes before the
	// crowds (at random times within a minute), to set its lookup time
	// average as a running daemon has one (3). 0 models daemons that have
	// just started: no average, so the shortest claim settle and the
	// longest mirror delay.
	Warmup int
	// Lone is the number of lone-asker trials after the crowds: one asker
	// alone, for a key of its own, once as Herd decides and once with the
	// Get alone (the behaviour before the herd), to measure what the claim
	// costs a user nobody else is downloading with.
	Lone int

	MirrorFirstByte time.Duration // a leader's request to the mirror until its first byte (150 ms)
	MirrorDelay     time.Duration // download.Config.MirrorDelay (1 s)
	ClaimWindow     time.Duration // download.Config.ClaimWindow (1 min)
	// ClockSkew: each asker's clock is off by a uniform amount in
	// [-ClockSkew, ClockSkew], which its claim's time carries.
	ClockSkew time.Duration

	// ClaimExtension is how much longer than MirrorDelay the decision waits
	// for a pending claim (0: download.ClaimExtension).
	ClaimExtension time.Duration
	// ClaimSettle fixes the claim's settle (0: download.ClaimSettle; < 0:
	// none).
	ClaimSettle time.Duration

	NoHerd bool // every asker does the Get alone (the behaviour before the herd)
	// NATReread: a NATed asker that found no claim reads them again once its
	// first read is done, as long as it can before its decision deadline (a
	// proposed fix; 0: off).
	NATReread time.Duration
	// NATClaims: NATed askers claim like the others (what internal/download
	// does today: it claims whenever it knows its external address). A
	// follower then streams from the first reachable claimant among its
	// sources (optimistically: trying a NATed one costs it nothing); with
	// none it waits HerdPatience and fetches from the mirror.
	NATClaims    bool
	HerdPatience time.Duration // download.Config.HerdPatience (3 s)
	// NATReadDelay: a NATed asker starts its read of the claims this long
	// after its Get of the file's key, so that it reads about when a claim
	// of its own would have been checked (0: download.UnreachableReadDelay;
	// < 0: at once).
	NATReadDelay time.Duration
}

func (c *CrowdConfig) extension() time.Duration {
	if c.ClaimExtension > 0 {
		return c.ClaimExtension
	}
	return download.ClaimExtension
}

func (c *CrowdConfig) settle() time.Duration {
	switch {
	case c.ClaimSettle > 0:
		return c.ClaimSettle
	case c.ClaimSettle < 0:
		return 0
	}
	return download.ClaimSettle
}

func (c *CrowdConfig) natReadDelay() time.Duration {
	switch {
	case c.NATReadDelay > 0:
		return c.NATReadDelay
	case c.NATReadDelay < 0:
		return 0
	}
	return download.UnreachableReadDelay
}

func (c *CrowdConfig) fillCrowd() {
	if c.Askers == 0 {
		c.Askers = 1000
	}
	if c.Window == 0 {
		c.Window = 2 * time.Second
	}
	if c.Crowds == 0 {
		c.Crowds = 1
	}
	if c.MirrorFirstByte == 0 {
		c.MirrorFirstByte = 150 * time.Millisecond
	}
	if c.MirrorDelay == 0 {
		c.MirrorDelay = time.Second
	}
	if c.ClaimWindow == 0 {
		c.ClaimWindow = time.Minute
	}
	if c.HerdPatience == 0 {
		c.HerdPatience = 3 * time.Second
	}
}

// Why a daemon led (fetched from the mirror). The first two are the
// decision's own bounds; the others compare what it read with where the
// earlier claims had landed by then (stores and reads as delivered).
const (
	WhyFirst     = "no earlier claim stored anywhere yet"                // the crowd's leader, or a NATed asker that read before any claim landed
	WhyTimeout   = "claim still pending at the deadline"                 // MirrorDelay twice was not enough
	WhyFailed    = "claim failed"                                        // the Claim ended with an error and no values
	WhyUnread    = "earlier claim held by a node it asked, unread"       // reply lost, or the node was not asked for values
	WhyLate      = "earlier claim landed after it asked"                 // on a node it asked, but after its request: the settle was short
	WhyElsewhere = "earlier claims only on nodes it did not ask"         // the lookups ended on different storing nodes
	WhyOnlyNATed = "earlier claimants all NATed (mirror after patience)" // NATClaims: nobody it could stream from
)

// Asker is one daemon of a crowd and what it decided.
type Asker struct {
	Node     int
	NATed    bool
	Start    time.Duration // after the crowd's start
	Claim    int64         // the claim's time in µs since the Unix epoch (its own clock); 0: none made
	Decided  time.Duration // from Start to the decision
	Parent   int           // the node it follows (streams from), -1: it leads (mirror)
	Sources  int           // earlier claimants named by the election
	Seen     int           // claims read back before the decision
	ClaimFor time.Duration // from Start to the end of the Claim (or of the NATed read), even after the decision; -1: never
	StoreAt  time.Duration // from Start to the claim's store (the end of its find_node); 0: none
	GetFor   time.Duration // from Start to the end of the Get of the file's key
	// What the decision would have been if a store_value reply carried the
	// claims the node held when the store arrived (a proposed extension):
	// the claim ends at its last store acknowledgement, and follows if a
	// node it stored on held an earlier claim. NATed askers are unchanged.
	StoreReplyLeads   bool
	StoreReplyDecided time.Duration
	Bound             time.Duration // the latest the decision could come: the mirror delay plus the claim's extension
	Messages          int           // requests sent by the claim (or the NATed read)
	LookupMsgs        int           // requests sent by the Get of the file's key
	TTFB              time.Duration // from Start to the first byte of the file
	Why               string        // leaders: why (the Why constants)
	Settle            time.Duration // the claim's settle (from the asker's lookup average)
}

// Leads reports whether the asker fetches from the mirror.
func (a *Asker) Leads() bool { return a.Parent < 0 }

// CrowdRun is one crowd.
type CrowdRun struct {
	Start     time.Time     // the crowd's start on the simulated clock
	At        time.Duration // the same, from the first node's start
	Askers    []Asker
	Datagrams uint64 // sent during the crowd
	// Reply limits seen: the most claims one node held under the key, and
	// the most one get_value reply carried.
	MaxHeld, MaxReply int
	KeyFull           int           // claim stores a node refused because the key held MaxValuesPerKey values
	MaxChildren       int           // the most askers following one parent
	Parents           int           // askers followed by at least one other
	FirstStore        time.Duration // when the first claim was stored, after the crowd's start
	Stores            int           // claims stored (accepted by a node), and those from NATed askers (none: they do not claim)
	NATedStores       int
}

// LoneTrial is one asker alone, both ways.
type LoneTrial struct {
	Node              int
	NATed             bool
	Herd, GetOnly     time.Duration // decision time with the claim, and with the Get alone
	HerdMsgs, GetMsgs int           // requests sent (claim or read plus Get, and Get alone)
	StoreReply        time.Duration // the store-reply estimate of the decision time (Asker.StoreReplyDecided)
}

// CrowdVariant changes how the askers behave (not the network), for a
// comparison on the same network (RunCrowd).
type CrowdVariant struct {
	Name  string
	Apply func(*CrowdConfig)
}

// VariantRun is what one variant gave.
type VariantRun struct {
	Name   string
	Cfg    CrowdConfig
	Crowds []CrowdRun
	Lone   []LoneTrial
}

// CrowdReport is the outcome of RunCrowd.
type CrowdReport struct {
	Net  *Report // the network (nodes, NATed, joined, events)
	Runs []VariantRun
}

type askState struct {
	a         *Asker
	idx       int32
	contact   netip.AddrPort
	start     int64
	skew      int64
	ewma      time.Duration
	delay     time.Duration
	key, pk   wire.ID
	noHerd    bool
	lookedUp  bool
	haveClaim bool
	claimOK   bool
	claimEnd  int64 // when the claim's result arrived (own clock, for the window)
	vals      [][]byte
	extended  bool
	decided   bool
	decidedAt int64
	deadline  int64
	open      int   // DHT operations still running
	crowdOpen *int  // askers of the crowd not done
	counted   bool  // done: decided and no operation running
	bound     int64 // the latest decision: start + delay + MirrorDelay
}

// contactOf is the peer-server address of node i, as its claims carry it.
func contactOf(i int) netip.AddrPort { return netip.AddrPortFrom(nodeAddr(i).Addr(), mlPort) }

func contactIndex(c netip.AddrPort) int { return nodeIndex(netip.AddrPortFrom(c.Addr(), 6881)) }

// RunCrowd runs each variant (cfg as it is when none is given) on its own
// copy of the network of cfg.Config: the same seed builds the same network,
// warms the same askers up and gives them the same start times and keys, so
// the variants differ only by what they change (with Every set, the crowds
// also start at the same moments). Each copy runs the crowds one after
// another, then the lone trials.
func RunCrowd(cfg CrowdConfig, variants ...CrowdVariant) (*CrowdReport, error) {
	cfg.fillCrowd()
	if cfg.Mainline {
		return nil, fmt.Errorf("sim: crowds run on the apt-p2p DHT only")
	}
	if len(variants) == 0 {
		variants = []CrowdVariant{{Name: "as configured"}}
	}
	start := time.Now()
	rep := &CrowdReport{}
	for _, v := range variants {
		vc := cfg
		if v.Apply != nil {
			v.Apply(&vc)
		}
		vr, net, err := runVariant(vc)
		if err != nil {
			return nil, err
		}
		vr.Name = v.Name
		rep.Runs = append(rep.Runs, vr)
		if rep.Net == nil {
			rep.Net = net
		} else {
			rep.Net.Events += net.Events
			rep.Net.Datagrams += net.Datagrams
			rep.Net.SimTime += net.SimTime
		}
	}
	rep.Net.Wall = time.Since(start)
	return rep, nil
}

// runVariant builds the network, warms the askers up, and runs the crowds
// and the lone trials of cfg.
func runVariant(cfg CrowdConfig) (VariantRun, *Report, error) {
	s, net, err := build(cfg.Config)
	if err != nil {
		return VariantRun{}, nil, err
	}
	cfg.Config = s.cfg
	vr := VariantRun{Cfg: cfg}
	sc := rand.New(rand.NewPCG(cfg.Seed^0x2545f4914f6cdd1d, cfg.Seed+1))
	var joined []int32
	for i, n := range s.nodes {
		if n.core.Joined() {
			joined = append(joined, int32(i))
		}
	}
	if len(joined) == 0 {
		return VariantRun{}, nil, fmt.Errorf("sim: no node joined")
	}
	pick := func(n int) []int32 {
		p := slices.Clone(joined)
		sc.Shuffle(len(p), func(i, j int) { p[i], p[j] = p[j], p[i] })
		return p[:min(n, len(p))]
	}
	crowds := make([][]int32, cfg.Crowds)
	offsets := make([][]int64, cfg.Crowds)
	for c := range crowds {
		crowds[c] = pick(cfg.Askers)
		for range crowds[c] {
			offsets[c] = append(offsets[c], sc.Int64N(int64(cfg.Window)))
		}
	}
	lone := pick(cfg.Lone)
	ewma := make(map[int32]time.Duration)
	skew := make(map[int32]float64) // in [-1, 1]: times ClockSkew
	var warm []int32
	for _, ask := range append(slices.Concat(crowds...), lone...) {
		if _, ok := ewma[ask]; !ok {
			ewma[ask] = 0
			warm = append(warm, ask)
			skew[ask] = 2*sc.Float64() - 1
		}
	}
	s.warmup(sc, warm, cfg.Warmup, ewma)
	keys := make([]wire.ID, cfg.Crowds+2*len(lone))
	for k := range keys {
		for j := range keys[k] {
			keys[k][j] = byte(sc.Uint32())
		}
	}

	next := s.now + int64(10*time.Second)
	for c := range crowds {
		sent := s.sent
		t0 := max(next, s.now+int64(time.Second))
		if cfg.Every > 0 {
			next = t0 + int64(cfg.Every)
		}
		run := s.crowd(&cfg, keys[c], t0, crowds[c], offsets[c], ewma, skew)
		if cfg.Every == 0 {
			next = s.now + int64(10*time.Second)
		}
		run.Datagrams = s.sent - sent
		vr.Crowds = append(vr.Crowds, run)
	}
	keys = keys[cfg.Crowds:]
	for k, i := range lone {
		t := LoneTrial{Node: int(i), NATed: s.nodes[i].nat}
		for m, noHerd := range []bool{false, true} {
			one := cfg
			one.NoHerd = noHerd
			run := s.crowd(&one, keys[2*k+m], s.now+int64(5*time.Second), []int32{i}, []int64{0}, ewma, skew)
			a := run.Askers[0]
			if noHerd {
				t.GetOnly, t.GetMsgs = a.Decided, a.LookupMsgs
			} else {
				t.Herd, t.HerdMsgs = a.Decided, a.LookupMsgs+a.Messages
				t.StoreReply = a.StoreReplyDecided
			}
		}
		vr.Lone = append(vr.Lone, t)
	}
	net.Events = s.events
	net.Datagrams = s.sent
	net.SimTime = time.Duration(s.now)
	return vr, net, nil
}

// warmup stores a few keys and has each node of warm get some of them, so
// that its lookup average (download's EWMA of the time to a first value) is
// a running daemon's.
func (s *Sim) warmup(sc *rand.Rand, warm []int32, gets int, ewma map[int32]time.Duration) {
	if gets == 0 || len(warm) == 0 {
		return
	}
	const nkeys = 20
	keys := make([]wire.ID, nkeys)
	pending := 0
	t := s.now
	for k := range keys {
		for j := range keys[k] {
			keys[k][j] = byte(sc.Uint32())
		}
		i := int32(sc.IntN(len(s.nodes)))
		for !s.nodes[i].core.Joined() {
			i = int32(sc.IntN(len(s.nodes)))
		}
		key := keys[k]
		pending++
		s.at(t+int64(k)*int64(s.cfg.OpSpacing), func() {
			v := wire.AppendPeerValue(nil, &wire.PeerValue{Contact: contactOf(int(i))})
			s.nodes[i].core.put(s.time(), key, v, func(engine.Result) { pending-- })
			s.rewake(i)
		})
	}
	s.runUntil(s.now+int64(time.Hour), func() bool { return pending == 0 })
	t = s.now + int64(time.Second)
	for _, i := range warm {
		for g := 0; g < gets; g++ {
			key := keys[sc.IntN(nkeys)]
			pending++
			s.at(t+sc.Int64N(int64(time.Minute)), func() {
				s.nodes[i].core.get(s.time(), key, func([]byte) {}, func(r engine.Result) {
					pending--
					if r.Err == nil && r.Values > 0 {
						ewma[i] = download.NextLookupAverage(ewma[i], r.FirstValue)
					}
				})
				s.rewake(i)
			})
		}
	}
	s.runUntil(s.now+int64(time.Hour), func() bool { return pending == 0 })
}

// crowd runs one crowd for key: askers start at t0 + uniform [0, Window).
func (s *Sim) crowd(cfg *CrowdConfig, key wire.ID, t0 int64, askers []int32, offsets []int64,
	ewma map[int32]time.Duration, skew map[int32]float64) CrowdRun {
	pk := wire.PartialKey(key)
	tr := &crowdTrack{pk: pk, perKey: cfg.Engine.MaxValuesPerKey, held: map[int32]int{}, stored: map[[2]int32]bool{},
		queries: map[int32][]queryRec{}, replies: map[int32]int{}, minClaim: map[int32]int64{}, storeTID: map[wire.ID]ackRec{},
		acks: map[int32][]ackRec{}}
	if tr.perKey == 0 {
		tr.perKey = engine.Default().MaxValuesPerKey
	}
	s.track = tr
	s.crowdRand = rand.New(rand.NewPCG(binary.LittleEndian.Uint64(key[:8]), binary.LittleEndian.Uint64(key[8:16])))
	defer func() { s.track = nil }()
	run := CrowdRun{Start: s.epoch.Add(time.Duration(t0)), At: time.Duration(t0), Askers: make([]Asker, len(askers))}
	states := make([]*askState, len(askers))
	byNode := map[int32]*askState{}
	open := 0
	for k, i := range askers {
		ew := ewma[i]
		st := &askState{a: &run.Askers[k], idx: i, contact: contactOf(int(i)), skew: int64(skew[i] * float64(cfg.ClockSkew)), ewma: ew,
			delay: download.MirrorDelayFor(ew, cfg.MirrorDelay), key: key, pk: pk, noHerd: cfg.NoHerd}
		st.start = t0 + offsets[k]
		*st.a = Asker{Node: int(i), NATed: s.nodes[i].nat, Start: time.Duration(st.start - t0), Parent: -1, ClaimFor: -1,
			Settle: cfg.settle()}
		if cfg.ClaimSettle != 0 {
			st.a.Settle = max(cfg.ClaimSettle, 0)
		}
		st.bound = st.start + int64(st.delay+cfg.extension())
		st.a.Bound = st.delay + cfg.extension()
		st.crowdOpen = &open
		states[k] = st
		byNode[i] = st
		open++
		s.at(st.start, func() { s.ask(cfg, st) })
	}
	s.runUntil(s.now+int64(time.Hour), func() bool { return open == 0 })

	// Time to first byte: a leader's is its decision plus the mirror's
	// first byte; a follower's, the later of its request reaching its
	// parent and its parent's first byte streamed on to it.
	ttfb := map[int32]int64{} // absolute
	var first func(st *askState) int64
	first = func(st *askState) int64 {
		if t, ok := ttfb[st.idx]; ok {
			return t
		}
		var t int64
		if st.a.Parent < 0 {
			t = st.decidedAt + int64(cfg.MirrorFirstByte)
			if st.a.Why == WhyOnlyNATed {
				t += int64(cfg.HerdPatience)
			}
		} else {
			me, p := s.nodes[st.idx], s.nodes[st.a.Parent]
			t = st.decidedAt + me.delay + p.delay
			if ps := byNode[int32(st.a.Parent)]; ps != nil { // always, for a new key
				t = max(t, first(ps)+(me.delay+p.delay)/2)
			}
		}
		ttfb[st.idx] = t
		return t
	}
	children := map[int]int{}
	for _, st := range states {
		st.a.StoreReplyLeads, st.a.StoreReplyDecided = st.a.Leads(), st.a.Decided
		if acks := tr.acks[st.idx]; !st.a.NATed && !st.noHerd && len(acks) > 0 {
			end, earlier := int64(0), false
			for _, r := range acks {
				end = max(end, r.at)
				earlier = earlier || r.earlier
			}
			d := max(time.Duration(end-st.start), st.a.GetFor)
			if bound := time.Duration(st.bound - st.start); d > bound {
				st.a.StoreReplyLeads, st.a.StoreReplyDecided = true, bound
			} else {
				st.a.StoreReplyLeads, st.a.StoreReplyDecided = !earlier, d
			}
		}
		st.a.TTFB = time.Duration(first(st) - st.start)
		if st.a.Parent >= 0 {
			children[st.a.Parent]++
			run.MaxChildren = max(run.MaxChildren, children[st.a.Parent])
		} else if !st.noHerd && st.a.Why == "" {
			st.a.Why = tr.why(st)
		}
	}
	run.Parents = len(children)
	if len(tr.stores) > 0 {
		run.FirstStore = time.Duration(tr.stores[0].at - t0)
	}
	for _, n := range tr.held {
		run.MaxHeld = max(run.MaxHeld, n)
	}
	run.MaxReply, run.KeyFull = tr.maxReply, tr.keyFull
	for _, r := range tr.stores {
		run.Stores++
		if s.nodes[r.by].nat {
			run.NATedStores++
		}
	}
	return run
}

// ask starts one asker's lookup and claim (or claim read) and arms its
// decision deadline, as download's Flight.lookup does.
func (s *Sim) ask(cfg *CrowdConfig, st *askState) {
	core := s.nodes[st.idx].core.(aptCore).Core
	now := s.time()
	st.open = 1
	core.Get(now, st.key, func([]byte) {}, func(r engine.Result) {
		st.a.LookupMsgs = r.Messages
		st.a.GetFor = time.Duration(s.now - st.start)
		st.lookedUp = true
		s.opDone(cfg, st)
	})
	claiming := !st.noHerd && (!st.a.NATed || cfg.NATClaims)
	st.haveClaim = st.noHerd
	switch {
	case claiming:
		st.open++
		build := func(now time.Time) []byte {
			st.a.Claim = now.UnixMicro() + st.skew/1000
			st.a.StoreAt = time.Duration(s.now - st.start)
			return wire.AppendPeerValue(nil, &wire.PeerValue{Contact: st.contact, Claim: st.a.Claim})
		}
		core.Claim(now, st.pk, build, st.a.Settle, func(r engine.Result, vals [][]byte) {
			st.a.Messages = r.Messages
			st.a.ClaimFor = time.Duration(s.now - st.start)
			if !st.decided {
				st.haveClaim = true
				st.claimEnd = s.now
				st.claimOK = r.Err == nil || len(vals) > 0
				st.vals = vals
			}
			s.opDone(cfg, st)
		})
	case !st.noHerd && cfg.natReadDelay() > 0:
		st.open++ // the read to come
		s.at(s.now+int64(cfg.natReadDelay()), func() {
			st.open--
			if !st.decided {
				s.readClaims(cfg, st)
				s.rewake(st.idx)
			}
			s.finish(st)
		})
	case !st.noHerd:
		s.readClaims(cfg, st)
	}
	st.deadline = s.now + int64(st.delay)
	s.at(st.deadline, func() { s.deadline(cfg, st) })
	s.rewake(st.idx)
}

// readClaims is a NATed asker's Get of the claims.
func (s *Sim) readClaims(cfg *CrowdConfig, st *askState) {
	st.open++
	core := s.nodes[st.idx].core.(aptCore).Core
	core.Get(s.time(), st.pk, func(v []byte) {
		if !st.decided {
			st.vals = append(st.vals, v)
		}
	}, func(r engine.Result) {
		st.a.Messages += r.Messages
		st.a.ClaimFor = time.Duration(s.now - st.start)
		if !st.decided {
			st.claimEnd = s.now
			st.claimOK = true
			if cfg.NATReread > 0 && len(st.vals) == 0 && s.now+int64(cfg.NATReread) < st.bound {
				st.open++ // the re-read to come
				s.at(s.now+int64(cfg.NATReread), func() {
					st.open--
					if !st.decided {
						s.readClaims(cfg, st)
						s.rewake(st.idx)
					}
					s.finish(st)
				})
			} else {
				st.haveClaim = true
			}
		}
		s.opDone(cfg, st)
	})
}

func (s *Sim) opDone(cfg *CrowdConfig, st *askState) {
	st.open--
	if !st.decided && st.lookedUp && st.haveClaim {
		s.decide(cfg, st)
	}
	s.finish(st)
}

// finish counts an asker out of its crowd once it has decided and none of
// its operations runs any more.
func (s *Sim) finish(st *askState) {
	if st.decided && st.open == 0 && !st.counted {
		st.counted = true
		*st.crowdOpen--
	}
}

func (s *Sim) deadline(cfg *CrowdConfig, st *askState) {
	if st.decided {
		return
	}
	if !st.haveClaim && !st.extended {
		// download: the claim gets ClaimExtension more.
		st.extended = true
		st.deadline = s.now + int64(cfg.extension())
		s.at(st.deadline, func() { s.deadline(cfg, st) })
		return
	}
	s.decide(cfg, st)
	s.finish(st)
}

// decide is the end of download's Flight.lookup: no complete holder exists
// in a crowd, so an earlier claim found makes a follower, none a leader.
func (s *Sim) decide(cfg *CrowdConfig, st *askState) {
	st.decided = true
	st.decidedAt = s.now
	st.a.Decided = time.Duration(s.now - st.start)
	if st.noHerd || !st.claimOK {
		// No claim result (yet): lead. A NATed asker whose re-read is
		// still running decides on what its first read found.
		return
	}
	now := time.Unix(0, s.epoch.UnixNano()+st.claimEnd+st.skew)
	var srcs []netip.AddrPort
	if !st.a.NATed || cfg.NATClaims {
		srcs = download.Follow(st.vals, st.contact, st.a.Claim, now, cfg.ClaimWindow, s.crowdRand.IntN)
	} else {
		// A daemon that did not claim follows any claimant it read.
		srcs = download.Follow(st.vals, netip.AddrPort{}, math.MaxInt64, now, cfg.ClaimWindow, s.crowdRand.IntN)
	}
	st.a.Seen = countClaims(st.vals)
	st.a.Sources = len(srcs)
	if cfg.NATClaims {
		// Only reachable claimants can serve: the others cost a follower
		// nothing here, and leave it to the mirror if they are all it has.
		srcs = slices.DeleteFunc(srcs, func(c netip.AddrPort) bool { return s.nodes[contactIndex(c)].nat })
		if st.a.Sources > 0 && len(srcs) == 0 {
			st.a.Why = WhyOnlyNATed
		}
	}
	if len(srcs) > 0 {
		st.a.Parent = contactIndex(srcs[0])
	}
}

func countClaims(vals [][]byte) int {
	n := 0
	for _, raw := range vals {
		var v wire.PeerValue
		if v.Parse(raw) == nil && v.Claim > 0 {
			n++
		}
	}
	return n
}

// crowdTrack watches the datagrams of a crowd as they are delivered: claim
// stores under the PartialKey and the requests that read them, to explain
// why a leader saw no earlier claim.
type crowdTrack struct {
	pk       wire.ID
	perKey   int
	held     map[int32]int        // claims held per node
	stored   map[[2]int32]bool    // (node, claimant) stored
	stores   []storeRec           // accepted claim stores, in delivery order
	queries  map[int32][]queryRec // per asker: its find_value/get_value of the key as delivered
	replies  map[int32]int        // per asker: get_value replies carrying claims it received
	maxReply int
	keyFull  int
	msg      wire.Msg
	// For the store-reply estimate: the earliest claim held per node, the
	// claim stores awaiting their acknowledgement (by transaction ID), and
	// per asker its acknowledged stores.
	minClaim map[int32]int64
	storeTID map[wire.ID]ackRec
	acks     map[int32][]ackRec
}

// ackRec is one claim store: who stored, whether the node held an earlier
// claim when it arrived, and (once acknowledged) when the ack arrived.
type ackRec struct {
	by      int32
	earlier bool
	at      int64
}

type storeRec struct {
	at    int64
	node  int32
	claim int64
	by    int32
}

type queryRec struct {
	at   int64
	node int32
	get  bool
}

// deliver sees a datagram from → to as it is delivered.
func (t *crowdTrack) deliver(now int64, from, to int32, pkt []byte) {
	m := &t.msg
	if m.Parse(pkt) != nil {
		return
	}
	switch {
	case m.Y == 'q' && m.Has&wire.FieldKey != 0 && m.Key == t.pk:
		switch m.Method {
		case wire.MethodStoreValue:
			var v wire.PeerValue
			if v.Parse(m.Value) != nil || v.Claim == 0 {
				return
			}
			if _, ok := t.storeTID[m.TID]; !ok {
				mc, held := t.minClaim[to]
				t.storeTID[m.TID] = ackRec{by: from, earlier: held && mc < v.Claim}
			}
			if t.stored[[2]int32{to, from}] {
				return
			}
			if t.held[to] >= t.perKey {
				t.keyFull++
				return
			}
			t.stored[[2]int32{to, from}] = true
			t.held[to]++
			if mc, ok := t.minClaim[to]; !ok || v.Claim < mc {
				t.minClaim[to] = v.Claim
			}
			t.stores = append(t.stores, storeRec{at: now, node: to, claim: v.Claim, by: from})
		case wire.MethodFindValue, wire.MethodGetValue:
			t.queries[from] = append(t.queries[from], queryRec{at: now, node: to, get: m.Method == wire.MethodGetValue})
		}
	case m.Y == 'r' && m.Has&wire.FieldValues == 0:
		if r, ok := t.storeTID[m.TID]; ok && r.by == to {
			delete(t.storeTID, m.TID)
			r.at = now
			t.acks[to] = append(t.acks[to], r)
		}
	case m.Y == 'r' && m.Values.Len() > 0:
		var v wire.PeerValue
		if v.Parse(m.Values.At(0)) == nil && v.Claim > 0 {
			t.replies[to]++
			t.maxReply = max(t.maxReply, m.Values.Len())
		}
	}
}

// why explains a leader's decision from what was delivered where before it.
func (t *crowdTrack) why(st *askState) string {
	switch {
	case !st.claimOK && !st.haveClaim:
		return WhyTimeout
	case !st.claimOK:
		return WhyFailed
	}
	mine := int64(math.MaxInt64) // a NATed asker would follow any claim
	if !st.a.NATed {
		mine = st.a.Claim
	}
	var earlier []storeRec
	for _, r := range t.stores {
		if r.at < st.decidedAt && r.by != st.idx && r.claim < mine {
			earlier = append(earlier, r)
		}
	}
	if len(earlier) == 0 {
		return WhyFirst
	}
	asked := map[int32]int64{} // node → first request delivered there
	for _, q := range t.queries[st.idx] {
		if q.at >= st.decidedAt || !st.a.NATed && !q.get {
			continue
		}
		if f, ok := asked[q.node]; !ok || q.at < f {
			asked[q.node] = q.at
		}
	}
	late := false
	for _, r := range earlier {
		if at, ok := asked[r.node]; ok {
			if r.at < at {
				return WhyUnread
			}
			late = true
		}
	}
	if late {
		return WhyLate
	}
	return WhyElsewhere
}

// Summary is a crowd's counts and percentiles.
type Summary struct {
	Askers, NATed, Leaders, Followers int
	LeadersNATed                      int
	TTFB, LeaderTTFB, Decided         [3]time.Duration // p50, p90, p99
	ClaimMsgs, LookupMsgs             float64          // per asker
	Why, WhyNATed                     map[string]int   // leaders by reason: all, and the NATed among them
	// The store-reply estimate (Asker.StoreReplyLeads): leaders, and the
	// reachable askers' decision p50.
	StoreReplyLeaders int
	StoreReplyDecided time.Duration
	// Reachable askers' claims, NATed askers' reads (to their end, after the
	// asker's start, whether or not before the decision) and decision
	// bounds: p50, p90, p99.
	ClaimFor, ReadFor, Bound [3]time.Duration
}

// LeaderShare is Leaders / Askers.
func (s Summary) LeaderShare() float64 {
	if s.Askers == 0 {
		return 0
	}
	return float64(s.Leaders) / float64(s.Askers)
}

// Summarize counts a crowd.
func (r *CrowdRun) Summarize() Summary {
	sm := Summary{Askers: len(r.Askers), Why: map[string]int{}, WhyNATed: map[string]int{}}
	var ttfb, lttfb, dec, decB, claim, read, bound []time.Duration
	for i := range r.Askers {
		a := &r.Askers[i]
		bound = append(bound, a.Bound)
		if a.ClaimFor > 0 && a.NATed && a.Claim == 0 {
			read = append(read, a.ClaimFor)
		} else if a.ClaimFor > 0 {
			claim = append(claim, a.ClaimFor)
		}
		if a.StoreReplyLeads {
			sm.StoreReplyLeaders++
		}
		if !a.NATed {
			decB = append(decB, a.StoreReplyDecided)
		}
		if a.NATed {
			sm.NATed++
		}
		ttfb = append(ttfb, a.TTFB)
		dec = append(dec, a.Decided)
		sm.ClaimMsgs += float64(a.Messages)
		sm.LookupMsgs += float64(a.LookupMsgs)
		if a.Leads() {
			sm.Leaders++
			lttfb = append(lttfb, a.TTFB)
			if a.NATed {
				sm.LeadersNATed++
			}
			if a.Why != "" {
				sm.Why[a.Why]++
				if a.NATed {
					sm.WhyNATed[a.Why]++
				}
			}
		} else {
			sm.Followers++
		}
	}
	if sm.Askers > 0 {
		sm.ClaimMsgs /= float64(sm.Askers)
		sm.LookupMsgs /= float64(sm.Askers)
	}
	sm.StoreReplyDecided = percentile(decB, 50)
	for i, p := range []float64{50, 90, 99} {
		sm.TTFB[i] = percentile(ttfb, p)
		sm.LeaderTTFB[i] = percentile(lttfb, p)
		sm.Decided[i] = percentile(dec, p)
		sm.ClaimFor[i] = percentile(claim, p)
		sm.ReadFor[i] = percentile(read, p)
		sm.Bound[i] = percentile(bound, p)
	}
	return sm
}

func percentile(d []time.Duration, p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	d = slices.Clone(d)
	slices.Sort(d)
	i := int(p/100*float64(len(d))+0.5) - 1
	return d[min(max(i, 0), len(d)-1)]
}

func ms(d time.Duration) string { return d.Round(time.Millisecond).String() }

// settles are the claim settles of the reachable askers.
func (r *CrowdRun) settles() []time.Duration {
	var d []time.Duration
	for _, a := range r.Askers {
		if !a.NATed {
			d = append(d, a.Settle)
		}
	}
	return d
}

// Pool summarizes the askers of several crowds together.
func Pool(runs []CrowdRun) Summary {
	var all CrowdRun
	for _, r := range runs {
		all.Askers = append(all.Askers, r.Askers...)
	}
	return all.Summarize()
}

// String is a human-readable report.
func (r *CrowdReport) String() string {
	var b strings.Builder
	n := r.Net
	fmt.Fprintf(&b, "network: %d nodes (NATed %d, joined %d)\n", n.Nodes, n.NATed, n.Joined)
	for _, v := range r.Runs {
		v.write(&b)
	}
	fmt.Fprintf(&b, "%d events, %d datagrams, %v simulated in %v", n.Events, n.Datagrams, n.SimTime.Round(time.Second), n.Wall.Round(time.Millisecond))
	return b.String()
}

func (v *VariantRun) write(b *strings.Builder) {
	c := &v.Cfg
	fmt.Fprintf(b, "== %s: %d askers per crowd within %v, warm-up %d gets each, mirror first byte %v", v.Name, c.Askers, c.Window, c.Warmup, c.MirrorFirstByte)
	if c.NoHerd {
		b.WriteString(", no herd (Get only)")
	}
	if c.ClaimExtension > 0 {
		fmt.Fprintf(b, ", claim extension %v", c.ClaimExtension)
	}
	if c.ClaimSettle != 0 {
		fmt.Fprintf(b, ", settle fixed at %v", max(c.ClaimSettle, 0))
	}
	if c.NATReread > 0 {
		fmt.Fprintf(b, ", NATed askers re-read after %v", c.NATReread)
	}
	if c.NATReadDelay != 0 {
		fmt.Fprintf(b, ", NATed askers read the claims %v after their Get", c.natReadDelay())
	}
	if c.NATClaims {
		b.WriteString(", NATed askers claim too")
	}
	if c.ClockSkew > 0 {
		fmt.Fprintf(b, ", clock skew ±%v", c.ClockSkew)
	}
	b.WriteString("\n")
	for i := range v.Crowds {
		writeSummary(b, fmt.Sprintf("crowd %d (at %v)", i+1, v.Crowds[i].At.Round(time.Second)), &v.Crowds[i], v.Crowds[i].Summarize(), v.Crowds[i].settles())
	}
	if len(v.Crowds) > 1 {
		var agg CrowdRun
		var settle []time.Duration
		for _, r := range v.Crowds {
			settle = append(settle, r.settles()...)
			agg.Datagrams += r.Datagrams
			agg.MaxHeld, agg.MaxReply = max(agg.MaxHeld, r.MaxHeld), max(agg.MaxReply, r.MaxReply)
			agg.KeyFull += r.KeyFull
			agg.MaxChildren = max(agg.MaxChildren, r.MaxChildren)
			agg.Parents += r.Parents
		}
		writeSummary(b, fmt.Sprintf("all %d crowds", len(v.Crowds)), &agg, Pool(v.Crowds), settle)
	}
	for _, nat := range []bool{false, true} {
		var herd, get, sr []time.Duration
		var hm, gm float64
		for _, t := range v.Lone {
			if t.NATed == nat {
				herd = append(herd, t.Herd)
				sr = append(sr, t.StoreReply)
				get = append(get, t.GetOnly)
				hm += float64(t.HerdMsgs)
				gm += float64(t.GetMsgs)
			}
		}
		if len(herd) == 0 {
			continue
		}
		kind := "reachable"
		if nat {
			kind = "NATed"
		}
		fmt.Fprintf(b, "  lone asker (%s, %d trials): decision p50 %s p90 %s, with the Get alone p50 %s p90 %s (ratio of medians %.2f); requests %.1f vs %.1f\n",
			kind, len(herd), ms(percentile(herd, 50)), ms(percentile(herd, 90)), ms(percentile(get, 50)), ms(percentile(get, 90)),
			float64(percentile(herd, 50))/float64(max(percentile(get, 50), 1)), hm/float64(len(herd)), gm/float64(len(herd)))
		if !nat && !c.NoHerd {
			fmt.Fprintf(b, "    if a store reply carried the claims (estimate): decision p50 %s p90 %s\n", ms(percentile(sr, 50)), ms(percentile(sr, 90)))
		}
	}
}

func writeSummary(b *strings.Builder, title string, run *CrowdRun, sm Summary, settle []time.Duration) {
	fmt.Fprintf(b, "  %s: askers %d (NATed %d)  mirror fetchers %d = %.1f%% (NATed %d)  followers %d\n",
		title, sm.Askers, sm.NATed, sm.Leaders, 100*sm.LeaderShare(), sm.LeadersNATed, sm.Followers)
	fmt.Fprintf(b, "    TTFB p50 %s p90 %s p99 %s   leaders' TTFB p50 %s p90 %s p99 %s   decision p50 %s p99 %s\n",
		ms(sm.TTFB[0]), ms(sm.TTFB[1]), ms(sm.TTFB[2]), ms(sm.LeaderTTFB[0]), ms(sm.LeaderTTFB[1]), ms(sm.LeaderTTFB[2]),
		ms(sm.Decided[0]), ms(sm.Decided[2]))
	fmt.Fprintf(b, "    claim requests %.1f per asker (%d in all), lookup requests %.1f per asker; datagrams %d",
		sm.ClaimMsgs, int(sm.ClaimMsgs*float64(sm.Askers)+0.5), sm.LookupMsgs, run.Datagrams)
	if len(settle) > 0 {
		fmt.Fprintf(b, "; settle p50 %s", ms(percentile(settle, 50)))
	}
	fmt.Fprintf(b, "\n    most claims held by a node %d, most in one reply %d, stores refused (key full) %d, most followers of one parent %d (of %d parents)\n",
		run.MaxHeld, run.MaxReply, run.KeyFull, run.MaxChildren, run.Parents)
	if sm.ClaimFor[0] > 0 || sm.ReadFor[0] > 0 {
		fmt.Fprintf(b, "    claims took p50 %s p90 %s p99 %s, NATed reads p50 %s p90 %s p99 %s; decision bound p50 %s p90 %s p99 %s",
			ms(sm.ClaimFor[0]), ms(sm.ClaimFor[1]), ms(sm.ClaimFor[2]), ms(sm.ReadFor[0]), ms(sm.ReadFor[1]), ms(sm.ReadFor[2]),
			ms(sm.Bound[0]), ms(sm.Bound[1]), ms(sm.Bound[2]))
		if run.FirstStore > 0 {
			fmt.Fprintf(b, "; first claim stored %s after the crowd's start", ms(run.FirstStore))
		}
		b.WriteString("\n")
	}
	if sm.StoreReplyLeaders != sm.Leaders {
		fmt.Fprintf(b, "    if a store reply carried the claims (estimate): mirror fetchers %d = %.1f%%, reachable askers' decision p50 %s\n",
			sm.StoreReplyLeaders, 100*float64(sm.StoreReplyLeaders)/float64(max(sm.Askers, 1)), ms(sm.StoreReplyDecided))
	}
	whys := make([]string, 0, len(sm.Why))
	for w := range sm.Why {
		whys = append(whys, w)
	}
	slices.SortFunc(whys, func(a, b string) int { return cmp.Or(cmp.Compare(sm.Why[b], sm.Why[a]), cmp.Compare(a, b)) })
	for _, w := range whys {
		fmt.Fprintf(b, "      leaders: %-46s %4d (reachable %d, NATed %d)\n", w, sm.Why[w], sm.Why[w]-sm.WhyNATed[w], sm.WhyNATed[w])
	}
}
