package node_test

import (
	"bytes"
	"context"
	"encoding/hex"
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/apt-p2p/apt-p2p/internal/apttest"
	"github.com/apt-p2p/apt-p2p/internal/httpserve"
	"github.com/apt-p2p/apt-p2p/internal/testrepo"
)

// rot flips one byte of the stored copy at off in place and restores its modification time:
// bit rot leaves size and mtime as they were.
func rot(t *testing.T, path string, off int64) {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 1)
	if _, err := f.ReadAt(b, off); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0x01
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if err := os.Chtimes(path, fi.ModTime(), fi.ModTime()); err != nil {
		t.Fatal(err)
	}
}

// peerURL is the /~/ URL other peers fetch p from d with (by its SHA-256).
func peerURL(t *testing.T, d *daemon, p *testrepo.Package) string {
	t.Helper()
	h, err := hex.DecodeString(p.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	return "http://" + d.addr() + string(httpserve.QuotePlus([]byte("/~/"), h))
}

// noWholeWrongBody fails if a response is a complete, full-length body that is not want.
func noWholeWrongBody(t *testing.T, who string, code int, body []byte, err error, want []byte) {
	t.Helper()
	if err == nil && code/100 == 2 && len(body) == len(want) && !bytes.Equal(body, want) {
		t.Fatalf("%s: HTTP %d with a full-length body that is not the file", who, code)
	}
}

// aptFetch runs apt-get update and apt-get download of names through d in a fresh apt root,
// and checks the files apt kept.
func aptFetch(t *testing.T, d *daemon, m *testrepo.Mirror, repo *testrepo.Repo, names ...string) error {
	t.Helper()
	r, err := apttest.NewRoot(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if err := r.SetSources(repo.SourcesLine("http://" + d.addr() + "/" + m.Addr() + "/debian")); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := r.Update(ctx); err != nil {
		return err
	}
	work := t.TempDir()
	if err := r.Download(ctx, work, names...); err != nil {
		return err
	}
	return apttest.VerifyFiles(repo, work, names...)
}

// TestRotWhileStopped (issue 11 item 3): bytes of cached files flipped while the daemon was
// stopped, their mtime restored, are found before the files are served again: a peer asking
// over /~/ never gets a full-length wrong body, real apt-get gets the right files (fetched
// again from the mirror), and the rotten copies are replaced by good ones.
func TestRotWhileStopped(t *testing.T) {
	repo, base := sharedRepo(t)
	m := serveMirror(t, base)
	dir := t.TempDir()
	names := []string{"tiny", "multi"}
	a := startDaemon(t, "A", "127.0.0.2", dir, "apt_p2p_Khashmir.BOOTSTRAP_NODE=yes")
	if err := aptFetch(t, a, m, repo, names...); err != nil {
		t.Fatal(err)
	}
	for _, name := range names {
		p := repo.Package(name)
		waitFor(t, name+" stored", 10*time.Second, func() (bool, string) { return stored(t, a, p), "" })
	}
	a.stop()
	for _, name := range names {
		p := repo.Package(name)
		rot(t, dataFile(a, p), p.Size/3)
	}

	m.Reset()
	a = startDaemon(t, "A2", "127.0.0.2", dir, "apt_p2p_Khashmir.BOOTSTRAP_NODE=yes")
	// apt asks for the single-piece file: it must get the right bytes (apt checks the
	// hashes itself), fetched again from the mirror.
	if err := aptFetch(t, a, m, repo, "tiny"); err != nil {
		t.Errorf("apt-get through a daemon with a rotten cached copy: %v", err)
	}
	// A peer asks for the multi-piece file, which apt has not asked for since the restart.
	multi := repo.Package("multi")
	want, _ := multi.Bytes()
	code, body, err := getLenient(t, peerURL(t, a, multi))
	noWholeWrongBody(t, "peer request for the rotten copy", code, body, err, want)
	if code == http.StatusOK && !bytes.Equal(body, want) {
		t.Fatalf("peer request: HTTP 200 with %d wrong bytes", len(body))
	}
	if stored(t, a, multi) {
		t.Error("the rotten copy is still in the store after a peer asked for it")
	}
	// Then apt for both.
	if err := aptFetch(t, a, m, repo, names...); err != nil {
		t.Fatalf("apt-get after the peer request: %v", err)
	}
	for _, name := range names {
		p := repo.Package(name)
		if n := m.BytesServed("/debian/" + p.Filename); n != p.Size {
			t.Errorf("%s: the mirror sent %d bytes after the rot, want the whole file (%d) fetched again once", name, n, p.Size)
		}
		waitFor(t, name+" stored again", 10*time.Second, func() (bool, string) { return stored(t, a, p), "" })
		good, _ := p.Bytes()
		got, err := os.ReadFile(dataFile(a, p))
		if err != nil || !bytes.Equal(got, good) {
			t.Errorf("%s: the stored copy is not the good one again (%v)", name, err)
		}
	}
	if n := a.n.Stats.Dropped.Load(); n != int64(len(names)) {
		t.Errorf("%d copies dropped, want %d", n, len(names))
	}
	// And peers get the good copy now.
	code, body, _ = get(t, peerURL(t, a, multi))
	if code != http.StatusOK || !bytes.Equal(body, want) {
		t.Errorf("peer request after the refetch: HTTP %d, %d bytes", code, len(body))
	}
}

// TestRotWhileRunning (issue 11 item 3): a byte flipped, mtime restored, in a cached file the
// daemon has already served (its descriptor is cached, so no open or stat would notice) is
// found by the background scrub; the copy is dropped and no longer served: a peer gets a 404
// and apt the right bytes from the mirror.
func TestRotWhileRunning(t *testing.T) {
	repo, base := sharedRepo(t)
	m := serveMirror(t, base)
	a := startDaemon(t, "A", "127.0.0.2", "", "apt_p2p_Khashmir.BOOTSTRAP_NODE=yes",
		"SCRUB_RATE=64M", "SCRUB_INTERVAL=1s")
	aptUpdate(t, a, m, repo)
	p := repo.Package("multi")
	want, _ := p.Bytes()
	wantPackage(t, a, m, p)
	waitFor(t, "multi stored", 10*time.Second, func() (bool, string) { return stored(t, a, p), "" })
	if code, body, _ := get(t, peerURL(t, a, p)); code != http.StatusOK || !bytes.Equal(body, want) {
		t.Fatalf("peer request before the rot: HTTP %d", code)
	}
	rot(t, dataFile(a, p), p.Size/2)
	waitFor(t, "the scrub to drop the rotten copy", 30*time.Second, func() (bool, string) {
		return !stored(t, a, p), ""
	})
	code, body, err := getLenient(t, peerURL(t, a, p))
	noWholeWrongBody(t, "peer request after the scrub", code, body, err, want)
	if code != http.StatusNotFound {
		t.Errorf("peer request for a dropped copy: HTTP %d, want 404", code)
	}
	m.Reset()
	wantPackage(t, a, m, p)
	if n := m.BytesServed("/debian/" + p.Filename); n != p.Size {
		t.Errorf("the mirror sent %d bytes, want the whole file fetched again", n)
	}
}
