package config

import (
	"context"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"
)

func load(t *testing.T, text string, overrides ...string) *Config {
	t.Helper()
	c, _, err := Load([]Source{{Name: "test.conf", Data: strings.NewReader(text)}}, overrides...)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	return c
}

func loadErr(t *testing.T, text string) string {
	t.Helper()
	_, _, err := Load([]Source{{Name: "test.conf", Data: strings.NewReader(text)}})
	if err == nil {
		t.Fatalf("Load accepted %q", text)
	}
	return err.Error()
}

// Re-expresses the original's TestConfigParser (reference §6.13).
func TestTimes(t *testing.T) {
	for in, want := range map[string]int64{
		"2d": 172800, "3h": 10800, "4m": 240, "37s": 37, "2.5d": 216000, "0.5h": 1800,
		"4.3333m": 259, "2.5h": 9000, "12": 12, "7D": 7 * 86400,
	} {
		got, err := ParseTime(in)
		if err != nil || int64(got/time.Second) != want {
			t.Errorf("ParseTime(%q) = %v, %v; want %d s", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "h", "x5m", "-3s", "5y"} {
		if _, err := ParseTime(bad); err == nil {
			t.Errorf("ParseTime(%q) accepted", bad)
		}
	}
}

func TestCaseInsensitiveNamesAndLists(t *testing.T) {
	c := load(t, "[DEFAULT]\nport = 1234\nOther_Dirs = /a\n   /b   \n /c  \ncache_dir: /tmp/x\n")
	if c.Port != 1234 || c.CacheDir != "/tmp/x" {
		t.Fatalf("port %d dir %q", c.Port, c.CacheDir)
	}
	if strings.Join(c.OtherDirs, ",") != "/a,/b,/c" {
		t.Fatalf("multi-line list = %q", c.OtherDirs)
	}
	// The DHT section inherits PORT and LOCAL_OK from [DEFAULT] (§5.1).
	if c.DHT.Port != 1234 {
		t.Fatalf("DHT port %d, want inherited 1234", c.DHT.Port)
	}
}

func TestDefaults(t *testing.T) {
	c := load(t, "")
	if c.Port != 9977 || c.DHT.Port != 9977 || c.MinDownloadPeers != 0 || !c.Herd || c.HerdPatience != 3*time.Second || c.DHT.ConcurrentReqs != 6 ||
		c.DHT.StoreRedundancy != 6 || c.DHT.RetrieveValues != -10000 || c.DHT.MaxFailures != 3 ||
		c.DHT.KRPCTimeout != 9*time.Second || c.DHT.KRPCInitialDelay != 2*time.Second ||
		c.DHT.KeyExpire != 3*time.Hour || c.KeyRefresh != 9000*time.Second ||
		c.DHT.CheckpointInterval != 5*time.Minute || c.DHT.MinPingInterval != 15*time.Minute ||
		c.DHT.BucketStaleness != time.Hour || !c.RemoteStats || c.DHTOnly ||
		c.DHT.TimeoutProfile != "default" || c.DHT.UDPTransport != "std" || c.DHTSection != "apt_p2p_Khashmir" {
		t.Fatalf("defaults wrong: %+v", c)
	}
	if len(c.AllowedClients) != 2 || !c.AllowedClients[0].Contains(netip.MustParseAddr("127.0.0.2")) {
		t.Fatalf("allowed clients %v", c.AllowedClients)
	}
}

func TestInterpolationAndSections(t *testing.T) {
	c := load(t, `[DEFAULT]
BASE = /srv/p2p
CACHE_DIR = %(base)s/cache
LOCAL_OK = yes
USERNAME = 100%%
[apt_p2p_Khashmir]
PORT = 4000
BOOTSTRAP = 10.0.0.1:9977
  node.example:9976
TIMEOUT_PROFILE = Classic
`)
	if c.CacheDir != "/srv/p2p/cache" || c.Username != "100%" {
		t.Fatalf("interpolation: dir %q user %q", c.CacheDir, c.Username)
	}
	if c.DHT.Port != 4000 || c.Port != 9977 || !c.DHT.LocalOK || c.DHT.TimeoutProfile != "classic" {
		t.Fatalf("dht section: %+v", c.DHT)
	}
	if len(c.DHT.Bootstrap) != 2 {
		t.Fatalf("bootstrap %q", c.DHT.Bootstrap)
	}
}

func TestErrorsSayWhere(t *testing.T) {
	for text, want := range map[string]string{
		"[DEFAULT]\nPORT = abc\n":                          "test.conf:2: PORT: expected an integer",
		"[DEFAULT]\nPORTT = 1\n":                           "test.conf:2: unknown option PORTT",
		"[DEFAULT]\n\nLOCAL_OK = maybe\n":                  "test.conf:3: LOCAL_OK: expected yes/no",
		"[DEFAULT]\nKEY_REFRESH =\n":                       "test.conf:2: KEY_REFRESH: expected a time",
		"PORT = 1\n":                                       "test.conf:1: option",
		"[DEFAULT]\nCACHE_DIR = %(nothere)s\n":             "refers to an option that is not set",
		"[DEFAULT]\nCACHE_DIR = 50%\n":                     "write %% for a literal %",
		"[DEFAULT]\nA = %(b)s\nB = %(a)s\nCACHE_DIR=%(a)s": "interpolation deeper",
		"[other]\nX = 1\n":                                 "unknown section [other]",
		"[apt_p2p_Khashmir]\nTIMEOUT_PROFILE = fast\n":     "expected one of default, classic",
		"[DEFAULT]\nALLOWED_CLIENTS = lan\n":               "expected networks",
		"[DEFAULT]\nCACHE_SIZE = lots\n":                   "expected a size",
		"[DEFAULT\nPORT=1\n":                               "no closing ']'",
	} {
		if got := loadErr(t, text); !strings.Contains(got, want) {
			t.Errorf("config %q: error %q does not contain %q", text, got, want)
		}
	}
}

func TestOverridesAndLaterFilesWin(t *testing.T) {
	c, read, err := Load([]Source{
		{Name: "a.conf", Data: strings.NewReader("[DEFAULT]\nPORT = 1\nCACHE_SIZE = 1.5G\n")},
		{Name: "b.conf", Data: strings.NewReader("[DEFAULT]\nPORT = 2\n")},
		{Name: "/nonexistent/apt-p2p.conf", Optional: true},
	}, "PORT=3", "apt_p2p_Khashmir.BOOTSTRAP_NODE=yes", "ALLOWED_CLIENTS=192.168.1.0/24 10.1.2.3")
	if err != nil {
		t.Fatal(err)
	}
	if len(read) != 2 || c.Port != 3 || !c.DHT.BootstrapNode || c.CacheSize != 3<<29 {
		t.Fatalf("read %v port %d bootstrap node %v size %d", read, c.Port, c.DHT.BootstrapNode, c.CacheSize)
	}
	if c.AllowedClients[1] != netip.MustParsePrefix("10.1.2.3/32") {
		t.Fatalf("allowed %v", c.AllowedClients)
	}
	if _, _, err := Load([]Source{{Name: "/nonexistent/required.conf"}}); err == nil {
		t.Fatal("missing required file accepted")
	}
}

func TestWriteRoundTrips(t *testing.T) {
	c := load(t, "[DEFAULT]\nPORT = 1234\nOTHER_DIRS = /a /b\nUPLOAD_LIMIT = 100\nUPSTREAM_CA_FILE = /etc/ssl/extra.pem\n[apt_p2p_Khashmir]\nBOOTSTRAP = h:1 h:2\n")
	var b strings.Builder
	if err := c.Write(&b); err != nil {
		t.Fatal(err)
	}
	c2 := load(t, b.String())
	var b2 strings.Builder
	_ = c2.Write(&b2)
	if b.String() != b2.String() {
		t.Fatalf("Write does not round-trip:\n%s\n---\n%s", b.String(), b2.String())
	}
	if c2.UploadLimit != 100*1024 || len(c2.DHT.Bootstrap) != 2 || c2.Port != 1234 || c2.UpstreamCAFile != "/etc/ssl/extra.pem" {
		t.Fatalf("round trip lost values: %+v", c2)
	}
}

// A bad PORT in [DEFAULT] is inherited by the DHT section; it is one mistake
// and must be reported once.
func TestInheritedErrorReportedOnce(t *testing.T) {
	msg := loadErr(t, "[DEFAULT]\nPORT = abc\n")
	if n := strings.Count(msg, "PORT: expected an integer"); n != 1 {
		t.Fatalf("reported %d times: %q", n, msg)
	}
}

// TestBindAddressHostName: BIND_ADDRESS = localhost panicked at start
// (netip.MustParseAddr); a host name is resolved once when the configuration
// is loaded, and one that does not resolve is a configuration error saying
// what to write instead (issue 11 item 4).
func TestBindAddressHostName(t *testing.T) {
	c := load(t, "[DEFAULT]\nBIND_ADDRESS = localhost\n")
	if c.BindAddress != "localhost" || c.Bind != netip.MustParseAddr("127.0.0.1") || c.ListenAddr(9977) != "127.0.0.1:9977" {
		t.Errorf("localhost: %q %v %s, want 127.0.0.1", c.BindAddress, c.Bind, c.ListenAddr(9977))
	}
	for in, want := range map[string]string{"": ":9977", "::1": "[::1]:9977", "10.0.0.7": "10.0.0.7:9977", "::ffff:10.0.0.7": "10.0.0.7:9977", "0.0.0.0": "0.0.0.0:9977"} {
		c := load(t, "", "BIND_ADDRESS="+in)
		if got := c.ListenAddr(9977); got != want || c.BindAddress != in {
			t.Errorf("BIND_ADDRESS=%q: listen %q (written %q), want %q", in, got, c.BindAddress, want)
		}
	}

	saved := lookupHost
	t.Cleanup(func() { lookupHost = saved })
	// A name with both families binds its first IPv4 address, as net.Listen does.
	lookupHost = func(context.Context, string) ([]netip.Addr, error) {
		return []netip.Addr{netip.MustParseAddr("fd42::5"), netip.MustParseAddr("10.240.0.5"), netip.MustParseAddr("10.240.0.6")}, nil
	}
	if c := load(t, "", "BIND_ADDRESS=cache.lan"); c.Bind != netip.MustParseAddr("10.240.0.5") {
		t.Errorf("two families: bound %v, want the first IPv4 address", c.Bind)
	}
	lookupHost = func(context.Context, string) ([]netip.Addr, error) {
		return []netip.Addr{netip.MustParseAddr("fd42::5")}, nil
	}
	if c := load(t, "", "BIND_ADDRESS=cache.lan"); c.Bind != netip.MustParseAddr("fd42::5") || c.ListenAddr(1) != "[fd42::5]:1" {
		t.Errorf("IPv6 only: bound %v", c.Bind)
	}
	lookupHost = func(_ context.Context, h string) ([]netip.Addr, error) {
		return nil, &net.DNSError{Err: "no such host", Name: h, IsNotFound: true}
	}
	msg := loadErr(t, "[DEFAULT]\nPORT = 9977\nBIND_ADDRESS = cache.lna\n")
	for _, want := range []string{"test.conf:3", "BIND_ADDRESS", `"cache.lna"`, "no such host", "127.0.0.1", "leave it empty"} {
		if !strings.Contains(msg, want) {
			t.Errorf("unresolvable BIND_ADDRESS: %q lacks %q", msg, want)
		}
	}
	if msg := loadErr(t, "[DEFAULT]\nBIND_ADDRESS = fe80::1%%eth0\n"); !strings.Contains(msg, "zone") {
		t.Errorf("zoned address: %q", msg)
	}
}

func TestMemoryAndScrubOptions(t *testing.T) {
	c := load(t, "")
	if c.MemoryLimit != 96<<20 || c.ScrubRate != 2<<20 || c.ScrubInterval != 24*time.Hour {
		t.Fatalf("defaults: memory limit %d, scrub rate %d, interval %v", c.MemoryLimit, c.ScrubRate, c.ScrubInterval)
	}
	c = load(t, "[DEFAULT]\nMEMORY_LIMIT = 0\nSCRUB_RATE = 0\nSCRUB_INTERVAL = 6h\n")
	if c.MemoryLimit != 0 || c.ScrubRate != 0 || c.ScrubInterval != 6*time.Hour {
		t.Fatalf("set: %d %d %v", c.MemoryLimit, c.ScrubRate, c.ScrubInterval)
	}
	if msg := loadErr(t, "[DEFAULT]\nMEMORY_LIMIT = lots\n"); !strings.Contains(msg, "MEMORY_LIMIT") || !strings.Contains(msg, "500M") {
		t.Fatalf("bad value: %s", msg)
	}
}
