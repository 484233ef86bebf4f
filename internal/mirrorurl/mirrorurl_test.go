package mirrorurl

import (
	"errors"
	"strings"
	"testing"
)

func TestParsePrefix(t *testing.T) {
	for _, tc := range []struct {
		raw, url, site string
		err            error
	}{
		{"/deb.debian.org/debian/dists/bookworm/InRelease", "http://deb.debian.org/debian/dists/bookworm/InRelease", "deb.debian.org:80", nil},
		{"/ftp.us.debian.org:8080/debian/pool/main/d/dpkg/dpkg_1.2.1-1.tar.gz", "http://ftp.us.debian.org:8080/debian/pool/main/d/dpkg/dpkg_1.2.1-1.tar.gz", "ftp.us.debian.org:8080", nil},
		{"/https/security.debian.org/debian-security/dists/x/Release", "https://security.debian.org/debian-security/dists/x/Release", "security.debian.org:443", nil},
		{"/127.0.0.1:8000/debian/pool/main/h/hello/hello_2.10%2B1_amd64.deb", "http://127.0.0.1:8000/debian/pool/main/h/hello/hello_2.10+1_amd64.deb", "127.0.0.1:8000", nil},
		{"/[::1]:81/debian//dists/x/Release?x=1", "http://[::1]:81/debian/dists/x/Release", "[::1]:81", nil},
		{"/deb.debian.org/debian/dists/../../etc/passwd", "", "", ErrBadPath},
		{"/deb.debian.org/debian/pool/%2e%2e/x", "", "", ErrBadPath},
		{"/deb.debian.org/debian/pool/a%2Fb", "", "", ErrBadPath},
		{"/deb.debian.org/debian/pool/a%0d%0aHost:%20evil", "", "", ErrBadPath},
		{"/deb.debian.org/debian/pool/..\\..\\etc/passwd", "", "", ErrBadPath},
		{"/deb.debian.org/debian/pool/a\x7fb.deb", "", "", ErrBadPath},
		{"/deb.debian.org/debian/pool/a\tb.deb", "", "", ErrBadPath},
		{"/deb.debian.org/debian/pool/" + strings.Repeat("\xff", 1000) + ".deb", "", "", ErrBadPath},
		{"/user@evil.example/debian/dists/x/Release", "", "", ErrBadHost},
		{"/deb.debian.org:99999/debian/dists/x/Release", "", "", ErrBadHost},
		{"/deb.debian.org/secret/admin", "", "", ErrNotMirrorPath},
		{"/favicon.ico", "", "", ErrNotMirrorPath},
		{"/deb.debian.org/debian/dists/sid/main/binary-i386/Packages.diff/Index", "", "", ErrBlocked},
		{"/deb.debian.org/debian/dists/sid/favicon.ico", "", "", ErrBlocked},
	} {
		u, err := ParsePrefix(tc.raw)
		if !errors.Is(err, tc.err) {
			t.Errorf("ParsePrefix(%q) error %v, want %v", tc.raw, err, tc.err)
			continue
		}
		if err == nil && (u.String() != tc.url || u.Site() != tc.site) {
			t.Errorf("ParsePrefix(%q) = %s site %s, want %s site %s", tc.raw, u, u.Site(), tc.url, tc.site)
		}
	}
}

func TestParseAbsolute(t *testing.T) {
	u, err := ParseAbsolute("http://Deb.Debian.org:8080/debian/dists/bookworm/Release")
	if err != nil || u.String() != "http://deb.debian.org:8080/debian/dists/bookworm/Release" || u.HostHeader() != "deb.debian.org:8080" {
		t.Fatalf("got %v %v", u, err)
	}
	if _, err := ParseAbsolute("ftp://x/debian/dists/a"); !errors.Is(err, ErrBadPath) {
		t.Fatalf("ftp accepted: %v", err)
	}
	if _, err := ParseAbsolute("http://evil.example/"); err == nil {
		t.Fatal("non-mirror path accepted")
	}
}
