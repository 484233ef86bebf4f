package volunteer

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apt-p2p/apt-p2p/internal/clock"
	"github.com/apt-p2p/apt-p2p/internal/digest"
)

// fakeDaemon serves a repository from memory: dists/<suite>/Release and the
// Packages lists, and pool files of the given sizes. Fetch "downloads" by
// marking a file stored.
type fakeDaemon struct {
	mu       sync.Mutex
	files    map[string][]byte // path under the mirror → content (index files)
	pool     map[string]int64  // pool path → size
	stored   map[[32]byte]bool
	fetched  []string // pool paths Fetch downloaded, in order
	paced    int      // fetches that had a pace function
	removed  []string
	state    []byte
	failList string // a Packages path whose Lookup fails (not in the Release)
	inUse    map[string]bool
	releases int
}

func newFakeDaemon() *fakeDaemon {
	return &fakeDaemon{files: map[string][]byte{}, pool: map[string]int64{}, stored: map[[32]byte]bool{}, inUse: map[string]bool{}}
}

type pkg struct {
	name, comp, arch, priority, section string
	size                                int64
}

func (p pkg) filename() string {
	return fmt.Sprintf("pool/%s/%c/%s/%s_1_%s.deb", p.comp, p.name[0], p.name, p.name, p.arch)
}

// publish writes the lists of suite "stable" for pkgs (every comp/arch pair
// of lists, empty ones included) and its Release.
func (f *fakeDaemon) publish(pkgs []pkg, comps, archs []string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for k := range f.files {
		delete(f.files, k)
	}
	var rel strings.Builder
	rel.WriteString("Origin: test\nSuite: stable\nAcquire-By-Hash: no\nSHA256:\n")
	for _, c := range comps {
		for _, a := range archs {
			var b strings.Builder
			for _, p := range pkgs {
				if p.comp != c || p.arch != a {
					continue
				}
				fmt.Fprintf(&b, "Package: %s\nVersion: 1\nArchitecture: %s\nPriority: %s\nSection: %s\nDescription: x\n more\nFilename: %s\nSize: %d\n\n",
					p.name, p.arch, p.priority, p.section, p.filename(), p.size)
				f.pool[p.filename()] = p.size
			}
			path := "dists/stable/" + c + "/binary-" + a + "/Packages"
			f.files[path] = []byte(b.String())
			fmt.Fprintf(&rel, " %x %d %s\n", sha256.Sum256([]byte(b.String())), b.Len(), c+"/binary-"+a+"/Packages")
		}
	}
	f.files["dists/stable/Release"] = []byte(rel.String())
}

func (f *fakeDaemon) digestOf(path string) (digest.Set, bool) {
	var d digest.Set
	if b, ok := f.files[path]; ok {
		h := sha256.Sum256(b)
		d.Size = int64(len(b))
		_ = d.Put(digest.SHA256, h[:])
		return d, true
	}
	if size, ok := f.pool[path]; ok {
		h := sha256.Sum256([]byte(path))
		d.Size = size
		_ = d.Put(digest.SHA256, h[:])
		return d, true
	}
	return d, false
}

func (f *fakeDaemon) UpdateRelease(_ context.Context, mirror, suite string) ([]byte, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.releases++
	if mirror != "mirror.test/debian" {
		return nil, errors.New("mirror unreachable")
	}
	b, ok := f.files["dists/"+suite+"/Release"]
	if !ok {
		return nil, errors.New("404")
	}
	return b, nil
}

func (f *fakeDaemon) Lookup(_, path string) (digest.Set, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if path == f.failList {
		return digest.Set{}, false
	}
	return f.digestOf(path)
}

func (f *fakeDaemon) Fetch(_ context.Context, _, path string, pace func(context.Context, int) error) (Fetched, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	d, ok := f.digestOf(path)
	if !ok {
		return Fetched{}, errors.New("not in the index")
	}
	if f.stored[d.SHA256] {
		return Fetched{Digest: d}, nil
	}
	f.stored[d.SHA256] = true
	if strings.HasPrefix(path, "pool/") {
		f.fetched = append(f.fetched, path)
		if pace != nil {
			f.paced++
		}
	}
	return Fetched{Digest: d, Downloaded: true, Source: "peers"}, nil
}

func (f *fakeDaemon) Open(d *digest.Set) (io.ReadCloser, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, b := range f.files {
		if sha256.Sum256(b) == d.SHA256 && f.stored[d.SHA256] {
			return io.NopCloser(bytes.NewReader(b)), nil
		}
	}
	return nil, errors.New("not stored")
}

func (f *fakeDaemon) Remove(d *digest.Set) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for p := range f.pool {
		if sha256.Sum256([]byte(p)) == d.SHA256 {
			if f.inUse[p] {
				return false, errors.New("in use")
			}
			was := f.stored[d.SHA256]
			delete(f.stored, d.SHA256)
			f.removed = append(f.removed, p)
			return was, nil
		}
	}
	return false, nil
}

func (f *fakeDaemon) LoadState() ([]byte, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.state, nil
}
func (f *fakeDaemon) SaveState(b []byte) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.state = b
	return nil
}

func (f *fakeDaemon) isStored(p pkg) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.stored[sha256.Sum256([]byte(p.filename()))]
}

func (f *fakeDaemon) takeFetched() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := f.fetched
	f.fetched = nil
	slices.Sort(out)
	return out
}

func names(ps ...pkg) []string {
	var out []string
	for _, p := range ps {
		out = append(out, p.filename())
	}
	slices.Sort(out)
	return out
}

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func newVolunteer(t *testing.T, d Daemon, clk clock.Clock, mod func(*Config)) *Volunteer {
	t.Helper()
	cfg := Config{
		Sources:       []Source{{Mirror: "mirror.test/debian", Suites: []string{"stable"}}},
		Components:    []string{"main"},
		Architectures: []string{"amd64"},
		Clock:         clk,
	}
	if mod != nil {
		mod(&cfg)
	}
	v, err := New(cfg, d)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// "main, amd64, new in the last 3 days": the first refresh is the baseline
// (nothing is new), a package that appears later is new for 3 days and is
// removed once it is not; other components and architectures are never
// touched, and neither is a file the cache held before the volunteer
// selected it.
func TestNewInLastDays(t *testing.T) {
	d := newFakeDaemon()
	clk := clock.NewFake(t0)
	old := []pkg{
		{name: "old-a", comp: "main", arch: "amd64", priority: "optional", section: "misc", size: 1000},
		{name: "old-b", comp: "contrib", arch: "amd64", priority: "optional", section: "misc", size: 1000},
		{name: "old-c", comp: "main", arch: "i386", priority: "optional", section: "misc", size: 1000},
	}
	comps, archs := []string{"main", "contrib"}, []string{"amd64", "i386"}
	d.publish(old, comps, archs)
	v := newVolunteer(t, d, clk, func(c *Config) { c.NewWithin = 72 * time.Hour })
	rep := v.Refresh(context.Background())
	if len(rep.Errors) > 0 || rep.Lists != 1 || rep.Selected != 0 {
		t.Fatalf("baseline: %+v", rep)
	}
	if got := d.takeFetched(); len(got) != 0 {
		t.Fatalf("baseline fetched %v, want nothing (everything was there before)", got)
	}

	clk.Advance(24 * time.Hour)
	newMain := pkg{name: "new-main", comp: "main", arch: "amd64", priority: "optional", section: "misc", size: 2000}
	local := pkg{name: "new-local", comp: "main", arch: "amd64", priority: "optional", section: "misc", size: 500}
	newContrib := pkg{name: "new-contrib", comp: "contrib", arch: "amd64", priority: "optional", section: "misc", size: 2000}
	newI386 := pkg{name: "new-i386", comp: "main", arch: "i386", priority: "optional", section: "misc", size: 2000}
	d.publish(append(slices.Clone(old), newMain, local, newContrib, newI386), comps, archs)
	// The local apt fetched one of them already: stored, not the volunteer's.
	if _, err := d.Fetch(context.Background(), "", local.filename(), nil); err != nil {
		t.Fatal(err)
	}
	d.takeFetched()
	rep = v.Refresh(context.Background())
	if got, want := d.takeFetched(), names(newMain); !slices.Equal(got, want) || rep.Fetched != 1 || rep.Stored != 1 || rep.Selected != 2 {
		t.Fatalf("day 1: fetched %v (want %v), report %+v", got, want, rep)
	}

	// Day 3: still new (2 days old), nothing to do.
	clk.Advance(48 * time.Hour)
	rep = v.Refresh(context.Background())
	if got := d.takeFetched(); len(got) != 0 || rep.Removed != 0 || rep.Selected != 2 {
		t.Fatalf("day 3: fetched %v, report %+v", got, rep)
	}
	// Day 4 and a bit: 3 days old, out of the selection: the volunteer's
	// file goes, the local apt's stays.
	clk.Advance(25 * time.Hour)
	rep = v.Refresh(context.Background())
	if rep.Selected != 0 || rep.Removed != 1 || !slices.Equal(d.removed, names(newMain)) {
		t.Fatalf("day 4: removed %v, report %+v", d.removed, rep)
	}
	if d.isStored(newMain) || !d.isStored(local) {
		t.Fatalf("after day 4: new-main stored %v (want false), new-local stored %v (want true)", d.isStored(newMain), d.isStored(local))
	}

	// The dates survive a restart: a new Volunteer on the same state finds
	// nothing new (a fresh one would take the next refresh as its baseline).
	clk.Advance(time.Hour)
	later := pkg{name: "later", comp: "main", arch: "amd64", priority: "optional", section: "misc", size: 700}
	d.publish(append(slices.Clone(old), newMain, local, newContrib, newI386, later), comps, archs)
	v2 := newVolunteer(t, d, clk, func(c *Config) { c.NewWithin = 72 * time.Hour })
	rep = v2.Refresh(context.Background())
	if got, want := d.takeFetched(), names(later); !slices.Equal(got, want) {
		t.Fatalf("after a restart: fetched %v, want %v (%+v)", got, want, rep)
	}
}

// Priorities, sections and names filter; the budget keeps the newest first,
// then by priority; downloads are paced when a rate is set.
func TestFiltersAndBudget(t *testing.T) {
	d := newFakeDaemon()
	clk := clock.NewFake(t0)
	ps := []pkg{
		{name: "req", comp: "main", arch: "amd64", priority: "required", section: "admin", size: 400},
		{name: "imp", comp: "main", arch: "amd64", priority: "important", section: "net", size: 400},
		{name: "opt", comp: "main", arch: "amd64", priority: "optional", section: "net", size: 400},
		{name: "ext", comp: "main", arch: "amd64", priority: "extra", section: "contrib/net", size: 400},
	}
	d.publish(ps, []string{"main"}, []string{"amd64"})
	for _, c := range []struct {
		name string
		mod  func(*Config)
		want []string
	}{
		{"priorities", func(c *Config) { c.Priorities = []string{"required", "important"} }, names(ps[0], ps[1])},
		{"sections", func(c *Config) { c.Sections = []string{"net"} }, names(ps[1], ps[2], ps[3])},
		{"names", func(c *Config) { c.Packages = []string{"opt", "nosuch"} }, names(ps[2])},
		{"sections and priorities", func(c *Config) { c.Sections = []string{"net"}; c.Priorities = []string{"extra"} }, names(ps[3])},
		{"budget", func(c *Config) { c.Budget = 1000 }, names(ps[0], ps[1])},
		{"rate", func(c *Config) { c.Rate = 1 << 20; c.Packages = []string{"req"} }, names(ps[0])},
	} {
		t.Run(c.name, func(t *testing.T) {
			d.mu.Lock()
			clear(d.stored)
			d.state, d.paced = nil, 0
			d.mu.Unlock()
			v := newVolunteer(t, d, clk, c.mod)
			rep := v.Refresh(context.Background())
			if got := d.takeFetched(); !slices.Equal(got, c.want) || len(rep.Errors) > 0 {
				t.Fatalf("fetched %v, want %v (%+v)", got, c.want, rep)
			}
			if c.name == "budget" && rep.LeftOut != 2 {
				t.Errorf("left out %d, want 2", rep.LeftOut)
			}
			if wantPaced := c.name == "rate"; (d.paced > 0) != wantPaced {
				t.Errorf("paced fetches %d, want paced %v", d.paced, wantPaced)
			}
		})
	}
}

// A list that cannot be read removes nothing (it says nothing about its
// files) and is reported; a mirror that is down is reported too.
func TestNoRemovalWhenAListFails(t *testing.T) {
	d := newFakeDaemon()
	clk := clock.NewFake(t0)
	a := pkg{name: "a", comp: "main", arch: "amd64", priority: "optional", section: "misc", size: 100}
	b := pkg{name: "b", comp: "main", arch: "i386", priority: "optional", section: "misc", size: 100}
	d.publish([]pkg{a, b}, []string{"main"}, []string{"amd64", "i386"})
	v := newVolunteer(t, d, clk, func(c *Config) {
		c.Architectures = []string{"amd64", "i386"}
		c.Sources = append(c.Sources, Source{Mirror: "down.test/debian", Suites: []string{"stable"}})
	})
	rep := v.Refresh(context.Background())
	if got := d.takeFetched(); !slices.Equal(got, names(a, b)) || len(rep.Errors) != 2 {
		t.Fatalf("fetched %v, report %+v", got, rep)
	}
	// Now i386 is configured away and amd64's list is missing from the
	// Release: nothing may go, though b left the selection.
	v.cfg.Architectures = []string{"amd64"}
	v.cfg.Sources = v.cfg.Sources[:1]
	d.failList = "dists/stable/main/binary-amd64/Packages"
	rep = v.Refresh(context.Background())
	if rep.Removed != 0 || len(d.removed) != 0 || len(rep.Errors) != 2 {
		t.Fatalf("removed %v, report %+v", d.removed, rep)
	}
	d.failList = ""
	rep = v.Refresh(context.Background())
	if rep.Removed != 1 || !slices.Equal(d.removed, names(b)) {
		t.Fatalf("removed %v, report %+v", d.removed, rep)
	}
}

// Run refreshes within min(Refresh/10, 5 min) of the start, then about every
// Refresh, on the clock it is given.
func TestRunSchedule(t *testing.T) {
	d := newFakeDaemon()
	d.publish(nil, []string{"main"}, []string{"amd64"})
	clk := clock.NewFake(t0)
	v := newVolunteer(t, d, clk, func(c *Config) { c.Refresh = time.Hour })
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { v.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	cycles := func() int { _, n := v.Last(); return n }
	armed := func() time.Time { // Run waits on the clock: between refreshes, or before the first
		t.Helper()
		clk.WaitPending(1)
		next, _ := clk.Next()
		return next
	}
	if first := armed(); first.Before(t0) || first.After(t0.Add(6*time.Minute)) {
		t.Fatalf("first refresh at %v, want within 6 minutes of %v", first, t0)
	}
	clk.Advance(6 * time.Minute)
	next := armed() // armed again once the refresh is over
	if cycles() != 1 {
		t.Fatalf("%d refreshes once the first timer fired, want 1", cycles())
	}
	rep, _ := v.Last()
	if d := next.Sub(rep.Started); d < 54*time.Minute || d > 66*time.Minute {
		t.Fatalf("next refresh %v after the first, want 1 h ±10%%", d)
	}
	clk.Set(next)
	armed()
	if n := cycles(); n != 2 {
		t.Fatalf("%d refreshes once the second timer fired, want 2", n)
	}
	if rep, _ := v.Last(); !rep.Started.Equal(next) || len(rep.Errors) != 0 {
		t.Fatalf("second refresh %+v, want at %v", rep, next)
	}
}

// The pacer holds writes to its rate on the clock it is given.
func TestPacer(t *testing.T) {
	clk := clock.NewFake(t0)
	p := newPacer(clk, 1<<20) // 1 MiB/s, burst 256 KiB
	ctx := context.Background()
	if err := p.wait(ctx, 256<<10); err != nil { // the burst: at once
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- p.wait(ctx, 512<<10) }() // half a second of debt
	clk.WaitPending(1)
	clk.Advance(400 * time.Millisecond)
	select {
	case <-done:
		t.Fatal("512 KiB went after 0.4 s at 1 MiB/s")
	case <-time.After(10 * time.Millisecond):
	}
	clk.Advance(100 * time.Millisecond)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	ctx2, cancel := context.WithCancel(ctx)
	go func() { done <- p.wait(ctx2, 1<<20) }()
	clk.WaitPending(1)
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled wait: %v", err)
	}
}

func TestReadPackages(t *testing.T) {
	in := "Package: a\nVersion: 1\nArchitecture: all\nPriority: required\nSection: admin\nDescription: x\n Filename: not/this\nFilename: pool/a.deb\nSize: 12\n\n" +
		"Package: nofile\nSize: 3\n\n\n" +
		"Package: b\r\nFilename: pool/b.deb\r\nSize: 7\r\n" // CRLF, no final blank line
	var got []Package
	if err := ReadPackages(strings.NewReader(in), func(p *Package) { got = append(got, *p) }); err != nil {
		t.Fatal(err)
	}
	want := []Package{
		{Name: "a", Version: "1", Architecture: "all", Priority: "required", Section: "admin", Filename: "pool/a.deb", Size: 12},
		{Name: "b", Filename: "pool/b.deb", Size: 7},
	}
	if !slices.Equal(got, want) {
		t.Fatalf("got %+v\nwant %+v", got, want)
	}
	long := "Package: x\nDescription: " + strings.Repeat("y", maxLine+1) + "\n"
	if err := ReadPackages(strings.NewReader(long), func(*Package) {}); err == nil {
		t.Fatal("a line over the limit was accepted")
	}
}
