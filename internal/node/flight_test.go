package node_test

import (
	"bytes"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// concurrentGets runs n GETs of u at once and returns the bodies.
func concurrentGets(t *testing.T, u string, n int, hdr ...string) [][]byte {
	t.Helper()
	bodies := make([][]byte, n)
	codes := make([]int, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			req, _ := http.NewRequest("GET", u, nil)
			if i%2 == 0 {
				for j := 0; j+1 < len(hdr); j += 2 {
					req.Header.Set(hdr[j], hdr[j+1])
				}
			}
			resp, err := client.Do(req)
			if err != nil {
				t.Errorf("request %d: %v", i, err)
				return
			}
			defer resp.Body.Close()
			var b bytes.Buffer
			if _, err := b.ReadFrom(resp.Body); err != nil {
				t.Errorf("request %d: body: %v", i, err)
			}
			codes[i], bodies[i] = resp.StatusCode, b.Bytes()
		})
	}
	close(start)
	wg.Wait()
	for i, c := range codes {
		if c != http.StatusOK {
			t.Errorf("request %d: HTTP %d", i, c)
		}
	}
	return bodies
}

// TestFlashCrowd: 50 apt requests at once for one uncached .deb cause exactly
// one upstream fetch and get 50 identical, correct bodies; the same for an
// index file without a hash (InRelease, apt-get update from cron on a fleet).
func TestFlashCrowd(t *testing.T) {
	repo, base := sharedRepo(t)
	m := serveMirror(t, base)
	d := startDaemon(t, "A", "127.0.0.2", "", "apt_p2p_Khashmir.BOOTSTRAP_NODE=yes")
	const n = 50

	rel := repo.DistPath("Release")
	if repo.Signed {
		rel = repo.DistPath("InRelease")
	}
	want, err := readRepoFile(repo, rel)
	if err != nil {
		t.Fatal(err)
	}
	// Half of them say what apt says during an update.
	for i, b := range concurrentGets(t, d.url(m, rel), n, "Cache-Control", "max-age=0") {
		if !bytes.Equal(b, want) {
			t.Fatalf("%s: body %d differs (%d bytes, want %d)", rel, i, len(b), len(want))
		}
	}
	if got := m.Requests("/debian/" + rel); got != 1 {
		t.Errorf("%s: %d upstream requests for %d concurrent apt requests, want 1", rel, got, n)
	}

	aptUpdate(t, d, m, repo)
	p := repo.Package("multi")
	if raceEnabled {
		p = repo.Package("tiny") // 50 × 3 MB through instrumented readers takes 15 s
	}
	want, err = p.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	m.Reset()
	before := d.n.Stats.Session()
	for i, b := range concurrentGets(t, d.url(m, p.Filename), n) {
		if !bytes.Equal(b, want) {
			t.Fatalf("%s: body %d differs (%d bytes, want %d)", p.Name, i, len(b), len(want))
		}
	}
	if got := m.Requests("/debian/" + p.Filename); got != 1 {
		t.Errorf("%s: %d upstream requests for %d concurrent apt requests, want 1 (log %+v)", p.Name, got, n, m.Log())
	}
	// apt asks for packages as soon as its update has finished, maybe before
	// the daemon has parsed the Packages file: the request must still be
	// served as the hashed file it is (verified, stored, shareable).
	if !indexed(d, m, p) {
		t.Errorf("%s: not in the index", p.Name)
	}
	waitFor(t, p.Name+" in the content-addressed store", 10*time.Second, func() (bool, string) { return stored(t, d, p), "" })
	// One request log line per apt request, each with where the bytes came
	// from (decided after the headers for these streamed responses).
	waitFor(t, "the request log", 10*time.Second, func() (bool, string) {
		var lines, fetching int
		for _, l := range strings.Split(d.log.String(), "\n") {
			if strings.Contains(l, `msg="apt request"`) && strings.Contains(l, p.Filename) {
				lines++
				// Late arrivals may find it stored already: source=cache.
				if !(strings.Contains(l, "source=mirror") || strings.Contains(l, "source=cache")) || !strings.Contains(l, "took=") {
					fetching++
				}
			}
		}
		return lines == n && fetching == 0, fmt.Sprintf("%d lines, %d without source=mirror or cache", lines, fetching)
	})
	// Traffic by source: the mirror's bytes once, the other responses from
	// the daemon's copy.
	waitFor(t, "the traffic counters", 5*time.Second, func() (bool, string) {
		after := d.n.Stats.Session()
		return after.Mirror-before.Mirror == p.Size && after.Cache-before.Cache == (n-1)*p.Size,
			fmt.Sprintf("mirror +%d, cache +%d; want +%d and +%d", after.Mirror-before.Mirror, after.Cache-before.Cache, p.Size, (n-1)*p.Size)
	})
	if got := m.BytesServed("/debian/" + p.Filename); got != p.Size {
		t.Errorf("%s: mirror sent %d bytes, want %d", p.Name, got, p.Size)
	}
}
