// Command apt-p2p is the apt-p2p daemon and its helper subcommands.
//
//	apt-p2p [run] [flags]         run the daemon (the default)
//	apt-p2p status [flags]        show a running daemon's status
//	apt-p2p lookup [flags] URL|PATH|HASH
//	                              look a file up in the index, the cache and the DHT
//	apt-p2p verify [flags]        rehash every cached file, drop bad ones (daemon stopped)
//	apt-p2p gc [flags]            drop stale metadata and files nothing refers to (daemon stopped)
//	apt-p2p config [flags]        print the effective configuration
//	apt-p2p version
package main

import (
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/apt-p2p/apt-p2p/internal/config"
	"github.com/apt-p2p/apt-p2p/internal/front"
	"github.com/apt-p2p/apt-p2p/internal/httpserve"
	"github.com/apt-p2p/apt-p2p/internal/membudget"
	"github.com/apt-p2p/apt-p2p/internal/node"
	"github.com/apt-p2p/apt-p2p/piecestore"
)

// embeddedDefault is the configuration `make run` uses: no file, no root.
//
//go:embed default.conf
var embeddedDefault string

type options struct {
	postParse   func()
	configFiles []string
	embedded    bool
	sets        []string
	logFile     string
	addr        string // status/lookup: daemon address
}

type multi []string

func (m *multi) String() string     { return strings.Join(*m, ",") }
func (m *multi) Set(v string) error { *m = append(*m, v); return nil }

func newFlags(name, usage string, o *options, daemonFlags bool) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.Var((*multi)(&o.configFiles), "c", "read this config file after the system ones (repeatable)")
	fs.Var((*multi)(&o.configFiles), "config-file", "same as -c")
	fs.BoolVar(&o.embedded, "embedded", false, "use the built-in default configuration instead of the system files")
	fs.Var((*multi)(&o.sets), "set", "override an option: NAME=value or SECTION.NAME=value (repeatable)")
	port := fs.Int("port", 0, "PORT")
	cacheDir := fs.String("cache-dir", "", "CACHE_DIR")
	bind := fs.String("bind", "", "BIND_ADDRESS")
	if daemonFlags {
		fs.StringVar(&o.logFile, "l", "-", "log file ('-' is standard error)")
		fs.StringVar(&o.logFile, "log-file", "-", "same as -l")
	} else {
		fs.StringVar(&o.addr, "addr", "", "daemon address host:port (default: from the configuration)")
	}
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: apt-p2p %s\n\nflags:\n", usage)
		fs.PrintDefaults()
	}
	// Named shortcuts become --set overrides after parsing.
	o.postParse = func() {
		if *port != 0 {
			o.sets = append(o.sets, "PORT="+strconv.Itoa(*port))
		}
		if *cacheDir != "" {
			o.sets = append(o.sets, "CACHE_DIR="+*cacheDir)
		}
		if *bind != "" {
			o.sets = append(o.sets, "BIND_ADDRESS="+*bind)
		}
	}
	return fs
}

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	cmd := "run"
	if len(args) > 0 && (!strings.HasPrefix(args[0], "-") || args[0] == "-h" || args[0] == "--help" || args[0] == "--version") {
		// "apt-p2p --help" is the overview, not the run command's flags.
		cmd, args = args[0], args[1:]
	}
	switch cmd {
	case "run":
		return cmdRun(args)
	case "status":
		return cmdStatus(args)
	case "lookup":
		return cmdLookup(args)
	case "verify", "gc":
		return cmdMaint(cmd, args)
	case "config":
		return cmdConfig(args)
	case "version", "--version":
		fmt.Println("apt-p2p", node.Version)
		return 0
	case "help", "-h", "--help":
		fmt.Print(helpText)
		return 0
	}
	fmt.Fprintf(os.Stderr, "apt-p2p: unknown command %q\n\n%s", cmd, helpText)
	return 2
}

const helpText = `apt-p2p: share Debian packages between machines; apt talks to it over HTTP.

usage:
  apt-p2p [run] [flags]          run the daemon (default)
  apt-p2p status [flags]         show a running daemon's status
  apt-p2p lookup [flags] URL|PATH|HASH
                                 look a file up (a URL as apt prints it, host/debian/pool/...,
                                 or a hex hash); exits 1 if it reports an error
  apt-p2p verify [flags]         rehash every cached file and drop bad ones (daemon stopped)
  apt-p2p gc [flags]             remove stale metadata and temporary files (daemon stopped)
  apt-p2p config [flags]         print the effective configuration
  apt-p2p version

Configuration: /etc/apt-p2p/apt-p2p.conf, then ~/.apt-p2p/apt-p2p.conf, then -c FILE;
--embedded uses the built-in defaults instead of the system files. Run
"apt-p2p <command> --help" for each command's flags.
`

func loadConfig(o *options) (*config.Config, []string, error) {
	var srcs []config.Source
	if o.embedded {
		srcs = append(srcs, config.Source{Name: "(built-in defaults)", Data: strings.NewReader(embeddedDefault)})
	} else {
		for _, f := range config.SystemFiles() {
			srcs = append(srcs, config.Source{Name: f, Optional: true})
		}
	}
	for _, f := range o.configFiles {
		srcs = append(srcs, config.Source{Name: f})
	}
	return config.Load(srcs, o.sets...)
}

func parse(fs *flag.FlagSet, o *options, args []string) (int, bool) {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0, false
		}
		return 2, false
	}
	o.postParse()
	return 0, true
}

func cmdRun(args []string) int {
	var o options
	fs := newFlags("run", "[run] [flags]", &o, true)
	if code, ok := parse(fs, &o, args); !ok {
		return code
	}
	cfg, read, err := loadConfig(&o)
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s\napt-p2p: fix the configuration; the daemon does not start on a broken one\n", errorLines(err))
		return 1
	}
	// Until start-up has worked, log lines to standard error are held back:
	// a failed start is one message, not a message after a screen of logs.
	held := &heldWriter{w: os.Stderr}
	logOut := io.Writer(held)
	if o.logFile != "-" && o.logFile != "" {
		f, err := os.OpenFile(o.logFile, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o640)
		if err != nil {
			fmt.Fprintf(os.Stderr, "apt-p2p: log file: %v\n", err)
			return 1
		}
		defer f.Close()
		logOut = f
	}
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.LogLevel))
	log := slog.New(slog.NewTextHandler(logOut, &slog.HandlerOptions{Level: level}))
	if len(read) == 0 {
		read = []string{"(built-in defaults)"}
	}

	// Bind the TCP port first: a port in use is the most common start-up
	// failure and deserves a clear message before anything else starts.
	listenAddr := cfg.ListenAddr(cfg.Port)
	ln, err := net.Listen(cfg.TCPNetwork(), listenAddr) // ADDRESS_FAMILIES: dual-stack by default
	if errors.Is(err, syscall.EADDRNOTAVAIL) {
		fmt.Fprintf(os.Stderr, "apt-p2p: cannot listen on TCP %s: BIND_ADDRESS %s is not an address of this machine\napt-p2p: set BIND_ADDRESS (--bind) to one of its addresses, or leave it empty to listen on every address\n", listenAddr, cfg.BindAddress)
		return 1
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "apt-p2p: cannot listen on TCP %s: %v\napt-p2p: another apt-p2p (or another program) uses the port; stop it or set PORT (--port)\n", listenAddr, err)
		return 1
	}
	// Privileged ports are bound above; everything after runs as USERNAME.
	if warn, err := dropPrivileges(cfg.Username, cfg.CacheDir); err != nil {
		ln.Close()
		fmt.Fprintf(os.Stderr, "apt-p2p: cannot switch to user %q: %v\n", cfg.Username, err)
		return 1
	} else if warn != "" {
		log.Warn(warn)
	}
	// The memory budget is the process's: set before the index load and the first burst.
	membudget.SetLimit(cfg.MemoryLimit)
	rctx, stopReleaser := context.WithCancel(context.Background())
	defer stopReleaser()
	go (&membudget.Releaser{}).Run(rctx)
	n, err := node.New(cfg, log)
	if err != nil {
		ln.Close()
		fmt.Fprintf(os.Stderr, "apt-p2p: %v\n", err)
		return 1
	}
	// Logged once start-up has worked: a failure above is one message on
	// standard error, not buried after log lines.
	held.release()
	log.Info("apt-p2p started", "version", node.Version, "config", strings.Join(read, ", "), "cache", cfg.CacheDir, "listen", listenAddr)
	fr := front.New(n, log.With("part", "http"))
	// apt clients are trusted and may open many connections (a site cache behind one NAT
	// address); the per-address cap is for peers. apt pipelines up to 10 requests per
	// connection: their downloads start at once instead of one after another.
	scfg := fr.ServerConfig("apt-p2p/"+node.Version, log.With("part", "http"))
	srv := httpserve.NewServer(fr.Handler, scfg)
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(httpserve.LimitListener(ln, scfg)) }()

	printHowTo(cfg)
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	code := 0
	select {
	case s := <-sig:
		log.Info("shutting down", "signal", s.String())
	case err := <-errc:
		log.Error("HTTP server stopped", "err", err)
		code = 1
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = srv.ShutdownWithContext(ctx)
	fr.Close()
	if err := n.Close(); err != nil {
		log.Warn("closing", "err", err)
	}
	log.Info("stopped")
	return code
}

// heldWriter buffers writes until release, then passes them through.
type heldWriter struct {
	mu       sync.Mutex
	w        io.Writer
	buf      []byte
	released bool
}

func (h *heldWriter) Write(p []byte) (int, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.released {
		return h.w.Write(p)
	}
	h.buf = append(h.buf, p...)
	return len(p), nil
}

func (h *heldWriter) release() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.released {
		h.released = true
		_, _ = h.w.Write(h.buf)
		h.buf = nil
	}
}

// errorLines renders an error, one "apt-p2p: " line per problem (a config error
// joins one line per mistake), dropping the package prefix repeated on each.
func errorLines(err error) string {
	var out []string
	seen := map[string]bool{}
	for _, l := range strings.Split(err.Error(), "\n") {
		key := strings.TrimPrefix(strings.TrimSpace(l), "config: ")
		if key == "" || seen[key] {
			continue
		}
		seen[key] = true
		out = append(out, "apt-p2p: "+strings.TrimSpace(l))
	}
	return strings.Join(out, "\n")
}

func printHowTo(cfg *config.Config) {
	host := cfg.BindAddress
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "localhost"
	}
	hp := net.JoinHostPort(host, strconv.Itoa(cfg.Port))
	fmt.Fprintf(os.Stderr, `
apt-p2p is running. Point apt at it in one of two ways:
  in /etc/apt/sources.list (URL-prefix mode), put the daemon in front of the mirror:
      deb http://%[1]s/deb.debian.org/debian bookworm main
  or leave sources.list alone and use it as apt's proxy, e.g. in /etc/apt/apt.conf.d/30apt-p2p:
      Acquire::http::Proxy "http://%[1]s";
  (a mirror at an IPv6 address is written in brackets: deb http://%[1]s/[2001:db8::80]/debian ...)
Status page: http://%[1]s/   (Ctrl-C stops)

`, hp)
}

func daemonURL(o *options, path string) (string, error) {
	addr := o.addr
	if addr == "" {
		cfg, _, err := loadConfig(o)
		if err != nil {
			return "", err
		}
		addr = "127.0.0.1:" + strconv.Itoa(cfg.Port)
		if !cfg.IPv6.Want4() {
			addr = "[::1]:" + strconv.Itoa(cfg.Port) // an IPv6-only daemon does not listen on 127.0.0.1
		}
		if b := cfg.Bind; b.IsValid() && !b.IsUnspecified() {
			addr = netip.AddrPortFrom(b, uint16(cfg.Port)).String()
		}
	}
	return "http://" + addr + path, nil
}

func httpGetJSON(u string, into any) error {
	c := &http.Client{Timeout: 30 * time.Second}
	resp, err := c.Get(u)
	if err != nil {
		return fmt.Errorf("no apt-p2p daemon answered at %s: %w (is it running? use --addr)", u, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s: %s", u, resp.Status, strings.TrimSpace(string(b)))
	}
	return json.Unmarshal(b, into)
}

func cmdStatus(args []string) int {
	var o options
	fs := newFlags("status", "status [flags]", &o, false)
	asJSON := fs.Bool("json", false, "print the raw JSON")
	if code, ok := parse(fs, &o, args); !ok {
		return code
	}
	u, err := daemonURL(&o, "/stats.json")
	if err != nil {
		fmt.Fprintln(os.Stderr, "apt-p2p:", err)
		return 1
	}
	var st front.Status
	if err := httpGetJSON(u, &st); err != nil {
		fmt.Fprintln(os.Stderr, "apt-p2p:", err)
		return 1
	}
	if *asJSON {
		b, _ := json.MarshalIndent(st, "", "  ")
		fmt.Println(string(b))
		return 0
	}
	total := st.Session.Mirror + st.Session.Peers + st.Session.Cache
	fmt.Printf("apt-p2p %s, up %s, contact %s, DHT joined: %v, reachable: %v\n", st.Version, st.Uptime.Round(time.Second), orDash(st.Contact), st.Joined, st.Reachable)
	fmt.Printf("to apt this session: %s (mirror %s, peers %s, cache %s); uploaded %s\n", front.ByteFormat(total),
		front.ByteFormat(st.Session.Mirror), front.ByteFormat(st.Session.Peers), front.ByteFormat(st.Session.Cache), front.ByteFormat(st.Session.Uploaded))
	fmt.Printf("all time: mirror %s, peers %s, cache %s, uploaded %s\n", front.ByteFormat(st.AllTime.Mirror), front.ByteFormat(st.AllTime.Peers), front.ByteFormat(st.AllTime.Cache), front.ByteFormat(st.AllTime.Uploaded))
	fmt.Printf("cache: %d files, %s; index: %d entries\n", st.Cache.Files, front.ByteFormat(st.Cache.Bytes), st.Index.Entries)
	fmt.Printf("DHT: %d nodes, %.0f users (%s), %d keys stored here; lookups p50 %.0f ms p99 %.0f ms\n", st.DHT.Nodes, st.DHT.EstimatedUsers, st.DHT.EstimatedUsersFrom, st.DHT.Keys, st.Lookups.P50ms, st.Lookups.P99ms)
	if l := st.LAN; l != nil {
		var peers []string
		for _, p := range l.Peers {
			peers = append(peers, p.DHT)
		}
		fmt.Printf("LAN discovery: %d link(s), %d daemon(s) heard%s%s\n", len(l.Links), len(l.Peers), orEmpty(": ", strings.Join(peers, " ")), orEmpty("; ", l.Error))
	}
	if p := st.PortMap; p != nil {
		fmt.Printf("port mapping (%s): %s\n", p.Mode, p.Line())
	}
	for _, f := range st.Families {
		fmt.Printf("%s: contact %s, DHT joined: %v, %d nodes\n", f.Family, orDash(f.Contact), f.Joined, f.Nodes)
	}
	for _, b := range st.Bans {
		fmt.Printf("banned: %s for %s more%s\n", b.Addr, time.Until(b.Until).Round(time.Second), orEmpty(": ", b.Reason))
	}
	for _, a := range st.Active {
		fmt.Printf("downloading %s: %s of %s, %d apt client(s) waiting\n", a.Path, front.ByteFormat(a.Done), front.ByteFormat(a.Size), a.Waiters)
	}
	return 0
}

func orEmpty(prefix, s string) string {
	if s == "" {
		return ""
	}
	return prefix + s
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func cmdLookup(args []string) int {
	var o options
	fs := newFlags("lookup", "lookup [flags] URL|PATH|HASH\n\nURL is a file's URL as apt prints it (http://localhost:9977/deb.debian.org/debian/pool/...,\n.../https/<host>/..., or the mirror's own URL in proxy mode); PATH is <host>/<path> or\nhttps/<host>/<path>; HASH is a hex MD5, SHA1, SHA256 or SHA512. Exits 1 if the answer\nreports an error (e.g. the index has no hash for the path)", &o, false)
	if code, ok := parse(fs, &o, args); !ok {
		return code
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return 2
	}
	u, err := daemonURL(&o, "/lookup?q="+url.QueryEscape(fs.Arg(0)))
	if err != nil {
		fmt.Fprintln(os.Stderr, "apt-p2p:", err)
		return 1
	}
	var res map[string]any
	if err := httpGetJSON(u, &res); err != nil {
		fmt.Fprintln(os.Stderr, "apt-p2p:", err)
		return 1
	}
	b, _ := json.MarshalIndent(res, "", "  ")
	fmt.Println(string(b))
	if msg, ok := res["error"].(string); ok && msg != "" {
		fmt.Fprintln(os.Stderr, "apt-p2p: lookup:", msg)
		return 1
	}
	return 0
}

func cmdMaint(cmd string, args []string) int {
	var o options
	fs := newFlags(cmd, cmd+" [flags]", &o, true)
	if code, ok := parse(fs, &o, args); !ok {
		return code
	}
	cfg, _, err := loadConfig(&o)
	if err != nil {
		fmt.Fprintln(os.Stderr, errorLines(err))
		return 1
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	st, err := piecestore.Open(filepath.Join(cfg.CacheDir, "store"), piecestore.Options{Logger: log, FlushInterval: -1})
	if err != nil {
		fmt.Fprintf(os.Stderr, "apt-p2p: opening the cache in %s: %v (stop the daemon first: it holds the cache)\n", cfg.CacheDir, err)
		return 1
	}
	defer st.Close()
	if cmd == "verify" {
		bad, err := st.Verify(context.Background())
		if err != nil {
			fmt.Fprintln(os.Stderr, "apt-p2p: verify:", err)
			return 1
		}
		s := st.Stats()
		fmt.Printf("verified %d files (%s); %d bad file(s) removed\n", s.Files, front.ByteFormat(s.Bytes), bad)
		return 0
	}
	removed, err := st.GC()
	if err != nil {
		fmt.Fprintln(os.Stderr, "apt-p2p: gc:", err)
		return 1
	}
	fmt.Printf("garbage collection removed %d item(s)\n", removed)
	return 0
}

func cmdConfig(args []string) int {
	var o options
	fs := newFlags("config", "config [flags]", &o, true)
	if code, ok := parse(fs, &o, args); !ok {
		return code
	}
	cfg, read, err := loadConfig(&o)
	if err != nil {
		fmt.Fprintln(os.Stderr, errorLines(err))
		return 1
	}
	if len(read) == 0 {
		read = []string{"(built-in defaults only)"}
	}
	fmt.Printf("# effective apt-p2p configuration, from: %s\n", strings.Join(read, ", "))
	_ = cfg.Write(os.Stdout)
	return 0
}
