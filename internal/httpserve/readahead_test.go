package httpserve

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
	"golang.org/x/sys/unix"
)

type reports struct {
	mu  sync.Mutex
	got []string
	ch  chan struct{} // receives one value per report, if set
}

func (r *reports) hook(from netip.Addr, method, uri []byte) {
	r.mu.Lock()
	r.got = append(r.got, string(method)+" "+string(uri))
	r.mu.Unlock()
	if r.ch != nil {
		r.ch <- struct{}{}
	}
}

func (r *reports) list() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.got...)
}

func pipelineText(paths ...string) string {
	var b strings.Builder
	for _, p := range paths {
		b.WriteString(req("GET", p, "User-Agent: Debian APT-HTTP/1.3\r\n"))
	}
	return b.String()
}

func TestReadAheadScan(t *testing.T) {
	stream := pipelineText("/a", "/b") + "\r\n" + req("HEAD", "/c", "") + pipelineText("/d")
	want := "GET /b|HEAD /c|GET /d"
	for _, chunk := range []int{1, 2, 7, 64, len(stream)} {
		var r reports
		ra := &readAhead{hook: r.hook}
		for s := stream; len(s) > 0; {
			n := min(chunk, len(s))
			ra.scan([]byte(s[:n]), ra.handled+1) // as fasthttp's reads before the first handler
			s = s[n:]
		}
		if got := strings.Join(r.list(), "|"); got != want {
			t.Errorf("chunks of %d: reported %q, want %q (the first request is the one being read, not ahead)", chunk, got, want)
		}
	}

	// A request line longer than the scanner keeps is not reported; the
	// stream stays in step after it.
	var r reports
	ra := &readAhead{hook: r.hook}
	long := "/" + strings.Repeat("x", maxRequestLine)
	ra.scan([]byte(pipelineText("/a", long, "/c")), 1)
	if got := strings.Join(r.list(), "|"); got != "GET /c" {
		t.Errorf("with an overlong line: %q", got)
	}

	// A request with a body stops the scanner: it could not tell request
	// lines from body bytes any more.
	r = reports{}
	ra = &readAhead{hook: r.hook}
	ra.scan([]byte(pipelineText("/a", "/b")+req("GET", "/c", "Content-Length: 20\r\n")+"GET /x HTTP/1.1\r\n\r\n"+pipelineText("/d")), 1)
	if got := strings.Join(r.list(), "|"); got != "GET /b|GET /c" || !ra.off {
		t.Errorf("after a body: %q, off %v", got, ra.off)
	}

	// At most maxAhead requests beyond the one being handled are reported.
	r = reports{}
	ra = &readAhead{hook: r.hook}
	var many []string
	for i := range 3 * maxAhead {
		many = append(many, fmt.Sprintf("/%d", i))
	}
	ra.scan([]byte(pipelineText(many...)), 1)
	if n := len(r.list()); n != maxAhead-1 {
		t.Errorf("%d requests in one read: %d reported, want %d", len(many), n, maxAhead-1)
	}
}

// TestPipelinedRequestsReportedAtOnce: apt writes 10 requests at once; while
// the first one's handler runs, the other nine have been reported, so their
// work can start before their turn. Responses still come back in order. An
// untrusted client (a peer) is not read ahead.
func TestPipelinedRequestsReportedAtOnce(t *testing.T) {
	trusted := netip.MustParseAddr("127.0.0.14")
	r := &reports{ch: make(chan struct{}, 100)}
	var aheadAtFirst int
	h := func(ctx *fasthttp.RequestCtx) {
		if string(ctx.Path()) == "/1" && remoteIs(ctx, trusted) {
			// Wait (bounded) until the other nine have been reported.
			timeout := time.After(10 * time.Second)
		wait:
			for aheadAtFirst < 9 {
				select {
				case <-r.ch:
					aheadAtFirst++
				case <-timeout:
					break wait
				}
			}
		}
		ctx.SetBodyString("body of " + string(ctx.Path()))
	}
	addr := startServer(t, h, ServerConfig{
		Unlimited: func(a netip.Addr) bool { return a == trusted },
		Pipelined: r.hook,
	})
	var paths []string
	for i := 1; i <= 10; i++ {
		paths = append(paths, fmt.Sprintf("/%d", i))
	}
	check := func(from string) {
		t.Helper()
		c := dialFrom(t, from, addr)
		defer c.Close()
		c.SetDeadline(time.Now().Add(30 * time.Second))
		if _, err := io.WriteString(c, pipelineText(paths...)); err != nil {
			t.Fatal(err)
		}
		br := bufio.NewReader(c)
		for _, p := range paths {
			resp, err := readHeader(br)
			if err != nil {
				t.Fatalf("from %s, response for %s: %v", from, p, err)
			}
			body, _ := io.ReadAll(resp.Body)
			if string(body) != "body of "+p {
				t.Fatalf("from %s: response %q where %s's was due: out of order", from, body, p)
			}
		}
	}
	check(trusted.String())
	if aheadAtFirst != 9 {
		t.Fatalf("while the first request was handled, %d of the 9 pipelined behind it had been reported (%v)", aheadAtFirst, r.list())
	}
	if got, want := strings.Join(r.list(), " "), "GET /2 GET /3 GET /4 GET /5 GET /6 GET /7 GET /8 GET /9 GET /10"; got != want {
		t.Errorf("reported %q, want %q", got, want)
	}
	before := len(r.list())
	check("127.0.0.15")
	if n := len(r.list()) - before; n != 0 {
		t.Errorf("an untrusted connection was read ahead: %d reports", n)
	}
}

func remoteIs(ctx *fasthttp.RequestCtx, a netip.Addr) bool {
	ta, ok := ctx.RemoteAddr().(*net.TCPAddr)
	return ok && ta.AddrPort().Addr().Unmap() == a
}

// TestReadAheadDrain: a request the client sends while an earlier one is
// being answered sits in the socket while fasthttp's buffer still holds
// others; the drain at the next handler's start reports it, and fasthttp then
// reads the drained bytes unchanged.
func TestReadAheadDrain(t *testing.T) {
	r := &reports{}
	cfg := ServerConfig{Unlimited: func(netip.Addr) bool { return true }, Pipelined: r.hook}
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln := LimitListener(inner, cfg)
	defer ln.Close()
	client, err := net.Dial("tcp", inner.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	sc, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer sc.Close()
	lc := sc.(*tcpLimitConn)
	if lc.ra == nil {
		t.Fatal("a trusted connection has no read-ahead")
	}
	first := pipelineText("/1", "/2")
	io.WriteString(client, first)
	got := make([]byte, 0, len(first))
	buf := make([]byte, 4096)
	for len(got) < len(first) { // fasthttp reading requests 1 and 2
		n, err := lc.Read(buf)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, buf[:n]...)
	}
	lc.nextRequest() // handler 1 starts; nothing new in the socket
	third := pipelineText("/3")
	io.WriteString(client, third) // apt, having received response 1
	waitReadable(t, lc)
	// Handler 2 starts (request 2 came from fasthttp's own buffer, so
	// fasthttp has not read the socket): request 3 waits behind response 2.
	lc.nextRequest()
	if got := strings.Join(r.list(), "|"); got != "GET /2|GET /3" {
		t.Fatalf("reported %q, want GET /2 (read with /1) and GET /3 (drained)", got)
	}
	n, err := lc.Read(buf)
	if err != nil || string(buf[:n]) != third {
		t.Fatalf("after the drain fasthttp read %q (%v), want request 3 unchanged", buf[:n], err)
	}
}

// waitReadable waits (bounded) until the server side of c has bytes to read.
func waitReadable(t *testing.T, c *tcpLimitConn) {
	t.Helper()
	for range 500 {
		var n int
		c.raw.Control(func(fd uintptr) { n, _ = unix.IoctlGetInt(int(fd), unix.SIOCINQ) })
		if n > 0 {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatal("the client's bytes never arrived")
}
