package mirrorurl

import (
	"errors"
	"net/url"
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
		{"/https/security.debian.org/debian-security/dists/x/Release", "https://security.debian.org/debian-security/dists/x/Release", "https:security.debian.org:443", nil},
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
		{"/deb.debian.org:/debian/dists/x/Release", "", "", ErrBadHost},
		{"/[::1]:/debian/dists/x/Release", "", "", ErrBadHost},
		{"/http://deb.debian.org/debian/dists/x/Release", "", "", ErrFullURL},
		{"/HTTPS://deb.debian.org/debian/dists/x/Release", "", "", ErrFullURL},
		{"/http:/deb.debian.org/debian/pool/main/h/h.deb", "", "", ErrFullURL},
		{"/http%3A%2F%2Fdeb.debian.org/debian/pool/main/h/h.deb", "", "", ErrFullURL},
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

// TestSiteOneKeyForEveryForm: the index key of a mirror is the same whichever
// form names it (prefix, proxy-mode absolute URL, a cached URL read back at
// start-up), and an https mirror's never equals the plain one's on the same
// host (issue 11 item 1: three places computed it, and they disagreed).
func TestSiteOneKeyForEveryForm(t *testing.T) {
	forms := func(tls bool) []string {
		if tls {
			return []string{"/https/deb.debian.org/debian/pool/main/h/hello/h.deb", "https://deb.debian.org/debian/pool/main/h/hello/h.deb", "https://deb.debian.org:443/debian/pool/main/h/hello/h.deb"}
		}
		return []string{"/deb.debian.org/debian/pool/main/h/hello/h.deb", "http://deb.debian.org/debian/pool/main/h/hello/h.deb", "http://deb.debian.org:80/debian/pool/main/h/hello/h.deb"}
	}
	sites := map[bool]string{}
	for _, tls := range []bool{false, true} {
		for _, raw := range forms(tls) {
			parse := ParseAbsolute
			if strings.HasPrefix(raw, "/") {
				parse = ParsePrefix
			}
			u, err := parse(raw)
			if err != nil {
				t.Fatalf("%s: %v", raw, err)
			}
			// The cached-URL path: String() is what the mirror cache records.
			back, err := ParseAbsolute(u.String())
			if err != nil || back.Site() != u.Site() {
				t.Fatalf("%s: cached form %s gives site %q, want %q (%v)", raw, u, back.Site(), u.Site(), err)
			}
			if s, ok := sites[tls]; ok && s != u.Site() {
				t.Errorf("%s: site %q, other forms gave %q", raw, u.Site(), s)
			}
			sites[tls] = u.Site()
		}
	}
	if sites[true] == sites[false] {
		t.Errorf("https and http mirrors on one host share the index key %q", sites[true])
	}
}

// TestFullURLAfterPrefix: a whole URL pasted after the daemon's address was
// read as a mirror named "http" (issue 11 item 4); it is refused with the form
// to write instead.
func TestFullURLAfterPrefix(t *testing.T) {
	for raw, want := range map[string]string{
		"/http://deb.debian.org/debian/dists/bookworm/InRelease":     "write /deb.debian.org/debian/... instead of /http://deb.debian.org/debian/...",
		"/https://deb.debian.org/debian/dists/bookworm/InRelease":    "write /https/deb.debian.org/debian/... instead of /https://deb.debian.org/debian/...",
		"/http://mirror.example:8080/ubuntu/pool/main/h/hello/h.deb": "write /mirror.example:8080/ubuntu/... instead",
		"/http:": "/<host>/<path>",
	} {
		_, err := ParsePrefix(raw)
		if !errors.Is(err, ErrFullURL) || !strings.Contains(err.Error(), want) {
			t.Errorf("ParsePrefix(%q): %v, want ErrFullURL saying %q", raw, err, want)
		}
	}
	// A bad host says which host and what form is expected.
	_, err := ParsePrefix("/user@evil.example/debian/dists/x/Release")
	if !errors.Is(err, ErrBadHost) || !strings.Contains(err.Error(), `"user@evil.example"`) || !strings.Contains(err.Error(), "/<host>[:<port>]/<path>") {
		t.Errorf("bad host: %v", err)
	}
	// A host literally named like a scheme is still a host when it has no colon.
	if u, err := ParsePrefix("/http/debian/dists/x/Release"); err != nil || u.Host != "http" {
		t.Errorf("host named http: %+v, %v", u, err)
	}
}

// slowRequestPath and slowCleanPath are the plain implementations the fast paths of
// RequestPath and cleanPath must agree with.
func slowRequestPath(p string) string {
	segs := strings.Split(p, "/")
	for i, s := range segs {
		segs[i] = url.PathEscape(s)
	}
	return strings.Join(segs, "/")
}

func slowCleanPath(dec string) (string, error) {
	var out []string
	for _, s := range strings.Split(dec, "/") {
		switch s {
		case "":
			continue
		case ".", "..":
			return "", ErrBadPath
		}
		out = append(out, s)
	}
	if len(out) == 0 {
		return "", ErrNotMirrorPath
	}
	return "/" + strings.Join(out, "/"), nil
}

// TestFastPathsAgree: the allocation-free fast paths of RequestPath, cleanPath and the length
// check in finish give what the plain implementations give, for every byte in every position
// of a few path shapes.
func TestFastPathsAgree(t *testing.T) {
	shapes := []string{"/debian/pool/main/h/hello/hello_2.10-3_amd64.deb", "/a/%s/b", "/%s", "/x/%s", "/x%s/y", "/%s/", "/x/%s%s/y"}
	var cases []string
	for c := 0; c < 256; c++ {
		for _, sh := range shapes {
			cases = append(cases, strings.ReplaceAll(sh, "%s", string(rune(c))))
			cases = append(cases, strings.ReplaceAll(sh, "%s", string([]byte{byte(c)})))
		}
	}
	cases = append(cases, "/", "//", "/./", "/../x", "/x/..", "/x/.", "/.x/..y/", "/a//b", "/a/./b")
	for _, p := range cases {
		if got, want := (URL{Path: p}).RequestPath(), slowRequestPath(p); got != want {
			t.Errorf("RequestPath(%q) = %q, want %q", p, got, want)
		}
		got, gerr := cleanPath(p)
		if dec, err := unescape(p); err == nil {
			want, werr := slowCleanPath(dec)
			if got != want || !errors.Is(gerr, werr) && (gerr != nil || werr != nil) {
				t.Errorf("cleanPath(%q) = %q, %v; want %q, %v", p, got, gerr, want, werr)
			}
		}
	}
	for _, u := range []URL{
		{Host: "deb.debian.org", Port: 80, Path: "/debian/pool/a b"},
		{TLS: true, Host: "deb.debian.org", Port: 443, Path: "/x"},
		{TLS: true, Host: "::1", Port: 8443, Path: "/x"},
		{Host: "::1", Port: 80, Path: "/x"},
		{Host: "127.0.0.1", Port: 9, Path: "/x"},
		{Host: "127.0.0.1", Port: 65535, Path: "/x%"},
	} {
		if got, want := u.stringLen(), len(u.String()); got != want {
			t.Errorf("%+v: stringLen %d, len(String()) %d", u, got, want)
		}
	}
}
