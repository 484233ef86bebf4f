package httpserve

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/netip"
	"slices"
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
		ra := &readAhead{hook: r.hook, ahead: 100, sending: true}
		for s := stream; len(s) > 0; {
			n := min(chunk, len(s))
			ra.scan([]byte(s[:n])) // before the first handler
			s = s[n:]
		}
		if got := strings.Join(r.list(), "|"); got != want {
			t.Errorf("chunks of %d: reported %q, want %q (the first request is the one being read, not ahead)", chunk, got, want)
		}
	}

	// A request line longer than the scanner keeps is not reported; the
	// stream stays in step after it.
	var r reports
	ra := &readAhead{hook: r.hook, ahead: 100, sending: true}
	long := "/" + strings.Repeat("x", maxRequestLine)
	ra.scan([]byte(pipelineText("/a", long, "/c")))
	if got := strings.Join(r.list(), "|"); got != "GET /c" {
		t.Errorf("with an overlong line: %q", got)
	}

	// A request with a body stops the scanner: it could not tell request
	// lines from body bytes any more.
	r = reports{}
	ra = &readAhead{hook: r.hook, ahead: 100, sending: true}
	ra.scan([]byte(pipelineText("/a", "/b") + req("GET", "/c", "Content-Length: 20\r\n") + "GET /x HTTP/1.1\r\n\r\n" + pipelineText("/d")))
	if got := strings.Join(r.list(), "|"); got != "GET /b|GET /c" || !ra.off {
		t.Errorf("after a body: %q, off %v", got, ra.off)
	}

}

// The window: with ahead = 1 only the request after the one being answered is
// reported, once that answer is being sent (its handler returned); the others
// as the requests before them come up; at most maxDeferred are kept for that.
func TestReadAheadWindow(t *testing.T) {
	var r reports
	ra := &readAhead{hook: r.hook, ahead: 1, async: true} // the window logic, as the reader goroutine scans
	var paths []string
	for i := 1; i <= 5; i++ {
		paths = append(paths, fmt.Sprintf("/%d", i))
	}
	ra.scan([]byte(pipelineText(paths...))) // fasthttp reading request 1; nothing answered yet
	if got := r.list(); len(got) != 0 {
		t.Fatalf("before the first answer is sent: %q, want nothing", got)
	}
	ra.start() // handler 1: its own lookup and first byte come first
	if got := r.list(); len(got) != 0 {
		t.Fatalf("while handler 1 runs: %q, want nothing", got)
	}
	want := []string{}
	for h := 1; h <= 4; h++ {
		if h > 1 {
			ra.start()
		}
		ra.sent()
		want = append(want, fmt.Sprintf("GET /%d", h+1))
		if got := strings.Join(r.list(), "|"); got != strings.Join(want, "|") {
			t.Fatalf("answer %d being sent: %q, want %q", h, got, strings.Join(want, "|"))
		}
	}
	ra.start() // request 5: nothing queued after it yet
	ra.sent()
	ra.idle()
	// Requests that arrive while nothing is answered: the first is fasthttp's
	// next (not reported), the one after it waits for that answer.
	ra.scan([]byte(pipelineText("/6", "/7", "/8")))
	if n := len(r.list()); n != 4 {
		t.Fatalf("while idle: %q", r.list())
	}
	ra.start()
	ra.sent()
	if got := r.list(); got[len(got)-1] != "GET /7" || len(got) != 5 {
		t.Fatalf("answer 6 being sent: %q, want GET /7 added", got)
	}
	// An answer being sent: a request arriving in the window is reported at once.
	ra.scan([]byte(pipelineText("/9")))
	ra.start()
	ra.sent() // request 7: /8 comes up
	ra.scan([]byte(pipelineText("/10")))
	if got := strings.Join(r.list()[5:], "|"); got != "GET /8" {
		t.Fatalf("answer 7 being sent: %q, want GET /8 (and /9, /10 waiting)", got)
	}

	r = reports{}
	ra = &readAhead{hook: r.hook, ahead: 1, async: true}
	var many []string
	for i := range 3 * maxDeferred {
		many = append(many, fmt.Sprintf("/%d", i))
	}
	ra.scan([]byte(pipelineText(many...)))
	if len(ra.later) != maxDeferred {
		t.Fatalf("%d requests in one read: %d kept for later, want %d", len(many), len(ra.later), maxDeferred)
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
		body := "body of " + string(ctx.Path())
		if string(ctx.Path()) != "/1" || !remoteIs(ctx, trusted) {
			ctx.SetBodyString(body)
			return
		}
		// While the first answer is sent, wait (bounded) until the other
		// nine have been reported.
		ctx.SetBodyStreamWriter(func(w *bufio.Writer) {
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
			w.WriteString(body)
		})
	}
	addr := startServer(t, h, ServerConfig{
		Unlimited:      func(a netip.Addr) bool { return a == trusted },
		Pipelined:      r.hook,
		PipelinedAhead: 9, // apt's whole pipeline at once
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

// TestRequestDuringLongResponseReported: apt sends request N+10 when response
// N is complete, which is while a later, long response may be streaming, and
// fasthttp reads the socket only when its buffer is empty. The read-ahead sees
// such a request at once, not when the long response has ended.
func TestRequestDuringLongResponseReported(t *testing.T) {
	trusted := netip.MustParseAddr("127.0.0.21")
	r := &reports{ch: make(chan struct{}, 16)}
	started := make(chan struct{}, 1)
	var sawThird bool
	h := func(ctx *fasthttp.RequestCtx) {
		body := "body of " + string(ctx.Path())
		if string(ctx.Path()) != "/1" {
			ctx.SetBodyString(body)
			return
		}
		// A long response: it ends only once /3, sent while it streams, has
		// been reported (bounded wait).
		ctx.SetBodyStreamWriter(func(w *bufio.Writer) {
			started <- struct{}{}
			timeout := time.After(10 * time.Second)
			for !sawThird {
				select {
				case <-r.ch:
					for _, g := range r.list() {
						sawThird = sawThird || g == "GET /3"
					}
				case <-timeout:
					w.WriteString("timed out")
					return
				}
			}
			w.WriteString(body)
		})
	}
	addr := startServer(t, h, ServerConfig{Unlimited: func(a netip.Addr) bool { return a == trusted }, Pipelined: r.hook,
		PipelinedAhead: 2})
	c := dialFrom(t, trusted.String(), addr)
	defer c.Close()
	io.WriteString(c, pipelineText("/1", "/2")) // fasthttp reads both at once
	<-started
	io.WriteString(c, pipelineText("/3")) // while response 1 is being sent
	br := bufio.NewReader(c)
	for _, p := range []string{"/1", "/2", "/3"} {
		resp, err := readHeader(br)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		if string(body) != "body of "+p {
			t.Fatalf("response %q where %s's was due", body, p)
		}
	}
	if !sawThird {
		t.Fatalf("request 3 was not reported while response 1 was being produced (reports %v)", r.list())
	}
}

// The read-ahead honours fasthttp's read deadlines: an idle kept-alive
// connection from a trusted client is closed after IdleTimeout as any other.
func TestReadAheadIdleTimeout(t *testing.T) {
	trusted := netip.MustParseAddr("127.0.0.22")
	addr := startServer(t, okHandler, ServerConfig{IdleTimeout: 200 * time.Millisecond,
		Unlimited: func(a netip.Addr) bool { return a == trusted }, Pipelined: func(netip.Addr, []byte, []byte) {}})
	c := dialFrom(t, trusted.String(), addr)
	defer c.Close()
	if roundTrip(t, c, req("GET", "/", "")) != 200 {
		t.Fatal("request failed")
	}
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("idle connection: %v, want it closed by the server", err)
	}
}

// TestReadAheadDirectUntilPipelined: a trusted client that sends one request
// at a time is read on the connection's own goroutine (no reader goroutine, no
// hand-off per request); one that pipelines turns the connection to the
// reader goroutine at the read that shows it, and one whose next request
// waits in the socket as an answer starts to be sent turns then, so that
// request is reported while the answer streams.
func TestReadAheadDirectUntilPipelined(t *testing.T) {
	trusted := netip.MustParseAddr("127.0.0.23")
	r := &reports{ch: make(chan struct{}, 16)}
	var mu sync.Mutex
	async := map[string]bool{} // path → the connection was async when its handler ran
	arrived := make(chan struct{}, 1)
	h := func(ctx *fasthttp.RequestCtx) {
		c := ctx.Conn().(*tcpLimitConn)
		mu.Lock()
		async[string(ctx.Path())] = c.ra.async
		mu.Unlock()
		if string(ctx.Path()) == "/w1" {
			// Wait (bounded) for the client's next request to be in the socket.
			arrived <- struct{}{}
			c.raw.Control(func(fd uintptr) { // poll(2) for readable, bounded
				unix.Poll([]unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}, 10_000) //nolint:errcheck
			})
			// The answer streams until /w2 has been reported (bounded wait).
			ctx.SetBodyStreamWriter(func(w *bufio.Writer) {
				timeout := time.After(10 * time.Second)
				for {
					select {
					case <-r.ch:
						if slices.Contains(r.list(), "GET /w2") {
							w.WriteString("body of /w1")
							return
						}
					case <-timeout:
						w.WriteString("timed out")
						return
					}
				}
			})
			return
		}
		ctx.SetBodyString("body of " + string(ctx.Path()))
	}
	addr := startServer(t, h, ServerConfig{Unlimited: func(a netip.Addr) bool { return a == trusted }, Pipelined: r.hook})
	get := func(c net.Conn, br *bufio.Reader, paths ...string) {
		t.Helper()
		for _, p := range paths {
			resp, err := readHeader(br)
			if err != nil {
				t.Fatal(err)
			}
			if body, _ := io.ReadAll(resp.Body); string(body) != "body of "+p {
				t.Fatalf("response %q where %s's was due", body, p)
			}
		}
	}
	asyncAt := func(p string) bool {
		mu.Lock()
		defer mu.Unlock()
		return async[p]
	}

	// One at a time: direct throughout.
	c := dialFrom(t, trusted.String(), addr)
	br := bufio.NewReader(c)
	for _, p := range []string{"/a1", "/a2", "/a3"} {
		io.WriteString(c, pipelineText(p))
		get(c, br, p)
		if asyncAt(p) {
			t.Fatalf("%s: one request at a time, yet the connection turned to the reader goroutine", p)
		}
	}
	c.Close()

	// Pipelined from the first read: async before the first handler runs.
	c = dialFrom(t, trusted.String(), addr)
	br = bufio.NewReader(c)
	io.WriteString(c, pipelineText("/p1", "/p2", "/p3"))
	get(c, br, "/p1", "/p2", "/p3")
	if !asyncAt("/p1") || !asyncAt("/p3") {
		t.Fatalf("three requests in one write: async %v %v, want the reader goroutine", asyncAt("/p1"), asyncAt("/p3"))
	}
	c.Close()

	// The next request arrives while the first is being answered.
	c = dialFrom(t, trusted.String(), addr)
	br = bufio.NewReader(c)
	io.WriteString(c, pipelineText("/w1"))
	<-arrived
	io.WriteString(c, pipelineText("/w2"))
	get(c, br, "/w1", "/w2")
	if asyncAt("/w1") || !asyncAt("/w2") {
		t.Fatalf("async at /w1 %v (want direct), at /w2 %v (want the reader goroutine)", asyncAt("/w1"), asyncAt("/w2"))
	}
	found := false
	for _, g := range r.list() {
		found = found || g == "GET /w2"
	}
	if !found {
		t.Fatalf("/w2, waiting as /w1's answer started, was not reported: %v", r.list())
	}
	c.Close()
}
