package apttest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apt-p2p/apt-p2p/internal/testrepo"
)

// shared is the default repository (every value form, signed, by-hash), built
// once for the package's tests; its parent directory is the mirror root, so the
// repository appears at /debian like a real mirror's.
var shared struct {
	once sync.Once
	repo *testrepo.Repo
	base string
	err  error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if shared.base != "" {
		os.RemoveAll(shared.base)
	}
	os.Exit(code)
}

func sharedRepo(t *testing.T) (*testrepo.Repo, string) {
	t.Helper()
	shared.once.Do(func() {
		shared.base, shared.err = os.MkdirTemp("", "apttest-repo")
		if shared.err != nil {
			return
		}
		start := time.Now()
		shared.repo, shared.err = testrepo.Build(filepath.Join(shared.base, "debian"), testrepo.Options{ByHash: true})
		t.Logf("built repository in %v", time.Since(start))
	})
	if shared.err != nil {
		t.Fatal(shared.err)
	}
	return shared.repo, shared.base
}

func serve(t *testing.T, root string) *testrepo.Mirror {
	t.Helper()
	m, err := testrepo.ServeMirror("127.0.0.1:0", root)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

func newRoot(t *testing.T) *Root {
	t.Helper()
	r, err := NewRoot(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func fileSHA256(t *testing.T, p string) string {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

func checkFiles(t *testing.T, repo *testrepo.Repo, dir string) {
	t.Helper()
	if err := VerifyFiles(repo, dir); err != nil {
		t.Error(err)
	}
}

// checkFetchedOnce asserts the mirror sent every package exactly once, whole.
func checkFetchedOnce(t *testing.T, repo *testrepo.Repo, m *testrepo.Mirror, prefix string) {
	t.Helper()
	for _, p := range repo.Packages {
		up := prefix + "/" + p.Filename
		if n, b := m.Requests(up), m.BytesServed(up); n != 1 || b != p.Size {
			t.Errorf("%s: mirror saw %d requests, sent %d bytes; want 1 request, %d bytes", up, n, b, p.Size)
		}
	}
}

func TestDirectFromMirror(t *testing.T) {
	t.Parallel()
	repo, base := sharedRepo(t)
	m := serve(t, base)
	r := newRoot(t)
	if err := r.SetSources(repo.SourcesLine(m.URL() + "/debian")); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if !repo.Signed {
		t.Fatal("gpg is a test dependency (scripts/install-deps.sh) but the repository is unsigned")
	}

	start := time.Now()
	if err := r.Update(ctx); err != nil {
		t.Fatal(err)
	}
	t.Logf("apt-get update: %v, %d requests", time.Since(start), m.TotalRequests())
	// apt asks for InRelease, and with Acquire-By-Hash fetches Packages by its SHA256.
	var xz testrepo.IndexFile
	for _, f := range repo.Indexes {
		if strings.HasSuffix(f.Name, "Packages.xz") {
			xz = f
		}
	}
	inRelease := "/debian/" + repo.DistPath("InRelease")
	byHash := "/debian/" + repo.DistPath(path.Join(path.Dir(xz.Name), "by-hash/SHA256", xz.SHA256))
	if m.Requests(inRelease) != 1 || m.Requests(byHash) != 1 {
		t.Errorf("update requests: %+v", m.Log())
	}
	if _, err := os.Stat(filepath.Join(r.ListsDir(), "127.0.0.1:"+port(m)+"_debian_dists_stable_InRelease")); err != nil {
		t.Errorf("InRelease not stored under its list name: %v", err)
	}

	m.Reset()
	work := t.TempDir()
	start = time.Now()
	if err := r.Download(ctx, work, repo.Names()...); err != nil {
		t.Fatal(err)
	}
	t.Logf("apt-get download of %d packages: %v over %d connection(s)", len(repo.Packages), time.Since(start), m.Connections())
	checkFiles(t, repo, work)
	checkFetchedOnce(t, repo, m, "/debian")
	// apt sends the first request on a connection alone and pipelines the rest
	// (Acquire::http::Pipeline-Depth, default 10): whatever stands where the
	// mirror is must handle that.
	if m.Pipelined() == 0 {
		t.Errorf("apt did not pipeline: %+v", m.Log())
	}

	// A second update revalidates InRelease with If-Modified-Since and gets 304.
	m.Reset()
	if err := r.Update(ctx); err != nil {
		t.Fatal(err)
	}
	log := m.Log()
	if len(log) != 1 || log[0].Path != inRelease || log[0].Status != http.StatusNotModified || log[0].IfModSince == "" {
		t.Errorf("second update: %+v", log)
	}

	// install --download-only fetches into the archives directory.
	m.Reset()
	if err := r.InstallDownloadOnly(ctx, repo.Names()...); err != nil {
		t.Fatal(err)
	}
	checkFiles(t, repo, r.ArchivesDir())
	checkFetchedOnce(t, repo, m, "/debian")
}

func port(m *testrepo.Mirror) string {
	_, p, _ := net.SplitHostPort(m.Addr())
	return p
}

// standIn plays the daemon's two apt-facing modes without caching: an
// absolute-URI request (proxy mode, no CONNECT) or a /<host:port>/<path>
// request (URL-prefix mode) is forwarded to the mirror. It records the upstream
// URLs it fetched.
type standIn struct {
	tr   *http.Transport
	mu   sync.Mutex
	seen []string
}

func (p *standIn) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var upstream string
	switch {
	case r.URL.IsAbs() && r.URL.Scheme == "http":
		upstream = r.URL.String()
	case !r.URL.IsAbs() && strings.Count(r.URL.Path, "/") >= 2:
		upstream = "http:/" + r.URL.Path // the original's rule (reference §4.2)
	default:
		http.Error(w, "neither an absolute http URI nor /<host>/<path>", http.StatusBadRequest)
		return
	}
	p.mu.Lock()
	p.seen = append(p.seen, upstream)
	p.mu.Unlock()
	out, err := http.NewRequestWithContext(r.Context(), r.Method, upstream, nil)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	for _, h := range []string{"Range", "If-Range", "If-Modified-Since", "User-Agent", "Cache-Control"} {
		if v := r.Header.Get(h); v != "" {
			out.Header.Set(h, v)
		}
	}
	res, err := p.tr.RoundTrip(out)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	defer res.Body.Close()
	for _, h := range []string{"Content-Length", "Content-Range", "Content-Type", "Last-Modified", "Accept-Ranges"} {
		if v := res.Header.Get(h); v != "" {
			w.Header().Set(h, v)
		}
	}
	w.WriteHeader(res.StatusCode)
	io.Copy(w, res.Body)
}

func (p *standIn) forwarded() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.seen...)
}

// startStandIn listens on 127.0.0.2, where the end-to-end test's first daemon lives.
func startStandIn(t *testing.T) (*standIn, string) {
	t.Helper()
	p := &standIn{tr: &http.Transport{}}
	ln, err := net.Listen("tcp", "127.0.0.2:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: p}
	go srv.Serve(ln)
	t.Cleanup(func() {
		srv.Close()
		p.tr.CloseIdleConnections()
	})
	return p, ln.Addr().String()
}

// checkAllVia asserts every request the mirror saw was forwarded by the stand-in.
func checkAllVia(t *testing.T, m *testrepo.Mirror, p *standIn) {
	t.Helper()
	seen := p.forwarded()
	if len(seen) != m.TotalRequests() {
		t.Errorf("stand-in forwarded %d requests, mirror saw %d", len(seen), m.TotalRequests())
	}
	for _, u := range seen {
		if !strings.HasPrefix(u, m.URL()+"/debian/") {
			t.Errorf("stand-in forwarded %s", u)
		}
	}
}

func TestProxyMode(t *testing.T) {
	t.Parallel()
	repo, base := sharedRepo(t)
	m := serve(t, base)
	p, addr := startStandIn(t)
	r := newRoot(t)
	if err := r.SetSources(repo.SourcesLine(m.URL() + "/debian")); err != nil {
		t.Fatal(err)
	}
	r.SetProxy("http://" + addr)
	ctx := context.Background()
	if err := r.Update(ctx); err != nil {
		t.Fatal(err)
	}
	work := t.TempDir()
	if err := r.Download(ctx, work, repo.Names()...); err != nil {
		t.Fatal(err)
	}
	checkFiles(t, repo, work)
	checkFetchedOnce(t, repo, m, "/debian")
	checkAllVia(t, m, p)

	// A dead proxy makes apt fail: it neither ignores the setting nor goes
	// direct. (127.0.0.9: no other test here listens there, so the freed port
	// stays dead.)
	dead, err := net.Listen("tcp", "127.0.0.9:0")
	if err != nil {
		t.Fatal(err)
	}
	deadAddr := dead.Addr().String()
	dead.Close()
	m.Reset()
	r2 := newRoot(t)
	r2.SetSources(repo.SourcesLine(m.URL() + "/debian"))
	r2.SetProxy("http://" + deadAddr)
	err = r2.Update(ctx)
	var re *RunError
	if !errors.As(err, &re) {
		t.Fatalf("update through a dead proxy: %v", err)
	}
	if !strings.Contains(re.Stdout+re.Stderr, deadAddr[strings.LastIndexByte(deadAddr, ':')+1:]) {
		t.Errorf("apt's message does not name the proxy's port:\n%v", err)
	}
	if m.TotalRequests() != 0 {
		t.Errorf("apt went to the mirror directly: %+v", m.Log())
	}
}

// TestPrefixMode checks apt with the URL-prefix sources line the daemon's
// users write, http://<daemon>/<mirror host:port>/debian.
func TestPrefixMode(t *testing.T) {
	t.Parallel()
	repo, base := sharedRepo(t)
	m := serve(t, base)
	p, addr := startStandIn(t)
	r := newRoot(t)
	if err := r.SetSources(repo.SourcesLine("http://" + addr + "/" + m.Addr() + "/debian")); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := r.Update(ctx); err != nil {
		t.Fatal(err)
	}
	// apt names its list files after the whole URL, mirror address included.
	list := strings.ReplaceAll(addr+"/"+m.Addr()+"/debian/dists/stable/InRelease", "/", "_")
	if _, err := os.Stat(filepath.Join(r.ListsDir(), list)); err != nil {
		t.Errorf("list file: %v", err)
	}
	work := t.TempDir()
	if err := r.Download(ctx, work, repo.Names()...); err != nil {
		t.Fatal(err)
	}
	checkFiles(t, repo, work)
	checkFetchedOnce(t, repo, m, "/debian")
	checkAllVia(t, m, p)
}

func TestUnsignedAndWrongKey(t *testing.T) {
	t.Parallel()
	base := t.TempDir()
	specs := []testrepo.PackageSpec{{Name: "u-one", Size: 50 << 10}, {Name: "u-two", Version: "1:2.0-3", Size: 700 << 10}}
	repo, err := testrepo.Build(filepath.Join(base, "debian"), testrepo.Options{Packages: specs, Unsigned: true, Suite: "unstable", Codename: "sid"})
	if err != nil {
		t.Fatal(err)
	}
	m := serve(t, base)
	r := newRoot(t)
	line := repo.SourcesLine(m.URL() + "/debian")
	if !strings.Contains(line, "trusted=yes") {
		t.Fatalf("unsigned repository's line %q", line)
	}
	r.SetSources(line)
	ctx := context.Background()
	if err := r.Update(ctx); err != nil {
		t.Fatal(err)
	}
	work := t.TempDir()
	if err := r.Download(ctx, work, repo.Names()...); err != nil {
		t.Fatal(err)
	}
	// The epoch is not in pool names; apt-get download names the file after the
	// version with ':' escaped, so u-two is u-two_1%3a2.0-3_amd64.deb.
	if _, err := os.Stat(filepath.Join(work, "u-two_1%3a2.0-3_amd64.deb")); err != nil {
		ents, _ := os.ReadDir(work)
		t.Fatalf("apt-get download naming: %v; have %v", err, ents)
	}
	if h := fileSHA256(t, filepath.Join(work, "u-two_1%3a2.0-3_amd64.deb")); h != repo.Package("u-two").SHA256 {
		t.Errorf("u-two differs")
	}

	// A signed repository checked against someone else's key must fail.
	signed, _ := sharedRepo(t)
	if !signed.Signed {
		t.Fatal("shared repository unsigned")
	}
	other, err := testrepo.Build(filepath.Join(t.TempDir(), "debian"), testrepo.Options{Packages: specs[:1], FreshKey: true})
	if err != nil {
		t.Fatal(err)
	}
	m2 := serve(t, filepath.Dir(signed.Dir))
	r2 := newRoot(t)
	r2.SetSources(fmt.Sprintf("deb [signed-by=%s] %s/debian %s main", other.KeyringPath, m2.URL(), signed.Suite))
	err = r2.Update(ctx)
	var re *RunError
	if !errors.As(err, &re) || !strings.Contains(re.Stderr, "NO_PUBKEY") {
		t.Fatalf("update with the wrong key: %v", err)
	}
}

// TestNoInRelease: a mirror without InRelease makes apt fetch Release and
// Release.gpg, and the detached signature verifies.
func TestNoInRelease(t *testing.T) {
	t.Parallel()
	repo, base := sharedRepo(t)
	m := serve(t, base)
	inRelease := "/debian/" + repo.DistPath("InRelease")
	m.SetFault(inRelease, testrepo.Fault{NotFound: true})
	r := newRoot(t)
	r.SetSources(repo.SourcesLine(m.URL() + "/debian"))
	if err := r.Update(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"InRelease", "Release", "Release.gpg"} {
		if n := m.Requests("/debian/" + repo.DistPath(f)); n != 1 {
			t.Errorf("%s requested %d times", f, n)
		}
	}
	if _, err := os.Stat(filepath.Join(r.ListsDir(), "127.0.0.1:"+port(m)+"_debian_dists_stable_Release.gpg")); err != nil {
		t.Error(err)
	}
}

// TestResumeAfterCut shows what a proxy must handle: apt keeps a cut download in
// partial/ and resumes it with Range and If-Range.
func TestResumeAfterCut(t *testing.T) {
	t.Parallel()
	repo, base := sharedRepo(t)
	m := serve(t, base)
	r := newRoot(t)
	r.SetSources(repo.SourcesLine(m.URL() + "/debian"))
	ctx := context.Background()
	if err := r.Update(ctx); err != nil {
		t.Fatal(err)
	}
	p := repo.Package("p2pt-inline")
	up := "/debian/" + p.Filename
	const cut = 700_000
	m.SetFault(up, testrepo.Fault{CloseAfter: cut})
	m.Reset()
	if err := r.InstallDownloadOnly(ctx, p.Name); err == nil {
		t.Fatal("download succeeded although the mirror cut the body")
	}
	partial := filepath.Join(r.ArchivesDir(), "partial", path.Base(p.Filename))
	if st, err := os.Stat(partial); err != nil || st.Size() != cut {
		t.Fatalf("partial file: %v %v", st, err)
	}
	m.ClearFaults()
	m.Reset()
	if err := r.InstallDownloadOnly(ctx, p.Name); err != nil {
		t.Fatal(err)
	}
	log := m.Log()
	if len(log) != 1 || log[0].Range != fmt.Sprintf("bytes=%d-", cut) || log[0].Status != http.StatusPartialContent || log[0].Bytes != p.Size-cut {
		t.Fatalf("resume: %+v", log)
	}
	// If-Range carries the Last-Modified of the cut response, so a changed file
	// would come back whole.
	st, err := os.Stat(p.Path)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := log[0].Header.Get("If-Range"), st.ModTime().UTC().Format(http.TimeFormat); got != want {
		t.Errorf("If-Range %q, want %q", got, want)
	}
	if h := fileSHA256(t, filepath.Join(r.ArchivesDir(), path.Base(p.Filename))); h != p.SHA256 {
		t.Error("resumed file differs")
	}
}

func TestRunTimeoutKillsApt(t *testing.T) {
	t.Parallel()
	repo, base := sharedRepo(t)
	m := serve(t, base)
	m.SetFault("", testrepo.Fault{Delay: time.Minute})
	r := newRoot(t)
	r.SetSources(repo.SourcesLine(m.URL() + "/debian"))
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	start := time.Now()
	err := r.Update(ctx)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("update against a stalled mirror: %v", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("Run returned %v after its 1 s deadline", d)
	}
	// Nothing of apt's process group (its http method) survives.
	r.mu.Lock()
	pgid := r.lastPID
	r.mu.Unlock()
	deadline := time.Now().Add(3 * time.Second)
	for {
		left := groupMembers(t, pgid)
		if len(left) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("processes of apt's group %d left behind: %v", pgid, left)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// groupMembers lists the live processes whose process group is pgid.
func groupMembers(t *testing.T, pgid int) []string {
	t.Helper()
	ents, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue // not a process, or gone
		}
		// pid (comm) state ppid pgrp ...; comm may hold spaces, so cut at the last ')'.
		i := bytes.LastIndexByte(b, ')')
		f := strings.Fields(string(b[i+1:]))
		if len(f) >= 3 && f[0] != "Z" && f[2] == fmt.Sprint(pgid) {
			out = append(out, e.Name()+" "+string(b[:i+1]))
		}
	}
	return out
}

// TestIsolation shows the host's apt configuration does not leak in: the
// effective configuration names only the root's directories and none of the
// hooks or extra index targets the host's apt.conf.d may carry.
func TestIsolation(t *testing.T) {
	t.Parallel()
	r := newRoot(t)
	out, _, err := r.RunTool(context.Background(), "apt-config", "dump")
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"Dir::Etc::Parts", "Dir::Etc::main", "Dir::State::status", "Dir::Etc::sourcelist", "Dir::Cache::Archives"} {
		found := false
		for _, l := range strings.Split(out, "\n") {
			k, v, ok := strings.Cut(l, " ")
			if ok && strings.EqualFold(k, key) {
				found = true
				if !strings.Contains(v, r.Dir) {
					t.Errorf("%s = %s, outside the root", k, v)
				}
			}
		}
		if !found {
			t.Errorf("apt-config dump lacks %s", key)
		}
	}
	for _, leak := range []string{"Post-Invoke", "Pre-Invoke", "DEP-11", "Proxy-Auto-Detect", `"/etc/apt/`} {
		if strings.Contains(out, leak) {
			t.Errorf("host configuration leaked in: %q", leak)
		}
	}
	// A snippet in the root's own apt.conf.d is read.
	if err := os.WriteFile(filepath.Join(r.Dir, "etc/apt/apt.conf.d/50test"), []byte("APTTest::Marker \"root-snippet\";\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out, _, err = r.RunTool(context.Background(), "apt-config", "dump")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains([]byte(out), []byte(`APTTest::Marker "root-snippet";`)) {
		t.Error("the root's apt.conf.d snippet was not read")
	}
}

// TestRebuildSeenByUpdate rebuilds the repository in place at once (within the
// same second, usually) and checks apt's next update sees it: Build keeps index
// mtimes increasing, so If-Modified-Since cannot hide a change.
func TestRebuildSeenByUpdate(t *testing.T) {
	t.Parallel()
	base := t.TempDir()
	dir := filepath.Join(base, "debian")
	v1 := []testrepo.PackageSpec{{Name: "fresh-a", Size: 40 << 10}}
	if _, err := testrepo.Build(dir, testrepo.Options{Packages: v1, ByHash: true}); err != nil {
		t.Fatal(err)
	}
	m := serve(t, base)
	r := newRoot(t)
	ctx := context.Background()
	repo1, err := testrepo.Build(dir, testrepo.Options{Packages: v1, ByHash: true, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	r.SetSources(repo1.SourcesLine(m.URL() + "/debian"))
	if err := r.Update(ctx); err != nil {
		t.Fatal(err)
	}
	repo2, err := testrepo.Build(dir, testrepo.Options{Packages: append(v1, testrepo.PackageSpec{Name: "fresh-b", Size: 40 << 10}), ByHash: true, Seed: 2})
	if err != nil {
		t.Fatal(err)
	}
	// Builds in one process share the signing key, so the sources line stands.
	if repo2.SourcesLine("x") != repo1.SourcesLine("x") {
		t.Errorf("rebuild changed the sources line: %q, %q", repo1.SourcesLine("x"), repo2.SourcesLine("x"))
	}
	m.Reset()
	if err := r.Update(ctx); err != nil {
		t.Fatal(err)
	}
	if log := m.Log(); len(log) < 2 || log[0].Status != http.StatusOK {
		t.Errorf("update after rebuild: %+v", log)
	}
	work := t.TempDir()
	if err := r.Download(ctx, work, "fresh-a", "fresh-b"); err != nil {
		t.Fatal(err)
	}
	if err := VerifyFiles(repo2, work); err != nil {
		t.Error(err)
	}
}

// TestHTTPSMirror runs apt against the TLS mirror, trusting its certificate
// through Acquire::https::CaInfo: the setup for testing the daemon's HTTPS
// upstreams.
func TestHTTPSMirror(t *testing.T) {
	t.Parallel()
	repo, base := sharedRepo(t)
	m, err := testrepo.ServeMirrorTLS("127.0.0.1:0", base)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	ca := filepath.Join(t.TempDir(), "mirror.pem")
	if err := os.WriteFile(ca, m.CertPEM(), 0o644); err != nil {
		t.Fatal(err)
	}
	r := newRoot(t)
	r.SetSources(repo.SourcesLine(m.URL() + "/debian"))
	r.SetOption("Acquire::https::CaInfo", ca)
	ctx := context.Background()
	if err := r.Update(ctx); err != nil {
		t.Fatal(err)
	}
	work := t.TempDir()
	names := []string{"p2pt-tiny", "p2pt-inline"}
	if err := r.Download(ctx, work, names...); err != nil {
		t.Fatal(err)
	}
	if err := VerifyFiles(repo, work, names...); err != nil {
		t.Error(err)
	}

	// Without the CA apt refuses the mirror.
	r2 := newRoot(t)
	r2.SetSources(repo.SourcesLine(m.URL() + "/debian"))
	if err := r2.Update(ctx); err == nil {
		t.Error("apt accepted an untrusted certificate")
	}
}
