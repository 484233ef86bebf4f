package httpserve

import "testing"

func TestContentType(t *testing.T) {
	for name, want := range map[string]string{
		"debian/pool/main/h/hello/hello_2.10-3_amd64.deb": "application/vnd.debian.binary-package",
		"dists/bookworm/InRelease":                        "text/plain; charset=utf-8",
		"dists/bookworm/Release.gpg":                      "application/pgp-signature",
		"dists/bookworm/main/binary-amd64/Packages.xz":    "application/x-xz",
		"dists/bookworm/main/source/Sources.gz":           "application/gzip",
		"pool/main/h/hello/hello_2.10-3.dsc":              "text/plain; charset=utf-8",
		"pool/main/h/hello/hello_2.10.orig.tar.gz":        "application/gzip",
		"by-hash/SHA256/0123abcd":                         "application/octet-stream",
		"":                                                "application/octet-stream",
	} {
		if got := ContentType(name); got != want {
			t.Errorf("ContentType(%q) = %q, want %q", name, got, want)
		}
	}
}
