// Package config reads apt-p2p.conf: the original apt-p2p's INI format, file
// locations, option names and defaults (reference §5), plus the options this
// rewrite adds in the same style. A broken file is an error that names the
// file, the line and what was expected; the daemon does not start on one.
package config

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Config is the effective configuration.
type Config struct {
	Port                int           // TCP port for apt, peers and the status page; also the DHT's UDP port by default
	BindAddress         string        // BIND_ADDRESS as written (an IP address or a host name; empty: all)
	Bind                netip.Addr    // BIND_ADDRESS resolved once when loading; invalid (zero): every address
	UploadLimit         int64         // peer uploads, bytes/s for the whole daemon; 0 = unlimited
	UploadLimitPerPeer  int64         // peer uploads, bytes/s per peer address; 0 = unlimited
	MaxUploads          int           // concurrent peer uploads; 0 = unlimited
	UploadWeight        float64       // scales the upload capacity the load header offers peers (1 = as measured or limited)
	LoadAware           bool          // rank sources by when they would finish a piece under their load, not by speed alone
	MinDownloadPeers    int           // below this many peers the mirror is used as one more source (0: by throughput)
	MirrorDelay         time.Duration // longest wait for peer bytes before the mirror is raced too
	Herd                bool          // flash-crowd coordination: claims, one mirror fetch per crowd
	HerdPatience        time.Duration // how long a follower waits for its leader's first bytes
	CacheDir            string
	CacheSize           int64 // bytes; 0 = unlimited
	OtherDirs           []string
	LocalOK             bool
	RemoteStats         bool
	AllowedClients      []netip.Prefix // who may use the apt-facing proxy
	UpstreamCAFile      string         // extra PEM roots trusted for https mirrors (besides the system's)
	UnloadPackagesCache time.Duration  // kept for compatibility; the index stays loaded
	MemoryLimit         int64          // soft limit of the Go runtime's memory, bytes; 0 = none
	ScrubRate           int64          // bytes/s the background scrub rehashes cached files at; 0 = off
	ScrubInterval       time.Duration  // least time between the starts of two scrub passes
	KeyRefresh          time.Duration
	Username            string
	DHTSection          string
	DHTOnly             bool
	LogLevel            string
	DHT                 DHT
	Mainline            Mainline  // the mainline DHT (mainline.go)
	LAN                 LAN       // LAN discovery (lan.go)
	Reach               Reach     // reachability (reach.go)
	PortMap             PortMap   // port mapping (portmap.go)
	IPv6                IPv6      // address families (ipv6.go)
	Volunteer           Volunteer // the preheat mode (volunteer.go)
}

// DHT is the configuration of the DHT section ([apt_p2p_Khashmir] by default).
type DHT struct {
	Port               int
	Bootstrap          []string
	BootstrapNode      bool
	CheckpointInterval time.Duration
	ConcurrentReqs     int
	StoreRedundancy    int
	RetrieveValues     int
	MaxFailures        int
	MinPingInterval    time.Duration
	BucketStaleness    time.Duration
	LocalOK            bool
	KeyExpire          time.Duration
	KRPCTimeout        time.Duration
	KRPCInitialDelay   time.Duration
	Spew               bool
	TimeoutProfile     string // "default" (adaptive, RTT-based) or "classic" (2/6/9 s)
	UDPTransport       string // "std" (net.UDPConn) or "gnet"
}

type kind int

const (
	kString kind = iota
	kInt
	kTime
	kBool
	kList
	kBytes
	kPrefixes
	kEnum
	kBind
	kFloat
	kSources // VOLUNTEER_SOURCES: one "mirror suite..." per line
)

// option describes one configuration option: where it lives, its type, its
// default, and how it is stored into a Config.
type option struct {
	dht   bool // in the DHT section (else [DEFAULT])
	name  string
	kind  kind
	def   string
	enum  []string
	help  string
	apply func(c *Config, v any)
}

func intOpt(p func(*Config) *int) func(*Config, any) {
	return func(c *Config, v any) { *p(c) = int(v.(int64)) }
}
func i64Opt(p func(*Config) *int64) func(*Config, any) {
	return func(c *Config, v any) { *p(c) = v.(int64) }
}
func durOpt(p func(*Config) *time.Duration) func(*Config, any) {
	return func(c *Config, v any) { *p(c) = v.(time.Duration) }
}
func boolOpt(p func(*Config) *bool) func(*Config, any) {
	return func(c *Config, v any) { *p(c) = v.(bool) }
}
func strOpt(p func(*Config) *string) func(*Config, any) {
	return func(c *Config, v any) { *p(c) = v.(string) }
}
func listOpt(p func(*Config) *[]string) func(*Config, any) {
	return func(c *Config, v any) { *p(c) = v.([]string) }
}

// options is the schema. The original's names and defaults come first (§5.2, §5.3);
// CONCURRENT_REQS defaults to 6 here (DESIGN.md §4).
var options = []option{
	{name: "PORT", kind: kInt, def: "9977", help: "TCP port for apt requests, peer uploads and the status page; the DHT's UDP port unless its section sets one", apply: intOpt(func(c *Config) *int { return &c.Port })},
	{name: "BIND_ADDRESS", kind: kBind, def: "", help: "address to listen on: an IP address of this machine or a host name resolving to one (empty: every address)", apply: func(c *Config, v any) {
		b := v.(bindValue)
		c.BindAddress, c.Bind = b.name, b.addr
	}},
	{name: "UPLOAD_LIMIT", kind: kInt, def: "0", help: "peer upload limit for the whole daemon in KB/s (0 = unlimited)", apply: func(c *Config, v any) { c.UploadLimit = v.(int64) * 1024 }},
	{name: "UPLOAD_LIMIT_PER_PEER", kind: kInt, def: "0", help: "peer upload limit per peer address in KB/s (0 = unlimited)", apply: func(c *Config, v any) { c.UploadLimitPerPeer = v.(int64) * 1024 }},
	{name: "MAX_UPLOADS", kind: kInt, def: "32", help: "concurrent peer uploads (0 = unlimited); more get 503", apply: intOpt(func(c *Config) *int { return &c.MaxUploads })},
	{name: "UPLOAD_WEIGHT", kind: kFloat, def: "1", help: "how much upload load to ask peers for, relative to this daemon's upload capacity (UPLOAD_LIMIT, else the fastest it has uploaded lately): e.g. 4 for a volunteer with a fast link, 0.25 for a laptop on battery or a metered link", apply: func(c *Config, v any) { c.UploadWeight = v.(float64) }},
	{name: "LOAD_AWARE", kind: kBool, def: "yes", help: "spread a download's pieces by when each source would finish one under its current load (peers tell theirs), not by measured speed alone", apply: boolOpt(func(c *Config) *bool { return &c.LoadAware })},
	{name: "MIN_DOWNLOAD_PEERS", kind: kInt, def: "0", help: "with fewer peers than this the mirror is one more source, the original's rule (it used 3); 0 = decide by measured throughput: the mirror joins when peers fail, stall or are clearly slower than it", apply: intOpt(func(c *Config) *int { return &c.MinDownloadPeers })},
	{name: "MIRROR_DELAY", kind: kTime, def: "1s", help: "longest wait for peer bytes before the mirror is raced too (the actual delay adapts below this)", apply: durOpt(func(c *Config) *time.Duration { return &c.MirrorDelay })},
	{name: "HERD", kind: kBool, def: "yes", help: "when several daemons start the same download at once, elect one to fetch it from the mirror and let the others stream it from that one while it downloads", apply: boolOpt(func(c *Config) *bool { return &c.Herd })},
	{name: "HERD_PATIENCE", kind: kTime, def: "3s", help: "how long a download that follows another daemon's waits for its first bytes before it uses the mirror too", apply: durOpt(func(c *Config) *time.Duration { return &c.HerdPatience })},
	{name: "CACHE_DIR", kind: kString, def: "~/.apt-p2p/cache", help: "directory for the cache, temporary files and state", apply: strOpt(func(c *Config) *string { return &c.CacheDir })},
	{name: "CACHE_SIZE", kind: kBytes, def: "0", help: "largest cache size, e.g. 20G (0 = unlimited); unreferenced files are evicted first, then least recently used", apply: i64Opt(func(c *Config) *int64 { return &c.CacheSize })},
	{name: "OTHER_DIRS", kind: kList, def: "", help: "other directories whose files are hashed and shared (everything in them becomes downloadable)", apply: listOpt(func(c *Config) *[]string { return &c.OtherDirs })},
	{name: "LOCAL_OK", kind: kBool, def: "no", help: "allow private and loopback addresses as our contact and in the DHT (private test networks only)", apply: boolOpt(func(c *Config) *bool { return &c.LocalOK })},
	{name: "REMOTE_STATS", kind: kBool, def: "yes", help: "let non-local clients see the status page, /stats.json and /metrics", apply: boolOpt(func(c *Config) *bool { return &c.RemoteStats })},
	{name: "ALLOWED_CLIENTS", kind: kPrefixes, def: "127.0.0.0/8 ::1/128", help: "networks that may use the apt-facing proxy (add your LAN to make it a shared site cache)", apply: func(c *Config, v any) { c.AllowedClients = v.([]netip.Prefix) }},
	{name: "UPSTREAM_CA_FILE", kind: kString, def: "", help: "PEM file of extra CA certificates trusted for https mirrors, besides the system's (empty: system roots only)", apply: strOpt(func(c *Config) *string { return &c.UpstreamCAFile })},
	{name: "UNLOAD_PACKAGES_CACHE", kind: kTime, def: "5m", help: "accepted for compatibility; the compact index stays loaded", apply: durOpt(func(c *Config) *time.Duration { return &c.UnloadPackagesCache })},
	{name: "MEMORY_LIMIT", kind: kBytes, def: "96M", help: "soft limit of the daemon's memory, e.g. 128M (0 = none): near it the garbage collector works harder; raise it for caches of more than ~50 000 files", apply: i64Opt(func(c *Config) *int64 { return &c.MemoryLimit })},
	{name: "SCRUB_RATE", kind: kBytes, def: "2M", help: "bytes per second the background scrub reads, rehashing cached files to find copies that rotted on disk, e.g. 8M (0 = no scrub; every copy is still verified before its first serve after a start)", apply: i64Opt(func(c *Config) *int64 { return &c.ScrubRate })},
	{name: "SCRUB_INTERVAL", kind: kTime, def: "1d", help: "least time between the starts of two scrub passes over the cache", apply: durOpt(func(c *Config) *time.Duration { return &c.ScrubInterval })},
	{name: "KEY_REFRESH", kind: kTime, def: "2.5h", help: "age after which an announcement is stored again (a little less than KEY_EXPIRE)", apply: durOpt(func(c *Config) *time.Duration { return &c.KeyRefresh })},
	{name: "USERNAME", kind: kString, def: "apt-p2p", help: "user to run as when started as root (empty: stay)", apply: strOpt(func(c *Config) *string { return &c.Username })},
	{name: "DHT", kind: kString, def: "apt_p2p_Khashmir", help: "name of the DHT configuration section", apply: strOpt(func(c *Config) *string { return &c.DHTSection })},
	{name: "DHT-ONLY", kind: kBool, def: "no", help: "run only the DHT (a bootstrap node), with its status page on PORT", apply: boolOpt(func(c *Config) *bool { return &c.DHTOnly })},
	{name: "LOG_LEVEL", kind: kEnum, def: "info", enum: []string{"debug", "info", "warn", "error"}, help: "log level", apply: strOpt(func(c *Config) *string { return &c.LogLevel })},

	{dht: true, name: "PORT", kind: kInt, def: "%(PORT)s", help: "UDP port of the DHT", apply: intOpt(func(c *Config) *int { return &c.DHT.Port })},
	{dht: true, name: "BOOTSTRAP", kind: kList, def: "", help: "bootstrap nodes, host:port, separated by white space or new lines", apply: listOpt(func(c *Config) *[]string { return &c.DHT.Bootstrap })},
	{dht: true, name: "BOOTSTRAP_NODE", kind: kBool, def: "no", help: "count as joined even when nobody answers (for bootstrap nodes)", apply: boolOpt(func(c *Config) *bool { return &c.DHT.BootstrapNode })},
	{dht: true, name: "CHECKPOINT_INTERVAL", kind: kTime, def: "5m", help: "token rotation, state saving, value expiry, bucket refresh (±10%)", apply: durOpt(func(c *Config) *time.Duration { return &c.DHT.CheckpointInterval })},
	{dht: true, name: "CONCURRENT_REQS", kind: kInt, def: "6", help: "requests in flight per lookup (alpha)", apply: intOpt(func(c *Config) *int { return &c.DHT.ConcurrentReqs })},
	{dht: true, name: "STORE_REDUNDANCY", kind: kInt, def: "6", help: "successful stores per announcement; also when a get stops", apply: intOpt(func(c *Config) *int { return &c.DHT.StoreRedundancy })},
	{dht: true, name: "RETRIEVE_VALUES", kind: kInt, def: "-10000", help: "N > 0: stop after N values; 0: all values; -N: up to N values until STORE_REDUNDANCY nodes answered", apply: intOpt(func(c *Config) *int { return &c.DHT.RetrieveValues })},
	{dht: true, name: "MAX_FAILURES", kind: kInt, def: "3", help: "consecutive failures before a node leaves the routing table", apply: intOpt(func(c *Config) *int { return &c.DHT.MaxFailures })},
	{dht: true, name: "MIN_PING_INTERVAL", kind: kTime, def: "15m", help: "minimum age before pinging a bucket's oldest node; delay of re-pings", apply: durOpt(func(c *Config) *time.Duration { return &c.DHT.MinPingInterval })},
	{dht: true, name: "BUCKET_STALENESS", kind: kTime, def: "1h", help: "a bucket not looked up for this long is refreshed", apply: durOpt(func(c *Config) *time.Duration { return &c.DHT.BucketStaleness })},
	{dht: true, name: "LOCAL_OK", kind: kBool, def: "%(LOCAL_OK)s", help: "allow private and loopback node addresses", apply: boolOpt(func(c *Config) *bool { return &c.DHT.LocalOK })},
	{dht: true, name: "KEY_EXPIRE", kind: kTime, def: "3h", help: "stored values older than this are deleted", apply: durOpt(func(c *Config) *time.Duration { return &c.DHT.KeyExpire })},
	{dht: true, name: "KRPC_TIMEOUT", kind: kTime, def: "9s", help: "total time before an RPC fails (classic profile)", apply: durOpt(func(c *Config) *time.Duration { return &c.DHT.KRPCTimeout })},
	{dht: true, name: "KRPC_INITIAL_DELAY", kind: kTime, def: "2s", help: "first resend delay, doubled after each resend (classic profile)", apply: durOpt(func(c *Config) *time.Duration { return &c.DHT.KRPCInitialDelay })},
	{dht: true, name: "SPEW", kind: kBool, def: "no", help: "log every KRPC message (debug level)", apply: boolOpt(func(c *Config) *bool { return &c.DHT.Spew })},
	{dht: true, name: "TIMEOUT_PROFILE", kind: kEnum, def: "default", enum: []string{"default", "classic"}, help: "default: per-node RTT-based timeouts; classic: the original's 2/6/9 s", apply: strOpt(func(c *Config) *string { return &c.DHT.TimeoutProfile })},
	{dht: true, name: "UDP_TRANSPORT", kind: kEnum, def: "std", enum: []string{"std", "gnet"}, help: "UDP transport: std (net.UDPConn, zero-alloc) or gnet", apply: strOpt(func(c *Config) *string { return &c.DHT.UDPTransport })},
}

// SystemFiles are the configuration files read by default, in order; later
// files override earlier ones (reference §5.1).
func SystemFiles() []string {
	files := []string{"/etc/apt-p2p/apt-p2p.conf"}
	if home, err := os.UserHomeDir(); err == nil {
		files = append(files, filepath.Join(home, ".apt-p2p", "apt-p2p.conf"))
	}
	return files
}

// Source is one configuration text to read.
type Source struct {
	Name     string // file name for messages
	Data     io.Reader
	Optional bool // a missing file is not an error
}

// Files turns file names into sources; names listed in optional may be missing.
func Files(required []string, optional ...string) []Source {
	var out []Source
	for _, f := range optional {
		out = append(out, Source{Name: f, Optional: true})
	}
	for _, f := range required {
		out = append(out, Source{Name: f})
	}
	return out
}

// Load reads the sources in order over the built-in defaults, then applies
// overrides ("NAME=value" for [DEFAULT], "SECTION.NAME=value" otherwise; these are
// the command-line flags), and checks every option.
func Load(srcs []Source, overrides ...string) (*Config, []string, error) {
	ini := newINI()
	var read []string
	for _, s := range srcs {
		r := s.Data
		if r == nil {
			f, err := os.Open(s.Name)
			if err != nil {
				if s.Optional && errors.Is(err, os.ErrNotExist) {
					continue
				}
				return nil, read, fmt.Errorf("config: %w", err)
			}
			data, err := io.ReadAll(io.LimitReader(f, 1<<20))
			f.Close()
			if err != nil {
				return nil, read, fmt.Errorf("config: %s: %w", s.Name, err)
			}
			r = bytes.NewReader(data)
		}
		if err := ini.parse(s.Name, r); err != nil {
			return nil, read, fmt.Errorf("config: %w", err)
		}
		read = append(read, s.Name)
	}
	for _, o := range overrides {
		eq := strings.IndexByte(o, '=')
		if eq <= 0 {
			return nil, read, fmt.Errorf("config: override %q: expected NAME=value or SECTION.NAME=value", o)
		}
		name, val := strings.TrimSpace(o[:eq]), strings.TrimSpace(o[eq+1:])
		sec := defaultSection
		if dot := strings.LastIndexByte(name, '.'); dot > 0 {
			sec, name = name[:dot], name[dot+1:]
		}
		ini.section(sec)[strings.ToUpper(name)] = rawValue{value: val, file: "command line", line: 0}
	}
	c, err := build(ini)
	return c, read, err
}

var interpRef = regexp.MustCompile(`%\(([^)]*)\)s`)

// dhtSection resolves the name of the DHT section (the DHT option).
func dhtSection(ini *iniFile) (string, error) {
	rv, ok, err := ini.lookup(defaultSection, "DHT")
	if err != nil {
		return "", err
	}
	if !ok || rv.value == "" {
		return "apt_p2p_Khashmir", nil
	}
	return rv.value, nil
}

func build(ini *iniFile) (*Config, error) {
	dhtSec, err := dhtSection(ini)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	var errs []error
	// Unknown options and sections are reported, not ignored: a misspelt option
	// silently falling back to its default is how caches end up on the wrong disk.
	known := map[string]map[string]bool{defaultSection: {}, dhtSec: {}}
	for _, o := range options {
		if o.dht {
			known[dhtSec][o.name] = true
		} else {
			known[defaultSection][o.name] = true
		}
	}
	// A [DEFAULT] option that other values refer to with %(name)s is a variable,
	// not a misspelling.
	for _, opts := range ini.sections {
		for _, rv := range opts {
			for _, m := range interpRef.FindAllStringSubmatch(rv.value, -1) {
				known[defaultSection][strings.ToUpper(m[1])] = true
			}
		}
	}
	secs := append([]string{defaultSection}, ini.order...)
	for _, sec := range secs {
		opts, ok := ini.sections[sec]
		if !ok {
			continue
		}
		if known[sec] == nil {
			for _, rv := range opts {
				errs = append(errs, fmt.Errorf("%s: unknown section [%s] (expected [DEFAULT] or [%s])", rv.where(), sec, dhtSec))
				break
			}
			continue
		}
		names := make([]string, 0, len(opts))
		for n := range opts {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			if known[sec][n] || (sec == defaultSection && known[dhtSec][n]) || n == "VERSION" {
				continue
			}
			errs = append(errs, fmt.Errorf("%s: unknown option %s in [%s]", opts[n].where(), n, sec))
		}
	}
	c := &Config{}
	// A built-in default such as the DHT section's %(PORT)s interpolates against
	// the files first, so it sees a PORT set in any of them.
	for _, o := range options {
		sec := defaultSection
		if o.dht {
			sec = dhtSec
		}
		rv, ok, err := ini.lookup(sec, o.name)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if !ok {
			rv = rawValue{value: o.def}
			v, err := ini.interpolate(sec, rv.value, 0)
			if err != nil && strings.Contains(err.Error(), "not set") {
				// %(LOCAL_OK)s with LOCAL_OK unset anywhere: use the DEFAULT option's default.
				v, err = interpolateDefaults(rv.value)
			}
			if err != nil {
				errs = append(errs, fmt.Errorf("built-in default of %s: %w", o.name, err))
				continue
			}
			rv.value = v
		}
		val, err := parseValue(o, rv.value)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %s: %w", rv.where(), o.name, err))
			continue
		}
		o.apply(c, val)
	}
	if len(errs) > 0 {
		// A [DEFAULT] value the DHT section inherits (PORT, LOCAL_OK) fails
		// once for each section; report it once.
		seen := map[string]bool{}
		uniq := errs[:0]
		for _, e := range errs {
			if !seen[e.Error()] {
				seen[e.Error()] = true
				uniq = append(uniq, e)
			}
		}
		return nil, fmt.Errorf("config: %w", errors.Join(uniq...))
	}
	if err := c.checkVolunteer(); err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	c.CacheDir = expandHome(c.CacheDir)
	for i, d := range c.OtherDirs {
		c.OtherDirs[i] = expandHome(d)
	}
	if err := c.checkFamilies(); err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	for _, f := range postBuild {
		if err := f(ini, dhtSec, c); err != nil {
			return nil, fmt.Errorf("config: %w", err)
		}
	}
	return c, nil
}

// postBuild are rules that derive options from others once all are read
// (lan.go: LOCAL_OK with LAN discovery and no BOOTSTRAP).
var postBuild []func(ini *iniFile, dhtSec string, c *Config) error

func interpolateDefaults(v string) (string, error) {
	defs := newINI()
	for _, o := range options {
		if !o.dht {
			defs.sections[defaultSection][o.name] = rawValue{value: o.def}
		}
	}
	return defs.interpolate(defaultSection, v, 0)
}

func expandHome(p string) string {
	if p == "~" || strings.HasPrefix(p, "~/") {
		if home, err := os.UserHomeDir(); err == nil {
			return filepath.Join(home, p[1:])
		}
	}
	return p
}

func parseValue(o option, s string) (any, error) {
	switch o.kind {
	case kString:
		return s, nil
	case kInt:
		n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
		if err != nil {
			return nil, fmt.Errorf("expected an integer, got %q", s)
		}
		return n, nil
	case kTime:
		return ParseTime(s)
	case kBool:
		return ParseBool(s)
	case kList:
		return strings.Fields(s), nil
	case kBytes:
		return ParseBytes(s)
	case kPrefixes:
		var out []netip.Prefix
		for _, f := range strings.Fields(s) {
			p, err := netip.ParsePrefix(f)
			if err != nil {
				a, aerr := netip.ParseAddr(f)
				if aerr != nil {
					return nil, fmt.Errorf("expected networks like 192.168.1.0/24 or addresses, got %q", f)
				}
				p = netip.PrefixFrom(a, a.BitLen())
			}
			out = append(out, p.Masked())
		}
		return out, nil
	case kBind:
		return resolveBind(strings.TrimSpace(s))
	case kSources:
		return parseVolunteerSources(s)
	case kFloat:
		f, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
		if err != nil || f <= 0 || f > 1000 || f != f {
			return nil, fmt.Errorf("expected a number above 0 and at most 1000, like 0.25 or 4, got %q", s)
		}
		return f, nil
	case kEnum:
		v := strings.ToLower(strings.TrimSpace(s))
		for _, e := range o.enum {
			if v == e {
				return v, nil
			}
		}
		return nil, fmt.Errorf("expected one of %s, got %q", strings.Join(o.enum, ", "), s)
	}
	return nil, fmt.Errorf("unknown option kind %d", o.kind)
}

// bindValue is BIND_ADDRESS as written and as resolved.
type bindValue struct {
	name string
	addr netip.Addr
}

// lookupHost resolves a host name; tests replace it.
var lookupHost = func(ctx context.Context, host string) ([]netip.Addr, error) {
	return net.DefaultResolver.LookupNetIP(ctx, "ip", host)
}

// resolveBind turns BIND_ADDRESS into the one address to listen on. An IP
// literal is taken as it is. A host name ("localhost", the machine's name) is
// resolved once, here, and its first IPv4 address is used, else its first
// IPv6 one, as net.Listen does for a name: the TCP listener and the DHT's UDP
// socket then bind the same address, and it cannot change under a running
// daemon.
func resolveBind(s string) (bindValue, error) {
	if s == "" {
		return bindValue{}, nil
	}
	if a, err := netip.ParseAddr(s); err == nil {
		if a.Zone() != "" {
			return bindValue{}, fmt.Errorf("%q: an address with a zone cannot be bound here; use an address without %%zone or leave it empty", s)
		}
		return bindValue{name: s, addr: a.Unmap()}, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	addrs, err := lookupHost(ctx, s)
	var v4, v6 netip.Addr
	for _, a := range addrs {
		a = a.Unmap().WithZone("")
		switch {
		case a.Is4() && !v4.IsValid():
			v4 = a
		case a.Is6() && !v6.IsValid():
			v6 = a
		}
	}
	if err == nil && !v4.IsValid() && !v6.IsValid() {
		err = errors.New("no address")
	}
	if err != nil {
		var dnsErr *net.DNSError
		if errors.As(err, &dnsErr) {
			err = errors.New(dnsErr.Err)
		}
		return bindValue{}, fmt.Errorf("host name %q does not resolve (%v): set an IP address of this machine (e.g. 127.0.0.1 or ::1), a name that resolves to one, or leave it empty to listen on every address", s, err)
	}
	if v4.IsValid() {
		return bindValue{name: s, addr: v4}, nil
	}
	return bindValue{name: s, addr: v6}, nil
}

// ListenAddr is where to listen on port: "ip:port" for a BIND_ADDRESS, else
// ":port" (every address).
func (c *Config) ListenAddr(port int) string {
	if !c.Bind.IsValid() {
		return ":" + strconv.Itoa(port)
	}
	return netip.AddrPortFrom(c.Bind, uint16(port)).String()
}

// ParseTime parses a time as the original did: a number (fractions allowed)
// with an optional s, m, h or d suffix in any case, converted to seconds and
// truncated to whole seconds ("2.5h" is 9000 s, "4.3333m" is 259 s).
func ParseTime(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, errors.New("expected a time like 30s, 5m, 2.5h or 1d, got an empty value")
	}
	mult := 1.0
	switch s[len(s)-1] {
	case 's', 'S':
		s = s[:len(s)-1]
	case 'm', 'M':
		mult, s = 60, s[:len(s)-1]
	case 'h', 'H':
		mult, s = 3600, s[:len(s)-1]
	case 'd', 'D':
		mult, s = 86400, s[:len(s)-1]
	}
	f, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
	if err != nil || f < 0 || f*mult > 1e12 {
		return 0, fmt.Errorf("expected a time like 30s, 5m, 2.5h or 1d, got %q", s)
	}
	return time.Duration(int64(f*mult)) * time.Second, nil
}

// ParseBool accepts 1/yes/true/on and 0/no/false/off in any case.
func ParseBool(s string) (bool, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "1", "yes", "true", "on":
		return true, nil
	case "0", "no", "false", "off":
		return false, nil
	}
	return false, fmt.Errorf("expected yes/no (or true/false, on/off, 1/0), got %q", s)
}

// ParseBytes parses a size: a number with an optional K, M, G or T suffix
// (powers of 1024, an optional trailing B or iB).
func ParseBytes(s string) (int64, error) {
	t := strings.ToUpper(strings.TrimSpace(s))
	t = strings.TrimSuffix(strings.TrimSuffix(t, "IB"), "B")
	mult := int64(1)
	if n := len(t); n > 0 {
		switch t[n-1] {
		case 'K':
			mult = 1 << 10
		case 'M':
			mult = 1 << 20
		case 'G':
			mult = 1 << 30
		case 'T':
			mult = 1 << 40
		}
		if mult != 1 {
			t = t[:n-1]
		}
	}
	f, err := strconv.ParseFloat(strings.TrimSpace(t), 64)
	if err != nil || f < 0 || f*float64(mult) > 1<<62 {
		return 0, fmt.Errorf("expected a size like 500M or 20G, got %q", s)
	}
	return int64(f * float64(mult)), nil
}

// Write prints the effective configuration as a config file (the config
// subcommand), with each option's help as a comment.
func (c *Config) Write(w io.Writer) error {
	var b strings.Builder
	sec := ""
	for _, o := range options {
		want := "DEFAULT"
		if o.dht {
			want = c.DHTSection
		}
		if want != sec {
			if sec != "" {
				b.WriteString("\n")
			}
			fmt.Fprintf(&b, "[%s]\n", want)
			sec = want
		}
		fmt.Fprintf(&b, "# %s\n%s = %s\n", o.help, o.name, c.valueString(o))
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func (c *Config) valueString(o option) string {
	switch o.name {
	case "PORT":
		if o.dht {
			return strconv.Itoa(c.DHT.Port)
		}
		return strconv.Itoa(c.Port)
	case "BIND_ADDRESS":
		return c.BindAddress
	case "UPLOAD_LIMIT":
		return strconv.FormatInt(c.UploadLimit/1024, 10)
	case "UPLOAD_LIMIT_PER_PEER":
		return strconv.FormatInt(c.UploadLimitPerPeer/1024, 10)
	case "MAX_UPLOADS":
		return strconv.Itoa(c.MaxUploads)
	case "UPLOAD_WEIGHT":
		return strconv.FormatFloat(c.UploadWeight, 'g', -1, 64)
	case "LOAD_AWARE":
		return fmtBool(c.LoadAware)
	case "MIN_DOWNLOAD_PEERS":
		return strconv.Itoa(c.MinDownloadPeers)
	case "MIRROR_DELAY":
		return fmtTime(c.MirrorDelay)
	case "HERD":
		return fmtBool(c.Herd)
	case "HERD_PATIENCE":
		return fmtTime(c.HerdPatience)
	case "CACHE_DIR":
		return c.CacheDir
	case "CACHE_SIZE":
		return strconv.FormatInt(c.CacheSize, 10)
	case "OTHER_DIRS":
		return strings.Join(c.OtherDirs, " ")
	case "LOCAL_OK":
		if o.dht {
			return fmtBool(c.DHT.LocalOK)
		}
		return fmtBool(c.LocalOK)
	case "REMOTE_STATS":
		return fmtBool(c.RemoteStats)
	case "ALLOWED_CLIENTS":
		var s []string
		for _, p := range c.AllowedClients {
			s = append(s, p.String())
		}
		return strings.Join(s, " ")
	case "UPSTREAM_CA_FILE":
		return c.UpstreamCAFile
	case "UNLOAD_PACKAGES_CACHE":
		return fmtTime(c.UnloadPackagesCache)
	case "MEMORY_LIMIT":
		return strconv.FormatInt(c.MemoryLimit, 10)
	case "SCRUB_RATE":
		return strconv.FormatInt(c.ScrubRate, 10)
	case "SCRUB_INTERVAL":
		return fmtTime(c.ScrubInterval)
	case "KEY_REFRESH":
		return fmtTime(c.KeyRefresh)
	case "USERNAME":
		return c.Username
	case "DHT":
		return c.DHTSection
	case "DHT-ONLY":
		return fmtBool(c.DHTOnly)
	case "LOG_LEVEL":
		return c.LogLevel
	case "BOOTSTRAP":
		return strings.Join(c.DHT.Bootstrap, "\n  ")
	case "BOOTSTRAP_NODE":
		return fmtBool(c.DHT.BootstrapNode)
	case "CHECKPOINT_INTERVAL":
		return fmtTime(c.DHT.CheckpointInterval)
	case "CONCURRENT_REQS":
		return strconv.Itoa(c.DHT.ConcurrentReqs)
	case "STORE_REDUNDANCY":
		return strconv.Itoa(c.DHT.StoreRedundancy)
	case "RETRIEVE_VALUES":
		return strconv.Itoa(c.DHT.RetrieveValues)
	case "MAX_FAILURES":
		return strconv.Itoa(c.DHT.MaxFailures)
	case "MIN_PING_INTERVAL":
		return fmtTime(c.DHT.MinPingInterval)
	case "BUCKET_STALENESS":
		return fmtTime(c.DHT.BucketStaleness)
	case "KEY_EXPIRE":
		return fmtTime(c.DHT.KeyExpire)
	case "KRPC_TIMEOUT":
		return fmtTime(c.DHT.KRPCTimeout)
	case "KRPC_INITIAL_DELAY":
		return fmtTime(c.DHT.KRPCInitialDelay)
	case "SPEW":
		return fmtBool(c.DHT.Spew)
	case "TIMEOUT_PROFILE":
		return c.DHT.TimeoutProfile
	case "UDP_TRANSPORT":
		return c.DHT.UDPTransport
	}
	if v, ok := c.volunteerValue(o); ok {
		return v
	}
	if v, ok := c.reachValue(o); ok {
		return v
	}
	if v, ok := c.lanValue(o); ok {
		return v
	}
	if v, ok := c.portMapValue(o); ok {
		return v
	}
	if v := c.mainlineValue(o); v != "" {
		return v
	}
	return c.ipv6Value(o)
}

func fmtBool(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func fmtTime(d time.Duration) string {
	s := int64(d / time.Second)
	switch {
	case s != 0 && s%86400 == 0:
		return fmt.Sprintf("%dd", s/86400)
	case s != 0 && s%3600 == 0:
		return fmt.Sprintf("%dh", s/3600)
	case s != 0 && s%60 == 0:
		return fmt.Sprintf("%dm", s/60)
	}
	return fmt.Sprintf("%ds", s)
}
