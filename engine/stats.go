package engine

import (
	"net/netip"
	"time"

	"github.com/apt-p2p/apt-p2p/wire"
)

// DropReason says why a received datagram was dropped.
type DropReason uint8

const (
	DropOversize    DropReason = iota // a reply over 1472 bytes (IPv4) / 1452 (IPv6), or any datagram over wire.MaxParseLen
	DropMalformed                     // not a valid KRPC message (bencode, envelope, 20-byte TID)
	DropBadType                       // y is not q, r or e
	DropUnknownTID                    // a reply to no outstanding request (late duplicate, or forged)
	DropWrongSource                   // a reply whose TID is ours but from another address
	DropNotIPv4                       // from an address of the other family than the core's (an IPv6 address at an IPv4 core)
	NumDropReasons

	// DropOtherFamily is DropNotIPv4 under the name that fits both
	// families' cores (family.go).
	DropOtherFamily = DropNotIPv4
)

var dropNames = [NumDropReasons]string{"oversize", "malformed", "bad-type", "unknown-tid", "wrong-source", "other-family"}

func (r DropReason) String() string { return dropNames[r] }

// RPCStats counts one method. Sent and Retransmits are our requests; OK and
// Failed their outcomes (Failed includes error replies); Received counts
// requests from others.
type RPCStats struct {
	Sent, Retransmits, OK, Failed, Received, ErrorsReceived uint64
	OKDelay, FailedDelay                                    time.Duration // totals
}

// AvgOK is the mean delay of successful requests.
func (r RPCStats) AvgOK() time.Duration {
	if r.OK == 0 {
		return 0
	}
	return r.OKDelay / time.Duration(r.OK)
}

// AvgFailed is the mean delay of failed requests.
func (r RPCStats) AvgFailed() time.Duration {
	if r.Failed == 0 {
		return 0
	}
	return r.FailedDelay / time.Duration(r.Failed)
}

// Histogram counts durations in power-of-two millisecond buckets:
// bucket i holds [2^(i-1), 2^i) ms, bucket 0 below 1 ms.
type Histogram struct {
	Buckets [20]uint64
	Count   uint64
	Sum     time.Duration
}

// Add records one duration.
func (h *Histogram) Add(d time.Duration) {
	ms := d.Milliseconds()
	i := 0
	for ms > 0 && i < len(h.Buckets)-1 {
		ms >>= 1
		i++
	}
	h.Buckets[i]++
	h.Count++
	h.Sum += d
}

// Quantile returns the upper bound of the bucket holding quantile q.
func (h *Histogram) Quantile(q float64) time.Duration {
	if h.Count == 0 {
		return 0
	}
	want := uint64(q*float64(h.Count) + 0.5)
	var n uint64
	for i, c := range h.Buckets {
		n += c
		if n >= want && c > 0 {
			return time.Duration(1<<i) * time.Millisecond
		}
	}
	return time.Duration(1<<(len(h.Buckets)-1)) * time.Millisecond
}

// Stats is a snapshot of the node's counters (§2.16 and more).
type Stats struct {
	ID           wire.ID
	Uptime       time.Duration
	Reachable    bool // a request was received from someone
	Joined       bool
	ExternalAddr netip.Addr

	PacketsIn, PacketsOut, BytesIn, BytesOut uint64
	Dropped                                  [NumDropReasons]uint64
	ErrorsSent                               uint64
	RPC                                      [wire.MethodStoreValue + 1]RPCStats // indexed by wire.Method

	Nodes, Buckets int
	EstimatedUsers float64 // K · 2^(buckets−1)

	Keys, Values, ValueBytes      int
	StoresAccepted, StoresRefused uint64
	ValuesExpired                 uint64

	Lookups, Gets, GetsDone, GetsFound, Puts, PutsOK uint64
	Cancelled                                        uint64 // operations their callers cancelled
	GetLatency                                       Histogram
	Transactions                                     int // outstanding requests
	JoinFailures, SaveErrors, Refreshes              uint64
	VerifySkipped                                    uint64 // new contacts not pinged: too many verifications in flight

	Reach   ReachStats // reachability over UDP and TCP (reach.go)
	Offered uint64     // nodes of our family learned by the other family's core (want, family.go)
	Family  Family
}

// Stats returns a snapshot of the counters.
func (c *Core) Stats(now time.Time) Stats {
	s := c.st
	s.ID = c.id
	if !c.started.IsZero() {
		s.Uptime = now.Sub(c.started)
	}
	s.Family = c.cfg.Family
	s.Reachable = c.reachable
	s.Joined = c.join.joined
	s.ExternalAddr, _ = c.ExternalAddr()
	s.Nodes = c.table.Len()
	s.Buckets = c.table.NumBuckets()
	s.EstimatedUsers = float64(c.cfg.K)
	for i := 1; i < s.Buckets; i++ {
		s.EstimatedUsers *= 2
	}
	s.Keys = len(c.store.keys)
	s.Values = c.store.nvalues
	s.ValueBytes = c.store.nbytes
	s.Transactions = c.txns.active()
	s.Reach = c.Reach()
	return s
}
