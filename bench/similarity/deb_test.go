package main

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// buildDeb builds a package with dpkg-deb from files (path -> content) and
// returns its bytes.
func buildDeb(t *testing.T, name, version, compression string, files map[string][]byte) []byte {
	t.Helper()
	root := filepath.Join(t.TempDir(), "root")
	if err := os.MkdirAll(filepath.Join(root, "DEBIAN"), 0o755); err != nil {
		t.Fatal(err)
	}
	control := fmt.Sprintf("Package: %s\nVersion: %s\nArchitecture: amd64\nMaintainer: t <t@example.org>\nDescription: test\n", name, version)
	if err := os.WriteFile(filepath.Join(root, "DEBIAN", "control"), []byte(control), 0o644); err != nil {
		t.Fatal(err)
	}
	for p, b := range files {
		full := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	out := filepath.Join(t.TempDir(), name+".deb")
	cmd := exec.Command("dpkg-deb", "--root-owner-group", "-Z"+compression, "--build", root, out)
	cmd.Env = append(os.Environ(), "SOURCE_DATE_EPOCH=1700000000")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("dpkg-deb (scripts/install-deps.sh installs it): %v: %s", err, b)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func tarFiles(t *testing.T, b []byte) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	tr := tar.NewReader(bytes.NewReader(b))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		if h.Typeflag == tar.TypeReg {
			c, err := io.ReadAll(tr)
			if err != nil {
				t.Fatal(err)
			}
			out[h.Name] = c
		}
	}
}

func TestDataTarEveryCompression(t *testing.T) {
	files := map[string][]byte{"usr/share/doc/p/README": []byte("hello\n"), "usr/bin/p": randomBytes(3, 10_000)}
	for _, c := range []struct{ z, member string }{{"xz", "data.tar.xz"}, {"zstd", "data.tar.zst"}, {"gzip", "data.tar.gz"}, {"none", "data.tar"}} {
		deb := buildDeb(t, "p", "1.0", c.z, files)
		tb, member, err := DataTar(deb, 1<<20)
		if err != nil {
			t.Fatalf("%s: %v", c.z, err)
		}
		if member != c.member {
			t.Fatalf("%s: member %q, want %q", c.z, member, c.member)
		}
		got := tarFiles(t, tb)
		if !bytes.Equal(got["./usr/bin/p"], files["usr/bin/p"]) || string(got["./usr/share/doc/p/README"]) != "hello\n" {
			t.Fatalf("%s: data.tar holds %d files, not the ones packed", c.z, len(got))
		}
		if _, _, err := DataTar(deb, 1000); !errors.Is(err, errTooLarge) {
			t.Fatalf("%s: 1000-byte limit: err %v, want errTooLarge", c.z, err)
		}
	}
}

func TestReadArRejectsGarbage(t *testing.T) {
	deb := buildDeb(t, "p", "1.0", "xz", map[string][]byte{"a": []byte("a")})
	if _, err := readAr([]byte("not a deb")); !errors.Is(err, errNotDeb) {
		t.Fatalf("garbage: %v", err)
	}
	if _, err := readAr(deb[:len(deb)-10]); err == nil {
		t.Fatal("truncated member accepted")
	}
	if _, err := readAr(deb[:70]); err == nil {
		t.Fatal("truncated header accepted")
	}
	if _, _, err := DataTar(deb[:8], 1<<20); err == nil {
		t.Fatal("a .deb without members gave a data.tar")
	}
}

// Two versions of a package that differ in one file, measured from a cache the way
// `measure` does: the data.tar level finds everything but the changed file, an
// identical file is found whole, and a cache holding other bytes than the index
// says is refused.
func TestMeasurePairFromCache(t *testing.T) {
	files := map[string][]byte{}
	for i := range 8 {
		files[fmt.Sprintf("usr/lib/p/f%d", i)] = randomBytes(uint64(100+i), 64<<10)
	}
	oldDeb := buildDeb(t, "p", "1.0-1", "xz", files)
	files["usr/lib/p/f3"] = randomBytes(999, 64<<10)
	newDeb := buildDeb(t, "p", "1.0-2", "xz", files)

	cache := t.TempDir()
	pkg := func(version string, b []byte) Pkg {
		sum := sha256.Sum256(b)
		p := Pkg{Package: "p", Version: version, Arch: "amd64", Source: "p", Size: int64(len(b)), SHA256: hex.EncodeToString(sum[:])}
		p.Filename = "pool/main/p/p/" + p.LocalName()
		if err := os.WriteFile(filepath.Join(cache, p.LocalName()), b, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	pair := Pair{Kind: "update", Class: sizeClass(int64(len(newDeb))), New: pkg("1.0-2", newDeb), Old: pkg("1.0-1", oldDeb)}
	opts := MeasureOpts{Cache: cache, BlockSizes: []int{1024, 4096}, TarSizes: []int{1024, 4096}, TarLimit: 1 << 30}
	r, err := MeasurePair(pair, opts)
	if err != nil {
		t.Fatal(err)
	}
	if r.Tar == nil || r.Tar.Err != "" || r.Tar.Member != "data.tar.xz" {
		t.Fatalf("tar level: %+v", r.Tar)
	}
	for _, m := range r.Tar.Matches {
		missing := r.Tar.Size - m.MatchedBytes
		// The changed file, plus at most a block either side and the tar's end.
		if missing < 64<<10 || missing > 64<<10+int64(3*m.BlockSize) {
			t.Fatalf("bs %d: %d data.tar bytes missing, want about one 64 KiB file", m.BlockSize, missing)
		}
	}
	if r.Deb.Size != int64(len(newDeb)) || len(r.Deb.Matches) != 2 || r.Deb.Member != "data.tar.xz" {
		t.Fatalf("deb level: %+v", r.Deb)
	}
	// f3 is the fourth file in the tar: what comes before it is the same.
	if r.Tar.Prefix < 3*64<<10 || r.Tar.Prefix >= 4*64<<10+4096 {
		t.Fatalf("data.tar prefix %d, want the first three files and their headers", r.Tar.Prefix)
	}

	same := Pair{Kind: "update", New: pair.New, Old: pair.New}
	r, err = MeasurePair(same, opts)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range append(r.Deb.Matches, r.Tar.Matches...) {
		if m.Matched != m.Blocks {
			t.Fatalf("identical files: %+v", m)
		}
	}

	if err := os.WriteFile(filepath.Join(cache, pair.Old.LocalName()), newDeb, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := MeasurePair(pair, opts); err == nil {
		t.Fatal("a cached file with the wrong hash was measured")
	}
	missing := pair
	missing.Old.Version = "0.9"
	missing.Old.Filename = "pool/main/p/p/p_0.9_amd64.deb"
	if _, err := MeasurePair(missing, opts); err == nil || !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("missing file: err %v", err)
	}
}
