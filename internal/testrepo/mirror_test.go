package testrepo

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// mirrorFixture serves a directory with two files of known content.
func mirrorFixture(t *testing.T) (*Mirror, []byte, []byte) {
	t.Helper()
	dir := t.TempDir()
	a := make([]byte, 100_000)
	b := make([]byte, 5_000)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range a {
		a[i] = byte(rng.Uint32())
	}
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	if err := writeFile(filepath.Join(dir, "debian", "pool", "a.deb"), a); err != nil {
		t.Fatal(err)
	}
	if err := writeFile(filepath.Join(dir, "debian", "pool", "b.deb"), b); err != nil {
		t.Fatal(err)
	}
	m, err := ServeMirror("127.0.0.1:0", dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m, a, b
}

type resp struct {
	status int
	body   []byte
	err    error // from reading the body
	hdr    http.Header
}

func do(t *testing.T, c *http.Client, method, url string, hdr ...string) resp {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	res, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	return resp{res.StatusCode, body, err, res.Header}
}

func TestMirrorServing(t *testing.T) {
	m, a, _ := mirrorFixture(t)
	c := &http.Client{}
	defer c.CloseIdleConnections()
	u := m.URL() + "/debian/pool/a.deb"
	const p = "/debian/pool/a.deb"

	if r := do(t, c, "GET", u); r.status != 200 || !bytes.Equal(r.body, a) || r.err != nil {
		t.Fatalf("GET: %d, %d bytes, %v", r.status, len(r.body), r.err)
	}
	r := do(t, c, "GET", u, "Range", "bytes=10-19")
	if r.status != 206 || !bytes.Equal(r.body, a[10:20]) || r.hdr.Get("Content-Range") != "bytes 10-19/100000" {
		t.Fatalf("Range: %d %q %q", r.status, r.body, r.hdr.Get("Content-Range"))
	}
	if r := do(t, c, "GET", u, "Range", "bytes=99990-"); r.status != 206 || !bytes.Equal(r.body, a[99990:]) {
		t.Fatalf("open Range: %d, %d bytes", r.status, len(r.body))
	}
	r416 := do(t, c, "GET", u, "Range", "bytes=200000-")
	if r416.status != 416 {
		t.Fatalf("unsatisfiable Range: %d", r416.status)
	}
	future := time.Now().Add(time.Hour).UTC().Format(http.TimeFormat)
	if r := do(t, c, "GET", u, "If-Modified-Since", future); r.status != 304 || len(r.body) != 0 {
		t.Fatalf("If-Modified-Since: %d, %d bytes", r.status, len(r.body))
	}
	past := time.Unix(0, 0).UTC().Format(http.TimeFormat)
	if r := do(t, c, "GET", u, "If-Modified-Since", past); r.status != 200 || len(r.body) != len(a) {
		t.Fatalf("old If-Modified-Since: %d", r.status)
	}
	if r := do(t, c, "HEAD", u); r.status != 200 || r.hdr.Get("Content-Length") != "100000" || len(r.body) != 0 {
		t.Fatalf("HEAD: %d %q", r.status, r.hdr.Get("Content-Length"))
	}
	rMissing := do(t, c, "GET", m.URL()+"/debian/pool/missing.deb")
	if rMissing.status != 404 {
		t.Fatalf("missing: %d", rMissing.status)
	}
	if r := do(t, c, "GET", m.URL()+"/debian/pool"); r.status != 404 {
		t.Fatalf("directory: %d", r.status)
	}
	r405 := do(t, c, "POST", u)
	if r405.status != 405 {
		t.Fatalf("POST: %d", r405.status)
	}

	// Error bodies count too: they are bytes on the wire.
	wantBytes := int64(len(a)) + 10 + 10 + int64(len(a)) + int64(len(r416.body)+len(r405.body))
	if got := m.BytesServed(p); got != wantBytes {
		t.Errorf("BytesServed = %d, want %d", got, wantBytes)
	}
	if got := m.Requests(p); got != 8 {
		t.Errorf("Requests = %d, want 8", got)
	}
	if m.TotalRequests() != 10 {
		t.Errorf("TotalRequests = %d, want 10", m.TotalRequests())
	}
	// Everything went over one kept-alive connection.
	if m.Connections() != 1 {
		t.Errorf("Connections = %d, want 1 (keep-alive)", m.Connections())
	}
	log := m.Log()
	if log[1].Range != "bytes=10-19" || log[1].Status != 206 || log[1].Bytes != 10 || log[4].Status != 304 || log[4].IfModSince != future {
		t.Errorf("log: %+v", log[:5])
	}
	if got := m.BytesUnder("/debian/pool/"); got != wantBytes+int64(len(rMissing.body)) {
		t.Errorf("BytesUnder = %d, want %d", got, wantBytes)
	}
	if got := m.BytesUnder("/debian/dists/"); got != 0 {
		t.Errorf("BytesUnder(dists) = %d", got)
	}
	m.Reset()
	if m.TotalBytes() != 0 || m.TotalRequests() != 0 || m.Requests(p) != 0 || len(m.Log()) != 0 {
		t.Error("Reset left counts")
	}
}

func TestMirrorPathsStayInRoot(t *testing.T) {
	m, _, _ := mirrorFixture(t)
	// Write a file next to the root that a traversal would reach.
	outside := filepath.Join(filepath.Dir(m.root), "secret")
	if err := os.WriteFile(outside, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	defer os.Remove(outside)
	c := &http.Client{}
	defer c.CloseIdleConnections()
	for _, p := range []string{"/../secret", "/debian/../../secret", "/%2e%2e/secret"} {
		req, _ := http.NewRequest("GET", m.URL()+"/", nil)
		req.URL.Opaque = p // sent as is, not cleaned by the client
		res, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode == 200 {
			t.Errorf("%s escaped the root", p)
		}
	}
}

func TestMirrorFaults(t *testing.T) {
	m, a, b := mirrorFixture(t)
	c := &http.Client{}
	defer c.CloseIdleConnections()
	u := m.URL() + "/debian/pool/a.deb"
	const p = "/debian/pool/a.deb"

	m.SetFault(p, Fault{IgnoreRange: true})
	if r := do(t, c, "GET", u, "Range", "bytes=10-19"); r.status != 200 || !bytes.Equal(r.body, a) {
		t.Errorf("IgnoreRange: %d, %d bytes", r.status, len(r.body))
	}
	if q := m.Log()[0]; q.Range != "bytes=10-19" || q.Status != 200 || q.Bytes != int64(len(a)) {
		t.Errorf("IgnoreRange log: %+v", q)
	}
	// Faults are per path: b is unaffected.
	if r := do(t, c, "GET", m.URL()+"/debian/pool/b.deb", "Range", "bytes=0-9"); r.status != 206 {
		t.Errorf("other path: %d", r.status)
	}

	m.SetFault(p, Fault{Substitute: "debian/pool/b.deb"})
	if r := do(t, c, "GET", u); r.status != 200 || !bytes.Equal(r.body, b) {
		t.Errorf("Substitute: %d, %d bytes", r.status, len(r.body))
	}

	m.SetFault(p, Fault{NotFound: true})
	if r := do(t, c, "GET", u); r.status != 404 {
		t.Errorf("NotFound: %d", r.status)
	}

	m.SetFault(p, Fault{Fail500: 2})
	for i, want := range []int{500, 500, 200} {
		if r := do(t, c, "GET", u); r.status != want {
			t.Errorf("Fail500 request %d: %d, want %d", i, r.status, want)
		}
	}

	m.SetFault(p, Fault{CloseAfter: 1000})
	r := do(t, c, "GET", u)
	if r.status != 200 || len(r.body) != 1000 || !bytes.Equal(r.body, a[:1000]) || !errors.Is(r.err, io.ErrUnexpectedEOF) {
		t.Errorf("CloseAfter: %d, %d bytes, err %v", r.status, len(r.body), r.err)
	}

	m.SetFault(p, Fault{Delay: 300 * time.Millisecond})
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	req, _ := http.NewRequestWithContext(ctx, "GET", u, nil)
	if res, err := c.Do(req); err == nil {
		res.Body.Close()
		t.Error("Delay: answered before the client's 50 ms deadline")
	}
	cancel()
	start := time.Now()
	if r := do(t, c, "GET", u); r.status != 200 || time.Since(start) < 300*time.Millisecond {
		t.Errorf("Delay: %d after %v", r.status, time.Since(start))
	}

	m.SetFault(p, Fault{Rate: 200_000})
	start = time.Now()
	if r := do(t, c, "GET", u); r.status != 200 || !bytes.Equal(r.body, a) {
		t.Errorf("Rate: %d, %d bytes", r.status, len(r.body))
	} else if d := time.Since(start); d < 400*time.Millisecond {
		t.Errorf("Rate 200 kB/s sent 100 kB in %v", d)
	}

	// A fault for "" covers every path without its own.
	m.ClearFaults()
	m.SetFault("", Fault{Fail500: 1})
	if r := do(t, c, "GET", m.URL()+"/debian/pool/b.deb"); r.status != 500 {
		t.Errorf("wildcard fault: %d", r.status)
	}
	m.SetFault("", Fault{})
	if r := do(t, c, "GET", u); r.status != 200 || !bytes.Equal(r.body, a) {
		t.Errorf("after clearing: %d", r.status)
	}

	// The cut request counted only what went out.
	var cut Request
	for _, q := range m.Log() {
		if q.Path == p && q.Bytes == 1000 {
			cut = q
		}
	}
	if cut.Status != 200 {
		t.Errorf("log has no 1000-byte cut request: %+v", m.Log())
	}
}

func TestMirrorPipelining(t *testing.T) {
	m, a, b := mirrorFixture(t)
	c, err := net.Dial("tcp", m.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	br := bufio.NewReader(c)
	readResp := func(want []byte) {
		t.Helper()
		res, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(res.Body)
		res.Body.Close()
		if err != nil || !bytes.Equal(body, want) {
			t.Fatalf("response: %d bytes, %v", len(body), err)
		}
	}
	get := func(p string) string { return "GET " + p + " HTTP/1.1\r\nHost: mirror\r\n\r\n" }
	// Two requests in one write: the second is pipelined behind the first.
	if _, err := io.WriteString(c, get("/debian/pool/a.deb")+get("/debian/pool/b.deb")); err != nil {
		t.Fatal(err)
	}
	readResp(a)
	readResp(b)
	// One sent only after its predecessor's response arrived is not.
	io.WriteString(c, get("/debian/pool/b.deb"))
	readResp(b)
	var flags []bool
	for _, q := range m.Log() {
		flags = append(flags, q.Pipelined)
	}
	if len(flags) != 3 || flags[0] || !flags[1] || flags[2] {
		t.Errorf("pipelined flags %v, want [false true false]", flags)
	}
	if m.Pipelined() != 1 || m.Connections() != 1 {
		t.Errorf("Pipelined() = %d, Connections() = %d; want 1, 1", m.Pipelined(), m.Connections())
	}
}

func TestMirrorTLS(t *testing.T) {
	dir := t.TempDir()
	data := []byte("hello over TLS\n")
	if err := writeFile(filepath.Join(dir, "debian", "x.deb"), data); err != nil {
		t.Fatal(err)
	}
	m, err := ServeMirrorTLS("127.0.0.1:0", dir)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if !strings.HasPrefix(m.URL(), "https://127.0.0.1:") || m.CertPEM() == nil {
		t.Fatalf("URL %s, cert %d bytes", m.URL(), len(m.CertPEM()))
	}
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: m.CertPool()}}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr}
	r := do(t, c, "GET", m.URL()+"/debian/x.deb", "Range", "bytes=6-8")
	if r.status != 206 || string(r.body) != "ove" {
		t.Errorf("TLS Range: %d %q", r.status, r.body)
	}
	if m.BytesServed("/debian/x.deb") != 3 {
		t.Errorf("BytesServed = %d", m.BytesServed("/debian/x.deb"))
	}
	// Without the certificate the handshake fails: it really is TLS with our key.
	bare := &http.Transport{}
	defer bare.CloseIdleConnections()
	if res, err := (&http.Client{Transport: bare}).Get(m.URL() + "/debian/x.deb"); err == nil {
		res.Body.Close()
		t.Error("an untrusting client connected")
	}
	plain, err := ServeMirror("127.0.0.1:0", dir)
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	if plain.CertPEM() != nil || plain.CertPool() != nil || !strings.HasPrefix(plain.URL(), "http://") {
		t.Error("plain mirror has TLS state")
	}
}
