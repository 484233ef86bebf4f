package httpserve

import (
	"bytes"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

// fileServer serves one file with ServeFile at every path and counts releases.
type fileServer struct {
	path     string
	etag     []byte
	mod      time.Time
	released atomic.Int64
	opened   atomic.Int64
}

func (fs *fileServer) handle(ctx *fasthttp.RequestCtx) {
	f, err := os.Open(fs.path)
	if err != nil {
		ctx.Error(err.Error(), 500)
		return
	}
	st, _ := f.Stat()
	fs.opened.Add(1)
	ServeFile(ctx, &FileResponse{File: f, Size: st.Size(), ModTime: fs.mod, ContentType: "application/vnd.debian.binary-package",
		ETag: fs.etag, Release: func() { f.Close(); fs.released.Add(1) }})
}

func (fs *fileServer) waitReleased(t *testing.T) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); fs.opened.Load() != fs.released.Load(); {
		if time.Now().After(deadline) {
			t.Fatalf("opened %d, released %d", fs.opened.Load(), fs.released.Load())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestServeFileRanges(t *testing.T) {
	const size = 300 << 10 // above smallBody: the sendfile path
	for _, n := range []int{size, 5000, 0} {
		t.Run(strconv.Itoa(n), func(t *testing.T) { testServeFileRanges(t, n) })
	}
}

func testServeFileRanges(t *testing.T, size int) {
	p, data := writeTemp(t, size, uint64(size)+1)
	fs := &fileServer{path: p, etag: []byte{0xde, 0xad, 0xbe, 0xef}, mod: time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)}
	addr := startServer(t, fs.handle, ServerConfig{})
	url := "http://" + addr + "/x"
	const etag = `"deadbeef"`
	const lastMod = "Tue, 02 Jan 2024 03:04:05 GMT"

	resp, body := get(t, "GET", url, nil)
	if resp.StatusCode != 200 || !bytes.Equal(body, data) || resp.ContentLength != int64(size) {
		t.Fatalf("full GET: %d, %d bytes", resp.StatusCode, len(body))
	}
	if resp.Header.Get("Accept-Ranges") != "bytes" || resp.Header.Get("ETag") != etag ||
		resp.Header.Get("Last-Modified") != lastMod || resp.Header.Get("Content-Type") != "application/vnd.debian.binary-package" {
		t.Fatalf("headers: %v", resp.Header)
	}

	resp, body = get(t, "HEAD", url, nil)
	if resp.StatusCode != 200 || len(body) != 0 || resp.ContentLength != int64(size) {
		t.Fatalf("HEAD: %d, len %d, body %d", resp.StatusCode, resp.ContentLength, len(body))
	}
	if size == 0 {
		resp, _ = get(t, "GET", url, map[string]string{"Range": "bytes=0-10"})
		if resp.StatusCode != 416 || resp.Header.Get("Content-Range") != "bytes */0" {
			t.Fatalf("range of empty file: %d %q", resp.StatusCode, resp.Header.Get("Content-Range"))
		}
		fs.waitReleased(t)
		return
	}

	check206 := func(hdr map[string]string, start, end int) {
		t.Helper()
		resp, body := get(t, "GET", url, hdr)
		want := "bytes " + strconv.Itoa(start) + "-" + strconv.Itoa(end) + "/" + strconv.Itoa(size)
		if resp.StatusCode != 206 || resp.Header.Get("Content-Range") != want || !bytes.Equal(body, data[start:end+1]) {
			t.Fatalf("%v: %d %q, %d bytes (want %s)", hdr, resp.StatusCode, resp.Header.Get("Content-Range"), len(body), want)
		}
	}
	check206(map[string]string{"Range": "bytes=100-199"}, 100, 199)
	check206(map[string]string{"Range": "bytes=-100"}, size-100, size-1)
	check206(map[string]string{"Range": "bytes=1000-"}, 1000, size-1)
	check206(map[string]string{"Range": "bytes=0-" + strconv.Itoa(10*size)}, 0, size-1)
	check206(map[string]string{"Range": "bytes=10-20", "If-Range": etag}, 10, 20)
	check206(map[string]string{"Range": "bytes=10-20", "If-Range": lastMod}, 10, 20)

	full := func(hdr map[string]string) {
		t.Helper()
		resp, body := get(t, "GET", url, hdr)
		if resp.StatusCode != 200 || !bytes.Equal(body, data) {
			t.Fatalf("%v: %d, %d bytes; want the whole file", hdr, resp.StatusCode, len(body))
		}
	}
	full(map[string]string{"Range": "bytes=0-1,5-6"})
	full(map[string]string{"Range": "bytes=10-20", "If-Range": `"other"`})
	full(map[string]string{"Range": "bytes=10-20", "If-Range": "Tue, 02 Jan 2024 03:04:06 GMT"})
	full(map[string]string{"If-None-Match": `"other"`})

	resp, body = get(t, "GET", url, map[string]string{"Range": "bytes=" + strconv.Itoa(size) + "-"})
	if resp.StatusCode != 416 || resp.Header.Get("Content-Range") != "bytes */"+strconv.Itoa(size) || len(body) != 0 {
		t.Fatalf("unsatisfiable: %d %q", resp.StatusCode, resp.Header.Get("Content-Range"))
	}
	for _, hdr := range []map[string]string{{"If-None-Match": etag}, {"If-Modified-Since": lastMod}} {
		resp, body = get(t, "GET", url, hdr)
		if resp.StatusCode != 304 || len(body) != 0 {
			t.Fatalf("%v: %d", hdr, resp.StatusCode)
		}
	}
	resp, _ = get(t, "HEAD", url, map[string]string{"Range": "bytes=5-9"})
	if resp.StatusCode != 206 || resp.ContentLength != 5 {
		t.Fatalf("HEAD with Range: %d len %d", resp.StatusCode, resp.ContentLength)
	}
	fs.waitReleased(t)
}

// recordingConn lets the test see what reaches the connection: bytes handed to ReadFrom as an
// *io.LimitedReader over an *os.File (which net.TCPConn turns into sendfile) versus bytes written.
type recordingConn struct {
	*net.TCPConn
	fileBytes, otherReadFrom, written *atomic.Int64
}

func (c *recordingConn) ReadFrom(r io.Reader) (int64, error) {
	if lr, ok := r.(*io.LimitedReader); ok {
		if _, ok := lr.R.(*os.File); ok {
			n, err := c.TCPConn.ReadFrom(r)
			c.fileBytes.Add(n)
			return n, err
		}
	}
	n, err := c.TCPConn.ReadFrom(r)
	c.otherReadFrom.Add(n)
	return n, err
}

func (c *recordingConn) Write(p []byte) (int, error) {
	n, err := c.TCPConn.Write(p)
	c.written.Add(int64(n))
	return n, err
}

// noRawConn hides the descriptor, as a TLS or wrapped connection would.
type noRawConn struct{ *recordingConn }

func (noRawConn) SyscallConn() (syscall.RawConn, error) { return nil, errors.New("no descriptor") }

type recordingListener struct {
	net.Listener
	hideRaw                           bool
	fileBytes, otherReadFrom, written atomic.Int64
}

func (l *recordingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	rc := &recordingConn{TCPConn: c.(*net.TCPConn), fileBytes: &l.fileBytes, otherReadFrom: &l.otherReadFrom, written: &l.written}
	if l.hideRaw {
		return noRawConn{rc}, nil
	}
	return rc, nil
}

// TestServeFileUsesSendfile checks the zero-copy path. With the connection's descriptor at hand,
// file bodies never pass through Write or ReadFrom: only the headers are written, so the body
// bytes the client receives can only have come from sendfile(2) on the descriptor. Without it
// (TLS, a wrapped connection), a complete file's body is copied with pread: the file may be
// shared with other responses, so its offset, which Go's ReadFrom sendfile path reads at, is
// never used. Small bodies ride in the header write.
func TestServeFileUsesSendfile(t *testing.T) {
	t.Run("direct", func(t *testing.T) { testServeFileSendfile(t, false) })
	t.Run("no-descriptor", func(t *testing.T) { testServeFileSendfile(t, true) })
}

func testServeFileSendfile(t *testing.T, hideRaw bool) {
	const size = 1 << 20
	p, data := writeTemp(t, size, 7)
	fs := &fileServer{path: p}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	rl := &recordingListener{Listener: ln, hideRaw: hideRaw}
	srv := NewServer(fs.handle, ServerConfig{})
	go srv.Serve(rl) //nolint:errcheck
	defer srv.Shutdown()
	url := "http://" + ln.Addr().String() + "/x"

	resp, body := get(t, "GET", url, nil)
	if resp.StatusCode != 200 || !bytes.Equal(body, data) {
		t.Fatal("bad body")
	}
	resp, body = get(t, "GET", url, map[string]string{"Range": "bytes=524288-1048575"})
	if resp.StatusCode != 206 || !bytes.Equal(body, data[512<<10:]) {
		t.Fatal("bad range body")
	}
	fs.waitReleased(t)
	if got := rl.fileBytes.Load(); got != 0 {
		t.Errorf("ReadFrom over the file moved %d bytes: its shared offset was used", got)
	}
	if !hideRaw && (rl.otherReadFrom.Load() != 0 || rl.written.Load() > 1024) {
		t.Errorf("other ReadFrom %d bytes, write %d bytes: body bytes went through copies", rl.otherReadFrom.Load(), rl.written.Load())
	}
	if want := int64(size + size/2); hideRaw && rl.written.Load() < want {
		t.Errorf("without a descriptor %d bytes were written, want the %d body bytes copied", rl.written.Load(), want)
	}

	// A small range is copied behind the headers: one write, no sendfile.
	before := rl.fileBytes.Load()
	resp, body = get(t, "GET", url, map[string]string{"Range": "bytes=0-999"})
	if resp.StatusCode != 206 || !bytes.Equal(body, data[:1000]) || rl.fileBytes.Load() != before {
		t.Fatalf("small range: %d, %d bytes, sendfile bytes %d", resp.StatusCode, len(body), rl.fileBytes.Load()-before)
	}
}

var _ = http.StatusOK

// TestServeFileShortFileCutsConnection: a file shorter than the size the caller announced (truncated
// on disk) must not produce a "complete" response: the connection is cut before Content-Length.
func TestServeFileShortFileCutsConnection(t *testing.T) {
	for _, hideRaw := range []bool{false, true} {
		t.Run(map[bool]string{false: "direct", true: "no-descriptor"}[hideRaw], func(t *testing.T) {
			p, data := writeTemp(t, 200<<10, 17)
			handler := func(ctx *fasthttp.RequestCtx) {
				f, err := os.Open(p)
				if err != nil {
					t.Error(err)
					return
				}
				ServeFile(ctx, &FileResponse{File: f, Size: int64(len(data)) + 1000, Release: func() { f.Close() }})
			}
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			var l net.Listener = LimitListener(ln, ServerConfig{})
			if hideRaw {
				l = &recordingListener{Listener: ln, hideRaw: true}
			}
			srv := NewServer(handler, ServerConfig{})
			go srv.Serve(l) //nolint:errcheck
			defer srv.Shutdown()
			c, br := rawGet(t, ln.Addr().String(), "")
			resp, err := readHeader(br)
			if err != nil {
				t.Fatal(err)
			}
			body, err := io.ReadAll(resp.Body)
			if err == nil || len(body) != len(data) || !bytes.Equal(body, data) {
				t.Fatalf("got %d bytes, err %v; want the %d real bytes and a cut", len(body), err, len(data))
			}
			c.SetReadDeadline(time.Now().Add(5 * time.Second))
			if _, err := br.ReadByte(); err != io.EOF {
				t.Fatalf("connection not closed: %v", err)
			}
		})
	}
}

// TestServeFileSharedFile: one open file serves many concurrent responses (the store's open-file
// cache hands the same descriptor to every Reader), with and without the connection's descriptor:
// every body is right, so no response reads through the file's own offset.
func TestServeFileSharedFile(t *testing.T) {
	for _, hideRaw := range []bool{false, true} {
		t.Run(map[bool]string{false: "direct", true: "no-descriptor"}[hideRaw], func(t *testing.T) {
			p, data := writeTemp(t, 3<<20, 19)
			shared, err := os.Open(p)
			if err != nil {
				t.Fatal(err)
			}
			defer shared.Close()
			handler := func(ctx *fasthttp.RequestCtx) {
				ServeFile(ctx, &FileResponse{File: shared, Size: int64(len(data))})
			}
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			var l net.Listener = LimitListener(ln, ServerConfig{})
			if hideRaw {
				l = &recordingListener{Listener: ln, hideRaw: true}
			}
			srv := NewServer(handler, ServerConfig{})
			go srv.Serve(l) //nolint:errcheck
			defer srv.Shutdown()
			url := "http://" + ln.Addr().String() + "/x"
			var wg sync.WaitGroup
			for i := range 8 {
				wg.Go(func() {
					for j := range 4 {
						start := (i*4 + j) * 70_001
						hdr := map[string]string{"Range": "bytes=" + strconv.Itoa(start) + "-"}
						resp, body := get(t, "GET", url, hdr)
						if resp.StatusCode != 206 || !bytes.Equal(body, data[start:]) {
							t.Errorf("response %d.%d from offset %d: %d, %d bytes, equal %v", i, j, start, resp.StatusCode, len(body), bytes.Equal(body, data[start:]))
						}
					}
				})
			}
			wg.Wait()
		})
	}
}

// TestServeFileClientAbort: a client that goes away mid-body (EPIPE/ECONNRESET under sendfile)
// costs nothing but that connection: the file is released and the server keeps serving.
func TestServeFileClientAbort(t *testing.T) {
	p, data := writeTemp(t, 8<<20, 18)
	fs := &fileServer{path: p}
	addr := startServer(t, fs.handle, ServerConfig{})
	for i := 0; i < 3; i++ {
		c, br := rawGet(t, addr, "")
		resp, err := readHeader(br)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(resp.Body, make([]byte, 64<<10)); err != nil {
			t.Fatal(err)
		}
		c.(*net.TCPConn).SetLinger(0) // reset, so the server's next sendfile fails at once
		c.Close()
	}
	fs.waitReleased(t)
	resp, body := get(t, "GET", "http://"+addr+"/x", nil)
	if resp.StatusCode != 200 || !bytes.Equal(body, data) {
		t.Fatalf("after aborts: %d, %d bytes", resp.StatusCode, len(body))
	}
	fs.waitReleased(t)
}

func TestServeFileWithoutFile(t *testing.T) {
	released := 0
	var ctx fasthttp.RequestCtx
	ctx.Request.SetRequestURI("/x")
	ServeFile(&ctx, &FileResponse{Size: 10, Release: func() { released++ }})
	if ctx.Response.StatusCode() != 500 || released != 1 {
		t.Fatalf("status %d, released %d", ctx.Response.StatusCode(), released)
	}
}
