package node_test

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/apt-p2p/apt-p2p/internal/apttest"
)

// aptFails runs apt-get update on r and returns everything apt printed; the
// run must fail.
func aptFails(t *testing.T, r *apttest.Root) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	err := r.Update(ctx)
	var re *apttest.RunError
	if !errors.As(err, &re) {
		t.Fatalf("apt-get update: %v, want a failure", err)
	}
	return re.Stdout + re.Stderr
}

// TestErrorsAptShows: apt prints the status line of a failed request, never
// its body, so the reason must be in the reason phrase (issue 11 item 4).
// Real apt-get against a mistyped mirror host, a full URL pasted after the
// daemon's address, an https source tunnelled through the proxy (CONNECT),
// and a package whose mirror went away.
func TestErrorsAptShows(t *testing.T) {
	repo, base := sharedRepo(t)
	d := startDaemon(t, "A", "127.0.0.2", "", "apt_p2p_Khashmir.BOOTSTRAP_NODE=yes")
	prefix := "http://" + d.addr()

	// A mistyped mirror host. (.onion names are never sent to DNS (RFC 7686),
	// so the lookup fails on this machine without asking any server.)
	r, err := apttest.NewRoot(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if err := r.SetSources(repo.SourcesLine(prefix + "/deb.debain.onion/debian")); err != nil {
		t.Fatal(err)
	}
	out := aptFails(t, r)
	if !regexp.MustCompile(`502\s+mirror deb\.debain\.onion:80 unreachable: no such host`).MatchString(out) {
		t.Errorf("mistyped mirror host: apt says\n%s\nwant 502 with the reason (mirror deb.debain.onion:80 unreachable: no such host)", out)
	}

	// A full URL after the daemon's address: apt shows which form to write.
	m := serveMirror(t, base)
	if err := r.SetSources(repo.SourcesLine(prefix + "/http://" + m.Addr() + "/debian")); err != nil {
		t.Fatal(err)
	}
	out = aptFails(t, r)
	if want := "write /" + m.Addr() + "/debian/... instead of /http://" + m.Addr() + "/debian/..."; !strings.Contains(out, "400") || !strings.Contains(out, want) {
		t.Errorf("full URL after the prefix: apt says\n%s\nwant 400 saying %q", out, want)
	}
	if strings.Contains(d.log.String(), `url=http://http/`) {
		t.Error("the daemon read the pasted URL as a mirror named http")
	}

	// An https source in proxy mode: apt asks the daemon for a CONNECT
	// tunnel, which is refused, saying so to apt and in the log.
	rp, err := apttest.NewRoot(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if err := rp.SetSources(repo.SourcesLine("https://deb.debian.org/debian")); err != nil {
		t.Fatal(err)
	}
	rp.SetOption("Acquire::https::Proxy", prefix)
	out = aptFails(t, rp)
	if !strings.Contains(out, "405") || !strings.Contains(out, "/https/deb.debian.org/") {
		t.Errorf("CONNECT: apt says\n%s\nwant the 405 refusal naming the /https/ form", out)
	}
	waitFor(t, "a log line for the refused CONNECT", 5*time.Second, func() (bool, string) {
		l := d.log.String()
		return strings.Contains(l, "CONNECT refused") && strings.Contains(l, "deb.debian.org:443") && strings.Contains(l, "/https/deb.debian.org/"), ""
	})
	status := rawStatusLine(t, d.addr(), "CONNECT deb.debian.org:443 HTTP/1.1\r\nHost: deb.debian.org:443\r\n\r\n")
	if !strings.HasPrefix(status, "HTTP/1.1 405 ") || !strings.Contains(status, "http://"+d.addr()+"/https/deb.debian.org/...") {
		t.Errorf("CONNECT status line %q, want 405 naming the /https/ form", status)
	}

	// A package whose mirror is gone: the reason (the hashed-file path)
	// reaches the status line too.
	aptUpdate(t, d, m, repo)
	m.Close()
	resp, err := client.Get(d.url(m, repo.Package("multi").Filename))
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	t.Logf("package with the mirror gone: %s", resp.Status)
	if resp.StatusCode != http.StatusBadGateway || !strings.Contains(resp.Status, m.Addr()) {
		t.Errorf("package with the mirror gone: status %q, want 502 naming the mirror %s", resp.Status, m.Addr())
	}
}

// rawStatusLine sends req on a new connection and returns the status line.
func rawStatusLine(t *testing.T, addr, req string) string {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, req); err != nil {
		t.Fatal(err)
	}
	l, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		t.Fatalf("reading the status line: %v", err)
	}
	return strings.TrimRight(l, "\r\n")
}
