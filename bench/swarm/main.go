// Command swarm is the driver of bench/swarm.sh (issue 7, measurement 3): N
// real apt-p2p daemons on 127.0.0.2.. each fetch the same package set from a
// counting test mirror, all at once or staggered, beside the same clients
// straight to the mirror and through one shared apt-cacher-ng.
//
// It builds the repository once (internal/testrepo, a realistic size mix:
// 80% of the packages under 512 KiB, a tail up to 100 MiB), serves it with
// testrepo.ServeMirror (which counts bytes per path), and for each scenario
// starts fresh daemons with empty caches. Each daemon's client first fetches
// InRelease and the by-hash Packages.xz through it, as apt-get update would,
// and waits until the daemon has parsed the index (untimed); then it downloads
// every .deb through the daemon's prefix URL with apt-like parallelism and
// checks each file's SHA256. The measured phase is the package downloads:
// mirror package bytes ÷ unique bytes, completion time per client, and the
// daemons' /stats.json session counters by source.
//
// It is a benchmark driver, not a test: it prints a Markdown table and writes
// the results as JSON. Every process it starts dies with it (Pdeathsig).
package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/apt-p2p/apt-p2p/bench/internal/ratelimit"
	"github.com/apt-p2p/apt-p2p/internal/netbed"
	"github.com/apt-p2p/apt-p2p/internal/testrepo"
)

// Result is one scenario's outcome.
type Result struct {
	System      string  `json:"system"` // apt-p2p, direct, apt-cacher-ng
	Mode        string  `json:"mode"`   // simultaneous, staggered
	Clients     int     `json:"clients"`
	MinPeers    int     `json:"min_download_peers,omitempty"`
	Packages    int     `json:"packages"`
	UniqueBytes int64   `json:"unique_bytes"`
	MirrorBytes int64   `json:"mirror_bytes"` // package bytes the mirror sent
	MirrorReqs  int     `json:"mirror_requests"`
	Ratio       float64 `json:"mirror_over_unique"`
	P50         float64 `json:"completion_p50_s"`
	P99         float64 `json:"completion_p99_s"`
	Max         float64 `json:"completion_max_s"`
	Wall        float64 `json:"wall_s"` // first client start to last client end
	Completion  []float64
	// Sums of the daemons' session counters over the measured phase.
	MirrorDown int64 `json:"mirror_down"`
	PeerDown   int64 `json:"peer_down"`
	CacheDown  int64 `json:"cache_down"`
	PeerUp     int64 `json:"peer_up"`
	// CPU seconds (user+system) of the daemons or of apt-cacher-ng over the
	// whole scenario (start-up and the untimed index phase included).
	CPU float64 `json:"cpu_s"`
	// Over the measured phase only (first client start to last client end):
	// CPU seconds of the system's processes (the daemons, apt-cacher-ng), of
	// this driver (the clients and the mirror), and how busy the machine's
	// cores were (1 = every core all the time). A phase whose machine was
	// near 1 was bound by CPU: on one machine the daemons share the cores
	// that N real machines would each have.
	PhaseCPU    float64 `json:"phase_cpu_s"`
	DriverCPU   float64 `json:"phase_driver_cpu_s"`
	MachineBusy float64 `json:"phase_machine_busy"`
	Errors      int     `json:"errors"`
	Failed      string  `json:"failed,omitempty"` // why the scenario did not finish
	Retries     int     `json:"retries"`
}

type options struct {
	bin      string
	acng     string
	work     string
	parallel int
	stagger  time.Duration
	timeout  time.Duration
	// mirrorRate, when > 0, limits the mirror's total upload in bytes/s.
	mirrorRate int64
	// keep leaves each scenario's directory (daemon logs, caches) in work.
	keep bool
	// sets are extra configuration settings for every apt-p2p daemon.
	sets []string
	log  *slog.Logger

	// hostRate, when > 0, runs every machine in a network namespace of its
	// own on one LAN (internal/netbed), each behind a link of this many
	// bits/s each way: the daemons' hosts, apt-cacher-ng's host and the
	// direct clients' hosts alike. The mirror's host is unshaped, or behind
	// netbed.WAN with mirrorWAN.
	hostRate  int64
	mirrorWAN bool
	bed       *bed
}

// bed is the namespace network of the -host-rate mode.
type bed struct {
	b      *netbed.Bed
	mirror *netbed.Host
	cache  *netbed.Host   // apt-cacher-ng's machine
	hosts  []*netbed.Host // the clients' machines (and their daemons')
}

// dialer is where a client's or status request's connections start: the
// driver's own namespace, or a host of the bed.
func (o *options) dialer(i int) func(ctx context.Context, network, addr string) (net.Conn, error) {
	if o.bed != nil {
		return o.bed.hosts[i].DialContext
	}
	return (&net.Dialer{Timeout: 10 * time.Second}).DialContext
}

func main() {
	var o options
	pkgSet := flag.String("set", "quick", "package set: quick (30 packages, ~68 MB) or full (60 packages, ~265 MB)")
	daemons := flag.String("daemons", "16", "comma-separated daemon counts")
	minPeers := flag.String("min-peers", "0", "comma-separated MIN_DOWNLOAD_PEERS values for apt-p2p (0, the default: the mirror joins by measured peer throughput)")
	systems := flag.String("systems", "apt-p2p,direct,apt-cacher-ng", "systems to run")
	modes := flag.String("modes", "simultaneous,staggered", "start modes")
	jsonOut := flag.String("json", "", "write the results here as JSON")
	flag.StringVar(&o.bin, "bin", "bin/apt-p2p", "apt-p2p binary")
	flag.StringVar(&o.acng, "acng", "/usr/sbin/apt-cacher-ng", "apt-cacher-ng binary")
	flag.StringVar(&o.work, "work", "", "scratch directory (default: a new temporary one, removed at the end)")
	flag.IntVar(&o.parallel, "parallel", 6, "concurrent downloads per client (apt uses a few connections)")
	flag.DurationVar(&o.stagger, "stagger", 2*time.Second, "delay between client starts in the staggered mode")
	flag.DurationVar(&o.timeout, "timeout", 10*time.Minute, "limit for one scenario")
	flag.Int64Var(&o.mirrorRate, "mirror-rate", 0, "limit the mirror's total upload to this many bytes/s (0 = unlimited)")
	flag.BoolVar(&o.keep, "keep", false, "keep each scenario's directory (daemon logs and caches) under -work")
	flag.Int64Var(&o.hostRate, "host-rate", 0, "run each machine in a network namespace of its own on one LAN, behind a link of this many bits/s each way (0 = every process on this machine's loopback)")
	flag.BoolVar(&o.mirrorWAN, "mirror-wan", false, "with -host-rate: the mirror's host is behind a WAN link (100 Mbit/s, 40 ms round trip)")
	set := flag.String("set-daemon", "", "comma-separated NAME=value settings for every apt-p2p daemon (e.g. LOG_LEVEL=debug,HERD=no)")
	flag.Parse()
	o.sets = split(*set)
	o.log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, &o, *pkgSet, ints(*daemons), ints(*minPeers), split(*systems), split(*modes), *jsonOut); err != nil {
		fmt.Fprintln(os.Stderr, "swarm:", err)
		os.Exit(1)
	}
}

func split(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

func ints(s string) []int {
	var out []int
	for _, f := range split(s) {
		n, err := strconv.Atoi(f)
		if err != nil {
			fmt.Fprintln(os.Stderr, "swarm: bad number", f)
			os.Exit(2)
		}
		out = append(out, n)
	}
	return out
}

// packageSet is the size mix: 80% of the packages are under 512 KiB (as in
// Debian, apt-p2p-original.md §7.1), log-uniform between 24 KiB (the smallest
// .deb dpkg-deb makes) and 500 KiB; the rest is a tail up to 100 MiB. The names
// are shuffled so that big and small files interleave in apt's (name) order.
func packageSet(set string) []testrepo.PackageSpec {
	small, tail := 24, []float64{1, 2, 4, 8, 16, 32}
	if set == "full" {
		small, tail = 48, []float64{1, 1.5, 2, 3, 5, 8, 12, 16, 24, 32, 48, 100}
	}
	rng := rand.New(rand.NewPCG(7, 7))
	var sizes []int64
	for range small {
		lo, hi := 24.0*1024, 500.0*1024
		sizes = append(sizes, int64(lo*math.Pow(hi/lo, rng.Float64())))
	}
	for _, mb := range tail {
		sizes = append(sizes, int64(mb*(1<<20)))
	}
	rng.Shuffle(len(sizes), func(i, j int) { sizes[i], sizes[j] = sizes[j], sizes[i] })
	specs := make([]testrepo.PackageSpec, len(sizes))
	for i, s := range sizes {
		specs[i] = testrepo.PackageSpec{Name: fmt.Sprintf("swarm-%03d", i), Size: s}
	}
	return specs
}

func run(ctx context.Context, o *options, set string, counts, minPeers []int, systems, modes []string, jsonOut string) error {
	if o.work == "" {
		d, err := os.MkdirTemp("", "apt-p2p-swarm")
		if err != nil {
			return err
		}
		defer os.RemoveAll(d)
		o.work = d
	}
	t0 := time.Now()
	repoDir := filepath.Join(o.work, "mirror", "debian")
	repo, err := testrepo.Build(repoDir, testrepo.Options{ByHash: true, Packages: packageSet(set), Seed: 1})
	if err != nil {
		return err
	}
	var unique int64
	small := 0
	for _, p := range repo.Packages {
		unique += p.Size
		if p.Size < 512<<10 {
			small++
		}
	}
	o.log.Info("repository built", "packages", len(repo.Packages), "under_512KiB", small, "bytes", unique, "took", time.Since(t0).Round(time.Millisecond))
	// apt-cacher-ng 3.7 mishandles ports above 32767 (it cannot bind them and
	// answers "503 Connection refused" for upstreams on them), so the mirror
	// listens below.
	mirrorIP := "127.0.0.1"
	inMirrorNS := func(fn func() error) error { return fn() }
	if o.hostRate > 0 {
		if o.bed, err = newBed(o, slices.Max(counts)); err != nil {
			return err
		}
		defer o.bed.b.Close()
		mirrorIP = o.bed.mirror.Addr4().String()
		inMirrorNS = o.bed.mirror.Do
	}
	var mirror *testrepo.Mirror
	for range 100 {
		err = inMirrorNS(func() (err error) {
			mirror, err = testrepo.ServeMirror(net.JoinHostPort(mirrorIP, strconv.Itoa(lowPort())), filepath.Join(o.work, "mirror"))
			return err
		})
		if err == nil {
			break
		}
	}
	if err != nil {
		return err
	}
	defer mirror.Close()
	mirrorAddr := mirror.Addr()
	if o.mirrorRate > 0 {
		// The same counting handler behind one shared rate limit: a mirror
		// (or site uplink) of limited total bandwidth.
		var srv *http.Server
		var addr string
		err := inMirrorNS(func() (err error) {
			srv, addr, err = serveLimited(mirror, o.mirrorRate, mirrorIP)
			return err
		})
		if err != nil {
			return err
		}
		defer srv.Close()
		mirrorAddr = addr
		o.log.Info("mirror rate-limited", "bytes_per_s", o.mirrorRate)
	}

	var results []Result
	failed := false
	for _, n := range counts {
		for _, sys := range systems {
			for _, mode := range modes {
				mps := []int{0}
				if sys == "apt-p2p" {
					mps = minPeers
				}
				for _, mp := range mps {
					if ctx.Err() != nil {
						return ctx.Err()
					}
					sctx, cancel := context.WithTimeout(ctx, o.timeout)
					r, err := scenario(sctx, o, repo, mirror, mirrorAddr, sys, mode, n, mp)
					cancel()
					if err != nil {
						// One system failing must not lose the others' results.
						o.log.Error("scenario failed", "system", sys, "mode", mode, "clients", n, "min_peers", mp, "err", err)
						r.Failed = err.Error()
						failed = true
					}
					r.UniqueBytes, r.Packages = unique, len(repo.Packages)
					r.Ratio = float64(r.MirrorBytes) / float64(unique)
					o.log.Info("scenario done", "system", sys, "mode", mode, "clients", n, "min_peers", mp,
						"mirror/unique", fmt.Sprintf("%.2f", r.Ratio), "p50", r.P50, "p99", r.P99, "errors", r.Errors)
					results = append(results, r)
				}
			}
		}
	}
	where := "every process on this machine's loopback"
	if o.bed != nil {
		where = fmt.Sprintf("each machine in a namespace of its own on one LAN, behind a link of %s; the mirror's link: ", netbed.Link{Rate: o.hostRate})
		if o.mirrorWAN {
			where += netbed.WAN.String()
		} else {
			where += "unshaped"
		}
	}
	printTable(os.Stdout, results, len(repo.Packages), small, unique, o.mirrorRate, where)
	if jsonOut != "" {
		b, _ := json.MarshalIndent(results, "", "  ")
		if err := os.WriteFile(jsonOut, b, 0o644); err != nil {
			return err
		}
	}
	if failed {
		return errors.New("some scenarios failed (see the table)")
	}
	return nil
}

// scenario runs one system with n clients in one start mode.
func scenario(ctx context.Context, o *options, repo *testrepo.Repo, mirror *testrepo.Mirror, mirrorAddr, sys, mode string, n, minPeers int) (r Result, err error) {
	r = Result{System: sys, Mode: mode, Clients: n, MinPeers: minPeers}
	dir, err := os.MkdirTemp(o.work, sys+"-")
	if err != nil {
		return r, err
	}
	if !o.keep {
		defer os.RemoveAll(dir)
	}
	mirrorBase := "http://" + mirrorAddr + "/debian/"
	clients := make([]*client, n)
	var ds []*daemon
	acngPid := 0
	switch sys {
	case "direct":
		for i := range clients {
			clients[i] = newClient(o.parallel, nil, o.dialer(i), func(p string) string { return mirrorBase + p })
		}
	case "apt-cacher-ng":
		a, err := startACNG(ctx, o, dir, mirrorAddr)
		if err != nil {
			return r, err
		}
		defer func() { r.CPU = a.stop() }()
		acngPid = a.cmd.Process.Pid
		proxy, _ := url.Parse("http://" + a.addr)
		for i := range clients {
			clients[i] = newClient(o.parallel, proxy, o.dialer(i), func(p string) string { return mirrorBase + p })
		}
	case "apt-p2p":
		ds, err = startDaemons(ctx, o, dir, n, minPeers)
		defer func() { r.CPU = stopAll(ds) }()
		if err != nil {
			return r, err
		}
		for i, d := range ds {
			prefix := "http://" + d.local() + "/" + mirrorAddr + "/debian/"
			clients[i] = newClient(o.parallel, nil, o.dialer(i), func(p string) string { return prefix + p })
		}
		// apt-get update through every daemon (untimed), then wait until each
		// daemon's index knows the packages, so the measured phase starts from
		// what apt sees after an update.
		var xz *testrepo.IndexFile
		for i := range repo.Indexes {
			if repo.Indexes[i].Name == "main/binary-amd64/Packages.xz" {
				xz = &repo.Indexes[i]
			}
		}
		if xz == nil {
			return r, errors.New("no Packages.xz in the repository")
		}
		paths := []string{repo.DistPath("InRelease"), repo.DistPath("main/binary-amd64/by-hash/SHA256/" + xz.SHA256)}
		var wg sync.WaitGroup
		errs := make([]error, n)
		for i := range ds {
			wg.Go(func() {
				for _, p := range paths {
					if err := clients[i].fetch(ctx, p, -1, ""); err != nil {
						errs[i] = fmt.Errorf("daemon %s: %s: %w", ds[i].addr(), p, err)
						return
					}
				}
				errs[i] = ds[i].waitIndex(ctx, mirrorAddr+"/debian/"+repo.Packages[0].Filename)
			})
		}
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			return r, err
		}
	default:
		return r, fmt.Errorf("unknown system %q", sys)
	}

	before := sumStats(ctx, ds)
	mirror.Reset()
	var pids []int
	for _, d := range ds {
		pids = append(pids, d.cmd.Process.Pid)
	}
	if acngPid > 0 {
		pids = append(pids, acngPid)
	}
	cpu0, self0, busy0 := procsCPU(pids), selfCPU(), machineCPU()
	start := time.Now()
	var wg sync.WaitGroup
	times := make([]float64, n)
	var mu sync.Mutex
	for i, c := range clients {
		offset := time.Duration(0)
		if mode == "staggered" {
			offset = time.Duration(i) * o.stagger
		}
		wg.Go(func() {
			select {
			case <-time.After(offset):
			case <-ctx.Done():
				return
			}
			t := time.Now()
			errs, retries := c.fetchAll(ctx, repo.Packages)
			times[i] = time.Since(t).Seconds()
			mu.Lock()
			r.Errors += errs
			r.Retries += retries
			mu.Unlock()
		})
	}
	wg.Wait()
	r.Wall = time.Since(start).Seconds()
	r.PhaseCPU = procsCPU(pids) - cpu0
	r.DriverCPU = selfCPU() - self0
	if b := machineCPU(); r.Wall > 0 {
		r.MachineBusy = (b - busy0) / (r.Wall * float64(runtime.NumCPU()))
	}
	if ctx.Err() != nil {
		return r, fmt.Errorf("scenario did not finish: %w", ctx.Err())
	}
	// The mirror logs a response when its handler returns, which can be a
	// moment after the client has read the last byte: wait until the
	// counters stop moving.
	for prev, stable := mirror.TotalRequests(), 0; stable < 2; {
		time.Sleep(250 * time.Millisecond)
		cur := mirror.TotalRequests()
		if cur == prev {
			stable++
		} else {
			prev, stable = cur, 0
		}
	}
	after := sumStats(context.Background(), ds)
	r.MirrorDown = after.Mirror - before.Mirror
	r.PeerDown = after.Peers - before.Peers
	r.CacheDown = after.Cache - before.Cache
	r.PeerUp = after.Uploaded - before.Uploaded
	r.MirrorBytes = mirror.BytesUnder("/debian/pool/")
	for _, l := range mirror.Log() {
		if strings.HasPrefix(l.Path, "/debian/pool/") {
			r.MirrorReqs++
		}
	}
	r.Completion = slices.Clone(times)
	slices.Sort(times)
	r.P50, r.P99, r.Max = percentile(times, 50), percentile(times, 99), times[len(times)-1]
	for _, c := range clients {
		c.hc.CloseIdleConnections()
	}
	return r, nil
}

// percentile is the nearest-rank percentile of sorted xs.
func percentile(xs []float64, p float64) float64 {
	i := int(p/100*float64(len(xs))+0.999999) - 1
	return xs[min(max(i, 0), len(xs)-1)]
}

// client is one machine's apt: a connection pool of parallel connections.
type client struct {
	hc       *http.Client
	url      func(path string) string
	parallel int
}

func newClient(parallel int, proxy *url.URL, dial func(ctx context.Context, network, addr string) (net.Conn, error), u func(string) string) *client {
	tr := &http.Transport{
		MaxConnsPerHost:     parallel,
		MaxIdleConnsPerHost: parallel,
		DisableCompression:  true,
		ForceAttemptHTTP2:   false,
		DialContext:         dial,
	}
	if proxy != nil {
		tr.Proxy = http.ProxyURL(proxy)
	}
	return &client{hc: &http.Client{Transport: tr}, url: u, parallel: parallel}
}

// stallTimeout cuts a request that has received nothing for this long, as
// apt does (Acquire::http::Timeout); fetchAll then retries it.
const stallTimeout = 30 * time.Second

var errStalled = errors.New("no data for 30 s")

// progressReader notes the time of every read for the stall watchdog.
type progressReader struct {
	r    io.Reader
	last *atomic.Int64
}

func (p progressReader) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	if n > 0 {
		p.last.Store(time.Now().UnixNano())
	}
	return n, err
}

// fetch GETs path and checks the size and SHA256 when given.
func (c *client) fetch(ctx context.Context, path string, size int64, sha string) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var last atomic.Int64
	last.Store(time.Now().UnixNano())
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				if time.Since(time.Unix(0, last.Load())) > stallTimeout {
					cancel(errStalled)
					return
				}
			}
		}
	}()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.url(path), nil)
	if err != nil {
		return err
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		if context.Cause(ctx) == errStalled {
			return errStalled
		}
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
		return fmt.Errorf("status %s", resp.Status)
	}
	h := sha256.New()
	n, err := io.Copy(h, progressReader{resp.Body, &last})
	if err != nil {
		if context.Cause(ctx) == errStalled {
			return errStalled
		}
		return err
	}
	if size >= 0 && n != size {
		return fmt.Errorf("got %d bytes, want %d", n, size)
	}
	if sha != "" && hex.EncodeToString(h.Sum(nil)) != sha {
		return errors.New("SHA256 mismatch")
	}
	return nil
}

// fetchAll downloads every package with c.parallel in flight, retrying a
// failed one twice (apt retries too); it returns the failures and retries.
func (c *client) fetchAll(ctx context.Context, pkgs []testrepo.Package) (failed, retries int) {
	work := make(chan *testrepo.Package)
	var mu sync.Mutex
	var wg sync.WaitGroup
	for range c.parallel {
		wg.Go(func() {
			for p := range work {
				var err error
				for attempt := range 3 {
					if attempt > 0 {
						mu.Lock()
						retries++
						mu.Unlock()
						time.Sleep(500 * time.Millisecond)
					}
					if err = c.fetch(ctx, p.Filename, p.Size, p.SHA256); err == nil || ctx.Err() != nil {
						break
					}
				}
				if err != nil {
					slog.Warn("download failed", "url", c.url(p.Filename), "err", err)
					mu.Lock()
					failed++
					mu.Unlock()
				}
			}
		})
	}
	for i := range pkgs {
		select {
		case work <- &pkgs[i]:
		case <-ctx.Done():
		}
	}
	close(work)
	wg.Wait()
	return failed, retries
}

// daemon is one apt-p2p process.
type daemon struct {
	ip    string
	port  int
	first bool // the bootstrap node
	own   bool // on a machine (namespace) of its own, listening on every address
	cmd   *exec.Cmd
	logp  string
	done  chan struct{}
	hc    *http.Client // for its status pages
}

func (d *daemon) addr() string { return net.JoinHostPort(d.ip, strconv.Itoa(d.port)) }

// local is where apt on the daemon's machine reaches it: its own address on
// loopback, localhost on a machine of its own (as apt would).
func (d *daemon) local() string {
	if d.own {
		return net.JoinHostPort("127.0.0.1", strconv.Itoa(d.port))
	}
	return d.addr()
}

// freePort finds a port free for both TCP and UDP on ip.
func freePort(ip string) (int, error) {
	for range 50 {
		ln, err := net.Listen("tcp", ip+":0")
		if err != nil {
			return 0, err
		}
		port := ln.Addr().(*net.TCPAddr).Port
		uc, err := net.ListenPacket("udp", net.JoinHostPort(ip, strconv.Itoa(port)))
		ln.Close()
		if err == nil {
			uc.Close()
			return port, nil
		}
	}
	return 0, errors.New("no free port on " + ip)
}

// startDaemons starts n daemons on 127.0.0.2.. with empty caches: the first is
// the bootstrap node, every other one bootstraps from it and from two random
// earlier daemons. It returns when all have joined the DHT.
func startDaemons(ctx context.Context, o *options, dir string, n, minPeers int) ([]*daemon, error) {
	rng := rand.New(rand.NewPCG(uint64(n), 1))
	var ds []*daemon
	for i := range n {
		ip, port := fmt.Sprintf("127.0.0.%d", 2+i), 0
		hc := statusClient
		if o.bed != nil {
			// A machine of its own: the default port is free.
			ip, port = o.bed.hosts[i].Addr4().String(), 9977
			hc = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DialContext: o.dialer(i)}}
		} else {
			var err error
			if port, err = freePort(ip); err != nil {
				return ds, err
			}
		}
		d := &daemon{ip: ip, port: port, first: i == 0, own: o.bed != nil, hc: hc, logp: filepath.Join(dir, fmt.Sprintf("daemon-%02d.log", i)), done: make(chan struct{})}
		sets := append([]string{"LOCAL_OK=yes", "LOG_LEVEL=info", "MIN_DOWNLOAD_PEERS=" + strconv.Itoa(minPeers)}, o.sets...)
		if i == 0 {
			sets = append(sets, "apt_p2p_Khashmir.BOOTSTRAP_NODE=yes")
		} else {
			boot := []string{ds[0].addr()}
			if i > 1 {
				for _, j := range rng.Perm(i - 1)[:min(2, i-1)] {
					boot = append(boot, ds[1+j].addr())
				}
			}
			sets = append(sets, "apt_p2p_Khashmir.BOOTSTRAP="+strings.Join(boot, " "))
		}
		args := []string{"run", "--embedded", "--port", strconv.Itoa(port),
			"--cache-dir", filepath.Join(dir, fmt.Sprintf("cache-%02d", i)), "--log-file", d.logp}
		if !d.own {
			args = append(args, "--bind", ip)
		}
		for _, s := range sets {
			args = append(args, "--set", s)
		}
		d.cmd = exec.Command(o.bin, args...)
		d.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		start := d.cmd.Start
		if o.bed != nil {
			start = func() error { return o.bed.hosts[i].Start(d.cmd) }
		}
		if err := start(); err != nil {
			return ds, err
		}
		go func() { d.cmd.Wait(); close(d.done) }()
		ds = append(ds, d)
		if i == 0 {
			// The others bootstrap from it: let it listen first.
			if err := d.waitJoined(ctx, 20*time.Second); err != nil {
				return ds, err
			}
		}
	}
	for _, d := range ds[1:] {
		if err := d.waitJoined(ctx, 60*time.Second); err != nil {
			return ds, err
		}
	}
	return ds, nil
}

type stats struct {
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
}

var statusClient = &http.Client{Timeout: 10 * time.Second}

func (d *daemon) getJSON(ctx context.Context, path string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+d.local()+path, nil)
	if err != nil {
		return err
	}
	resp, err := d.hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", path, resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

func (d *daemon) waitJoined(ctx context.Context, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	var last error
	for time.Now().Before(deadline) && ctx.Err() == nil {
		select {
		case <-d.done:
			return fmt.Errorf("daemon %s exited: %s", d.addr(), tailFile(d.logp, 20))
		default:
		}
		var st stats
		if err := d.getJSON(ctx, "/stats.json", &st); err != nil {
			last = err
		} else if st.Joined && (st.DHT.Nodes > 0 || d.first) {
			return nil
		} else {
			last = fmt.Errorf("not joined yet (%d nodes)", st.DHT.Nodes)
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("daemon %s did not join: %v\n%s", d.addr(), last, tailFile(d.logp, 20))
}

// waitIndex waits until the daemon's index has a hash for the mirror path q.
func (d *daemon) waitIndex(ctx context.Context, q string) error {
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		var l struct {
			Index string `json:"index"`
		}
		if err := d.getJSON(ctx, "/lookup?q="+url.QueryEscape(q), &l); err == nil && l.Index != "" {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("daemon %s: the index never listed %s", d.addr(), q)
}

// stopAll stops the daemons and returns the CPU seconds they used.
func stopAll(ds []*daemon) float64 {
	for _, d := range ds {
		_ = d.cmd.Process.Signal(syscall.SIGTERM)
	}
	var cpu float64
	for _, d := range ds {
		select {
		case <-d.done:
		case <-time.After(15 * time.Second):
			_ = d.cmd.Process.Kill()
			<-d.done
		}
		cpu += cpuSeconds(d.cmd)
	}
	return cpu
}

// procsCPU is the CPU seconds (user+system) the processes have used so far,
// from /proc/<pid>/stat (0 for any it cannot read).
func procsCPU(pids []int) float64 {
	var ticks int64
	for _, pid := range pids {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		// Fields after the command name (which may hold spaces) start at
		// the state, field 3; utime and stime are fields 14 and 15.
		i := bytes.LastIndexByte(b, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(b[i+1:]))
		if len(f) > 12 {
			u, _ := strconv.ParseInt(f[11], 10, 64)
			st, _ := strconv.ParseInt(f[12], 10, 64)
			ticks += u + st
		}
	}
	return float64(ticks) / clockTicks
}

// clockTicks is USER_HZ, the unit of /proc's CPU times (100 on Linux).
const clockTicks = 100

// selfCPU is this process's CPU seconds so far.
func selfCPU() float64 {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}

// machineCPU is the busy CPU seconds of every core so far (/proc/stat:
// everything but idle and iowait).
func machineCPU() float64 {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	var busy int64
	for i, x := range f[1:] {
		v, _ := strconv.ParseInt(x, 10, 64)
		if i != 3 && i != 4 { // idle, iowait
			busy += v
		}
	}
	return float64(busy) / clockTicks
}

func cpuSeconds(c *exec.Cmd) float64 {
	if c.ProcessState == nil {
		return 0
	}
	return (c.ProcessState.UserTime() + c.ProcessState.SystemTime()).Seconds()
}

type totals struct{ Mirror, Peers, Cache, Uploaded int64 }

func sumStats(ctx context.Context, ds []*daemon) totals {
	var t totals
	for _, d := range ds {
		var st stats
		if err := d.getJSON(ctx, "/stats.json", &st); err != nil {
			slog.Warn("stats", "daemon", d.addr(), "err", err)
			continue
		}
		t.Mirror += st.Session.Mirror
		t.Peers += st.Session.Peers
		t.Cache += st.Session.Cache
		t.Uploaded += st.Session.Uploaded
	}
	return t
}

func tailFile(p string, lines int) string {
	b, _ := os.ReadFile(p)
	l := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(l) > lines {
		l = l[len(l)-lines:]
	}
	return strings.Join(l, "\n")
}

// acng is one apt-cacher-ng in the foreground with its own configuration,
// cache and log directories.
type acng struct {
	cmd  *exec.Cmd
	addr string
	done chan struct{}
}

func startACNG(ctx context.Context, o *options, dir, mirrorAddr string) (*acng, error) {
	_, mport, _ := net.SplitHostPort(mirrorAddr)
	// apt-cacher-ng 3.7 fails to bind ports above 32767 ("Error resolving
	// address for binding"), so pick a free one below.
	port, ip := 0, "127.0.0.1"
	if o.bed != nil {
		port, ip = 3142, o.bed.cache.Addr4().String() // a machine of its own
	}
	for i := 0; i < 100 && port == 0; i++ {
		p := lowPort()
		if ln, err := net.Listen("tcp", net.JoinHostPort(ip, strconv.Itoa(p))); err == nil {
			ln.Close()
			port = p
		}
	}
	if port == 0 {
		return nil, errors.New("no free port below 32768 for apt-cacher-ng")
	}
	conf := filepath.Join(dir, "conf")
	for _, d := range []string{conf, filepath.Join(dir, "cache"), filepath.Join(dir, "log")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, err
		}
	}
	// No Remap-* lines: the test mirror is not a known Debian mirror, so every
	// request is a plain proxied URL, cached by file type (.deb is a static file).
	cfg := fmt.Sprintf("CacheDir: %s\nLogDir: %s\nSupportDir: /usr/lib/apt-cacher-ng\nPort: %d\nBindAddress: %s\n"+
		"ForeGround: 1\nAllowUserPorts: 80 %s\nExThreshold: 4\nVerboseLog: 0\n",
		filepath.Join(dir, "cache"), filepath.Join(dir, "log"), port, ip, mport)
	if err := os.WriteFile(filepath.Join(conf, "acng.conf"), []byte(cfg), 0o644); err != nil {
		return nil, err
	}
	a := &acng{addr: net.JoinHostPort(ip, strconv.Itoa(port)), done: make(chan struct{})}
	a.cmd = exec.Command(o.acng, "-c", conf)
	logf, err := os.Create(filepath.Join(dir, "acng.out"))
	if err != nil {
		return nil, err
	}
	a.cmd.Stdout, a.cmd.Stderr = logf, logf
	a.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	start, dial := a.cmd.Start, (&net.Dialer{Timeout: time.Second}).DialContext
	if o.bed != nil {
		start = func() error { return o.bed.cache.Start(a.cmd) }
		dial = o.bed.cache.DialContext
	}
	if err := start(); err != nil {
		logf.Close()
		return nil, err
	}
	go func() { a.cmd.Wait(); logf.Close(); close(a.done) }()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		select {
		case <-a.done:
			return nil, fmt.Errorf("apt-cacher-ng exited: %s", tailFile(filepath.Join(dir, "acng.out"), 20))
		default:
		}
		if c, err := dial(ctx, "tcp", a.addr); err == nil {
			c.Close()
			return a, nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	a.stop()
	return nil, errors.New("apt-cacher-ng did not listen")
}

// lowPort is a random port in 20000..31999, below the ephemeral range and
// below apt-cacher-ng's 32767 limit.
func lowPort() int { return 20000 + rand.IntN(12000) }

// stop stops apt-cacher-ng and returns the CPU seconds it used.
func (a *acng) stop() float64 {
	_ = a.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-a.done:
	case <-time.After(10 * time.Second):
		_ = a.cmd.Process.Kill()
		<-a.done
	}
	return cpuSeconds(a.cmd)
}

func mb(n int64) string { return fmt.Sprintf("%.1f", float64(n)/1e6) }

func printTable(w io.Writer, rs []Result, pkgs, small int, unique, rate int64, where string) {
	bw := bufio.NewWriter(w)
	defer bw.Flush()
	lim := "unlimited"
	if rate > 0 {
		lim = fmt.Sprintf("%s MB/s in total", mb(rate))
	}
	fmt.Fprintf(bw, "\npackage set: %d packages (%d under 512 KiB), %s MB unique; mirror bandwidth %s; %s\n\n", pkgs, small, mb(unique), lim, where)
	fmt.Fprintln(bw, "| system | start | clients | MIN_DOWNLOAD_PEERS | mirror MB | mirror ÷ unique | mirror requests | completion p50 | p99 | wall | from mirror MB | from peers MB | peer upload MB (requested) | CPU s | phase CPU s: system / clients+mirror / machine busy | errors/retries |")
	fmt.Fprintln(bw, "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
	for _, r := range rs {
		mp, src := "", "| | | |"
		if r.System == "apt-p2p" {
			mp = strconv.Itoa(r.MinPeers)
			src = fmt.Sprintf("| %s | %s | %s |", mb(r.MirrorDown), mb(r.PeerDown), mb(r.PeerUp))
		}
		cpu := ""
		if r.System != "direct" {
			cpu = fmt.Sprintf("%.0f", r.CPU)
		}
		if r.Failed != "" {
			fmt.Fprintf(bw, "| %s | %s | %d | %s | did not finish: %s |\n", r.System, r.Mode, r.Clients, mp, r.Failed)
			continue
		}
		phase := fmt.Sprintf("%.1f / %.1f / %.0f%%", r.PhaseCPU, r.DriverCPU, 100*r.MachineBusy)
		if r.System == "direct" {
			phase = fmt.Sprintf("– / %.1f / %.0f%%", r.DriverCPU, 100*r.MachineBusy)
		}
		fmt.Fprintf(bw, "| %s | %s | %d | %s | %s | **%.2f** | %d | %.1f s | %.1f s | %.1f s %s %s | %s | %d/%d |\n",
			r.System, r.Mode, r.Clients, mp, mb(r.MirrorBytes), r.Ratio, r.MirrorReqs, r.P50, r.P99, r.Wall, src, cpu, phase, r.Errors, r.Retries)
	}
}

// serveLimited serves h on a new low port with every response body sharing
// one rate limit of rate bytes/s.
func serveLimited(h http.Handler, rate int64, ip string) (*http.Server, string, error) {
	var ln net.Listener
	var err error
	for range 100 {
		if ln, err = net.Listen("tcp", net.JoinHostPort(ip, strconv.Itoa(lowPort()))); err == nil {
			break
		}
	}
	if err != nil {
		return nil, "", err
	}
	srv := &http.Server{Handler: ratelimit.Handler(h, rate), ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	return srv, ln.Addr().String(), nil
}

// newBed builds the -host-rate network: one LAN segment, the mirror's host,
// apt-cacher-ng's host and n client hosts, each behind its link.
func newBed(o *options, n int) (*bed, error) {
	b, err := netbed.New(netbed.Options{})
	if err != nil {
		return nil, err
	}
	bd := &bed{b: b}
	fail := func(err error) (*bed, error) { b.Close(); return nil, err }
	seg, err := b.AddSegment(netbed.SegmentConfig{Name: "lan", NoRouter: true})
	if err != nil {
		return fail(err)
	}
	link := netbed.Link{Rate: o.hostRate}
	mlink := netbed.LAN
	if o.mirrorWAN {
		mlink = netbed.WAN
	}
	if bd.mirror, err = b.AddHost("mirror", seg, mlink); err != nil {
		return fail(err)
	}
	if bd.cache, err = b.AddHost("cache", seg, link); err != nil {
		return fail(err)
	}
	for i := range n {
		h, err := b.AddHost(fmt.Sprintf("h%02d", i), seg, link)
		if err != nil {
			return fail(err)
		}
		bd.hosts = append(bd.hosts, h)
	}
	o.log.Info("namespace LAN built", "hosts", n, "host_link", link.String(), "mirror_link", mlink.String())
	return bd, nil
}
