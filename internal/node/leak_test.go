package node_test

import (
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/apt-p2p/apt-p2p/internal/testrepo"
)

// TestNoGoroutineLeak: after a daemon that served downloads (also cut and
// failed ones) is closed, its goroutines are gone. HTTP clients keep idle
// connections for a while; only goroutines of this module count (the test
// mirror's aside: it keeps serving).
func TestNoGoroutineLeak(t *testing.T) {
	repo, base := sharedRepo(t)
	m := serveMirror(t, base)
	count := func() (int, string) {
		buf := make([]byte, 1<<20)
		buf = buf[:runtime.Stack(buf, true)]
		n := 0
		var ours []string
		for _, g := range strings.Split(string(buf), "\n\n") {
			if strings.Contains(g, "apt-p2p/apt-p2p/") && !strings.Contains(g, "internal/testrepo") && !strings.Contains(g, "testing.tRunner") && !strings.Contains(g, "TestNoGoroutineLeak") {
				n++
				ours = append(ours, g)
			}
		}
		return n, strings.Join(ours, "\n\n")
	}
	before, _ := count()
	func() {
		a, b := pair(t, nil, []string{"MIN_DOWNLOAD_PEERS=1"})
		seed(t, a, b, m, repo, repo.Package("multi"))
		aptUpdate(t, b, m, repo)
		wantPackage(t, b, m, repo.Package("multi"))
		wantPackage(t, b, m, repo.Package("tiny"))
		get(t, "http://"+b.addr()+"/")
		// A request cut by the client in the middle of a streamed download.
		m.SetFault("/debian/"+repo.Package("large").Filename, testrepo.Fault{Rate: 4 << 20})
		resp, err := client.Get(b.url(m, repo.Package("large").Filename))
		if err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 64<<10)
		_, _ = resp.Body.Read(buf)
		resp.Body.Close()
		b.stop()
		a.stop()
	}()
	waitFor(t, "the daemons' goroutines to end", 10*time.Second, func() (bool, string) {
		n, stacks := count()
		return n <= before, fmt.Sprintf("%d goroutines of this module (before: %d):\n%s", n, before, stacks)
	})
}
