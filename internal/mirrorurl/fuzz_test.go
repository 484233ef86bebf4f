package mirrorurl

import (
	"strconv"
	"strings"
	"testing"
)

// FuzzParse: whatever apt (or anyone) sends, an accepted request names a
// normalised mirror path (nothing that climbs out of the tree or smuggles
// bytes into the upstream request line), and the URL is canonical: parsing
// its own rendering gives it back, so one file has one cache key however the
// request spelled it (§8.2 item 10).
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"/deb.debian.org/debian/dists/bookworm/InRelease",
		"/https/security.debian.org/debian-security/dists/x/Release",
		"/127.0.0.1:8000/debian/pool/main/h/hello/hello_2.10%2B1_amd64.deb",
		"/[::1]:81/debian//dists/x/Release?x=1",
		"/deb.debian.org/debian/pool/%2e%2e/x",
		"/deb.debian.org/debian/pool/main/libg++/libg++_1.0~rc%3a1.deb",
		"http://deb.debian.org/debian/pool/main/a/a/a b.deb",
		"https://[2001:db8::1]:8443/debian/dists/x/Release",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		parse := ParsePrefix
		if strings.HasPrefix(raw, "http://") || strings.HasPrefix(raw, "https://") {
			parse = ParseAbsolute
		}
		u, err := parse(raw)
		if err != nil {
			return
		}
		if !strings.HasPrefix(u.Path, "/") || mirrorShaped(u.Path) != nil {
			t.Fatalf("%q: accepted path %q", raw, u.Path)
		}
		for _, seg := range strings.Split(u.Path[1:], "/") {
			if seg == "" || seg == "." || seg == ".." {
				t.Fatalf("%q: path %q has segment %q", raw, u.Path, seg)
			}
		}
		if strings.ContainsAny(u.Path, "\x00\r\n\\") || strings.ContainsAny(u.RequestPath(), " \t\r\n\x00?#") {
			t.Fatalf("%q: path %q / request path %q carries unsafe bytes", raw, u.Path, u.RequestPath())
		}
		if u.Port <= 0 || u.Port > 65535 || strings.ContainsAny(u.Host, "@/ \\") {
			t.Fatalf("%q: host %q port %d", raw, u.Host, u.Port)
		}
		back, err := ParseAbsolute(u.String())
		if err != nil || back != u {
			t.Fatalf("%q: %s parses back as %+v, %v (was %+v)", raw, u, back, err, u)
		}
		prefix := "/" + u.Host
		if strings.Contains(u.Host, ":") {
			prefix = "/[" + u.Host + "]"
		}
		prefix += ":" + strconv.Itoa(u.Port)
		if u.TLS {
			prefix = "/https" + prefix
		}
		back, err = ParsePrefix(prefix + u.RequestPath())
		if err != nil || back != u {
			t.Fatalf("%q: prefix form %q parses as %+v, %v (was %+v)", raw, prefix+u.RequestPath(), back, err, u)
		}
	})
}
