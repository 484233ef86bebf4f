package httpserve

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

const expressCT = "application/vnd.debian.binary-package"

// expressFiles serves the same files on the express lane and through ServeFile (the handler), so
// the two answers can be compared.
type expressFiles struct {
	paths   map[string]string // URI → file
	etag    []byte
	handled atomic.Int64 // requests the fasthttp handler answered
	opened  atomic.Int64
	done    chan expressEnd
	// slowGate, if set (before the server starts), holds /slow's answer after its first chunk
	// until it is closed.
	slowGate chan struct{}
}

type expressEnd struct {
	uri  string
	sent int64
	err  error
}

func newExpressFiles(t *testing.T, sizes map[string]int) (*expressFiles, map[string][]byte) {
	e := &expressFiles{paths: map[string]string{}, etag: mustHex(strings.Repeat("ab", 32)), done: make(chan expressEnd, 64)}
	data := map[string][]byte{}
	seed := uint64(40)
	for uri, n := range sizes {
		seed++
		e.paths[uri], data[uri] = writeTemp(t, n, seed)
	}
	return e, data
}

func (e *expressFiles) open(uri string) (*os.File, int64, bool) {
	p, ok := e.paths[uri]
	if !ok {
		return nil, 0, false
	}
	f, err := os.Open(p)
	if err != nil {
		return nil, 0, false
	}
	st, _ := f.Stat()
	return f, st.Size(), true
}

func (e *expressFiles) ExpressOpen(from netip.Addr, uri []byte, f *ExpressFile) bool {
	file, size, ok := e.open(string(uri))
	if !ok {
		return false
	}
	e.opened.Add(1)
	f.File, f.Size, f.Release, f.Tag = file, size, file, string(uri)
	f.Header = ExpressHeader(size, expressCT, e.etag)
	return true
}

func (e *expressFiles) ExpressDone(f *ExpressFile, sent int64, err error) {
	f.Release.Close()
	e.done <- expressEnd{uri: f.Tag.(string), sent: sent, err: err}
}

func (e *expressFiles) handler(ctx *fasthttp.RequestCtx) {
	e.handled.Add(1)
	if string(ctx.Path()) == "/slow" {
		// A streamed answer, held open after its first chunk while slowGate is: a request behind
		// it must wait its turn.
		ctx.SetBodyStreamWriter(func(w *bufio.Writer) {
			for i := range 20 {
				w.WriteString(strings.Repeat("s", 1000))
				w.Flush()
				if i == 0 && e.slowGate != nil {
					select {
					case <-e.slowGate:
					case <-time.After(20 * time.Second):
					}
				}
			}
		})
		return
	}
	f, size, ok := e.open(string(ctx.RequestURI()))
	if !ok {
		ctx.SetStatusCode(fasthttp.StatusNotFound)
		return
	}
	ServeFile(ctx, &FileResponse{File: f, Size: size, ContentType: expressCT, ETag: e.etag, Release: func() { f.Close() }})
}

func startExpress(t *testing.T, e *expressFiles, cfg ServerConfig) (addr string, trusted netip.Addr) {
	trusted = netip.MustParseAddr("127.0.0.31")
	cfg.Name = "apt-p2p/test"
	cfg.Unlimited = func(a netip.Addr) bool { return a == trusted }
	cfg.Pipelined = func(netip.Addr, []byte, []byte) {}
	cfg.Express = e
	return startServer(t, e.handler, cfg), trusted
}

// TestExpressLaneAnswersLikeServeFile: a plain GET of a hot file is answered without fasthttp,
// with the status, headers and body ServeFile gives for it (only Date may differ), many times
// on one connection.
func TestExpressLaneAnswersLikeServeFile(t *testing.T) {
	e, data := newExpressFiles(t, map[string]int{"/pool/hot.deb": 70 << 10, "/pool/small.deb": 300, "/pool/empty.deb": 0})
	addr, trusted := startExpress(t, e, ServerConfig{})
	c := dialFrom(t, trusted.String(), addr)
	defer c.Close()
	br := bufio.NewReader(c)
	for _, uri := range []string{"/pool/hot.deb", "/pool/small.deb", "/pool/empty.deb", "/pool/hot.deb"} {
		io.WriteString(c, req("GET", uri, "User-Agent: Debian APT-HTTP/1.3 (2.6.1)\r\nAccept: */*\r\n"))
		fast, fastBody := readResponse(t, br, "GET")
		if n := e.handled.Load(); n != 0 {
			t.Fatalf("%s: the handler answered %d requests; the express lane should have", uri, n)
		}
		if end := <-e.done; end.uri != uri || end.err != nil || end.sent != int64(len(data[uri])) {
			t.Fatalf("%s: ExpressDone %+v, want %d bytes sent and no error", uri, end, len(data[uri]))
		}
		// The same request with a header the lane does not know goes to fasthttp.
		io.WriteString(c, req("GET", uri, "User-Agent: Debian APT-HTTP/1.3 (2.6.1)\r\nX-Other: 1\r\n"))
		slow, slowBody := readResponse(t, br, "GET")
		if n := e.handled.Swap(0); n != 1 {
			t.Fatalf("%s with an unknown header: the handler answered %d requests, want 1", uri, n)
		}
		if !bytes.Equal(fastBody, data[uri]) || !bytes.Equal(slowBody, data[uri]) {
			t.Fatalf("%s: bodies of %d and %d bytes, want %d", uri, len(fastBody), len(slowBody), len(data[uri]))
		}
		if fast.StatusCode != slow.StatusCode || fast.Proto != slow.Proto || fast.ContentLength != slow.ContentLength {
			t.Fatalf("%s: express %s %d (%d bytes), fasthttp %s %d (%d bytes)", uri, fast.Proto, fast.StatusCode,
				fast.ContentLength, slow.Proto, slow.StatusCode, slow.ContentLength)
		}
		fast.Header.Del("Date")
		slow.Header.Del("Date")
		if got, want := headerText(fast.Header), headerText(slow.Header); got != want {
			t.Fatalf("%s: express headers\n%s\nfasthttp's\n%s", uri, got, want)
		}
		if d := fast.Header.Get("Content-Type"); d != expressCT {
			t.Fatalf("Content-Type %q", d)
		}
	}
}

func headerText(h http.Header) string {
	var b strings.Builder
	h.Write(&b) //nolint:errcheck
	return b.String()
}

// TestExpressLaneLeavesTheRestToFasthttp: anything but a plain GET of a file the hook has goes to
// the handler, which answers it with the full rules (ranges, conditionals, HEAD, HTTP/1.0,
// Connection: close, bodies, unknown headers, untrusted clients).
func TestExpressLaneLeavesTheRestToFasthttp(t *testing.T) {
	e, data := newExpressFiles(t, map[string]int{"/hot": 5000, "/big": defaultExpressMaxSize + 1})
	addr, trusted := startExpress(t, e, ServerConfig{})
	etag := `"` + strings.Repeat("ab", 32) + `"`
	cases := []struct {
		name, text string
		status     int
		body       int // expected body length; -1: not checked
		handled    int // answers from the handler (fasthttp answers a body it refuses itself)
	}{
		{"range", req("GET", "/hot", "Range: bytes=10-19\r\n"), 206, 10, 1},
		{"if-none-match", req("GET", "/hot", "If-None-Match: "+etag+"\r\n"), 304, 0, 1},
		{"if-modified-since", req("GET", "/hot", "If-Modified-Since: Sun, 06 Dec 2026 12:00:00 GMT\r\n"), 200, 5000, 1},
		{"if-range", req("GET", "/hot", "If-Range: \"x\"\r\nRange: bytes=0-0\r\n"), 200, 5000, 1},
		{"connection close", req("GET", "/hot", "Connection: close\r\n"), 200, 5000, 1},
		{"head", req("HEAD", "/hot", ""), 200, 0, 1},
		{"http/1.0", "GET /hot HTTP/1.0\r\nHost: x\r\n\r\n", 200, 5000, 1},
		{"unknown header", req("GET", "/hot", "X-Forwarded-Proto: https\r\n"), 200, 5000, 1},
		{"folded header", req("GET", "/hot", "User-Agent: a\r\n b\r\n"), 200, 5000, 1},
		{"body", req("GET", "/hot", "Content-Length: 2\r\n") + "xy", 400, -1, 0},
		{"unknown file", req("GET", "/cold", ""), 404, -1, 1},
		{"absolute form", req("GET", "http://mirror/hot", ""), 404, -1, 1},
		{"file over ExpressMaxSize", req("GET", "/big", ""), 200, defaultExpressMaxSize + 1, 1},
	}
	for _, tc := range cases {
		c := dialFrom(t, trusted.String(), addr)
		io.WriteString(c, tc.text)
		method := "GET"
		if strings.HasPrefix(tc.text, "HEAD") {
			method = "HEAD"
		}
		resp, body := readResponse(t, bufio.NewReader(c), method)
		c.Close()
		if resp.StatusCode != tc.status || (tc.body >= 0 && len(body) != tc.body) {
			t.Errorf("%s: HTTP %d with %d bytes, want %d with %d", tc.name, resp.StatusCode, len(body), tc.status, tc.body)
		}
		if tc.body == 5000 && !bytes.Equal(body, data["/hot"]) {
			t.Errorf("%s: wrong body", tc.name)
		}
		if n := e.handled.Swap(0); n != int64(tc.handled) {
			t.Errorf("%s: the handler answered %d requests, want %d", tc.name, n, tc.handled)
		}
	}
	if n := e.opened.Load(); n != 1 {
		t.Errorf("the express lane opened %d files, want 1 (the one over its size, then released)", n)
	}

	// An untrusted client (a peer) never takes the lane.
	c := dialFrom(t, "127.0.0.32", addr)
	defer c.Close()
	if code := roundTrip(t, c, req("GET", "/hot", "")); code != 200 || e.handled.Swap(0) != 1 {
		t.Errorf("untrusted client: HTTP %d, or not answered by the handler", code)
	}
}

// TestExpressLaneKeepsOrder: an express answer never overtakes fasthttp's. A request pipelined
// behind a streaming answer is answered after it, in order (by fasthttp); a plain request sent
// after an answer was read takes the lane; a request split over several writes is answered whole.
func TestExpressLaneKeepsOrder(t *testing.T) {
	e, data := newExpressFiles(t, map[string]int{"/hot": 70 << 10})
	e.slowGate = make(chan struct{})
	addr, trusted := startExpress(t, e, ServerConfig{})
	c := dialFrom(t, trusted.String(), addr)
	defer c.Close()
	br := bufio.NewReader(c)

	io.WriteString(c, req("GET", "/slow", "")+req("GET", "/hot", ""))
	// /slow's answer has begun and is held while /hot waits in the socket; then it goes on.
	resp, err := readHeader(br)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("first answer: %v %v", resp, err)
	}
	close(e.slowGate)
	if body, _ := io.ReadAll(resp.Body); len(body) != 20000 || strings.Trim(string(body), "s") != "" {
		t.Fatalf("first answer: %d bytes, want the slow one's 20000 and nothing else", len(body))
	}
	if resp, body := readResponse(t, br, "GET"); resp.StatusCode != 200 || !bytes.Equal(body, data["/hot"]) {
		t.Fatalf("second answer: HTTP %d, %d bytes, want /hot", resp.StatusCode, len(body))
	}

	// One at a time on a new connection: after a fasthttp answer, the lane.
	c2 := dialFrom(t, trusted.String(), addr)
	defer c2.Close()
	br2 := bufio.NewReader(c2)
	e.handled.Store(0)
	io.WriteString(c2, req("GET", "/slow", ""))
	readResponse(t, br2, "GET")
	io.WriteString(c2, req("GET", "/hot", ""))
	if _, body := readResponse(t, br2, "GET"); !bytes.Equal(body, data["/hot"]) {
		t.Fatal("wrong body for /hot after /slow")
	}
	if end := <-e.done; end.uri != "/hot" || end.err != nil {
		t.Fatalf("ExpressDone %+v", end)
	}
	if n := e.handled.Load(); n != 1 {
		t.Fatalf("the handler answered %d requests, want 1 (/slow)", n)
	}

	// A request in pieces: whichever way the reads split it, one whole answer.
	text := req("GET", "/hot", "User-Agent: Debian APT-HTTP/1.3\r\n")
	for _, cut := range []int{3, len(text) / 2, len(text) - 1} {
		io.WriteString(c2, text[:cut])
		time.Sleep(time.Millisecond) // encourages (TCP cannot guarantee) two reads; no assertion on time
		io.WriteString(c2, text[cut:])
		if resp, body := readResponse(t, br2, "GET"); resp.StatusCode != 200 || !bytes.Equal(body, data["/hot"]) {
			t.Fatalf("split at %d: HTTP %d, %d bytes", cut, resp.StatusCode, len(body))
		}
	}
}

// TestExpressLaneStallAndIdle: an express answer to a client that stops reading is cut after the
// stall timeout (the file released, the connection closed); express answers keep a busy connection
// alive past the idle timeout, and an idle one is still closed after it.
func TestExpressLaneStallAndIdle(t *testing.T) {
	e, data := newExpressFiles(t, map[string]int{"/big": 32 << 20, "/hot": 1000})
	addr, trusted := startExpress(t, e, ServerConfig{WriteStallTimeout: 200 * time.Millisecond, IdleTimeout: time.Second,
		ExpressMaxSize: 64 << 20}) // a file beyond the socket buffers

	c := dialFrom(t, trusted.String(), addr)
	io.WriteString(c, req("GET", "/big", "")) // and never read
	select {
	case end := <-e.done:
		if end.err == nil || end.sent >= 32<<20 {
			t.Fatalf("stalled client: ExpressDone %+v, want an error before the end", end)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("a stalled express answer was not cut")
	}
	// What the client gets is the header and a prefix of the file, then the end: nothing (an
	// error answer from fasthttp) behind it.
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	got, err := io.ReadAll(c)
	head, body, ok := bytes.Cut(got, []byte("\r\n\r\n"))
	if !ok || !bytes.HasPrefix(head, []byte("HTTP/1.1 200 OK")) || len(body) >= len(data["/big"]) ||
		!bytes.Equal(body, data["/big"][:len(body)]) {
		t.Fatalf("the stalled client read %d bytes (%v): not a header and a prefix of the file", len(got), err)
	}
	c.Close()

	c = dialFrom(t, trusted.String(), addr)
	defer c.Close()
	for i := range 3 {
		if code := roundTrip(t, c, req("GET", "/hot", "")); code != 200 {
			t.Fatalf("request %d, %d ms after the first: HTTP %d (connection closed?)", i+1, i*700, code)
		}
		<-e.done
		if i < 2 {
			// 1.4 s in all: past the idle timeout, never idle that long. (Socket deadlines run on
			// the runtime's wall clock: no fake clock can move them.)
			time.Sleep(700 * time.Millisecond)
		}
	}
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
		t.Fatalf("idle connection after express answers: %v, want it closed by the server", err)
	}
}

// TestExpressRequest: the parser takes exactly one complete plain GET.
func TestExpressRequest(t *testing.T) {
	for _, tc := range []struct {
		text, uri string
	}{
		{"GET /a HTTP/1.1\r\nHost: x\r\n\r\n", "/a"},
		{"GET /a HTTP/1.1\r\n\r\n", "/a"},
		{"GET http://m/a HTTP/1.1\r\nhOsT:x\r\nCONNECTION: Keep-Alive\r\n\r\n", "http://m/a"},
		{"GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\n\r\n", ""}, // two requests
		{"GET /a HTTP/1.1\r\nHost: x\r\n", ""},                            // incomplete
		{"GET /a HTTP/1.1\r\nConnection: close\r\n\r\n", ""},
		{"GET /a HTTP/1.1\r\nRange: bytes=1-\r\n\r\n", ""},
		{"GET /a HTTP/1.1\r\nHost x\r\n\r\n", ""},
		{"GET /a HTTP/1.1\r\n: x\r\n\r\n", ""},
		{"GET  /a HTTP/1.1\r\n\r\n", ""},
		{"GET /a\x01 HTTP/1.1\r\n\r\n", ""},
		{"GET * HTTP/1.1\r\n\r\n", ""},
		{"GET /a HTTP/1.1 \r\n\r\n", ""},
		{"get /a HTTP/1.1\r\n\r\n", ""},
		{"GET /a HTTP/1.1\n\n", ""},
	} {
		uri, ok := expressRequest([]byte(tc.text))
		if string(uri) != tc.uri || ok != (tc.uri != "") {
			t.Errorf("%q: %q %v, want %q", tc.text, uri, ok, tc.uri)
		}
	}
}

// FuzzExpressRequest: the parser never panics, and what it takes is one request for one URI
// without spaces or control bytes.
func FuzzExpressRequest(f *testing.F) {
	f.Add([]byte("GET /a HTTP/1.1\r\nHost: x\r\nUser-Agent: y\r\n\r\n"))
	f.Add([]byte("GET http://m/a HTTP/1.1\r\n\r\n"))
	f.Add([]byte("GET /a HTTP/1.1\r\n\r\n\r\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		uri, ok := expressRequest(b)
		if !ok {
			return
		}
		if len(uri) == 0 || bytes.ContainsAny(uri, " \r\n\t") || !bytes.HasSuffix(b, crlfcrlf) ||
			bytes.Index(b, crlfcrlf) != len(b)-4 {
			t.Fatalf("took %q with URI %q", b, uri)
		}
	})
}

// TestExpressLaneDifferential: random conversations — plain GETs of hot files, ranges, HEADs,
// unknown headers, unknown files, a streaming answer — sent one at a time or pipelined in bursts,
// each write cut at random places, get the same answers (status, headers but Date, bodies, in
// order) from a server with the express lane as from one without.
func TestExpressLaneDifferential(t *testing.T) {
	sizes := map[string]int{"/a": 70 << 10, "/b": 300, "/c": 0, "/d": 1 << 20}
	e, _ := newExpressFiles(t, sizes)
	withLane, trusted := startExpress(t, e, ServerConfig{})
	plain := &expressFiles{paths: e.paths, etag: e.etag, done: make(chan expressEnd, 1<<16)}
	noLane := startServer(t, plain.handler, ServerConfig{Name: "apt-p2p/test",
		Unlimited: func(a netip.Addr) bool { return a == trusted }, Pipelined: func(netip.Addr, []byte, []byte) {}})
	go func() { // the lane's reports are not checked here
		for range e.done {
		}
	}()
	kinds := []struct {
		method, uri, extra string
	}{
		{"GET", "/a", ""}, {"GET", "/b", "User-Agent: Debian APT-HTTP/1.3\r\n"}, {"GET", "/c", ""},
		{"GET", "/d", "Accept: */*\r\n"}, {"GET", "/a", "Range: bytes=5-900\r\n"}, {"HEAD", "/b", ""},
		{"GET", "/b", "X-Other: 1\r\n"}, {"GET", "/nope", ""}, {"GET", "/slow", ""},
		{"GET", "/a", "If-None-Match: \"" + strings.Repeat("ab", 32) + "\"\r\n"},
	}
	runs := 40
	if raceEnabled {
		runs = 10
	}
	for seed := range runs {
		rng := rand.New(rand.NewPCG(uint64(seed), 99))
		n := 4 + rng.IntN(12)
		reqs := make([]int, n)
		for i := range reqs {
			reqs[i] = rng.IntN(len(kinds))
		}
		var got [2][]string
		for j, addr := range []string{withLane, noLane} {
			rng := rand.New(rand.NewPCG(uint64(seed), 7)) // the same groupings and cuts for both
			c := dialFrom(t, trusted.String(), addr)
			br := bufio.NewReader(c)
			for i := 0; i < n; {
				// Requests written before reading their answers: one at a time first, then bursts
				// (the connection turns to the read-ahead goroutine).
				burst := 1
				if i >= n/2 {
					burst = 1 + rng.IntN(3)
				}
				if i+burst > n {
					burst = n - i
				}
				var text strings.Builder
				for _, k := range reqs[i : i+burst] {
					text.WriteString(req(kinds[k].method, kinds[k].uri, kinds[k].extra))
				}
				s := text.String()
				for len(s) > 0 { // written whole or in random pieces
					cut := len(s)
					if rng.IntN(3) == 0 {
						cut = 1 + rng.IntN(len(s))
					}
					io.WriteString(c, s[:cut])
					s = s[cut:]
				}
				for _, k := range reqs[i : i+burst] {
					resp, body := readResponse(t, br, kinds[k].method)
					resp.Header.Del("Date")
					got[j] = append(got[j], fmt.Sprintf("%s %d %s %d %x", kinds[k].uri, resp.StatusCode,
						headerText(resp.Header), len(body), sha256.Sum256(body)))
				}
				i += burst
			}
			c.Close()
		}
		if !slices.Equal(got[0], got[1]) {
			t.Fatalf("seed %d: with the lane\n%s\nwithout\n%s", seed, strings.Join(got[0], "\n"), strings.Join(got[1], "\n"))
		}
	}
	if e.opened.Load() == 0 || plain.handled.Load() == 0 {
		t.Fatalf("the lane answered %d requests, the plain server %d: the comparison compared nothing", e.opened.Load(), plain.handled.Load())
	}
	t.Logf("the lane answered %d requests, its handler %d", e.opened.Load(), e.handled.Load())
}

// TestExpressLaneAfterWriteTimeout: fasthttp leaves its write deadline on the connection after an
// answer; an express answer sent after that deadline has passed must not be cut by it.
func TestExpressLaneAfterWriteTimeout(t *testing.T) {
	e, data := newExpressFiles(t, map[string]int{"/hot": 70 << 10})
	addr, trusted := startExpress(t, e, ServerConfig{WriteTimeout: 50 * time.Millisecond})
	c := dialFrom(t, trusted.String(), addr)
	defer c.Close()
	br := bufio.NewReader(c)
	io.WriteString(c, req("GET", "/hot", "X-Other: 1\r\n")) // fasthttp's answer sets its deadline
	if resp, _ := readResponse(t, br, "GET"); resp.StatusCode != 200 {
		t.Fatalf("HTTP %d", resp.StatusCode)
	}
	// Past fasthttp's write deadline (the idle timeout is 60 s); a socket deadline runs on the
	// runtime's wall clock, which no fake clock moves.
	time.Sleep(200 * time.Millisecond)
	for range 2 {
		io.WriteString(c, req("GET", "/hot", ""))
		if resp, body := readResponse(t, br, "GET"); resp.StatusCode != 200 || !bytes.Equal(body, data["/hot"]) {
			t.Fatalf("express answer after the write deadline: HTTP %d, %d bytes", resp.StatusCode, len(body))
		}
		if end := <-e.done; end.err != nil {
			t.Fatalf("express answer cut: %v", end.err)
		}
	}
}
