package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/apt-p2p/apt-p2p/internal/apttest"
	"github.com/apt-p2p/apt-p2p/internal/proctest"
	"github.com/apt-p2p/apt-p2p/internal/testrepo"
)

// startLibtorrentNodes runs three python3-libtorrent DHT nodes on
// 127.0.0.1 (engine/testdata/lt_dht.py) and returns their addresses.
func startLibtorrentNodes(t *testing.T) []string {
	t.Helper()
	const py = "/usr/bin/python3" // Debian's, which sees python3-libtorrent
	if err := exec.Command(py, "-c", "import libtorrent").Run(); err != nil {
		t.Fatalf("python3-libtorrent is needed (bash scripts/install-deps.sh test): %v", err)
	}
	script, err := filepath.Abs("../../engine/testdata/lt_dht.py")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(py, script, "3")
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		in.Close() // the helper ends at end of input
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	})
	sc := bufio.NewScanner(out)
	if !sc.Scan() {
		t.Fatalf("libtorrent helper: %v", sc.Err())
	}
	var hello struct{ Ports []int }
	if err := json.Unmarshal(sc.Bytes(), &hello); err != nil || len(hello.Ports) != 3 {
		t.Fatalf("libtorrent helper said %q: %v", sc.Bytes(), err)
	}
	var addrs []string
	for _, p := range hello.Ports {
		addrs = append(addrs, fmt.Sprintf("127.0.0.1:%d", p))
	}
	return addrs
}

type mainlineStatus struct {
	Mainline *struct {
		Joined        bool   `json:"joined"`
		Nodes         int    `json:"nodes"`
		AnnouncesOK   uint64 `json:"announces_ok"`
		GetPeersFound uint64 `json:"get_peers_found"`
	} `json:"mainline"`
}

func (d *daemon) mainline() (mainlineStatus, error) {
	var st mainlineStatus
	c := &http.Client{Timeout: 5 * time.Second}
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

// Issue 14, end to end: two daemons with the apt-p2p DHT off
// (NETWORKS = mainline) meet only through three libtorrent DHT nodes; apt
// through the second gets every .deb from the first, and the mirror sees no
// pool/ request from it.
func TestTwoDaemonsMeetOnMainline(t *testing.T) {
	lt := startLibtorrentNodes(t)
	base := t.TempDir()
	repo, err := testrepo.Build(filepath.Join(base, "debian"), testrepo.Options{ByHash: true, NoSHA1: true})
	if err != nil {
		t.Fatal(err)
	}
	mirror, err := testrepo.ServeMirror("127.0.0.1:0", base)
	if err != nil {
		t.Fatal(err)
	}
	defer mirror.Close()
	mirrorBase := mirror.Addr() + "/debian"

	mainline := func(ip string) []string {
		return []string{"MIN_DOWNLOAD_PEERS=1", "MIRROR_DELAY=5s",
			"apt_p2p_Khashmir.NETWORKS=mainline",
			fmt.Sprintf("apt_p2p_Khashmir.MAINLINE_PORT=%d", proctest.FreePort(t, ip)),
			"apt_p2p_Khashmir.MAINLINE_BOOTSTRAP=" + strings.Join(lt, " ")}
	}
	a := startDaemon(t, "A", "127.0.0.2", proctest.FreePort(t, "127.0.0.2"), mainline("127.0.0.2")...)
	b := startDaemon(t, "B", "127.0.0.3", proctest.FreePort(t, "127.0.0.3"), mainline("127.0.0.3")...)
	for _, d := range []*daemon{a, b} {
		waitFor(t, d.name+" to join the mainline DHT", 30*time.Second, func() (bool, string) {
			st, err := d.mainline()
			return err == nil && st.Mainline != nil && st.Mainline.Joined && st.Mainline.Nodes > 0, fmt.Sprintf("%+v %v", st.Mainline, err)
		})
		if st, _ := d.status(); st.DHT.Nodes != 0 {
			t.Fatalf("%s: the apt-p2p DHT has %d nodes with NETWORKS = mainline", d.name, st.DHT.Nodes)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	ra := newRoot(t)
	if err := ra.SetSources(repo.SourcesLine("http://" + a.addr() + "/" + mirrorBase)); err != nil {
		t.Fatal(err)
	}
	if err := ra.Update(ctx); err != nil {
		t.Fatal(err)
	}
	workA := t.TempDir()
	if err := ra.Download(ctx, workA, repo.Names()...); err != nil {
		t.Fatal(err)
	}
	if err := apttest.VerifyFiles(repo, workA); err != nil {
		t.Fatal(err)
	}
	// A announces every package on the mainline DHT (one info-hash each).
	waitFor(t, "A's mainline announcements", 60*time.Second, func() (bool, string) {
		st, err := a.mainline()
		return err == nil && st.Mainline != nil && st.Mainline.AnnouncesOK >= uint64(len(repo.Packages)), fmt.Sprintf("%+v %v", st.Mainline, err)
	})

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
	for _, e := range mirror.Log() {
		if strings.Contains(e.Path, "/pool/") {
			t.Errorf("B: the mirror saw a pool/ request: %v", e)
		}
	}
	if n := packageBytes(repo, mirror); n != 0 {
		t.Errorf("B: the mirror sent %d package bytes; all should have come from A", n)
	}
	stB, _ := b.status()
	var total int64
	for _, p := range repo.Packages {
		total += p.Size
	}
	if stB.Session.Peers < total {
		t.Errorf("B: %d bytes from peers, want at least %d", stB.Session.Peers, total)
	}
	if st, err := b.mainline(); err != nil || st.Mainline.GetPeersFound < uint64(len(repo.Packages)) {
		t.Errorf("B found peers on the mainline DHT for %+v of %d packages (%v)", st.Mainline, len(repo.Packages), err)
	}
}
