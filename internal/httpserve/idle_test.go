package httpserve

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

// blockingServer serves blockingHandler with cfg and returns its address and
// the function that releases every blocked handler (also run before the
// server shuts down, so a failing test does not hang in Shutdown).
func blockingServer(t *testing.T, started chan<- struct{}, cfg ServerConfig) (string, func()) {
	t.Helper()
	release := make(chan struct{})
	addr := startServer(t, blockingHandler(started, release), cfg)
	var once sync.Once
	unblock := func() { once.Do(func() { close(release) }) }
	t.Cleanup(unblock)
	return addr, unblock
}

// blockingHandler answers /block only once release is closed (telling
// started when it begins), everything else at once.
func blockingHandler(started chan<- struct{}, release <-chan struct{}) fasthttp.RequestHandler {
	return func(ctx *fasthttp.RequestCtx) {
		if string(ctx.Path()) == "/block" {
			started <- struct{}{}
			<-release
		}
		ctx.SetBodyString("ok")
	}
}

// Regression (issue 11 item 7): idle connections from an allowed client
// filled the connection limit and a new apt request got 503 until the idle
// timeout freed a slot. Now the oldest idle connections make room; a busy one
// is never closed for it.
func TestIdleConnectionsDoNotLockOutNewRequests(t *testing.T) {
	const maxConns = 16
	trusted := netip.MustParseAddr("127.0.0.16")
	started := make(chan struct{}, 1)
	addr, release := blockingServer(t, started, ServerConfig{
		MaxConns:  maxConns,
		Unlimited: func(a netip.Addr) bool { return a == trusted },
	})
	busy := dialFrom(t, trusted.String(), addr)
	defer busy.Close()
	io.WriteString(busy, req("GET", "/block", ""))
	<-started

	// Far more silent connections than the limit, as a crowd of idle
	// keep-alive clients would hold.
	var idle []net.Conn
	for range 3 * maxConns {
		idle = append(idle, dialFrom(t, trusted.String(), addr))
	}
	defer func() {
		for _, c := range idle {
			c.Close()
		}
	}()
	fresh := dialFrom(t, trusted.String(), addr)
	defer fresh.Close()
	if code := roundTrip(t, fresh, req("GET", "/", "")); code != 200 {
		t.Fatalf("a new request behind %d idle connections got %d, want 200", len(idle), code)
	}
	// The oldest idle connection was closed for it, the newest still works.
	idle[0].SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := idle[0].Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
		t.Errorf("the oldest idle connection: read %v, want it closed by the server (EOF)", err)
	}
	if code := roundTrip(t, idle[len(idle)-1], req("GET", "/", "")); code != 200 {
		t.Errorf("the newest idle connection answered %d, want 200", code)
	}
	// The busy connection survived it all.
	release()
	busy.SetDeadline(time.Now().Add(5 * time.Second))
	resp, err := readHeader(bufio.NewReader(busy))
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("the busy connection: %v %v, want its 200", resp, err)
	}
}

// Busy peers cannot take the slots kept for trusted clients: beyond
// MaxConns-MaxConns/8 connections a peer is refused (503), an apt client is
// still served.
func TestPeersLeaveRoomForTrustedClients(t *testing.T) {
	const maxConns = 16 // 2 kept for trusted clients
	trusted := netip.MustParseAddr("127.0.0.18")
	started := make(chan struct{}, maxConns)
	addr, _ := blockingServer(t, started, ServerConfig{
		MaxConns:  maxConns,
		Unlimited: func(a netip.Addr) bool { return a == trusted },
	})
	var peers []net.Conn
	defer func() {
		for _, c := range peers {
			c.Close()
		}
	}()
	for range maxConns - maxConns/8 {
		c := dialFrom(t, "127.0.0.19", addr)
		peers = append(peers, c)
		io.WriteString(c, req("GET", "/block", ""))
		<-started
	}
	extra := dialFrom(t, "127.0.0.19", addr)
	defer extra.Close()
	if code := roundTrip(t, extra, req("GET", "/", "")); code != 503 {
		t.Errorf("a peer beyond the peers' share got %d, want 503", code)
	}
	apt := dialFrom(t, trusted.String(), addr)
	defer apt.Close()
	if code := roundTrip(t, apt, req("GET", "/", "")); code != 200 {
		t.Errorf("a trusted client with every peer slot busy got %d, want 200", code)
	}
}

// Only idle connections are closed to make room: with every slot busy a new
// connection is refused with 503, not served by cutting a response.
func TestFullOfBusyConnectionsRefuses(t *testing.T) {
	const maxConns = 8
	trusted := netip.MustParseAddr("127.0.0.20")
	started := make(chan struct{}, maxConns)
	addr, release := blockingServer(t, started, ServerConfig{
		MaxConns:  maxConns,
		Unlimited: func(a netip.Addr) bool { return a == trusted },
	})
	var busy []net.Conn
	for range maxConns {
		c := dialFrom(t, trusted.String(), addr)
		defer c.Close()
		busy = append(busy, c)
		io.WriteString(c, req("GET", "/block", ""))
		<-started
	}
	extra := dialFrom(t, trusted.String(), addr)
	defer extra.Close()
	if code := roundTrip(t, extra, req("GET", "/", "")); code != 503 {
		t.Errorf("with every connection busy a new one got %d, want 503", code)
	}
	release()
	for i, c := range busy {
		c.SetDeadline(time.Now().Add(5 * time.Second))
		resp, err := readHeader(bufio.NewReader(c))
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("busy connection %d: %v %v", i, resp, err)
		}
	}
}
