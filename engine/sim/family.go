package sim

import (
	"encoding/binary"
	"net/netip"
	"time"

	"github.com/apt-p2p/apt-p2p/engine"
	"github.com/apt-p2p/apt-p2p/wire"
)

// Address families in the simulator (Config.Families): every node of an
// IPv6 network has an IPv6 address, a dual-stack node both addresses and a
// paired IPv4 and IPv6 core, as a dual-stack daemon runs them.

// nodeAddr6 is node i's IPv6 address (2001:db8::/32 is public-looking to
// the engine, as 11.0.0.0/8 is).
func nodeAddr6(i int) netip.AddrPort {
	var a [16]byte
	a[0], a[1], a[2], a[3] = 0x20, 0x01, 0x0d, 0xb8
	binary.BigEndian.PutUint32(a[12:], uint32(i)+1)
	return netip.AddrPortFrom(netip.AddrFrom16(a), 6881)
}

// anyIndex is the node at an IPv4 or IPv6 address, and whether it was the
// IPv6 one.
func anyIndex(ap netip.AddrPort) (int, bool) {
	if !wire.IsIPv6(ap.Addr()) {
		return nodeIndex(ap), false
	}
	a := ap.Addr().As16()
	if ap.Port() != 6881 || binary.BigEndian.Uint32(a[:4]) != 0x20010db8 {
		return -1, true
	}
	return int(binary.BigEndian.Uint32(a[12:])) - 1, true
}

// newAptCore makes node i's cores for the families of the network.
func (s *Sim) newAptCore(ec engine.Config, fams engine.Family, i int32) (simCore, error) {
	if fams == 0 {
		fams = engine.IPv4
	}
	var c4, c6 *engine.Core
	var err error
	if fams&engine.IPv4 != 0 {
		if c4, err = engine.New(ec, output{s, i}); err != nil {
			return nil, err
		}
	}
	if fams&engine.IPv6 != 0 {
		e6 := ec
		e6.Family = engine.IPv6
		if c4 != nil {
			e6.NodeID = c4.ID()
		}
		if c6, err = engine.New(e6, output{s, i}); err != nil {
			return nil, err
		}
	}
	switch {
	case c4 == nil:
		return aptCore{c6}, nil
	case c6 == nil:
		return aptCore{c4}, nil
	}
	if err := engine.Pair(c4, c6); err != nil {
		return nil, err
	}
	return &dualApt{c4: c4, c6: c6}, nil
}

// dualApt is a dual-stack node: datagrams to each core by the sender's
// family, puts and gets on both networks, results merged as package node
// merges them (a get's values once each; done when both are).
type dualApt struct{ c4, c6 *engine.Core }

func (d *dualApt) Start(now time.Time, boot []netip.AddrPort) {
	d.c4.Start(now, boot)
	d.c6.Start(now, boot)
}

func (d *dualApt) HandlePacket(now time.Time, from netip.AddrPort, pkt []byte) {
	if wire.IsIPv6(from.Addr()) {
		d.c6.HandlePacket(now, from, pkt)
		return
	}
	d.c4.HandlePacket(now, from, pkt)
}

func (d *dualApt) Tick(now time.Time) {
	d.c4.Tick(now)
	d.c6.Tick(now)
}

func (d *dualApt) NextDeadline() (time.Time, bool) {
	a, aok := d.c4.NextDeadline()
	b, bok := d.c6.NextDeadline()
	switch {
	case !aok:
		return b, bok
	case !bok || a.Before(b):
		return a, true
	}
	return b, true
}

func (d *dualApt) Joined() bool { return d.c4.Joined() && d.c6.Joined() }

func (d *dualApt) Close() {
	d.c4.Close()
	d.c6.Close()
}

// both runs op on each core and calls done once with the merged result.
func (d *dualApt) both(op func(c *engine.Core, done func(engine.Result)), done func(engine.Result)) {
	var rs []engine.Result
	one := func(r engine.Result) {
		rs = append(rs, r)
		if len(rs) < 2 {
			return
		}
		m := engine.Result{Err: rs[0].Err}
		if rs[1].Err == nil {
			m.Err = nil
		}
		for _, r := range rs {
			m.Stored += r.Stored
			m.Messages += r.Messages
			m.Hops = max(m.Hops, r.Hops)
			m.Elapsed = max(m.Elapsed, r.Elapsed)
			if r.FirstValue > 0 && (m.FirstValue == 0 || r.FirstValue < m.FirstValue) {
				m.FirstValue = r.FirstValue
			}
		}
		done(m)
	}
	op(d.c4, one)
	op(d.c6, one)
}

func (d *dualApt) put(now time.Time, key wire.ID, value []byte, done func(engine.Result)) {
	d.both(func(c *engine.Core, done func(engine.Result)) { c.Put(now, key, value, done) }, done)
}

func (d *dualApt) get(now time.Time, key wire.ID, onValue func([]byte), done func(engine.Result)) {
	seen := map[string]bool{}
	d.both(func(c *engine.Core, done func(engine.Result)) {
		c.Get(now, key, func(v []byte) {
			if !seen[string(v)] {
				seen[string(v)] = true
				onValue(v)
			}
		}, done)
	}, func(r engine.Result) {
		r.Values = len(seen)
		done(r)
	})
}

// mapKey is the NAT mapping of a node towards a peer over one family: an
// IPv4 NAT and an IPv6 firewall keep their state apart, so a datagram sent
// to a peer's IPv6 address opens nothing for its IPv4 one.
func mapKey(peer int32, v6 bool) int32 {
	if v6 {
		return -peer - 1
	}
	return peer
}
