package engine

import (
	"net/netip"
	"time"

	"github.com/apt-p2p/apt-p2p/wire"
)

type timerKind uint8

const (
	timerTxn        timerKind = iota + 1 // resend or fail a transaction (slot, gen)
	timerPing                            // a scheduled ping: re-ping of a new node or ping after a failure
	timerCheckpoint                      // the periodic checkpoint
	timerRejoin                          // the next join attempt
	timerClaim                           // the check of a Claim (slot: its number)
	timerReach                           // a reachability probe round (reach.go)
	timerReachEval                       // judge a probe (id: its nonce)
)

// timer is one pending event. Cancelled events are not removed: the handler
// checks that what it refers to still exists (generation numbers for
// transactions), which keeps the heap allocation-free.
type timer struct {
	at   time.Time
	kind timerKind
	slot uint32
	gen  uint32
	id   wire.ID
	addr netip.AddrPort
}

// timerHeap is a binary min-heap on at. It is hand-written rather than
// container/heap because the interface boxing of Push/Pop allocates.
type timerHeap []timer

func (h *timerHeap) push(t timer) {
	*h = append(*h, t)
	s := *h
	i := len(s) - 1
	for i > 0 {
		p := (i - 1) / 2
		if !s[i].at.Before(s[p].at) {
			break
		}
		s[i], s[p] = s[p], s[i]
		i = p
	}
}

// pop removes and returns the earliest timer; the heap must not be empty.
func (h *timerHeap) pop() timer {
	s := *h
	t := s[0]
	n := len(s) - 1
	s[0] = s[n]
	s[n] = timer{}
	s = s[:n]
	i := 0
	for {
		l := 2*i + 1
		if l >= n {
			break
		}
		m := l
		if r := l + 1; r < n && s[r].at.Before(s[l].at) {
			m = r
		}
		if !s[m].at.Before(s[i].at) {
			break
		}
		s[i], s[m] = s[m], s[i]
		i = m
	}
	*h = s
	return t
}

func (h timerHeap) next() (time.Time, bool) {
	if len(h) == 0 {
		return time.Time{}, false
	}
	return h[0].at, true
}
