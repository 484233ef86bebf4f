package engine

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/apt-p2p/apt-p2p/wire"
)

// maxDialProbes bounds the TCP probes a runner has in flight (the core's
// serving limits already keep it to a few a minute).
const maxDialProbes = 4

// dialProbeTimeout bounds one TCP probe: connect, request, first line of the answer.
const dialProbeTimeout = 5 * time.Second

// reachRunner is the runner's side of reachability: the second UDP socket
// probes leave from, the TCP probes in flight, and the latest states for
// readers on other goroutines.
type reachRunner struct {
	mu     sync.Mutex
	conn   *net.UDPConn // opened on first use, on the DHT socket's IP
	local  netip.Addr
	closed bool
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	dials  atomic.Int32
	stats  atomic.Pointer[ReachStats]
}

func (r *reachRunner) init(local netip.Addr) {
	r.local = local
	r.ctx, r.cancel = context.WithCancel(context.Background())
	r.stats.Store(&ReachStats{})
}

// close stops the TCP probes, waits for them and closes the probe socket.
func (r *reachRunner) close() {
	r.mu.Lock()
	r.closed = true
	if r.cancel != nil {
		r.cancel()
	}
	if r.conn != nil {
		r.conn.Close()
	}
	r.mu.Unlock()
	r.wg.Wait()
}

// SendProbe sends pkt from the probe socket, another port than the DHT's.
func (o transportOutput) SendProbe(to netip.AddrPort, pkt []byte) {
	r := &o.n.reach
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return
	}
	if r.conn == nil {
		ip := r.local
		if !ip.IsValid() || !ip.Is4() {
			ip = netip.IPv4Unspecified()
		}
		c, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(ip, 0)))
		if err != nil {
			o.n.sendErrors.Add(1)
			return
		}
		r.conn = c
	}
	if _, err := r.conn.WriteToUDPAddrPort(pkt, to); err != nil {
		o.n.sendErrors.Add(1)
	}
}

// DialProbe connects to `to` and requests ReachPath(nonce), in the background.
func (o transportOutput) DialProbe(to netip.AddrPort, nonce wire.ID) {
	r := &o.n.reach
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed || r.dials.Load() >= maxDialProbes {
		return
	}
	r.dials.Add(1)
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		defer r.dials.Add(-1)
		dialProbe(r.ctx, r.local, to, nonce)
	}()
}

// dialProbe is one TCP probe: connect from our own IP, send a GET of the
// probe path, read the status line, close.
func dialProbe(ctx context.Context, local netip.Addr, to netip.AddrPort, nonce wire.ID) {
	ctx, cancel := context.WithTimeout(ctx, dialProbeTimeout)
	defer cancel()
	d := net.Dialer{}
	if local.IsValid() && !local.IsUnspecified() && local.Is4() {
		d.LocalAddr = net.TCPAddrFromAddrPort(netip.AddrPortFrom(local, 0))
	}
	c, err := d.DialContext(ctx, "tcp4", to.String())
	if err != nil {
		return
	}
	defer c.Close()
	dl, _ := ctx.Deadline()
	c.SetDeadline(dl)
	stop := context.AfterFunc(ctx, func() { c.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	if _, err := fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: apt-p2p reach probe\r\nConnection: close\r\n\r\n", ReachPath(nonce), to); err != nil {
		return
	}
	_, _ = bufio.NewReaderSize(c, 256).ReadString('\n')
}

// Reach is the latest reachability (updated by the event loop when it
// changes; cheap to call from any goroutine).
func (n *Node) Reach() ReachStats { return *n.reach.stats.Load() }

// NoteTCPProbe tells the core that a TCP probe with this nonce reached our
// peer port (the HTTP front calls it for ReachPath requests).
func (n *Node) NoteTCPProbe(nonce wire.ID) {
	n.do(func(now time.Time) { n.core.ReachTCPHit(now, nonce) })
}

// SetReachTCPPort sets the port TCP probes are asked to connect to
// (ReachConfig.TCPPort): the external port of a router's port mapping when
// it differs from the local one (internal/portmap), the local one again
// when the mapping ends. It does nothing on a node that probes UDP only.
func (n *Node) SetReachTCPPort(port uint16) {
	n.do(func(time.Time) {
		if n.core.cfg.Reach.TCPPort != 0 && port != 0 {
			n.core.cfg.Reach.TCPPort = port
		}
	})
}
