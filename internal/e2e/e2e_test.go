// Package e2e runs real apt-p2p daemons (the built binary, as separate
// processes on 127.0.0.2–4) and real apt-get against a Debian repository the
// test builds and serves on 127.0.0.1, and checks where every byte came from.
package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/apt-p2p/apt-p2p/internal/apttest"
	"github.com/apt-p2p/apt-p2p/internal/netbed"
	"github.com/apt-p2p/apt-p2p/internal/proctest"
	"github.com/apt-p2p/apt-p2p/internal/testrepo"
)

var binary string

func TestMain(m *testing.M) { proctest.RunWithDaemon(m, &binary) }

// daemon is one apt-p2p process.
type daemon struct {
	t    *testing.T
	name string
	ip   string
	port int
	cmd  *exec.Cmd
	log  *proctest.LockedBuffer
	done chan struct{}
	// client reaches the daemon (from inside its namespace on a netbed);
	// nil: a plain client.
	client *http.Client
}

// newBed is a network-namespace test bed, removed when the test ends.
func newBed(t *testing.T) *netbed.Bed {
	t.Helper()
	bed, err := netbed.New(netbed.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := bed.Close(); err != nil {
			t.Error(err)
		}
	})
	return bed
}

// mirrorIn builds a repository of pkgs (by-hash indexes and no SHA-1, as
// Debian's today) and serves it as the mirror from host h on addr, port 80,
// until the test ends.
func mirrorIn(t *testing.T, h *netbed.Host, addr netip.Addr, pkgs ...testrepo.PackageSpec) (*testrepo.Repo, *testrepo.Mirror) {
	t.Helper()
	base := t.TempDir()
	repo, err := testrepo.Build(filepath.Join(base, "debian"), testrepo.Options{ByHash: true, NoSHA1: true, Packages: pkgs})
	if err != nil {
		t.Fatal(err)
	}
	var mirror *testrepo.Mirror
	if err := h.Do(func() (err error) {
		mirror, err = testrepo.ServeMirror(netip.AddrPortFrom(addr, 80).String(), base)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { mirror.Close() })
	return repo, mirror
}

// natRouter makes natbox the IPv4 NAT router of host n, which reaches it
// through natbox's interface inside: n's default route, forwarding, and a
// kernel masquerade of what leaves natbox by eth0.
func natRouter(t *testing.T, ctx context.Context, natbox, n *netbed.Host, inside *netbed.Iface) {
	t.Helper()
	if err := n.IP("route add default via " + inside.Addr4.String()); err != nil {
		t.Fatal(err)
	}
	if err := natbox.Sysctl(map[string]string{"net/ipv4/ip_forward": "1"}); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"add", "table", "ip", "nat"},
		{"add", "chain", "ip", "nat", "post", "{ type nat hook postrouting priority 100 ; }"},
		{"add", "rule", "ip", "nat", "post", "oifname", "eth0", "masquerade"},
	} {
		if out, err := natbox.Run(ctx, "nft", args...); err != nil {
			t.Fatalf("kernel NAT (nft %s): %v %s (nftables: bash scripts/install-deps.sh test)", strings.Join(args, " "), err, out)
		}
	}
}

func startDaemon(t *testing.T, name, ip string, port int, sets ...string) *daemon {
	t.Helper()
	return startDaemonIn(t, nil, name, ip, port, sets...)
}

// startDaemonIn starts a daemon inside host h of a netbed (nil: here).
func startDaemonIn(t *testing.T, h *netbed.Host, name, ip string, port int, sets ...string) *daemon {
	t.Helper()
	d := &daemon{t: t, name: name, ip: ip, port: port, log: &proctest.LockedBuffer{}, done: make(chan struct{})}
	start := (*exec.Cmd).Start
	if h != nil {
		start = h.Start
		d.client = h.HTTPClient(15 * time.Second)
	}
	cache := filepath.Join(t.TempDir(), "cache")
	bind := ip
	var rest []string
	localOK := true
	for _, s := range sets {
		if dir, ok := strings.CutPrefix(s, "CACHE_DIR="); ok {
			cache = dir // a cache that outlives one daemon (a restart)
			continue
		}
		if b, ok := strings.CutPrefix(s, "BIND_ADDRESS="); ok {
			bind = b // "" listens on every address (ip is still where the test reaches it)
			continue
		}
		// "!LOCAL_OK" leaves out the harness's LOCAL_OK=yes: the daemon decides
		// LOCAL_OK itself, as out of the box.
		if s == "!LOCAL_OK" {
			localOK = false
			continue
		}
		rest = append(rest, s)
	}
	args := []string{"run", "--embedded", "--port", strconv.Itoa(port), "--cache-dir", cache,
		"--set", "BIND_ADDRESS=" + bind,
		"--set", "LOG_LEVEL=debug", "--set", "apt_p2p_Khashmir.CHECKPOINT_INTERVAL=30s"}
	if localOK {
		args = append(args, "--set", "LOCAL_OK=yes")
	}
	for _, s := range rest {
		args = append(args, "--set", s)
	}
	d.cmd = exec.Command(binary, args...)
	d.cmd.Stdout, d.cmd.Stderr = d.log, d.log
	if err := start(d.cmd); err != nil {
		t.Fatal(err)
	}
	go func() { d.cmd.Wait(); close(d.done) }()
	t.Cleanup(func() {
		d.stop()
		if t.Failed() {
			t.Logf("--- log of daemon %s ---\n%s", name, proctest.Tail(d.log.String(), 120))
		}
	})
	deadline := time.Now().Add(20 * time.Second)
	for {
		if _, err := d.status(); err == nil {
			return d
		}
		select {
		case <-d.done:
			t.Fatalf("daemon %s exited at start:\n%s", name, d.log.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("daemon %s did not answer:\n%s", name, d.log.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (d *daemon) addr() string { return net.JoinHostPort(d.ip, strconv.Itoa(d.port)) }

func (d *daemon) stop() {
	select {
	case <-d.done:
		return
	default:
	}
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.done:
	case <-time.After(15 * time.Second):
		_ = d.cmd.Process.Kill()
		<-d.done
		d.t.Errorf("daemon %s did not stop on SIGTERM within 15 s", d.name)
	}
}

type status struct {
	Joined  bool `json:"joined"`
	Session struct {
		Mirror   int64 `json:"mirror_down"`
		Peers    int64 `json:"peer_down"`
		Cache    int64 `json:"cache_down"`
		Uploaded int64 `json:"peer_up"`
	} `json:"session"`
	DHT struct {
		Nodes int `json:"Nodes"`
	} `json:"dht"`
	Cache struct {
		Files int `json:"Files"`
	} `json:"cache"`
}

func (d *daemon) status() (status, error) {
	var st status
	c := d.client
	if c == nil {
		c = &http.Client{Timeout: 5 * time.Second}
	}
	resp, err := c.Get("http://" + d.addr() + "/stats.json")
	if err != nil {
		return st, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		return st, fmt.Errorf("status %d", resp.StatusCode)
	}
	return st, json.Unmarshal(b, &st)
}

type lookup struct {
	Peers  []string `json:"dht_peers"`
	Cached bool     `json:"cached"`
}

func (d *daemon) lookup(q string) (lookup, error) {
	var l lookup
	c := d.client
	if c == nil {
		c = &http.Client{Timeout: 15 * time.Second}
	}
	resp, err := c.Get("http://" + d.addr() + "/lookup?q=" + q)
	if err != nil {
		return l, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return l, json.Unmarshal(b, &l)
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, d time.Duration, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(d)
	var last string
	for time.Now().Before(deadline) {
		ok, msg := cond()
		if ok {
			return
		}
		last = msg
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for %s: %s", what, last)
}

func newRoot(t *testing.T) *apttest.Root {
	t.Helper()
	r, err := apttest.NewRoot(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func packageBytes(repo *testrepo.Repo, m *testrepo.Mirror) int64 {
	var n int64
	for _, p := range repo.Packages {
		n += m.BytesServed("/debian/" + p.Filename)
	}
	return n
}

// aptGet runs real apt-get inside host h through daemon d (URL-prefix mode,
// or proxy mode) and checks every file it downloaded.
func aptGet(t *testing.T, ctx context.Context, h *netbed.Host, d *daemon, repo *testrepo.Repo, mirror *testrepo.Mirror, proxy bool) {
	t.Helper()
	r := newRoot(t)
	r.Start = h.Start
	src := "http://" + d.addr() + "/" + mirror.Addr() + "/debian"
	if proxy {
		src = mirror.URL() + "/debian"
		r.SetProxy("http://" + d.addr())
	}
	if err := r.SetSources(repo.SourcesLine(src)); err != nil {
		t.Fatal(err)
	}
	if err := r.Update(ctx); err != nil {
		t.Fatal(err)
	}
	work := t.TempDir()
	if err := r.Download(ctx, work, repo.Names()...); err != nil {
		t.Fatal(err)
	}
	if err := apttest.VerifyFiles(repo, work); err != nil {
		t.Fatal(err)
	}
}

// waitAnnounced waits until asker's lookup of every package of repo names
// holder (a contact, ip:port) among its peers; who names the holder in a
// failure.
func waitAnnounced(t *testing.T, asker *daemon, repo *testrepo.Repo, holder, who string) {
	t.Helper()
	for _, p := range repo.Packages {
		waitFor(t, who+"'s announcement of "+p.Name+" seen by "+asker.name, 30*time.Second, func() (bool, string) {
			l, err := asker.lookup(p.SHA256)
			return slices.Contains(l.Peers, holder), fmt.Sprintf("%+v %v", l, err)
		})
	}
}

// TestThreeDaemons is the end-to-end run of issue 6: apt through daemon A
// fetches from the mirror; through B (proxy mode) every package byte comes
// from A; through C with A stopped, from B.
func TestThreeDaemons(t *testing.T) {
	base := t.TempDir()
	t0 := time.Now()
	// Packages like Debian's since bookworm: MD5sum and SHA256, no SHA1, so
	// every daemon keys files by SHA256.
	repo, err := testrepo.Build(filepath.Join(base, "debian"), testrepo.Options{ByHash: true, NoSHA1: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("repository built in %v (signed: %v)", time.Since(t0), repo.Signed)
	mirror, err := testrepo.ServeMirror("127.0.0.1:0", base)
	if err != nil {
		t.Fatal(err)
	}
	defer mirror.Close()
	mirrorBase := mirror.Addr() + "/debian"

	pa, pb, pc := proctest.FreePort(t, "127.0.0.2"), proctest.FreePort(t, "127.0.0.3"), proctest.FreePort(t, "127.0.0.4")
	common := []string{"MIN_DOWNLOAD_PEERS=1", "MIRROR_DELAY=5s"}
	a := startDaemon(t, "A", "127.0.0.2", pa, append(common, "apt_p2p_Khashmir.BOOTSTRAP_NODE=yes")...)
	b := startDaemon(t, "B", "127.0.0.3", pb, append(common, "apt_p2p_Khashmir.BOOTSTRAP="+a.addr())...)
	c := startDaemon(t, "C", "127.0.0.4", pc, append(common, "apt_p2p_Khashmir.BOOTSTRAP="+a.addr()+" "+b.addr())...)
	for _, d := range []*daemon{b, c} {
		waitFor(t, d.name+" to join the DHT", 30*time.Second, func() (bool, string) {
			st, err := d.status()
			return err == nil && st.Joined && st.DHT.Nodes > 0, fmt.Sprintf("%+v %v", st, err)
		})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	// A, URL-prefix mode: everything comes from the mirror.
	ra := newRoot(t)
	if err := ra.SetSources(repo.SourcesLine("http://" + a.addr() + "/" + mirrorBase)); err != nil {
		t.Fatal(err)
	}
	if err := ra.Update(ctx); err != nil {
		t.Fatal(err)
	}
	mirror.Reset()
	workA := t.TempDir()
	if err := ra.Download(ctx, workA, repo.Names()...); err != nil {
		t.Fatal(err)
	}
	if err := apttest.VerifyFiles(repo, workA); err != nil {
		t.Fatal(err)
	}
	for _, p := range repo.Packages {
		if got := mirror.BytesServed("/debian/" + p.Filename); got != p.Size {
			t.Errorf("A: mirror sent %d bytes of %s, want exactly its size %d (one fetch)", got, p.Name, p.Size)
		}
	}

	// A announces what it verified; wait until B's DHT sees A for every package.
	for _, p := range repo.Packages {
		waitFor(t, "A's announcement of "+p.Name, 30*time.Second, func() (bool, string) {
			l, err := b.lookup(p.SHA256) // the DHT key: SHA256, as Packages has no SHA1
			for _, peer := range l.Peers {
				if peer == a.addr() {
					return true, ""
				}
			}
			return false, fmt.Sprintf("%+v %v", l, err)
		})
	}

	// B, proxy mode: sources name the mirror, apt's proxy is B. Package bytes
	// must come from A: the mirror serves none of them.
	rb := newRoot(t)
	if err := rb.SetSources(repo.SourcesLine("http://" + mirrorBase)); err != nil {
		t.Fatal(err)
	}
	rb.SetProxy("http://" + b.addr())
	if err := rb.Update(ctx); err != nil {
		t.Fatal(err)
	}
	mirror.Reset()
	workB := t.TempDir()
	if err := rb.Download(ctx, workB, repo.Names()...); err != nil {
		t.Fatal(err)
	}
	if err := apttest.VerifyFiles(repo, workB); err != nil {
		t.Fatal(err)
	}
	if n := packageBytes(repo, mirror); n != 0 {
		t.Errorf("B: the mirror sent %d package bytes; all should have come from A (log %+v)", n, mirror.Log())
	}
	stB, _ := b.status()
	var total int64
	for _, p := range repo.Packages {
		total += p.Size
	}
	if stB.Session.Peers < total {
		t.Errorf("B: %d bytes from peers, want at least %d", stB.Session.Peers, total)
	}
	stA, _ := a.status()
	if stA.Session.Uploaded < total {
		t.Errorf("A: uploaded %d bytes, want at least %d", stA.Session.Uploaded, total)
	}

	// B announces too; then A stops and C must get everything from B.
	for _, p := range repo.Packages {
		waitFor(t, "B's announcement of "+p.Name, 30*time.Second, func() (bool, string) {
			l, err := c.lookup(p.SHA256)
			for _, peer := range l.Peers {
				if peer == b.addr() {
					return true, ""
				}
			}
			return false, fmt.Sprintf("%+v %v", l, err)
		})
	}
	a.stop()

	rc := newRoot(t)
	if err := rc.SetSources(repo.SourcesLine("http://" + c.addr() + "/" + mirrorBase)); err != nil {
		t.Fatal(err)
	}
	if err := rc.Update(ctx); err != nil {
		t.Fatal(err)
	}
	mirror.Reset()
	workC := t.TempDir()
	if err := rc.Download(ctx, workC, repo.Names()...); err != nil {
		t.Fatal(err)
	}
	if err := apttest.VerifyFiles(repo, workC); err != nil {
		t.Fatal(err)
	}
	if n := packageBytes(repo, mirror); n != 0 {
		t.Errorf("C: the mirror sent %d package bytes; all should have come from B (log %+v)", n, mirror.Log())
	}

	// C again in proxy mode from a fresh apt root: everything from C's own cache.
	rc2 := newRoot(t)
	if err := rc2.SetSources(repo.SourcesLine("http://" + mirrorBase)); err != nil {
		t.Fatal(err)
	}
	rc2.SetProxy("http://" + c.addr())
	if err := rc2.Update(ctx); err != nil {
		t.Fatal(err)
	}
	mirror.Reset()
	workC2 := t.TempDir()
	if err := rc2.Download(ctx, workC2, repo.Names()...); err != nil {
		t.Fatal(err)
	}
	if err := apttest.VerifyFiles(repo, workC2); err != nil {
		t.Fatal(err)
	}
	if n := mirror.TotalBytes(); n != 0 {
		t.Errorf("C (cached): the mirror sent %d bytes: %+v", n, mirror.Log())
	}
}
