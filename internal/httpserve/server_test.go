package httpserve

import (
	"bufio"
	"io"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

func okHandler(ctx *fasthttp.RequestCtx) { ctx.SetBodyString("ok") }

// roundTrip sends one request on c and returns the status, or 0 if the connection was closed.
func roundTrip(t *testing.T, c net.Conn, r string) int {
	t.Helper()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, r); err != nil {
		return 0
	}
	resp, err := readHeader(bufio.NewReader(c))
	if err != nil {
		return 0
	}
	io.Copy(io.Discard, resp.Body)
	return resp.StatusCode
}

func TestLimitListenerPerIP(t *testing.T) {
	addr := startServer(t, okHandler, ServerConfig{MaxConnsPerIP: 2})
	a := dialFrom(t, "127.0.0.10", addr)
	b := dialFrom(t, "127.0.0.10", addr)
	defer b.Close()
	if roundTrip(t, a, req("GET", "/", "")) != 200 || roundTrip(t, b, req("GET", "/", "")) != 200 {
		t.Fatal("first two connections refused")
	}
	// The third is closed at once (on loopback the reset may even beat connect's return).
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.10")}}
	if third, err := d.Dial("tcp", addr); err == nil {
		defer third.Close()
		if code := roundTrip(t, third, req("GET", "/", "")); code != 0 {
			t.Fatalf("third connection from one address answered %d", code)
		}
	}
	other := dialFrom(t, "127.0.0.11", addr)
	defer other.Close()
	if roundTrip(t, other, req("GET", "/", "")) != 200 {
		t.Fatal("another address was refused")
	}
	a.Close()
	for deadline := time.Now().Add(5 * time.Second); ; {
		if c, err := d.Dial("tcp", addr); err == nil { // a refused attempt may be reset while connecting
			code := roundTrip(t, c, req("GET", "/", ""))
			c.Close()
			if code == 200 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("slot not freed after a connection closed")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestServerLimits(t *testing.T) {
	addr := startServer(t, okHandler, ServerConfig{MaxHeaderBytes: 4096, IdleTimeout: 200 * time.Millisecond})
	c := dialFrom(t, "127.0.0.12", addr)
	defer c.Close()
	if code := roundTrip(t, c, "GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n0123456789"); code != 413 && code != 400 {
		t.Fatalf("GET with a body: %d, want 413 or 400", code)
	}
	c2 := dialFrom(t, "127.0.0.12", addr)
	defer c2.Close()
	big := "GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + strings.Repeat("a", 8000) + "\r\n\r\n"
	if code := roundTrip(t, c2, big); code != 431 && code != 0 {
		t.Fatalf("oversized header: %d", code)
	}
	// An idle keep-alive connection is closed after IdleTimeout.
	c3 := dialFrom(t, "127.0.0.12", addr)
	defer c3.Close()
	if roundTrip(t, c3, req("GET", "/", "")) != 200 {
		t.Fatal("request failed")
	}
	c3.SetReadDeadline(time.Now().Add(3 * time.Second))
	start := time.Now()
	if _, err := c3.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("idle connection: %v", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("idle connection closed after %v", d)
	}
}

// TestWriteStallCutsReader: a peer that stops reading mid-body is cut after WriteStallTimeout,
// which gives back its upload slot and the open file (it cannot pin them forever).
func TestWriteStallCutsReader(t *testing.T) {
	const size = 16 << 20 // more than loopback socket buffers hold
	c := newMemContent()
	p, _ := writeTemp(t, size, 51)
	c.files[string(fileHash)] = p
	h := NewPeerHandler(c, NewThrottle(Limits{MaxUploads: 1}), nil)
	addr := startServer(t, h.ServeFastHTTP, ServerConfig{WriteStallTimeout: 300 * time.Millisecond})
	conn := dialFrom(t, "127.0.0.13", addr)
	defer conn.Close()
	io.WriteString(conn, req("GET", "/~/"+string(QuotePlus(nil, fileHash)), ""))
	resp, err := readHeader(bufio.NewReader(conn))
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("%v %v", resp, err)
	}
	start := time.Now()
	for h.t.Active() != 0 {
		if time.Since(start) > 10*time.Second {
			t.Fatal("stalled upload still holds its slot")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if d := time.Since(start); d < 250*time.Millisecond {
		t.Fatalf("cut after %v, before the stall timeout", d)
	}
	c.waitReleased(t)
	body, err := io.ReadAll(resp.Body)
	if err == nil || len(body) >= size {
		t.Fatalf("stalled reader got %d of %d bytes, err %v", len(body), size, err)
	}
}

// The daemon's own apt clients are exempt from the per-address cap (a site
// cache serves a whole NAT'ed office from one address); peers stay capped.
func TestLimitListenerUnlimitedClients(t *testing.T) {
	trusted := netip.MustParseAddr("127.0.0.12")
	addr := startServer(t, okHandler, ServerConfig{MaxConnsPerIP: 2, Unlimited: func(a netip.Addr) bool { return a == trusted }})
	var conns []net.Conn
	for range 5 {
		c := dialFrom(t, "127.0.0.12", addr)
		conns = append(conns, c)
		if code := roundTrip(t, c, req("GET", "/", "")); code != 200 {
			t.Fatalf("connection %d from a trusted client answered %d", len(conns), code)
		}
	}
	for _, c := range conns {
		c.Close()
	}
	a, b := dialFrom(t, "127.0.0.13", addr), dialFrom(t, "127.0.0.13", addr)
	defer a.Close()
	defer b.Close()
	if roundTrip(t, a, req("GET", "/", "")) != 200 || roundTrip(t, b, req("GET", "/", "")) != 200 {
		t.Fatal("an untrusted address's first two connections were refused")
	}
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.13")}}
	if third, err := d.Dial("tcp", addr); err == nil {
		defer third.Close()
		if code := roundTrip(t, third, req("GET", "/", "")); code != 0 {
			t.Fatalf("third connection from an untrusted address answered %d", code)
		}
	}
}
