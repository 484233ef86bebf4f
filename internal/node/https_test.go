package node_test

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/apt-p2p/apt-p2p/internal/apttest"
	"github.com/apt-p2p/apt-p2p/internal/testrepo"
)

// TestHTTPSMirror: apt talks plain HTTP to the daemon in the /https/<host:port>/
// prefix form (proxy mode cannot carry https: apt would CONNECT), and the daemon
// fetches over TLS, trusting the mirror's CA through UPSTREAM_CA_FILE; without
// it the mirror is refused with a 502 that says why.
func TestHTTPSMirror(t *testing.T) {
	repo, base := sharedRepo(t)
	m, err := testrepo.ServeMirrorTLS("127.0.0.1:0", base)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	ca := filepath.Join(t.TempDir(), "mirror-ca.pem")
	if err := os.WriteFile(ca, m.CertPEM(), 0o644); err != nil {
		t.Fatal(err)
	}
	prefix := func(d *daemon) string { return "http://" + d.addr() + "/https/" + m.Addr() + "/debian" }

	untrusting := startDaemon(t, "untrusting", "127.0.0.3", "", "apt_p2p_Khashmir.BOOTSTRAP_NODE=yes")
	code, body, _ := get(t, prefix(untrusting)+"/"+repo.DistPath("Release"))
	if code != http.StatusBadGateway || !strings.Contains(string(body), "certificate") {
		t.Errorf("untrusted mirror certificate: HTTP %d %q, want 502 naming the certificate problem", code, body)
	}

	d := startDaemon(t, "A", "127.0.0.2", "", "apt_p2p_Khashmir.BOOTSTRAP_NODE=yes", "UPSTREAM_CA_FILE="+ca)
	r, err := apttest.NewRoot(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if err := r.SetSources(repo.SourcesLine(prefix(d))); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := r.Update(ctx); err != nil {
		t.Fatal(err)
	}
	work := t.TempDir()
	names := []string{"tiny", "multi"}
	if err := r.Download(ctx, work, names...); err != nil {
		t.Fatal(err)
	}
	if err := apttest.VerifyFiles(repo, work, names...); err != nil {
		t.Error(err)
	}
	for _, name := range names {
		p := repo.Package(name)
		if got := m.BytesServed("/debian/" + p.Filename); got != p.Size {
			t.Errorf("%s: the TLS mirror sent %d bytes, want %d", name, got, p.Size)
		}
		// The https mirror's files are hashed and stored like any other.
		waitFor(t, name+" stored", 10*time.Second, func() (bool, string) { return stored(t, d, p), "" })
	}

	bad := filepath.Join(t.TempDir(), "bad.pem")
	if err := os.WriteFile(bad, []byte("not a certificate\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := startNodeErr(t, "UPSTREAM_CA_FILE="+bad); err == nil || !strings.Contains(err.Error(), "UPSTREAM_CA_FILE") {
		t.Errorf("a CA file without certificates: %v, want an error naming UPSTREAM_CA_FILE", err)
	}
}
