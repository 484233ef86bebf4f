package mirrorurl

import (
	"errors"
	"testing"
)

// Mirrors at IPv6 literals, as apt sends them: in URL-prefix mode the
// bracketed literal follows the daemon's address unencoded
// ("GET /[fd42:0:0:2::11]:8080/debian/... HTTP/1.1", for
// "deb http://[::1]:9977/[fd42:0:0:2::11]:8080/debian ..."), in proxy mode
// it is the absolute URI ("GET http://[fd42:0:0:2::11]:8080/debian/...").
// Every spelling of one address is one mirror with one index key, the
// upstream URL and Host header carry the brackets, and a zone is refused.
func TestIPv6Mirrors(t *testing.T) {
	const site = "[fd42:0:0:2::11]:8080"
	for _, raw := range []string{
		"/[fd42:0:0:2::11]:8080/debian/dists/stable/InRelease",
		"/[FD42:0000:0:2:0:0:0:11]:8080/debian/dists/stable/InRelease",
		"http://[fd42:0:0:2::11]:8080/debian/dists/stable/InRelease",
		"http://[fd42:0:0:2:0::11]:8080/debian/dists/stable/InRelease",
	} {
		parse := ParsePrefix
		if raw[0] != '/' {
			parse = ParseAbsolute
		}
		u, err := parse(raw)
		if err != nil {
			t.Fatalf("%s: %v", raw, err)
		}
		if u.Site() != site || u.Host != "fd42:0:0:2::11" || u.Addr() != site || u.HostHeader() != site {
			t.Errorf("%s: site %q host %q addr %q Host header %q", raw, u.Site(), u.Host, u.Addr(), u.HostHeader())
		}
		if got := u.String(); got != "http://"+site+"/debian/dists/stable/InRelease" {
			t.Errorf("%s: upstream URL %q", raw, got)
		}
	}
	u, err := ParsePrefix("/https/[2001:db8::80]/debian/pool/main/h/hello/hello_1_all.deb")
	if err != nil || u.Site() != "https:[2001:db8::80]:443" || u.HostHeader() != "[2001:db8::80]" || u.String() != "https://[2001:db8::80]/debian/pool/main/h/hello/hello_1_all.deb" {
		t.Errorf("https IPv6 mirror: %+v %v", u, err)
	}
	for _, raw := range []string{
		"/[fe80::1%25eth0]:80/debian/dists/x/Release", // a zone: meaningless to anyone else
		"/[fd42::11/debian/dists/x/Release",           // no closing bracket
		"/[fd42::11]x/debian/dists/x/Release",
		"/[not-an-address]/debian/dists/x/Release",
		"/fd42::11/debian/dists/x/Release", // unbracketed: its last colon would read as a port
	} {
		if _, err := ParsePrefix(raw); !errors.Is(err, ErrBadHost) {
			t.Errorf("%s: %v, want ErrBadHost", raw, err)
		}
	}
}
