package engine

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"sort"
	"testing"
	"time"

	"github.com/apt-p2p/apt-p2p/wire"
)

func sortedStrings(vs [][]byte) []string {
	out := make([]string, len(vs))
	for i, v := range vs {
		out[i] = string(v)
	}
	sort.Strings(out)
	return out
}

// §6.8 SimpleTests.testAddContact: after B joins A, each table holds the other.
func TestAddContact(t *testing.T) {
	cfg := testConfig()
	cfg.BootstrapNode = true
	a := startNode(t, cfg)
	mustJoin(t, a)
	if got := tableLen(a); got != 0 {
		t.Fatalf("A starts with %d nodes", got)
	}
	b := startNode(t, testConfig(), a.Addr())
	mustJoin(t, b)
	eventually(t, 5*time.Second, "both tables to hold one node", func() bool {
		return tableLen(a) == 1 && tableLen(b) == 1
	})
	for _, n := range []*Node{a, b} {
		if s := n.Stats(); s.Buckets != 1 || s.Nodes != 1 {
			t.Fatalf("stats: %d buckets, %d nodes", s.Buckets, s.Nodes)
		}
	}
}

// §6.8 testStoreRetrieve: A stores "foobar" under sha1("foo") and gets exactly it back.
func TestStoreRetrieve(t *testing.T) {
	cfg := testConfig()
	cfg.BootstrapNode = true
	a := startNode(t, cfg)
	mustJoin(t, a)
	b := startNode(t, testConfig(), a.Addr())
	mustJoin(t, b)
	key := sha1Key("foo")
	r, err := a.Put(ctxT(t, 10*time.Second), key, []byte("foobar"))
	if err != nil || r.Stored < 1 {
		t.Fatalf("put: %+v %v", r, err)
	}
	for _, n := range []*Node{a, b} {
		vals, err := n.GetValues(ctxT(t, 10*time.Second), key)
		if err != nil {
			t.Fatal(err)
		}
		if len(vals) != 1 || string(vals[0]) != "foobar" {
			t.Fatalf("get: %q", vals)
		}
	}
}

// §6.8 TestSimpleDHT.test_bootstrap_join: a bootstrap node's join succeeds alone.
func TestBootstrapJoinAlone(t *testing.T) {
	cfg := testConfig()
	cfg.BootstrapNode = true
	a := startNode(t, cfg, netip.MustParseAddrPort("127.0.0.1:1")) // its own list points nowhere
	mustJoin(t, a)
	// A node that is not a bootstrap node does not count as joined alone.
	b := startNode(t, testConfig())
	ctx := ctxT(t, 700*time.Millisecond)
	if err := b.WaitJoined(ctx); err == nil {
		t.Fatal("a lone non-bootstrap node claims to have joined")
	}
}

// §6.8 test_store: exact value sets from both nodes.
func TestStoreExactSets(t *testing.T) {
	cfg := testConfig()
	cfg.BootstrapNode = true
	a := startNode(t, cfg)
	mustJoin(t, a)
	b := startNode(t, testConfig(), a.Addr())
	mustJoin(t, b)
	ctx := ctxT(t, 20*time.Second)
	for _, p := range []struct {
		n      *Node
		key, v string
	}{{a, "4045", "12135"}, {a, "4044", "8088"}, {b, "4045", "8090"}} {
		if _, err := p.n.Put(ctx, sha1Key(p.key), []byte(p.v)); err != nil {
			t.Fatal(err)
		}
	}
	for _, n := range []*Node{a, b} {
		v1, err := n.GetValues(ctx, sha1Key("4044"))
		if err != nil {
			t.Fatal(err)
		}
		v2, err := n.GetValues(ctx, sha1Key("4045"))
		if err != nil {
			t.Fatal(err)
		}
		if got := sortedStrings(v1); !slices.Equal(got, []string{"8088"}) {
			t.Fatalf("4044: %q", got)
		}
		if got := sortedStrings(v2); !slices.Equal(got, []string{"12135", "8090"}) {
			t.Fatalf("4045: %q", got)
		}
	}
}

// startNet starts n nodes, node 0 the bootstrap node, joined one after another (§6.8 TestMultiDHT.test_join).
func startNet(t testing.TB, n int, mod func(i int, c *Config)) []*Node {
	t.Helper()
	cfg := testConfig()
	cfg.BootstrapNode = true
	if mod != nil {
		mod(0, &cfg)
	}
	nodes := []*Node{startNode(t, cfg)}
	mustJoin(t, nodes[0])
	for i := 1; i < n; i++ {
		c := testConfig()
		if mod != nil {
			mod(i, &c)
		}
		nodes = append(nodes, startNode(t, c, nodes[0].Addr()))
	}
	for _, nd := range nodes[1:] {
		mustJoin(t, nd)
	}
	return nodes
}

// §6.8 TestMultiDHT.test_store: for key i, nodes 0..i store (4081+i)·m;
// every node reads keys and gets exactly the set.
func TestMultiDHTStore(t *testing.T) {
	const n = 20
	nodes := startNet(t, n, nil)
	ctx := ctxT(t, 40*time.Second)
	want := make([][]string, n)
	for i := 0; i < n; i++ {
		key := sha1Key(fmt.Sprint(4081 + i))
		for m := 1; m <= i+1; m++ {
			v := fmt.Sprint((4081 + i) * m)
			want[i] = append(want[i], v)
			if r, err := nodes[m-1].Put(ctx, key, []byte(v)); err != nil || r.Stored < 1 {
				t.Fatalf("put %d/%d: %+v %v", i, m, r, err)
			}
		}
		sort.Strings(want[i])
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for i, nd := range nodes {
		for j := rng.IntN(3); j < n; j += 1 + rng.IntN(9) {
			vals, err := nd.GetValues(ctx, sha1Key(fmt.Sprint(4081+j)))
			if err != nil {
				t.Fatal(err)
			}
			if got := sortedStrings(vals); !slices.Equal(got, want[j]) {
				t.Fatalf("node %d key %d: got %q want %q", i, j, got, want[j])
			}
		}
	}
}

// §6.8 MultiTest: 10 random (K, V) stored from random nodes 3 times, each
// time retrieved from 3 random nodes.
func TestMultiRandom(t *testing.T) {
	nodes := startNet(t, 20, nil)
	ctx := ctxT(t, 40*time.Second)
	rng := rand.New(rand.NewPCG(3, 4))
	for i := 0; i < 10; i++ {
		var key wire.ID
		for j := range key {
			key[j] = byte(rng.Uint32())
		}
		val := []byte(fmt.Sprintf("value-%d", rng.Uint64()))
		for rep := 0; rep < 3; rep++ {
			if _, err := nodes[rng.IntN(len(nodes))].Put(ctx, key, val); err != nil {
				t.Fatal(err)
			}
			for g := 0; g < 3; g++ {
				vals, err := nodes[rng.IntN(len(nodes))].GetValues(ctx, key)
				if err != nil {
					t.Fatal(err)
				}
				if len(vals) != 1 || !bytes.Equal(vals[0], val) {
					t.Fatalf("got %q want %q", vals, val)
				}
			}
		}
	}
}

// §6.8 test_normKey vectors.
func TestNormKey(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"12345678901234567890", "12345678901234567890"},
		{"12345678901234567", "12345678901234567\x00\x00\x00"},
		{"1234567890123456789012345", "12345678901234567890"},
		{"1234567890123456789", "1234567890123456789\x00"},
		{"123456789012345678901", "12345678901234567890"},
	} {
		if k := wire.NormKey([]byte(tc.in)); string(k[:]) != tc.want {
			t.Errorf("NormKey(%q) = %q", tc.in, k[:])
		}
	}
}
