package engine

import (
	"net/netip"
	"time"
)

// maxRTTEntries bounds the estimator's memory; when it is reached the table
// is cleared, which only costs the next requests the default timeout.
const maxRTTEntries = 1 << 16

// rttEstimate is the RFC 6298 state for one address.
type rttEstimate struct {
	srtt, rttvar time.Duration
}

// rttTable keeps per-address round-trip estimates for the adaptive profile.
type rttTable struct {
	m map[netip.AddrPort]rttEstimate
}

// sample folds one measured round trip in (RFC 6298 §2: α = 1/8, β = 1/4).
// Only first transmissions are sampled (Karn's rule), by the caller.
func (r *rttTable) sample(a netip.AddrPort, d time.Duration) {
	if r.m == nil {
		r.m = make(map[netip.AddrPort]rttEstimate)
	}
	e, ok := r.m[a]
	if !ok {
		if len(r.m) >= maxRTTEntries {
			clear(r.m)
		}
		r.m[a] = rttEstimate{srtt: d, rttvar: d / 2}
		return
	}
	diff := e.srtt - d
	if diff < 0 {
		diff = -diff
	}
	e.rttvar = (3*e.rttvar + diff) / 4
	e.srtt = (7*e.srtt + d) / 8
	r.m[a] = e
}

// rto is clamp(SRTT + 4·RTTVAR, lo, hi), or unknown for an address never measured.
func (r *rttTable) rto(a netip.AddrPort, lo, hi, unknown time.Duration) time.Duration {
	e, ok := r.m[a]
	if !ok {
		return unknown
	}
	d := e.srtt + 4*e.rttvar
	return min(max(d, lo), hi)
}
