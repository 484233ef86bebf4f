package node_test

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/apt-p2p/apt-p2p/internal/front"
)

// statsJSON fetches d's /stats.json as a generic tree and as front.Status.
func statsJSON(t *testing.T, d *daemon) (map[string]any, front.Status) {
	t.Helper()
	code, body, _ := get(t, "http://"+d.addr()+"/stats.json")
	if code != http.StatusOK {
		t.Fatalf("%s /stats.json: HTTP %d", d.name, code)
	}
	var raw map[string]any
	var st front.Status
	if err := json.Unmarshal(body, &raw); err != nil {
		t.Fatalf("%s /stats.json: %v", d.name, err)
	}
	if err := json.Unmarshal(body, &st); err != nil {
		t.Fatalf("%s /stats.json into front.Status: %v", d.name, err)
	}
	return raw, st
}

func page(t *testing.T, d *daemon) string {
	t.Helper()
	code, body, _ := get(t, "http://"+d.addr()+"/")
	if code != http.StatusOK {
		t.Fatalf("%s /: HTTP %d", d.name, code)
	}
	return string(body)
}

// section is the part of an HTML page from the <h2> titled title to the next <h2>.
func section(pg, title string) string {
	i := strings.Index(pg, "<h2>"+title+"</h2>")
	if i < 0 {
		return ""
	}
	rest := pg[i+len(title)+9:]
	if j := strings.Index(rest, "<h2>"); j >= 0 {
		rest = rest[:j]
	}
	return rest
}

// TestStatusPageFigures: what issue 11 item 9 found wrong on the status page
// and in stats.json. "Estimated users" said 8 whether 2 or 5 daemons ran; the
// DHT ID was an array of 20 numbers; the last histogram bucket said le 0; the
// upload share sat in the "Traffic to apt" table as a percentage of what apt
// received; the latency histogram had no caption.
func TestStatusPageFigures(t *testing.T) {
	a, b := pair(t, nil, nil)
	ds := []*daemon{a, b}
	users := func(want int) {
		t.Helper()
		for _, d := range ds {
			waitFor(t, fmt.Sprintf("%s to estimate %d users", d.name, want), 30*time.Second, func() (bool, string) {
				raw, st := statsJSON(t, d)
				return st.DHT.EstimatedUsers == float64(want), fmt.Sprintf("estimated %v (%v), %d nodes", st.DHT.EstimatedUsers, raw["dht"].(map[string]any)["EstimatedUsersFrom"], st.DHT.Nodes)
			})
			if pg := page(t, d); !strings.Contains(pg, fmt.Sprintf("Estimated users</td><td>%d (", want)) {
				t.Errorf("%s: the page does not show %d estimated users:\n%s", d.name, want, section(pg, "DHT"))
			}
		}
	}
	users(2)
	for i, name := range []string{"C", "D", "E"} {
		ds = append(ds, startDaemon(t, name, fmt.Sprintf("127.0.0.%d", 4+i), "", "apt_p2p_Khashmir.BOOTSTRAP="+a.dhtAddr()))
	}
	users(5)

	raw, st := statsJSON(t, b)
	id := b.n.DHT().ID()
	if got, _ := raw["dht"].(map[string]any)["ID"].(string); got != hex.EncodeToString(id[:]) {
		t.Errorf("stats.json dht.ID = %#v, want the hex string %s", raw["dht"].(map[string]any)["ID"], hex.EncodeToString(id[:]))
	}
	for _, h := range []string{"lookup_latency", "request_latency"} {
		bk, _ := raw[h].(map[string]any)["buckets"].([]any)
		if len(bk) == 0 {
			t.Fatalf("stats.json %s: no buckets", h)
		}
		first, _ := bk[0].(map[string]any)
		last, _ := bk[len(bk)-1].(map[string]any)
		if first["le"] != "0.005" || last["le"] != "+Inf" {
			t.Errorf("stats.json %s: buckets from le %#v to le %#v, want \"0.005\" to \"+Inf\" (as Prometheus writes them)", h, first["le"], last["le"])
		}
	}
	if n := len(st.Lookups.Buckets); n == 0 || !math.IsInf(st.Lookups.Buckets[n-1].Le, 1) {
		t.Errorf("front.Status read back: last bucket %+v, want +Inf", st.Lookups.Buckets)
	}

	pg := page(t, b)
	traffic := section(pg, "Traffic to apt")
	if traffic == "" || strings.Contains(traffic, "Upload") {
		t.Errorf("uploads are not traffic to apt; the section reads:\n%s", traffic)
	}
	up := section(pg, "Uploads to peers")
	for _, want := range []string{"Uploaded to peers", "Fetched from mirror and peers", "Upload ratio"} {
		if !strings.Contains(up, want) {
			t.Errorf("uploads section lacks %q:\n%s", want, up)
		}
	}
	if dht := section(pg, "DHT"); !strings.Contains(dht, "<figcaption>DHT lookup latency") {
		t.Errorf("the latency histogram has no caption:\n%s", dht)
	}
}

// TestBansVisible: a peer banned for sending bad data shows on the status
// page, in stats.json and in /metrics (issue 11 item 5: only a DEBUG line
// said so).
func TestBansVisible(t *testing.T) {
	repo, base := sharedRepo(t)
	m := serveMirror(t, base)
	a, b := pair(t, nil, []string{"MIN_DOWNLOAD_PEERS=1", "MIRROR_DELAY=5s"})
	p := repo.Package("multi")
	aptUpdate(t, b, m, repo)
	seed(t, a, b, m, repo, p)
	// A serves the file once from its verified store (then from its
	// open-file cache), and its copy rots under it: A lies until its scrub
	// notices.
	if code, _, _ := get(t, peerURL(t, a, p)); code != http.StatusOK {
		t.Fatalf("A does not serve %s: HTTP %d", p.Name, code)
	}
	corrupt(t, dataFile(a, p), p.Size/2)
	if _, _, err := getLenient(t, b.url(m, p.Filename)); err != nil {
		t.Logf("download from the corrupt peer: %v", err)
	}
	waitFor(t, "the corrupt peer banned", 10*time.Second, func() (bool, string) { return b.n.Banned(a.addr()), "" })

	raw, _ := statsJSON(t, b)
	bans, _ := raw["bans"].([]any)
	var found map[string]any
	for _, x := range bans {
		if e, _ := x.(map[string]any); e["addr"] == a.addr() {
			found = e
		}
	}
	if found == nil {
		t.Errorf("stats.json bans = %#v, want %s", raw["bans"], a.addr())
	} else if until, err := time.Parse(time.RFC3339Nano, fmt.Sprint(found["until"])); err != nil || !until.After(time.Now()) {
		t.Errorf("stats.json ban of %s until %v (%v), want a time to come", a.addr(), found["until"], err)
	}

	code, body, _ := get(t, "http://"+b.addr()+"/metrics")
	if code != http.StatusOK {
		t.Fatalf("/metrics: HTTP %d", code)
	}
	samples := checkPrometheus(t, string(body))
	if samples["aptp2p_banned_sources"] < 1 {
		t.Errorf("/metrics: aptp2p_banned_sources = %v, want ≥ 1", samples["aptp2p_banned_sources"])
	}
	if exp := samples[`aptp2p_ban_expiry_timestamp_seconds{addr="`+a.addr()+`"}`]; exp < float64(time.Now().Unix()) {
		t.Errorf("/metrics: no ban expiry for %s in the future (%v)", a.addr(), exp)
	}

	if bs := section(page(t, b), "Banned sources"); !strings.Contains(bs, "<td>"+a.addr()+"</td>") {
		t.Errorf("the status page does not list %s as banned:\n%s", a.addr(), bs)
	}
}
