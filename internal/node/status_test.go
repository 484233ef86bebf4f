package node_test

import (
	"encoding/json"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/apt-p2p/apt-p2p/internal/front"
)

// Prometheus text exposition format 0.0.4, line by line.
var (
	promHelp   = regexp.MustCompile(`^# HELP [a-zA-Z_:][a-zA-Z0-9_:]* .*$`)
	promType   = regexp.MustCompile(`^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge|histogram|summary|untyped)$`)
	promSample = regexp.MustCompile(`^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\.)*"(?:,[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\.)*")*,?\})? ([-+]?(?:[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?|NaN|Inf)|[-+]Inf)( -?[0-9]+)?$`)
)

// checkPrometheus parses text as the exposition format and returns the
// samples by "name{labels}".
func checkPrometheus(t *testing.T, text string) map[string]float64 {
	t.Helper()
	samples := map[string]float64{}
	typed := map[string]string{}
	for i, line := range strings.Split(strings.TrimSuffix(text, "\n"), "\n") {
		switch {
		case line == "":
			t.Errorf("metrics line %d: empty line", i+1)
		case strings.HasPrefix(line, "# HELP "):
			if !promHelp.MatchString(line) {
				t.Errorf("metrics line %d: bad HELP: %q", i+1, line)
			}
		case strings.HasPrefix(line, "# TYPE "):
			m := promType.FindStringSubmatch(line)
			if m == nil {
				t.Errorf("metrics line %d: bad TYPE: %q", i+1, line)
				continue
			}
			if _, dup := typed[m[1]]; dup {
				t.Errorf("metrics line %d: second TYPE for %s", i+1, m[1])
			}
			typed[m[1]] = m[2]
		case strings.HasPrefix(line, "#"):
		default:
			m := promSample.FindStringSubmatch(line)
			if m == nil {
				t.Errorf("metrics line %d: not a sample: %q", i+1, line)
				continue
			}
			name := m[1]
			family := strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(name, "_bucket"), "_sum"), "_count")
			if _, ok := typed[name]; !ok {
				if _, ok := typed[family]; !ok {
					t.Errorf("metrics line %d: sample %s without a TYPE before it", i+1, name)
				}
			}
			key := name + m[2]
			if _, dup := samples[key]; dup {
				t.Errorf("metrics line %d: duplicate sample %s", i+1, key)
			}
			v, err := strconv.ParseFloat(strings.TrimPrefix(m[3], "+"), 64)
			if err != nil {
				t.Errorf("metrics line %d: value %q: %v", i+1, m[3], err)
			}
			samples[key] = v
		}
	}
	return samples
}

// TestStatusViews: /stats.json carries traffic by source, the cache, DHT
// statistics and the lookup histogram; /metrics is valid Prometheus text with
// download bytes by source; / is a self-contained page with inline SVG.
func TestStatusViews(t *testing.T) {
	repo, base := sharedRepo(t)
	m := serveMirror(t, base)
	a, b := pair(t, nil, []string{"MIN_DOWNLOAD_PEERS=1", "MIRROR_DELAY=5s"})
	p := repo.Package("multi")
	seed(t, a, b, m, repo, p)
	aptUpdate(t, b, m, repo)
	wantPackage(t, b, m, p)
	waitFor(t, "B to store "+p.Name, 10*time.Second, func() (bool, string) { return stored(t, b, p), "" })
	wantPackage(t, b, m, p) // from B's cache

	code, body, hdr := get(t, "http://"+b.addr()+"/stats.json")
	if code != http.StatusOK || !strings.HasPrefix(hdr.Get("Content-Type"), "application/json") {
		t.Fatalf("/stats.json: HTTP %d, %s", code, hdr.Get("Content-Type"))
	}
	var st front.Status
	if err := json.Unmarshal(body, &st); err != nil {
		t.Fatalf("/stats.json: %v", err)
	}
	if st.Session.Peers < p.Size || st.Session.Cache < p.Size || st.Session.Mirror == 0 {
		t.Errorf("traffic by source: %+v (want peers and cache ≥ %d, some mirror)", st.Session, p.Size)
	}
	if st.AllTime.Peers < st.Session.Peers {
		t.Errorf("all-time %+v below session %+v", st.AllTime, st.Session)
	}
	if st.Cache.Files < 2 || st.Cache.Bytes < p.Size {
		t.Errorf("cache: %+v", st.Cache)
	}
	if st.DHT.Nodes == 0 || st.DHT.PacketsIn == 0 || !st.Joined || st.Contact != b.addr() {
		t.Errorf("DHT: nodes %d, packets in %d, joined %v, contact %q", st.DHT.Nodes, st.DHT.PacketsIn, st.Joined, st.Contact)
	}
	if st.Lookups.Count == 0 || len(st.Lookups.Buckets) == 0 {
		t.Errorf("lookup histogram: %+v", st.Lookups)
	}
	var inBuckets int64
	for _, bk := range st.Lookups.Buckets {
		inBuckets += bk.Count
	}
	if inBuckets != st.Lookups.Count {
		t.Errorf("lookup histogram buckets hold %d, count %d", inBuckets, st.Lookups.Count)
	}
	if st.Index.Entries < len(repo.Packages) {
		t.Errorf("index: %+v", st.Index)
	}

	code, body, hdr = get(t, "http://"+b.addr()+"/metrics")
	if code != http.StatusOK || !strings.HasPrefix(hdr.Get("Content-Type"), "text/plain; version=0.0.4") {
		t.Fatalf("/metrics: HTTP %d, %s", code, hdr.Get("Content-Type"))
	}
	samples := checkPrometheus(t, string(body))
	for _, want := range []struct {
		key string
		min float64
	}{
		{`aptp2p_download_bytes_total{source="peer"}`, float64(p.Size)},
		{`aptp2p_download_bytes_total{source="cache"}`, float64(p.Size)},
		{`aptp2p_download_bytes_total{source="mirror"}`, 1},
		{`aptp2p_dht_lookup_seconds_count`, 1},
		{`aptp2p_dht_lookup_seconds_bucket{le="+Inf"}`, 1},
		{`aptp2p_dht_packets_total{dir="in"}`, 1},
		{`aptp2p_cache_files`, 2},
		{`aptp2p_apt_requests_total`, 4},
	} {
		if v, ok := samples[want.key]; !ok || v < want.min {
			t.Errorf("/metrics: %s = %v (present %v), want ≥ %v", want.key, v, ok, want.min)
		}
	}

	code, body, hdr = get(t, "http://"+b.addr()+"/")
	page := string(body)
	if code != http.StatusOK || !strings.HasPrefix(hdr.Get("Content-Type"), "text/html") {
		t.Fatalf("/: HTTP %d, %s", code, hdr.Get("Content-Type"))
	}
	if !strings.Contains(page, "<svg") {
		t.Error("status page has no inline SVG")
	}
	external := regexp.MustCompile(`(?i)(src|href)\s*=\s*["']?\s*(https?:)?//`)
	if loc := external.FindString(page); loc != "" {
		t.Errorf("status page refers to an external asset: %q", loc)
	}
	for _, tag := range []string{"<script", "<link", "<img", "<iframe", "@import", "url("} {
		if strings.Contains(strings.ToLower(page), tag) {
			t.Errorf("status page contains %q", tag)
		}
	}
	for _, want := range []string{b.addr(), "Mirror", "Peers", "Local cache", "joined"} {
		if !strings.Contains(page, want) {
			t.Errorf("status page lacks %q", want)
		}
	}
}
