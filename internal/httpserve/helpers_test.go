package httpserve

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

// startServer serves h on 127.0.0.1 through NewServer and LimitListener and returns the address.
func startServer(t testing.TB, h fasthttp.RequestHandler, cfg ServerConfig) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return serveOn(t, ln, h, cfg)
}

func serveOn(t testing.TB, ln net.Listener, h fasthttp.RequestHandler, cfg ServerConfig) string {
	t.Helper()
	srv := NewServer(h, cfg)
	done := make(chan struct{})
	go func() {
		defer close(done)
		srv.Serve(LimitListener(ln, cfg)) //nolint:errcheck
	}()
	t.Cleanup(func() {
		srv.Shutdown() //nolint:errcheck
		<-done
	})
	return ln.Addr().String()
}

// writeTemp writes n pseudo-random bytes (seeded) to a file in t's temp dir.
func writeTemp(t testing.TB, n int, seed uint64) (string, []byte) {
	t.Helper()
	data := make([]byte, n+8)
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	for i := 0; i < n; i += 8 {
		binary.LittleEndian.PutUint64(data[i:], r.Uint64())
	}
	data = data[:n]
	p := filepath.Join(t.TempDir(), "f"+strconv.FormatUint(seed, 10))
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return p, data
}

func mustHex(s string) []byte {
	b, err := hex.DecodeString(s)
	if err != nil {
		panic(err)
	}
	return b
}

// memContent is a Content over files on disk and piece strings in memory. It counts opens and
// releases so tests can check every opened file is released exactly once.
type memContent struct {
	mu       sync.Mutex
	files    map[string]string // hash bytes → path
	pieces   map[string][]byte // piece-string hash → piece string
	partial  map[string]*partialFile
	modTime  time.Time
	opened   int
	released int
}

func newMemContent() *memContent {
	return &memContent{files: map[string]string{}, pieces: map[string][]byte{},
		modTime: time.Date(2008, 5, 1, 12, 0, 0, 0, time.UTC)}
}

func (m *memContent) OpenByHash(h []byte) (*os.File, int64, time.Time, func(), bool) {
	m.mu.Lock()
	p, ok := m.files[string(h)]
	m.mu.Unlock()
	if !ok {
		return nil, 0, time.Time{}, nil, false
	}
	f, err := os.Open(p)
	if err != nil {
		return nil, 0, time.Time{}, nil, false
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, 0, time.Time{}, nil, false
	}
	m.mu.Lock()
	m.opened++
	m.mu.Unlock()
	return f, st.Size(), m.modTime, func() {
		f.Close()
		m.mu.Lock()
		m.released++
		m.mu.Unlock()
	}, true
}

func (m *memContent) PieceString(h []byte) ([]byte, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	ps, ok := m.pieces[string(h)]
	return ps, ok
}

// partialFile is a file still being downloaded: g grows, size is its final length.
type partialFile struct {
	g    Growing
	size int64
}

func (m *memContent) OpenPartial(h []byte) (Growing, int64, func(), bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	p, ok := m.partial[string(h)]
	if !ok {
		return nil, 0, nil, false
	}
	m.opened++
	return p.g, p.size, func() {
		m.mu.Lock()
		m.released++
		m.mu.Unlock()
	}, true
}

func (m *memContent) balance() (opened, released int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.opened, m.released
}

// waitReleased waits until every opened file was released (bodies are closed after the response
// is written, so just after the client has read it).
func (m *memContent) waitReleased(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		o, r := m.balance()
		if o == r {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("opened %d files, released %d", o, r)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// get performs one request with net/http (an independent client) and returns the response and body.
func get(t *testing.T, method, url string, hdr map[string]string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, body
}

// readResponses parses n responses from r (as a raw pipelining client would).
func readResponse(t *testing.T, br *bufio.Reader, method string) (*http.Response, []byte) {
	t.Helper()
	resp, err := http.ReadResponse(br, &http.Request{Method: method})
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	return resp, body
}

var _ = bytes.Equal

// readHeader parses a response's header from br; the body is left to read from resp.Body.
func readHeader(br *bufio.Reader) (*http.Response, error) {
	return http.ReadResponse(br, &http.Request{Method: "GET"})
}

func netipMust(s string) netip.Addr { return netip.MustParseAddr(s) }

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

func (c *fixedContent) OpenPartial([]byte) (Growing, int64, func(), bool) { return nil, 0, nil, false }

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
