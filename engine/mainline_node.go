package engine

import (
	"context"
	"crypto/sha1"
	"fmt"
	"log/slog"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/apt-p2p/apt-p2p/wire"
)

// DefaultMainlineRouters are the public bootstrap routers of the mainline
// DHT that BitTorrent clients use. They only help a node find its first
// contacts; nothing apt-p2p stores goes to them.
var DefaultMainlineRouters = []string{
	"router.bittorrent.com:6881",
	"router.utorrent.com:6881",
	"dht.transmissionbt.com:6881",
	"dht.libtorrent.org:25401",
}

// MainlineOptions configure a MainlineNode.
type MainlineOptions struct {
	MainlineConfig
	Listen    string   // UDP address, e.g. ":6881" or "127.0.0.1:0"
	Bootstrap []string // routers or nodes as host:port; names are resolved off the loop
	Transport Transport
	Logger    *slog.Logger
}

// MainlineNode runs one MainlineCore on a UDP transport in one event-loop
// goroutine; its methods are safe for concurrent use, and a caller's done
// context cancels its operation in the core.
type MainlineNode struct {
	core   *MainlineCore
	tr     Transport
	log    *slog.Logger
	reqs   chan func(time.Time)
	done   chan struct{}
	closed atomic.Bool
	once   sync.Once
	addr   netip.AddrPort
}

// StartMainline opens the transport and starts the loop, which joins.
func StartMainline(o MainlineOptions) (*MainlineNode, error) {
	n := &MainlineNode{log: o.Logger, reqs: make(chan func(time.Time), 256), done: make(chan struct{})}
	if n.log == nil {
		n.log = slog.Default()
	}
	n.tr = o.Transport
	if n.tr == nil {
		t, err := ListenUDP(o.Listen)
		if err != nil {
			return nil, fmt.Errorf("engine: mainline listen %s: %w", o.Listen, err)
		}
		n.tr = t
	}
	n.addr = n.tr.LocalAddr()
	n.core = NewMainline(o.MainlineConfig, transportOutput2{n})
	boot, names := splitBootstrap(o.Bootstrap)
	n.core.Start(time.Now(), boot)
	go runLoop(n.tr, n.core, n.reqs, n.done, &n.closed, n.log)
	if len(names) > 0 {
		go n.resolveLoop(boot, names)
	}
	return n, nil
}

type transportOutput2 struct{ n *MainlineNode }

func (o transportOutput2) Send(to netip.AddrPort, pkt []byte) { o.n.tr.WriteTo(pkt, to) }

// resolveLoop resolves router names off the loop, every minute until the
// node has joined.
func (n *MainlineNode) resolveLoop(literal []netip.AddrPort, names []string) {
	for {
		addrs := append(append([]netip.AddrPort(nil), literal...), resolveBootstrap(n.log, names)...)
		if !n.do(func(now time.Time) { n.core.SetBootstrap(now, addrs) }) {
			return
		}
		select {
		case <-n.done:
			return
		case <-time.After(time.Minute):
		}
		var ok bool
		if n.Do(func(c *MainlineCore, _ time.Time) { ok = c.Joined() }) != nil || ok {
			return
		}
	}
}

func (n *MainlineNode) do(f func(now time.Time)) bool {
	select {
	case <-n.done:
		return false
	default:
	}
	select {
	case n.reqs <- f:
	case <-n.done:
		return false
	}
	n.tr.SetReadDeadline(time.Unix(1, 0))
	return true
}

// Do runs f on the loop with the core and waits for it.
func (n *MainlineNode) Do(f func(c *MainlineCore, now time.Time)) error {
	ch := make(chan struct{})
	if !n.do(func(now time.Time) { f(n.core, now); close(ch) }) {
		return ErrClosed
	}
	select {
	case <-ch:
		return nil
	case <-n.done:
		return ErrClosed
	}
}

// Addr is the local UDP address.
func (n *MainlineNode) Addr() netip.AddrPort { return n.addr }

// WaitJoined blocks until the node has joined.
func (n *MainlineNode) WaitJoined(ctx context.Context) error {
	ch := make(chan error, 1)
	if !n.do(func(time.Time) { n.core.OnJoined(func(err error) { ch <- err }) }) {
		return ErrClosed
	}
	select {
	case err := <-ch:
		return err
	case <-ctx.Done():
		return ctx.Err()
	case <-n.done:
		return ErrClosed
	}
}

// call starts an operation on the loop and waits for its Result; a done
// ctx cancels it in the core.
func (n *MainlineNode) call(ctx context.Context, start func(now time.Time, done func(Result)) Op) (Result, error) {
	ch := make(chan Result, 1)
	var op Op // set and read on the loop only
	if !n.do(func(now time.Time) { op = start(now, func(r Result) { ch <- r }) }) {
		return Result{Err: ErrClosed}, ErrClosed
	}
	select {
	case r := <-ch:
		return r, r.Err
	case <-ctx.Done():
		n.do(func(now time.Time) { n.core.Cancel(now, op) })
		return Result{Err: ctx.Err()}, ctx.Err()
	case <-n.done:
		return Result{Err: ErrClosed}, ErrClosed
	}
}

// GetPeers returns the peers announced under infoHash.
func (n *MainlineNode) GetPeers(ctx context.Context, infoHash wire.ID) ([]netip.AddrPort, Result, error) {
	var mu sync.Mutex
	var peers []netip.AddrPort
	r, err := n.call(ctx, func(now time.Time, done func(Result)) Op {
		return n.core.GetPeers(now, infoHash, func(p netip.AddrPort) {
			mu.Lock()
			peers = append(peers, p)
			mu.Unlock()
		}, done)
	})
	mu.Lock()
	defer mu.Unlock()
	return append([]netip.AddrPort(nil), peers...), r, err
}

// Announce announces infoHash with our HTTP port.
func (n *MainlineNode) Announce(ctx context.Context, infoHash wire.ID, port uint16) (Result, error) {
	return n.call(ctx, func(now time.Time, done func(Result)) Op { return n.core.Announce(now, infoHash, port, done) })
}

// GetItem looks up a BEP 44 immutable item; nil when not found.
func (n *MainlineNode) GetItem(ctx context.Context, target wire.ID) ([]byte, error) {
	var v []byte
	_, err := n.call(ctx, func(now time.Time, done func(Result)) Op {
		return n.core.GetItem(now, target, func(item []byte, r Result) { v = item; done(r) })
	})
	return v, err
}

// PutItem stores a BEP 44 immutable item (v is bencoded) and returns its
// target.
func (n *MainlineNode) PutItem(ctx context.Context, v []byte) (wire.ID, Result, error) {
	v = append([]byte(nil), v...)
	r, err := n.call(ctx, func(now time.Time, done func(Result)) Op { return n.core.PutItem(now, v, done) })
	return wire.ID(sha1.Sum(v)), r, err
}

// Stats returns a snapshot of the counters.
func (n *MainlineNode) Stats() MainlineStats {
	var s MainlineStats
	n.Do(func(c *MainlineCore, _ time.Time) { s = c.Stats() })
	return s
}

// Close stops the loop and closes the transport.
func (n *MainlineNode) Close() error {
	n.once.Do(func() {
		n.closed.Store(true)
		n.do(func(time.Time) { n.core.Close() })
		<-n.done
	})
	return nil
}
