package httpserve

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

// fakeGrowing is a file being written by the test, with piecestore.Writer's waiting semantics.
type fakeGrowing struct {
	mu    sync.Mutex
	cond  *sync.Cond
	f     *os.File
	avail int64
	done  bool
	err   error
}

func newFakeGrowing(t *testing.T) *fakeGrowing {
	f, err := os.OpenFile(filepath.Join(t.TempDir(), "partial"), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	g := &fakeGrowing{f: f}
	g.cond = sync.NewCond(&g.mu)
	return g
}

func (g *fakeGrowing) Available() int64 {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.avail
}

func (g *fakeGrowing) Wait(ctx context.Context, off int64) (int64, error) {
	stop := context.AfterFunc(ctx, func() {
		g.mu.Lock()
		g.cond.Broadcast()
		g.mu.Unlock()
	})
	defer stop()
	g.mu.Lock()
	defer g.mu.Unlock()
	for g.avail <= off && !g.done && ctx.Err() == nil {
		g.cond.Wait()
	}
	switch {
	case g.err != nil:
		return g.avail, g.err
	case g.avail > off || g.done:
		return g.avail, nil
	}
	return g.avail, ctx.Err()
}

func (g *fakeGrowing) File() *os.File { return g.f }

// grow appends p with pwrite (as the piecestore does) and wakes readers.
func (g *fakeGrowing) grow(t *testing.T, p []byte) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if _, err := g.f.WriteAt(p, g.avail); err != nil {
		t.Error(err)
	}
	g.avail += int64(len(p))
	g.cond.Broadcast()
}

func (g *fakeGrowing) finish(err error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.done, g.err = true, err
	g.cond.Broadcast()
}

type growingServer struct {
	g     Growing
	size  int64
	done  atomic.Int64
	calls atomic.Int64
}

func (s *growingServer) handle(ctx *fasthttp.RequestCtx) {
	s.calls.Add(1)
	ServeFile(ctx, &FileResponse{Growing: s.g, Size: s.size, Release: func() { s.done.Add(1) }})
}

// rawGet sends one GET on a fresh connection and returns the parsed response (body unread).
func rawGet(t *testing.T, addr, extra string) (net.Conn, *bufio.Reader) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, "GET /f HTTP/1.1\r\nHost: x\r\n"+extra+"\r\n"); err != nil {
		t.Fatal(err)
	}
	return c, bufio.NewReader(c)
}

func TestStreamBodyGrowsAndCompletes(t *testing.T) {
	const step = 512 << 10
	_, data := writeTemp(t, 3*step+1234, 11)
	g := newFakeGrowing(t)
	s := &growingServer{g: g, size: int64(len(data))}
	addr := startServer(t, s.handle, ServerConfig{})

	c, br := rawGet(t, addr, "")
	// Nothing is available yet, but headers must arrive with the full length.
	g.grow(t, data[:step])
	resp, err := readHeader(br)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 || resp.ContentLength != int64(len(data)) {
		t.Fatalf("status %d, Content-Length %d", resp.StatusCode, resp.ContentLength)
	}
	got := make([]byte, len(data))
	// Each step's bytes must arrive before the next step is written: the download is not complete
	// yet, so a body that waited for completion would hit the read deadline here.
	for off := 0; off < len(data); off += step {
		end := min(off+step, len(data))
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.ReadFull(resp.Body, got[off:end]); err != nil {
			t.Fatalf("reading [%d,%d) before it was complete: %v", off, end, err)
		}
		if end < len(data) {
			g.grow(t, data[end:min(end+step, len(data))])
		}
	}
	g.finish(nil)
	if !bytes.Equal(got, data) {
		t.Fatal("streamed body differs")
	}
	waitCount(t, &s.done, 1)

	// The connection stays usable (keep-alive) after a complete stream.
	if _, err := io.WriteString(c, "GET /f HTTP/1.1\r\nHost: x\r\nRange: bytes=10-19\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	resp2, body := readResponse(t, br, "GET")
	if resp2.StatusCode != 206 || !bytes.Equal(body, data[10:20]) {
		t.Fatalf("second request: %d %q", resp2.StatusCode, body)
	}
}

func TestStreamBodyFailureCutsConnection(t *testing.T) {
	const step = 256 << 10
	_, data := writeTemp(t, 4*step, 12)
	g := newFakeGrowing(t)
	s := &growingServer{g: g, size: int64(len(data))}
	addr := startServer(t, s.handle, ServerConfig{})

	c, br := rawGet(t, addr, "")
	g.grow(t, data[:step])
	g.grow(t, data[step:2*step])
	resp, err := readHeader(br)
	if err != nil {
		t.Fatal(err)
	}
	if resp.ContentLength != int64(len(data)) {
		t.Fatalf("Content-Length %d", resp.ContentLength)
	}
	first := make([]byte, 2*step)
	if _, err := io.ReadFull(resp.Body, first); err != nil || !bytes.Equal(first, data[:2*step]) {
		t.Fatalf("first two steps: %v", err)
	}
	g.finish(errors.New("whole-file hash mismatch"))
	rest, err := io.ReadAll(resp.Body)
	if err == nil {
		t.Fatalf("body ended cleanly after %d more bytes; want a cut", len(rest))
	}
	if got := 2*step + len(rest); got >= len(data) {
		t.Fatalf("received %d of %d bytes: the client saw a complete response", got, len(data))
	}
	// The server closed the connection: a read now returns EOF, not a timeout.
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := br.ReadByte(); err != io.EOF {
		t.Fatalf("connection not closed: %v", err)
	}
	waitCount(t, &s.done, 1)
}

func TestStreamBodyConcurrentReaders(t *testing.T) {
	const step = 128 << 10
	n := 8
	if raceEnabled {
		n = 4
	}
	_, data := writeTemp(t, 10*step+77, 13)
	g := newFakeGrowing(t)
	s := &growingServer{g: g, size: int64(len(data))}
	addr := startServer(t, s.handle, ServerConfig{})

	type result struct {
		body       []byte
		start, end int
		err        error
	}
	results := make(chan result, n)
	for i := 0; i < n; i++ {
		start, end := 0, len(data)-1
		extra := ""
		if i%2 == 1 { // half of them ask for a range starting in a later piece
			start = i * step / 2
			extra = "Range: bytes=" + strconv.Itoa(start) + "-\r\n"
		}
		go func() {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				results <- result{err: err}
				return
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(20 * time.Second))
			io.WriteString(c, "GET /f HTTP/1.1\r\nHost: x\r\n"+extra+"\r\n")
			resp, err := readHeader(bufio.NewReader(c))
			if err != nil {
				results <- result{err: err}
				return
			}
			body, err := io.ReadAll(resp.Body)
			results <- result{body, start, end, err}
		}()
	}
	for off := 0; off < len(data); off += step {
		time.Sleep(2 * time.Millisecond)
		g.grow(t, data[off:min(off+step, len(data))])
	}
	g.finish(nil)
	for i := 0; i < n; i++ {
		r := <-results
		if r.err != nil {
			t.Fatal(r.err)
		}
		if !bytes.Equal(r.body, data[r.start:r.end+1]) {
			t.Fatalf("reader from %d: %d bytes, differs", r.start, len(r.body))
		}
	}
	waitCount(t, &s.done, int64(n))
}

func TestStreamBodyContextCancel(t *testing.T) {
	g := newFakeGrowing(t)
	g.grow(t, []byte("hello"))
	ctx, cancel := context.WithCancel(context.Background())
	var buf bytes.Buffer
	sb := NewStreamBody(g, 0, 100, nil)
	sb.SetContext(ctx)
	go func() { time.Sleep(20 * time.Millisecond); cancel() }()
	n, err := sb.WriteTo(&buf)
	if !errors.Is(err, ErrSourceFailed) || !errors.Is(err, context.Canceled) || n != 5 || buf.String() != "hello" {
		t.Fatalf("WriteTo = %d, %v, %q", n, err, buf.String())
	}
	if err := sb.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestStreamBodyRead covers consumers that read instead of WriteTo.
func TestStreamBodyRead(t *testing.T) {
	g := newFakeGrowing(t)
	_, data := writeTemp(t, 100000, 14)
	go func() {
		for off := 0; off < len(data); off += 30000 {
			g.grow(t, data[off:min(off+30000, len(data))])
			time.Sleep(time.Millisecond)
		}
		g.finish(nil)
	}()
	calls := 0
	sb := NewStreamBody(g, 100, int64(len(data)-200), func() { calls++ })
	got, err := io.ReadAll(struct{ io.Reader }{sb})
	if err != nil || !bytes.Equal(got, data[100:len(data)-100]) {
		t.Fatalf("Read: %d bytes, %v", len(got), err)
	}
	sb.Close()
	sb.Close()
	if calls != 1 {
		t.Fatalf("done called %d times", calls)
	}
}

func waitCount(t *testing.T, v *atomic.Int64, want int64) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); v.Load() != want; {
		if time.Now().After(deadline) {
			t.Fatalf("count %d, want %d", v.Load(), want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestReopenChecksIdentity: the private reopen follows the descriptor, and refuses a closed file.
func TestReopenChecksIdentity(t *testing.T) {
	p, data := writeTemp(t, 1000, 19)
	src, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	os.Remove(p) // like an aborted download's temporary file
	f := reopen(src)
	if f == nil {
		t.Fatal("reopen of an open, unlinked file failed")
	}
	got, _ := io.ReadAll(f)
	f.Close()
	if !bytes.Equal(got, data) {
		t.Fatal("reopened file has other content")
	}
	src.Close()
	if f := reopen(src); f != nil {
		f.Close()
		t.Fatal("reopen of a closed file succeeded")
	}
	if reopen(nil) != nil {
		t.Fatal("reopen(nil)")
	}
}
