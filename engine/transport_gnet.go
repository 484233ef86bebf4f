package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/panjf2000/gnet/v2"
	"golang.org/x/sys/unix"
)

// GnetTransport is a Transport on a gnet/v2 UDP engine (one event loop).
// gnet delivers datagrams to a callback on its own goroutine, so they are
// copied into a fixed ring of buffers and handed to ReadFrom through a
// channel; unsolicited datagrams leave from the listening socket through a
// dup of its descriptor and unix.Sendto (reference go-stack.md §1.1).
// It exists to compare against UDPTransport (see BenchmarkTransport); the
// standard library socket is the default.
type GnetTransport struct {
	eng     gnet.Engine
	fd      int
	local   netip.AddrPort
	in      chan int // indexes of filled slots
	free    chan int // indexes of free slots
	slots   []gnetSlot
	kick    chan struct{}
	dl      atomic.Int64 // read deadline, Unix ns; 0 = none
	timer   *time.Timer
	sa      unix.SockaddrInet4
	sa6     unix.SockaddrInet6
	dropped atomic.Uint64
	done    chan struct{}
	closing sync.Once
	runErr  error
}

// gnetSlotSize bounds the datagrams GnetTransport passes on: its ring of
// 1024 slots would take 64 MiB at the UDP maximum.
const gnetSlotSize = 2048

type gnetSlot struct {
	buf  [gnetSlotSize]byte
	n    int
	from netip.AddrPort
}

type gnetHandler struct {
	gnet.BuiltinEventEngine
	t    *GnetTransport
	boot chan error
}

func (h *gnetHandler) OnBoot(eng gnet.Engine) gnet.Action {
	fd, err := eng.Dup()
	if err == nil {
		h.t.eng = eng
		h.t.fd = fd
	}
	h.boot <- err
	return gnet.None
}

func (h *gnetHandler) OnTraffic(c gnet.Conn) gnet.Action {
	t := h.t
	b, _ := c.Next(-1)
	var i int
	select {
	case i = <-t.free:
	default:
		t.dropped.Add(1) // the loop is behind: drop, as a full socket buffer would
		return gnet.None
	}
	s := &t.slots[i]
	if len(b) > len(s.buf) {
		// A slot holds what fits the packet limits; a larger request (an
		// original peer's long store_value) is dropped here and counted.
		t.free <- i
		t.dropped.Add(1)
		return gnet.None
	}
	s.n = copy(s.buf[:], b)
	if ua, ok := c.RemoteAddr().(*net.UDPAddr); ok {
		s.from = ua.AddrPort()
	}
	t.in <- i
	select {
	case t.kick <- struct{}{}:
	default:
	}
	return gnet.None
}

// ListenGnet starts a gnet UDP engine on addr ("127.0.0.1:0").
func ListenGnet(addr string) (*GnetTransport, error) {
	const nslots = 1024
	t := &GnetTransport{
		in:    make(chan int, nslots),
		free:  make(chan int, nslots),
		slots: make([]gnetSlot, nslots),
		kick:  make(chan struct{}, 1),
		done:  make(chan struct{}),
		timer: time.NewTimer(time.Hour),
	}
	t.timer.Stop()
	for i := range nslots {
		t.free <- i
	}
	h := &gnetHandler{t: t, boot: make(chan error, 1)}
	go func() {
		t.runErr = gnet.Run(h, "udp://"+addr,
			gnet.WithMulticore(false),
			gnet.WithReadBufferCap(readBufSize),
			gnet.WithSocketRecvBuffer(4<<20),
			gnet.WithSocketSendBuffer(4<<20),
			gnet.WithLogger(gnetLogger{}))
		close(t.done)
	}()
	select {
	case err := <-h.boot:
		if err != nil {
			return nil, fmt.Errorf("engine: gnet dup: %w", err)
		}
	case <-t.done:
		return nil, fmt.Errorf("engine: gnet: %w", t.runErr)
	}
	sa, err := unix.Getsockname(t.fd)
	if err != nil {
		t.Close()
		return nil, err
	}
	switch a := sa.(type) {
	case *unix.SockaddrInet4:
		t.local = netip.AddrPortFrom(netip.AddrFrom4(a.Addr), uint16(a.Port))
	case *unix.SockaddrInet6:
		t.local = netip.AddrPortFrom(netip.AddrFrom16(a.Addr), uint16(a.Port))
	}
	return t, nil
}

// gnetLogger routes gnet's logging into slog; its start-up chatter is debug.
type gnetLogger struct{}

func (gnetLogger) Debugf(f string, a ...any) { slog.Debug(fmt.Sprintf("gnet: "+f, a...)) }
func (gnetLogger) Infof(f string, a ...any)  { slog.Debug(fmt.Sprintf("gnet: "+f, a...)) }
func (gnetLogger) Warnf(f string, a ...any)  { slog.Warn(fmt.Sprintf("gnet: "+f, a...)) }
func (gnetLogger) Errorf(f string, a ...any) { slog.Error(fmt.Sprintf("gnet: "+f, a...)) }
func (gnetLogger) Fatalf(f string, a ...any) { slog.Error(fmt.Sprintf("gnet: "+f, a...)) }

type timeoutError struct{}

func (timeoutError) Error() string   { return "engine: read deadline exceeded" }
func (timeoutError) Timeout() bool   { return true }
func (timeoutError) Temporary() bool { return true }

var errTransportClosed = errors.New("engine: transport closed")

func (t *GnetTransport) ReadFrom(b []byte) (int, netip.AddrPort, error) {
	for {
		select {
		case i := <-t.in:
			s := &t.slots[i]
			n, from := copy(b, s.buf[:s.n]), s.from
			t.free <- i
			return n, from, nil
		default:
		}
		var wait <-chan time.Time
		if d := t.dl.Load(); d != 0 {
			left := time.Until(time.Unix(0, d))
			if left <= 0 {
				return 0, netip.AddrPort{}, timeoutError{}
			}
			t.timer.Reset(left)
			wait = t.timer.C
		}
		select {
		case i := <-t.in:
			t.timer.Stop()
			s := &t.slots[i]
			n, from := copy(b, s.buf[:s.n]), s.from
			t.free <- i
			return n, from, nil
		case <-t.kick:
			t.timer.Stop()
		case <-wait:
		case <-t.done:
			return 0, netip.AddrPort{}, errTransportClosed
		}
	}
}

func (t *GnetTransport) WriteTo(b []byte, to netip.AddrPort) error {
	// An IPv6 (dual-stack) socket reaches IPv4 peers at their IPv4-mapped
	// address: an IPv4 sockaddr is refused on it.
	if (to.Addr().Is4() || to.Addr().Is4In6()) && t.local.Addr().Is4() {
		t.sa.Addr = to.Addr().Unmap().As4()
		t.sa.Port = int(to.Port())
		return unix.Sendto(t.fd, b, 0, &t.sa)
	}
	t.sa6.Addr = to.Addr().As16()
	t.sa6.Port = int(to.Port())
	return unix.Sendto(t.fd, b, 0, &t.sa6)
}

func (t *GnetTransport) SetReadDeadline(d time.Time) error {
	if d.IsZero() {
		t.dl.Store(0)
	} else {
		t.dl.Store(d.UnixNano())
	}
	select {
	case t.kick <- struct{}{}:
	default:
	}
	return nil
}

func (t *GnetTransport) LocalAddr() netip.AddrPort { return t.local }

// Dropped counts datagrams dropped because the ring was full.
func (t *GnetTransport) Dropped() uint64 { return t.dropped.Load() }

func (t *GnetTransport) Close() error {
	var err error
	t.closing.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		err = t.eng.Stop(ctx)
		<-t.done
		os.NewFile(uintptr(t.fd), "gnet-dup").Close()
	})
	return err
}
