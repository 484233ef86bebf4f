package httpserve

import (
	"net"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"
	"golang.org/x/sys/unix"
)

// Idle connections and the connection limit.
//
// fasthttp counts every open connection against its Concurrency, idle or not,
// and answers 503 to any connection beyond it, so 1 100 silent connections
// from an allowed client (or kept-alive ones that apt is not using) locked
// every new apt request out until the idle timeout closed some. LimitListener
// keeps its own count instead: at the limit it closes the connection that has
// waited longest for its next request, oldest first, as nginx reuses idle
// keep-alive connections. A connection is idle from its accept until its first
// byte arrives and again from the end of each response until bytes of the next
// request arrive. One whose socket holds unread bytes, or whose read-ahead
// buffer holds a request, is not idle.

// closeSlack is how far fasthttp's Concurrency exceeds MaxConns: an evicted
// connection leaves LimitListener's count at once, but its fasthttp worker
// only once its read has failed.
const closeSlack = 64

// idleState is a connection's idleness, read by the listener's goroutine.
type idleState struct {
	busy     atomic.Bool   // a request is arriving or being answered
	served   atomic.Bool   // at least one response was written
	buffered atomic.Bool   // the read-ahead buffer holds bytes fasthttp has not read
	idleSeq  atomic.Uint64 // when it last became idle (listener's sequence)
}

// connState is fasthttp's ConnState hook for NewServer's connections.
func connState(c net.Conn, s fasthttp.ConnState) {
	lc, ok := c.(*tcpLimitConn)
	if !ok {
		return
	}
	switch s {
	case fasthttp.StateActive:
		// Before the first request fasthttp reports Active before reading
		// anything: Read marks that one busy once bytes come. Afterwards
		// Active means the next request's first byte is there (possibly
		// pipelined, already buffered: no Read would tell).
		if lc.served.Load() {
			lc.busy.Store(true)
		}
	case fasthttp.StateIdle:
		if lc.ra != nil {
			lc.ra.idle()
		}
		lc.served.Store(true)
		lc.idleSeq.Store(lc.l.seq.Add(1))
		lc.busy.Store(false)
	}
}

// oldestIdleLocked picks the connection idle the longest, or nil. l.mu is held.
func (l *limitListener) oldestIdleLocked() *tcpLimitConn {
	for range 8 {
		var best *tcpLimitConn
		for c := range l.live {
			if c.busy.Load() || c.buffered.Load() {
				continue
			}
			if best == nil || c.idleSeq.Load() < best.idleSeq.Load() {
				best = c
			}
		}
		if best == nil || best.unread() == 0 {
			return best
		}
		best.busy.Store(true) // a request is arriving; its Read would say so in a moment
	}
	return nil
}

// unread is the number of bytes waiting in the socket's receive queue.
func (c *tcpLimitConn) unread() int {
	if c.raw == nil {
		return 0
	}
	n := 0
	c.raw.Control(func(fd uintptr) { n, _ = unix.IoctlGetInt(int(fd), unix.SIOCINQ) }) //nolint:errcheck
	return n
}

var fullResponse = []byte("HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\n" +
	"Content-Length: 64\r\nConnection: close\r\nRetry-After: 1\r\n\r\n" +
	"apt-p2p: every connection is busy (MaxConns); try again shortly\n")

// refuseFull answers a connection beyond the limit when no connection was
// idle, as fasthttp would, and closes it.
func refuseFull(c *net.TCPConn) {
	c.SetWriteDeadline(time.Now().Add(time.Second)) //nolint:errcheck // a fresh socket takes 200 bytes at once
	c.Write(fullResponse)                           //nolint:errcheck
	c.Close()
}
