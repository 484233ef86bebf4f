package aptindex

import (
	"errors"
	"net"
	"strings"
)

// ErrBadURL is returned by SplitURL for a URL it cannot split.
var ErrBadURL = errors.New("aptindex: not an http:// URL with a host")

// Site returns host:port for a URL host, adding the default port 80.
func Site(host string) string {
	if _, _, err := net.SplitHostPort(host); err == nil {
		return host
	}
	return host + ":80" // also right for a bracketed IPv6 literal: "[::1]:80"
}

// SplitPath splits a mirror URL path into the repository's base directory and
// the path inside it, as the original's extractPath (reference §4.9): the later
// of the last "/dists/" and the last "/pool/" starts the path and what comes
// before it is the base directory. A path with neither (a flat repository, a
// top-level file) falls back to the longest base directory known for the site
// (known may be nil) of which it is inside, else to an empty base directory.
func SplitPath(site, urlPath string, known func(site string) []string) (baseDir, path string) {
	i := strings.LastIndex(urlPath, "/dists/")
	if j := strings.LastIndex(urlPath, "/pool/"); j > i {
		i = j
	}
	if i >= 0 {
		return urlPath[:i], urlPath[i:]
	}
	if known != nil {
		best := -1
		for _, b := range known(site) {
			if len(b) > best && len(urlPath) > len(b) && strings.HasPrefix(urlPath, b) && urlPath[len(b)] == '/' {
				best = len(b)
			}
		}
		if best > 0 {
			return urlPath[:best], urlPath[best:]
		}
	}
	return "", urlPath
}

// SplitURL splits "http://host[:port]/path" into site, base directory and path
// (reference §6.9 vectors). The path is used as given: percent-decoding is the
// caller's job.
func SplitURL(rawURL string, known func(site string) []string) (site, baseDir, path string, err error) {
	rest, ok := strings.CutPrefix(rawURL, "http://")
	if !ok {
		return "", "", "", ErrBadURL
	}
	host, p := rest, "/"
	if i := strings.IndexByte(rest, '/'); i >= 0 {
		host, p = rest[:i], rest[i:]
	}
	if host == "" {
		return "", "", "", ErrBadURL
	}
	site = Site(host)
	baseDir, path = SplitPath(site, p, known)
	return site, baseDir, path, nil
}

// Kinds of index file.
type kind uint8

const (
	kindNone kind = iota
	kindRelease
	kindPackages
	kindSources
)

// compression suffixes understood for Packages and Sources.
var compExts = [...]string{"", ".gz", ".xz", ".bz2", ".zst", ".lz4"}

// classifyName tells what index a file name (last path component) is.
func classifyName(base string) kind {
	if strings.EqualFold(base, "Release") || strings.EqualFold(base, "InRelease") {
		return kindRelease
	}
	for _, ext := range compExts {
		if len(base) < len(ext) || !strings.EqualFold(base[len(base)-len(ext):], ext) {
			continue
		}
		switch root := base[:len(base)-len(ext)]; {
		case strings.EqualFold(root, "Packages"):
			return kindPackages
		case strings.EqualFold(root, "Sources"):
			return kindSources
		}
	}
	return kindNone
}

// IsIndex reports whether Add parses the file at path by its name: Release,
// InRelease, and Packages or Sources plain or compressed with gzip, xz, bzip2,
// zstd or lz4. by-hash paths are indexes too when a Release names them; see
// (*Index).IsIndex.
func IsIndex(path string) bool {
	return classifyName(baseName(path)) != kindNone
}

func baseName(p string) string {
	if i := strings.LastIndexByte(p, '/'); i >= 0 {
		return p[i+1:]
	}
	return p
}

func dirName(p string) string {
	if i := strings.LastIndexByte(p, '/'); i >= 0 {
		return p[:i]
	}
	return ""
}

// slotName is the uncompressed name an index file's entries are kept under.
func slotName(dir string, k kind) string {
	switch k {
	case kindRelease:
		return dir + "/Release"
	case kindPackages:
		return dir + "/Packages"
	case kindSources:
		return dir + "/Sources"
	}
	return ""
}

// hashDirNames are the directory names under by-hash/ and the type each means.
var hashDirNames = [...]struct {
	name string
	t    uint8
}{{"MD5Sum", 0}, {"SHA1", 1}, {"SHA256", 2}, {"SHA512", 3}}

// splitByHash recognises "<dir>/by-hash/<TYPE>/<hex>" and returns dir, the type
// and the hex string.
func splitByHash(p string) (dir string, t uint8, hx string, ok bool) {
	i := strings.LastIndex(p, "/by-hash/")
	if i < 0 {
		return "", 0, "", false
	}
	rest := p[i+len("/by-hash/"):]
	j := strings.IndexByte(rest, '/')
	if j < 0 {
		return "", 0, "", false
	}
	for _, h := range hashDirNames {
		if rest[:j] == h.name {
			return p[:i], h.t, rest[j+1:], true
		}
	}
	return "", 0, "", false
}
