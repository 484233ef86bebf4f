package node_test

import (
	"bytes"
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/apt-p2p/apt-p2p/internal/aptindex"
	"github.com/apt-p2p/apt-p2p/internal/config"
	"github.com/apt-p2p/apt-p2p/internal/front"
	"github.com/apt-p2p/apt-p2p/internal/httpserve"
	"github.com/apt-p2p/apt-p2p/internal/node"
	"github.com/apt-p2p/apt-p2p/internal/proctest"
	"github.com/apt-p2p/apt-p2p/internal/testrepo"
)

// The shared repository: a single-piece, a few-piece and a many-piece .deb,
// built once for the package's tests. Its parent directory is the mirror
// root, so it appears at /debian like a real mirror's.
var shared struct {
	once sync.Once
	repo *testrepo.Repo
	base string
	err  error
}

func largeSize() int64 {
	if raceEnabled {
		return 6 << 20
	}
	return 16 << 20
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
		shared.base, shared.err = os.MkdirTemp("", "node-test-repo")
		if shared.err != nil {
			return
		}
		shared.repo, shared.err = testrepo.Build(filepath.Join(shared.base, "debian"), testrepo.Options{
			Packages: []testrepo.PackageSpec{
				{Name: "tiny", Size: 40 << 10},
				{Name: "multi", Size: 3 << 20},
				{Name: "large", Size: largeSize()},
			},
		})
	})
	if shared.err != nil {
		t.Fatal(shared.err)
	}
	return shared.repo, shared.base
}

func serveMirror(t *testing.T, root string) *testrepo.Mirror {
	t.Helper()
	m, err := testrepo.ServeMirror("127.0.0.1:0", root)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

// newerOnMirror moves the modification time of every file under dir/dists
// two seconds ahead: the mirror's Last-Modified has whole seconds, and a
// repository rebuilt within the second it was built in would look unchanged
// (304) to the daemon's revalidation. Tests call it after a rebuild instead
// of sleeping past the second.
func newerOnMirror(t *testing.T, dir string) {
	t.Helper()
	later := time.Now().Add(2 * time.Second)
	err := filepath.WalkDir(filepath.Join(dir, "dists"), func(p string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() {
			return err
		}
		return os.Chtimes(p, later, later)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// killableListener remembers its connections so a test can make the peer
// "die": close the listener and every open connection at once.
type killableListener struct {
	net.Listener
	mu    sync.Mutex
	conns map[net.Conn]struct{}
	dead  bool
}

func (l *killableListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.dead {
		c.Close()
		return nil, net.ErrClosed
	}
	l.conns[c] = struct{}{}
	return c, nil
}

func (l *killableListener) kill() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.dead = true
	l.Listener.Close()
	for c := range l.conns {
		c.Close()
	}
}

// daemon is one in-process apt-p2p: node, front and HTTP server on a 127.0.0.x address.
type daemon struct {
	t      *testing.T
	name   string
	ip     string
	port   int
	udp    int
	dir    string
	cfg    *config.Config
	n      *node.Node
	fr     *front.Server
	srv    *fasthttp.Server
	ln     *killableListener
	log    *proctest.LockedBuffer
	served chan struct{}
	once   sync.Once
}

func freeUDP(t *testing.T, ip string) int {
	t.Helper()
	c, err := net.ListenPacket("udp", ip+":0")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).Port
}

// startDaemon starts a daemon on ip with its cache in dir (a new temporary
// directory if empty). sets are config overrides (NAME=value).
func startDaemon(t *testing.T, name, ip, dir string, sets ...string) *daemon {
	t.Helper()
	return startDaemonWith(t, name, ip, dir, nil, sets...)
}

// startDaemonWith is startDaemon with options for node.New.
func startDaemonWith(t *testing.T, name, ip, dir string, opts []node.Option, sets ...string) *daemon {
	t.Helper()
	if dir == "" {
		dir = filepath.Join(t.TempDir(), "cache")
	}
	tcp, err := net.Listen("tcp", ip+":0")
	if err != nil {
		t.Fatal(err)
	}
	d := &daemon{t: t, name: name, ip: ip, dir: dir, log: &proctest.LockedBuffer{}, served: make(chan struct{}),
		port: tcp.Addr().(*net.TCPAddr).Port, udp: freeUDP(t, ip)}
	d.ln = &killableListener{Listener: tcp, conns: map[net.Conn]struct{}{}}
	base := []string{
		"PORT=" + strconv.Itoa(d.port), "BIND_ADDRESS=" + ip, "CACHE_DIR=" + dir, "LOCAL_OK=yes", "USERNAME=",
		"LOG_LEVEL=debug", "apt_p2p_Khashmir.PORT=" + strconv.Itoa(d.udp), "apt_p2p_Khashmir.CHECKPOINT_INTERVAL=30s",
	}
	d.cfg, _, err = config.Load(nil, append(base, sets...)...)
	if err != nil {
		tcp.Close()
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(d.log, &slog.HandlerOptions{Level: slog.LevelDebug})).With("daemon", name)
	d.n, err = node.New(d.cfg, log, opts...)
	if err != nil {
		tcp.Close()
		t.Fatal(err)
	}
	d.fr = front.New(d.n, log.With("part", "http"))
	scfg := d.fr.ServerConfig("apt-p2p/test", log) // as cmd/apt-p2p
	d.srv = httpserve.NewServer(d.fr.Handler, scfg)
	go func() {
		defer close(d.served)
		_ = d.srv.Serve(httpserve.LimitListener(d.ln, scfg))
	}()
	t.Cleanup(func() {
		d.stop()
		if t.Failed() || os.Getenv("NODE_TEST_LOG") != "" {
			t.Logf("--- log of daemon %s ---\n%s", name, proctest.Tail(d.log.String(), 150))
		}
	})
	return d
}

// stop shuts the daemon down as the command does: HTTP server, front, node.
func (d *daemon) stop() {
	d.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = d.srv.ShutdownWithContext(ctx)
		d.ln.kill()
		<-d.served
		d.fr.Close()
		if err := d.n.Close(); err != nil {
			d.t.Errorf("closing %s: %v", d.name, err)
		}
	})
}

func (d *daemon) addr() string    { return net.JoinHostPort(d.ip, strconv.Itoa(d.port)) }
func (d *daemon) dhtAddr() string { return net.JoinHostPort(d.ip, strconv.Itoa(d.udp)) }

// url is the prefix-mode URL of a path in mirror m's /debian.
func (d *daemon) url(m *testrepo.Mirror, rel string) string {
	return "http://" + d.addr() + "/" + m.Addr() + "/debian/" + rel
}

var client = &http.Client{
	Timeout:   60 * time.Second,
	Transport: &http.Transport{DisableCompression: true, MaxIdleConnsPerHost: 64, Proxy: nil},
}

// get fetches u and returns status and body.
func get(t *testing.T, u string, hdr ...string) (int, []byte, http.Header) {
	t.Helper()
	req, err := http.NewRequest("GET", u, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: body: %v", u, err)
	}
	return resp.StatusCode, b, resp.Header
}

// aptUpdate does what apt-get update does that matters to the daemon: the
// Release file, then the Packages index it lists.
func aptUpdate(t *testing.T, d *daemon, m *testrepo.Mirror, repo *testrepo.Repo) {
	t.Helper()
	for _, rel := range []string{repo.DistPath("Release"), repo.DistPath(repo.Component + "/binary-" + repo.Arch + "/Packages.xz")} {
		code, _, _ := get(t, d.url(m, rel))
		if code != http.StatusOK {
			t.Fatalf("%s: %s: HTTP %d", d.name, rel, code)
		}
	}
}

// wantPackage fetches p through d and checks the bytes.
func wantPackage(t *testing.T, d *daemon, m *testrepo.Mirror, p *testrepo.Package) {
	t.Helper()
	want, err := p.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	code, body, _ := get(t, d.url(m, p.Filename))
	if code != http.StatusOK || !bytes.Equal(body, want) {
		t.Fatalf("%s: %s: HTTP %d, %d bytes (want %d), equal %v", d.name, p.Name, code, len(body), len(want), bytes.Equal(body, want))
	}
}

// waitFor polls cond until it holds or d passes.
func waitFor(t *testing.T, what string, d time.Duration, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		ok, state := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s: %s", what, state)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// pair starts A (bootstrap node) and B (bootstrapping from A), both joined.
func pair(t *testing.T, setsA, setsB []string) (a, b *daemon) {
	t.Helper()
	a = startDaemon(t, "A", "127.0.0.2", "", append([]string{"apt_p2p_Khashmir.BOOTSTRAP_NODE=yes"}, setsA...)...)
	b = startDaemon(t, "B", "127.0.0.3", "", append([]string{"apt_p2p_Khashmir.BOOTSTRAP=" + a.dhtAddr()}, setsB...)...)
	for _, d := range []*daemon{a, b} {
		waitFor(t, d.name+" to join", 30*time.Second, func() (bool, string) {
			st := d.n.DHT().Stats()
			return st.Joined && st.Nodes > 0, fmt.Sprintf("%+v", st)
		})
	}
	return a, b
}

// stored reports whether d's store holds p (by its SHA-256).
func stored(t *testing.T, d *daemon, p *testrepo.Package) bool {
	t.Helper()
	h, err := hex.DecodeString(p.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	_, ok := d.n.Store().LookupHash(h)
	return ok
}

// indexed reports whether d's index knows p's hash.
func indexed(d *daemon, m *testrepo.Mirror, p *testrepo.Package) bool {
	site := m.Addr()
	base, path := aptindex.SplitPath(site, "/debian/"+p.Filename, d.n.Index().BaseDirs)
	ds, ok := d.n.Index().Lookup(site, base, path)
	return ok && ds.Size == p.Size
}

func readRepoFile(repo *testrepo.Repo, rel string) ([]byte, error) {
	return os.ReadFile(filepath.Join(repo.Dir, filepath.FromSlash(rel)))
}

// startNodeErr tries node.New with the given overrides and returns its error.
func startNodeErr(t *testing.T, sets ...string) (*node.Node, error) {
	t.Helper()
	base := []string{"PORT=" + strconv.Itoa(freeUDP(t, "127.0.0.5")), "BIND_ADDRESS=127.0.0.5", "CACHE_DIR=" + filepath.Join(t.TempDir(), "cache"),
		"USERNAME=", "apt_p2p_Khashmir.PORT=" + strconv.Itoa(freeUDP(t, "127.0.0.5"))}
	cfg, _, err := config.Load(nil, append(base, sets...)...)
	if err != nil {
		t.Fatal(err)
	}
	n, err := node.New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err == nil {
		t.Cleanup(func() { n.Close() })
	}
	return n, err
}
