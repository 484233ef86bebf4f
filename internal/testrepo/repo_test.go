package testrepo

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/apt-p2p/apt-p2p/wire"
)

func TestPieces(t *testing.T) {
	for _, c := range []struct {
		size int64
		n    int
	}{{1, 1}, {PieceSize, 1}, {PieceSize + 1, 2}, {70 * PieceSize, 70}, {70*PieceSize + 1, 71}} {
		if got := Pieces(c.size); got != c.n {
			t.Errorf("Pieces(%d) = %d, want %d", c.size, got, c.n)
		}
	}
}

// parseStanzas reads deb822 paragraphs (no continuation handling beyond skipping them).
func parseStanzas(t *testing.T, b []byte) []map[string]string {
	t.Helper()
	var out []map[string]string
	cur := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := sc.Text()
		if line == "" {
			if len(cur) > 0 {
				out = append(out, cur)
				cur = map[string]string{}
			}
			continue
		}
		if line[0] == ' ' {
			continue
		}
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			t.Fatalf("bad line %q", line)
		}
		cur[k] = strings.TrimSpace(v)
	}
	if len(cur) > 0 {
		out = append(out, cur)
	}
	return out
}

func sha256File(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func TestBuildDefault(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "debian")
	r, err := Build(dir, Options{ByHash: true})
	if err != nil {
		t.Fatal(err)
	}
	specs := DefaultPackages()
	if len(r.Packages) != len(specs) {
		t.Fatalf("%d packages, want %d", len(r.Packages), len(specs))
	}
	forms := map[wire.ValueForm]int{}
	for _, s := range specs {
		p := r.Package(s.Name)
		if p == nil {
			t.Fatalf("package %s missing", s.Name)
		}
		if p.Size > s.Size || p.Size < s.Size-12<<10 {
			t.Errorf("%s: %d bytes, asked for %d", p.Name, p.Size, s.Size)
		}
		st, err := os.Stat(p.Path)
		if err != nil || st.Size() != p.Size {
			t.Errorf("%s: on disk %v %v, recorded %d", p.Name, st, err, p.Size)
		}
		if got := sha256File(t, p.Path); got != p.SHA256 {
			t.Errorf("%s: SHA256 %s, recorded %s", p.Name, got, p.SHA256)
		}
		if want := "pool/main/p/" + p.Name + "/" + p.Name + "_1.0-1_amd64.deb"; p.Filename != want {
			t.Errorf("Filename %s, want %s", p.Filename, want)
		}
		// dpkg-deb itself must accept the archive and see our control fields.
		out, err := exec.Command("dpkg-deb", "--field", p.Path, "Package", "Version", "Architecture").CombinedOutput()
		if err != nil {
			t.Fatalf("dpkg-deb --field %s: %v\n%s", p.Path, err, out)
		}
		if want := "Package: " + p.Name + "\nVersion: 1.0-1\nArchitecture: amd64\n"; string(out) != want {
			t.Errorf("dpkg-deb fields %q, want %q", out, want)
		}
		forms[p.Form()]++
	}
	for _, f := range []wire.ValueForm{wire.FormContact, wire.FormInline, wire.FormHash, wire.FormLink} {
		if forms[f] == 0 {
			t.Errorf("no package of form %v", f)
		}
	}

	bin := filepath.Join(dir, "dists", "stable", "main", "binary-amd64")
	plain, err := os.ReadFile(filepath.Join(bin, "Packages"))
	if err != nil {
		t.Fatal(err)
	}
	stanzas := parseStanzas(t, plain)
	if len(stanzas) != len(r.Packages) {
		t.Fatalf("Packages has %d stanzas, want %d", len(stanzas), len(r.Packages))
	}
	for _, st := range stanzas {
		p := r.Package(st["Package"])
		if p == nil {
			t.Fatalf("Packages names unknown package %q", st["Package"])
		}
		if st["Filename"] != p.Filename || st["Size"] != strconv.FormatInt(p.Size, 10) ||
			st["SHA256"] != p.SHA256 || st["SHA1"] != p.SHA1 || st["MD5sum"] != p.MD5 {
			t.Errorf("stanza %v does not match %+v", st, *p)
		}
	}
	// The compressed indexes must decompress (with the real tools) to the same bytes.
	for _, c := range []struct{ file, tool string }{{"Packages.gz", "gzip"}, {"Packages.xz", "xz"}} {
		out, err := exec.Command(c.tool, "-dc", filepath.Join(bin, c.file)).Output()
		if err != nil {
			t.Fatalf("%s -dc %s: %v", c.tool, c.file, err)
		}
		if !bytes.Equal(out, plain) {
			t.Errorf("%s does not decompress to Packages", c.file)
		}
	}
	gz, _ := os.Open(filepath.Join(bin, "Packages.gz"))
	zr, err := gzip.NewReader(gz)
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := io.ReadAll(zr); !bytes.Equal(b, plain) {
		t.Error("Packages.gz differs")
	}
	gz.Close()

	// Release lists every index with correct hashes, and by-hash copies exist.
	rel, err := os.ReadFile(filepath.Join(dir, "dists", "stable", "Release"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(rel, []byte("\nAcquire-By-Hash: yes\n")) || !bytes.Contains(rel, []byte("\nSuite: stable\n")) {
		t.Errorf("Release lacks fields:\n%s", rel)
	}
	for _, f := range r.Indexes {
		p := filepath.Join(dir, "dists", "stable", filepath.FromSlash(f.Name))
		if got := sha256File(t, p); got != f.SHA256 {
			t.Errorf("%s: SHA256 %s, Release says %s", f.Name, got, f.SHA256)
		}
		line := " " + f.SHA256 + " " + strings.Repeat(" ", 16-len(strconv.FormatInt(f.Size, 10))) + strconv.FormatInt(f.Size, 10) + " " + f.Name + "\n"
		if !bytes.Contains(rel, []byte(line)) {
			t.Errorf("Release lacks %q", line)
		}
		bh := filepath.Join(filepath.Dir(p), "by-hash", "SHA256", f.SHA256)
		if got := sha256File(t, bh); got != f.SHA256 {
			t.Errorf("by-hash copy of %s has SHA256 %s", f.Name, got)
		}
	}

	if _, err := exec.LookPath("gpg"); err != nil {
		if r.Signed {
			t.Fatal("Signed without gpg")
		}
		return
	}
	if !r.Signed {
		t.Fatal("gpg is installed but the repository is not signed")
	}
	// gpgv, as apt uses it, must accept both signatures with the exported key.
	relPath := filepath.Join(dir, "dists", "stable", "Release")
	for _, args := range [][]string{
		{"--keyring", r.KeyringPath, filepath.Join(dir, "dists", "stable", "InRelease")},
		{"--keyring", r.KeyringPath, relPath + ".gpg", relPath},
	} {
		if out, err := exec.Command("gpgv", args...).CombinedOutput(); err != nil {
			t.Errorf("gpgv %v: %v\n%s", args, err, out)
		}
	}
	// Builds share the process's key unless FreshKey.
	again, err := Build(t.TempDir(), Options{Packages: specs[:1]})
	if err != nil {
		t.Fatal(err)
	}
	fresh, err := Build(t.TempDir(), Options{Packages: specs[:1], FreshKey: true})
	if err != nil {
		t.Fatal(err)
	}
	k1, _ := os.ReadFile(r.KeyringPath)
	k2, _ := os.ReadFile(again.KeyringPath)
	k3, _ := os.ReadFile(fresh.KeyringPath)
	if len(k1) == 0 || !bytes.Equal(k1, k2) || bytes.Equal(k1, k3) {
		t.Errorf("keyrings: shared equal %v, fresh differs %v", bytes.Equal(k1, k2), !bytes.Equal(k1, k3))
	}

	// And reject a tampered Release.
	if err := os.WriteFile(relPath, append(rel, "X-Tampered: yes\n"...), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := exec.Command("gpgv", "--keyring", r.KeyringPath, relPath+".gpg", relPath).Run(); err == nil {
		t.Error("gpgv accepted a tampered Release")
	}
}

func TestBuildDeterministic(t *testing.T) {
	specs := []PackageSpec{{Name: "a-one", Size: 64 << 10}, {Name: "libzz", Version: "2:3.4-5", Size: 600 << 10}}
	build := func(seed uint64) *Repo {
		r, err := Build(t.TempDir(), Options{Packages: specs, Seed: seed, Unsigned: true})
		if err != nil {
			t.Fatal(err)
		}
		if r.Signed || r.KeyringPath != "" {
			t.Fatal("Unsigned repository is signed")
		}
		return r
	}
	a, b, c := build(7), build(7), build(8)
	for i := range a.Packages {
		if a.Packages[i].SHA256 != b.Packages[i].SHA256 {
			t.Errorf("%s: same seed, different bytes", a.Packages[i].Name)
		}
		if a.Packages[i].SHA256 == c.Packages[i].SHA256 {
			t.Errorf("%s: different seeds, same bytes", a.Packages[i].Name)
		}
	}
	// Epochs stay out of pool names; lib packages get the four-letter pool directory.
	if p := a.Package("libzz"); p == nil || p.Filename != "pool/main/libz/libzz/libzz_3.4-5_amd64.deb" || p.Form() != wire.FormInline {
		t.Errorf("libzz: %+v", p)
	}
}

func TestSeries(t *testing.T) {
	specs := append(Series("many", 6, 30<<10), PackageSpec{Name: "one-more", Size: 40 << 10})
	r, err := Build(t.TempDir(), Options{Packages: specs, Unsigned: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Packages) != 7 || r.Package("many-00") == nil || r.Package("many-05") == nil {
		t.Fatalf("packages: %v", r.Names())
	}
	seen := map[string]bool{}
	for _, p := range r.Packages {
		if seen[p.SHA256] {
			t.Errorf("%s has the same bytes as another package", p.Name)
		}
		seen[p.SHA256] = true
	}
}

func TestBuildBadSpec(t *testing.T) {
	for _, specs := range [][]PackageSpec{
		{{Name: "Upper", Size: 50 << 10}},
		{{Name: "dup", Size: 50 << 10}, {Name: "dup", Size: 60 << 10}},
		{{Name: "zero", Size: 0}},
		{{Name: "toosmall", Size: 1000}},
	} {
		if _, err := Build(t.TempDir(), Options{Packages: specs, Unsigned: true}); !errors.Is(err, ErrBadSpec) {
			t.Errorf("%v: err %v, want ErrBadSpec", specs, err)
		}
	}
}

// Packages of other components and architectures get their own Packages files,
// all listed in Release, and carry their priority and section.
func TestComponentsAndArchitectures(t *testing.T) {
	if _, err := lookPath("dpkg-deb"); err != nil {
		t.Fatal("dpkg-deb is required (make deps installs it)")
	}
	repo, err := Build(filepath.Join(t.TempDir(), "debian"), Options{Unsigned: true, Packages: []PackageSpec{
		{Name: "in-main", Size: 30 << 10, Priority: "important", Section: "net"},
		{Name: "in-contrib", Size: 30 << 10, Component: "contrib", Section: "contrib/games"},
		{Name: "for-i386", Size: 30 << 10, Arch: "i386"},
	}})
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(repo.Components, " ") + "/" + strings.Join(repo.Archs, " "); got != "main contrib/amd64 i386" {
		t.Fatalf("components/architectures %q", got)
	}
	rel, err := os.ReadFile(filepath.Join(repo.Dir, repo.DistPath("Release")))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Architectures: amd64 i386\n", "Components: main contrib\n"} {
		if !bytes.Contains(rel, []byte(want)) {
			t.Errorf("Release lacks %q", want)
		}
	}
	want := map[string][]string{ // list → packages in it
		"main/binary-amd64":    {"in-main"},
		"contrib/binary-amd64": {"in-contrib"},
		"main/binary-i386":     {"for-i386"},
		"contrib/binary-i386":  nil,
	}
	for list, names := range want {
		if !bytes.Contains(rel, []byte(" "+list+"/Packages.xz\n")) {
			t.Errorf("Release does not list %s/Packages.xz", list)
		}
		b, err := os.ReadFile(filepath.Join(repo.Dir, repo.DistPath(list+"/Packages")))
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, st := range parseStanzas(t, b) {
			got = append(got, st["Package"])
			p := repo.Package(st["Package"])
			if p == nil || st["Filename"] != p.Filename || st["Priority"] != p.Priority || st["Section"] != p.Section ||
				!strings.HasPrefix(p.Filename, "pool/"+p.Component+"/") || !strings.HasSuffix(p.Filename, "_"+p.Arch+".deb") {
				t.Errorf("%s: stanza %v, package %+v", list, st, p)
			}
		}
		if strings.Join(got, " ") != strings.Join(names, " ") {
			t.Errorf("%s lists %v, want %v", list, got, names)
		}
	}
	if p := repo.Package("in-main"); p.Priority != "important" || p.Section != "net" {
		t.Errorf("in-main: %+v", p)
	}
	if p := repo.Package("for-i386"); p.Priority != "optional" || p.Section != "misc" || p.Component != "main" {
		t.Errorf("defaults: %+v", p)
	}
}
