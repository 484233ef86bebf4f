package testrepo

import (
	"bytes"
	"compress/gzip"
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/ulikunitz/xz"

	"github.com/apt-p2p/apt-p2p/wire"
)

// PieceSize is the piece length of apt-p2p's piece hashes (reference §3.1).
const PieceSize = 512 << 10

// Pieces is the number of PieceSize pieces of a file of size bytes (at least 1).
func Pieces(size int64) int {
	if size <= PieceSize {
		return 1
	}
	return int((size + PieceSize - 1) / PieceSize)
}

// PackageSpec asks for one binary package.
type PackageSpec struct {
	Name    string // Debian package name (lower case, digits, "+-.")
	Version string // default "1.0-1"
	// Size is the wanted size of the .deb file in bytes. The built file is at most
	// Size and less than 12 KiB smaller (dpkg-deb pads tar archives to 10 KiB
	// records); the smallest possible .deb is about 24 KiB.
	Size int64
	// Component and Arch put the package in another component or architecture
	// than Options.Component and Options.Arch (its own Packages list); empty:
	// those.
	Component, Arch string
	// Priority and Section are its control fields; default optional and misc.
	Priority, Section string
}

// DefaultPackages covers every DHT value form (wire.ChooseForm): two
// single-piece files, an inline one (3 pieces), a separate-key one (20 pieces)
// and one over the separate-key limit (72 pieces: over wire.MaxHashPieces = 64
// and over the original's 70), whose piece string goes over HTTP.
func DefaultPackages() []PackageSpec {
	return []PackageSpec{
		{Name: "p2pt-tiny", Size: 40 << 10},
		{Name: "p2pt-small", Size: 300 << 10},
		{Name: "p2pt-inline", Size: 1536 << 10},
		{Name: "p2pt-torrent", Size: 10 << 20},
		{Name: "p2pt-huge", Size: 36 << 20},
	}
}

// Series is n packages "<prefix>-<i>" of size bytes each, for tests of many
// files in one apt command (pipelining, concurrency).
func Series(prefix string, n int, size int64) []PackageSpec {
	specs := make([]PackageSpec, n)
	for i := range specs {
		specs[i] = PackageSpec{Name: fmt.Sprintf("%s-%02d", prefix, i), Size: size}
	}
	return specs
}

// Options configures Build. The zero value builds DefaultPackages into a signed
// (when gpg is installed) "stable" suite with one "main" component for amd64.
type Options struct {
	Suite     string // default "stable"
	Codename  string // default "p2ptest"
	Component string // default "main"
	Arch      string // default "amd64"
	Origin    string // Origin and Label of the Release file; default "apt-p2p-test"

	Packages []PackageSpec // nil means DefaultPackages()
	Seed     uint64        // seeds the payloads: the same seed gives the same .deb bytes

	// ByHash adds "Acquire-By-Hash: yes" to Release and by-hash/<hash>/<hex>
	// copies of the Packages files, as Debian's archive has; apt then fetches the
	// indexes by hash.
	ByHash bool
	// NoSHA1 leaves the SHA1 field out of Packages, as Debian's archive does since
	// bookworm (MD5sum and SHA256 only): apt-p2p then keys files by SHA256.
	NoSHA1 bool
	// Unsigned skips signing even when gpg is available (apt then needs [trusted=yes]).
	Unsigned bool
	// FreshKey signs with a new key instead of the one every Build in this
	// process shares (for tests of a key mismatch).
	FreshKey bool
	// Date is the Release Date; zero means a minute ago (apt rejects a Date in the future).
	Date time.Time
}

// Package is one built .deb.
type Package struct {
	Name, Version, Arch string
	Component           string
	Priority, Section   string
	Filename            string // relative to Repo.Dir, slash-separated, as in the Packages index
	Path                string // the file on disk
	Size                int64
	MD5, SHA1, SHA256   string // lower-case hex
}

// Pieces is the file's piece count.
func (p *Package) Pieces() int { return Pieces(p.Size) }

// Form is the DHT value form the file is announced with (wire.ChooseForm).
func (p *Package) Form() wire.ValueForm { return wire.ChooseForm(p.Pieces()) }

// AptFileName is the name apt gives the file it downloads (apt-get download's
// output, the archives directory): <name>_<version>_<arch>.deb with the
// version's ':' written "%3a". Unlike the pool name it keeps the epoch.
func (p *Package) AptFileName() string {
	return p.Name + "_" + strings.ReplaceAll(p.Version, ":", "%3a") + "_" + p.Arch + ".deb"
}

// Bytes reads the .deb from disk, for byte-for-byte comparison.
func (p *Package) Bytes() ([]byte, error) { return os.ReadFile(p.Path) }

// IndexFile is a file listed in the Release file.
type IndexFile struct {
	Name              string // relative to dists/<suite>/, e.g. "main/binary-amd64/Packages.xz"
	Size              int64
	MD5, SHA1, SHA256 string
}

// Repo is a repository built by Build.
type Repo struct {
	Dir                              string // holds dists/ and pool/
	Suite, Codename, Component, Arch string
	Packages                         []Package   // sorted by name
	Indexes                          []IndexFile // the files Release lists
	// Components and Archs are every component and architecture the
	// packages are in (Component and Arch first).
	Components, Archs []string
	ByHash            bool
	// Signed reports whether InRelease and Release.gpg exist; KeyringPath is then
	// the binary public keyring that verifies them (for apt's signed-by=).
	Signed      bool
	KeyringPath string
}

// Package returns the package called name, or nil.
func (r *Repo) Package(name string) *Package {
	for i := range r.Packages {
		if r.Packages[i].Name == name {
			return &r.Packages[i]
		}
	}
	return nil
}

// Names lists the package names.
func (r *Repo) Names() []string {
	names := make([]string, len(r.Packages))
	for i := range r.Packages {
		names[i] = r.Packages[i].Name
	}
	return names
}

// DistPath is the repository-relative path of a file under dists/<suite>/.
func (r *Repo) DistPath(name string) string { return path.Join("dists", r.Suite, name) }

// SourcesLine is the one-line-style sources.list entry for this repository at
// base, the URL of the directory that holds dists/ and pool/ (for example
// "http://127.0.0.1:8080/debian", or the same behind an apt-p2p prefix
// "http://127.0.0.2:9977/127.0.0.1:8080/debian"). It pins the key with signed-by=
// when the repository is signed and uses trusted=yes otherwise.
func (r *Repo) SourcesLine(base string) string {
	opt := "trusted=yes"
	if r.Signed {
		opt = "signed-by=" + r.KeyringPath
	}
	return fmt.Sprintf("deb [arch=%s %s] %s %s %s", r.Arch, opt, base, r.Suite, r.Component)
}

// Errors.
var (
	ErrBadSpec   = errors.New("testrepo: bad package spec")
	ErrNoDpkgDeb = errors.New("testrepo: dpkg-deb not found (install dpkg)")
)

// Build creates a repository in dir (created if missing; existing files with the
// same names are overwritten).
func Build(dir string, opts Options) (*Repo, error) {
	if opts.Suite == "" {
		opts.Suite = "stable"
	}
	if opts.Codename == "" {
		opts.Codename = "p2ptest"
	}
	if opts.Component == "" {
		opts.Component = "main"
	}
	if opts.Arch == "" {
		opts.Arch = "amd64"
	}
	if opts.Origin == "" {
		opts.Origin = "apt-p2p-test"
	}
	if opts.Packages == nil {
		opts.Packages = DefaultPackages()
	}
	if opts.Date.IsZero() {
		opts.Date = time.Now().Add(-time.Minute)
	}
	dir, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	r := &Repo{Dir: dir, Suite: opts.Suite, Codename: opts.Codename, Component: opts.Component,
		Arch: opts.Arch, ByHash: opts.ByHash}

	seen := map[string]bool{}
	for _, s := range opts.Packages {
		if strings.ContainsAny(s.Component+s.Arch, "/ \t\n") {
			return nil, fmt.Errorf("%w: %s: component %q or architecture %q", ErrBadSpec, s.Name, s.Component, s.Arch)
		}
		if !validName(s.Name) || seen[s.Name] {
			return nil, fmt.Errorf("%w: name %q (empty, invalid or repeated)", ErrBadSpec, s.Name)
		}
		seen[s.Name] = true
	}
	if _, err := lookPath("dpkg-deb"); err != nil {
		return nil, ErrNoDpkgDeb
	}
	stage, err := os.MkdirTemp("", "testrepo-stage")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(stage)
	for _, s := range opts.Packages {
		p, err := buildDeb(dir, stage, opts, s)
		if err != nil {
			return nil, err
		}
		r.Packages = append(r.Packages, p)
	}
	slices.SortFunc(r.Packages, func(a, b Package) int { return strings.Compare(a.Name, b.Name) })

	releasePath := filepath.Join(r.Dir, filepath.FromSlash(r.DistPath("Release")))
	var prev time.Time
	if st, err := os.Stat(releasePath); err == nil {
		prev = st.ModTime()
	}
	if err := r.writeIndexes(opts); err != nil {
		return nil, err
	}
	if !opts.Unsigned {
		if _, err := lookPath("gpg"); err == nil {
			if err := r.sign(opts.FreshKey); err != nil {
				return nil, err
			}
		}
	}
	if !r.Signed {
		// A rebuild must not leave an older signed InRelease that apt would prefer.
		os.Remove(filepath.Join(filepath.Dir(releasePath), "InRelease"))
		os.Remove(releasePath + ".gpg")
	}
	if err := r.setMtimes(prev); err != nil {
		return nil, err
	}
	return r, nil
}

// setMtimes gives every index file of this build one timestamp, a whole second
// later than the previous build's. HTTP dates have one-second resolution: a
// rebuild within the same second would otherwise answer apt's
// If-Modified-Since with 304 and apt would keep the old indexes.
func (r *Repo) setMtimes(prev time.Time) error {
	t := time.Now().Truncate(time.Second)
	if !prev.IsZero() && !t.After(prev) {
		t = prev.Truncate(time.Second).Add(time.Second)
	}
	names := []string{"Release", "InRelease", "Release.gpg"}
	for _, f := range r.Indexes {
		names = append(names, f.Name)
	}
	for _, n := range names {
		p := filepath.Join(r.Dir, filepath.FromSlash(r.DistPath(n)))
		if err := os.Chtimes(p, t, t); err != nil && !os.IsNotExist(err) {
			return err
		}
	}
	return nil
}

func validName(n string) bool {
	if len(n) < 2 || !(n[0] >= 'a' && n[0] <= 'z' || n[0] >= '0' && n[0] <= '9') {
		return false
	}
	for _, c := range []byte(n) {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '+' || c == '-' || c == '.') {
			return false
		}
	}
	return true
}

// poolDir is Debian's pool subdirectory for a source name: "libf" for libfoo, else the first letter.
func poolDir(name string) string {
	if strings.HasPrefix(name, "lib") && len(name) > 3 {
		return name[:4]
	}
	return name[:1]
}

// hashes computes the three digests Release and Packages carry.
type hashes struct {
	md5, sha1, sha256 hash.Hash
	n                 int64
}

func newHashes() *hashes {
	return &hashes{md5: md5.New(), sha1: sha1.New(), sha256: sha256.New()}
}

func (h *hashes) Write(p []byte) (int, error) {
	h.md5.Write(p)
	h.sha1.Write(p)
	h.sha256.Write(p)
	h.n += int64(len(p))
	return len(p), nil
}

func (h *hashes) hex() (md5, sha1, sha256 string) {
	return hex.EncodeToString(h.md5.Sum(nil)), hex.EncodeToString(h.sha1.Sum(nil)),
		hex.EncodeToString(h.sha256.Sum(nil))
}

func hashFile(p string) (*hashes, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	h := newHashes()
	if _, err := io.Copy(h, f); err != nil {
		return nil, err
	}
	return h, nil
}

// writeIndexes writes Packages{,.gz,.xz} of every component and
// architecture, the by-hash copies and Release.
func (r *Repo) writeIndexes(opts Options) error {
	r.Components, r.Archs = []string{r.Component}, []string{r.Arch}
	for _, p := range r.Packages {
		if !slices.Contains(r.Components, p.Component) {
			r.Components = append(r.Components, p.Component)
		}
		if !slices.Contains(r.Archs, p.Arch) {
			r.Archs = append(r.Archs, p.Arch)
		}
	}
	for _, comp := range r.Components {
		for _, arch := range r.Archs {
			if err := r.writePackages(opts, comp, arch); err != nil {
				return err
			}
		}
	}
	return r.writeRelease(opts)
}

// writePackages writes the Packages files of one component and architecture.
func (r *Repo) writePackages(opts Options, comp, arch string) error {
	var pk bytes.Buffer
	for i := range r.Packages {
		p := &r.Packages[i]
		if p.Component != comp || p.Arch != arch {
			continue
		}
		ctl, err := os.ReadFile(p.Path + ".control")
		if err != nil {
			return err
		}
		os.Remove(p.Path + ".control")
		pk.Write(bytes.TrimRight(ctl, "\n"))
		if opts.NoSHA1 {
			// As Debian's own Packages files since bookworm: no SHA1 field.
			fmt.Fprintf(&pk, "\nFilename: %s\nSize: %d\nMD5sum: %s\nSHA256: %s\n\n",
				p.Filename, p.Size, p.MD5, p.SHA256)
		} else {
			fmt.Fprintf(&pk, "\nFilename: %s\nSize: %d\nMD5sum: %s\nSHA1: %s\nSHA256: %s\n\n",
				p.Filename, p.Size, p.MD5, p.SHA1, p.SHA256)
		}
	}
	var gz, xzb bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&gz, gzip.BestCompression)
	zw.Write(pk.Bytes())
	if err := zw.Close(); err != nil {
		return err
	}
	xw, err := xz.NewWriter(&xzb)
	if err != nil {
		return err
	}
	xw.Write(pk.Bytes())
	if err := xw.Close(); err != nil {
		return err
	}

	binDir := path.Join(comp, "binary-"+arch)
	files := []struct {
		name string
		data []byte
	}{
		{path.Join(binDir, "Packages"), pk.Bytes()},
		{path.Join(binDir, "Packages.gz"), gz.Bytes()},
		{path.Join(binDir, "Packages.xz"), xzb.Bytes()},
	}
	for _, f := range files {
		full := filepath.Join(r.Dir, filepath.FromSlash(r.DistPath(f.name)))
		if err := writeFile(full, f.data); err != nil {
			return err
		}
		h := newHashes()
		h.Write(f.data)
		idx := IndexFile{Name: f.name, Size: int64(len(f.data))}
		idx.MD5, idx.SHA1, idx.SHA256 = h.hex()
		r.Indexes = append(r.Indexes, idx)
		if opts.ByHash {
			for _, bh := range []struct{ dir, hex string }{{"MD5Sum", idx.MD5}, {"SHA1", idx.SHA1}, {"SHA256", idx.SHA256}} {
				p := filepath.Join(filepath.Dir(full), "by-hash", bh.dir, bh.hex)
				if err := writeFile(p, f.data); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// writeRelease writes the Release file listing every index.
func (r *Repo) writeRelease(opts Options) error {
	var rel bytes.Buffer
	fmt.Fprintf(&rel, "Origin: %s\nLabel: %s\nSuite: %s\nCodename: %s\nDate: %s\nArchitectures: %s\nComponents: %s\n",
		opts.Origin, opts.Origin, r.Suite, r.Codename, opts.Date.UTC().Format(time.RFC1123), strings.Join(r.Archs, " "), strings.Join(r.Components, " "))
	if opts.ByHash {
		rel.WriteString("Acquire-By-Hash: yes\n")
	}
	rel.WriteString("Description: apt-p2p end-to-end test repository\n")
	for _, sec := range []struct {
		name string
		sum  func(*IndexFile) string
	}{
		{"MD5Sum", func(f *IndexFile) string { return f.MD5 }},
		{"SHA1", func(f *IndexFile) string { return f.SHA1 }},
		{"SHA256", func(f *IndexFile) string { return f.SHA256 }},
	} {
		rel.WriteString(sec.name + ":\n")
		for i := range r.Indexes {
			f := &r.Indexes[i]
			fmt.Fprintf(&rel, " %s %16d %s\n", sec.sum(f), f.Size, f.Name)
		}
	}
	return writeFile(filepath.Join(r.Dir, filepath.FromSlash(r.DistPath("Release"))), rel.Bytes())
}

func writeFile(p string, data []byte) error {
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	return os.WriteFile(p, data, 0o644)
}
