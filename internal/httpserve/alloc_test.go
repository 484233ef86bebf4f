//go:build !race

package httpserve

import (
	"bufio"
	"io"
	"net"
	"testing"

	"github.com/valyala/fasthttp"
)

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

func TestQuoteAllocs(t *testing.T) {
	h := mustHex("ca20b80c00e707f87e5d292b9de55f42ff1ac421")
	q := QuotePlus(nil, h)
	buf := make([]byte, 0, 64)
	if n := testing.AllocsPerRun(100, func() {
		buf = QuotePlus(buf[:0], h)
		buf, _ = UnquotePlus(buf[:0], q)
	}); n != 0 {
		t.Fatalf("%.1f allocations with a large enough dst", n)
	}
}
