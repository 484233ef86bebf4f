package engine

import (
	"net/netip"
	"time"

	"github.com/apt-p2p/apt-p2p/kbucket"
	"github.com/apt-p2p/apt-p2p/wire"
)

// purpose says who is waiting for a transaction; the core dispatches on it
// instead of storing a closure, so requests do not allocate.
type purpose uint8

const (
	purposePing      purpose = iota + 1 // verify a new node, re-ping it, or ping after a failure
	purposePingSaved                    // a node from the saved routing table, at start-up
	purposeReplace                      // the oldest node of a full bucket; replace it if silent
	purposeJoin                         // join to a bootstrap address
	purposeLookup                       // one request of an iterative lookup
	purposeReach                        // a reach query (reach.go); cand holds its nonce
)

// txn is one outstanding request. Its datagram is kept so a retransmission
// sends the identical bytes, same TID (§2.9).
type txn struct {
	tid      wire.ID
	gen      uint32
	inUse    bool
	verify   bool // purposePing: first ping of a new node, schedule a re-ping on success
	slow     bool // the first RTO passed (adaptive profile): the lookup stops counting it
	method   wire.Method
	purpose  purpose
	sends    int
	to       netip.AddrPort
	expect   wire.ID // expected responder ID; zero for join (NULL_ID)
	pkt      []byte
	first    time.Time // first send
	nextSend time.Time
	deadline time.Time
	delay    time.Duration
	lookup   uint32
	cand     wire.ID // the lookup candidate this request went to
	repl     kbucket.Node
	replCont bool
}

// txnTable holds transactions in reusable slots indexed by TID.
type txnTable struct {
	slots []txn
	free  []uint32
	byTID map[wire.ID]uint32
}

func (t *txnTable) alloc() uint32 {
	if n := len(t.free); n > 0 {
		i := t.free[n-1]
		t.free = t.free[:n-1]
		return i
	}
	// The datagram buffer grows on first use to the size of what is sent
	// (most requests are under 200 bytes) and is reused with the slot.
	t.slots = append(t.slots, txn{})
	return uint32(len(t.slots) - 1)
}

func (t *txnTable) release(i uint32) {
	s := &t.slots[i]
	delete(t.byTID, s.tid)
	pkt := s.pkt[:0]
	gen := s.gen + 1
	*s = txn{pkt: pkt, gen: gen}
	t.free = append(t.free, i)
}

func (t *txnTable) active() int { return len(t.byTID) }
