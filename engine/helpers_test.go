package engine

import (
	"context"
	"crypto/sha1"
	"net/netip"
	"testing"
	"time"

	"github.com/apt-p2p/apt-p2p/kbucket"
	"github.com/apt-p2p/apt-p2p/wire"
)

// testConfig is the original tests' configuration (§6.8) with LOCAL_OK, on
// loopback, with short timeouts so failures show quickly.
func testConfig() Config {
	c := Default()
	c.LocalOK = true
	c.Version = "A000"
	c.Validate = nil
	c.RejoinInitial = 200 * time.Millisecond
	return c
}

func startNode(t testing.TB, cfg Config, bootstrap ...netip.AddrPort) *Node {
	t.Helper()
	return startNodeAt(t, cfg, "127.0.0.1:0", bootstrap...)
}

func startNodeAt(t testing.TB, cfg Config, listen string, bootstrap ...netip.AddrPort) *Node {
	t.Helper()
	var boot []string
	for _, b := range bootstrap {
		boot = append(boot, b.String())
	}
	n, err := Start(Options{Config: cfg, Listen: listen, Bootstrap: boot})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	return n
}

func ctxT(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func mustJoin(t testing.TB, n *Node) {
	t.Helper()
	if err := n.WaitJoined(ctxT(t, 20*time.Second)); err != nil {
		t.Fatalf("join: %v", err)
	}
}

func sha1Key(s string) wire.ID { return sha1.Sum([]byte(s)) }

// eventually polls cond until it holds or d passes.
func eventually(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func tableLen(n *Node) int {
	var l int
	n.Do(func(c *Core, _ time.Time) { l = c.Table().Len() })
	return l
}

func kbucketNode(id wire.ID, a netip.AddrPort) kbucket.Node { return kbucket.Node{ID: id, Addr: a} }
