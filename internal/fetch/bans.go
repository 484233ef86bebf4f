package fetch

import (
	"slices"
	"strings"
	"time"
)

// Ban is one source the Downloader shuns, for the status page and /metrics.
type Ban struct {
	Addr   string    `json:"addr"`             // Source.Addr: "ip:port" for peers, "host:port" for mirrors
	Until  time.Time `json:"until"`            // when the ban ends
	Reason string    `json:"reason,omitempty"` // as given to BanFor; empty for Ban
}

// banReason is a reason given to BanFor and the end of the ban it came with.
type banReason struct {
	text  string
	until time.Time
}

// maxBanReason bounds a reason kept per banned address.
const maxBanReason = 200

// BanFor is Ban with a reason to show beside the address ("piece 3 failed
// its hash", "whole-file hash mismatch").
func (d *Downloader) BanFor(addr string, until time.Time, reason string) {
	if len(reason) > maxBanReason {
		reason = reason[:maxBanReason]
	}
	d.mu.Lock()
	if until.After(d.bans[addr]) {
		d.bans[addr] = until
	}
	if d.why == nil {
		d.why = make(map[string]banReason)
	}
	if until.After(d.why[addr].until) {
		d.why[addr] = banReason{reason, until}
	}
	d.mu.Unlock()
}

// Bans lists the sources banned now (by the Downloader's clock, as for
// Banned), those ending soonest first. A reason shows while the ban it came
// with lasts (a later plain Ban may extend the ban, not the reason).
func (d *Downloader) Bans() []Ban {
	now := d.clk.Now()
	d.mu.Lock()
	for addr, r := range d.why {
		if now.After(r.until) {
			delete(d.why, addr)
		}
	}
	out := make([]Ban, 0, len(d.bans))
	for addr, until := range d.bans {
		if !now.After(until) {
			out = append(out, Ban{Addr: addr, Until: until, Reason: d.why[addr].text})
		}
	}
	d.mu.Unlock()
	slices.SortFunc(out, func(a, b Ban) int {
		if c := a.Until.Compare(b.Until); c != 0 {
			return c
		}
		return strings.Compare(a.Addr, b.Addr)
	})
	return out
}
