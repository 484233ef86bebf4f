package fetch

import (
	"bytes"
	"crypto/sha1"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// behavior configures a test server: a peer or a mirror on 127.0.0.x that
// serves one file and misbehaves on request.
type behavior struct {
	rate        int64         // bytes per second over all connections (token bucket); 0 = unlimited
	corrupt     bool          // flip one byte in every piece it sends
	dieAfter    int64         // cut the connection once this many body bytes were sent in total; 0 = never
	dieOnce     bool          // ... only the first time: serve normally afterwards
	ignoreRange bool          // answer 200 with the whole file (peer-systems row 5)
	wrongRange  bool          // 206 whose Content-Range is one piece off
	notFound    bool          // 404
	firstByte   time.Duration // wait this long before answering
	silent      bool          // accept, never answer
	load        string        // X-Apt-P2P-Load of every response (empty: none)
}

type testServer struct {
	t    testing.TB
	ln   net.Listener
	srv  *http.Server
	addr string
	data []byte
	b    behavior
	quit chan struct{}

	bucketMu sync.Mutex
	tokens   float64
	last     time.Time

	sent  atomic.Int64
	conns atomic.Int64 // TCP connections accepted
	died  atomic.Bool
	reqs  atomic.Int64
	mu    sync.Mutex
	hosts []string
	uas   []string
	uris  []string
	rngs  []string
}

var loopbackHost atomic.Int32

// newServer starts a test server on its own 127.0.0.x address.
func newServer(t testing.TB, data []byte, b behavior) *testServer {
	t.Helper()
	h := 2 + loopbackHost.Add(1)%250
	ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.%d:0", h))
	if err != nil {
		t.Fatal(err)
	}
	ts := &testServer{t: t, ln: ln, addr: ln.Addr().String(), data: data, b: b, quit: make(chan struct{}), last: time.Now(),
		tokens: float64(max(b.rate/20, 32<<10))}
	ts.srv = &http.Server{Handler: ts, ReadHeaderTimeout: 5 * time.Second, ConnState: func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			ts.conns.Add(1)
		}
	}}
	go ts.srv.Serve(ln) //nolint:errcheck // ends with Close
	t.Cleanup(ts.close)
	return ts
}

func (ts *testServer) close() {
	select {
	case <-ts.quit:
		return
	default:
	}
	close(ts.quit)
	ts.srv.Close()
}

func (ts *testServer) source(path string) Source {
	return Source{Addr: ts.addr, Path: path}
}

// take waits for n bytes of tokens.
func (ts *testServer) take(n int) bool {
	if ts.b.rate <= 0 {
		return true
	}
	ts.bucketMu.Lock()
	now := time.Now()
	burst := float64(max(ts.b.rate/20, 32<<10))
	ts.tokens = min(burst, ts.tokens+now.Sub(ts.last).Seconds()*float64(ts.b.rate))
	ts.last = now
	ts.tokens -= float64(n)
	wait := time.Duration(0)
	if ts.tokens < 0 {
		wait = time.Duration(-ts.tokens / float64(ts.b.rate) * float64(time.Second))
	}
	ts.bucketMu.Unlock()
	if wait > 0 {
		select {
		case <-time.After(wait):
		case <-ts.quit:
			return false
		}
	}
	return true
}

func (ts *testServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ts.reqs.Add(1)
	ts.mu.Lock()
	ts.hosts = append(ts.hosts, r.Host)
	ts.uas = append(ts.uas, r.UserAgent())
	ts.uris = append(ts.uris, r.RequestURI)
	ts.rngs = append(ts.rngs, r.Header.Get("Range"))
	ts.mu.Unlock()
	b := ts.b
	if b.silent {
		select {
		case <-r.Context().Done():
		case <-ts.quit:
		}
		return
	}
	if b.firstByte > 0 {
		select {
		case <-time.After(b.firstByte):
		case <-r.Context().Done():
			return
		case <-ts.quit:
			return
		}
	}
	if b.load != "" {
		w.Header().Set("X-Apt-P2P-Load", b.load)
	}
	if b.notFound {
		http.NotFound(w, r)
		return
	}
	size := int64(len(ts.data))
	start, end := int64(0), size-1
	status := http.StatusOK
	if rg := r.Header.Get("Range"); rg != "" && !b.ignoreRange {
		a, e, ok := parseTestRange(rg, size)
		if !ok {
			w.Header().Set("Content-Range", fmt.Sprintf("bytes */%d", size))
			w.WriteHeader(http.StatusRequestedRangeNotSatisfiable)
			return
		}
		start, end, status = a, e, http.StatusPartialContent
		cs, ce := start, end
		if b.wrongRange {
			cs, ce = start+PieceSize, end+PieceSize
		}
		w.Header().Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", cs, ce, size))
	}
	w.Header().Set("Content-Length", strconv.FormatInt(end-start+1, 10))
	w.WriteHeader(status)
	if r.Method == http.MethodHead {
		return // (net/http would eat the body, but only after the rate limit)
	}
	var scratch []byte
	for off := start; off <= end; {
		n := min(int64(32<<10), end+1-off)
		if !ts.take(int(n)) {
			return
		}
		chunk := ts.data[off : off+n]
		if b.corrupt {
			scratch = append(scratch[:0], chunk...)
			for i := range scratch {
				if (off+int64(i))%PieceSize == 1000 {
					scratch[i] ^= 0xff
				}
			}
			chunk = scratch
		}
		if b.dieAfter > 0 && ts.sent.Load()+n > b.dieAfter && !(b.dieOnce && ts.died.Load()) {
			ts.died.Store(true)
			keep := max(b.dieAfter-ts.sent.Load(), 0)
			w.Write(chunk[:keep]) //nolint:errcheck
			ts.sent.Add(keep)
			w.(http.Flusher).Flush()
			panic(http.ErrAbortHandler) // drops the connection mid-body
		}
		if _, err := w.Write(chunk); err != nil {
			return
		}
		ts.sent.Add(n)
		off += n
	}
}

func parseTestRange(v string, size int64) (int64, int64, bool) {
	v, ok := strings.CutPrefix(v, "bytes=")
	if !ok || strings.Contains(v, ",") {
		return 0, 0, false
	}
	as, es, ok := strings.Cut(v, "-")
	if !ok {
		return 0, 0, false
	}
	a, err := strconv.ParseInt(as, 10, 64)
	if err != nil || a >= size {
		return 0, 0, false
	}
	e := size - 1
	if es != "" {
		if e, err = strconv.ParseInt(es, 10, 64); err != nil || e < a {
			return 0, 0, false
		}
		e = min(e, size-1)
	}
	return a, e, true
}

// memSink is a Sink in memory that enforces the piecestore.Writer rules:
// appends only at the contiguous end, whole aligned pieces otherwise, never a
// piece twice; and it checks that the SHA-1 handed with a piece is right.
type memSink struct {
	mu      sync.Mutex
	data    []byte
	have    []bool
	contig  int64
	appends int
	pieces  int
	firstAt time.Time // first byte written
	// trustSums skips checking the SHA-1 handed with each piece (benchmarks:
	// a piecestore.Writer does not hash it again either).
	trustSums bool
}

func newMemSink(size int64) *memSink {
	return &memSink{data: make([]byte, size), have: make([]bool, (size+PieceSize-1)/PieceSize)}
}

func (m *memSink) WriteAt(p []byte, off int64) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if off != m.contig {
		return 0, fmt.Errorf("memsink: append at %d, contiguous end is %d", off, m.contig)
	}
	if off+int64(len(p)) > int64(len(m.data)) {
		return 0, errors.New("memsink: write past the end")
	}
	if m.firstAt.IsZero() && len(p) > 0 {
		m.firstAt = time.Now()
	}
	copy(m.data[off:], p)
	m.contig += int64(len(p))
	m.appends++
	for k := int(off / PieceSize); k < len(m.have) && int64(k)*PieceSize+pieceLen(k, int64(len(m.data))) <= m.contig; k++ {
		m.have[k] = true
	}
	m.advance()
	return len(p), nil
}

func (m *memSink) WritePiece(i int, data []byte, sum *[20]byte) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	size := int64(len(m.data))
	if i < 0 || i >= len(m.have) || int64(len(data)) != pieceLen(i, size) {
		return fmt.Errorf("memsink: bad piece %d of %d bytes", i, len(data))
	}
	if m.have[i] {
		return fmt.Errorf("memsink: piece %d written twice", i)
	}
	if sum == nil || !m.trustSums && sha1.Sum(data) != *sum {
		return fmt.Errorf("memsink: piece %d: wrong or missing SHA-1", i)
	}
	if m.firstAt.IsZero() {
		m.firstAt = time.Now()
	}
	copy(m.data[int64(i)*PieceSize:], data)
	m.have[i] = true
	m.pieces++
	m.advance()
	return nil
}

func (m *memSink) advance() {
	size := int64(len(m.data))
	for m.contig < size {
		k := int(m.contig / PieceSize)
		if !m.have[k] {
			return
		}
		m.contig = int64(k)*PieceSize + pieceLen(k, size)
	}
}

func (m *memSink) HavePiece(i int) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.have[i]
}

func (m *memSink) Contiguous() int64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.contig
}

func (m *memSink) check(t testing.TB, want []byte) {
	t.Helper()
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.contig != int64(len(want)) {
		t.Fatalf("sink holds %d contiguous bytes, want %d", m.contig, len(want))
	}
	if bytes.Equal(m.data, want) {
		return
	}
	for i := range want {
		if m.data[i] != want[i] {
			t.Fatalf("sink differs from the original at byte %d (piece %d)", i, i/PieceSize)
		}
	}
}

// testFile returns size pseudo-random bytes and their piece hashes.
func testFile(size int64, seed uint64) ([]byte, []byte) {
	var key [32]byte
	binary.LittleEndian.PutUint64(key[:], seed)
	data := make([]byte, size)
	rand.NewChaCha8(key).Read(data) //nolint:errcheck // never fails
	var pieces []byte
	for off := int64(0); off < size; off += PieceSize {
		s := sha1.Sum(data[off:min(off+PieceSize, size)])
		pieces = append(pieces, s[:]...)
	}
	return data, pieces
}

// peerChan returns a closed channel holding srcs.
func peerChan(srcs ...Source) <-chan Source {
	ch := make(chan Source, len(srcs))
	for _, s := range srcs {
		ch <- s
	}
	close(ch)
	return ch
}

func testConfig() Config {
	return Config{
		Version:           "test",
		PeerDialTimeout:   time.Second,
		MirrorDialTimeout: time.Second,
		PeerIdleTimeout:   2 * time.Second,
		MirrorIdleTimeout: 2 * time.Second,
		Logger:            nil,
	}
}

// fileSink is memSink's rules over a real temporary file.
type fileSink struct {
	*memSink
	f *os.File
}

func newFileSink(t testing.TB, size int64) *fileSink {
	f, err := os.CreateTemp(t.TempDir(), "fetch-*")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return &fileSink{memSink: newMemSink(size), f: f}
}

func (s *fileSink) WriteAt(p []byte, off int64) (int, error) {
	if n, err := s.memSink.WriteAt(p, off); err != nil {
		return n, err
	}
	return s.f.WriteAt(p, off)
}

func (s *fileSink) WritePiece(i int, data []byte, sum *[20]byte) error {
	if err := s.memSink.WritePiece(i, data, sum); err != nil {
		return err
	}
	_, err := s.f.WriteAt(data, int64(i)*PieceSize)
	return err
}

// checkFile compares the file's bytes with want.
func (s *fileSink) checkFile(t testing.TB, want []byte) {
	t.Helper()
	s.check(t, want)
	got, err := os.ReadFile(s.f.Name())
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("file holds %d bytes that differ from the original", len(got))
	}
}
