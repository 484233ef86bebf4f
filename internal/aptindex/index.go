package aptindex

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/apt-p2p/apt-p2p/internal/digest"
	"github.com/cespare/xxhash/v2"
)

// Index maps mirror paths to the hashes the apt indexes give for them. It is
// safe for concurrent use: lookups share a read lock, and Add parses without
// holding any lock and then swaps the new entries in.
type Index struct {
	mu    sync.RWMutex
	repos map[repoKey]*repo
	seq   uint64        // guarded by mu
	gen   atomic.Uint64 // changed with mu held for writing, before each change (Generation)

	xzCmd string // xz(1) for decoding .xz, "" for in-process ulikunitz/xz
}

type repoKey struct{ site, baseDir string }

// repo is one (site, baseDir): the Releases and Packages/Sources files of all
// its suites, newest first, so the newest index wins where two disagree.
type repo struct {
	releases []*release
	lists    []*list
	// applied is the Add sequence number last applied to each slot, so a
	// slow Add never overwrites a newer one that finished first (even one
	// that emptied the slot).
	applied map[string]uint64
}

// New returns an empty Index. It decodes xz with the xz(1) program when one is
// on $PATH (see SetXZCommand).
func New() *Index {
	return &Index{repos: map[repoKey]*repo{}, xzCmd: xzPathOnce()}
}

// Generation changes whenever the index may have changed (an Add applied, a Remove). A caller
// that read it before a Lookup may trust that Lookup's answer while Generation still returns the
// same value.
func (ix *Index) Generation() uint64 { return ix.gen.Load() }

// SetXZCommand sets the xz(1) binary used to decode .xz indexes; "" selects
// the in-process decoder (ulikunitz/xz, about half as fast).
func (ix *Index) SetXZCommand(path string) { ix.xzCmd = path }

// IsIndex reports whether Add would parse the file at path: an index by its
// name (see the function IsIndex), or a by-hash path that a Release of the
// repository names as one.
func (ix *Index) IsIndex(site, baseDir, path string) bool {
	k, _, _ := ix.resolve(site, baseDir, path)
	return k != kindNone
}

// resolve finds what index a path is and the slot its entries go into.
// sniff is true for a by-hash path no Release names: its kind is then decided
// from its content by Add.
func (ix *Index) resolve(site, baseDir, p string) (k kind, slot string, sniff bool) {
	if k := classifyName(baseName(p)); k != kindNone {
		return k, slotName(dirName(p), k), false
	}
	dir, t, hx, ok := splitByHash(p)
	if !ok {
		return kindNone, "", false
	}
	var h [64]byte
	if !decodeHex(h[:], hx, int(t)) {
		return kindNone, "", false
	}
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	if rp := ix.repos[repoKey{site, baseDir}]; rp != nil {
		for _, rel := range rp.releases {
			relDir, ok := inDir(dir, rel.dir)
			if !ok {
				continue
			}
			if i, ok := rel.lookupDigest(t, h[:hashLens[t]], relDir); ok {
				name := rel.dir + "/" + rel.names[i]
				if k := classifyName(baseName(name)); k != kindNone {
					return k, slotName(dirName(name), k), false
				}
				return kindNone, "", false
			}
		}
	}
	return kindNone, "", true
}

// inDir returns p relative to dir ("" for dir itself) if p is dir or inside it.
func inDir(p, dir string) (string, bool) {
	if p == dir {
		return "", true
	}
	if len(p) > len(dir) && p[len(dir)] == '/' && strings.HasPrefix(p, dir) {
		return p[len(dir)+1:], true
	}
	return "", false
}

// Add parses the index file at path of the repository (site, baseDir) from r
// and replaces the entries that an earlier Add of the same index (any
// compression of it, or a by-hash copy) gave. Files that are not indexes are
// ignored with a nil error. path is the decoded path inside the repository,
// as SplitPath returns it. r is read to the end (or to the first error).
func (ix *Index) Add(site, baseDir, path string, r io.Reader) error {
	k, slot, sniff := ix.resolve(site, baseDir, path)
	if k == kindNone && !sniff {
		return nil
	}
	ix.mu.Lock()
	ix.seq++
	seq := ix.seq
	ix.mu.Unlock()

	dr, done, err := decompressor(path, r, ix.xzCmd)
	if err != nil {
		return err
	}
	if sniff {
		// A by-hash file no Release names (yet): decide by its first field.
		// It lives in "<index dir>/by-hash/<TYPE>/<hex>".
		pr := &peekReader{r: dr}
		k = pr.sniff()
		dr = pr
		if k == kindNone {
			return done(true)
		}
		dir, _, _, _ := splitByHash(path)
		slot = slotName(dir, k)
	}

	var rel *release
	var l *list
	switch k {
	case kindRelease:
		rel, err = parseRelease(dr, dirName(path))
		if err == nil {
			rel.slot, rel.src, rel.seq = slot, path, seq
		}
	case kindPackages, kindSources:
		var b builder
		if !strings.Contains(slot, "/dists/") {
			if d := strings.TrimPrefix(dirName(slot), "/"); d != "" {
				b.prefix = []byte(d + "/")
			}
		}
		if k == kindPackages {
			err = parsePackages(dr, &b)
		} else {
			err = parseSources(dr, &b)
		}
		if err == nil {
			l = b.finish(slot, path, seq)
		}
	}
	if cerr := done(err != nil); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("aptindex: %s%s: %w", baseDir, path, err)
	}

	ix.mu.Lock()
	defer ix.mu.Unlock()
	ix.gen.Add(1)
	key := repoKey{site, baseDir}
	rp := ix.repos[key]
	if rp == nil {
		rp = &repo{applied: map[string]uint64{}}
		ix.repos[key] = rp
	}
	if rp.applied[slot] > seq {
		return nil // a later Add of the same index finished first
	}
	rp.applied[slot] = seq
	// An index that lists nothing (a per-architecture Release, an empty
	// component's Packages) still replaces what its slot held.
	if rel != nil {
		if i := slices.IndexFunc(rp.releases, func(o *release) bool { return o.slot == slot }); i >= 0 {
			rp.releases = slices.Delete(rp.releases, i, i+1)
		}
		if len(rel.sets) > 0 {
			rp.releases = slices.Insert(rp.releases, 0, rel)
		}
	} else {
		if i := slices.IndexFunc(rp.lists, func(o *list) bool { return o.slot == slot }); i >= 0 {
			rp.lists = slices.Delete(rp.lists, i, i+1)
		}
		if l.n > 0 {
			rp.lists = slices.Insert(rp.lists, 0, l)
		}
	}
	return nil
}

// peekReader lets Add look at the first field of a stream before parsing it.
type peekReader struct {
	r    io.Reader
	head []byte
}

// sniff tells Packages from Sources by the fields of the first paragraph
// (both start with "Package:"; Translation files too): Packages records
// have Filename, Sources records Directory and checksum lists.
func (p *peekReader) sniff() kind {
	buf := make([]byte, 64<<10)
	n, _ := io.ReadFull(p.r, buf)
	p.head = buf[:n]
	para := trimLeftBlank(p.head)
	if i := bytes.Index(para, []byte("\n\n")); i >= 0 {
		para = para[:i]
	}
	for rest := para; len(rest) > 0; {
		var line []byte
		line, rest = nextLine(rest)
		name, _, ok := field(line)
		switch {
		case !ok:
		case is(name, "Filename"):
			return kindPackages
		case is(name, "Directory"), sourcesHashField(name) >= 0:
			return kindSources
		}
	}
	return kindNone
}

func trimLeftBlank(b []byte) []byte {
	for len(b) > 0 && (b[0] == '\n' || b[0] == '\r' || b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	return b
}

func (p *peekReader) Read(b []byte) (int, error) {
	if len(p.head) > 0 {
		n := copy(b, p.head)
		p.head = p.head[n:]
		return n, nil
	}
	return p.r.Read(b)
}

// Remove drops the entries loaded from the index file at path, when the cache
// lets it go. Removing a variant that is not the one loaded (Packages.gz when
// Packages.xz was added last) keeps the entries; removing by the uncompressed
// name (".../Packages", ".../Release") drops whichever variant was loaded.
func (ix *Index) Remove(site, baseDir, path string) {
	k, slot, _ := ix.resolve(site, baseDir, path)
	ix.mu.Lock()
	defer ix.mu.Unlock()
	ix.gen.Add(1)
	rp := ix.repos[repoKey{site, baseDir}]
	if rp == nil {
		return
	}
	// An Add that started before this Remove must not bring the entries back.
	ix.seq++
	match := func(s, src string) bool {
		if src == path || (k != kindNone && s == slot && path == slot) {
			rp.applied[s] = ix.seq
			return true
		}
		return false
	}
	rp.releases = slices.DeleteFunc(rp.releases, func(r *release) bool { return match(r.slot, r.src) })
	rp.lists = slices.DeleteFunc(rp.lists, func(l *list) bool { return match(l.slot, l.src) })
}

// Lookup returns the size and hashes the indexes of the repository give for
// path (decoded, as SplitPath returns it), trying in order:
//   - by-hash paths: the entry the Release names with that hash when it
//     declares Acquire-By-Hash, else just the hash the path carries (size -1);
//   - files a Release lists (Packages*, Sources*, Translation-*, Contents-*,
//     DEP-11, ...);
//   - files a Packages (Filename) or Sources (Directory + name) lists.
//
// ok is false when no current index knows the file. Lookup does not allocate.
func (ix *Index) Lookup(site, baseDir, path string) (digest.Set, bool) {
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	rp := ix.repos[repoKey{site, baseDir}]
	// Most requests are for .deb files under pool/, which neither a Release
	// nor a by-hash path can name: go straight to the lists.
	if strings.HasPrefix(path, "/pool/") {
		if rp == nil {
			return digest.Set{Size: -1}, false
		}
		return rp.lookupList(path)
	}
	if dir, t, hx, ok := splitByHash(path); ok {
		var s digest.Set
		var h [64]byte
		n := hashLens[t]
		if !decodeHex(h[:], hx, int(t)) {
			return digest.Set{Size: -1}, false
		}
		if rp != nil {
			for _, rel := range rp.releases {
				relDir, in := inDir(dir, rel.dir)
				if !in || !rel.byHash {
					continue
				}
				if i, ok := rel.lookupDigest(t, h[:n], relDir); ok {
					return rel.sets[i], true
				}
			}
		}
		s.Size = -1
		_ = s.Put(digest.Type(t), h[:n])
		return s, true
	}
	if rp == nil {
		return digest.Set{Size: -1}, false
	}
	for _, rel := range rp.releases {
		if name, in := inDir(path, rel.dir); in {
			if i, ok := rel.byName[name]; ok {
				return rel.sets[i], true
			}
		}
	}
	return rp.lookupList(path)
}

// lookupList finds a file that a Packages or Sources lists, newest list first.
func (rp *repo) lookupList(path string) (digest.Set, bool) {
	name := strings.TrimPrefix(path, "/")
	h := xxhash.Sum64String(name)
	for _, l := range rp.lists {
		if off, ok := l.find(name, h); ok {
			return l.set(off), true
		}
	}
	return digest.Set{Size: -1}, false
}

// Referenced reports whether any current index lists a file whose hashes
// match d (digest.Set.Matches). Cache eviction uses it to drop first what no
// index refers to any more. The first call after an Add builds a hash table
// for each new Packages or Sources file.
func (ix *Index) Referenced(d *digest.Set) bool {
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	var kb [65]byte
	for _, rp := range ix.repos {
		for _, rel := range rp.releases {
			for t := range 4 {
				h := d.Get(digest.Type(t))
				if h == nil {
					continue
				}
				kb[0] = byte(t)
				n := copy(kb[1:], h)
				for _, i := range rel.byDigest[string(kb[:1+n])] {
					if rel.sets[i].Matches(d) {
						return true
					}
				}
			}
		}
		for _, l := range rp.lists {
			if l.references(d) {
				return true
			}
		}
	}
	return false
}

// BaseDirs lists the base directories with indexes for site, for SplitPath's
// fallback.
func (ix *Index) BaseDirs(site string) []string {
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	var out []string
	for k, rp := range ix.repos {
		if k.site == site && len(rp.releases)+len(rp.lists) > 0 {
			out = append(out, k.baseDir)
		}
	}
	return out
}

// Stats describes what an Index holds.
type Stats struct {
	Repos    int   // (site, baseDir) pairs
	Releases int   // Release/InRelease files
	Lists    int   // Packages and Sources files
	Entries  int   // files the indexes list (Release entries included)
	Bytes    int64 // memory held by the parsed entries (estimate for Releases)
}

// Stats returns counts and memory use.
func (ix *Index) Stats() Stats {
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	var s Stats
	for _, rp := range ix.repos {
		if len(rp.releases)+len(rp.lists) > 0 {
			s.Repos++
		}
		for _, rel := range rp.releases {
			s.Releases++
			s.Entries += len(rel.sets)
			s.Bytes += rel.bytes()
		}
		for _, l := range rp.lists {
			s.Lists++
			s.Entries += l.n
			s.Bytes += l.bytes()
		}
	}
	return s
}

// File is a cached index file for Rebuild.
type File struct {
	Site, BaseDir, Path string // as for Add
	Name                string // where the file is on disk
}

// Rebuild loads cached index files at start-up: Releases first, so that
// by-hash copies of Packages and Sources are recognised by name, then the rest
// in parallel. It carries on past a bad file and returns every error.
func (ix *Index) Rebuild(files []File) error {
	var rels, rest []File
	for _, f := range files {
		if classifyName(baseName(f.Path)) == kindRelease {
			rels = append(rels, f)
		} else {
			rest = append(rest, f)
		}
	}
	var errs []error
	var mu sync.Mutex
	load := func(f File) {
		fh, err := os.Open(f.Name)
		if err == nil {
			err = ix.Add(f.Site, f.BaseDir, f.Path, fh)
			_ = fh.Close()
		}
		if err != nil {
			mu.Lock()
			errs = append(errs, err)
			mu.Unlock()
		}
	}
	for _, f := range rels {
		load(f)
	}
	work := make(chan File)
	var wg sync.WaitGroup
	for range runtime.GOMAXPROCS(0) {
		wg.Go(func() {
			for f := range work {
				load(f)
			}
		})
	}
	for _, f := range rest {
		work <- f
	}
	close(work)
	wg.Wait()
	return errors.Join(errs...)
}
