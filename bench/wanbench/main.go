// Command wanbench is the driver of bench/wan.sh: real apt-get and real
// apt-p2p daemons on the network-namespace test bed (internal/netbed), with
// the mirror behind a WAN link (100 Mbit/s, 40 ms round trip) and the daemons
// on a LAN between them.
//
// It builds the package set of bench/cold.sh with internal/testrepo (41 real
// .debs, 191 MB: 8 × 30 KB, 8 × 100 KB, 8 × 300 KB, 6 × 1 MB, 5 × 3 MB,
// 3 × 8 MB, 2 × 20 MB, 1 × 100 MB; signed InRelease, by-hash indexes, no SHA1
// as Debian since bookworm) and serves it with testrepo.ServeMirror inside the
// mirror's namespace. Hosts: h1 (where apt runs and the measured daemon
// runs), h2 (daemon A, which holds every package after one warm-up run), h3
// (daemon E, a DHT member that holds nothing).
//
// WAN phase, runs interleaved (the order rotates each run), apt-get update
// untimed, then `apt-get download` of all 41 packages timed (apt's own way:
// one connection, up to 10 pipelined requests):
//
//	direct   apt on h1 straight to the mirror
//	lone     through a fresh daemon on h1 with an empty cache and no DHT peer
//	dht      through a fresh daemon on h1 whose DHT peer (E) holds none of the files
//	peer     through a fresh daemon on h1 whose DHT peer (A, on the LAN) holds them all
//
// LAN phase: a second bed whose mirror link is LAN (sub-millisecond). Time to
// first byte of each package, cold (never asked before), on a kept-alive
// connection from h1: straight from the mirror, through a lone daemon, and
// through a daemon with an empty DHT peer; the order rotates per file.
//
// It is a benchmark driver, not a test: it prints Markdown tables and writes
// raw results to -out. Every process it starts dies with it (Pdeathsig), and
// the beds are removed on exit or by the next run (netbed.CleanStale).
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/apt-p2p/apt-p2p/internal/apttest"
	"github.com/apt-p2p/apt-p2p/internal/netbed"
	"github.com/apt-p2p/apt-p2p/internal/testrepo"
)

var (
	runs     = flag.Int("runs", 3, "interleaved runs of each WAN case")
	bin      = flag.String("bin", "", "apt-p2p binary; or label=path,label=path,… to compare builds in one interleaved run (the daemon cases run once per build)")
	outDir   = flag.String("out", "bench/out/wan", "raw results directory")
	work     = flag.String("work", "", "scratch directory (default: a new temporary one)")
	cases    = flag.String("cases", "direct,lone,dht,peer", "WAN cases to run")
	ttfbOnly = flag.Bool("ttfb-only", false, "only the LAN-profile time to first byte")
	wanOnly  = flag.Bool("wan-only", false, "only the WAN phase")
	logLevel = flag.String("log-level", "warn", "the daemons' LOG_LEVEL (their logs are in -out)")
)

// build is one apt-p2p binary under comparison.
type build struct{ label, path string }

var builds []build

// name is a case's name for build b ("lone", or "lone[label]" when comparing).
func (b build) name(c string) string {
	if b.label == "" {
		return c
	}
	return c + "[" + b.label + "]"
}

// The package set of bench/cold.sh.
var groups = []struct {
	name  string
	count int
	size  int64
}{
	{"c30k", 8, 30720}, {"c100k", 8, 102400}, {"c300k", 8, 307200}, {"c1m", 6, 1048576},
	{"c3m", 5, 3145728}, {"c8m", 3, 8388608}, {"c20m", 2, 20971520}, {"c100m", 1, 104857600},
}

func main() {
	flag.Parse()
	if *bin == "" {
		fail(errors.New("-bin is required"))
	}
	for _, b := range strings.Split(*bin, ",") {
		label, path, ok := strings.Cut(b, "=")
		if !ok {
			label, path = "", b
		}
		builds = append(builds, build{label, path})
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx); err != nil {
		fail(err)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "wanbench:", err)
	os.Exit(1)
}

type bench struct {
	ctx     context.Context
	tmp     string
	repo    *testrepo.Repo
	base    string
	results *os.File
	total   int64
}

func run(ctx context.Context) error {
	b := &bench{ctx: ctx}
	var err error
	if b.tmp = *work; b.tmp == "" {
		if b.tmp, err = os.MkdirTemp("", "wanbench"); err != nil {
			return err
		}
		defer os.RemoveAll(b.tmp)
	}
	if err := os.MkdirAll(*outDir, 0o755); err != nil {
		return err
	}
	if b.results, err = os.Create(filepath.Join(*outDir, "results.tsv")); err != nil {
		return err
	}
	defer b.results.Close()

	t0 := time.Now()
	var specs []testrepo.PackageSpec
	for _, g := range groups {
		for i := range g.count {
			specs = append(specs, testrepo.PackageSpec{Name: fmt.Sprintf("bench-%s-%02d", g.name, i), Size: g.size})
		}
	}
	b.base = filepath.Join(b.tmp, "mirror")
	b.repo, err = testrepo.Build(filepath.Join(b.base, "debian"), testrepo.Options{Packages: specs, ByHash: true, NoSHA1: true})
	if err != nil {
		return err
	}
	for _, p := range b.repo.Packages {
		b.total += p.Size
	}
	fmt.Fprintf(os.Stderr, "repository: %d packages, %.1f MB, built in %v\n", len(b.repo.Packages), float64(b.total)/1e6, time.Since(t0).Round(time.Second))

	if !*ttfbOnly {
		if err := b.wanPhase(); err != nil {
			return err
		}
	}
	if !*wanOnly {
		if err := b.lanPhase(); err != nil {
			return err
		}
	}
	return nil
}

// world is one bed with its hosts, mirror and long-lived daemons.
type world struct {
	bed            *netbed.Bed
	lan            *netbed.Segment
	h1, h2, h3, mh *netbed.Host
	mirror         *testrepo.Mirror
	daemons        []*daemon
}

func (b *bench) newWorld(link netbed.Link) (*world, error) {
	bed, err := netbed.New(netbed.Options{})
	if err != nil {
		return nil, err
	}
	w := &world{bed: bed}
	ok := false
	defer func() {
		if !ok {
			w.close()
		}
	}()
	if w.lan, err = bed.AddSegment(netbed.SegmentConfig{Name: "lan"}); err != nil {
		return nil, err
	}
	wan, err := bed.AddSegment(netbed.SegmentConfig{Name: "mirror", Uplink: link})
	if err != nil {
		return nil, err
	}
	for _, h := range []struct {
		p    **netbed.Host
		name string
		seg  *netbed.Segment
	}{{&w.h1, "h1", w.lan}, {&w.h2, "h2", w.lan}, {&w.h3, "h3", w.lan}, {&w.mh, "mirror", wan}} {
		if *h.p, err = bed.AddHost(h.name, h.seg, netbed.LAN); err != nil {
			return nil, err
		}
	}
	if err := w.mh.Do(func() (err error) {
		w.mirror, err = testrepo.ServeMirror(netip.AddrPortFrom(w.mh.Addr4(), 80).String(), b.base)
		return err
	}); err != nil {
		return nil, err
	}
	ok = true
	return w, nil
}

func (w *world) close() {
	for _, d := range w.daemons {
		d.stop()
	}
	if w.mirror != nil {
		w.mirror.Close()
	}
	w.bed.Close()
}

func (w *world) mirrorBase() string { return w.mirror.Addr() + "/debian" }

// daemon is one apt-p2p process inside a host.
type daemon struct {
	h     *netbed.Host
	addr  string
	cache string
	cmd   *exec.Cmd
	done  chan struct{}
	log   *os.File
	http  *http.Client
}

const port = 9977

// startDaemon starts a daemon of the first build on h at the default port.
func (b *bench) startDaemon(w *world, h *netbed.Host, name string, sets ...string) (*daemon, error) {
	return b.startDaemonPort(w, h, name, port, builds[0].path, sets...)
}

func (b *bench) startDaemonPort(w *world, h *netbed.Host, name string, port int, binary string, sets ...string) (*daemon, error) {
	cache := filepath.Join(b.tmp, "cache-"+name)
	os.RemoveAll(cache)
	d := &daemon{h: h, addr: netip.AddrPortFrom(h.Addr4(), uint16(port)).String(), cache: cache, done: make(chan struct{}),
		http: h.HTTPClient(10 * time.Second)}
	args := []string{"run", "--embedded", "--bind", h.Addr4().String(), "--port", strconv.Itoa(port), "--cache-dir", cache,
		"--set", "LOG_LEVEL=" + *logLevel, "--set", "LOCAL_OK=yes", "--set", "ALLOWED_CLIENTS=" + w.lan.Prefix4.String(),
		// Each case's peers are set with BOOTSTRAP: a daemon "alone" must not find the
		// others of the bed on the LAN by itself.
		"--set", "LAN_DISCOVERY=no"}
	for _, s := range sets {
		args = append(args, "--set", s)
	}
	var err error
	if d.log, err = os.OpenFile(filepath.Join(*outDir, "daemon-"+name+".log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644); err != nil {
		return nil, err
	}
	d.cmd = exec.Command(binary, args...)
	d.cmd.Stdout, d.cmd.Stderr = d.log, d.log
	if err := h.Start(d.cmd); err != nil {
		return nil, err
	}
	go func() { d.cmd.Wait(); close(d.done) }()
	for deadline := time.Now().Add(20 * time.Second); ; {
		if _, err := d.stats(); err == nil {
			return d, nil
		}
		select {
		case <-d.done:
			return nil, fmt.Errorf("daemon %s exited at start (log in %s)", name, d.log.Name())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			d.stop()
			return nil, fmt.Errorf("daemon %s did not answer", name)
		}
	}
}

func (d *daemon) stop() {
	select {
	case <-d.done:
	default:
		d.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-d.done:
		case <-time.After(15 * time.Second):
			d.cmd.Process.Kill()
			<-d.done
		}
	}
	d.log.Close()
	os.RemoveAll(d.cache)
}

type stats struct {
	Joined  bool `json:"joined"`
	Session struct {
		Mirror int64 `json:"mirror_down"`
		Peers  int64 `json:"peer_down"`
		Cache  int64 `json:"cache_down"`
	} `json:"session"`
	DHT struct {
		Nodes int `json:"Nodes"`
	} `json:"dht"`
}

func (d *daemon) stats() (stats, error) {
	var st stats
	resp, err := d.http.Get("http://" + d.addr + "/stats.json")
	if err != nil {
		return st, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return st, fmt.Errorf("stats.json: %s", resp.Status)
	}
	return st, json.NewDecoder(resp.Body).Decode(&st)
}

func (d *daemon) waitJoined() error {
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if st, err := d.stats(); err == nil && st.Joined && st.DHT.Nodes > 0 {
			return nil
		}
	}
	return fmt.Errorf("daemon %s did not join the DHT", d.addr)
}

// aptRoot is a fresh apt root on h whose sources point at base (a daemon's
// prefix URL, or the mirror).
func (b *bench) aptRoot(h *netbed.Host, base string) (*apttest.Root, error) {
	dir, err := os.MkdirTemp(b.tmp, "apt")
	if err != nil {
		return nil, err
	}
	r, err := apttest.NewRoot(dir)
	if err != nil {
		return nil, err
	}
	r.Start = h.Start
	r.HTTPTimeout = 60 * time.Second
	r.Timeout = 10 * time.Minute
	return r, r.SetSources(b.repo.SourcesLine(base))
}

// aptDownload runs apt-get update (untimed), then apt-get download of every
// package (timed), and checks the files.
func (b *bench) aptDownload(h *netbed.Host, base string) (time.Duration, error) {
	r, err := b.aptRoot(h, base)
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(r.Dir)
	if err := r.Update(b.ctx); err != nil {
		return 0, err
	}
	dl := filepath.Join(r.Dir, "dl")
	if err := os.Mkdir(dl, 0o755); err != nil {
		return 0, err
	}
	t0 := time.Now()
	if err := r.Download(b.ctx, dl, b.repo.Names()...); err != nil {
		return 0, err
	}
	took := time.Since(t0)
	if err := apttest.VerifyFiles(b.repo, dl); err != nil {
		return 0, err
	}
	return took, nil
}

func (b *bench) record(fields ...any) {
	var s []string
	for _, f := range fields {
		s = append(s, fmt.Sprint(f))
	}
	fmt.Fprintln(b.results, strings.Join(s, "\t"))
	fmt.Fprintln(os.Stderr, strings.Join(s, " "))
}

func (b *bench) wanPhase() error {
	w, err := b.newWorld(netbed.WAN)
	if err != nil {
		return err
	}
	defer w.close()
	want := map[string]bool{}
	for _, c := range strings.Split(*cases, ",") {
		want[c] = true
	}
	// A holds every package (one warm-up run through it, which also warms
	// the mirror's page cache); E is a DHT member that holds nothing.
	a, err := b.startDaemon(w, w.h2, "A", "apt_p2p_Khashmir.BOOTSTRAP_NODE=yes")
	if err != nil {
		return err
	}
	w.daemons = append(w.daemons, a)
	if _, err := b.aptDownload(w.h2, "http://"+a.addr+"/"+w.mirrorBase()); err != nil {
		return fmt.Errorf("warming A: %w", err)
	}
	e, err := b.startDaemon(w, w.h3, "E", "apt_p2p_Khashmir.BOOTSTRAP_NODE=yes")
	if err != nil {
		return err
	}
	w.daemons = append(w.daemons, e)

	type kase struct {
		name string
		run  func() (time.Duration, string, error)
	}
	through := func(bd build, name string, sets ...string) func() (time.Duration, string, error) {
		return func() (time.Duration, string, error) {
			d, err := b.startDaemonPort(w, w.h1, bd.name(name), port, bd.path, sets...)
			if err != nil {
				return 0, "", err
			}
			defer d.stop()
			if len(sets) > 0 && strings.Contains(sets[0], "BOOTSTRAP=") {
				if err := d.waitJoined(); err != nil {
					return 0, "", err
				}
			}
			took, err := b.aptDownload(w.h1, "http://"+d.addr+"/"+w.mirrorBase())
			if err != nil {
				return 0, "", err
			}
			st, err := d.stats()
			return took, fmt.Sprintf("peers=%d mirror=%d", st.Session.Peers, st.Session.Mirror), err
		}
	}
	var ks []kase
	if want["direct"] {
		ks = append(ks, kase{"direct", func() (time.Duration, string, error) {
			took, err := b.aptDownload(w.h1, "http://"+w.mirrorBase())
			return took, "", err
		}})
	}
	for _, bd := range builds {
		for _, c := range []struct{ name, set string }{
			{"lone", "apt_p2p_Khashmir.BOOTSTRAP_NODE=yes"},
			{"dht", "apt_p2p_Khashmir.BOOTSTRAP=" + e.addr},
			{"peer", "apt_p2p_Khashmir.BOOTSTRAP=" + a.addr},
		} {
			if want[c.name] {
				ks = append(ks, kase{bd.name(c.name), through(bd, c.name, c.set)})
			}
		}
	}
	times := map[string][]float64{}
	notes := map[string]string{}
	for r := range *runs {
		for i := range ks {
			k := ks[(i+r)%len(ks)]
			w.mirror.Reset()
			took, note, err := k.run()
			if werr := writeMirrorLog(w.mirror, filepath.Join(*outDir, fmt.Sprintf("mirror-%s-%d.tsv", k.name, r+1))); werr != nil && err == nil {
				err = werr
			}
			if err != nil {
				return fmt.Errorf("WAN run %d, %s: %w", r+1, k.name, err)
			}
			if b.ctx.Err() != nil {
				return b.ctx.Err()
			}
			times[k.name] = append(times[k.name], took.Seconds())
			notes[k.name] = note
			b.record("wan", r+1, k.name, fmt.Sprintf("%.3f", took.Seconds()), note)
		}
	}
	direct := median(times["direct"])
	fmt.Printf("\nWAN profile (mirror link %v), apt-get download of %d packages (%.0f MB), medians of %d interleaved runs\n\n",
		netbed.WAN, len(b.repo.Packages), float64(b.total)/1e6, *runs)
	fmt.Println("| case | median time | runs | vs direct | apt throughput | daemon's bytes by source (last run) |")
	fmt.Println("|---|---|---|---|---|---|")
	titles := map[string]string{"direct": "(a) direct to the mirror"}
	for _, bd := range builds {
		suffix := ""
		if bd.label != "" {
			suffix = " — " + bd.label
		}
		titles[bd.name("lone")] = "(b) through a daemon with no peers (alone)" + suffix
		titles[bd.name("dht")] = "(b') through a daemon whose DHT peer lacks the files" + suffix
		titles[bd.name("peer")] = "(c) through a daemon whose LAN peer holds the files" + suffix
	}
	for _, k := range ks {
		m := median(times[k.name])
		var runsStr []string
		for _, v := range times[k.name] {
			runsStr = append(runsStr, fmt.Sprintf("%.2f", v))
		}
		fmt.Printf("| %s | %.2f s | %s | %.2f× | %.1f Mbit/s | %s |\n", titles[k.name], m, strings.Join(runsStr, ", "),
			m/direct, float64(b.total)*8/m/1e6, notes[k.name])
	}
	fmt.Printf("\ndelay lines: %+v\n", w.bed.LinkStats())
	return nil
}

func (b *bench) lanPhase() error {
	w, err := b.newWorld(netbed.LAN)
	if err != nil {
		return err
	}
	defer w.close()
	e, err := b.startDaemon(w, w.h3, "E2", "apt_p2p_Khashmir.BOOTSTRAP_NODE=yes")
	if err != nil {
		return err
	}
	w.daemons = append(w.daemons, e)
	type target struct {
		name, title, hostport, prefix string
		c                             *keepAlive
		ttfb                          []float64
	}
	targets := []*target{{name: "direct", title: "direct to the mirror", hostport: w.mirror.Addr()}}
	for i, bd := range builds {
		suffix := ""
		if bd.label != "" {
			suffix = " — " + bd.label
		}
		// Every daemon here shares h1's namespace: its own port, its own cache.
		lone, err := b.startDaemonPort(w, w.h1, bd.name("ttfb-lone"), port+2*i, bd.path, "apt_p2p_Khashmir.BOOTSTRAP_NODE=yes")
		if err != nil {
			return err
		}
		w.daemons = append(w.daemons, lone)
		withPeer, err := b.startDaemonPort(w, w.h1, bd.name("ttfb-dht"), port+2*i+1, bd.path, "apt_p2p_Khashmir.BOOTSTRAP="+e.addr)
		if err != nil {
			return err
		}
		w.daemons = append(w.daemons, withPeer)
		if err := withPeer.waitJoined(); err != nil {
			return err
		}
		// apt-get update through each daemon, so they know the packages' hashes.
		for _, d := range []*daemon{lone, withPeer} {
			r, err := b.aptRoot(w.h1, "http://"+d.addr+"/"+w.mirrorBase())
			if err != nil {
				return err
			}
			if err := r.Update(b.ctx); err != nil {
				return err
			}
			os.RemoveAll(r.Dir)
		}
		targets = append(targets,
			&target{name: bd.name("lone"), title: "through a daemon with no peers" + suffix, hostport: lone.addr, prefix: "/" + w.mirror.Addr()},
			&target{name: bd.name("dht"), title: "through a daemon whose DHT peer lacks the file" + suffix, hostport: withPeer.addr, prefix: "/" + w.mirror.Addr()})
	}
	for _, t := range targets {
		if t.c, err = dialKeepAlive(b.ctx, w.h1, t.hostport); err != nil {
			return err
		}
		defer t.c.close()
	}
	// Every package once per target, the order of targets rotating per file.
	for i, p := range b.repo.Packages {
		for j := range targets {
			t := targets[(i+j)%len(targets)]
			d, err := t.c.ttfb(t.prefix + "/debian/" + p.Filename)
			if err != nil {
				return fmt.Errorf("TTFB %s %s: %w", t.name, p.Name, err)
			}
			t.ttfb = append(t.ttfb, d.Seconds()*1e3)
			b.record("ttfb", p.Name, t.name, fmt.Sprintf("%.3f", d.Seconds()*1e3))
		}
	}
	fmt.Printf("\nLAN profile (mirror link %v): time to first byte of a cold package on a kept-alive connection from h1, %d packages each\n\n",
		netbed.LAN, len(b.repo.Packages))
	fmt.Println("| path | TTFB p50 | p90 | max | p50 minus direct p50 |")
	fmt.Println("|---|---|---|---|---|")
	dm := median(targets[0].ttfb)
	for _, t := range targets {
		s := slices.Clone(t.ttfb)
		slices.Sort(s)
		fmt.Printf("| %s | %.2f ms | %.2f ms | %.2f ms | %+.2f ms |\n", t.title, median(s), s[(len(s)-1)*9/10], s[len(s)-1], median(s)-dm)
	}
	return nil
}

// keepAlive is one HTTP/1.1 connection from a host, for sequential requests.
type keepAlive struct {
	c    net.Conn
	br   *bufio.Reader
	host string
}

func dialKeepAlive(ctx context.Context, h *netbed.Host, hostport string) (*keepAlive, error) {
	c, err := h.DialContext(ctx, "tcp", hostport)
	if err != nil {
		return nil, err
	}
	return &keepAlive{c: c, br: bufio.NewReaderSize(c, 64<<10), host: hostport}, nil
}

func (k *keepAlive) close() { k.c.Close() }

// ttfb sends GET path and returns the time from writing the request to the
// first byte of the response; the body is read and checked for length.
func (k *keepAlive) ttfb(path string) (time.Duration, error) {
	k.c.SetDeadline(time.Now().Add(2 * time.Minute))
	t0 := time.Now()
	if _, err := fmt.Fprintf(k.c, "GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: wanbench\r\n\r\n", path, k.host); err != nil {
		return 0, err
	}
	if _, err := k.br.Peek(1); err != nil {
		return 0, err
	}
	d := time.Since(t0)
	resp, err := http.ReadResponse(k.br, &http.Request{Method: "GET"})
	if err != nil {
		return 0, err
	}
	n, err := io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err != nil {
		return 0, err
	}
	if resp.StatusCode != 200 || (resp.ContentLength >= 0 && n != resp.ContentLength) {
		return 0, fmt.Errorf("status %d, %d of %d bytes", resp.StatusCode, n, resp.ContentLength)
	}
	return d, nil
}

// writeMirrorLog writes what the mirror was asked in one run: method, path,
// Range, status and body bytes, in the order the responses ended (how a
// daemon splits files into requests shows here).
func writeMirrorLog(m *testrepo.Mirror, path string) error {
	var b strings.Builder
	for _, r := range m.Log() {
		fmt.Fprintf(&b, "%s\t%s\t%s\t%d\t%d\t%s\n", r.Method, r.Path, r.Range, r.Status, r.Bytes, r.Remote)
	}
	return os.WriteFile(path, []byte(b.String()), 0o644)
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
