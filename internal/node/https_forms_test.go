package node_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/apt-p2p/apt-p2p/internal/apttest"
	"github.com/apt-p2p/apt-p2p/internal/testrepo"
)

// TestHTTPAndHTTPSFormsOfOneMirror (issue 11 item 1): one daemon serves one
// repository to real apt-get through its plain http form and through its
// /https/ form, before and after a restart. Every .deb of either form goes
// through the verified download path and into the store, and `lookup` finds
// the https paths. Before the mirror's index key was made in one place, the
// https form's .debs were relayed unverified (and never shared) once the
// index had come through the http form, an https mirror's indexes came back
// under the http key after a restart, and lookup never found https paths.
func TestHTTPAndHTTPSFormsOfOneMirror(t *testing.T) {
	repo, base := sharedRepo(t)
	plain := serveMirror(t, base)
	tlsMirror, err := testrepo.ServeMirrorTLS("127.0.0.1:0", base)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tlsMirror.Close() })
	ca := filepath.Join(t.TempDir(), "mirror-ca.pem")
	if err := os.WriteFile(ca, tlsMirror.CertPEM(), 0o644); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "cache")
	sets := []string{"apt_p2p_Khashmir.BOOTSTRAP_NODE=yes", "UPSTREAM_CA_FILE=" + ca}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	// apt gets names through d in the given form: "http" or "https".
	apt := func(d *daemon, form string, names ...string) {
		t.Helper()
		prefix := "http://" + d.addr() + "/" + plain.Addr() + "/debian"
		if form == "https" {
			prefix = "http://" + d.addr() + "/https/" + tlsMirror.Addr() + "/debian"
		}
		r, err := apttest.NewRoot(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		if err := r.SetSources(repo.SourcesLine(prefix)); err != nil {
			t.Fatal(err)
		}
		if err := r.Update(ctx); err != nil {
			t.Fatalf("%s form: %v", form, err)
		}
		work := t.TempDir()
		if err := r.Download(ctx, work, names...); err != nil {
			t.Fatalf("%s form: %v", form, err)
		}
		if err := apttest.VerifyFiles(repo, work, names...); err != nil {
			t.Errorf("%s form: %v", form, err)
		}
		for _, name := range names {
			p := repo.Package(name)
			waitFor(t, form+" "+name+" verified and stored", 10*time.Second, func() (bool, string) { return stored(t, d, p), "" })
		}
	}

	d := startDaemon(t, "A", "127.0.0.2", dir, sets...)
	apt(d, "http", "tiny")
	apt(d, "https", "multi") // the index is in the store already, from the http form
	d.stop()

	d = startDaemon(t, "A2", "127.0.0.2", dir, sets...)
	apt(d, "https", "large")
	apt(d, "http", "large")

	// lookup by the https form of the URL, as apt prints it.
	p := repo.Package("large")
	q := "http://" + d.addr() + "/https/" + tlsMirror.Addr() + "/debian/" + p.Filename
	code, body, _ := get(t, "http://"+d.addr()+"/lookup?q="+q)
	var res struct {
		Cached bool   `json:"cached"`
		Error  string `json:"error"`
		Site   string `json:"site"`
	}
	if err := json.Unmarshal(body, &res); err != nil || code != 200 || !res.Cached || res.Error != "" || !strings.HasPrefix(res.Site, "https:") {
		t.Errorf("lookup of the https path: HTTP %d %s (%v)", code, body, err)
	}
}
