package node_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/apt-p2p/apt-p2p/internal/apttest"
	"github.com/apt-p2p/apt-p2p/internal/testrepo"
)

// TestEscapedNames: file names that need escaping ('+', '~', an epoch) are
// found in the index whichever way the URL spells them, stored once, and
// served from the cache to a differently escaped request (§8.2 item 10: the
// original built cache paths from the raw URL and looked them up decoded).
func TestEscapedNames(t *testing.T) {
	base := t.TempDir()
	repo, err := testrepo.Build(filepath.Join(base, "debian"), testrepo.Options{
		Packages: []testrepo.PackageSpec{{Name: "libg++x", Version: "1:2.0+dfsg~rc1-1", Size: 600 << 10}},
	})
	if err != nil {
		t.Fatal(err)
	}
	m := serveMirror(t, base)
	d := startDaemon(t, "A", "127.0.0.2", "", "apt_p2p_Khashmir.BOOTSTRAP_NODE=yes")
	p := repo.Package("libg++x")
	if !strings.ContainsAny(p.Filename, "+~") {
		t.Fatalf("file name %q needs no escaping", p.Filename)
	}
	r, err := apttest.NewRoot(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if err := r.SetSources(repo.SourcesLine("http://" + d.addr() + "/" + m.Addr() + "/debian")); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := r.Update(ctx); err != nil {
		t.Fatal(err)
	}
	work := t.TempDir()
	if err := r.Download(ctx, work, p.Name); err != nil {
		t.Fatal(err)
	}
	if err := apttest.VerifyFiles(repo, work, p.Name); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the file stored under its hash", 10*time.Second, func() (bool, string) { return stored(t, d, p), "" })

	m.Reset()
	escaped := strings.NewReplacer("+", "%2B", "~", "%7e").Replace(p.Filename)
	for _, rel := range []string{p.Filename, escaped} {
		wantPackage(t, d, m, &testrepo.Package{Name: p.Name, Filename: rel, Path: p.Path, Size: p.Size})
	}
	if n := m.TotalRequests(); n != 0 {
		t.Errorf("differently escaped requests for a cached file went to the mirror: %+v", m.Log())
	}
}
