package httpserve

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/valyala/fasthttp"
)

// rawStatus sends a GET for path and returns the status line and the header
// block as the server wrote them.
func rawStatus(t *testing.T, addr, path string) (string, string) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := io.WriteString(c, "GET "+path+" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(c)
	status, err := r.ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	var hdr strings.Builder
	for {
		l, err := r.ReadString('\n')
		if err != nil || l == "\r\n" {
			break
		}
		hdr.WriteString(l)
	}
	return status, hdr.String()
}

// TestErrorReasonInStatusLine: apt shows the status line, not the body, so
// Error puts the reason there, as one safe, bounded header line.
func TestErrorReasonInStatusLine(t *testing.T) {
	long := strings.Repeat("mirror unreachable ", 40)
	reasons := map[string]string{
		"/dns":    "mirror deb.debain.org:80 unreachable: no such host",
		"/inject": "bad host\r\nSet-Cookie: owned=1\r\n\r\n<html>",
		"/long":   long,
		"/utf8":   "caf\u00e9 \u2603 ok\x00\x7f end",
		"/empty":  "",
	}
	addr := startServer(t, func(ctx *fasthttp.RequestCtx) {
		Error(ctx, fasthttp.StatusBadGateway, reasons[string(ctx.Path())])
	}, ServerConfig{})

	status, _ := rawStatus(t, addr, "/dns")
	if want := "HTTP/1.1 502 mirror deb.debain.org:80 unreachable: no such host\r\n"; status != want {
		t.Errorf("status line %q, want %q", status, want)
	}
	status, hdr := rawStatus(t, addr, "/inject")
	if want := "HTTP/1.1 502 bad host Set-Cookie: owned=1 <html>\r\n"; status != want {
		t.Errorf("status line %q, want %q", status, want)
	}
	if strings.Contains(strings.ToLower(hdr), "set-cookie") {
		t.Errorf("a reason with CR/LF injected a header:\n%s", hdr)
	}
	status, _ = rawStatus(t, addr, "/long")
	if len(status) > len("HTTP/1.1 502 ")+MaxReason+2 || !strings.HasSuffix(status, "...\r\n") {
		t.Errorf("long reason: %d bytes %q, want at most %d after the code, ending in ...", len(status), status, MaxReason)
	}
	status, _ = rawStatus(t, addr, "/utf8")
	if want := "HTTP/1.1 502 caf? ? ok end\r\n"; status != want {
		t.Errorf("status line %q, want %q", status, want)
	}
	status, _ = rawStatus(t, addr, "/empty")
	if want := "HTTP/1.1 502 Bad Gateway\r\n"; status != want {
		t.Errorf("status line %q, want %q", status, want)
	}

	resp, err := http.Get("http://" + addr + "/dns")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 502 || string(body) != "apt-p2p: "+reasons["/dns"]+"\n" {
		t.Errorf("HTTP %d body %q, want 502 with the reason as body", resp.StatusCode, body)
	}
}

func TestReason(t *testing.T) {
	for in, want := range map[string]string{
		"apt-p2p: mirror x:80 unreachable: timed out\n": "mirror x:80 unreachable: timed out",
		"  a \t\t b  ": "a b",
		"\r\n":         "",
	} {
		if got := Reason(in); got != want {
			t.Errorf("Reason(%q) = %q, want %q", in, got, want)
		}
	}
	if got := Reason(strings.Repeat("x", 1000)); len(got) != MaxReason {
		t.Errorf("Reason of 1000 bytes has %d bytes, want %d", len(got), MaxReason)
	}
}
