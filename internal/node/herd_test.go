package node_test

import (
	"bytes"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/apt-p2p/apt-p2p/internal/testrepo"
)

// crowd starts n daemons on 127.0.0.2.. (the first the bootstrap node, the
// others bootstrapping from it), all joined and all past apt-get update.
func crowd(t *testing.T, n int, m *testrepo.Mirror, repo *testrepo.Repo, sets ...string) []*daemon {
	t.Helper()
	ds := []*daemon{startDaemon(t, "D0", "127.0.0.2", "", append([]string{"apt_p2p_Khashmir.BOOTSTRAP_NODE=yes"}, sets...)...)}
	for i := 1; i < n; i++ {
		ds = append(ds, startDaemon(t, fmt.Sprintf("D%d", i), fmt.Sprintf("127.0.0.%d", 2+i), "",
			append([]string{"apt_p2p_Khashmir.BOOTSTRAP=" + ds[0].dhtAddr()}, sets...)...))
	}
	for _, d := range ds {
		waitFor(t, d.name+" to join", 30*time.Second, func() (bool, string) {
			st := d.n.DHT().Stats()
			return st.Joined && st.Nodes >= min(n-1, 2), fmt.Sprintf("%+v", st)
		})
	}
	for _, d := range ds {
		aptUpdate(t, d, m, repo)
	}
	return ds
}

// fetchAll has every daemon fetch p at the same moment and checks the bodies.
func fetchAll(t *testing.T, ds []*daemon, m *testrepo.Mirror, p *testrepo.Package) {
	t.Helper()
	want, err := p.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	start := make(chan struct{})
	for _, d := range ds {
		wg.Go(func() {
			<-start
			code, body, _ := get(t, d.url(m, p.Filename))
			if code != http.StatusOK || !bytes.Equal(body, want) {
				t.Errorf("%s: %s: HTTP %d, %d of %d bytes, equal %v", d.name, p.Name, code, len(body), len(want), bytes.Equal(body, want))
			}
		})
	}
	close(start)
	wg.Wait()
}

// TestFlashCrowdAcrossDaemons: six daemons ask for the same uncached files at
// the same moment (a fleet updating on a schedule). One of them fetches each
// file from the mirror; the others stream it from that one (or from one that
// streams it from that one) while it downloads. The mirror sends each file
// about once, and every daemon gets the right bytes. Before downloads were
// shared while running, the mirror sent each file six times.
func TestFlashCrowdAcrossDaemons(t *testing.T) {
	repo, base := sharedRepo(t)
	m := serveMirror(t, base)
	ds := crowd(t, 6, m, repo)
	for _, name := range []string{"tiny", "multi", "large"} {
		p := repo.Package(name)
		m.Reset()
		fetchAll(t, ds, m, p)
		served := m.BytesServed("/debian/" + p.Filename)
		leaders, followers := int64(0), int64(0)
		for _, d := range ds {
			c := d.n.DownloadCounters()
			leaders, followers = leaders+c.Leaders.Load(), followers+c.Followers.Load()
		}
		t.Logf("%s (%d bytes): the mirror sent %d bytes (%.2f copies); %d leaders and %d followers so far",
			name, p.Size, served, float64(served)/float64(p.Size), leaders, followers)
		// One copy, plus at most one more from a daemon whose claim raced
		// the leader's on a loaded machine.
		if served > 2*p.Size {
			t.Errorf("%s: the mirror sent %d bytes for a %d-byte file to a crowd of %d", name, served, p.Size, len(ds))
		}
	}
	var up, down int64
	for _, d := range ds {
		s := d.n.Stats.Session()
		up, down = up+s.Uploaded, down+s.Peers
	}
	if down == 0 || up < down*95/100 || up > down*105/100 {
		t.Errorf("peers uploaded %d bytes and downloaded %d: they must agree within 5%%", up, down)
	}
}
