package node

import (
	"context"
	"errors"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/apt-p2p/apt-p2p/engine"
	"github.com/apt-p2p/apt-p2p/wire"
)

// Address families (issue 13 item 2). A dual-stack daemon (ADDRESS_FAMILIES
// both, the default, on a machine with IPv6 and no BIND_ADDRESS) runs the
// IPv4 DHT of the original protocol and the IPv6 DHT of its extension
// (wire/doc.go, "IPv6") on one socket: n.dht is the IPv4 one and
// n.dht.Other() the IPv6 one. It has a contact in each family; it announces
// on each network with that network's contact, looks up on both, and merges
// what it finds. What it stores on the IPv4 network is the original's
// format with its IPv4 contact, so original peers see no change.

// dhtFamilies is the engine's Families for ADDRESS_FAMILIES.
func (n *Node) dhtFamilies() engine.Family {
	var f engine.Family
	if n.cfg.IPv6.Want4() {
		f |= engine.IPv4
	}
	if n.cfg.IPv6.Want6() {
		f |= engine.IPv6
	}
	return f
}

// DHTOf is the DHT of one address family, nil when it does not run.
func (n *Node) DHTOf(f engine.Family) *engine.Node {
	if n.dht == nil {
		return nil
	}
	if f == engine.IPv6 {
		return n.dht.IPv6()
	}
	return n.dht.IPv4()
}

// dhts are the DHTs that run, the primary (IPv4 when it runs) first.
func (n *Node) dhts() []*engine.Node {
	out := []*engine.Node{n.dht}
	if o := n.dht.Other(); o != nil {
		out = append(out, o)
	}
	return out
}

// ContactOf is the address peers of family f download from (our external
// IP of that family, TCP port: the router's external port while
// PORT_MAPPING holds a mapping of it, portmap.go), if known. A BIND_ADDRESS is the contact of
// its own family, and the daemon has none in the other.
func (n *Node) ContactOf(f engine.Family) (netip.AddrPort, bool) {
	if a := n.cfg.Bind; a.IsValid() && !a.IsUnspecified() {
		if engine.FamilyOf(a) != f {
			return netip.AddrPort{}, false
		}
		return netip.AddrPortFrom(a.Unmap(), uint16(n.cfg.Port)), true
	}
	d := n.DHTOf(f)
	if d == nil {
		return netip.AddrPort{}, false
	}
	a, ok := d.ExternalAddr()
	if !ok || engine.FamilyOf(a) != f {
		if a, ok = n.lanAddr(f); !ok { // lan.go
			return netip.AddrPort{}, false
		}
		return netip.AddrPortFrom(a.Unmap(), uint16(n.cfg.Port)), true
	}
	return netip.AddrPortFrom(a.Unmap(), n.announcedPort(f)), true // portmap.go
}

// Contacts are our known contacts, IPv4 first.
func (n *Node) Contacts() []netip.AddrPort {
	var out []netip.AddrPort
	for _, f := range []engine.Family{engine.IPv4, engine.IPv6} {
		if c, ok := n.ContactOf(f); ok {
			out = append(out, c)
		}
	}
	return out
}

// otherOwn are our contacts other than the one the download manager knows
// as itself (Contact).
func (n *Node) otherOwn() []netip.AddrPort {
	primary, _ := n.Contact()
	return slices.DeleteFunc(n.Contacts(), func(c netip.AddrPort) bool { return c == primary })
}

// errNoContact: a family's announcement is skipped while our address in it
// is unknown.
var errNoContact = errors.New("node: our address in this family is not known yet")

// forFamily rewrites a peer value's contact to ours in d's family. A value
// that is not a peer value (a piece string) carries no address and goes to
// every network as it is.
func (n *Node) forFamily(d *engine.Node, value []byte) ([]byte, error) {
	c, ok := n.ContactOf(d.Family())
	return withContact(value, c, ok)
}

// withContact is forFamily with the contact already known (ContactOf asks
// the DHT's loop, so code running on the loop must not call it).
func withContact(value []byte, c netip.AddrPort, known bool) ([]byte, error) {
	var v wire.PeerValue
	if v.Parse(value) != nil {
		return value, nil
	}
	if !known {
		return nil, errNoContact
	}
	if v.Contact == c {
		return value, nil
	}
	v.Contact = c
	return wire.AppendPeerValue(nil, &v), nil
}

// mergeResults combines the results of one operation on both networks: it
// succeeds if either did.
func mergeResults(rs []engine.Result, errs []error) (engine.Result, error) {
	var out engine.Result
	var err error
	ok := false
	for i, r := range rs {
		out.Stored += r.Stored
		out.Values += r.Values
		out.Messages += r.Messages
		out.Hops = max(out.Hops, r.Hops)
		out.Elapsed = max(out.Elapsed, r.Elapsed)
		if r.FirstValue > 0 && (out.FirstValue == 0 || r.FirstValue < out.FirstValue) {
			out.FirstValue = r.FirstValue
		}
		out.Nodes = append(out.Nodes, r.Nodes...)
		if errs[i] == nil {
			ok = true
		} else if err == nil {
			err = errs[i]
		}
	}
	if ok {
		err = nil
	}
	out.Err = err
	return out, err
}

// onBoth runs op on every DHT that runs, concurrently, and merges.
func (n *Node) onBoth(op func(i int, d *engine.Node) (engine.Result, error)) (engine.Result, error) {
	ds := n.dhts()
	rs := make([]engine.Result, len(ds))
	errs := make([]error, len(ds))
	var wg sync.WaitGroup
	for i, d := range ds {
		wg.Go(func() { rs[i], errs[i] = op(i, d) })
	}
	wg.Wait()
	return mergeResults(rs, errs)
}

// dhtGet looks key up on every network that runs and delivers each
// distinct value once, never concurrently.
func (n *Node) dhtGet(ctx context.Context, key wire.ID, onValue func([]byte)) (engine.Result, error) {
	if n.dht.Other() == nil {
		return n.dht.Get(ctx, key, onValue)
	}
	var mu sync.Mutex
	seen := map[string]bool{}
	r, err := n.onBoth(func(_ int, d *engine.Node) (engine.Result, error) {
		return d.Get(ctx, key, func(v []byte) {
			mu.Lock()
			defer mu.Unlock()
			if !seen[string(v)] {
				seen[string(v)] = true
				onValue(v)
			}
		})
	})
	r.Values = len(seen)
	return r, err
}

// dhtGetValues collects the values of every network.
func (n *Node) dhtGetValues(ctx context.Context, key wire.ID) ([][]byte, error) {
	var out [][]byte
	_, err := n.dhtGet(ctx, key, func(v []byte) { out = append(out, v) })
	return out, err
}

// dhtPut stores value on every network, a peer value with our contact of
// each network's family (a network whose contact is not known yet is
// skipped). Result.Stored counts the nodes of both.
func (n *Node) dhtPut(ctx context.Context, key wire.ID, value []byte) (engine.Result, error) {
	if n.dht.Other() == nil {
		return n.dht.Put(ctx, key, value)
	}
	return n.onBoth(func(_ int, d *engine.Node) (engine.Result, error) {
		v, err := n.forFamily(d, value)
		if err != nil {
			return engine.Result{Err: err}, err
		}
		return d.Put(ctx, key, v)
	})
}

// dhtClaim claims on every network (engine.Core.Claim). build runs once:
// both networks carry the same claim time, each with its own family's
// contact, so that every daemon orders this claim the same way whichever
// network it read it on.
func (n *Node) dhtClaim(ctx context.Context, key wire.ID, build func(time.Time) []byte, settle time.Duration) (engine.Result, [][]byte, error) {
	if n.dht.Other() == nil {
		return n.dht.Claim(ctx, key, build, settle)
	}
	var mu sync.Mutex
	var built []byte
	once := func(now time.Time) []byte {
		mu.Lock()
		defer mu.Unlock()
		if built == nil {
			built = build(now)
		}
		return built
	}
	vals := make([][][]byte, 2)
	r, err := n.onBoth(func(i int, d *engine.Node) (engine.Result, error) {
		c, ok := n.ContactOf(d.Family())
		if !ok {
			return engine.Result{Err: errNoContact}, errNoContact
		}
		// build runs on the DHT's loop: nothing in it may wait for the loop.
		r, v, err := d.Claim(ctx, key, func(now time.Time) []byte {
			out, ferr := withContact(once(now), c, true)
			if ferr != nil {
				return once(now) // the engine refuses it: ErrOtherFamily
			}
			return out
		}, settle)
		vals[i] = v
		return r, err
	})
	return r, slices.Concat(vals...), err
}

// filterOwn leaves our own contact of the other family out of what lookups
// and claims return to the download manager: it knows itself by Contact
// only, and must not take its IPv6 self for a peer.
func (n *Node) filterOwn(vals [][]byte) [][]byte {
	if n.dht.Other() == nil {
		return vals
	}
	own := n.otherOwn()
	return slices.DeleteFunc(vals, func(raw []byte) bool {
		var v wire.PeerValue
		return v.Parse(raw) == nil && slices.Contains(own, v.Contact)
	})
}

// ownFilter wraps onValue to drop our own other-family values.
func (n *Node) ownFilter(onValue func([]byte)) func([]byte) {
	if n.dht.Other() == nil {
		return onValue
	}
	own := n.otherOwn()
	return func(raw []byte) {
		var v wire.PeerValue
		if v.Parse(raw) == nil && slices.Contains(own, v.Contact) {
			return
		}
		onValue(raw)
	}
}

// dhtStats are the counters of every network that runs, summed.
func (n *Node) dhtStats() engine.Stats {
	s := n.dht.Stats()
	if o := n.dht.Other(); o != nil {
		s = engine.MergeStats(s, o.Stats())
	}
	return s
}

// tableDHT is the DHT whose routing table the status page estimates the
// number of users from: the larger (a dual-stack daemon on an IPv6-only
// network has an empty IPv4 table).
func (n *Node) tableDHT() *engine.Node {
	d := n.dht
	if o := d.Other(); o != nil {
		var a, b int
		d.Do(func(c *engine.Core, _ time.Time) { a, b = c.Table().Len(), c.Sibling().Table().Len() })
		if b > a {
			return o
		}
	}
	return d
}
