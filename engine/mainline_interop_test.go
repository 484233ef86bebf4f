package engine

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/apt-p2p/apt-p2p/wire"
)

// ltNodes is a python3-libtorrent process running a few DHT nodes on
// 127.0.0.1 (testdata/lt_dht.py): an independent BEP 5 implementation.
type ltNodes struct {
	t     *testing.T
	cmd   *exec.Cmd
	in    io.WriteCloser
	out   *bufio.Scanner
	ports []int
}

// The interpreter that has Debian's python3-libtorrent (scripts/install-deps.sh
// installs it; a python3 earlier on PATH may not see the module).
const ltPython = "/usr/bin/python3"

func startLibtorrent(t *testing.T, n int) *ltNodes {
	t.Helper()
	if err := exec.Command(ltPython, "-c", "import libtorrent").Run(); err != nil {
		t.Fatalf("python3-libtorrent is needed (bash scripts/install-deps.sh test): %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	cmd := exec.CommandContext(ctx, ltPython, "testdata/lt_dht.py", fmt.Sprint(n))
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lt := &ltNodes{t: t, cmd: cmd, in: in, out: bufio.NewScanner(stdout)}
	t.Cleanup(func() {
		in.Close()
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-done
		}
		cancel()
	})
	var hello struct{ Ports []int }
	lt.read(&hello)
	if len(hello.Ports) != n {
		t.Fatalf("libtorrent ports %v", hello.Ports)
	}
	lt.ports = hello.Ports
	return lt
}

func (lt *ltNodes) read(v any) {
	lt.t.Helper()
	if !lt.out.Scan() {
		lt.t.Fatalf("libtorrent helper ended: %v", lt.out.Err())
	}
	line := lt.out.Bytes()
	if strings.Contains(string(line), `"error"`) {
		lt.t.Fatalf("libtorrent helper: %s", line)
	}
	if err := json.Unmarshal(line, v); err != nil {
		lt.t.Fatalf("libtorrent helper said %q: %v", line, err)
	}
}

func (lt *ltNodes) call(cmd map[string]any, v any) {
	lt.t.Helper()
	b, _ := json.Marshal(cmd)
	if _, err := lt.in.Write(append(b, '\n')); err != nil {
		lt.t.Fatal(err)
	}
	lt.read(v)
}

func (lt *ltNodes) addrs() []netip.AddrPort {
	var a []netip.AddrPort
	for _, p := range lt.ports {
		a = append(a, netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(p)))
	}
	return a
}

// Interop with libtorrent (issue 14): apt-p2p's mainline node joins through
// three libtorrent nodes; an info-hash it announces is found by
// libtorrent's get_peers and one libtorrent announces is found by ours; BEP
// 44 immutable items round-trip both ways.
func TestMainlineInteropLibtorrent(t *testing.T) {
	lt := startLibtorrent(t, 3)
	ours := startMainlineNode(t, mainlineTestConfig(), lt.addrs()...)
	if err := ours.WaitJoined(ctxT(t, 30*time.Second)); err != nil {
		t.Fatalf("joining through libtorrent: %v", err)
	}
	var ok struct{ OK bool }
	lt.call(map[string]any{"cmd": "add_node", "host": "127.0.0.1", "port": ours.Addr().Port()}, &ok)

	// Ours announces; libtorrent finds it.
	ih := sha1Key("apt-p2p interop: announced by apt-p2p")
	if r, err := ours.Announce(ctxT(t, 20*time.Second), ih, 9977); err != nil || r.Stored == 0 {
		t.Fatalf("announce to libtorrent nodes: %+v %v", r, err)
	}
	want := "127.0.0.1:9977"
	found := false
	for try := 0; try < 5 && !found; try++ {
		var reply struct{ Peers []string }
		lt.call(map[string]any{"cmd": "get_peers", "node": try % 3, "ih": ih.String()}, &reply)
		found = slices.Contains(reply.Peers, want)
	}
	if !found {
		t.Fatalf("libtorrent's get_peers did not find %s", want)
	}

	// libtorrent announces; ours finds it.
	ih2 := sha1Key("apt-p2p interop: announced by libtorrent")
	var ann struct{ Port int }
	lt.call(map[string]any{"cmd": "announce", "node": 2, "ih": ih2.String()}, &ann)
	want2 := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(ann.Port))
	found = false
	for try := 0; try < 40 && !found; try++ {
		peers, _, err := ours.GetPeers(ctxT(t, 20*time.Second), ih2)
		if err != nil {
			t.Fatal(err)
		}
		found = slices.Contains(peers, want2)
		if !found {
			time.Sleep(250 * time.Millisecond) // libtorrent announces on its own schedule
		}
	}
	if !found {
		t.Fatalf("our get_peers did not find libtorrent's announce at %v", want2)
	}

	// BEP 44: libtorrent puts, ours gets.
	var put struct {
		Target  string
		Success int
	}
	lt.call(map[string]any{"cmd": "put", "node": 1, "v": "piece hashes from libtorrent"}, &put)
	target, err := wire.ParseID(put.Target)
	if err != nil || put.Success < 1 {
		t.Fatalf("libtorrent put: %+v %v", put, err)
	}
	v, err := ours.GetItem(ctxT(t, 20*time.Second), target)
	if err != nil || string(v) != "28:piece hashes from libtorrent" {
		t.Fatalf("our get of libtorrent's item: %q %v", v, err)
	}
	// Ours puts, libtorrent gets.
	item := []byte("20:piece hashes from us")
	tgt, pr, err := ours.PutItem(ctxT(t, 20*time.Second), item)
	if err != nil || pr.Stored == 0 {
		t.Fatalf("our put: %+v %v", pr, err)
	}
	var got struct{ Item *string }
	lt.call(map[string]any{"cmd": "get_item", "node": 0, "target": tgt.String()}, &got)
	if got.Item == nil || *got.Item != "piece hashes from us" {

	}
	s := ours.Stats()
	t.Logf("ours: %d nodes, queries by method %v, %d errors sent, dropped %v", s.Nodes, s.Queries, s.ErrorsSent, s.Dropped)
	lt.call(map[string]any{"cmd": "quit"}, &ok)
}
