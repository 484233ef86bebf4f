package node_test

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/apt-p2p/apt-p2p/internal/httpserve"
	"github.com/apt-p2p/apt-p2p/internal/testrepo"
)

// aptListener serves d's front the way the daemon command does for apt:
// LimitListener with the allowed clients trusted and pipelined requests
// read ahead into Prefetch. It returns the address.
func aptListener(t *testing.T, d *daemon) string {
	t.Helper()
	ln, err := net.Listen("tcp", d.ip+":0")
	if err != nil {
		t.Fatal(err)
	}
	cfg := d.fr.ServerConfig("apt-p2p/test", nil)
	srv := httpserve.NewServer(d.fr.Handler, cfg)
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(httpserve.LimitListener(ln, cfg)) }()
	t.Cleanup(func() { _ = srv.Shutdown(); <-done })
	return ln.Addr().String()
}

// TestPipelinedRequestsDownloadTogether: apt pipelines its requests on one
// connection; the download of the next file must not wait until the earlier
// response has been sent (the daemon's window: one ahead). The first file
// comes from a slow mirror: the mirror finishes sending the second before it,
// and apt still gets all three responses, complete and in order.
func TestPipelinedRequestsDownloadTogether(t *testing.T) {
	repo, base := sharedRepo(t)
	m := serveMirror(t, base)
	d := startDaemon(t, "A", "127.0.0.2", "", "apt_p2p_Khashmir.BOOTSTRAP_NODE=yes")
	aptUpdate(t, d, m, repo)
	addr := aptListener(t, d)
	slow, mid, small := repo.Package("large"), repo.Package("multi"), repo.Package("tiny")
	m.SetFault("/debian/"+slow.Filename, testrepo.Fault{Rate: slow.Size}) // about a second
	m.Reset()

	c, err := net.Dial("tcp", addr) // from 127.0.0.1: an allowed client
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(60 * time.Second))
	var reqs strings.Builder
	for _, p := range []*testrepo.Package{slow, mid, small} {
		reqs.WriteString("GET /" + m.Addr() + "/debian/" + p.Filename + " HTTP/1.1\r\nHost: " + addr + "\r\n\r\n")
	}
	if _, err := io.WriteString(c, reqs.String()); err != nil { // one write, as apt does
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	for _, p := range []*testrepo.Package{slow, mid, small} {
		resp, err := http.ReadResponse(br, &http.Request{Method: "GET"})
		if err != nil {
			t.Fatalf("response for %s: %v", p.Name, err)
		}
		body, err := io.ReadAll(resp.Body)
		want, _ := p.Bytes()
		if err != nil || resp.StatusCode != 200 || !bytes.Equal(body, want) {
			t.Fatalf("%s: HTTP %d, %d bytes (want %d), err %v: wrong response or out of order", p.Name, resp.StatusCode, len(body), len(want), err)
		}
	}
	// The mirror's log is in the order its responses ended.
	var order []string
	for _, r := range m.Log() {
		for _, p := range []*testrepo.Package{slow, mid, small} {
			if r.Path == "/debian/"+p.Filename {
				order = append(order, p.Name)
			}
		}
	}
	// (The mirror may see the slow file as several ranges.)
	lastSlow := slices.Index(order, slow.Name)
	for i, n := range order {
		if n == slow.Name {
			lastSlow = i
		}
	}
	if m := slices.Index(order, mid.Name); m < 0 || m > lastSlow {
		t.Errorf("the mirror finished %v; the second file should have been fetched while the slow first one still streamed", order)
	}
}
