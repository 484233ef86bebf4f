package testrepo

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// Fault makes the mirror misbehave for one path (or every path), so tests can
// show how a client copes with a bad upstream.
type Fault struct {
	// IgnoreRange answers Range requests with 200 and the whole body.
	IgnoreRange bool
	// Substitute serves this file (a path relative to the mirror root, or
	// absolute) instead, under the requested name: a stale or wrong file.
	Substitute string
	// Delay stalls every response this long before the headers (the client's
	// giving up cancels the wait).
	Delay time.Duration
	// Fail500 answers the next Fail500 requests with 500 Internal Server Error,
	// then serves normally.
	Fail500 int
	// CloseAfter, when > 0, sends this many body bytes and then closes the
	// connection without finishing the response.
	CloseAfter int64
	// NotFound answers 404 as if the file did not exist.
	NotFound bool
	// Rate, when > 0, throttles the body to this many bytes per second: a slow
	// mirror, for tests of racing it against peers.
	Rate int64
}

// Request is one request as the mirror saw it.
type Request struct {
	Method, Path string
	Range        string // the Range header, if any
	IfModSince   string // the If-Modified-Since header, if any
	Header       http.Header
	// Pipelined: the request had arrived before the previous response on its
	// connection was finished (the client did not wait for it).
	Pipelined bool
	Status    int
	Bytes     int64 // body bytes written
	Remote    string
}

// Mirror is a counting, fault-injecting HTTP/1.1 file server on loopback.
type Mirror struct {
	root string
	ln   net.Listener
	srv  *http.Server
	done chan struct{}

	certPEM []byte // TLS mirrors only

	mu     sync.Mutex
	bytes  map[string]int64
	reqs   map[string]int
	busy   map[string]int // responses running, by path
	log    []Request
	faults map[string]*Fault // "" applies to every path without its own entry
	conns  int
}

// ServeMirror serves the directory root at addr (for example "127.0.0.1:0") until
// Close. A request for /a/b is answered from root/a/b; directories are 404.
func ServeMirror(addr, root string) (*Mirror, error) { return serveMirror(addr, root, false) }

// ServeMirrorTLS is ServeMirror over HTTPS (HTTP/1.1 only) with a fresh
// self-signed certificate for the listening IP and "localhost". Clients trust
// it through CertPEM or CertPool (apt: -o Acquire::https::CaInfo=<pem file>).
func ServeMirrorTLS(addr, root string) (*Mirror, error) { return serveMirror(addr, root, true) }

func serveMirror(addr, root string, useTLS bool) (*Mirror, error) {
	root, err := filepath.Abs(root)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	m := &Mirror{root: root, ln: ln, done: make(chan struct{}),
		bytes: map[string]int64{}, reqs: map[string]int{}, busy: map[string]int{}, faults: map[string]*Fault{}}
	var serveLn net.Listener = ln
	if useTLS {
		cert, pemBytes, err := selfSigned(ln.Addr().(*net.TCPAddr).IP)
		if err != nil {
			ln.Close()
			return nil, err
		}
		m.certPEM = pemBytes
		serveLn = tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{"http/1.1"}})
	}
	m.srv = &http.Server{
		Handler: m,
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			return context.WithValue(ctx, connKey{}, c.(*trackedConn))
		},
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       30 * time.Second,
		ConnState: func(_ net.Conn, s http.ConnState) {
			if s == http.StateNew {
				m.mu.Lock()
				m.conns++
				m.mu.Unlock()
			}
		},
		// HTTP/2 stays off: apt speaks HTTP/1.1, and so does the daemon upstream.
		TLSNextProto: map[string]func(*http.Server, *tls.Conn, http.Handler){},
	}
	go func() {
		defer close(m.done)
		m.srv.Serve(trackingListener{serveLn})
	}()
	return m, nil
}

// selfSigned makes an ECDSA certificate for ip and "localhost" that is its own
// CA, so it can be handed to clients as the trust anchor.
func selfSigned(ip net.IP) (tls.Certificate, []byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(now.UnixNano()),
		Subject:               pkix.Name{CommonName: "apt-p2p test mirror"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses:           []net.IP{ip},
		DNSNames:              []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	pemBytes := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, pemBytes, nil
}

// CertPEM is the TLS mirror's certificate in PEM (nil for plain HTTP).
func (m *Mirror) CertPEM() []byte { return m.certPEM }

// CertPool holds the TLS mirror's certificate, for an http.Transport's RootCAs
// (nil for plain HTTP).
func (m *Mirror) CertPool() *x509.CertPool {
	if m.certPEM == nil {
		return nil
	}
	p := x509.NewCertPool()
	p.AppendCertsFromPEM(m.certPEM)
	return p
}

// Addr is the listening address, "127.0.0.1:port".
func (m *Mirror) Addr() string { return m.ln.Addr().String() }

// URL is "http://" (or "https://") + Addr(), without a trailing slash.
func (m *Mirror) URL() string {
	if m.certPEM != nil {
		return "https://" + m.Addr()
	}
	return "http://" + m.Addr()
}

// Close stops the server and closes every connection.
func (m *Mirror) Close() error {
	err := m.srv.Close()
	<-m.done
	return err
}

// BytesServed is the number of body bytes sent for the URL path p ("/debian/pool/…").
// Counters and the log are updated as each response ends, not while it streams.
func (m *Mirror) BytesServed(p string) int64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.bytes[p]
}

// InFlight is the number of responses for the URL path p still running: their
// bytes are not yet in BytesServed.
func (m *Mirror) InFlight(p string) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.busy[p]
}

// Requests is the number of requests (any method, any status) for the URL path p.
func (m *Mirror) Requests(p string) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.reqs[p]
}

// BytesUnder is the number of body bytes sent for URL paths that start with
// prefix; BytesUnder("/debian/pool/") is the package traffic.
func (m *Mirror) BytesUnder(prefix string) int64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	var n int64
	for p, b := range m.bytes {
		if strings.HasPrefix(p, prefix) {
			n += b
		}
	}
	return n
}

// TotalBytes is the number of body bytes sent for all paths.
func (m *Mirror) TotalBytes() int64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	var n int64
	for _, b := range m.bytes {
		n += b
	}
	return n
}

// TotalRequests is the number of requests for all paths.
func (m *Mirror) TotalRequests() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.log)
}

// Pipelined is the number of requests that arrived before the previous
// response on their connection was finished.
func (m *Mirror) Pipelined() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := 0
	for _, q := range m.log {
		if q.Pipelined {
			n++
		}
	}
	return n
}

// Connections is the number of TCP connections accepted so far.
func (m *Mirror) Connections() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.conns
}

// Log is a copy of every request since the last Reset, in completion order.
func (m *Mirror) Log() []Request {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]Request(nil), m.log...)
}

// Reset zeroes the counters, the connection count and the log (not the faults).
func (m *Mirror) Reset() {
	m.mu.Lock()
	defer m.mu.Unlock()
	clear(m.bytes)
	clear(m.reqs)
	m.log = nil
	m.conns = 0
}

// SetFault installs f for URL path p, or for every path without its own fault
// when p is "". A zero Fault removes the entry.
func (m *Mirror) SetFault(p string, f Fault) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if f == (Fault{}) {
		delete(m.faults, p)
		return
	}
	m.faults[p] = &f
}

// ClearFaults removes every fault.
func (m *Mirror) ClearFaults() {
	m.mu.Lock()
	defer m.mu.Unlock()
	clear(m.faults)
}

// countingWriter counts body bytes, throttles them, and cuts the connection
// after a limit.
type countingWriter struct {
	http.ResponseWriter
	ctx    context.Context
	status int
	n      int64
	limit  int64 // > 0: abort once this many body bytes are out
	rate   int64 // > 0: bytes per second
	start  time.Time
}

func (w *countingWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

var errCut = errors.New("testrepo: mirror cut the body (CloseAfter)")

func (w *countingWriter) Write(p []byte) (int, error) {
	if w.rate <= 0 {
		return w.write(p)
	}
	if w.start.IsZero() {
		w.start = time.Now()
	}
	total := 0
	for len(p) > 0 {
		// Small slices, each sent when due, give the client a steady trickle.
		chunk := p[:min(len(p), max(int(w.rate/50), 512))]
		k, err := w.write(chunk)
		total += k
		if err != nil {
			return total, err
		}
		p = p[k:]
		due := w.start.Add(time.Duration(float64(w.n) / float64(w.rate) * float64(time.Second)))
		if d := time.Until(due); d > 0 {
			w.ResponseWriter.(http.Flusher).Flush()
			t := time.NewTimer(d)
			select {
			case <-t.C:
			case <-w.ctx.Done():
				t.Stop()
				return total, w.ctx.Err()
			}
		}
	}
	return total, nil
}

func (w *countingWriter) write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	if w.limit > 0 && w.n+int64(len(p)) >= w.limit {
		k, _ := w.ResponseWriter.Write(p[:w.limit-w.n])
		w.n += int64(k)
		return k, errCut
	}
	k, err := w.ResponseWriter.Write(p)
	w.n += int64(k)
	return k, err
}

func (m *Mirror) ServeHTTP(rw http.ResponseWriter, r *http.Request) {
	p := path.Clean("/" + r.URL.Path)
	m.mu.Lock()
	var f Fault
	if pf := m.faults[p]; pf != nil {
		f = *pf
		if pf.Fail500 > 0 {
			pf.Fail500--
		}
	} else if pf := m.faults[""]; pf != nil {
		f = *pf
		if pf.Fail500 > 0 {
			pf.Fail500--
		}
	}
	m.busy[p]++
	m.mu.Unlock()

	tc, _ := r.Context().Value(connKey{}).(*trackedConn)
	pipelined := tc.begin()
	defer tc.end()
	w := &countingWriter{ResponseWriter: rw, ctx: r.Context(), limit: f.CloseAfter, rate: f.Rate}
	// Logged as received, before any fault edits the request.
	q := Request{Method: r.Method, Path: p, Range: r.Header.Get("Range"),
		IfModSince: r.Header.Get("If-Modified-Since"), Header: r.Header.Clone(), Remote: r.RemoteAddr,
		Pipelined: pipelined}
	defer func() {
		m.mu.Lock()
		m.busy[p]--
		m.reqs[p]++
		m.bytes[p] += w.n
		st := w.status
		if st == 0 {
			st = http.StatusOK
		}
		q.Status, q.Bytes = st, w.n
		m.log = append(m.log, q)
		m.mu.Unlock()
	}()

	if f.Delay > 0 {
		t := time.NewTimer(f.Delay)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
			w.status = 499 // nginx's "client closed request", for the log only
			return
		}
	}
	if f.Fail500 > 0 {
		http.Error(w, "injected failure", http.StatusInternalServerError)
		return
	}
	if f.NotFound {
		http.NotFound(w, r)
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	file := filepath.Join(m.root, filepath.FromSlash(p))
	if f.Substitute != "" {
		file = f.Substitute
		if !filepath.IsAbs(file) {
			file = filepath.Join(m.root, filepath.FromSlash(path.Clean("/"+file)))
		}
	}
	fh, err := os.Open(file)
	if err != nil {
		http.NotFound(w, r)
		return
	}
	defer fh.Close()
	st, err := fh.Stat()
	if err != nil || st.IsDir() {
		http.NotFound(w, r)
		return
	}
	if f.IgnoreRange {
		r.Header.Del("Range")
		r.Header.Del("If-Range")
	}
	// Set a type so ServeContent does not sniff; Debian mirrors send these.
	if strings.HasSuffix(p, ".deb") {
		w.Header().Set("Content-Type", "application/vnd.debian.binary-package")
	} else {
		w.Header().Set("Content-Type", "application/octet-stream")
	}
	http.ServeContent(w, r, "", st.ModTime(), fh)
	if w.limit > 0 && w.n >= w.limit {
		// Push what was written onto the wire, then make net/http drop the
		// connection without finishing the body.
		rw.(http.Flusher).Flush()
		panic(http.ErrAbortHandler)
	}
}

// Pipelining detection. A request was pipelined when the last bytes read from
// its connection before its handler started arrived while the previous
// response was still being written: the client sent it without waiting.
// (net/http serves pipelined requests one after another, so handlers never
// overlap on a connection.)

type connKey struct{}

type trackingListener struct{ net.Listener }

func (l trackingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &trackedConn{Conn: c}, nil
}

type trackedConn struct {
	net.Conn
	mu       sync.Mutex
	lastRead time.Time // when a Read last returned data
	prevEnd  time.Time // when the previous handler on this connection returned
}

func (c *trackedConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 {
		c.mu.Lock()
		c.lastRead = time.Now()
		c.mu.Unlock()
	}
	return n, err
}

func (c *trackedConn) begin() (pipelined bool) {
	if c == nil {
		return false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return !c.prevEnd.IsZero() && c.lastRead.Before(c.prevEnd)
}

func (c *trackedConn) end() {
	if c == nil {
		return
	}
	c.mu.Lock()
	c.prevEnd = time.Now()
	c.mu.Unlock()
}
