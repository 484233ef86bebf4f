package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/apt-p2p/apt-p2p/internal/proctest"
)

// The tests run the built binary, as a user or an init system would.
var binary string

func TestMain(m *testing.M) { proctest.RunWithDaemon(m, &binary) }

// runCmd runs the binary to completion and returns its exit status and output.
func runCmd(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Env = append(os.Environ(), "HOME="+t.TempDir()) // no ~/.apt-p2p/apt-p2p.conf of the machine's
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	done := make(chan error, 1)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		<-done
		t.Fatalf("apt-p2p %q did not exit:\n%s%s", args, o.String(), e.String())
	}
	return cmd.ProcessState.ExitCode(), o.String(), e.String()
}

// lines is the non-empty lines of s.
func lines(s string) []string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.TrimSpace(l) != "" {
			out = append(out, l)
		}
	}
	return out
}

// wantOneMessage checks a failed start: exit status 1 and a short message
// on standard error containing every want.
func wantOneMessage(t *testing.T, what string, code int, stdout, stderr string, want ...string) {
	t.Helper()
	if code != 1 {
		t.Errorf("%s: exit status %d, want 1", what, code)
	}
	l := lines(stderr)
	if len(l) == 0 || len(l) > 2 || stdout != "" {
		t.Errorf("%s: want one message (at most 2 lines) on stderr, got stdout %q, stderr:\n%s", what, stdout, stderr)
	}
	for _, w := range want {
		if !strings.Contains(stderr, w) {
			t.Errorf("%s: message lacks %q:\n%s", what, w, stderr)
		}
	}
	if strings.Contains(stderr, "level=") || strings.Contains(stderr, "goroutine ") {
		t.Errorf("%s: log lines or a panic instead of a message:\n%s", what, stderr)
	}
}

func TestBrokenConfig(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct {
		name, text, want string
	}{
		{"bad value", "[DEFAULT]\nPORT = 9977\nMIRROR_DELAY = soon\n", ":3: MIRROR_DELAY"},
		{"unknown option", "[DEFAULT]\nFOO_BAR = 1\n", ":2: unknown option FOO_BAR"},
		{"bad port", "# comment\n[DEFAULT]\n\nPORT = ninety\n", ":4: PORT"},
		{"bad boolean", "[DEFAULT]\nLOCAL_OK = perhaps\n", ":2: LOCAL_OK"},
		{"not INI", "PORT: 9977\n", ":1:"},
	} {
		f := filepath.Join(dir, strings.ReplaceAll(c.name, " ", "-")+".conf")
		if err := os.WriteFile(f, []byte(c.text), 0o644); err != nil {
			t.Fatal(err)
		}
		code, o, e := runCmd(t, "run", "-c", f, "--cache-dir", filepath.Join(dir, "cache"))
		wantOneMessage(t, c.name, code, o, e, f+c.want)
		// config and the maintenance commands refuse it the same way.
		if code, _, e := runCmd(t, "config", "-c", f); code != 1 || !strings.Contains(e, f+c.want) {
			t.Errorf("config with %s: exit %d, %q", c.name, code, e)
		}
	}
	code, o, e := runCmd(t, "run", "--embedded", "--set", "NO_SUCH=1")
	wantOneMessage(t, "unknown --set option", code, o, e, "NO_SUCH")
	code, o, e = runCmd(t, "run", "-c", filepath.Join(dir, "missing.conf"))
	wantOneMessage(t, "missing -c file", code, o, e, "missing.conf")
}

func TestStartFailures(t *testing.T) {
	ip := "127.0.0.2"
	port := proctest.FreePort(t, ip)
	ln, err := net.Listen("tcp", net.JoinHostPort(ip, strconv.Itoa(port)))
	if err != nil {
		t.Fatal(err)
	}
	code, o, e := runCmd(t, "run", "--embedded", "--bind", ip, "--port", strconv.Itoa(port), "--cache-dir", filepath.Join(t.TempDir(), "c"))
	ln.Close()
	wantOneMessage(t, "TCP port in use", code, o, e, strconv.Itoa(port), "PORT", "--port")

	udp, err := net.ListenPacket("udp", net.JoinHostPort(ip, strconv.Itoa(port)))
	if err != nil {
		t.Fatal(err)
	}
	code, o, e = runCmd(t, "run", "--embedded", "--bind", ip, "--port", strconv.Itoa(port), "--cache-dir", filepath.Join(t.TempDir(), "c"))
	udp.Close()
	wantOneMessage(t, "UDP port in use", code, o, e, "UDP", strconv.Itoa(port), "PORT")

	file := filepath.Join(t.TempDir(), "a-file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, dir := range []string{filepath.Join(file, "cache"), file} {
		code, o, e = runCmd(t, "run", "--embedded", "--bind", ip, "--port", strconv.Itoa(proctest.FreePort(t, ip)), "--cache-dir", dir)
		wantOneMessage(t, "cache directory "+dir, code, o, e, dir, "CACHE_DIR")
	}
}

// daemonProc is a running apt-p2p.
type daemonProc struct {
	cmd  *exec.Cmd
	addr string
	log  *proctest.LockedBuffer
	done chan struct{}
}

func startProc(t *testing.T, ip string, sets ...string) *daemonProc {
	t.Helper()
	port := proctest.FreePort(t, ip)
	args := []string{"run", "--embedded", "--bind", ip, "--port", strconv.Itoa(port), "--cache-dir", filepath.Join(t.TempDir(), "cache")}
	for _, s := range sets {
		args = append(args, "--set", s)
	}
	d := &daemonProc{cmd: exec.Command(binary, args...), addr: net.JoinHostPort(ip, strconv.Itoa(port)), log: &proctest.LockedBuffer{}, done: make(chan struct{})}
	d.cmd.Stdout, d.cmd.Stderr = d.log, d.log
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = d.cmd.Wait(); close(d.done) }()
	t.Cleanup(func() {
		_ = d.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-d.done:
		case <-time.After(15 * time.Second):
			_ = d.cmd.Process.Kill()
			<-d.done
			t.Errorf("daemon did not stop on SIGTERM")
		}
		if t.Failed() {
			t.Logf("daemon log:\n%s", d.log.String())
		}
	})
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get("http://" + d.addr + "/stats.json")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return d
			}
		}
		select {
		case <-d.done:
			t.Fatalf("daemon exited at start:\n%s", d.log.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("daemon did not answer:\n%s", d.log.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestRunningDaemon(t *testing.T) {
	d := startProc(t, "127.0.0.2")

	// An unreachable mirror: apt gets a 502 that says so, the log says what failed.
	dead := proctest.FreePort(t, "127.0.0.1")
	u := "http://" + d.addr + "/127.0.0.1:" + strconv.Itoa(dead) + "/debian/dists/stable/InRelease"
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadGateway || !strings.Contains(string(body), "unreachable") || !strings.Contains(string(body), strconv.Itoa(dead)) {
		t.Errorf("unreachable mirror: HTTP %d %q, want 502 saying which mirror is unreachable", resp.StatusCode, body)
	}
	waitLog(t, d, "mirror fetch failed", "127.0.0.1:"+strconv.Itoa(dead))

	code, o, e := runCmd(t, "status", "--addr", d.addr)
	if code != 0 || !strings.Contains(o, "apt-p2p ") || !strings.Contains(o, "all time") || !strings.Contains(o, "DHT") {
		t.Errorf("status: exit %d:\n%s%s", code, o, e)
	}
	code, o, e = runCmd(t, "status", "--json", "--addr", d.addr)
	var st map[string]any
	if code != 0 || json.Unmarshal([]byte(o), &st) != nil || st["version"] == nil {
		t.Errorf("status --json: exit %d:\n%s%s", code, o, e)
	}
	// A lookup that reports an error exits 1 (issue 11 item 8: it exited 0),
	// whichever form names the file: the path, or the URL as apt prints it.
	var lr map[string]any
	for _, q := range []string{"127.0.0.1:9/debian/pool/main/x/x/x_1_amd64.deb", "http://" + d.addr + "/127.0.0.1:9/debian/pool/main/x/x/x_1_amd64.deb"} {
		code, o, e = runCmd(t, "lookup", "--addr", d.addr, q)
		if code != 1 || json.Unmarshal([]byte(o), &lr) != nil || lr["error"] == nil || lr["cached"] != false ||
			lr["url"] != "http://127.0.0.1:9/debian/pool/main/x/x/x_1_amd64.deb" || !strings.HasPrefix(e, "apt-p2p: lookup: the index has no hash") {
			t.Errorf("lookup of an unknown path (%s): exit %d:\n%s%s", q, code, o, e)
		}
	}
	code, o, e = runCmd(t, "lookup", "--addr", d.addr, strings.Repeat("ab", 20))
	if code != 0 || json.Unmarshal([]byte(o), &lr) != nil || lr["dht_key"] != strings.Repeat("ab", 20) {
		t.Errorf("lookup of a SHA1: exit %d:\n%s%s", code, o, e)
	}
	code, o, e = runCmd(t, "status", "--addr", "127.0.0.1:"+strconv.Itoa(dead))
	if code != 1 || !strings.Contains(e, "no apt-p2p daemon answered") || len(lines(e)) != 1 {
		t.Errorf("status without a daemon: exit %d, %q%q", code, o, e)
	}
}

func waitLog(t *testing.T, d *daemonProc, want ...string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		ok := false
		for _, l := range strings.Split(d.log.String(), "\n") {
			all := true
			for _, w := range want {
				all = all && strings.Contains(l, w)
			}
			ok = ok || all
		}
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("no log line with %q:\n%s", want, d.log.String())
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestHelpAndConfig(t *testing.T) {
	for _, cmd := range []string{"run", "status", "lookup", "verify", "gc", "config"} {
		code, o, e := runCmd(t, cmd, "--help")
		usage := "usage: apt-p2p " + cmd
		if cmd == "run" {
			usage = "usage: apt-p2p [run]"
		}
		if code != 0 || !strings.Contains(o+e, usage) || !strings.Contains(o+e, "-set") {
			t.Errorf("%s --help: exit %d:\n%s%s", cmd, code, o, e)
		}
	}
	for _, args := range [][]string{{"help"}, {"--help"}, {"-h"}} {
		code, o, _ := runCmd(t, args...)
		if code != 0 || !strings.Contains(o, "apt-p2p status") {
			t.Errorf("%q: exit %d:\n%s", args, code, o)
		}
	}
	if code, _, e := runCmd(t, "frobnicate"); code != 2 || !strings.Contains(e, `unknown command "frobnicate"`) {
		t.Errorf("unknown command: exit %d, %q", code, e)
	}
	if code, _, e := runCmd(t, "run", "--no-such-flag"); code != 2 || !strings.Contains(e, "no-such-flag") {
		t.Errorf("unknown flag: exit %d, %q", code, e)
	}

	// config prints an effective configuration that loads back to itself.
	code, first, e := runCmd(t, "config", "--embedded", "--port", "1234", "--set", "UPLOAD_LIMIT=64", "--set", "apt_p2p_Khashmir.BOOTSTRAP=a.example:1 b.example:2")
	if code != 0 {
		t.Fatalf("config: exit %d: %s", code, e)
	}
	f := filepath.Join(t.TempDir(), "effective.conf")
	if err := os.WriteFile(f, []byte(first), 0o644); err != nil {
		t.Fatal(err)
	}
	code, second, e := runCmd(t, "config", "-c", f)
	if code != 0 {
		t.Fatalf("config -c <printed config>: exit %d: %s", code, e)
	}
	body := func(s string) string { return s[strings.IndexByte(s, '\n')+1:] } // after the "# from" line
	if body(first) != body(second) {
		t.Errorf("the printed configuration does not load back to itself:\n%s\n---\n%s", first, second)
	}
	for _, want := range []string{"PORT = 1234", "UPLOAD_LIMIT = 64", "a.example:1", "b.example:2"} {
		if !strings.Contains(second, want) {
			t.Errorf("effective configuration lacks %q", want)
		}
	}
}

// TestBindHostName: --bind localhost (BIND_ADDRESS = localhost) panicked in
// netip.MustParseAddr; the name is resolved at start and the daemon listens
// there, TCP and UDP. A name that does not resolve, or an address that is not
// this machine's, is one message saying what to set (issue 11 item 4).
func TestBindHostName(t *testing.T) {
	port := proctest.FreePort(t, "127.0.0.1")
	cmd := exec.Command(binary, "run", "--embedded", "--bind", "localhost", "--port", strconv.Itoa(port), "--cache-dir", filepath.Join(t.TempDir(), "cache"))
	cmd.Env = append(os.Environ(), "HOME="+t.TempDir())
	out := &proctest.LockedBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	defer func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	}()
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	var st struct {
		Contact string `json:"contact"`
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get("http://" + addr + "/stats.json")
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK && json.Unmarshal(b, &st) == nil {
				break
			}
		}
		select {
		case <-done:
			t.Fatalf("--bind localhost: the daemon exited:\n%s", out.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("--bind localhost: no answer on %s:\n%s", addr, out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if st.Contact != addr {
		t.Errorf("--bind localhost: contact %q, want %s", st.Contact, addr)
	}
	// The DHT's UDP socket is bound there too: the port is taken on 127.0.0.1.
	if c, err := net.ListenPacket("udp", addr); err == nil {
		c.Close()
		t.Errorf("--bind localhost: nothing listens on UDP %s", addr)
	}
	if code, o, e := runCmd(t, "status", "--bind", "localhost", "--port", strconv.Itoa(port), "--embedded"); code != 0 || !strings.Contains(o, "apt-p2p ") {
		t.Errorf("status --bind localhost: exit %d:\n%s%s", code, o, e)
	}

	// .onion names are never sent to DNS (RFC 7686): the lookup fails here.
	code, o, e := runCmd(t, "run", "--embedded", "--bind", "cache.lna.onion", "--port", strconv.Itoa(proctest.FreePort(t, "127.0.0.1")), "--cache-dir", filepath.Join(t.TempDir(), "c"))
	wantOneMessage(t, "unresolvable --bind", code, o, e, "BIND_ADDRESS", `"cache.lna.onion"`, "leave it empty")
	// 192.0.2.1 (TEST-NET-1) is nobody's address.
	code, o, e = runCmd(t, "run", "--embedded", "--bind", "192.0.2.1", "--port", strconv.Itoa(proctest.FreePort(t, "127.0.0.1")), "--cache-dir", filepath.Join(t.TempDir(), "c"))
	wantOneMessage(t, "foreign --bind", code, o, e, "BIND_ADDRESS 192.0.2.1 is not an address of this machine", "--bind")
}
