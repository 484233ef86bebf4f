package node_test

import (
	"context"
	"encoding/hex"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/apt-p2p/apt-p2p/internal/apttest"
	"github.com/apt-p2p/apt-p2p/internal/clock"
	"github.com/apt-p2p/apt-p2p/internal/node"
	"github.com/apt-p2p/apt-p2p/internal/testrepo"
	"github.com/apt-p2p/apt-p2p/internal/volunteer"
	"github.com/apt-p2p/apt-p2p/wire"
)

// TestVolunteers (issue 15): two volunteers configured for "main, amd64, new
// in the last 3 days". Their first refresh is their baseline: what is
// already listed is old, and nothing is fetched. Then the repository gains
// packages in main/amd64, contrib/amd64 and main/i386: the first volunteer
// fetches exactly the new main/amd64 ones (from the mirror: nobody has them),
// the second one copies them from the first (no package byte from the
// mirror; only the Release comes from it), and a client daemon's real
// apt-get gets them with no package byte from the mirror. Once they are
// 3 days old, the first volunteer removes them.
func TestVolunteers(t *testing.T) {
	base := t.TempDir()
	dir := filepath.Join(base, "debian")
	old := []testrepo.PackageSpec{
		{Name: "old-main", Size: 40 << 10},
		{Name: "old-contrib", Size: 40 << 10, Component: "contrib"},
		{Name: "old-i386", Size: 40 << 10, Arch: "i386"},
	}
	if _, err := testrepo.Build(dir, testrepo.Options{ByHash: true, Packages: old}); err != nil {
		t.Fatal(err)
	}
	m := serveMirror(t, base)
	t0 := time.Now()
	clk1, clk2 := clock.NewFake(t0), clock.NewFake(t0)
	sets := []string{
		"VOLUNTEER_SOURCES=" + m.Addr() + "/debian stable",
		"VOLUNTEER_COMPONENTS=main", "VOLUNTEER_ARCHITECTURES=amd64", "VOLUNTEER_NEW=3d",
		"VOLUNTEER_RATE=0", // the pacer would wait on the fake clock
		"VOLUNTEER_REFRESH=1d",
	}
	v1 := startDaemonWith(t, "V1", "127.0.0.2", "", []node.Option{node.WithVolunteerClock(clk1), node.WithMirrorClock(clk1)},
		append([]string{"apt_p2p_Khashmir.BOOTSTRAP_NODE=yes"}, sets...)...)
	boot := "apt_p2p_Khashmir.BOOTSTRAP=" + v1.dhtAddr()
	v2 := startDaemonWith(t, "V2", "127.0.0.3", "", []node.Option{node.WithVolunteerClock(clk2), node.WithMirrorClock(clk2)}, append([]string{boot}, sets...)...)
	c := startDaemon(t, "C", "127.0.0.4", "", boot)
	for _, d := range []*daemon{v1, v2, c} {
		waitFor(t, d.name+" to join", 30*time.Second, func() (bool, string) {
			st := d.n.DHT().Stats()
			return st.Joined && st.Nodes > 0, fmt.Sprintf("%+v", st)
		})
	}

	// refresh moves a volunteer's clock to its next refresh and waits for it.
	refresh := func(d *daemon, clk *clock.Fake) volunteer.Report {
		t.Helper()
		_, before := d.n.Volunteer().Last()
		waitFor(t, d.name+"'s volunteer to wait for its next refresh", 10*time.Second, func() (bool, string) {
			return clk.Pending() > 0, "no timer armed"
		})
		next, _ := clk.Next()
		clk.Set(next)
		var rep volunteer.Report
		waitFor(t, d.name+"'s refresh", 60*time.Second, func() (bool, string) {
			r, n := d.n.Volunteer().Last()
			rep = r
			return n > before, fmt.Sprintf("%d refreshes", n)
		})
		if len(rep.Errors) > 0 {
			t.Fatalf("%s: refresh errors: %v", d.name, rep.Errors)
		}
		return rep
	}
	poolRequests := func() []string {
		var out []string
		for _, l := range m.Log() {
			if strings.HasPrefix(l.Path, "/debian/pool/") {
				out = append(out, strings.TrimPrefix(l.Path, "/debian/"))
			}
		}
		slices.Sort(out)
		return out
	}

	for _, v := range []struct {
		d   *daemon
		clk *clock.Fake
	}{{v1, clk1}, {v2, clk2}} {
		if rep := refresh(v.d, v.clk); rep.Lists != 1 || rep.Selected != 0 || rep.Fetched != 0 {
			t.Fatalf("%s: baseline refresh %+v, want one list read and nothing selected", v.d.name, rep)
		}
	}
	if got := poolRequests(); len(got) != 0 {
		t.Fatalf("the baseline fetched %v from the mirror", got)
	}

	// New packages in every list.
	specs := append(slices.Clone(old),
		testrepo.PackageSpec{Name: "new-small", Size: 40 << 10},
		testrepo.PackageSpec{Name: "new-multi", Size: 1536 << 10},
		testrepo.PackageSpec{Name: "new-contrib", Size: 40 << 10, Component: "contrib"},
		testrepo.PackageSpec{Name: "new-i386", Size: 40 << 10, Arch: "i386"},
	)
	repo, err := testrepo.Build(dir, testrepo.Options{ByHash: true, Packages: specs})
	if err != nil {
		t.Fatal(err)
	}
	newerOnMirror(t, dir) // rebuilt within the second: the mirror's Last-Modified must still move
	want := []*testrepo.Package{repo.Package("new-multi"), repo.Package("new-small")}
	wantPaths := []string{want[0].Filename, want[1].Filename}
	m.Reset()

	// V1: exactly the new main/amd64 packages, from the mirror (nobody
	// else has them).
	rep := refresh(v1, clk1)
	appeared := rep.Started
	if rep.Selected != 2 || rep.Fetched != 2 || rep.FromMirror != 2 {
		t.Fatalf("V1: %+v, want the 2 new main/amd64 packages fetched from the mirror", rep)
	}
	if got := poolRequests(); !slices.Equal(got, wantPaths) {
		t.Fatalf("V1 fetched %v from the mirror, want exactly %v", got, wantPaths)
	}
	for _, p := range repo.Packages {
		if got, wantIt := stored(t, v1, &p), slices.Contains(want, repo.Package(p.Name)); got != wantIt {
			t.Errorf("V1 holds %s: %v, want %v", p.Name, got, wantIt)
		}
	}

	// V2 copies them from V1: no package byte and no Packages file from the
	// mirror, only the Release.
	for _, p := range want {
		waitValues(t, v2, p, 1)
	}
	xz := repo.Indexes[slices.IndexFunc(repo.Indexes, func(f testrepo.IndexFile) bool { return f.Name == "main/binary-amd64/Packages.xz" })]
	waitKey(t, v2, xz.SHA1, 1)
	m.Reset()
	rep = refresh(v2, clk2)
	if rep.Selected != 2 || rep.Fetched != 2 || rep.FromPeers != 2 {
		t.Fatalf("V2: %+v, want the 2 new packages fetched from peers", rep)
	}
	for _, l := range m.Log() {
		if !strings.HasSuffix(l.Path, "/InRelease") && !strings.HasSuffix(l.Path, "/Release") {
			t.Errorf("V2 asked the mirror for %s (%d bytes)", l.Path, l.Bytes)
		}
	}
	for _, p := range want {
		if !stored(t, v2, p) {
			t.Errorf("V2 does not hold %s", p.Name)
		}
	}

	// A client's apt-get: the packages come from the volunteers.
	r, err := apttest.NewRoot(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if err := r.SetSources(repo.SourcesLine("http://" + c.addr() + "/" + m.Addr() + "/debian")); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := r.Update(ctx); err != nil {
		t.Fatal(err)
	}
	m.Reset()
	work := t.TempDir()
	if err := r.Download(ctx, work, "new-small", "new-multi"); err != nil {
		t.Fatal(err)
	}
	if err := apttest.VerifyFiles(repo, work, "new-small", "new-multi"); err != nil {
		t.Fatal(err)
	}
	if n := m.BytesUnder("/debian/pool/"); n != 0 {
		t.Errorf("the client took %d package bytes from the mirror, want 0", n)
	}

	// Three days after they appeared, V1 no longer holds them.
	removed := 0
	for {
		rep = refresh(v1, clk1)
		removed += rep.Removed
		age := rep.Started.Sub(appeared)
		if age < 3*24*time.Hour && (rep.Selected != 2 || rep.Removed != 0) {
			t.Fatalf("V1 %v after they appeared: %+v, want both still held", age, rep)
		}
		if age >= 3*24*time.Hour {
			break
		}
	}
	if rep.Selected != 0 || removed != 2 {
		t.Fatalf("V1 three days on: %+v (%d removed), want both removed", rep, removed)
	}
	for _, p := range want {
		if stored(t, v1, p) {
			t.Errorf("V1 still holds %s", p.Name)
		}
	}
}

// waitKey waits until d's DHT lookups find n values under the SHA-1 given in hex.
func waitKey(t *testing.T, d *daemon, sha1Hex string, n int) {
	t.Helper()
	h, err := hex.DecodeString(sha1Hex)
	if err != nil {
		t.Fatal(err)
	}
	key := wire.ID(h)
	waitFor(t, d.name+" to find "+sha1Hex+" in the DHT", 30*time.Second, func() (bool, string) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		vals, err := d.n.DHT().GetValues(ctx, key)
		return len(vals) >= n, fmt.Sprint(len(vals), err)
	})
}
