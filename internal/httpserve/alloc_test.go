//go:build !race

package httpserve

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"os"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

// fixedContent serves one already open file (ReadAt and a pooled body never move anything else's
// offset; one request at a time here) so the guard measures this package, not os.Open.
type fixedContent struct {
	h    []byte
	f    *os.File
	size int64
	ps   map[string][]byte
}

func (c *fixedContent) OpenByHash(h []byte) (*os.File, int64, time.Time, func(), bool) {
	if string(h) != string(c.h) {
		return nil, 0, time.Time{}, nil, false
	}
	return c.f, c.size, time.Unix(1e9, 0), nil, true
}

func (c *fixedContent) PieceString(h []byte) ([]byte, bool) {
	ps, ok := c.ps[string(h)]
	return ps, ok
}

func newFixedContent(t testing.TB, size int) *fixedContent {
	p, _ := writeTemp(t, size, 99)
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return &fixedContent{h: fileHash, f: f, size: int64(size), ps: map[string][]byte{string(torrentHash): torrentPS}}
}

// discardConn is an in-process sink for responses: io.Discard's ReadFrom copies through a pooled
// buffer without allocating.
type discardWriter struct{ io.Writer }

func (discardWriter) ReadFrom(r io.Reader) (int64, error) { return io.Copy(io.Discard, r) }

// handlerRun runs the peer handler and writes the response, as fasthttp's server loop does.
func handlerRun(h *PeerHandler, ctx *fasthttp.RequestCtx, bw *bufio.Writer) error {
	h.ServeFastHTTP(ctx)
	if ctx.IsHead() {
		ctx.Response.SkipBody = true
	}
	err := ctx.Response.Write(bw)
	ctx.Response.Reset()
	return err
}

func TestPeerHandlerAllocs(t *testing.T) {
	c := newFixedContent(t, 512<<10)
	h := NewPeerHandler(c, nil, nil)
	var ctx fasthttp.RequestCtx
	bw := bufio.NewWriterSize(discardWriter{io.Discard}, 32<<10)
	for _, tc := range []struct {
		name, target, extra string
	}{
		{"file", "/~/" + string(QuotePlus(nil, fileHash)), ""},
		{"range", "/~/" + string(QuotePlus(nil, fileHash)), "Range: bytes=524288-1048575\r\n"},
		{"small-range", "/~/" + string(QuotePlus(nil, fileHash)), "Range: bytes=0-999\r\n"},
		{"pieces", "/~/" + string(QuotePlus(nil, torrentHash)), ""},
		{"404", "/~/foobar", ""},
	} {
		raw := []byte(req("GET", tc.target, tc.extra))
		run := func() {
			ctx.Request.Reset()
			if err := ctx.Request.Read(bufio.NewReader(bytesReader(raw))); err != nil {
				t.Fatal(err)
			}
		}
		_ = run
		var r bytesReaderT
		br := bufio.NewReaderSize(&r, 4096)
		allocs := testing.AllocsPerRun(200, func() {
			r.b = raw
			br.Reset(&r)
			ctx.Request.Reset()
			if err := ctx.Request.Read(br); err != nil {
				t.Fatal(err)
			}
			if err := handlerRun(h, &ctx, bw); err != nil {
				t.Fatal(err)
			}
			bw.Flush()
		})
		if allocs > 0 {
			t.Errorf("%s: %.1f allocations per request, want 0", tc.name, allocs)
		}
	}
}

// TestPeerLoopbackAllocs counts every allocation in the process (server goroutines included) for
// responses served over real TCP; the raw client allocates nothing.
func TestPeerLoopbackAllocs(t *testing.T) {
	c := newFixedContent(t, 512<<10)
	addr := startServer(t, NewPeerHandler(c, nil, nil).ServeFastHTTP, ServerConfig{})
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	br := bufio.NewReaderSize(conn, 64<<10)
	for _, tc := range []struct {
		name, target, extra string
		max                 float64
	}{
		{"512KiB-file", "/~/" + string(QuotePlus(nil, fileHash)), "", 0},
		{"512KiB-range", "/~/" + string(QuotePlus(nil, fileHash)), "Range: bytes=0-524287\r\n", 0},
		{"small-range", "/~/" + string(QuotePlus(nil, fileHash)), "Range: bytes=0-999\r\n", 0},
		{"pieces", "/~/" + string(QuotePlus(nil, torrentHash)), "", 0},
	} {
		raw := []byte(req("GET", tc.target, tc.extra))
		allocs := testing.AllocsPerRun(100, func() {
			if _, err := conn.Write(raw); err != nil {
				t.Fatal(err)
			}
			if code, err := discardResponse(br); err != nil || code/100 != 2 {
				t.Fatalf("%d %v", code, err)
			}
		})
		t.Logf("%s: %.2f allocations per response over loopback (whole process)", tc.name, allocs)
		if allocs > tc.max {
			t.Errorf("%s: %.2f allocations per request, want at most %v", tc.name, allocs, tc.max)
		}
	}
}

// discardResponse reads one response with a known Content-Length without allocating.
func discardResponse(br *bufio.Reader) (code int, err error) {
	line, err := br.ReadSlice('\n')
	if err != nil || len(line) < 12 {
		return 0, err
	}
	code = int(line[9]-'0')*100 + int(line[10]-'0')*10 + int(line[11]-'0')
	n := -1
	for {
		line, err = br.ReadSlice('\n')
		if err != nil {
			return code, err
		}
		if len(line) <= 2 {
			break
		}
		const cl = "content-length:"
		if len(line) > len(cl) && asciiEqualFold(line[:len(cl)], cl) {
			v, _ := parseDigits(trimOWS(bytes.TrimRight(line[len(cl):], "\r\n")))
			n = int(v)
		}
	}
	if n < 0 {
		return code, io.ErrUnexpectedEOF
	}
	_, err = br.Discard(n)
	return code, err
}

type bytesReaderT struct{ b []byte }

func (r *bytesReaderT) Read(p []byte) (int, error) {
	if len(r.b) == 0 {
		return 0, io.EOF
	}
	n := copy(p, r.b)
	r.b = r.b[n:]
	return n, nil
}

func bytesReader(b []byte) io.Reader { return &bytesReaderT{b} }
