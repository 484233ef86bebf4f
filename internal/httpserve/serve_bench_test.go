package httpserve

import (
	"bufio"
	"io"
	"net"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

// BenchmarkPeerHandlerInProcess runs the /~/ handler and writes its response to a discarding
// writer: request parsing, lookup, headers and the body path without the network.
func BenchmarkPeerHandlerInProcess(b *testing.B) {
	c := newFixedContent(b, 512<<10)
	h := NewPeerHandler(c, nil, nil)
	for _, bc := range []struct {
		name, target, extra string
		bytes               int64
	}{
		{"file-512KiB", "/~/" + string(QuotePlus(nil, fileHash)), "", 512 << 10},
		{"range-50KB", "/~/" + string(QuotePlus(nil, fileHash)), "Range: bytes=0-49999\r\n", 50000},
		{"pieces", "/~/" + string(QuotePlus(nil, torrentHash)), "", 0},
		{"404", "/~/foobar", "", 0},
	} {
		b.Run(bc.name, func(b *testing.B) {
			raw := []byte(req("GET", bc.target, bc.extra))
			var ctx fasthttp.RequestCtx
			bw := bufio.NewWriterSize(discardWriter{io.Discard}, 32<<10)
			var r bytesReaderT
			br := bufio.NewReaderSize(&r, 4096)
			b.SetBytes(bc.bytes)
			b.ReportAllocs()
			for b.Loop() {
				r.b = raw
				br.Reset(&r)
				ctx.Request.Reset()
				if err := ctx.Request.Read(br); err != nil {
					b.Fatal(err)
				}
				if err := handlerRun(h, &ctx, bw); err != nil {
					b.Fatal(err)
				}
				bw.Flush()
			}
		})
	}
}

// BenchmarkLoopback serves over real TCP on 127.0.0.1 to one raw keep-alive client (which
// allocates nothing), so allocs/op is the whole server's per request.
func BenchmarkLoopback(b *testing.B) {
	for _, bc := range []struct {
		name string
		size int
		peer bool
	}{
		{"peer-512KiB", 512 << 10, true},
		{"peer-50KB", 50000, true},
		{"apt-50KB", 50000, false},
		{"apt-100MB", 100 << 20, false},
	} {
		b.Run(bc.name, func(b *testing.B) {
			c := newFixedContent(b, bc.size)
			var handler fasthttp.RequestHandler = NewPeerHandler(c, nil, nil).ServeFastHTTP
			target := "/~/" + string(QuotePlus(nil, fileHash))
			if !bc.peer {
				target = "/f"
				handler = func(ctx *fasthttp.RequestCtx) {
					ServeFile(ctx, &FileResponse{File: c.f, Size: c.size, ModTime: time.Unix(1e9, 0)})
				}
			}
			addr := startServer(b, handler, ServerConfig{})
			conn, err := net.Dial("tcp", addr)
			if err != nil {
				b.Fatal(err)
			}
			defer conn.Close()
			br := bufio.NewReaderSize(conn, 64<<10)
			raw := []byte(req("GET", target, ""))
			b.SetBytes(int64(bc.size))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := conn.Write(raw); err != nil {
					b.Fatal(err)
				}
				if code, err := discardResponse(br); err != nil || code != 200 {
					b.Fatal(code, err)
				}
			}
		})
	}
}

func BenchmarkQuotePlus(b *testing.B) {
	h := mustHex("ca20b80c00e707f87e5d292b9de55f42ff1ac421")
	buf := make([]byte, 0, 64)
	b.ReportAllocs()
	for b.Loop() {
		buf = QuotePlus(buf[:0], h)
	}
}

func BenchmarkUnquotePlus(b *testing.B) {
	q := QuotePlus(nil, mustHex("ca20b80c00e707f87e5d292b9de55f42ff1ac421"))
	buf := make([]byte, 0, 64)
	b.ReportAllocs()
	for b.Loop() {
		buf, _ = UnquotePlus(buf[:0], q)
	}
}
