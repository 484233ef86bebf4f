package engine

import (
	"net/netip"
	"time"

	"github.com/apt-p2p/apt-p2p/wire"
)

// TimeoutProfile chooses how long the engine waits for a silent node.
type TimeoutProfile uint8

const (
	// ProfileAdaptive keeps a per-node RTT estimate (SRTT/RTTVAR as in TCP,
	// RFC 6298) and gives up on a silent node after a fraction of a second:
	// one send, one resend after RTO, failure after a second RTO.
	ProfileAdaptive TimeoutProfile = iota
	// ProfileClassic reproduces the original's schedule: sends at 0, 2 and 6 s,
	// failure at 9 s (KRPCInitialDelay doubling, KRPCTimeout total).
	ProfileClassic
)

func (p TimeoutProfile) String() string {
	if p == ProfileClassic {
		return "classic"
	}
	return "default"
}

// Validator checks a value before it is stored. A non-nil error refuses it
// (the storer gets KRPC error 201 with the error text).
type Validator func(key wire.ID, value []byte, from netip.AddrPort) error

// Config is the DHT configuration. Names follow the original's
// [apt_p2p_Khashmir] section (reference §5.3); Default returns its defaults
// except CONCURRENT_REQS, which is 6.
type Config struct {
	K                  int           // bucket size and lookup width (8)
	CheckpointInterval time.Duration // CHECKPOINT_INTERVAL (5 min, ±10% jitter)
	FirstCheckpoint    time.Duration // the first checkpoint after start (60 s)
	ConcurrentReqs     int           // CONCURRENT_REQS: requests in flight per lookup (6)
	StoreRedundancy    int           // STORE_REDUNDANCY (6)
	RetrieveValues     int           // RETRIEVE_VALUES: >0 stop after N values; 0 all; <0 up to -N, until StoreRedundancy nodes answered (-10000)
	MaxFailures        int           // MAX_FAILURES (3)
	MinPingInterval    time.Duration // MIN_PING_INTERVAL (15 min)
	BucketStaleness    time.Duration // BUCKET_STALENESS (1 h)
	LocalOK            bool          // LOCAL_OK: private and loopback addresses allowed
	KeyExpire          time.Duration // KEY_EXPIRE (3 h)
	KRPCTimeout        time.Duration // KRPC_TIMEOUT, classic profile (9 s)
	KRPCInitialDelay   time.Duration // KRPC_INITIAL_DELAY, classic profile (2 s)
	Profile            TimeoutProfile

	// Adaptive profile bounds: RTO = clamp(SRTT + 4·RTTVAR, RTOMin, RTOMax);
	// RTOUnknown for a node with no sample.
	RTOMin, RTOMax, RTOUnknown time.Duration

	// DeadMemory is how long an address that let a request time out is left
	// out of lookups and of the nodes lists we hand out, unless it sends us
	// something meanwhile (10 min; < 0: never). Other nodes keep listing a
	// node that has gone for as long as it sits in their tables, so without
	// it every lookup near it would wait for its timeout again. 0 = default.
	DeadMemory time.Duration

	// NATProbation keeps nodes that entered the table only by answering our
	// verification ping (sent right after their own request, so a NAT
	// mapping lets it through) out of the nodes lists we hand to others
	// until they answer a lookup request or the re-ping MIN_PING_INTERVAL
	// later. It keeps NATed nodes from spreading through lookups.
	NATProbation bool
	// PipelineGets sends get_value to a node as soon as its find_value
	// reply says it holds values, instead of after the whole find_value
	// lookup; the get completes as in the original (StoreRedundancy nodes
	// answered, or no candidates left).
	PipelineGets bool

	BootstrapNode bool   // BOOTSTRAP_NODE: joined even when nobody answers
	Version       string // node ID suffix, e.g. "A015" (§2.3); IDs are reused only when it matches

	// Family is the address family the core serves (family.go): IPv4 (the
	// zero value) or IPv6.
	Family Family
	// NodeID, when not zero, is the node's ID, whatever the saved state says:
	// a dual-stack node's IPv6 core takes its IPv4 core's (BEP 32 asks for
	// one ID on both networks).
	NodeID wire.ID

	// RejoinInitial and RejoinMax bound the exponential re-join backoff
	// (1 s doubling to 30 s): a daemon started before its bootstrap peer
	// joins within about RejoinMax of the peer coming up, for one join
	// datagram per bootstrap address per attempt.
	RejoinInitial, RejoinMax time.Duration

	// Limits on stored values: they bound memory under a flood of stores.
	MaxValueSize    int // bytes per value (1472: nothing larger fits a get_value reply)
	MaxValuesPerKey int // distinct values per key (256)
	MaxValuesPerIP  int // values stored by one source IP, across keys (4096)
	MaxStoredValues int // values in total (65536)
	MaxStoredBytes  int // value bytes in total (32 MiB)

	// Validate, when set, must accept a value before it is stored. AptValidator
	// is apt-p2p's.
	Validate Validator

	// Reach configures reachability checking and BEP 43 read-only mode
	// (reach.go); checking is off unless Reach.Probe is set.
	Reach ReachConfig

	// StateDir is where the node ID and routing table are saved (FileState)
	// when State is nil. Empty means nothing is persisted.
	StateDir string
	// State, when set, loads the saved node ID and routing table at New and
	// saves them at every checkpoint (FileState is the runner's).
	State StateStore
	// Seed, when set, makes the core's randomness (IDs, TIDs, secrets,
	// jitter) reproducible, for the simulator. Nil seeds from crypto/rand.
	Seed *[32]byte
}

// Default returns the original's defaults (§5.3) with CONCURRENT_REQS = 6 and
// the adaptive timeout profile.
func Default() Config {
	return Config{
		K:                  8,
		CheckpointInterval: 5 * time.Minute,
		FirstCheckpoint:    time.Minute,
		ConcurrentReqs:     6,
		StoreRedundancy:    6,
		RetrieveValues:     -10000,
		MaxFailures:        3,
		MinPingInterval:    15 * time.Minute,
		BucketStaleness:    time.Hour,
		KeyExpire:          3 * time.Hour,
		KRPCTimeout:        9 * time.Second,
		KRPCInitialDelay:   2 * time.Second,
		Profile:            ProfileAdaptive,
		NATProbation:       true,
		PipelineGets:       true,
		RTOMin:             150 * time.Millisecond,
		RTOMax:             time.Second,
		DeadMemory:         10 * time.Minute,
		RTOUnknown:         500 * time.Millisecond,
		Version:            "A100",
		RejoinInitial:      time.Second,
		RejoinMax:          30 * time.Second,
		MaxValueSize:       wire.MaxPacketIPv4,
		MaxValuesPerKey:    256,
		MaxValuesPerIP:     4096,
		MaxStoredValues:    65536,
		MaxStoredBytes:     32 << 20,
		Validate:           AptValidator,
	}
}

// Classic returns the original's behaviour: Default with the 2/6/9 s
// timeout profile, no NAT probation and the strictly two-phase get.
func Classic() Config {
	c := Default()
	c.Profile = ProfileClassic
	c.NATProbation = false
	c.PipelineGets = false
	return c
}

// fill replaces zero fields by their defaults so a partly filled Config works.
func (c *Config) fill() {
	d := Default()
	setInt := func(p *int, v int) {
		if *p == 0 {
			*p = v
		}
	}
	setDur := func(p *time.Duration, v time.Duration) {
		if *p == 0 {
			*p = v
		}
	}
	setInt(&c.K, d.K)
	setDur(&c.CheckpointInterval, d.CheckpointInterval)
	setDur(&c.FirstCheckpoint, d.FirstCheckpoint)
	setInt(&c.ConcurrentReqs, d.ConcurrentReqs)
	setInt(&c.StoreRedundancy, d.StoreRedundancy)
	setInt(&c.MaxFailures, d.MaxFailures)
	setDur(&c.MinPingInterval, d.MinPingInterval)
	setDur(&c.BucketStaleness, d.BucketStaleness)
	setDur(&c.KeyExpire, d.KeyExpire)
	setDur(&c.KRPCTimeout, d.KRPCTimeout)
	setDur(&c.KRPCInitialDelay, d.KRPCInitialDelay)
	setDur(&c.DeadMemory, d.DeadMemory)
	setDur(&c.RTOMin, d.RTOMin)
	setDur(&c.RTOMax, d.RTOMax)
	setDur(&c.RTOUnknown, d.RTOUnknown)
	setDur(&c.RejoinInitial, d.RejoinInitial)
	setDur(&c.RejoinMax, d.RejoinMax)
	setInt(&c.MaxValueSize, d.MaxValueSize)
	setInt(&c.MaxValuesPerKey, d.MaxValuesPerKey)
	setInt(&c.MaxValuesPerIP, d.MaxValuesPerIP)
	setInt(&c.MaxStoredValues, d.MaxStoredValues)
	setInt(&c.MaxStoredBytes, d.MaxStoredBytes)
	c.Reach.fill()
	if c.Version == "" {
		c.Version = d.Version
	}
	if c.Family != IPv6 {
		c.Family = IPv4
	}
	if len(c.Version) > wire.IDLen {
		c.Version = c.Version[:wire.IDLen]
	}
}

// VersionSuffix builds the original's version ID: 'A' followed by one
// character per major.minor.micro component from a 64-letter alphabet
// (§2.3), so VersionSuffix(0, 1, 5) == "A015".
func VersionSuffix(parts ...int) string {
	const alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz.-"
	b := []byte{'A'}
	for _, p := range parts {
		if p < 0 || p >= len(alphabet) {
			p = 0
		}
		b = append(b, alphabet[p])
	}
	return string(b)
}
