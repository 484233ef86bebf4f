package node_test

import (
	"bytes"
	"net/http"
	"testing"
	"time"

	"github.com/apt-p2p/apt-p2p/internal/testrepo"
)

// timeGet times one full GET of u and checks the body.
func timeGet(t *testing.T, u string, want []byte) time.Duration {
	t.Helper()
	t0 := time.Now()
	code, body, _ := get(t, u)
	took := time.Since(t0)
	if code != http.StatusOK || !bytes.Equal(body, want) {
		t.Fatalf("GET %s: HTTP %d, %d bytes (want %d)", u, code, len(body), len(want))
	}
	return took
}

// TestNoPeersNoStall: with nobody else in the DHT (a lone node), and with a DHT
// that has no values for the file (B joined to A), a cold request goes straight
// to the mirror: the time to the full body stays within a small bound of a
// direct GET from the mirror.
func TestNoPeersNoStall(t *testing.T) {
	repo, base := sharedRepo(t)
	m := serveMirror(t, base)
	check := func(d *daemon, p *testrepo.Package) {
		t.Helper()
		// 300 ms, plus what the store's hashing (piece SHA-1s and the whole-file
		// MD5, SHA-1 and SHA-256, needed before the last bytes go out) costs at
		// 100 MB/s on a busy CI core.
		bound := 300*time.Millisecond + time.Duration(p.Size*10)
		if raceEnabled {
			bound *= 3
		}
		want, err := p.Bytes()
		if err != nil {
			t.Fatal(err)
		}
		direct := timeGet(t, m.URL()+"/debian/"+p.Filename, want)
		if again := timeGet(t, m.URL()+"/debian/"+p.Filename, want); again < direct {
			direct = again
		}
		via := timeGet(t, d.url(m, p.Filename), want)
		t.Logf("%s, %s (%d bytes, bound %v): direct %v, through the daemon (cold) %v, overhead %v",
			d.name, p.Name, p.Size, bound, direct.Round(time.Microsecond), via.Round(time.Microsecond), (via - direct).Round(time.Microsecond))
		if via > direct+bound {
			t.Errorf("%s: %s through a daemon without peers took %v, direct %v (bound: direct + %v)", d.name, p.Name, via, direct, bound)
		}
	}

	lone := startDaemon(t, "lone", "127.0.0.4", "", "apt_p2p_Khashmir.BOOTSTRAP_NODE=yes")
	aptUpdate(t, lone, m, repo)
	for _, name := range []string{"tiny", "multi", "large"} {
		check(lone, repo.Package(name))
	}

	_, b := pair(t, nil, nil)
	aptUpdate(t, b, m, repo)
	for _, name := range []string{"tiny", "multi", "large"} {
		check(b, repo.Package(name))
	}
}
