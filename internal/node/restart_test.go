package node_test

import (
	"strings"
	"testing"
)

// TestRestart: a new node on the same cache directory rebuilds its index from
// the cached index files (apt's requests for packages resolve with no new
// apt-get update), serves the cached files without a byte from the mirror, and
// keeps the all-time counters.
func TestRestart(t *testing.T) {
	repo, base := sharedRepo(t)
	m := serveMirror(t, base)
	dir := t.TempDir()
	a := startDaemon(t, "A", "127.0.0.2", dir, "apt_p2p_Khashmir.BOOTSTRAP_NODE=yes")
	aptUpdate(t, a, m, repo)
	for _, name := range []string{"tiny", "multi"} {
		wantPackage(t, a, m, repo.Package(name))
	}
	for _, name := range []string{"tiny", "multi"} {
		p := repo.Package(name)
		waitFor(t, name+" stored", 10e9, func() (bool, string) { return stored(t, a, p), "" })
	}
	before := a.n.Stats.Total()
	a.stop()

	m.Reset()
	b := startDaemon(t, "A2", "127.0.0.2", dir, "apt_p2p_Khashmir.BOOTSTRAP_NODE=yes")
	for _, name := range []string{"tiny", "multi"} {
		p := repo.Package(name)
		if !indexed(b, m, p) {
			t.Errorf("%s: not in the rebuilt index", name)
		}
		wantPackage(t, b, m, p)
	}
	if n, r := m.TotalBytes(), m.TotalRequests(); n != 0 || r != 0 {
		t.Errorf("after the restart the mirror got %d requests and sent %d bytes, want none: %+v", r, n, m.Log())
	}
	if !strings.Contains(b.log.String(), "source=cache") {
		t.Error("request log does not say the bytes came from the cache")
	}
	after := b.n.Stats.Total()
	if after.Mirror < before.Mirror || after.Requests < before.Requests+2 || after.Cache < before.Cache+repo.Package("multi").Size {
		t.Errorf("all-time counters: before %+v, after %+v", before, after)
	}
	if before.Mirror == 0 || before.Requests == 0 {
		t.Errorf("first session counted nothing: %+v", before)
	}
}
