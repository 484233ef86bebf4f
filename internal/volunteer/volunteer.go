package volunteer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"path"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/apt-p2p/apt-p2p/internal/aptindex"
	"github.com/apt-p2p/apt-p2p/internal/clock"
	"github.com/apt-p2p/apt-p2p/internal/digest"
)

// Source is one mirror and the suites to hold from it.
type Source struct {
	// Mirror is written as after the daemon's address in a URL-prefix
	// sources.list line: "deb.debian.org/debian", "https/deb.example.org/debian",
	// "127.0.0.1:8080/debian".
	Mirror string
	Suites []string
}

// Config says what a volunteer holds and how it fetches it. Zero values
// mean the defaults.
type Config struct {
	Sources       []Source
	Components    []string // default main
	Architectures []string // required: binary-<arch> lists (they include Architecture: all packages)
	// Filters: a package is selected when it passes every one that is set.
	Priorities []string      // Priority field (required, important, standard, optional, extra)
	Sections   []string      // Section field, with or without its component ("net" matches "contrib/net")
	Packages   []string      // package names
	NewWithin  time.Duration // first listed less than this long ago (see "What is new")
	// Budget bounds the bytes of the selection (0: none of its own; the
	// cache's quota still applies). Newest first, then by priority, then by
	// name, as long as it fits.
	Budget int64
	// Rate limits the preheat downloads, bytes per second (0: none).
	Rate int64
	// Refresh is how often the indexes are fetched again (default 6 h, ±10%).
	Refresh time.Duration
	// Parallel is how many files are fetched at once (default 2).
	Parallel int
	Clock    clock.Clock
	Logger   *slog.Logger
}

func (c *Config) fill() {
	if len(c.Components) == 0 {
		c.Components = []string{"main"}
	}
	if c.Refresh <= 0 {
		c.Refresh = 6 * time.Hour
	}
	if c.Parallel <= 0 {
		c.Parallel = 2
	}
	if c.Clock == nil {
		c.Clock = clock.Real
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// Fetched is the outcome of Daemon.Fetch.
type Fetched struct {
	Digest     digest.Set
	Downloaded bool   // false: it was stored already
	Source     string // where the bytes came from: mirror, peers or peers+mirror
}

// Daemon is what a volunteer needs of its daemon (package node implements it).
type Daemon interface {
	// UpdateRelease fetches dists/<suite>/InRelease (else Release) from the
	// mirror as apt-get update does, revalidating any cached copy, and adds
	// it to the daemon's index. It returns the file.
	UpdateRelease(ctx context.Context, mirror, suite string) ([]byte, error)
	// Lookup is the size and hashes the daemon's index gives for a path of
	// the mirror ("dists/…", "pool/…").
	Lookup(mirror, path string) (digest.Set, bool)
	// Fetch downloads a path of the mirror the index has hashes for through
	// the daemon's download path (peers first, then the mirror; verified,
	// stored and announced) and returns once it is stored. pace, if not
	// nil, is asked before each write (the bandwidth limit). An index file
	// (Packages) is added to the daemon's index as well.
	Fetch(ctx context.Context, mirror, path string, pace func(ctx context.Context, n int) error) (Fetched, error)
	// Open reads a stored file.
	Open(d *digest.Set) (io.ReadCloser, error)
	// Remove drops a stored file from the cache (piecestore.ErrInUse while
	// it is being read).
	Remove(d *digest.Set) (bool, error)
	// LoadState and SaveState keep the volunteer's state between runs.
	LoadState() ([]byte, error)
	SaveState(b []byte) error
}

// Report is what one refresh did.
type Report struct {
	Started, Ended time.Time
	Lists          int   // Packages lists read
	Selected       int   // files in the selection
	SelectedBytes  int64 //
	LeftOut        int   // selected files that did not fit the budget
	Fetched        int   // files downloaded now
	FetchedBytes   int64
	FromPeers      int // of the files downloaded: from peers only
	FromMirror     int // from the mirror only
	FromBoth       int // from both
	Stored         int // selected files that were stored already
	Removed        int // files removed for leaving the selection
	RemovedBytes   int64
	Errors         []string
}

func (r *Report) errorf(format string, a ...any) {
	if len(r.Errors) < 100 {
		r.Errors = append(r.Errors, fmt.Sprintf(format, a...))
	}
}

// Volunteer keeps a partial mirror in the daemon's cache. Safe for
// concurrent use; one refresh runs at a time.
type Volunteer struct {
	cfg   Config
	d     Daemon
	clk   clock.Clock
	log   *slog.Logger
	pacer *pacer // nil: no rate limit

	run sync.Mutex // one refresh at a time
	st  *state     // guarded by run

	mu     sync.Mutex
	last   Report
	cycles int
}

// New returns a volunteer; Run refreshes it on schedule.
func New(cfg Config, d Daemon) (*Volunteer, error) {
	cfg.fill()
	if len(cfg.Sources) == 0 {
		return nil, errors.New("volunteer: no mirror and suite to hold")
	}
	if len(cfg.Architectures) == 0 {
		return nil, errors.New("volunteer: no architecture to hold")
	}
	for _, s := range cfg.Sources {
		if s.Mirror == "" || len(s.Suites) == 0 {
			return nil, fmt.Errorf("volunteer: %q: a mirror needs at least one suite", s.Mirror)
		}
	}
	v := &Volunteer{cfg: cfg, d: d, clk: cfg.Clock, log: cfg.Logger}
	if cfg.Rate > 0 {
		v.pacer = newPacer(cfg.Clock, cfg.Rate)
	}
	b, err := d.LoadState()
	if err != nil {
		v.log.Warn("volunteer state unreadable; starting afresh", "err", err)
	}
	if v.st, err = parseState(b); err != nil {
		v.log.Warn("volunteer state", "err", err)
	}
	return v, nil
}

// Last is the report of the last refresh, and how many have run.
func (v *Volunteer) Last() (Report, int) {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.last, v.cycles
}

// firstDelay bounds the wait before the first refresh after a start: soon,
// but spread, so a fleet of volunteers restarted together does not ask the
// mirror at one moment.
const firstDelay = 5 * time.Minute

// Run refreshes on schedule until ctx ends: first within
// min(Refresh/10, 5 min) of the start, then every Refresh ±10%.
func (v *Volunteer) Run(ctx context.Context) {
	wait := time.Duration(rand.Int64N(int64(min(v.cfg.Refresh/10, firstDelay)) + 1))
	for {
		if !clock.Sleep(ctx, v.clk, wait) {
			return
		}
		rep := v.Refresh(ctx)
		if ctx.Err() != nil {
			return
		}
		lvl := slog.LevelInfo
		if len(rep.Errors) > 0 {
			lvl = slog.LevelWarn
		}
		v.log.Log(ctx, lvl, "volunteer refresh", "lists", rep.Lists, "selected", rep.Selected, "selected_bytes", rep.SelectedBytes,
			"left_out", rep.LeftOut, "fetched", rep.Fetched, "fetched_bytes", rep.FetchedBytes, "from_peers", rep.FromPeers,
			"from_mirror", rep.FromMirror, "from_both", rep.FromBoth, "stored", rep.Stored, "removed", rep.Removed,
			"errors", len(rep.Errors), "first_error", firstOf(rep.Errors), "took", rep.Ended.Sub(rep.Started).Round(time.Millisecond))
		jitter := time.Duration(rand.Int64N(int64(v.cfg.Refresh/5)+1)) - v.cfg.Refresh/10
		wait = v.cfg.Refresh + jitter
	}
}

func firstOf(s []string) string {
	if len(s) == 0 {
		return ""
	}
	return s[0]
}

// candidate is one selected file.
type candidate struct {
	mirror   string
	pkg      Package
	key      string // mirror/filename
	first    time.Time
	priority int
}

// Refresh fetches the indexes from the mirror, works out the selection,
// removes what left it and fetches what is missing. It returns when done or
// when ctx ends.
func (v *Volunteer) Refresh(ctx context.Context) Report {
	v.run.Lock()
	defer v.run.Unlock()
	now := v.clk.Now()
	rep := Report{Started: now}
	cands := map[string]*candidate{}
	lists := map[string]bool{}
	complete := true // every list was read: only then is anything removed
	for _, src := range v.cfg.Sources {
		for _, suite := range src.Suites {
			rel, err := v.d.UpdateRelease(ctx, src.Mirror, suite)
			if err != nil {
				rep.errorf("%s %s: Release: %v", src.Mirror, suite, err)
				complete = false
				continue
			}
			byHash := acquireByHash(rel)
			for _, comp := range v.cfg.Components {
				for _, arch := range v.cfg.Architectures {
					list := strings.Join([]string{src.Mirror, suite, comp, arch}, " ")
					lists[list] = true
					if err := v.readList(ctx, src.Mirror, suite, comp, arch, byHash, list, now, cands); err != nil {
						rep.errorf("%s %s %s %s: %v", src.Mirror, suite, comp, arch, err)
						complete = false
						continue
					}
					rep.Lists++
				}
			}
			if ctx.Err() != nil {
				return v.finish(rep)
			}
		}
	}
	if v.cfg.NewWithin > 0 {
		v.st.prune(now, max(v.cfg.NewWithin, 30*24*time.Hour), lists)
	} else {
		clear(v.st.Lists)
		clear(v.st.FirstSeen)
	}

	sel := v.choose(cands, &rep)
	if complete {
		v.evict(sel, &rep)
	} else {
		rep.errorf("nothing removed: not every list could be read")
	}
	v.fetchAll(ctx, sel, &rep)
	return v.finish(rep)
}

func (v *Volunteer) finish(rep Report) Report {
	if err := v.d.SaveState(v.st.marshal()); err != nil {
		rep.errorf("saving the state: %v", err)
	}
	rep.Ended = v.clk.Now()
	v.mu.Lock()
	v.last = rep
	v.cycles++
	v.mu.Unlock()
	return rep
}

// acquireByHash reads "Acquire-By-Hash: yes" from a Release file.
func acquireByHash(rel []byte) bool {
	for _, line := range strings.Split(string(rel), "\n") {
		name, value, ok := strings.Cut(line, ":")
		if ok && strings.EqualFold(strings.TrimSpace(name), "Acquire-By-Hash") {
			return strings.EqualFold(strings.TrimSpace(value), "yes")
		}
	}
	return false
}

// packagesNames are the names of a binary list, best compression first.
var packagesNames = []string{"Packages.xz", "Packages.gz", "Packages.bz2", "Packages.zst", "Packages"}

// readList fetches one Packages list (from peers if they have it, as any
// hashed file) and adds its selected packages to cands.
func (v *Volunteer) readList(ctx context.Context, mirror, suite, comp, arch string, byHash bool, list string, now time.Time, cands map[string]*candidate) error {
	dir := path.Join("dists", suite, comp, "binary-"+arch)
	var name string
	var d digest.Set
	for _, n := range packagesNames {
		if ds, ok := v.d.Lookup(mirror, path.Join(dir, n)); ok && ds.Size >= 0 {
			name, d = n, ds
			break
		}
	}
	if name == "" {
		return errors.New("its Release lists no Packages file")
	}
	fetchPath := path.Join(dir, name)
	if h := d.Get(digest.SHA256); byHash && h != nil {
		// As apt does: a mirror halfway through a sync serves the new
		// Packages.xz under the old name, but by-hash names never change.
		fetchPath = path.Join(dir, "by-hash", "SHA256", fmt.Sprintf("%x", h))
	}
	f, err := v.d.Fetch(ctx, mirror, fetchPath, nil)
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	rc, err := v.d.Open(&f.Digest)
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	defer rc.Close()
	r, done, err := aptindex.Decompress(name, rc)
	if err != nil {
		return err
	}
	var keys []string
	err = ReadPackages(r, func(p *Package) {
		key := mirror + "/" + p.Filename
		keys = append(keys, key)
		if !v.passes(p) {
			return
		}
		if _, dup := cands[key]; !dup {
			cands[key] = &candidate{mirror: mirror, pkg: *p, key: key, priority: priorityRank(p.Priority)}
		}
	})
	if cerr := done(err != nil); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if v.cfg.NewWithin > 0 {
		v.st.observe(list, keys, now)
	}
	return nil
}

// passes applies the filters that do not depend on time.
func (v *Volunteer) passes(p *Package) bool {
	if len(v.cfg.Packages) > 0 && !slices.Contains(v.cfg.Packages, p.Name) {
		return false
	}
	if len(v.cfg.Priorities) > 0 && !slices.Contains(v.cfg.Priorities, p.Priority) {
		return false
	}
	if len(v.cfg.Sections) > 0 {
		short := p.Section
		if i := strings.LastIndexByte(short, '/'); i >= 0 {
			short = short[i+1:]
		}
		if !slices.Contains(v.cfg.Sections, p.Section) && !slices.Contains(v.cfg.Sections, short) {
			return false
		}
	}
	return true
}

var priorities = []string{"required", "important", "standard", "optional", "extra"}

func priorityRank(p string) int {
	if i := slices.Index(priorities, p); i >= 0 {
		return i
	}
	return len(priorities)
}

// choose applies the "new" filter and the budget: newest first, then by
// priority and name, as long as the files fit.
func (v *Volunteer) choose(cands map[string]*candidate, rep *Report) []*candidate {
	now := v.clk.Now()
	var all []*candidate
	for _, c := range cands {
		if v.cfg.NewWithin > 0 {
			c.first = v.st.firstSeen(c.key)
			if c.first.IsZero() || now.Sub(c.first) >= v.cfg.NewWithin {
				continue
			}
		}
		all = append(all, c)
	}
	slices.SortFunc(all, func(a, b *candidate) int {
		if c := b.first.Compare(a.first); c != 0 {
			return c
		}
		if a.priority != b.priority {
			return a.priority - b.priority
		}
		return strings.Compare(a.key, b.key)
	})
	var sel []*candidate
	var total int64
	for _, c := range all {
		if v.cfg.Budget > 0 && total+c.pkg.Size > v.cfg.Budget {
			rep.LeftOut++
			continue
		}
		total += c.pkg.Size
		sel = append(sel, c)
	}
	rep.Selected, rep.SelectedBytes = len(sel), total
	return sel
}

// evict removes the files this volunteer fetched that left the selection.
func (v *Volunteer) evict(sel []*candidate, rep *Report) {
	keep := make(map[string]bool, len(sel))
	for _, c := range sel {
		keep[c.key] = true
	}
	for key, h := range v.st.Held {
		if keep[key] {
			continue
		}
		var d digest.Set
		d.Size = h.Size
		if d.PutHex(digest.SHA256, h.SHA256) != nil {
			delete(v.st.Held, key)
			continue
		}
		removed, err := v.d.Remove(&d)
		if err != nil {
			rep.errorf("removing %s: %v", key, err) // in use: next time
			continue
		}
		delete(v.st.Held, key)
		if removed {
			rep.Removed++
			rep.RemovedBytes += h.Size
		}
	}
}

// fetchAll fetches the selection, Parallel files at a time.
func (v *Volunteer) fetchAll(ctx context.Context, sel []*candidate, rep *Report) {
	var pace func(context.Context, int) error
	if v.pacer != nil {
		pace = v.pacer.wait
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	slots := make(chan struct{}, v.cfg.Parallel)
	for _, c := range sel {
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		wg.Go(func() {
			defer func() { <-slots }()
			f, err := v.d.Fetch(ctx, c.mirror, c.pkg.Filename, pace)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				rep.errorf("%s: %v", c.key, err)
				return
			}
			if !f.Downloaded {
				rep.Stored++
				return
			}
			v.st.Held[c.key] = heldFile{SHA256: fmt.Sprintf("%x", f.Digest.Get(digest.SHA256)), Size: f.Digest.Size}
			rep.Fetched++
			rep.FetchedBytes += f.Digest.Size
			switch f.Source {
			case "peers":
				rep.FromPeers++
			case "mirror":
				rep.FromMirror++
			default:
				rep.FromBoth++
			}
		})
	}
	wg.Wait()
}
