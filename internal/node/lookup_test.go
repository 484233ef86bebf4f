package node_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/apt-p2p/apt-p2p/internal/apttest"
	"github.com/apt-p2p/apt-p2p/internal/testrepo"
)

type lookupAnswer struct {
	URL   string `json:"url"`
	Site  string `json:"site"`
	Index string `json:"index"`
	Error string `json:"error"`
}

func lookupQ(t *testing.T, d *daemon, q string) lookupAnswer {
	t.Helper()
	code, body, _ := get(t, "http://"+d.addr()+"/lookup?q="+url.QueryEscape(q))
	var a lookupAnswer
	if code != http.StatusOK || json.Unmarshal(body, &a) != nil {
		t.Fatalf("/lookup?q=%s: HTTP %d %s", q, code, body)
	}
	return a
}

// printedURI is the URL apt prints for package name (apt-get download
// --print-uris), after apt-get update on r.
func printedURI(t *testing.T, r *apttest.Root, name string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := r.Update(ctx); err != nil {
		t.Fatal(err)
	}
	out, _, err := r.Run(ctx, "download", "--print-uris", name)
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(out)
	if len(f) == 0 || !strings.HasPrefix(f[0], "'http") {
		t.Fatalf("apt-get download --print-uris %s: %q", name, out)
	}
	return strings.Trim(f[0], "'")
}

// TestLookupForms: lookup reads a file's URL as apt prints it, in URL-prefix
// mode (http and /https/ mirrors) and in proxy mode, and the bare path forms;
// the index key is URL.Site, so an https mirror is found under its own
// (issue 11 item 8: only host/path was understood).
func TestLookupForms(t *testing.T) {
	repo, base := sharedRepo(t)
	m := serveMirror(t, base)
	mt, err := testrepo.ServeMirrorTLS("127.0.0.1:0", base)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { mt.Close() })
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, mt.CertPEM(), 0o644); err != nil {
		t.Fatal(err)
	}
	// One daemon per mirror form: a daemon that indexed a repository through
	// one form does not index it again through the other when the index files
	// come from its cache (issue 11 item 1, not this test's subject).
	d := startDaemon(t, "A", "127.0.0.2", "", "apt_p2p_Khashmir.BOOTSTRAP_NODE=yes")
	dt := startDaemon(t, "T", "127.0.0.3", "", "apt_p2p_Khashmir.BOOTSTRAP_NODE=yes", "UPSTREAM_CA_FILE="+ca)
	p := repo.Package("tiny")
	newRoot := func(sources string) *apttest.Root {
		r, err := apttest.NewRoot(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		if err := r.SetSources(repo.SourcesLine(sources)); err != nil {
			t.Fatal(err)
		}
		return r
	}
	prefixHTTP := printedURI(t, newRoot("http://"+d.addr()+"/"+m.Addr()+"/debian"), p.Name)
	prefixTLS := printedURI(t, newRoot("http://"+dt.addr()+"/https/"+mt.Addr()+"/debian"), p.Name)
	rp := newRoot("http://" + m.Addr() + "/debian")
	rp.SetProxy("http://" + d.addr())
	proxy := printedURI(t, rp, p.Name)

	plain, tls := "http://"+m.Addr()+"/debian/"+p.Filename, "https://"+mt.Addr()+"/debian/"+p.Filename
	for _, c := range []struct {
		d      *daemon
		q, url string
	}{
		{d, prefixHTTP, plain},
		{dt, prefixTLS, tls},
		{d, proxy, plain},
		{dt, tls, tls},
		{d, m.Addr() + "/debian/" + p.Filename, plain},
		{d, "/" + m.Addr() + "/debian/" + p.Filename, plain},
		{d, d.addr() + "/" + m.Addr() + "/debian/" + p.Filename, plain},
		{dt, "https/" + mt.Addr() + "/debian/" + p.Filename, tls},
		{dt, dt.addr() + "/https/" + mt.Addr() + "/debian/" + p.Filename, tls},
	} {
		q, want := c.q, c.url
		a := lookupQ(t, c.d, q)
		if a.Error != "" || a.URL != want || !strings.Contains(a.Index, p.SHA256) {
			t.Errorf("lookup %q: url %q, site %q, index %q, error %q; want %s and its hash", q, a.URL, a.Site, a.Index, a.Error, want)
		}
	}
	if a := lookupQ(t, dt, prefixTLS); a.Site != "https:"+mt.Addr() {
		t.Errorf("lookup of the /https/ form: site %q, want https:%s", a.Site, mt.Addr())
	}
	missing := "http://" + d.addr() + "/" + m.Addr() + "/debian/pool/main/n/nope/nope_1_all.deb"
	if a := lookupQ(t, d, missing); a.Error == "" || a.URL != "http://"+m.Addr()+"/debian/pool/main/n/nope/nope_1_all.deb" {
		t.Errorf("lookup of a file the index lacks: %+v, want an error about %s", a, "http://"+m.Addr()+"/debian/pool/main/n/nope/nope_1_all.deb")
	}
	if a := lookupQ(t, d, "http://"+d.addr()+"/http://"+m.Addr()+"/debian/"+p.Filename); !strings.Contains(a.Error, "instead of") {
		t.Errorf("lookup of a full URL after the prefix: %+v, want the form to write", a)
	}
}
