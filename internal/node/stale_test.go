package node_test

import (
	"bytes"
	"context"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/apt-p2p/apt-p2p/internal/apttest"
	"github.com/apt-p2p/apt-p2p/internal/testrepo"
)

// TestReusedName: the repository is rebuilt in place with new content under
// the same file name (same package name and version, a new Packages entry).
// After apt-get update through the daemon, apt gets the NEW bytes: files are
// keyed by the hash the current index gives, never by path. And a mirror that
// still serves the old file under that name never gets it to apt as complete.
func TestReusedName(t *testing.T) {
	base := t.TempDir()
	dir := filepath.Join(base, "debian")
	specs := []testrepo.PackageSpec{{Name: "reused", Size: 600 << 10}, {Name: "reused-tiny", Size: 40 << 10}}
	v1, err := testrepo.Build(dir, testrepo.Options{Packages: specs, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	// Keep the first build's files to serve them stale later.
	old := map[string][]byte{}
	for _, p := range v1.Packages {
		b, err := p.Bytes()
		if err != nil {
			t.Fatal(err)
		}
		old[p.Name] = b
	}
	m := serveMirror(t, base)
	d := startDaemon(t, "A", "127.0.0.2", "", "apt_p2p_Khashmir.BOOTSTRAP_NODE=yes")
	r, err := apttest.NewRoot(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if err := r.SetSources(v1.SourcesLine("http://" + d.addr() + "/" + m.Addr() + "/debian")); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	names := []string{"reused", "reused-tiny"}
	download := func(repo *testrepo.Repo) {
		t.Helper()
		if err := r.Update(ctx); err != nil {
			t.Fatal(err)
		}
		work := t.TempDir()
		if err := r.Download(ctx, work, names...); err != nil {
			t.Fatal(err)
		}
		if err := apttest.VerifyFiles(repo, work, names...); err != nil {
			t.Fatal(err)
		}
	}
	download(v1)

	// The daemon may answer apt's max-age=0 with a copy validated within the
	// last second (HTTP ages are whole seconds); a real mirror changes less often.
	time.Sleep(time.Second)
	v2, err := testrepo.Build(dir, testrepo.Options{Packages: specs, Seed: 2})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range v2.Packages {
		if p.Filename != v1.Package(p.Name).Filename || p.SHA256 == v1.Package(p.Name).SHA256 {
			t.Fatalf("rebuild did not reuse the name with new content: %+v", p)
		}
	}
	download(v2)
	for _, p := range v2.Packages {
		// apt has every byte once the hash matched; the commit follows.
		waitFor(t, p.Name+"'s new content in the store", 10*time.Second, func() (bool, string) { return stored(t, d, &p), "" })
	}

	// Rebuild again; the mirror's index is new but it keeps serving the
	// first build's files under the reused names (a half-synced mirror).
	time.Sleep(time.Second)
	v3, err := testrepo.Build(dir, testrepo.Options{Packages: specs, Seed: 3})
	if err != nil {
		t.Fatal(err)
	}
	stale := t.TempDir()
	for _, p := range v3.Packages {
		f := filepath.Join(stale, p.Name+".deb")
		if err := os.WriteFile(f, old[p.Name], 0o644); err != nil {
			t.Fatal(err)
		}
		m.SetFault("/debian/"+p.Filename, testrepo.Fault{Substitute: f})
	}
	if err := r.Update(ctx); err != nil {
		t.Fatal(err)
	}
	for _, p := range v3.Packages {
		code, body, err := getLenient(t, d.url(m, p.Filename))
		if err == nil && code == http.StatusOK && bytes.Equal(body, old[p.Name]) {
			t.Errorf("%s: the daemon passed the stale file on as complete", p.Name)
		}
		want, _ := p.Bytes()
		if bytes.Equal(body, want) {
			t.Errorf("%s: got the new bytes from a mirror that only has the old ones?", p.Name)
		}
		t.Logf("%s: stale mirror → HTTP %d, %d of %d bytes, err %v", p.Name, code, len(body), p.Size, err)
	}
	// Once the mirror has the new files, the next request gets them.
	m.ClearFaults()
	for _, p := range v3.Packages {
		wantPackage(t, d, m, &p)
	}
}
