package node

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"

	"github.com/apt-p2p/apt-p2p/internal/aptindex"
	"github.com/apt-p2p/apt-p2p/internal/clock"
	"github.com/apt-p2p/apt-p2p/internal/digest"
	"github.com/apt-p2p/apt-p2p/internal/download"
	"github.com/apt-p2p/apt-p2p/internal/mirrorurl"
	"github.com/apt-p2p/apt-p2p/internal/volunteer"
	"github.com/apt-p2p/apt-p2p/piecestore"
)

// Option changes how New builds a Node.
type Option func(*options)

type options struct {
	volunteerClock clock.Clock
	mirrorClock    clock.Clock
}

// WithVolunteerClock runs the volunteer's schedule and dates on c (tests
// drive a fake one across days).
func WithVolunteerClock(c clock.Clock) Option { return func(o *options) { o.volunteerClock = c } }

// WithMirrorClock dates the mirror cache's revalidations on c: how long a
// Release or InRelease fetched from the mirror counts as fresh (tests move a
// fake one past that instead of sleeping).
func WithMirrorClock(c clock.Clock) Option { return func(o *options) { o.mirrorClock = c } }

// Volunteer is the preheat mode, nil when VOLUNTEER_SOURCES is empty.
func (n *Node) Volunteer() *volunteer.Volunteer { return n.volunteer }

// startVolunteer checks the volunteer's mirrors and starts its schedule.
func (n *Node) startVolunteer(o *options) error {
	vc := n.cfg.Volunteer
	var srcs []volunteer.Source
	for _, s := range vc.Sources {
		for _, suite := range s.Suites {
			if _, err := mirrorurl.ParsePrefix("/" + s.Mirror + "/dists/" + suite + "/InRelease"); err != nil {
				return fmt.Errorf("VOLUNTEER_SOURCES: %s %s: %w", s.Mirror, suite, err)
			}
		}
		srcs = append(srcs, volunteer.Source{Mirror: s.Mirror, Suites: s.Suites})
	}
	v, err := volunteer.New(volunteer.Config{
		Sources:       srcs,
		Components:    vc.Components,
		Architectures: vc.Architectures,
		Priorities:    vc.Priorities,
		Sections:      vc.Sections,
		Packages:      vc.Packages,
		NewWithin:     vc.New,
		Budget:        vc.Budget,
		Rate:          vc.Rate,
		Refresh:       vc.Refresh,
		Clock:         o.volunteerClock,
		Logger:        n.log.With("part", "volunteer"),
	}, volunteerDaemon{n})
	if err != nil {
		return err
	}
	n.volunteer = v
	n.wg.Go(func() { v.Run(n.ctx) })
	return nil
}

// volunteerDaemon is what the volunteer asks of the node: the same mirror
// cache, index and downloads apt's requests use.
type volunteerDaemon struct{ n *Node }

func (vd volunteerDaemon) url(mirror, p string) (mirrorurl.URL, string, string, string, error) {
	u, err := mirrorurl.ParsePrefix("/" + mirror + "/" + p)
	if err != nil {
		return u, "", "", "", err
	}
	site := u.Site()
	base, path := aptindex.SplitPath(site, u.Path, vd.n.index.BaseDirs)
	return u, site, base, path, nil
}

// maxReleaseFile bounds a Release read for the volunteer (Debian's are a few
// hundred KiB; the index refuses more than 64 MiB).
const maxReleaseFile = 64 << 20

func (vd volunteerDaemon) UpdateRelease(ctx context.Context, mirror, suite string) ([]byte, error) {
	n := vd.n
	var last error
	for _, name := range []string{"InRelease", "Release"} {
		u, site, base, path, err := vd.url(mirror, "dists/"+suite+"/"+name)
		if err != nil {
			return nil, err
		}
		// max-age 0, as apt-get update asks: revalidated with the mirror.
		cf, err := n.mirrors.get(ctx, u, 0)
		if err != nil {
			return nil, err
		}
		if cf.status != 0 {
			last = fmt.Errorf("mirror %s answered %d %s for %s", u.Addr(), cf.status, http.StatusText(cf.status), u.Path)
			continue
		}
		if cf.fetched {
			n.noteUnhashed(u, site, base, path, &cf)
		}
		f, err := os.Open(cf.path)
		if err != nil {
			return nil, err
		}
		b, err := io.ReadAll(io.LimitReader(f, maxReleaseFile))
		f.Close()
		return b, err
	}
	return nil, last
}

func (vd volunteerDaemon) Lookup(mirror, p string) (digest.Set, bool) {
	_, site, base, path, err := vd.url(mirror, p)
	if err != nil {
		return digest.Set{}, false
	}
	d, ok := vd.n.index.Lookup(site, base, path)
	return d, ok && d.Size >= 0 && d.Have != 0
}

func (vd volunteerDaemon) Fetch(ctx context.Context, mirror, p string, pace func(context.Context, int) error) (volunteer.Fetched, error) {
	n := vd.n
	u, site, base, path, err := vd.url(mirror, p)
	if err != nil {
		return volunteer.Fetched{}, err
	}
	d, ok := n.index.Lookup(site, base, path)
	if !ok || d.Size < 0 || d.Have == 0 {
		return volunteer.Fetched{}, fmt.Errorf("%s: the index has no hash for it", u.Path)
	}
	stored := func() (volunteer.Fetched, error) {
		info, ok := n.store.Lookup(&d)
		if !ok {
			return volunteer.Fetched{}, fmt.Errorf("%s: not stored after its download", u.Path)
		}
		if n.index.IsIndex(site, base, path) && !n.registered(indexFile{Site: site, BaseDir: base, Path: path}) {
			n.registerIndex(&info, site, base, path)
		}
		n.notePath(&info, site, base, path)
		return volunteer.Fetched{Digest: info.Digest}, nil
	}
	if _, ok := n.store.Lookup(&d); ok {
		return stored()
	}
	req := n.request(u, site, base, path, d)
	req.Pace = pace
	f, err := n.downloads.Start(req)
	if errors.Is(err, download.ErrStored) {
		return stored()
	}
	if err != nil {
		return volunteer.Fetched{}, err
	}
	select {
	case <-f.Done():
	case <-ctx.Done():
		return volunteer.Fetched{}, ctx.Err()
	}
	if err := f.Failure(); err != nil {
		return volunteer.Fetched{}, err
	}
	info, ok := n.store.Lookup(&d)
	if !ok {
		return volunteer.Fetched{}, fmt.Errorf("%s: not stored after its download", u.Path)
	}
	return volunteer.Fetched{Digest: info.Digest, Downloaded: true, Source: string(f.Source())}, nil
}

// storedReader is a stored file as an io.ReadCloser.
type storedReader struct {
	*io.SectionReader
	r *piecestore.Reader
}

func (s storedReader) Close() error { return s.r.Close() }

func (vd volunteerDaemon) Open(d *digest.Set) (io.ReadCloser, error) {
	info, ok := vd.n.store.Lookup(d)
	if !ok {
		return nil, piecestore.ErrNotFound
	}
	r, err := vd.n.store.OpenFile(&info)
	if err != nil {
		return nil, err
	}
	return storedReader{io.NewSectionReader(r, 0, r.Size()), r}, nil
}

func (vd volunteerDaemon) Remove(d *digest.Set) (bool, error) { return vd.n.store.Remove(d) }

func (vd volunteerDaemon) statePath() string {
	return filepath.Join(vd.n.cfg.CacheDir, "volunteer.json")
}

func (vd volunteerDaemon) LoadState() ([]byte, error) {
	b, err := os.ReadFile(vd.statePath())
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	return b, err
}

// maxVolunteerState bounds the state file written.
const maxVolunteerState = 256 << 20

func (vd volunteerDaemon) SaveState(b []byte) error {
	_, err := writeAtomic(vd.statePath(), bytesReader(b), maxVolunteerState)
	if err != nil {
		return fmt.Errorf("%s (%s bytes): %w", vd.statePath(), strconv.Itoa(len(b)), err)
	}
	return nil
}
