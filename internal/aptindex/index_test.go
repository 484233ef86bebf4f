package aptindex

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/apt-p2p/apt-p2p/internal/digest"
)

// only keeps the hashes of the given types (what a Release with those
// sections knows about a file).
func only(s digest.Set, types ...digest.Type) digest.Set {
	o := digest.Set{Size: s.Size}
	for _, t := range types {
		o.Put(t, s.Get(t))
	}
	return o
}

// §6.9 test_extractPath, plus the fallback to a known base directory.
func TestSplitURL(t *testing.T) {
	known := func(site string) []string {
		if site == "mirror.example:80" {
			return []string{"/debian", "/debian/flat", "/deb"}
		}
		return nil
	}
	for _, v := range []struct{ url, site, base, path string }{
		{"http://ftp.us.debian.org/debian/dists/unstable/Release", "ftp.us.debian.org:80", "/debian", "/dists/unstable/Release"},
		{"http://ftp.us.debian.org:16999/debian/pool/d/dpkg/dpkg_1.2.1-1.tar.gz", "ftp.us.debian.org:16999", "/debian", "/pool/d/dpkg/dpkg_1.2.1-1.tar.gz"},
		{"http://debian.camrdale.org/dists/unstable/Release", "debian.camrdale.org:80", "", "/dists/unstable/Release"},
		// The later of the last /dists/ and the last /pool/ wins.
		{"http://m.example/a/pool/debian/dists/sid/InRelease", "m.example:80", "/a/pool/debian", "/dists/sid/InRelease"},
		{"http://m.example/debian/dists/x/pool/main/h/hello/hello.deb", "m.example:80", "/debian/dists/x", "/pool/main/h/hello/hello.deb"},
		// Neither: the longest known base directory that contains the path.
		{"http://mirror.example/debian/flat/Packages.gz", "mirror.example:80", "/debian/flat", "/Packages.gz"},
		{"http://mirror.example/debian/README", "mirror.example:80", "/debian", "/README"},
		{"http://mirror.example/debianx/README", "mirror.example:80", "", "/debianx/README"},
		{"http://[2001:db8::1]/debian/dists/sid/Release", "[2001:db8::1]:80", "/debian", "/dists/sid/Release"},
		{"http://[2001:db8::1]:8080/debian/dists/sid/Release", "[2001:db8::1]:8080", "/debian", "/dists/sid/Release"},
	} {
		site, base, p, err := SplitURL(v.url, known)
		if err != nil || site != v.site || base != v.base || p != v.path {
			t.Errorf("SplitURL(%s) = %q %q %q %v, want %q %q %q", v.url, site, base, p, err, v.site, v.base, v.path)
		}
	}
	for _, bad := range []string{"https://x/dists/a", "http:///dists/a", "ftp.us.debian.org/debian"} {
		if _, _, _, err := SplitURL(bad, nil); !errors.Is(err, ErrBadURL) {
			t.Errorf("SplitURL(%s) error %v, want ErrBadURL", bad, err)
		}
	}
}

func TestIsIndex(t *testing.T) {
	for p, want := range map[string]bool{
		"/dists/sid/Release": true, "/dists/sid/InRelease": true, "/dists/sid/Release.gpg": false,
		"/dists/sid/main/binary-amd64/Packages": true, "/dists/sid/main/binary-amd64/Packages.xz": true,
		"/dists/sid/main/binary-amd64/Packages.lz4": true, "/dists/sid/main/source/Sources.zst": true,
		"/dists/sid/main/source/Sources.bz2": true, "/dists/sid/main/source/Sources.gz": true,
		"/dists/sid/main/i18n/Translation-en.bz2": false, "/dists/sid/main/Contents-amd64.gz": false,
		"/dists/sid/main/binary-amd64/Packages.diff/Index": false, "/pool/main/h/hello/hello.deb": false,
		"/dists/sid/main/binary-amd64/Packages.7z": false,
	} {
		if IsIndex(p) != want {
			t.Errorf("IsIndex(%s) = %v", p, !want)
		}
	}
}

const site = "deb.debian.org:80"

// loadSuite adds the suite's Release (or InRelease), Packages and Sources in
// the given compression.
func loadSuite(t testing.TB, ix *Index, site, base string, s *suite, rel []byte, relName string, c compression) {
	t.Helper()
	must(t, ix.Add(site, base, s.dir+"/"+relName, bytes.NewReader(rel)))
	for _, n := range []string{"main/binary-amd64/Packages", "main/source/Sources"} {
		n += extOf[c]
		must(t, ix.Add(site, base, s.dir+"/"+n, bytes.NewReader(s.files[n])))
	}
}

// §6.9 test_findHash and §6.10 (findIndexHash, findPkgHash, findSrcHash,
// multipleFindHash), for every compression of Packages and Sources, and both
// xz decoders.
func TestFindHash(t *testing.T) {
	pk, src := readTestdata(t, "Packages"), readTestdata(t, "Sources")
	wantPk, wantSrc := expectPackages(t, string(pk)), expectSources(t, string(src))
	if len(wantPk) != 5 || len(wantSrc) != 6 {
		t.Fatalf("fixtures: %d packages, %d source files", len(wantPk), len(wantSrc))
	}
	s := newSuite(t, "/dists/bookworm", pk, src)
	types := []digest.Type{digest.MD5, digest.SHA1, digest.SHA256}
	rel := s.release(false, types...)
	for c := compNone; c <= compLZ4; c++ {
		for _, xzCmd := range []string{"", xzPathOnce()} {
			if c != compXZ && xzCmd != "" {
				continue
			}
			t.Run(fmt.Sprintf("%v/xzcmd=%q", c, xzCmd), func(t *testing.T) {
				ix := New()
				ix.SetXZCommand(xzCmd)
				loadSuite(t, ix, site, "/debian", s, rel, "Release", c)
				// Index files from the Release: the SHA1 is the DHT key.
				for _, n := range []string{"main/binary-amd64/Packages.bz2", "main/source/Sources.bz2", "main/binary-amd64/Packages.xz"} {
					want := only(setOf(s.files[n]), types...)
					mustLookup(t, ix, site, "/debian", s.dir+"/"+n, want)
					got, _ := ix.Lookup(site, "/debian", s.dir+"/"+n)
					if kt, _ := got.KeyType(); kt != digest.SHA1 {
						t.Fatalf("key type %v, want SHA1", kt)
					}
				}
				// Binary packages: dpkg's .deb with the SHA1 of its Packages record.
				for fn, want := range wantPk {
					mustLookup(t, ix, site, "/debian", "/"+fn, want)
				}
				got, _ := ix.Lookup(site, "/debian", "/pool/main/d/dpkg/dpkg_1.21.22_amd64.deb")
				if !got.Has(digest.SHA1) || hexOf(got.SHA1[:]) != "8b07c7fc4c7dc180adf5888233e429e51299c66e" {
					t.Fatalf("dpkg SHA1 %v", got)
				}
				// Source files: every dpkg file, with the MD5 of Files.
				for p, want := range wantSrc {
					mustLookup(t, ix, site, "/debian", "/"+p, want)
				}
				got, _ = ix.Lookup(site, "/debian", "/pool/main/d/dpkg/dpkg_1.21.22.dsc")
				if hexOf(got.MD5[:]) != "0632193f00b0b729653262cdd4b748d9" || got.Size != 2315 {
					t.Fatalf("dpkg .dsc %v", got)
				}
				// And an index lookup again after the others.
				mustLookup(t, ix, site, "/debian", s.dir+"/main/source/Sources.bz2", only(setOf(s.files["main/source/Sources.bz2"]), types...))
				mustMiss(t, ix, site, "/debian", "/pool/main/d/dpkg/dpkg_9.deb")
				mustMiss(t, ix, site, "/debian", s.dir+"/Release")
				mustMiss(t, ix, site, "/debian", s.dir+"/InRelease")
				mustMiss(t, ix, site, "/other", "/"+"pool/main/h/hello/hello_2.10-3_amd64.deb")
				mustMiss(t, ix, "other.example:80", "/debian", "/"+"pool/main/h/hello/hello_2.10-3_amd64.deb")
				if st := ix.Stats(); st.Lists != 2 || st.Releases != 1 || st.Entries != len(wantPk)+len(wantSrc)+len(s.files) {
					t.Fatalf("stats %+v", st)
				}
			})
		}
	}
}

// Every other file a Release lists gets its hashes too: Translation,
// Contents, DEP-11, i18n/Index, the per-architecture Release.
func TestReleaseListedFiles(t *testing.T) {
	s := newSuite(t, "/dists/bookworm", readTestdata(t, "Packages"), readTestdata(t, "Sources"))
	all := []digest.Type{digest.MD5, digest.SHA1, digest.SHA256, digest.SHA512}
	ix := New()
	must(t, ix.Add(site, "/debian", "/dists/bookworm/Release", bytes.NewReader(s.release(false, all...))))
	for n, b := range s.files {
		mustLookup(t, ix, site, "/debian", "/dists/bookworm/"+n, setOf(b))
	}
	got, _ := ix.Lookup(site, "/debian", "/dists/bookworm/main/dep11/Components-amd64.yml.gz")
	if st, _ := got.Strongest(); st != digest.SHA512 {
		t.Fatalf("strongest %v", st)
	}
}

// InRelease: the clearsigned body is parsed, dash-escaped lines included, and
// gives the same entries as the Release; a truncated one is an error.
func TestInRelease(t *testing.T) {
	s := newSuite(t, "/dists/bookworm", readTestdata(t, "Packages"), readTestdata(t, "Sources"))
	body := s.release(true, digest.MD5, digest.SHA256)
	escaped := 0
	in := clearsign(body, func(line string) bool {
		if line == "SHA256:\n" || strings.HasSuffix(line, " main/binary-amd64/Packages.xz\n") {
			escaped++
			return true
		}
		return false
	})
	if escaped != 3 || !bytes.Contains(in, []byte("\n- SHA256:\n")) {
		t.Fatalf("fixture: %d dash-escaped lines", escaped)
	}
	ix := New()
	must(t, ix.Add(site, "/debian", "/dists/bookworm/InRelease", bytes.NewReader(in)))
	for n, b := range s.files {
		mustLookup(t, ix, site, "/debian", "/dists/bookworm/"+n, only(setOf(b), digest.MD5, digest.SHA256))
	}
	// Release replaces InRelease (one slot) and gives the same answers.
	must(t, ix.Add(site, "/debian", "/dists/bookworm/Release", bytes.NewReader(body)))
	if st := ix.Stats(); st.Releases != 1 || st.Entries != len(s.files) {
		t.Fatalf("stats %+v", st)
	}
	mustLookup(t, ix, site, "/debian", "/dists/bookworm/main/binary-amd64/Packages.xz",
		only(setOf(s.files["main/binary-amd64/Packages.xz"]), digest.MD5, digest.SHA256))

	trunc := in[:bytes.Index(in, []byte("-----BEGIN PGP SIGNATURE"))]
	if err := New().Add(site, "/debian", "/dists/bookworm/InRelease", bytes.NewReader(trunc)); !errors.Is(err, errBadClearsign) {
		t.Fatalf("truncated InRelease: %v", err)
	}
}

// by-hash paths: with Acquire-By-Hash they map to the named file's hashes; a
// hash no Release names still carries itself; Add through a by-hash path
// parses the index it names.
func TestByHash(t *testing.T) {
	s := newSuite(t, "/dists/bookworm", readTestdata(t, "Packages"), readTestdata(t, "Sources"))
	types := []digest.Type{digest.MD5, digest.SHA256, digest.SHA512}
	ix := New()
	must(t, ix.Add(site, "/debian", "/dists/bookworm/InRelease", bytes.NewReader(clearsign(s.release(true, types...), func(string) bool { return false }))))
	xzSet := setOf(s.files["main/binary-amd64/Packages.xz"])
	want := only(xzSet, types...)
	for _, tn := range []struct {
		dir string
		t   digest.Type
	}{{"SHA256", digest.SHA256}, {"MD5Sum", digest.MD5}, {"SHA512", digest.SHA512}} {
		mustLookup(t, ix, site, "/debian", "/dists/bookworm/main/binary-amd64/by-hash/"+tn.dir+"/"+hexOf(xzSet.Get(tn.t)), want)
	}
	// Identical content under two names in one directory: either name's
	// hashes are the same.
	empty := setOf(s.files["main/Contents-udeb-amd64.gz"])
	mustLookup(t, ix, site, "/debian", "/dists/bookworm/main/by-hash/SHA256/"+hexOf(empty.SHA256[:]), only(empty, types...))

	// Unknown hash: just itself, size unknown.
	unknown := setOf([]byte("not listed"))
	var own digest.Set
	own.Size = -1
	own.Put(digest.SHA256, unknown.SHA256[:])
	mustLookup(t, ix, site, "/debian", "/dists/bookworm/main/binary-amd64/by-hash/SHA256/"+hexOf(unknown.SHA256[:]), own)
	// Even with no index at all for the repository.
	mustLookup(t, New(), site, "/debian", "/dists/bookworm/main/binary-amd64/by-hash/SHA256/"+hexOf(unknown.SHA256[:]), own)
	// A listed hash in the wrong directory carries only itself.
	var own2 digest.Set
	own2.Size = -1
	own2.Put(digest.SHA256, xzSet.SHA256[:])
	mustLookup(t, ix, site, "/debian", "/dists/bookworm/main/source/by-hash/SHA256/"+hexOf(xzSet.SHA256[:]), own2)
	// Malformed: not a hash of that type.
	mustMiss(t, ix, site, "/debian", "/dists/bookworm/main/binary-amd64/by-hash/SHA256/abcd")
	mustMiss(t, ix, site, "/debian", "/dists/bookworm/main/binary-amd64/by-hash/SHA256/"+strings.Repeat("zz", 32))

	// Without Acquire-By-Hash the Release's entries are not used for by-hash paths.
	ix2 := New()
	must(t, ix2.Add(site, "/debian", "/dists/bookworm/Release", bytes.NewReader(s.release(false, types...))))
	mustLookup(t, ix2, site, "/debian", "/dists/bookworm/main/binary-amd64/by-hash/SHA256/"+hexOf(xzSet.SHA256[:]), own2)

	// Add through by-hash: the Release says it is Packages.xz.
	byHashPath := "/dists/bookworm/main/binary-amd64/by-hash/SHA256/" + hexOf(xzSet.SHA256[:])
	if !ix.IsIndex(site, "/debian", byHashPath) {
		t.Fatal("IsIndex(by-hash Packages.xz) = false")
	}
	must(t, ix.Add(site, "/debian", byHashPath, bytes.NewReader(s.files["main/binary-amd64/Packages.xz"])))
	wantPk := expectPackages(t, string(readTestdata(t, "Packages")))
	for fn, w := range wantPk {
		mustLookup(t, ix, site, "/debian", "/"+fn, w)
	}
	// The same index again as Packages.gz fills the same slot: no double count.
	n := ix.Stats().Entries
	must(t, ix.Add(site, "/debian", "/dists/bookworm/main/binary-amd64/Packages.gz", bytes.NewReader(s.files["main/binary-amd64/Packages.gz"])))
	if st := ix.Stats(); st.Entries != n || st.Lists != 1 {
		t.Fatalf("after Packages.gz: %+v, entries before %d", st, n)
	}

	// A by-hash Sources no Release names is recognised by its content and
	// lands in the directory's Sources slot.
	ix3 := New()
	srcGz := s.files["main/source/Sources.gz"]
	p := "/dists/bookworm/main/source/by-hash/SHA256/" + hexOf(sha256Of(srcGz))
	must(t, ix3.Add(site, "/debian", p, bytes.NewReader(srcGz)))
	for fn, w := range expectSources(t, string(readTestdata(t, "Sources"))) {
		mustLookup(t, ix3, site, "/debian", "/"+fn, w)
	}
	must(t, ix3.Add(site, "/debian", "/dists/bookworm/main/source/Sources.xz", bytes.NewReader(s.files["main/source/Sources.xz"])))
	if st := ix3.Stats(); st.Lists != 1 {
		t.Fatalf("by-hash and named Sources in two slots: %+v", st)
	}
	// A by-hash file that is not an index (Contents) is ignored.
	contents := s.files["main/Contents-amd64.gz"]
	must(t, ix3.Add(site, "/debian", "/dists/bookworm/main/by-hash/SHA256/"+hexOf(sha256Of(contents)), bytes.NewReader(contents)))
	if st := ix3.Stats(); st.Lists != 1 {
		t.Fatalf("Contents parsed as an index: %+v", st)
	}
}

func pkgStanza(name, fn string, size int, sha256 string) string {
	return fmt.Sprintf("Package: %s\nVersion: 1\nArchitecture: amd64\nDescription: x\n more\n .\n end\nFilename: %s\nSize: %d\nMD5sum: %032x\nSHA256: %s\n\n",
		name, fn, size, size, sha256)
}

// A new Packages replaces the old entries of that file only: a reused file
// name gets the new hash, a dropped file no longer resolves through it, and
// a file another current index lists still resolves.
func TestReplaceStale(t *testing.T) {
	h := func(c byte) string { return strings.Repeat(string(c), 64) }
	pkgs := func(stanzas ...string) []byte { return []byte(strings.Join(stanzas, "")) }
	ix := New()
	const main = "/dists/bookworm/main/binary-amd64/Packages.xz"
	const upd = "/dists/bookworm-updates/main/binary-amd64/Packages.gz"
	v1 := pkgs(pkgStanza("foo", "pool/main/f/foo/foo_1_amd64.deb", 100, h('a')),
		pkgStanza("bar", "pool/main/b/bar/bar_1_amd64.deb", 200, h('b')),
		pkgStanza("baz", "pool/main/b/baz/baz_1_amd64.deb", 300, h('c')))
	must(t, ix.Add(site, "/debian", main, bytes.NewReader(compressWith(t, compXZ, v1, ""))))
	must(t, ix.Add(site, "/debian", upd, bytes.NewReader(compressWith(t, compGzip,
		pkgs(pkgStanza("baz", "pool/main/b/baz/baz_1_amd64.deb", 300, h('c'))), ""))))
	sha := func(p string) string {
		s, ok := ix.Lookup(site, "/debian", p)
		if !ok {
			return "missing"
		}
		return hexOf(s.SHA256[:])
	}
	if sha("/pool/main/f/foo/foo_1_amd64.deb") != h('a') || sha("/pool/main/b/bar/bar_1_amd64.deb") != h('b') {
		t.Fatal("v1 not loaded")
	}
	// v2: foo rebuilt under the same name, bar and baz dropped.
	v2 := pkgs(pkgStanza("foo", "pool/main/f/foo/foo_1_amd64.deb", 101, h('d')),
		pkgStanza("qux", "pool/main/q/qux/qux_1_amd64.deb", 400, h('e')))
	gen := ix.Generation()
	must(t, ix.Add(site, "/debian", main, bytes.NewReader(compressWith(t, compXZ, v2, ""))))
	if ix.Generation() == gen {
		t.Fatal("Generation unchanged by an Add that changed a path's content")
	}
	if got := sha("/pool/main/f/foo/foo_1_amd64.deb"); got != h('d') {
		t.Fatalf("reused name: %s, want the new hash", got)
	}
	if s, _ := ix.Lookup(site, "/debian", "/pool/main/f/foo/foo_1_amd64.deb"); s.Size != 101 {
		t.Fatalf("reused name: size %d", s.Size)
	}
	mustMiss(t, ix, site, "/debian", "/pool/main/b/bar/bar_1_amd64.deb")
	if sha("/pool/main/b/baz/baz_1_amd64.deb") != h('c') {
		t.Fatal("baz, still in bookworm-updates, lost")
	}
	if sha("/pool/main/q/qux/qux_1_amd64.deb") != h('e') {
		t.Fatal("qux not added")
	}
	// Referenced follows the same updates.
	old := digest.Set{Size: 200}
	old.PutHex(digest.SHA256, h('b'))
	cur := digest.Set{Size: 300}
	cur.PutHex(digest.SHA256, h('c'))
	if ix.Referenced(&old) || !ix.Referenced(&cur) {
		t.Fatal("Referenced after replacement")
	}
	// The same content as Packages (plain) fills the same slot.
	must(t, ix.Add(site, "/debian", "/dists/bookworm/main/binary-amd64/Packages", bytes.NewReader(v2)))
	if st := ix.Stats(); st.Lists != 2 || st.Entries != 3 {
		t.Fatalf("stats %+v", st)
	}
	// Removal of a variant not loaded keeps the entries; of the loaded one drops them.
	gen = ix.Generation()
	ix.Remove(site, "/debian", main)
	if ix.Generation() == gen {
		t.Fatal("Generation unchanged by a Remove")
	}
	if sha("/pool/main/q/qux/qux_1_amd64.deb") != h('e') {
		t.Fatal("Remove of an unloaded variant dropped the entries")
	}
	ix.Remove(site, "/debian", "/dists/bookworm/main/binary-amd64/Packages")
	mustMiss(t, ix, site, "/debian", "/pool/main/q/qux/qux_1_amd64.deb")
	if sha("/pool/main/b/baz/baz_1_amd64.deb") != h('c') {
		t.Fatal("baz lost by removing another index")
	}
	ix.Remove(site, "/debian", upd)
	mustMiss(t, ix, site, "/debian", "/pool/main/b/baz/baz_1_amd64.deb")
	if st := ix.Stats(); st != (Stats{}) {
		t.Fatalf("empty index: %+v", st)
	}
}

// A new Release replaces its index-file and by-hash entries.
func TestReleaseReplace(t *testing.T) {
	pk, src := readTestdata(t, "Packages"), readTestdata(t, "Sources")
	s1 := newSuite(t, "/dists/bookworm", pk, src)
	s2 := newSuite(t, "/dists/bookworm", append(pk, []byte("\n"+pkgStanza("new", "pool/main/n/new/new_1.deb", 1, strings.Repeat("f", 64)))...), src)
	delete(s2.files, "main/Contents-amd64.gz")
	ix := New()
	must(t, ix.Add(site, "/debian", "/dists/bookworm/InRelease", bytes.NewReader(clearsign(s1.release(true, digest.SHA256), func(string) bool { return false }))))
	old := setOf(s1.files["main/binary-amd64/Packages.xz"])
	oldByHash := "/dists/bookworm/main/binary-amd64/by-hash/SHA256/" + hexOf(old.SHA256[:])
	mustLookup(t, ix, site, "/debian", oldByHash, only(old, digest.SHA256))
	must(t, ix.Add(site, "/debian", "/dists/bookworm/InRelease", bytes.NewReader(clearsign(s2.release(true, digest.SHA256), func(string) bool { return false }))))
	nw := setOf(s2.files["main/binary-amd64/Packages.xz"])
	mustLookup(t, ix, site, "/debian", "/dists/bookworm/main/binary-amd64/Packages.xz", only(nw, digest.SHA256))
	mustLookup(t, ix, site, "/debian", "/dists/bookworm/main/binary-amd64/by-hash/SHA256/"+hexOf(nw.SHA256[:]), only(nw, digest.SHA256))
	// The old by-hash path now only carries its own hash (size unknown).
	if got, _ := ix.Lookup(site, "/debian", oldByHash); got.Size != -1 {
		t.Fatalf("stale by-hash entry survived: %v", got)
	}
	mustMiss(t, ix, site, "/debian", "/dists/bookworm/main/Contents-amd64.gz")
	if ix.Referenced(&old) {
		t.Fatal("old Packages.xz still referenced")
	}
	if !ix.Referenced(&nw) {
		t.Fatal("new Packages.xz not referenced")
	}
}

// Several mirrors and suites at once, each answering for its own paths.
func TestMirrorsAndSuites(t *testing.T) {
	h := func(c byte) string { return strings.Repeat(string(c), 64) }
	ix := New()
	add := func(site, base, p string, stanza string) {
		must(t, ix.Add(site, base, p, bytes.NewReader(compressWith(t, compGzip, []byte(stanza), ""))))
	}
	add("deb.debian.org:80", "/debian", "/dists/bookworm/main/binary-amd64/Packages.gz", pkgStanza("a", "pool/main/a/a/a_1.deb", 1, h('1')))
	add("deb.debian.org:80", "/debian", "/dists/trixie/main/binary-amd64/Packages.gz", pkgStanza("a", "pool/main/a/a/a_2.deb", 2, h('2')))
	add("deb.debian.org:80", "/debian-security", "/dists/bookworm-security/main/binary-amd64/Packages.gz", pkgStanza("a", "pool/updates/main/a/a/a_1+s.deb", 3, h('3')))
	add("ftp.de.debian.org:8080", "/debian", "/dists/bookworm/main/binary-amd64/Packages.gz", pkgStanza("a", "pool/main/a/a/a_1.deb", 1, h('1')))
	for _, v := range []struct{ site, base, p, want string }{
		{"deb.debian.org:80", "/debian", "/pool/main/a/a/a_1.deb", h('1')},
		{"deb.debian.org:80", "/debian", "/pool/main/a/a/a_2.deb", h('2')},
		{"deb.debian.org:80", "/debian-security", "/pool/updates/main/a/a/a_1+s.deb", h('3')},
		{"ftp.de.debian.org:8080", "/debian", "/pool/main/a/a/a_1.deb", h('1')},
	} {
		got, ok := ix.Lookup(v.site, v.base, v.p)
		if !ok || hexOf(got.SHA256[:]) != v.want {
			t.Errorf("Lookup(%s %s %s) = %v %v", v.site, v.base, v.p, got, ok)
		}
	}
	mustMiss(t, ix, "deb.debian.org:80", "/debian", "/pool/updates/main/a/a/a_1+s.deb")
	mustMiss(t, ix, "ftp.de.debian.org:8080", "/debian", "/pool/main/a/a/a_2.deb")
	mustMiss(t, ix, "ftp.de.debian.org:80", "/debian", "/pool/main/a/a/a_1.deb")
	dirs := ix.BaseDirs("deb.debian.org:80")
	if len(dirs) != 2 {
		t.Fatalf("BaseDirs %v", dirs)
	}
	// Where two suites disagree about one name, the index added last wins.
	add("deb.debian.org:80", "/debian", "/dists/sid/main/binary-amd64/Packages.gz", pkgStanza("a", "pool/main/a/a/a_1.deb", 9, h('9')))
	if got, _ := ix.Lookup("deb.debian.org:80", "/debian", "/pool/main/a/a/a_1.deb"); hexOf(got.SHA256[:]) != h('9') {
		t.Fatalf("newest index does not win: %v", got)
	}
	if st := ix.Stats(); st.Repos != 3 || st.Lists != 5 || st.Entries != 5 {
		t.Fatalf("stats %+v", st)
	}
}

// Names are stored as the index writes them and looked up decoded.
func TestDecodedNames(t *testing.T) {
	ix := New()
	fn := "pool/main/g/gcc-12/g++-12_12.2.0-14_amd64.deb"
	must(t, ix.Add(site, "/debian", "/dists/bookworm/main/binary-amd64/Packages", bytes.NewReader(readTestdata(t, "Packages"))))
	if _, ok := ix.Lookup(site, "/debian", "/"+fn); !ok {
		t.Fatal("g++ not found by its decoded name")
	}
	mustMiss(t, ix, site, "/debian", "/pool/main/g/gcc-12/g%2B%2B-12_12.2.0-14_amd64.deb")
	if _, ok := ix.Lookup(site, "/debian", "/pool/main/libf/libfoo/libfoo~bar_2.0~rc1-1_amd64.deb"); !ok {
		t.Fatal("libfoo~bar not found")
	}
}

// The magic bytes decide the decompression; a compressed name over data
// without that header is an error; a broken stream is an error.
func TestCompressionChecks(t *testing.T) {
	pk := readTestdata(t, "Packages")
	ix := New()
	err := ix.Add(site, "/debian", "/dists/sid/main/binary-amd64/Packages.gz", bytes.NewReader(pk))
	if !errors.Is(err, ErrCompression) {
		t.Fatalf("plain data named .gz: %v", err)
	}
	// xz content under a .gz name: the magic wins.
	must(t, ix.Add(site, "/debian", "/dists/sid/main/binary-amd64/Packages.gz", bytes.NewReader(compressWith(t, compXZ, pk, ""))))
	if st := ix.Stats(); st.Entries != 5 {
		t.Fatalf("stats %+v", st)
	}
	for c := compGzip; c <= compLZ4; c++ {
		for _, xzCmd := range []string{"", xzPathOnce()} {
			full := compressWith(t, c, pk, "Packages.bz2")
			ix := New()
			ix.SetXZCommand(xzCmd)
			err := ix.Add(site, "/debian", "/dists/sid/main/binary-amd64/Packages"+extOf[c], bytes.NewReader(full[:len(full)*2/3]))
			if err == nil {
				t.Errorf("%v (xz %q): truncated stream accepted", c, xzCmd)
			}
			if st := ix.Stats(); st.Entries != 0 {
				t.Errorf("%v: truncated stream left entries: %+v", c, st)
			}
		}
	}
	// Files that are not indexes are ignored.
	must(t, ix.Add(site, "/debian", "/dists/sid/main/i18n/Translation-en.bz2", strings.NewReader("junk")))
	must(t, ix.Add(site, "/debian", "/pool/main/h/hello/hello.deb", strings.NewReader("junk")))
}

// Rebuild at start-up from cached files, a by-hash copy among them, one bad file.
func TestRebuild(t *testing.T) {
	pk, src := readTestdata(t, "Packages"), readTestdata(t, "Sources")
	s := newSuite(t, "/dists/bookworm", pk, src)
	dir := t.TempDir()
	var files []File
	put := func(p string, b []byte) {
		name := filepath.Join(dir, strings.ReplaceAll(p, "/", "_"))
		must(t, os.WriteFile(name, b, 0o644))
		files = append(files, File{Site: site, BaseDir: "/debian", Path: p, Name: name})
	}
	srcXZ := setOf(s.files["main/source/Sources.xz"])
	put("/dists/bookworm/main/source/by-hash/SHA256/"+hexOf(srcXZ.SHA256[:]), s.files["main/source/Sources.xz"])
	put("/dists/bookworm/main/binary-amd64/Packages.zst", s.files["main/binary-amd64/Packages.zst"])
	put("/dists/bookworm/main/binary-amd64/Packages.lz4", s.files["main/binary-amd64/Packages.lz4"])
	put("/dists/bookworm/InRelease", clearsign(s.release(true, digest.SHA256), func(string) bool { return false }))
	put("/dists/trixie/main/binary-amd64/Packages.gz", []byte("corrupt"))
	files = append(files, File{Site: site, BaseDir: "/debian", Path: "/dists/sid/Release", Name: filepath.Join(dir, "missing")})
	ix := New()
	err := ix.Rebuild(files)
	if err == nil || !errors.Is(err, ErrCompression) || !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("Rebuild errors: %v", err)
	}
	for fn, w := range expectPackages(t, string(pk)) {
		mustLookup(t, ix, site, "/debian", "/"+fn, w)
	}
	for fn, w := range expectSources(t, string(src)) {
		mustLookup(t, ix, site, "/debian", "/"+fn, w)
	}
	if st := ix.Stats(); st.Lists != 2 || st.Releases != 1 {
		t.Fatalf("stats %+v", st)
	}
}

// Referenced finds content through any of its hashes, in Releases and lists.
func TestReferenced(t *testing.T) {
	pk, src := readTestdata(t, "Packages"), readTestdata(t, "Sources")
	s := newSuite(t, "/dists/bookworm", pk, src)
	ix := New()
	loadSuite(t, ix, site, "/debian", s, s.release(false, digest.MD5, digest.SHA256), "Release", compXZ)
	for _, w := range expectPackages(t, string(pk)) {
		md5only := only(w, digest.MD5)
		if !ix.Referenced(&w) || !ix.Referenced(&md5only) {
			t.Fatalf("package %v not referenced", w)
		}
		wrongSize := w
		wrongSize.Size++
		if ix.Referenced(&wrongSize) {
			t.Fatal("referenced with the wrong size")
		}
	}
	for _, w := range expectSources(t, string(src)) {
		sha1only := only(w, digest.SHA1)
		if !ix.Referenced(&sha1only) {
			t.Fatalf("source file %v not referenced", w)
		}
	}
	for _, b := range s.files {
		d := setOf(b) // all four hashes, as a cache would compute
		if !ix.Referenced(&d) {
			t.Fatal("Release-listed file not referenced")
		}
	}
	other := setOf([]byte("nobody lists this"))
	if ix.Referenced(&other) {
		t.Fatal("unlisted content referenced")
	}
	conflicting := setOf(s.files["main/binary-amd64/Packages.xz"])
	conflicting.SHA512[0] ^= 1 // a hash the Release does not give: no conflict
	conflicting.MD5[0] ^= 1    // a hash it gives, different: not this file
	if ix.Referenced(&conflicting) {
		t.Fatal("conflicting hashes referenced")
	}
}

// A file handed to Add goes to xz(1) as its stdin directly (when xz(1) is
// installed; otherwise through the in-process decoder): whole and truncated.
func TestAddXZFile(t *testing.T) {
	pk := readTestdata(t, "Packages")
	full := compressWith(t, compXZ, pk, "")
	dir := t.TempDir()
	for _, v := range []struct {
		data []byte
		ok   bool
	}{{full, true}, {full[:len(full)/2], false}} {
		name := filepath.Join(dir, "Packages.xz")
		must(t, os.WriteFile(name, v.data, 0o644))
		f, err := os.Open(name)
		must(t, err)
		ix := New()
		err = ix.Add(site, "/debian", "/dists/sid/main/binary-amd64/Packages.xz", f)
		f.Close()
		if v.ok {
			must(t, err)
			for fn, w := range expectPackages(t, string(pk)) {
				mustLookup(t, ix, site, "/debian", "/"+fn, w)
			}
		} else if err == nil || ix.Stats().Entries != 0 {
			t.Fatalf("truncated xz file: %v, %+v", err, ix.Stats())
		}
	}
}

// A flat repository ("deb http://host/repo ./"): Filename and Directory are
// relative to the directory of the Packages and Sources, which SplitPath
// leaves in the path when it finds no dists/ or pool/.
func TestFlatRepository(t *testing.T) {
	h := strings.Repeat("c", 64)
	ix := New()
	site, base, p, err := SplitURL("http://flat.example/repo/sub/Packages.gz", ix.BaseDirs)
	must(t, err)
	pk := pkgStanza("foo", "./foo_1_amd64.deb", 7, h) + pkgStanza("bar", "bin/bar_1_amd64.deb", 8, h)
	must(t, ix.Add(site, base, p, bytes.NewReader(compressWith(t, compGzip, []byte(pk), ""))))
	src := "Package: foo\nDirectory: .\nFiles:\n " + strings.Repeat("a", 32) + " 9 foo_1.dsc\n"
	must(t, ix.Add(site, base, "/repo/sub/Sources", strings.NewReader(src)))
	for _, u := range []string{"http://flat.example/repo/sub/foo_1_amd64.deb", "http://flat.example/repo/sub/bin/bar_1_amd64.deb", "http://flat.example/repo/sub/foo_1.dsc"} {
		site, base, p, err := SplitURL(u, ix.BaseDirs)
		must(t, err)
		if _, ok := ix.Lookup(site, base, p); !ok {
			t.Errorf("%s (%q %q) not found", u, base, p)
		}
	}
	// The top of a flat repository is the site's root: no prefix.
	must(t, ix.Add("top.example:80", "", "/Packages", strings.NewReader(pkgStanza("foo", "./foo.deb", 1, h))))
	if _, ok := ix.Lookup("top.example:80", "", "/foo.deb"); !ok {
		t.Error("top-level flat repository")
	}
}
