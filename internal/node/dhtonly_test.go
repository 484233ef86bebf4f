package node_test

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/apt-p2p/apt-p2p/internal/digest"
)

// A DHT-ONLY node is a bootstrap node: other daemons join through it and share
// files through the DHT it carries, while it serves no files itself. Its
// downloaders here use the gnet UDP transport, so the option is exercised end to
// end: a value announced over one transport is found over the other.
func TestDHTOnlyBootstrapAndGnetTransport(t *testing.T) {
	repo, base := sharedRepo(t)
	m := serveMirror(t, base)
	boot := startDaemon(t, "boot", "127.0.0.2", "", "DHT-ONLY=yes", "apt_p2p_Khashmir.BOOTSTRAP_NODE=yes")
	a := startDaemon(t, "A", "127.0.0.3", "", "MIN_DOWNLOAD_PEERS=1", "apt_p2p_Khashmir.UDP_TRANSPORT=gnet",
		"apt_p2p_Khashmir.BOOTSTRAP="+boot.dhtAddr())
	b := startDaemon(t, "B", "127.0.0.4", "", "MIN_DOWNLOAD_PEERS=1",
		"apt_p2p_Khashmir.BOOTSTRAP="+boot.dhtAddr())

	// The bootstrap node answers status views on every path and refuses files.
	for _, p := range []string{"/", "/anything"} {
		code, body, _ := get(t, "http://"+boot.addr()+p)
		if code != 200 || !bytes.Contains(body, []byte("<svg")) && !bytes.Contains(body, []byte("apt-p2p")) {
			t.Fatalf("DHT-only %s: %d %.80q", p, code, body)
		}
	}
	code, body, _ := get(t, boot.url(m, "dists/stable/InRelease"))
	if code != 404 || !strings.Contains(string(body), "DHT-only") {
		t.Fatalf("DHT-only apt request: %d %q", code, body)
	}
	if m.TotalRequests() != 0 {
		t.Fatalf("a DHT-only node fetched from the mirror: %+v", m.Log())
	}

	for _, d := range []*daemon{a, b} {
		deadline := time.Now().Add(20 * time.Second)
		for d.n.DHT().Stats().Nodes == 0 {
			if time.Now().After(deadline) {
				t.Fatalf("%s never learned a DHT node through the bootstrap node", d.name)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	for _, d := range []*daemon{a, b} {
		if code, _, _ := get(t, d.url(m, "dists/stable/InRelease")); code != 200 {
			t.Fatalf("%s InRelease: %d", d.name, code)
		}
		for _, f := range repo.Indexes {
			if strings.HasSuffix(f.Name, "/Packages.xz") {
				if code, _, _ := get(t, d.url(m, "dists/stable/"+f.Name)); code != 200 {
					t.Fatalf("%s %s: %d", d.name, f.Name, code)
				}
			}
		}
	}
	p := repo.Package("multi")
	want, err := p.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	if code, got, _ := get(t, a.url(m, p.Filename)); code != 200 || !bytes.Equal(got, want) {
		t.Fatalf("A: %d, %d bytes", code, len(got))
	}
	// Wait until A's announcement (sent over gnet) is visible to B (std transport).
	var d digest.Set
	d.Size = p.Size
	if err := d.PutHex(digest.SHA1, p.SHA1); err != nil {
		t.Fatal(err)
	}
	key, _ := d.Key()
	deadline := time.Now().Add(20 * time.Second)
	for {
		vals, _ := b.n.DHT().GetValues(t.Context(), key)
		if len(vals) > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("B never found A's announcement")
		}
		time.Sleep(100 * time.Millisecond)
	}
	m.Reset()
	if code, got, _ := get(t, b.url(m, p.Filename)); code != 200 || !bytes.Equal(got, want) {
		t.Fatalf("B: %d, %d bytes", code, len(got))
	}
	if n := m.BytesServed("/debian/" + p.Filename); n != 0 {
		t.Fatalf("B took %d bytes from the mirror; they should have come from A", n)
	}
	if boot.n.Store().Stats().Files != 0 {
		t.Fatal("the DHT-only node stored files")
	}
}
