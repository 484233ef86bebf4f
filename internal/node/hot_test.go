package node_test

import (
	"bytes"
	"context"
	"encoding/hex"
	"fmt"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/apt-p2p/apt-p2p/internal/aptindex"
	"github.com/apt-p2p/apt-p2p/internal/clock"
	"github.com/apt-p2p/apt-p2p/internal/node"
	"github.com/apt-p2p/apt-p2p/internal/testrepo"
)

// TestHotPathRevalidates: a URI answered from the store is answered again without parsing
// (hot.go), but never with content the index no longer names there (the repository rebuilt
// under the same file name, then apt-get update) nor with a copy the store dropped.
func TestHotPathRevalidates(t *testing.T) {
	base := t.TempDir()
	dir := filepath.Join(base, "debian")
	specs := []testrepo.PackageSpec{{Name: "hot", Size: 70 << 10}}
	v1, err := testrepo.Build(dir, testrepo.Options{Packages: specs, Seed: 11})
	if err != nil {
		t.Fatal(err)
	}
	m := serveMirror(t, base)
	clk := clock.NewFake(time.Now())
	d := startDaemonWith(t, "A", "127.0.0.2", "", []node.Option{node.WithMirrorClock(clk)}, "apt_p2p_Khashmir.BOOTSTRAP_NODE=yes")
	aptUpdate(t, d, m, v1)
	p1 := v1.Package("hot")
	wantPackage(t, d, m, p1)
	waitFor(t, "hot stored", 10*time.Second, func() (bool, string) { return stored(t, d, p1), "" })
	m.Reset()
	for range 3 { // from the store: the first remembers the URI, the next take the hot path
		wantPackage(t, d, m, p1)
	}
	// The express lane (a plain GET) and fasthttp (the same GET with a header the lane leaves
	// to it) give the same answer.
	want1, _ := p1.Bytes()
	code, body, hdr := get(t, d.url(m, p1.Filename))
	code2, body2, hdr2 := get(t, d.url(m, p1.Filename), "X-Test", "1")
	hdr.Del("Date")
	hdr2.Del("Date")
	if code != http.StatusOK || code2 != code || !bytes.Equal(body, want1) || !bytes.Equal(body2, want1) ||
		fmt.Sprint(hdr) != fmt.Sprint(hdr2) || hdr.Get("ETag") != `"`+p1.SHA256+`"` {
		t.Fatalf("hot answers differ: HTTP %d, %d bytes, %v; with another header HTTP %d, %d bytes, %v",
			code, len(body), hdr, code2, len(body2), hdr2)
	}
	code, body, hdr = get(t, d.url(m, p1.Filename), "Range", "bytes=100-199")
	if code != http.StatusPartialContent || !bytes.Equal(body, want1[100:200]) || hdr.Get("ETag") != `"`+p1.SHA256+`"` {
		t.Fatalf("range from the hot path: HTTP %d, %d bytes, ETag %q", code, len(body), hdr.Get("ETag"))
	}
	if n := m.TotalRequests(); n != 0 {
		t.Fatalf("the mirror got %d requests for a stored file", n)
	}

	// The same name with new content: after apt-get update the URI must give the new bytes.
	v2, err := testrepo.Build(dir, testrepo.Options{Packages: specs, Seed: 12})
	if err != nil {
		t.Fatal(err)
	}
	// A new Release the daemon sees as changed: newer on the mirror, and its
	// copy no longer fresh.
	newerOnMirror(t, dir)
	clk.Advance(2 * time.Second)
	p2 := v2.Package("hot")
	if p2.Filename != p1.Filename || p2.SHA256 == p1.SHA256 {
		t.Fatal("rebuild did not reuse the name with new content")
	}
	// As apt-get update asks: revalidated with the mirror.
	for _, rel := range []string{v2.DistPath("Release"), v2.DistPath(v2.Component + "/binary-" + v2.Arch + "/Packages.xz")} {
		if code, _, _ := get(t, d.url(m, rel), "Cache-Control", "max-age=0"); code != http.StatusOK {
			t.Fatalf("%s: HTTP %d", rel, code)
		}
	}
	// apt has the index once the response ends; the daemon parses it once stored.
	waitFor(t, "the new index", 10*time.Second, func() (bool, string) {
		site := m.Addr()
		b, path := aptindex.SplitPath(site, "/debian/"+p2.Filename, d.n.Index().BaseDirs)
		ds, ok := d.n.Index().Lookup(site, b, path)
		return ok && hex.EncodeToString(ds.SHA256[:]) == p2.SHA256, ""
	})
	wantPackage(t, d, m, p2)
	waitFor(t, "the new content stored", 10*time.Second, func() (bool, string) { return stored(t, d, p2), "" })
	for range 3 {
		wantPackage(t, d, m, p2)
	}

	// The store drops the copy (it rotted; the offline check finds it): the URI is fetched
	// again, not failed.
	rot(t, dataFile(d, p2), 1000)
	if bad, err := d.n.Store().Verify(context.Background()); bad != 1 || err != nil {
		t.Fatalf("Verify: %d dropped, %v", bad, err)
	}
	m.Reset()
	wantPackage(t, d, m, p2)
	if n := m.BytesServed("/debian/" + p2.Filename); n != p2.Size {
		t.Errorf("after the drop the mirror sent %d bytes, want the file (%d)", n, p2.Size)
	}
}
