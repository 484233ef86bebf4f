// Command lanbench is the driver of bench/lan.sh: LAN discovery (issue 13
// item 3) measured with real apt-p2p daemons on the network-namespace test
// bed (internal/netbed).
//
// form: N daemons on one LAN segment. Time from launching them until every
// daemon's DHT routing table holds a node, and until it holds the N−1
// others (which with a bootstrap node it may never do), for
//
//	lan        no BOOTSTRAP, out-of-the-box configuration: LAN discovery alone
//	bootstrap  what a user sets up otherwise: LAN_DISCOVERY = no, LOCAL_OK = yes,
//	           one daemon a BOOTSTRAP_NODE (started and answering first, not timed),
//	           the N−1 others with BOOTSTRAP = it, launched at once
//
// runs interleaved, the case order rotating.
//
// The daemons are dual-stack (the default ADDRESS_FAMILIES on a dual-stack
// LAN): a table "holds the others" when both its IPv4 and its IPv6 routing
// tables do; the bootstrap case is given both addresses of the bootstrap node.
//
// share: issue 13's scenario as a user sees it. N machines on one LAN, the
// mirror on the internet (100 Mbit/s, 40 ms). From launching the daemons:
// the DHT forms, apt-get on machine 1 fetches a package set from the mirror,
// its announcements reach the others, then apt-get on machines 2…N fetches
// the same set, every .deb from the LAN peers. Both cases as in form; each
// run launches fresh daemons with empty caches.
//
// steady: after forming, N daemons idle for -steady; datagrams each sends per
// hour: LAN announcements (aptp2p_lan_sent_total) and DHT packets, for both
// cases.
//
// prefer: should LAN peers be preferred as download sources? Daemon D and
// daemon L on the LAN, daemon R on a remote site behind a WAN link (100
// Mbit/s, 40 ms), the mirror behind another. L holds package sets A and B,
// R holds set A only (same sizes). A fresh D downloads A (two peers: L on the
// LAN, R remote) and B (L only), order rotating; the bytes L and R uploaded
// for A say how much the present source ranking already takes from the LAN.
//
// It prints Markdown tables and writes raw results to -out. Every process it
// starts dies with it (Pdeathsig); beds are removed on exit or by the next run.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/netip"
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

	"github.com/apt-p2p/apt-p2p/internal/apttest"
	"github.com/apt-p2p/apt-p2p/internal/netbed"
	"github.com/apt-p2p/apt-p2p/internal/testrepo"
)

var (
	bin      = flag.String("bin", "", "apt-p2p binary")
	runs     = flag.Int("runs", 5, "interleaved runs of each form case (0: skip form)")
	sizes    = flag.String("sizes", "3,10", "LAN sizes (daemons) for form")
	steady   = flag.Duration("steady", 2*time.Minute, "idle time measured by steady (0: skip)")
	steadyN  = flag.Int("steady-n", 10, "daemons for steady")
	prefRuns = flag.Int("prefer-runs", 3, "runs of prefer (0: skip)")
	shrRuns  = flag.Int("share-runs", 3, "interleaved runs of each share case (0: skip)")
	shrN     = flag.Int("share-n", 3, "machines for share")
	clean    = flag.Bool("clean", false, "only remove the namespaces of earlier runs that were killed, and exit")
	outDir   = flag.String("out", "bench/out/lan", "raw results directory")
	work     = flag.String("work", "", "scratch directory (default: a new temporary one)")
	logLevel = flag.String("log-level", "warn", "the daemons' LOG_LEVEL (logs in -out)")
)

func main() {
	flag.Parse()
	if *clean {
		names, err := netbed.CleanStale()
		if len(names) > 0 {
			fmt.Fprintf(os.Stderr, "lanbench: removed %d stale namespaces\n", len(names))
		}
		if err != nil {
			fail(err)
		}
		return
	}
	if *bin == "" {
		fail(errors.New("-bin is required"))
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx); err != nil {
		fail(err)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "lanbench:", err)
	os.Exit(1)
}

type bench struct {
	ctx     context.Context
	tmp     string
	results *os.File
	seq     int
}

func run(ctx context.Context) error {
	b := &bench{ctx: ctx}
	var err error
	if b.tmp = *work; b.tmp == "" {
		if b.tmp, err = os.MkdirTemp("", "lanbench"); err != nil {
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
	var ns []int
	for _, s := range strings.Split(*sizes, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 2 {
			return fmt.Errorf("-sizes: %q", s)
		}
		ns = append(ns, n)
	}
	for _, n := range ns {
		if *runs == 0 {
			break
		}
		if err := b.form(n); err != nil {
			return err
		}
	}
	if *shrRuns > 0 {
		if err := b.share(*shrN); err != nil {
			return err
		}
	}
	if *steady > 0 {
		if err := b.steady(*steadyN); err != nil {
			return err
		}
	}
	if *prefRuns > 0 {
		if err := b.prefer(); err != nil {
			return err
		}
	}
	return nil
}

// daemon is one apt-p2p process inside a host, on port 9977 of every address.
type daemon struct {
	name  string
	h     *netbed.Host
	cache string
	cmd   *exec.Cmd
	done  chan struct{}
	log   *os.File
	http  *http.Client
}

const port = 9977

func (d *daemon) contact() string { return netip.AddrPortFrom(d.h.Addr4(), port).String() }

// contacts are both of its contacts, as BOOTSTRAP lists them.
func (d *daemon) contacts() string {
	c := d.contact()
	if a := d.h.Addr6(); a.IsValid() {
		c += " " + netip.AddrPortFrom(a, port).String()
	}
	return c
}

// launch starts a daemon without waiting for it.
func (b *bench) launch(h *netbed.Host, name string, sets ...string) (*daemon, error) {
	b.seq++
	d := &daemon{name: name, h: h, cache: filepath.Join(b.tmp, fmt.Sprintf("cache-%s-%d", name, b.seq)), done: make(chan struct{}),
		http: h.HTTPClient(10 * time.Second)}
	args := []string{"run", "--embedded", "--port", strconv.Itoa(port), "--cache-dir", d.cache, "--set", "LOG_LEVEL=" + *logLevel}
	for _, s := range sets {
		args = append(args, "--set", s)
	}
	var err error
	if d.log, err = os.OpenFile(filepath.Join(*outDir, "daemon-"+name+".log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644); err != nil {
		return nil, err
	}
	d.cmd = exec.Command(*bin, args...)
	d.cmd.Stdout, d.cmd.Stderr = d.log, d.log
	if err := h.Start(d.cmd); err != nil {
		d.log.Close()
		return nil, err
	}
	go func() { d.cmd.Wait(); close(d.done) }()
	return d, nil
}

func (d *daemon) waitUp() error {
	for deadline := time.Now().Add(30 * time.Second); ; {
		if _, err := d.stats(); err == nil {
			return nil
		}
		select {
		case <-d.done:
			return fmt.Errorf("daemon %s exited at start (log in %s)", d.name, d.log.Name())
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("daemon %s did not answer", d.name)
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
	Contact string `json:"contact"`
	Session struct {
		Mirror   int64 `json:"mirror_down"`
		Peers    int64 `json:"peer_down"`
		Uploaded int64 `json:"peer_up"`
	} `json:"session"`
	DHT struct {
		Nodes      int    `json:"Nodes"`
		PacketsOut uint64 `json:"PacketsOut"`
	} `json:"dht"`
	LAN *struct {
		Sent map[string]uint64 `json:"sent"`
	} `json:"lan"`
	Families []struct {
		Family string `json:"family"`
		Nodes  int    `json:"nodes"`
	} `json:"families"`
}

// known is how many nodes the daemon's routing tables hold: the smaller of
// its two families' on a dual-stack daemon (DHT.Nodes sums them).
func (st *stats) known() int {
	if len(st.Families) == 0 {
		return st.DHT.Nodes
	}
	n := st.Families[0].Nodes
	for _, f := range st.Families[1:] {
		n = min(n, f.Nodes)
	}
	return n
}

func (d *daemon) get(path string) ([]byte, error) {
	resp, err := d.http.Get("http://127.0.0.1:" + strconv.Itoa(port) + path)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return nil, fmt.Errorf("%s: %s", path, resp.Status)
	}
	return io.ReadAll(resp.Body)
}

func (d *daemon) stats() (stats, error) {
	var st stats
	b, err := d.get("/stats.json")
	if err != nil {
		return st, err
	}
	return st, json.Unmarshal(b, &st)
}

func (st *stats) lanSent() uint64 {
	if st.LAN == nil {
		return 0
	}
	var n uint64
	for _, v := range st.LAN.Sent {
		n += v
	}
	return n
}

// lanBed is a bed with one LAN segment of n hosts.
func lanBed(n int) (*netbed.Bed, []*netbed.Host, error) {
	bed, err := netbed.New(netbed.Options{})
	if err != nil {
		return nil, nil, err
	}
	seg, err := bed.AddSegment(netbed.SegmentConfig{Name: "lan", Family: netbed.DualStack})
	if err != nil {
		bed.Close()
		return nil, nil, err
	}
	var hosts []*netbed.Host
	for i := range n {
		h, err := bed.AddHost(fmt.Sprintf("h%d", i+1), seg, netbed.LAN)
		if err != nil {
			bed.Close()
			return nil, nil, err
		}
		hosts = append(hosts, h)
	}
	return bed, hosts, nil
}

// startCase launches the daemons of one case on hosts and returns them with
// the moment the timed launch began.
func (b *bench) startCase(c string, hosts []*netbed.Host) ([]*daemon, time.Time, error) {
	ds := make([]*daemon, len(hosts))
	first := 0
	var common []string
	if c == "bootstrap" {
		common = []string{"LAN_DISCOVERY=no", "LOCAL_OK=yes"}
		d, err := b.launch(hosts[0], "h1-"+c, append(common, "apt_p2p_Khashmir.BOOTSTRAP_NODE=yes")...)
		if err != nil {
			return nil, time.Time{}, err
		}
		ds[0] = d
		if err := d.waitUp(); err != nil {
			return ds, time.Time{}, err
		}
		common = append(common, "apt_p2p_Khashmir.BOOTSTRAP="+d.contacts())
		first = 1
	}
	t0 := time.Now()
	for i := first; i < len(hosts); i++ {
		d, err := b.launch(hosts[i], fmt.Sprintf("h%d-%s", i+1, c), common...)
		if err != nil {
			return ds, t0, err
		}
		ds[i] = d
	}
	return ds, t0, nil
}

func stopAll(ds []*daemon) {
	var wg sync.WaitGroup
	for _, d := range ds {
		if d != nil {
			wg.Go(d.stop)
		}
	}
	wg.Wait()
}

// formation is how a DHT formed: when every daemon answered, when every
// table held at least one node (connected: lookups can start anywhere), when
// every table held all the n−1 others (complete; zero if not within the
// deadline: with a bootstrap node a table need not ever hold every daemon of
// the LAN, only those that contacted it or that its lookups met), and the
// table sizes at the end.
type formation struct {
	up, connected, complete time.Time
	nodes                   []int
}

// waitFormed polls every daemon until every table is complete or the
// deadline passes; it fails only if the daemons are not even connected.
func waitFormed(ds []*daemon, deadline time.Duration) (formation, error) {
	n := len(ds)
	var f formation
	f.nodes = make([]int, n)
	upAt := make([]time.Time, n)
	end := time.Now().Add(deadline)
	for {
		conn, full := 0, 0
		for i, d := range ds {
			if f.nodes[i] >= n-1 {
				conn++
				full++
				continue
			}
			st, err := d.stats()
			if err != nil {
				continue
			}
			if upAt[i].IsZero() {
				upAt[i] = time.Now()
			}
			f.nodes[i] = st.known()
			if f.nodes[i] > 0 {
				conn++
			}
			if f.nodes[i] >= n-1 {
				full++
			}
		}
		now := time.Now()
		if conn == n && f.connected.IsZero() {
			f.connected = now
		}
		if full == n {
			f.complete = now
			break
		}
		if now.After(end) {
			if f.connected.IsZero() {
				return f, fmt.Errorf("the %d daemons did not connect within %v", n, deadline)
			}
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	for _, t := range upAt {
		if t.After(f.up) {
			f.up = t
		}
	}
	return f, nil
}

var cases = []string{"lan", "bootstrap"}

func (b *bench) form(n int) error {
	bed, hosts, err := lanBed(n)
	if err != nil {
		return err
	}
	defer bed.Close()
	type acc struct {
		connected, complete, completeUp []time.Duration
		incomplete                      int
		tables                          []int
	}
	res := map[string]*acc{}
	for _, c := range cases {
		res[c] = &acc{}
	}
	for r := range *runs {
		for k := range cases {
			c := cases[(r+k)%len(cases)]
			if err := b.ctx.Err(); err != nil {
				return err
			}
			ds, t0, err := b.startCase(c, hosts)
			if err != nil {
				stopAll(ds)
				return err
			}
			f, err := waitFormed(ds, 20*time.Second)
			stopAll(ds)
			if err != nil {
				return fmt.Errorf("%s, %d daemons: %w", c, n, err)
			}
			a := res[c]
			a.connected = append(a.connected, f.connected.Sub(t0))
			if f.complete.IsZero() {
				a.incomplete++
			} else {
				a.complete = append(a.complete, f.complete.Sub(t0))
				a.completeUp = append(a.completeUp, max(f.complete.Sub(f.up), 0))
			}
			a.tables = append(a.tables, f.nodes...)
			var comp float64 = -1
			if !f.complete.IsZero() {
				comp = ms(f.complete.Sub(t0))
			}
			fmt.Fprintf(b.results, "form\t%d\t%s\t%d\t%.1f\t%.1f\t%v\n", n, c, r, ms(f.connected.Sub(t0)), comp, f.nodes)
		}
	}
	fmt.Printf("\n#### DHT of %d daemons on one LAN (%d runs, median [min–max], ms from launch)\n\n", n, *runs)
	fmt.Println("| case | every table ≥ 1 node | every table holds the other N−1 | same, from the last daemon answering | runs not complete after 20 s | table sizes at the end |")
	fmt.Println("|---|---:|---:|---:|---:|---:|")
	for _, c := range cases {
		a := res[c]
		t := slices.Clone(a.tables)
		slices.Sort(t)
		fmt.Printf("| %s | %s | %s | %s | %d | %d [%d–%d] |\n", c, summary(a.connected), summary(a.complete), summary(a.completeUp),
			a.incomplete, t[len(t)/2], t[0], t[len(t)-1])
	}
	return nil
}

func (b *bench) steady(n int) error {
	bed, hosts, err := lanBed(n)
	if err != nil {
		return err
	}
	defer bed.Close()
	fmt.Printf("\n#### Steady state, %d daemons idle for %v after forming (datagrams sent per daemon per hour)\n\n", n, *steady)
	fmt.Println("| case | LAN announcements | DHT packets | start-up: LAN announcements per daemon |")
	fmt.Println("|---|---:|---:|---:|")
	for _, c := range cases {
		ds, _, err := b.startCase(c, hosts)
		if err != nil {
			stopAll(ds)
			return err
		}
		if _, err := waitFormed(ds, 20*time.Second); err != nil {
			stopAll(ds)
			return err
		}
		// Past the start-up hellos and their replies.
		time.Sleep(5 * time.Second)
		read := func() (lanN, dhtN uint64, err error) {
			for _, d := range ds {
				st, err := d.stats()
				if err != nil {
					return 0, 0, err
				}
				lanN += st.lanSent()
				dhtN += st.DHT.PacketsOut
			}
			return lanN, dhtN, nil
		}
		lan0, dht0, err := read()
		if err != nil {
			stopAll(ds)
			return err
		}
		t0 := time.Now()
		select {
		case <-time.After(*steady):
		case <-b.ctx.Done():
			stopAll(ds)
			return b.ctx.Err()
		}
		lan1, dht1, err := read()
		el := time.Since(t0)
		stopAll(ds)
		if err != nil {
			return err
		}
		perHour := func(v uint64) float64 { return float64(v) / float64(n) / el.Hours() }
		fmt.Printf("| %s | %.0f | %.0f | %.1f |\n", c, perHour(lan1-lan0), perHour(dht1-dht0), float64(lan0)/float64(n))
		fmt.Fprintf(b.results, "steady\t%d\t%s\t%.1f\t%d\t%d\t%d\t%d\n", n, c, el.Seconds(), lan0, lan1, dht0, dht1)
	}
	return nil
}

// prefer measures how the present source ranking shares a download between
// a LAN peer and a remote one.
func (b *bench) prefer() error {
	base := filepath.Join(b.tmp, "prefer-mirror")
	var specs []testrepo.PackageSpec
	for _, set := range []string{"a", "b"} {
		for _, s := range []struct {
			name string
			size int64
		}{{"4m", 4 << 20}, {"32m", 32 << 20}} {
			specs = append(specs, testrepo.PackageSpec{Name: "pref-" + set + "-" + s.name, Size: s.size})
		}
	}
	repo, err := testrepo.Build(filepath.Join(base, "debian"), testrepo.Options{Packages: specs, ByHash: true, NoSHA1: true})
	if err != nil {
		return err
	}
	setNames := func(set string) []string {
		var out []string
		for _, p := range repo.Packages {
			if strings.HasPrefix(p.Name, "pref-"+set+"-") {
				out = append(out, p.Name)
			}
		}
		return out
	}
	var setBytes int64
	for _, p := range repo.Packages {
		if strings.HasPrefix(p.Name, "pref-a-") {
			setBytes += p.Size
		}
	}

	bed, err := netbed.New(netbed.Options{})
	if err != nil {
		return err
	}
	defer bed.Close()
	lanSeg, err := bed.AddSegment(netbed.SegmentConfig{Name: "lan"})
	if err != nil {
		return err
	}
	remote, err := bed.AddSegment(netbed.SegmentConfig{Name: "remote", Uplink: netbed.WAN})
	if err != nil {
		return err
	}
	mseg, err := bed.AddSegment(netbed.SegmentConfig{Name: "mirror", Uplink: netbed.WAN})
	if err != nil {
		return err
	}
	hd, err := bed.AddHost("d", lanSeg, netbed.LAN)
	if err != nil {
		return err
	}
	hl, err := bed.AddHost("l", lanSeg, netbed.LAN)
	if err != nil {
		return err
	}
	hr, err := bed.AddHost("r", remote, netbed.LAN)
	if err != nil {
		return err
	}
	hm, err := bed.AddHost("mirror", mseg, netbed.LAN)
	if err != nil {
		return err
	}
	var mirror *testrepo.Mirror
	if err := hm.Do(func() (err error) {
		mirror, err = testrepo.ServeMirror(netip.AddrPortFrom(hm.Addr4(), 80).String(), base)
		return err
	}); err != nil {
		return err
	}
	defer mirror.Close()
	src := func(d *daemon) string {
		return repo.SourcesLine("http://127.0.0.1:" + strconv.Itoa(port) + "/" + mirror.Addr() + "/debian")
	}
	ctx, cancel := context.WithTimeout(b.ctx, 20*time.Minute)
	defer cancel()
	apt := func(h *netbed.Host, d *daemon, names []string) (time.Duration, error) {
		return b.apt(ctx, h, repo, src(d), names)
	}
	common := []string{"LOCAL_OK=yes"}
	l, err := b.launch(hl, "pref-l", append(common, "apt_p2p_Khashmir.BOOTSTRAP_NODE=yes")...)
	if err != nil {
		return err
	}
	defer l.stop()
	if err := l.waitUp(); err != nil {
		return err
	}
	boot := "apt_p2p_Khashmir.BOOTSTRAP=" + l.contact()
	rd, err := b.launch(hr, "pref-r", append(common, boot)...)
	if err != nil {
		return err
	}
	defer rd.stop()
	if err := rd.waitUp(); err != nil {
		return err
	}
	if _, err := apt(hl, l, append(setNames("a"), setNames("b")...)); err != nil {
		return fmt.Errorf("daemon L: %w", err)
	}
	if _, err := apt(hr, rd, setNames("a")); err != nil {
		return fmt.Errorf("daemon R: %w", err)
	}
	type res struct {
		a, b         time.Duration
		fromL, fromR int64
	}
	var all []res
	for r := range *prefRuns {
		d, err := b.launch(hd, "pref-d", append(common, boot)...)
		if err != nil {
			return err
		}
		if err := d.waitUp(); err != nil {
			d.stop()
			return err
		}
		// Wait until D's DHT lists both holders of set A.
		for _, p := range repo.Packages {
			if !strings.HasPrefix(p.Name, "pref-a-") {
				continue
			}
			for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(100 * time.Millisecond) {
				var lk struct {
					Peers []string `json:"dht_peers"`
				}
				body, err := d.get("/lookup?q=" + p.SHA256)
				if err == nil && json.Unmarshal(body, &lk) == nil && slices.Contains(lk.Peers, l.contact()) && slices.Contains(lk.Peers, rd.contact()) {
					break
				}
				if time.Now().After(deadline) {
					d.stop()
					return fmt.Errorf("daemon D does not see both holders of %s: %s %v", p.Name, body, err)
				}
			}
		}
		var x res
		order := []string{"a", "b"}
		if r%2 == 1 {
			order = []string{"b", "a"}
		}
		for _, set := range order {
			sl0, _ := l.stats()
			sr0, _ := rd.stats()
			el, err := apt(hd, d, setNames(set))
			if err != nil {
				d.stop()
				return fmt.Errorf("daemon D, set %s: %w", set, err)
			}
			sl1, _ := l.stats()
			sr1, _ := rd.stats()
			if set == "a" {
				x.a, x.fromL, x.fromR = el, sl1.Session.Uploaded-sl0.Session.Uploaded, sr1.Session.Uploaded-sr0.Session.Uploaded
			} else {
				x.b = el
			}
		}
		d.stop()
		all = append(all, x)
		fmt.Fprintf(b.results, "prefer\t%d\t%.1f\t%.1f\t%d\t%d\n", r, ms(x.a), ms(x.b), x.fromL, x.fromR)
	}
	var ta, tb []time.Duration
	var lanShare []float64
	for _, x := range all {
		ta, tb = append(ta, x.a), append(tb, x.b)
		lanShare = append(lanShare, float64(x.fromL)/float64(max(x.fromL+x.fromR, 1)))
	}
	slices.Sort(lanShare)
	fmt.Printf("\n#### Sources of a download held by a LAN peer and a remote peer (%d runs; sets of 4 + 32 MiB = %.1f MiB)\n\n", *prefRuns, float64(setBytes)/(1<<20))
	fmt.Println("| set | holders | apt-get download, median [min–max] ms | bytes from the LAN peer |")
	fmt.Println("|---|---|---:|---:|")
	fmt.Printf("| A | L (LAN) and R (40 ms, 100 Mbit/s) | %s | %.1f%% (median; min %.1f%%) |\n", summary(ta), 100*lanShare[len(lanShare)/2], 100*lanShare[0])
	fmt.Printf("| B | L only | %s | 100%% |\n", summary(tb))
	return nil
}

// apt runs apt-get update and apt-get download of names on h through the
// daemon there (sources line src), and verifies the files; it returns how
// long the download took.
func (b *bench) apt(ctx context.Context, h *netbed.Host, repo *testrepo.Repo, src string, names []string) (time.Duration, error) {
	r, err := apttest.NewRoot(filepath.Join(b.tmp, fmt.Sprintf("apt-%d", b.seq)))
	b.seq++
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(r.Dir)
	r.Start = h.Start
	if err := r.SetSources(src); err != nil {
		return 0, err
	}
	if err := r.Update(ctx); err != nil {
		return 0, err
	}
	work := filepath.Join(r.Dir, "work")
	if err := os.MkdirAll(work, 0o755); err != nil {
		return 0, err
	}
	t0 := time.Now()
	if err := r.Download(ctx, work, names...); err != nil {
		return 0, err
	}
	el := time.Since(t0)
	return el, apttest.VerifyFiles(repo, work, names...)
}

// share is issue 13's scenario end to end (see the package comment).
func (b *bench) share(n int) error {
	if n < 2 {
		return fmt.Errorf("-share-n %d: at least 2 machines", n)
	}
	base := filepath.Join(b.tmp, "share-mirror")
	repo, err := testrepo.Build(filepath.Join(base, "debian"), testrepo.Options{ByHash: true, NoSHA1: true,
		Packages: []testrepo.PackageSpec{
			{Name: "share-tiny", Size: 40 << 10},
			{Name: "share-inline", Size: 1536 << 10},
			{Name: "share-mid", Size: 6 << 20},
			{Name: "share-big", Size: 24 << 20},
		}})
	if err != nil {
		return err
	}
	var total int64
	for _, p := range repo.Packages {
		total += p.Size
	}
	bed, err := netbed.New(netbed.Options{})
	if err != nil {
		return err
	}
	defer bed.Close()
	seg, err := bed.AddSegment(netbed.SegmentConfig{Name: "lan", Family: netbed.DualStack})
	if err != nil {
		return err
	}
	mseg, err := bed.AddSegment(netbed.SegmentConfig{Name: "mirror", Uplink: netbed.WAN})
	if err != nil {
		return err
	}
	var hosts []*netbed.Host
	for i := range n {
		h, err := bed.AddHost(fmt.Sprintf("m%d", i+1), seg, netbed.LAN)
		if err != nil {
			return err
		}
		hosts = append(hosts, h)
	}
	hm, err := bed.AddHost("mirror", mseg, netbed.LAN)
	if err != nil {
		return err
	}
	var mirror *testrepo.Mirror
	if err := hm.Do(func() (err error) {
		mirror, err = testrepo.ServeMirror(netip.AddrPortFrom(hm.Addr4(), 80).String(), base)
		return err
	}); err != nil {
		return err
	}
	defer mirror.Close()
	src := repo.SourcesLine("http://127.0.0.1:" + strconv.Itoa(port) + "/" + mirror.Addr() + "/debian")
	fromMirror := func() int64 {
		var m int64
		for _, p := range repo.Packages {
			m += mirror.BytesServed("/debian/" + p.Filename)
		}
		return m
	}
	ctx, cancel := context.WithTimeout(b.ctx, 20*time.Minute)
	defer cancel()

	type acc struct {
		formed, first, announced, others, done []time.Duration
		share                                  []float64 // package bytes from peers on machines 2…n
	}
	res := map[string]*acc{}
	for _, c := range cases {
		res[c] = &acc{}
	}
	one := func(r int, c string) error {
		ds, t0, err := b.startCase(c, hosts)
		defer stopAll(ds)
		if err != nil {
			return err
		}
		f, err := waitFormed(ds, 20*time.Second)
		if err != nil {
			return err
		}
		a := res[c]
		formed := f.connected.Sub(t0)
		if !f.complete.IsZero() {
			formed = f.complete.Sub(t0)
		}
		mirror.Reset()
		first, err := b.apt(ctx, hosts[0], repo, src, repo.Names())
		if err != nil {
			return fmt.Errorf("machine 1: %w", err)
		}
		if m := fromMirror(); m != total {
			return fmt.Errorf("machine 1: the mirror sent %d package bytes, want all %d", m, total)
		}
		// Machine 1's announcements reach the others' DHTs.
		t1 := time.Now()
		want := []string{ds[0].contact(), netip.AddrPortFrom(hosts[0].Addr6(), port).String()}
		for _, d := range ds[1:] {
			for _, p := range repo.Packages {
				for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(20 * time.Millisecond) {
					var lk struct {
						Peers []string `json:"dht_peers"`
					}
					body, err := d.get("/lookup?q=" + p.SHA256)
					if err == nil && json.Unmarshal(body, &lk) == nil && slices.ContainsFunc(lk.Peers, func(s string) bool { return slices.Contains(want, s) }) {
						break
					}
					if time.Now().After(deadline) {
						return fmt.Errorf("%s does not see machine 1 holding %s: %s %v", d.name, p.Name, body, err)
					}
					if err := ctx.Err(); err != nil {
						return err
					}
				}
			}
		}
		announced := time.Since(t1)
		mirror.Reset()
		var peerBytes int64
		var els []float64
		for i := 1; i < n; i++ {
			st0, err := ds[i].stats()
			if err != nil {
				return err
			}
			el, err := b.apt(ctx, hosts[i], repo, src, repo.Names())
			if err != nil {
				return fmt.Errorf("machine %d: %w", i+1, err)
			}
			st1, err := ds[i].stats()
			if err != nil {
				return err
			}
			peerBytes += st1.Session.Peers - st0.Session.Peers
			a.others = append(a.others, el)
			els = append(els, ms(el))
		}
		done := time.Since(t0)
		m := fromMirror()
		share := 1 - float64(m)/float64(total*int64(n-1))
		a.formed, a.first, a.announced, a.done = append(a.formed, formed), append(a.first, first), append(a.announced, announced), append(a.done, done)
		a.share = append(a.share, share)
		// share n case run formed_ms first_ms announced_ms done_ms mirror_pkg_bytes peer_bytes [others_ms]
		fmt.Fprintf(b.results, "share\t%d\t%s\t%d\t%.1f\t%.1f\t%.1f\t%.1f\t%d\t%d\t%v\n", n, c, r, ms(formed), ms(first), ms(announced), ms(done), m, peerBytes, els)
		return nil
	}
	for r := range *shrRuns {
		for k := range cases {
			c := cases[(r+k)%len(cases)]
			if err := b.ctx.Err(); err != nil {
				return err
			}
			if err := one(r, c); err != nil {
				return fmt.Errorf("share, %s, run %d: %w", c, r, err)
			}
		}
	}
	var sizeMiB float64 = float64(total) / (1 << 20)
	fmt.Printf("\n#### %d machines on one LAN share a package set (%.1f MiB, 4 .debs) fetched from a mirror at 100 Mbit/s, 40 ms (%d runs, median [min–max] ms)\n\n", n, sizeMiB, *shrRuns)
	fmt.Println("| case | DHT formed (from launch) | apt-get download, machine 1 (mirror) | machine 1's announcements seen by the others | apt-get download, machines 2…N | package bytes from LAN peers, machines 2…N | launch → machine N has every .deb |")
	fmt.Println("|---|---:|---:|---:|---:|---:|---:|")
	for _, c := range cases {
		a := res[c]
		sh := slices.Clone(a.share)
		slices.Sort(sh)
		fmt.Printf("| %s | %s | %s | %s | %s | %.1f%% (min %.1f%%) | %s |\n", c, summary(a.formed), summary(a.first), summary(a.announced),
			summary(a.others), 100*sh[len(sh)/2], 100*sh[0], summary(a.done))
	}
	l, bt := res["lan"], res["bootstrap"]
	fmt.Printf("| lan / bootstrap (medians) | %s | %s | %s | %s | | %s |\n", ratio(l.formed, bt.formed), ratio(l.first, bt.first),
		ratio(l.announced, bt.announced), ratio(l.others, bt.others), ratio(l.done, bt.done))
	return nil
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}

func ratio(a, b []time.Duration) string {
	if len(a) == 0 || len(b) == 0 || median(b) == 0 {
		return "–"
	}
	return fmt.Sprintf("%.2f×", float64(median(a))/float64(median(b)))
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func summary(ds []time.Duration) string {
	if len(ds) == 0 {
		return "–"
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return fmt.Sprintf("%.0f [%.0f–%.0f]", ms(s[len(s)/2]), ms(s[0]), ms(s[len(s)-1]))
}
