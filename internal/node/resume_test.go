package node_test

import (
	"fmt"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/apt-p2p/apt-p2p/internal/testrepo"
)

// TestResumeAfterRestart (issue 12 item 4): a daemon stopped in the middle of
// a large download keeps what it has; after the restart, apt's retry gets the
// whole file and the mirror sends only what was missing.
func TestResumeAfterRestart(t *testing.T) {
	repo, base := sharedRepo(t)
	m := serveMirror(t, base)
	p := repo.Package("large")
	dir := filepath.Join(t.TempDir(), "cache")
	d := startDaemon(t, "A", "127.0.0.2", dir, "apt_p2p_Khashmir.BOOTSTRAP_NODE=yes")
	aptUpdate(t, d, m, repo)
	// A slow mirror (a quarter of the file per second), so the download is
	// still running when the daemon stops.
	m.SetFault("/debian/"+p.Filename, testrepo.Fault{Rate: p.Size / 4})
	go getLenient(t, d.url(m, p.Filename)) // cut short when the daemon stops
	var had int64
	waitFor(t, "half the file", 30*time.Second, func() (bool, string) {
		act := d.n.ActiveDownloads()
		if len(act) == 1 {
			had = act[0].Done
		}
		return had > p.Size/2, fmt.Sprintf("%+v", act)
	})
	d.ln.kill() // apt's connection goes first, so the stop does not wait for the download
	d.stop()
	// The mirror counts a request's bytes when its handler returns, a moment
	// after the client went: wait until the count stands still.
	sent, same := int64(-1), 0
	waitFor(t, "the mirror's count after the stop", 10*time.Second, func() (bool, string) {
		if now := m.BytesServed("/debian/" + p.Filename); now != sent {
			sent, same = now, 0
		} else {
			same++
		}
		return same >= 5, "" // unchanged over five polls (waitFor's 20 ms apart)
	})
	if sent >= p.Size {
		t.Fatalf("not the case under test: the mirror sent the whole file (%d bytes) before the stop", sent)
	}

	m.SetFault("/debian/"+p.Filename, testrepo.Fault{})
	d = startDaemon(t, "A2", "127.0.0.2", dir, "apt_p2p_Khashmir.BOOTSTRAP_NODE=yes")
	wantPackage(t, d, m, p)
	again := m.BytesServed("/debian/"+p.Filename) - sent
	t.Logf("%d of %d bytes before the stop (the mirror had sent %d), %d after the restart", had, p.Size, sent, again)
	if again > p.Size-had+512<<10 {
		t.Errorf("after the restart the mirror sent %d bytes; %d were missing", again, p.Size-had)
	}
	if code, _, _ := get(t, d.url(m, p.Filename)); code != http.StatusOK {
		t.Errorf("stored copy: HTTP %d", code)
	}
}
