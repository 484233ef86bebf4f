package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

const packagesText = `Package: xz-utils
Source: xz-utils (5.4.1-0.2)
Version: 5.4.1-1
Architecture: amd64
Description: XZ-format compression utilities
 a continuation line: Version: 9
 .
Filename: pool/main/x/xz-utils/xz-utils_5.4.1-1_amd64.deb
Size: 470000
SHA256: 1111111111111111111111111111111111111111111111111111111111111111

Package: libc6
Version: 2.36-9+deb12u10
Architecture: amd64
Filename: pool/main/g/glibc/libc6_2.36-9+deb12u10_amd64.deb
Size: 2757936
SHA256: 2222222222222222222222222222222222222222222222222222222222222222
`

func TestParsePackages(t *testing.T) {
	pkgs, err := parsePackages(strings.NewReader(packagesText))
	if err != nil {
		t.Fatal(err)
	}
	if len(pkgs) != 2 {
		t.Fatalf("%d packages, want 2", len(pkgs))
	}
	xz := pkgs[0]
	if xz.Package != "xz-utils" || xz.Source != "xz-utils" || xz.Version != "5.4.1-1" || xz.Size != 470000 || xz.Arch != "amd64" {
		t.Fatalf("first: %+v", xz)
	}
	if pkgs[1].Source != "libc6" {
		t.Fatalf("a package without Source is its own source: %+v", pkgs[1])
	}
	if got := (Pkg{Package: "vim", Version: "2:9.0.1378-2", Arch: "amd64"}).LocalName(); got != "vim_2%3a9.0.1378-2_amd64.deb" {
		t.Fatalf("LocalName %q", got)
	}
}

func TestParsePackagesRejectsIncomplete(t *testing.T) {
	bad := strings.Replace(packagesText, "SHA256: 2222", "MD5sum: 2222", 1)
	if _, err := parsePackages(strings.NewReader(bad)); err == nil || !strings.Contains(err.Error(), "libc6") {
		t.Fatalf("paragraph without SHA256: err %v, want one naming libc6", err)
	}
	if _, err := parsePackages(strings.NewReader("Package foo\n")); err == nil {
		t.Fatal("line without a colon accepted")
	}
}

func TestReadPackagesCompressed(t *testing.T) {
	dir := t.TempDir()
	plain := filepath.Join(dir, "Packages")
	if err := os.WriteFile(plain, []byte(packagesText), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ tool, ext string }{{"xz", ".xz"}, {"gzip", ".gz"}, {"lz4", ".lz4"}, {"zstd", ".zst"}} {
		out := plain + c.ext
		cmd := exec.Command(c.tool, "-c", plain)
		b, err := cmd.Output()
		if err != nil {
			t.Fatalf("%s (scripts/install-deps.sh installs it): %v", c.tool, err)
		}
		if err := os.WriteFile(out, b, 0o644); err != nil {
			t.Fatal(err)
		}
		pkgs, err := ReadPackages(out)
		if err != nil || len(pkgs) != 2 || pkgs[1].Version != "2.36-9+deb12u10" {
			t.Fatalf("%s: %v %+v", c.ext, err, pkgs)
		}
	}
}

func TestCompareVersions(t *testing.T) {
	pairs := [][2]string{
		{"1.0", "1.0-1"}, {"1.0~rc1", "1.0"}, {"1:0.1", "2.0"}, {"5.4.1-0.2", "5.4.1-1"},
		{"1.2.3", "1.2.3+deb12u1"}, {"2.36-9+deb12u9", "2.36-9+deb12u10"}, {"9", "10"},
		{"1.0a", "1.0+"}, {"1.0", "1.0a"}, {"1.01", "1.1"}, {"1.0~~", "1.0~"}, {"1.0~", "1.0"},
		{"0:1.0", "1.0"}, {"1.0-1", "1.0-1.1"}, {"1.0-1~bpo1", "1.0-1"}, {"6.1.170-1", "6.1.180-1"},
		{"1.2-3-4", "1.2-3-5"}, {"a", "b"}, {"1.0.0", "1.0"}, {"3.0.17-1~deb12u2", "3.0.17-1~deb12u3"},
		{"115.9.0esr-1~deb12u1", "115.10.0esr-1~deb12u1"}, {"1:2.39.5-0+deb12u2", "1:2.39.5-0+deb12u3"},
	}
	sign := func(c int) string {
		switch {
		case c < 0:
			return "lt"
		case c > 0:
			return "gt"
		}
		return "eq"
	}
	for _, p := range pairs {
		for _, ab := range [][2]string{p, {p[1], p[0]}, {p[0], p[0]}} {
			got := sign(CompareVersions(ab[0], ab[1]))
			// dpkg itself is the reference.
			if err := exec.Command("dpkg", "--compare-versions", ab[0], got, ab[1]).Run(); err != nil {
				t.Errorf("CompareVersions(%q, %q) says %s; dpkg disagrees (%v)", ab[0], ab[1], got, err)
			}
		}
	}
}
