package node_test

import (
	"bufio"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/apt-p2p/apt-p2p/internal/httpserve"
)

// raw sends one request text from the local address from (empty: any) to
// addr and returns the status and body. Raw, so that no client library
// cleans the request line first.
func raw(t *testing.T, from, addr, request string) (int, string) {
	t.Helper()
	dialer := net.Dialer{Timeout: 5 * time.Second}
	if from != "" {
		dialer.LocalAddr = &net.TCPAddr{IP: net.ParseIP(from)}
	}
	c, err := dialer.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("dial %s from %s: %v", addr, from, err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(20 * time.Second))
	if _, err := io.WriteString(c, request); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("%q: reading the response: %v", firstLine(request), err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, string(b)
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	if len(s) > 100 {
		s = s[:100] + "..."
	}
	return s
}

func getReq(target string) string {
	return "GET " + target + " HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
}

// nonLoopback is a local address that is not loopback, if the machine has one
// (the status page's "local only" means loopback).
func nonLoopback() string {
	addrs, _ := net.InterfaceAddrs()
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.To4() != nil && !n.IP.IsLoopback() && !n.IP.IsLinkLocalUnicast() {
			return n.IP.String()
		}
	}
	return ""
}

// TestWhoMayAsk: the apt-facing proxy answers only allowed client networks
// (403 otherwise, with a reason); only mirror-shaped, normalised paths are
// fetched (everything else is 400/404 without any upstream request); CONNECT
// is refused; oversized requests get 4xx; peer uploads are open to anyone;
// the status views are loopback-only when REMOTE_STATS = no.
func TestWhoMayAsk(t *testing.T) {
	repo, base := sharedRepo(t)
	m := serveMirror(t, base)
	d := startDaemon(t, "A", "127.0.0.2", "", "apt_p2p_Khashmir.BOOTSTRAP_NODE=yes",
		"ALLOWED_CLIENTS=127.0.0.1/32", "REMOTE_STATS=no")
	p := repo.Package("tiny")
	release := "/" + m.Addr() + "/debian/" + repo.DistPath("Release")

	code, body := raw(t, "127.0.0.9", d.addr(), getReq(release))
	if code != http.StatusForbidden || !strings.Contains(body, "ALLOWED_CLIENTS") {
		t.Errorf("from 127.0.0.9 with ALLOWED_CLIENTS=127.0.0.1/32: HTTP %d %q, want 403 naming ALLOWED_CLIENTS", code, body)
	}
	if code, _ := raw(t, "127.0.0.9", d.addr(), "GET http://"+m.Addr()+"/debian/"+repo.DistPath("Release")+" HTTP/1.1\r\nHost: "+m.Addr()+"\r\nConnection: close\r\n\r\n"); code != http.StatusForbidden {
		t.Errorf("proxy mode from 127.0.0.9: HTTP %d, want 403", code)
	}
	if n := m.TotalRequests(); n != 0 {
		t.Fatalf("refused requests reached the mirror (%d requests)", n)
	}
	if code, _ := raw(t, "127.0.0.1", d.addr(), getReq(release)); code != http.StatusOK {
		t.Errorf("from 127.0.0.1: HTTP %d, want 200", code)
	}
	aptUpdate(t, d, m, repo)
	wantPackage(t, d, m, p)
	waitFor(t, "tiny stored", 10*time.Second, func() (bool, string) { return stored(t, d, p), "" })

	// Requests that must never become upstream fetches.
	m.Reset()
	mirror := m.Addr()
	for _, c := range []struct {
		target string
		want   []int
	}{
		{"/" + mirror + "/etc/passwd", []int{404}},
		{"/" + mirror + "/debian/../../etc/passwd", []int{400}},
		{"/" + mirror + "/debian/dists/../../../etc/passwd", []int{400}},
		{"/" + mirror + "/debian/pool/%2e%2e/%2e%2e/etc/passwd", []int{400}},
		{"/" + mirror + "/debian/dists%2f..%2f..%2fetc/passwd", []int{400}},
		{"/" + mirror + "/debian/pool/main/t/tiny%2F..%2Fx.deb", []int{400}},
		{"/user:pw@" + mirror + "/debian/dists/stable/Release", []int{400}},
		{"/" + mirror + "@evil.example/debian/dists/stable/Release", []int{400}},
		{"/evil.example%2f@" + mirror + "/debian/dists/stable/Release", []int{400}},
		{"http://user@" + mirror + "/debian/dists/stable/Release", []int{400}},
		{"http://" + mirror + "/debian/", []int{404}},
		{"http://" + mirror + "/", []int{404}},
		{"/" + mirror + "/debian/dists/stable/main/binary-amd64/Packages.diff/Index", []int{404}},
		{"/" + mirror + "/favicon.ico", []int{404}},
		{"/" + mirror + "/debian/dists/stable/Release\x00", []int{400}},
		{"/" + mirror, []int{404}},
		{"//" + mirror + "/debian/dists/stable/Release", []int{400, 404}},
		{"/foo", []int{404}},
		{"*", []int{400, 404}},
	} {
		code, body := raw(t, "127.0.0.1", d.addr(), getReq(c.target))
		ok := false
		for _, w := range c.want {
			ok = ok || code == w
		}
		if !ok {
			t.Errorf("GET %q: HTTP %d %q, want %v", c.target, code, strings.TrimSpace(body), c.want)
		}
	}
	if n := m.TotalRequests(); n != 0 {
		t.Errorf("refused paths caused %d upstream requests: %+v", n, m.Log())
	}

	if code, _ := raw(t, "127.0.0.1", d.addr(), "CONNECT "+mirror+" HTTP/1.1\r\nHost: "+mirror+"\r\n\r\n"); code != http.StatusMethodNotAllowed {
		t.Errorf("CONNECT: HTTP %d, want 405", code)
	}
	if code, _ := raw(t, "127.0.0.1", d.addr(), "POST "+release+" HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"); code != http.StatusMethodNotAllowed {
		t.Errorf("POST: HTTP %d, want 405", code)
	}
	long := "/" + mirror + "/debian/pool/" + strings.Repeat("a", 20000) + ".deb"
	if code, _ := raw(t, "127.0.0.1", d.addr(), getReq(long)); code < 400 || code > 499 {
		t.Errorf("20 kB request line: HTTP %d, want 4xx", code)
	}
	var hdr strings.Builder
	for i := range 400 {
		fmt.Fprintf(&hdr, "X-Filler-%d: %s\r\n", i, strings.Repeat("b", 60))
	}
	if code, _ := raw(t, "127.0.0.1", d.addr(), "GET "+release+" HTTP/1.1\r\nHost: x\r\n"+hdr.String()+"Connection: close\r\n\r\n"); code < 400 || code > 499 {
		t.Errorf("28 kB of headers: HTTP %d, want 4xx", code)
	}
	if n := m.TotalRequests(); n != 0 {
		t.Errorf("refused requests caused %d upstream requests", n)
	}

	// Peer uploads: from anyone.
	h, _ := hex.DecodeString(p.SHA1)
	peerPath := "/~/" + string(httpserve.QuotePlus(nil, h))
	if code, body := raw(t, "127.0.0.9", d.addr(), getReq(peerPath)); code != http.StatusOK || int64(len(body)) != p.Size {
		t.Errorf("peer upload to 127.0.0.9: HTTP %d, %d bytes (want %d)", code, len(body), p.Size)
	}

	// Status views: loopback always; others only with REMOTE_STATS.
	for _, path := range []string{"/", "/stats.json", "/metrics"} {
		if code, _ := raw(t, "127.0.0.9", d.addr(), getReq(path)); code != http.StatusOK {
			t.Errorf("%s from loopback 127.0.0.9: HTTP %d, want 200", path, code)
		}
	}
	if ip := nonLoopback(); ip != "" {
		for _, path := range []string{"/", "/stats.json", "/metrics", "/lookup?q=x"} {
			if code, _ := raw(t, ip, d.addr(), getReq(path)); code != http.StatusForbidden {
				t.Errorf("%s from %s with REMOTE_STATS = no: HTTP %d, want 403", path, ip, code)
			}
		}
		if code, _ := raw(t, ip, d.addr(), getReq(release)); code != http.StatusForbidden {
			t.Errorf("apt request from %s: HTTP %d, want 403", ip, code)
		}
		if code, _ := raw(t, ip, d.addr(), getReq(peerPath)); code != http.StatusOK {
			t.Errorf("peer upload to %s: HTTP %d, want 200", ip, code)
		}
		open := startDaemon(t, "open", "127.0.0.2", "", "apt_p2p_Khashmir.BOOTSTRAP_NODE=yes", "ALLOWED_CLIENTS=127.0.0.1/32")
		if code, _ := raw(t, ip, open.addr(), getReq("/stats.json")); code != http.StatusOK {
			t.Errorf("/stats.json from %s with REMOTE_STATS = yes: HTTP %d, want 200", ip, code)
		}
	} else {
		t.Log("no non-loopback address on this machine: the REMOTE_STATS = no refusal was not exercised")
	}

	// A LAN-style prefix admits the client: a shared site cache.
	lan := startDaemon(t, "lan", "127.0.0.3", "", "apt_p2p_Khashmir.BOOTSTRAP_NODE=yes", "ALLOWED_CLIENTS=127.0.0.1/32 127.0.0.0/24")
	if code, _ := raw(t, "127.0.0.9", lan.addr(), getReq(release)); code != http.StatusOK {
		t.Errorf("from 127.0.0.9 with ALLOWED_CLIENTS including 127.0.0.0/24: HTTP %d, want 200", code)
	}
}
