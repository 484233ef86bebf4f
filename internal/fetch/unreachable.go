package fetch

import (
	"errors"
	"net"
	"time"
)

// A peer whose address refuses connections or does not answer them is left
// out of downloads for unreachableFor: the DHT keeps values of peers that
// have stopped, or restarted on another port, for up to KEY_EXPIRE (3 h), and
// each download that finds such a value would otherwise pay a failed connect
// (a dial timeout on a WAN) again. It is not a ban: nothing was wrong with
// what it sent, and the next DHT value from a live address is used at once.
const unreachableFor = 5 * time.Minute

// maxUnreachable bounds the addresses remembered.
const maxUnreachable = 4096

// noteUnreachable remembers that a connect to addr failed.
func (d *Downloader) noteUnreachable(addr string) {
	now := d.clk.Now()
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(d.unreachable) >= maxUnreachable {
		for a, t := range d.unreachable {
			if now.Sub(t) > unreachableFor {
				delete(d.unreachable, a)
			}
		}
		if len(d.unreachable) >= maxUnreachable {
			return
		}
	}
	d.unreachable[addr] = now
	d.cfg.Logger.Debug("fetch: peer unreachable, skipped for a while", "peer", addr, "for", unreachableFor)
}

// Unreachable reports whether a connect to addr failed lately.
func (d *Downloader) Unreachable(addr string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	t, ok := d.unreachable[addr]
	if !ok {
		return false
	}
	if d.clk.Now().Sub(t) > unreachableFor {
		delete(d.unreachable, addr)
		return false
	}
	return true
}

// dialFailed reports whether err is a failure to connect (refused, timed
// out, no route): the peer is not there, as opposed to a broken transfer.
func dialFailed(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}
