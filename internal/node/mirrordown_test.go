package node_test

import (
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestMirrorDown: when the mirror goes away, an index file the daemon has is
// served stale (with a Warning) rather than failing apt-get update, and a
// package it does not have fails with a status and a message, quickly.
func TestMirrorDown(t *testing.T) {
	repo, base := sharedRepo(t)
	m := serveMirror(t, base)
	d := startDaemon(t, "A", "127.0.0.2", "", "apt_p2p_Khashmir.BOOTSTRAP_NODE=yes")
	aptUpdate(t, d, m, repo)
	rel := repo.DistPath("Release")
	m.Close()
	time.Sleep(1100 * time.Millisecond) // past the one second max-age=0 allows

	code, body, hdr := get(t, d.url(m, rel), "Cache-Control", "max-age=0")
	if code != http.StatusOK || !strings.Contains(hdr.Get("Warning"), "110") || len(body) == 0 {
		t.Errorf("Release with the mirror down: HTTP %d, Warning %q, %d bytes; want the stale copy with Warning 110", code, hdr.Get("Warning"), len(body))
	}
	p := repo.Package("multi")
	t0 := time.Now()
	code, body, err := getLenient(t, d.url(m, p.Filename))
	took := time.Since(t0)
	t.Logf("package with the mirror down: HTTP %d, %d bytes, err %v, %q, after %v", code, len(body), err, strings.TrimSpace(string(body)), took.Round(time.Millisecond))
	if code == http.StatusOK && err == nil && int64(len(body)) == p.Size {
		t.Error("a package the daemon does not have arrived complete with the mirror down")
	}
	if code != http.StatusBadGateway || !strings.Contains(string(body), m.Addr()) {
		t.Errorf("package with the mirror down: HTTP %d %q; want 502 naming the mirror", code, body)
	}
	if took > 5*time.Second {
		t.Errorf("package with the mirror down took %v to fail", took)
	}
	waitLog := func(want string) {
		waitFor(t, "a log line saying "+want, 5*time.Second, func() (bool, string) { return strings.Contains(d.log.String(), want), "" })
	}
	waitLog("download failed")
}
