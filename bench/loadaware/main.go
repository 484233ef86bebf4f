// Command loadaware is the driver of bench/loadaware.sh (issue 15 item 2): a
// swarm of holders of unequal upload capacity serves a crowd of downloading
// daemons, once with load-aware source choice and once without, in the same
// run.
//
// The holders are real apt-p2p daemons on 127.0.0.x that share the test
// repository's pool through OTHER_DIRS (so they hold every package from the
// start): one volunteer with a fast uplink (-volunteer-rate) and -peers
// ordinary peers with slow ones (-peer-rate), each shaped by its own
// UPLOAD_LIMIT token bucket. The downloaders are -clients fresh daemons whose
// own uploads are limited to the ordinary peers' rate; each one's client
// fetches InRelease and the by-hash Packages.xz (untimed, as apt-get update
// does), then every .deb with apt-like parallelism, all clients at once. The
// mirror is rate-limited (-mirror-rate) and counted.
//
// Reported per variant: completion time per client (p50, p99, p99/p50), per
// file (p50, p99), the bytes each daemon uploaded to peers, and Jain's
// fairness index of upload relative to capacity, J = (Σx)² / (n Σx²) with x_i
// = bytes uploaded by daemon i ÷ its UPLOAD_LIMIT, over the holders and over
// every daemon. J = 1 when every daemon's load is in proportion to its
// capacity; 1/n when one daemon carries everything. Each daemon counts once
// there, so the eight slow peers outweigh the volunteer that has most of the
// capacity; also reported: the holders' index weighted by capacity, and the
// volunteer's share of the holders' upload beside its share of their
// capacity (equal when the load follows capacity exactly).
//
// It is a benchmark driver, not a test. Every process it starts dies with it
// (Pdeathsig).
package main

import (
	"bufio"
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
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/apt-p2p/apt-p2p/bench/internal/ratelimit"
	"github.com/apt-p2p/apt-p2p/internal/testrepo"
)

type options struct {
	bin, work                        string
	keep                             bool
	peers, clients, parallel, rounds int
	volunteerRate, peerRate          int64
	mirrorRate                       int64
	timeout                          time.Duration
	stagger                          time.Duration // client i starts i×stagger after the first
	sets                             []string      // every daemon
	variants                         []variant
	log                              *slog.Logger
}

// variant is one configuration of the downloading daemons.
type variant struct {
	name string
	bin  string // another apt-p2p binary for the downloading daemons ("": -bin)
	sets []string
}

// Result is one variant's outcome in one round.
type Result struct {
	Variant     string             `json:"variant"`
	Round       int                `json:"round"`
	Clients     int                `json:"clients"`
	Holders     int                `json:"holders"`
	UniqueBytes int64              `json:"unique_bytes"`
	P50         float64            `json:"client_p50_s"`
	P99         float64            `json:"client_p99_s"`
	FileP50     float64            `json:"file_p50_s"`
	FileP99     float64            `json:"file_p99_s"`
	Wall        float64            `json:"wall_s"`
	MirrorBytes int64              `json:"mirror_bytes"`
	Uploaded    map[string]int64   `json:"uploaded"` // by daemon name
	Capacity    map[string]int64   `json:"capacity"` // bytes/s
	Busy        map[string]float64 `json:"busy"`     // uploaded ÷ capacity ÷ wall
	JainHolders float64            `json:"jain_holders"`
	JainAll     float64            `json:"jain_all"`
	// JainWeighted is the holders' index with each weighted by its
	// capacity (every byte/s of capacity one "user"); VolunteerShare the
	// volunteer's part of what the holders uploaded, against
	// CapacityShare, its part of their capacity.
	JainWeighted   float64 `json:"jain_holders_weighted"`
	VolunteerShare float64 `json:"volunteer_share"`
	CapacityShare  float64 `json:"volunteer_capacity_share"`
	// MeanUploads is the mean number of uploads running at each holder
	// during the measured phase (sampled every 100 ms).
	MeanUploads  map[string]float64 `json:"mean_uploads"`
	Errors       int                `json:"errors"`
	Retries      int                `json:"retries"`
	Failed       string             `json:"failed,omitempty"`
	ClientTimes  []float64          `json:"client_times"`
	FileTimesRaw []float64          `json:"-"`
}

func main() {
	var o options
	flag.StringVar(&o.bin, "bin", "bin/apt-p2p", "apt-p2p binary")
	flag.StringVar(&o.work, "work", "", "scratch directory (default: a new temporary one, removed at the end)")
	flag.BoolVar(&o.keep, "keep", false, "keep each run's directory (daemon logs and caches) under -work")
	flag.IntVar(&o.peers, "peers", 8, "ordinary holders (slow uplinks)")
	flag.IntVar(&o.clients, "clients", 8, "downloading daemons")
	flag.IntVar(&o.parallel, "parallel", 6, "concurrent downloads per client")
	flag.IntVar(&o.rounds, "rounds", 1, "rounds; each round runs every variant once, in alternating order")
	flag.Int64Var(&o.volunteerRate, "volunteer-rate", 100<<20, "the volunteer's upload limit, bytes/s")
	flag.Int64Var(&o.peerRate, "peer-rate", 5<<20, "every other daemon's upload limit, bytes/s")
	flag.Int64Var(&o.mirrorRate, "mirror-rate", 2<<20, "the mirror's total upload limit, bytes/s (0 = unlimited)")
	flag.DurationVar(&o.timeout, "timeout", 5*time.Minute, "limit for one run")
	flag.DurationVar(&o.stagger, "stagger", 0, "delay between client starts (0: all at once)")
	pkgs := flag.String("packages", "quick", "package set: quick (16 packages, ~40 MB) or full (28 packages, ~110 MB)")
	set := flag.String("set-daemon", "", "comma-separated NAME=value settings for every daemon")
	vs := flag.String("variants", "aware=LOAD_AWARE=yes;speed-only=LOAD_AWARE=no",
		"semicolon-separated variants name[@binary]=SETTING,SETTING... applied to the downloading daemons (binary: another apt-p2p build for them)")
	jsonOut := flag.String("json", "", "write the results here as JSON")
	flag.Parse()
	o.sets = split(*set, ",")
	for _, v := range split(*vs, ";") {
		name, sets, _ := strings.Cut(v, "=")
		name, bin, _ := strings.Cut(name, "@")
		o.variants = append(o.variants, variant{name: name, bin: bin, sets: split(sets, ",")})
	}
	o.log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, &o, *pkgs, *jsonOut); err != nil {
		fmt.Fprintln(os.Stderr, "loadaware:", err)
		os.Exit(1)
	}
}

func split(s, sep string) []string {
	var out []string
	for _, f := range strings.Split(s, sep) {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

// packageSet: a few large files (where piece placement matters) among small
// ones, names shuffled so that apt's name order interleaves them.
func packageSet(set string) []testrepo.PackageSpec {
	mbs := []float64{0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.8, 1, 1.5, 2, 3, 4, 5, 6, 7, 8}
	if set == "full" {
		mbs = append(mbs, 0.06, 0.15, 0.25, 0.35, 0.45, 1.2, 2.5, 4, 8, 12, 16, 24)
	}
	rng := rand.New(rand.NewPCG(15, 2))
	rng.Shuffle(len(mbs), func(i, j int) { mbs[i], mbs[j] = mbs[j], mbs[i] })
	specs := make([]testrepo.PackageSpec, len(mbs))
	for i, mb := range mbs {
		specs[i] = testrepo.PackageSpec{Name: fmt.Sprintf("load-%02d", i), Size: max(int64(mb*(1<<20)), 40<<10)}
	}
	return specs
}

func run(ctx context.Context, o *options, set, jsonOut string) error {
	if o.work == "" {
		d, err := os.MkdirTemp("", "apt-p2p-loadaware")
		if err != nil {
			return err
		}
		defer os.RemoveAll(d)
		o.work = d
	}
	repoDir := filepath.Join(o.work, "mirror", "debian")
	repo, err := testrepo.Build(repoDir, testrepo.Options{ByHash: true, Packages: packageSet(set), Seed: 15})
	if err != nil {
		return err
	}
	var unique int64
	for _, p := range repo.Packages {
		unique += p.Size
	}
	mirror, err := testrepo.ServeMirror("127.0.0.1:0", filepath.Join(o.work, "mirror"))
	if err != nil {
		return err
	}
	defer mirror.Close()
	mirrorAddr := mirror.Addr()
	if o.mirrorRate > 0 {
		srv, addr, err := serveLimited(mirror, o.mirrorRate)
		if err != nil {
			return err
		}
		defer srv.Close()
		mirrorAddr = addr
	}
	o.log.Info("repository built", "packages", len(repo.Packages), "bytes", unique)

	var results []Result
	for round := range o.rounds {
		order := slices.Clone(o.variants)
		if round%2 == 1 {
			slices.Reverse(order)
		}
		for _, v := range order {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			rctx, cancel := context.WithTimeout(ctx, o.timeout)
			r, err := runVariant(rctx, o, repo, mirror, mirrorAddr, v)
			cancel()
			r.Variant, r.Round, r.UniqueBytes = v.name, round, unique
			if err != nil {
				o.log.Error("run failed", "variant", v.name, "err", err)
				r.Failed = err.Error()
			}
			o.log.Info("run done", "variant", v.name, "round", round, "p50", r.P50, "p99", r.P99,
				"jain_holders", fmt.Sprintf("%.3f", r.JainHolders), "mirror_MB", mb(r.MirrorBytes))
			results = append(results, r)
		}
	}
	printTable(os.Stdout, o, results, len(repo.Packages), unique)
	if jsonOut != "" {
		b, _ := json.MarshalIndent(results, "", "  ")
		return os.WriteFile(jsonOut, b, 0o644)
	}
	return nil
}

// runVariant starts the holders and the clients afresh and measures one crowd.
func runVariant(ctx context.Context, o *options, repo *testrepo.Repo, mirror *testrepo.Mirror, mirrorAddr string, v variant) (r Result, err error) {
	r.Clients, r.Holders = o.clients, 1+o.peers
	r.Uploaded, r.Capacity, r.Busy = map[string]int64{}, map[string]int64{}, map[string]float64{}
	dir, err := os.MkdirTemp(o.work, v.name+"-")
	if err != nil {
		return r, err
	}
	if !o.keep {
		defer os.RemoveAll(dir)
	}
	pool := filepath.Join(repo.Dir, "pool")
	// A bootstrap daemon that holds nothing, and the clients, form the DHT
	// first; the holders join it and announce into a populated network (a
	// holder that announced while alone would have its values on itself only,
	// and its first refresh round repeats nothing of this run's).
	var boot *daemon
	var holders, clients, ds []*daemon
	defer func() {
		if boot != nil {
			stopAll(append([]*daemon{boot}, ds...))
		} else {
			stopAll(ds)
		}
	}()
	n := 0
	start := func(name string, rate int64, bin string, sets []string) (*daemon, error) {
		ip := fmt.Sprintf("127.0.0.%d", 3+n)
		n++
		all := append([]string{"LOCAL_OK=yes", "LOG_LEVEL=info", "UPLOAD_LIMIT=" + strconv.FormatInt(rate/1024, 10),
			"apt_p2p_Khashmir.BOOTSTRAP=" + boot.addr()}, o.sets...)
		all = append(all, sets...)
		if bin == "" {
			bin = o.bin
		}
		d, err := startDaemon(bin, dir, name, ip, all)
		if d != nil {
			d.capacity = rate
			ds = append(ds, d)
		}
		return d, err
	}
	boot, err = startDaemon(o.bin, dir, "bootstrap", "127.0.0.2",
		append([]string{"LOCAL_OK=yes", "LOG_LEVEL=info", "apt_p2p_Khashmir.BOOTSTRAP_NODE=yes"}, o.sets...))
	if err != nil {
		boot = nil
		return r, err
	}
	if err := boot.waitJoined(ctx, 20*time.Second); err != nil {
		return r, err
	}
	for i := range o.clients {
		d, err := start(fmt.Sprintf("client-%d", i), o.peerRate, v.bin, v.sets)
		if err != nil {
			return r, err
		}
		clients = append(clients, d)
	}
	for _, d := range clients {
		if err := d.waitJoined(ctx, 60*time.Second); err != nil {
			return r, err
		}
	}
	holderSets := []string{"OTHER_DIRS=" + pool}
	d, err := start("volunteer", o.volunteerRate, "", holderSets)
	if err != nil {
		return r, err
	}
	holders = append(holders, d)
	for i := range o.peers {
		d, err := start(fmt.Sprintf("peer-%d", i), o.peerRate, "", holderSets)
		if err != nil {
			return r, err
		}
		holders = append(holders, d)
	}
	for _, d := range holders {
		if err := d.waitJoined(ctx, 60*time.Second); err != nil {
			return r, err
		}
	}
	// Every holder has hashed the pool and every client finds every holder of
	// every file.
	for _, d := range holders {
		if err := d.waitShared(ctx, len(repo.Packages)); err != nil {
			return r, err
		}
	}
	for _, c := range clients {
		for _, p := range repo.Packages {
			if err := c.waitPeers(ctx, p.SHA256, len(holders)); err != nil {
				return r, err
			}
		}
	}
	// apt-get update through every client (untimed).
	var xz *testrepo.IndexFile
	for i := range repo.Indexes {
		if repo.Indexes[i].Name == "main/binary-amd64/Packages.xz" {
			xz = &repo.Indexes[i]
		}
	}
	if xz == nil {
		return r, errors.New("no Packages.xz in the repository")
	}
	hcs := make([]*httpClient, len(clients))
	for i, c := range clients {
		prefix := "http://" + c.addr() + "/" + mirrorAddr + "/debian/"
		hcs[i] = newHTTPClient(o.parallel, func(p string) string { return prefix + p })
		for _, p := range []string{repo.DistPath("InRelease"), repo.DistPath("main/binary-amd64/by-hash/SHA256/" + xz.SHA256)} {
			if _, err := hcs[i].fetch(ctx, p, -1, ""); err != nil {
				return r, fmt.Errorf("%s: %s: %w", c.name, p, err)
			}
		}
		if err := c.waitIndex(ctx, mirrorAddr+"/debian/"+repo.Packages[0].Filename); err != nil {
			return r, err
		}
	}

	before := uploads(ctx, ds)
	mirror.Reset()
	t0 := time.Now()
	var wg sync.WaitGroup
	var mu sync.Mutex
	sampled := make(chan map[string]float64)
	sctx, stopSampling := context.WithCancel(ctx)
	go func() { sampled <- sampleUploads(sctx, holders) }()
	r.ClientTimes = make([]float64, len(clients))
	for i, hc := range hcs {
		wg.Go(func() {
			select {
			case <-time.After(time.Duration(i) * o.stagger):
			case <-ctx.Done():
				return
			}
			t := time.Now()
			files, errs, retries := hc.fetchAll(ctx, repo.Packages)
			r.ClientTimes[i] = time.Since(t).Seconds()
			mu.Lock()
			r.FileTimesRaw = append(r.FileTimesRaw, files...)
			r.Errors += errs
			r.Retries += retries
			mu.Unlock()
		})
	}
	wg.Wait()
	r.Wall = time.Since(t0).Seconds()
	stopSampling()
	r.MeanUploads = <-sampled
	if ctx.Err() != nil {
		return r, fmt.Errorf("run did not finish: %w", ctx.Err())
	}
	after := uploads(context.Background(), ds)
	r.MirrorBytes = mirror.BytesUnder("/debian/pool/")
	var xh, xa, ch []float64
	var hUp, hCap int64
	for i, d := range ds {
		up := after[i] - before[i]
		r.Uploaded[d.name], r.Capacity[d.name] = up, d.capacity
		x := float64(up) / float64(d.capacity) / r.Wall
		r.Busy[d.name] = x
		xa = append(xa, x)
		if slices.Contains(holders, d) {
			xh, ch = append(xh, x), append(ch, float64(d.capacity))
			hUp, hCap = hUp+up, hCap+d.capacity
		}
	}
	r.JainHolders, r.JainAll, r.JainWeighted = jain(xh), jain(xa), jainWeighted(xh, ch)
	if hUp > 0 {
		r.VolunteerShare = float64(r.Uploaded["volunteer"]) / float64(hUp)
	}
	r.CapacityShare = float64(holders[0].capacity) / float64(hCap)
	ts := slices.Sorted(slices.Values(r.ClientTimes))
	r.P50, r.P99 = percentile(ts, 50), percentile(ts, 99)
	fs := slices.Sorted(slices.Values(r.FileTimesRaw))
	r.FileP50, r.FileP99 = percentile(fs, 50), percentile(fs, 99)
	return r, nil
}

// jain is Jain's fairness index of xs: 1 when all are equal, 1/n when one
// holds everything.
func jain(xs []float64) float64 {
	var s, s2 float64
	for _, x := range xs {
		s += x
		s2 += x * x
	}
	if s2 == 0 {
		return 0
	}
	return s * s / (float64(len(xs)) * s2)
}

// jainWeighted is Jain's index with weights w: (Σ w x)² / (Σ w · Σ w x²),
// the plain index of a population where item i appears w_i times.
func jainWeighted(xs, ws []float64) float64 {
	var sw, s, s2 float64
	for i, x := range xs {
		sw += ws[i]
		s += ws[i] * x
		s2 += ws[i] * x * x
	}
	if s2 == 0 {
		return 0
	}
	return s * s / (sw * s2)
}

// percentile is the nearest-rank percentile of sorted xs.
func percentile(xs []float64, p float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	i := int(p/100*float64(len(xs))+0.999999) - 1
	return xs[min(max(i, 0), len(xs)-1)]
}

// httpClient is one machine's apt: parallel connections to its daemon.
type httpClient struct {
	hc       *http.Client
	url      func(string) string
	parallel int
}

func newHTTPClient(parallel int, u func(string) string) *httpClient {
	tr := &http.Transport{MaxConnsPerHost: parallel, MaxIdleConnsPerHost: parallel, DisableCompression: true,
		DialContext: (&net.Dialer{Timeout: 10 * time.Second}).DialContext}
	return &httpClient{hc: &http.Client{Transport: tr, Timeout: 2 * time.Minute}, url: u, parallel: parallel}
}

// fetch GETs path, checks size and SHA256 when given, and returns how long it took.
func (c *httpClient) fetch(ctx context.Context, path string, size int64, sha string) (float64, error) {
	t := time.Now()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.url(path), nil)
	if err != nil {
		return 0, err
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
		return 0, fmt.Errorf("status %s", resp.Status)
	}
	h := sha256.New()
	n, err := io.Copy(h, resp.Body)
	if err != nil {
		return 0, err
	}
	if size >= 0 && n != size {
		return 0, fmt.Errorf("got %d bytes, want %d", n, size)
	}
	if sha != "" && hex.EncodeToString(h.Sum(nil)) != sha {
		return 0, errors.New("SHA256 mismatch")
	}
	return time.Since(t).Seconds(), nil
}

// fetchAll downloads every package, c.parallel at a time, retrying a failed
// one twice; it returns each file's time (successful ones), failures and retries.
func (c *httpClient) fetchAll(ctx context.Context, pkgs []testrepo.Package) (times []float64, failed, retries int) {
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
					var d float64
					if d, err = c.fetch(ctx, p.Filename, p.Size, p.SHA256); err == nil {
						mu.Lock()
						times = append(times, d)
						mu.Unlock()
						break
					}
					if ctx.Err() != nil {
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
	return times, failed, retries
}

// daemon is one apt-p2p process.
type daemon struct {
	name     string
	ip       string
	port     int
	capacity int64
	cmd      *exec.Cmd
	logp     string
	done     chan struct{}
}

func (d *daemon) addr() string { return net.JoinHostPort(d.ip, strconv.Itoa(d.port)) }

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

func startDaemon(bin, dir, name, ip string, sets []string) (*daemon, error) {
	port, err := freePort(ip)
	if err != nil {
		return nil, err
	}
	d := &daemon{name: name, ip: ip, port: port, logp: filepath.Join(dir, name+".log"), done: make(chan struct{})}
	args := []string{"run", "--embedded", "--bind", ip, "--port", strconv.Itoa(port),
		"--cache-dir", filepath.Join(dir, "cache-"+name), "--log-file", d.logp}
	for _, s := range sets {
		args = append(args, "--set", s)
	}
	d.cmd = exec.Command(bin, args...)
	d.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := d.cmd.Start(); err != nil {
		return nil, err
	}
	go func() { d.cmd.Wait(); close(d.done) }()
	return d, nil
}

var statusClient = &http.Client{Timeout: 10 * time.Second}

func (d *daemon) getJSON(ctx context.Context, path string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+d.addr()+path, nil)
	if err != nil {
		return err
	}
	resp, err := statusClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", path, resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

type stats struct {
	Joined  bool `json:"joined"`
	Session struct {
		Uploaded int64 `json:"peer_up"`
	} `json:"session"`
	Cache struct {
		External int `json:"External"`
	} `json:"cache"`
	DHT struct {
		Nodes int `json:"Nodes"`
	} `json:"dht"`
}

// poll calls cond every 100 ms until it is true, the daemon exits or limit passes.
func (d *daemon) poll(ctx context.Context, what string, limit time.Duration, cond func() (bool, error)) error {
	deadline := time.Now().Add(limit)
	var last error
	for time.Now().Before(deadline) && ctx.Err() == nil {
		select {
		case <-d.done:
			return fmt.Errorf("daemon %s exited: %s", d.name, tailFile(d.logp, 20))
		default:
		}
		ok, err := cond()
		if ok {
			return nil
		}
		last = err
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("daemon %s: %s: %v\n%s", d.name, what, last, tailFile(d.logp, 20))
}

func (d *daemon) waitJoined(ctx context.Context, limit time.Duration) error {
	return d.poll(ctx, "did not join", limit, func() (bool, error) {
		var st stats
		if err := d.getJSON(ctx, "/stats.json", &st); err != nil {
			return false, err
		}
		return st.Joined && (st.DHT.Nodes > 0 || d.name == "bootstrap"), fmt.Errorf("%d nodes", st.DHT.Nodes)
	})
}

func (d *daemon) waitShared(ctx context.Context, n int) error {
	return d.poll(ctx, "did not share the pool", time.Minute, func() (bool, error) {
		var st stats
		if err := d.getJSON(ctx, "/stats.json", &st); err != nil {
			return false, err
		}
		return st.Cache.External >= n, fmt.Errorf("%d files shared", st.Cache.External)
	})
}

func (d *daemon) waitPeers(ctx context.Context, sha string, n int) error {
	return d.poll(ctx, "does not find the holders", time.Minute, func() (bool, error) {
		var l struct {
			Peers []string `json:"dht_peers"`
		}
		if err := d.getJSON(ctx, "/lookup?q="+sha, &l); err != nil {
			return false, err
		}
		return len(l.Peers) >= n, fmt.Errorf("%d holders found", len(l.Peers))
	})
}

func (d *daemon) waitIndex(ctx context.Context, q string) error {
	return d.poll(ctx, "index never listed "+q, 30*time.Second, func() (bool, error) {
		var l struct {
			Index string `json:"index"`
		}
		err := d.getJSON(ctx, "/lookup?q="+url.QueryEscape(q), &l)
		return err == nil && l.Index != "", err
	})
}

func uploads(ctx context.Context, ds []*daemon) []int64 {
	out := make([]int64, len(ds))
	for i, d := range ds {
		var st stats
		if err := d.getJSON(ctx, "/stats.json", &st); err != nil {
			slog.Warn("stats", "daemon", d.name, "err", err)
			continue
		}
		out[i] = st.Session.Uploaded
	}
	return out
}

// sampleUploads polls the daemons' running uploads every 100 ms until ctx
// ends and returns each one's mean.
func sampleUploads(ctx context.Context, ds []*daemon) map[string]float64 {
	sum := make([]float64, len(ds))
	n := 0
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			out := map[string]float64{}
			for i, d := range ds {
				out[d.name] = sum[i] / float64(max(n, 1))
			}
			return out
		case <-t.C:
		}
		var mu sync.Mutex
		var wg sync.WaitGroup
		for i, d := range ds {
			wg.Go(func() {
				var st struct {
					Uploads int `json:"uploads_active"`
				}
				if d.getJSON(ctx, "/stats.json", &st) == nil {
					mu.Lock()
					sum[i] += float64(st.Uploads)
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		n++
	}
}

func stopAll(ds []*daemon) {
	for _, d := range ds {
		_ = d.cmd.Process.Signal(syscall.SIGTERM)
	}
	for _, d := range ds {
		select {
		case <-d.done:
		case <-time.After(15 * time.Second):
			_ = d.cmd.Process.Kill()
			<-d.done
		}
	}
}

func tailFile(p string, lines int) string {
	b, _ := os.ReadFile(p)
	l := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(l) > lines {
		l = l[len(l)-lines:]
	}
	return strings.Join(l, "\n")
}

func mb(n int64) string { return fmt.Sprintf("%.1f", float64(n)/1e6) }

func printTable(w io.Writer, o *options, rs []Result, pkgs int, unique int64) {
	bw := bufio.NewWriter(w)
	defer bw.Flush()
	fmt.Fprintf(bw, "\n%d packages, %s MB; holders: 1 volunteer at %s MB/s, %d peers at %s MB/s; %d clients (uploads at %s MB/s) starting %v apart; mirror %s MB/s\n\n",
		pkgs, mb(unique), mb(o.volunteerRate), o.peers, mb(o.peerRate), o.clients, mb(o.peerRate), o.stagger, mb(o.mirrorRate))
	fmt.Fprintln(bw, "| variant | round | client p50 | client p99 | p99/p50 | file p50 | file p99 | p99/p50 | wall | Jain (holders) | Jain (holders, by capacity) | Jain (all) | volunteer share (of capacity) | volunteer busy | peers busy (mean) | clients busy (mean) | volunteer uploads (mean) | peer uploads (mean) | mirror MB | errors/retries |")
	fmt.Fprintln(bw, "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
	for _, r := range rs {
		if r.Failed != "" {
			fmt.Fprintf(bw, "| %s | %d | did not finish: %s |\n", r.Variant, r.Round, r.Failed)
			continue
		}
		var peers, clients, peerUploads []float64
		for name, u := range r.MeanUploads {
			if strings.HasPrefix(name, "peer-") {
				peerUploads = append(peerUploads, u)
			}
		}
		for name, x := range r.Busy {
			switch {
			case strings.HasPrefix(name, "peer-"):
				peers = append(peers, x)
			case strings.HasPrefix(name, "client-"):
				clients = append(clients, x)
			}
		}
		fmt.Fprintf(bw, "| %s | %d | %.2f s | %.2f s | %.2f | %.2f s | %.2f s | %.1f | %.1f s | %.3f | %.3f | %.3f | %.2f (%.2f) | %.2f | %.2f | %.2f | %.1f | %.1f | %s | %d/%d |\n",
			r.Variant, r.Round, r.P50, r.P99, r.P99/r.P50, r.FileP50, r.FileP99, r.FileP99/r.FileP50, r.Wall, r.JainHolders, r.JainWeighted, r.JainAll,
			r.VolunteerShare, r.CapacityShare, r.Busy["volunteer"], mean(peers), mean(clients), r.MeanUploads["volunteer"], mean(peerUploads), mb(r.MirrorBytes), r.Errors, r.Retries)
	}
	printSummary(bw, o, rs)
}

// printSummary gives each variant's medians over the rounds.
func printSummary(bw *bufio.Writer, o *options, rs []Result) {
	fmt.Fprint(bw, "\nMedians over the rounds:\n\n")
	fmt.Fprintln(bw, "| variant | rounds | client p50 | client p99 | client p99/p50 | file p50 | file p99 | file p99/p50 | Jain (holders) | Jain (holders, by capacity) | Jain (all) | volunteer share (of capacity) | volunteer busy | peers busy | mirror MB |")
	fmt.Fprintln(bw, "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
	for _, v := range o.variants {
		var c50, c99, cr, f50, f99, fr, jh, jw, ja, vs, cs, vb, pb, mir []float64
		for _, r := range rs {
			if r.Variant != v.name || r.Failed != "" {
				continue
			}
			var peers []float64
			for name, x := range r.Busy {
				if strings.HasPrefix(name, "peer-") {
					peers = append(peers, x)
				}
			}
			c50, c99, cr = append(c50, r.P50), append(c99, r.P99), append(cr, r.P99/r.P50)
			f50, f99, fr = append(f50, r.FileP50), append(f99, r.FileP99), append(fr, r.FileP99/r.FileP50)
			jh, jw, ja = append(jh, r.JainHolders), append(jw, r.JainWeighted), append(ja, r.JainAll)
			vs, cs = append(vs, r.VolunteerShare), append(cs, r.CapacityShare)
			vb, pb, mir = append(vb, r.Busy["volunteer"]), append(pb, mean(peers)), append(mir, float64(r.MirrorBytes)/1e6)
		}
		if len(c50) == 0 {
			continue
		}
		fmt.Fprintf(bw, "| %s | %d | %.2f s | %.2f s | %.2f | %.2f s | %.2f s | %.1f | %.3f | %.3f | %.3f | %.2f (%.2f) | %.2f | %.2f | %.1f |\n",
			v.name, len(c50), median(c50), median(c99), median(cr), median(f50), median(f99), median(fr), median(jh), median(jw), median(ja),
			median(vs), median(cs), median(vb), median(pb), median(mir))
	}
}

func median(xs []float64) float64 {
	s := slices.Sorted(slices.Values(xs))
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func mean(xs []float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	var s float64
	for _, x := range xs {
		s += x
	}
	return s / float64(len(xs))
}

// serveLimited serves h on a new loopback port with every response body
// sharing one rate limit of rate bytes/s.
func serveLimited(h http.Handler, rate int64) (*http.Server, string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, "", err
	}
	srv := &http.Server{Handler: ratelimit.Handler(h, rate), ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	return srv, ln.Addr().String(), nil
}
