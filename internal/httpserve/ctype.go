package httpserve

import "strings"

// ContentType returns the Content-Type for a file served to apt, from its name (the original chose
// it by extension too). apt does not look at it; proxies and browsers on the status page do.
// Unknown names get application/octet-stream.
func ContentType(name string) string {
	if i := strings.LastIndexByte(name, '/'); i >= 0 {
		name = name[i+1:]
	}
	switch name {
	case "Release", "InRelease", "Packages", "Sources", "Index", "Translation-en":
		return "text/plain; charset=utf-8"
	}
	ext := name
	if i := strings.LastIndexByte(name, '.'); i >= 0 {
		ext = name[i:]
	}
	switch ext {
	case ".deb", ".udeb", ".ddeb":
		return "application/vnd.debian.binary-package"
	case ".dsc", ".changes", ".buildinfo":
		return "text/plain; charset=utf-8"
	case ".gpg", ".asc":
		return "application/pgp-signature"
	case ".gz":
		return "application/gzip"
	case ".xz":
		return "application/x-xz"
	case ".bz2":
		return "application/x-bzip2"
	case ".lzma":
		return "application/x-lzma"
	case ".zst":
		return "application/zstd"
	}
	return octetStream
}
