// Package mirrorurl turns apt requests (URL-prefix mode and proxy mode) into
// the mirror file they name, normalising the path and refusing anything that
// is not a Debian mirror path, so the daemon can never be used as an open proxy.
package mirrorurl

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
)

// URL is an apt request turned into the mirror file it names.
type URL struct {
	TLS  bool   // fetch upstream over https
	Host string // host name or IP literal (in its canonical form), no port, no brackets
	Port int    // 80 or 443 unless given
	Path string // percent-decoded, normalised, starting with '/'
}

// Site is the mirror's key in the apt index: "host:port", as the original
// (§4.9), and "https:host:port" for a mirror fetched over TLS, so that the
// indexes of an https mirror stay apart from a plain one on the same host.
// It is the only place that key is made: the request path, the reload of
// cached indexes at start-up and the lookup tool all use it.
func (u URL) Site() string {
	hp := net.JoinHostPort(u.Host, strconv.Itoa(u.Port))
	if u.TLS {
		return "https:" + hp
	}
	return hp
}

// Addr is where to connect.
func (u URL) Addr() string { return net.JoinHostPort(u.Host, strconv.Itoa(u.Port)) }

// HostHeader is the Host header for the mirror: with the port when it is not the
// scheme's default (the original always dropped it, §8.2 item 12).
func (u URL) HostHeader() string {
	if (u.TLS && u.Port == 443) || (!u.TLS && u.Port == 80) {
		if strings.Contains(u.Host, ":") {
			return "[" + u.Host + "]"
		}
		return u.Host
	}
	return u.Addr()
}

// RequestPath is Path escaped for a request line (each segment percent-encoded
// where needed; '+' and '~' stay as Debian file names use them).
func (u URL) RequestPath() string {
	if !needsPathEscape(u.Path) {
		return u.Path // the common case, without a copy: it runs for every apt request
	}
	segs := strings.Split(u.Path, "/")
	for i, s := range segs {
		segs[i] = url.PathEscape(s)
	}
	return strings.Join(segs, "/")
}

// String is the upstream URL.
func (u URL) String() string {
	scheme := "http://"
	if u.TLS {
		scheme = "https://"
	}
	return scheme + u.HostHeader() + u.RequestPath()
}

// Request-shape errors. They become 400/403/404 answers, never upstream fetches.
// Parse errors wrap them with what was wrong and the form expected; the HTTP
// front puts that message in the status line apt shows.
var (
	ErrNotMirrorPath = errors.New("mirrorurl: not a Debian mirror path (expected .../dists/... or .../pool/...)")
	ErrBadHost       = errors.New("mirrorurl: bad mirror host")
	ErrBadPath       = errors.New("mirrorurl: bad path")
	ErrBlocked       = errors.New("mirrorurl: not served (pdiffs and favicon.ico are refused so apt falls back)")
	// ErrFullURL: a whole URL pasted after the daemon's address
	// (http://localhost:9977/http://deb.debian.org/debian), which would
	// otherwise read as a mirror named "http".
	ErrFullURL = errors.New("mirrorurl: a full URL after the daemon's address")
)

// maxURILen bounds what we parse; apt's paths are far shorter.
const maxURILen = 2048

// ParsePrefix parses a URL-prefix request path: /<host[:port]>/<mirror path>, or
// /https/<host[:port]>/<mirror path> for a mirror that must be fetched over TLS
// (apt keeps talking plain HTTP to the daemon). raw is the request URI as sent.
func ParsePrefix(raw string) (URL, error) {
	if len(raw) > maxURILen || !strings.HasPrefix(raw, "/") {
		return URL{}, ErrBadPath
	}
	if q := strings.IndexAny(raw, "?#"); q >= 0 {
		raw = raw[:q]
	}
	rest := raw[1:]
	if err := fullURL(rest); err != nil {
		return URL{}, err
	}
	var u URL
	if strings.HasPrefix(rest, "https/") {
		u.TLS = true
		rest = rest[len("https/"):]
	}
	slash := strings.IndexByte(rest, '/')
	if slash <= 0 {
		return URL{}, ErrNotMirrorPath
	}
	if err := u.setHostPort(rest[:slash]); err != nil {
		return URL{}, fmt.Errorf("%w %q: expected /<host>[:<port>]/<path> after the daemon's address (e.g. /deb.debian.org/debian/...)", err, rest[:slash])
	}
	p, err := cleanPath(rest[slash:])
	if err != nil {
		return URL{}, err
	}
	u.Path = p
	return u.finish()
}

// fullURL refuses a prefix-mode path that starts with a URL scheme, saying
// which form to write instead.
func fullURL(rest string) error {
	seg, after, _ := strings.Cut(rest, "/")
	seg = strings.ToLower(seg)
	var tls bool
	switch {
	case seg == "http:" || strings.HasPrefix(seg, "http%3a"):
	case seg == "https:" || strings.HasPrefix(seg, "https%3a"):
		tls = true
	default:
		return nil
	}
	// after is "/host/first/..." for "http://host/first/...".
	parts := strings.SplitN(strings.TrimLeft(after, "/"), "/", 3)
	if len(parts) < 2 || parts[0] == "" || len(parts[0]) > 253 {
		return fmt.Errorf("%w: write the mirror without its scheme: /<host>/<path>, or /https/<host>/<path> for an https mirror", ErrFullURL)
	}
	host, first := strings.ToLower(parts[0]), parts[1]
	if tls {
		return fmt.Errorf("%w: write /https/%s/%s/... instead of /https://%s/%s/... (the daemon fetches it over TLS)", ErrFullURL, host, first, host, first)
	}
	return fmt.Errorf("%w: write /%s/%s/... instead of /http://%s/%s/... (/https/%s/%s/... for https)", ErrFullURL, host, first, host, first, host, first)
}

// ParseAbsolute parses a proxy-mode request URI: http://host[:port]/path.
func ParseAbsolute(raw string) (URL, error) {
	if len(raw) > maxURILen {
		return URL{}, ErrBadPath
	}
	var u URL
	switch {
	case strings.HasPrefix(raw, "http://"):
		raw = raw[len("http://"):]
	case strings.HasPrefix(raw, "https://"):
		u.TLS = true
		raw = raw[len("https://"):]
	default:
		return URL{}, ErrBadPath
	}
	if q := strings.IndexAny(raw, "?#"); q >= 0 {
		raw = raw[:q]
	}
	slash := strings.IndexByte(raw, '/')
	if slash <= 0 {
		return URL{}, ErrNotMirrorPath
	}
	if err := u.setHostPort(raw[:slash]); err != nil {
		return URL{}, fmt.Errorf("%w %q", err, raw[:slash])
	}
	p, err := cleanPath(raw[slash:])
	if err != nil {
		return URL{}, err
	}
	u.Path = p
	return u.finish()
}

// finish checks the parsed URL as a whole: mirror-shaped, and short enough
// once rendered (percent-encoding can triple raw bytes), so every accepted URL
// parses back from its own rendering: one file, one cache key.
// needsPathEscape reports whether url.PathEscape would change a segment of p (split at '/'):
// false when every byte is one PathEscape keeps.
func needsPathEscape(p string) bool {
	for i := 0; i < len(p); i++ {
		c := p[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case c == '/', c == '-', c == '_', c == '.', c == '~', c == '$', c == '&', c == '+', c == ':', c == '=', c == '@':
		default:
			return true
		}
	}
	return false
}

// stringLen is len(u.String()), without building it.
func (u URL) stringLen() int {
	n := len("http://") + len(u.RequestPath())
	if u.TLS {
		n++
	}
	brackets := 0
	if strings.Contains(u.Host, ":") {
		brackets = 2
	}
	if (u.TLS && u.Port == 443) || (!u.TLS && u.Port == 80) {
		return n + len(u.Host) + brackets
	}
	digits := 1
	for p := u.Port; p >= 10; p /= 10 {
		digits++
	}
	return n + len(u.Host) + brackets + 1 + digits
}

func (u URL) finish() (URL, error) {
	if u.stringLen() > maxURILen {
		return URL{}, ErrBadPath
	}
	return u, mirrorShaped(u.Path)
}

func (u *URL) setHostPort(hp string) error {
	if strings.ContainsAny(hp, "@%\\ \t") {
		return ErrBadHost // no userinfo, no encoded or smuggled characters
	}
	host, port := hp, ""
	if strings.HasPrefix(hp, "[") {
		end := strings.IndexByte(hp, ']')
		if end < 0 {
			return ErrBadHost
		}
		host = hp[1:end]
		if rest := hp[end+1:]; rest != "" {
			if rest[0] != ':' {
				return ErrBadHost
			}
			port = rest[1:]
		}
		if _, err := netip.ParseAddr(host); err != nil {
			return ErrBadHost
		}
	} else if i := strings.LastIndexByte(hp, ':'); i >= 0 {
		host, port = hp[:i], hp[i+1:]
	}
	if !validHost(host) {
		return ErrBadHost
	}
	u.Host = strings.ToLower(host)
	if a, err := netip.ParseAddr(host); err == nil {
		// One spelling per address, so one index key (Site) per mirror:
		// [FD42:0:0:2:0:0:0:11] and [fd42:0:0:2::11] are one mirror.
		u.Host = a.String()
	}
	u.Port = 80
	if u.TLS {
		u.Port = 443
	}
	if port != "" || strings.HasSuffix(hp, ":") {
		n, err := strconv.Atoi(port)
		if err != nil || n <= 0 || n > 65535 {
			return ErrBadHost
		}
		u.Port = n
	}
	return nil
}

// validHost accepts DNS names and IP literals.
func validHost(h string) bool {
	if h == "" || len(h) > 253 {
		return false
	}
	if _, err := netip.ParseAddr(h); err == nil {
		return true
	}
	for _, label := range strings.Split(h, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return false
			}
		}
	}
	return true
}

// cleanPath percent-decodes p once and normalises it. It refuses what could
// escape the mirror tree or smuggle another request: "..", ".", encoded slashes
// and control characters. Empty segments ("//") collapse.
func cleanPath(p string) (string, error) {
	dec, err := unescape(p)
	if err != nil {
		return "", err
	}
	if isClean(dec) {
		return dec, nil // nothing to drop: the common case, without splitting and joining
	}
	segs := strings.Split(dec, "/")
	out := make([]string, 0, len(segs))
	for _, s := range segs {
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

// isClean reports whether p (starting with '/') is already what cleanPath makes of it: no
// empty, "." or ".." segment and no trailing slash.
func isClean(p string) bool {
	return len(p) > 1 && p[0] == '/' && p[len(p)-1] != '/' &&
		!strings.Contains(p, "//") && !strings.Contains(p, "/./") && !strings.Contains(p, "/../") &&
		!strings.HasSuffix(p, "/.") && !strings.HasSuffix(p, "/..")
}

func unescape(s string) (string, error) {
	if !needsUnescape(s) {
		return s, nil
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '%' {
			if i+2 >= len(s) || unhex(s[i+1]) < 0 || unhex(s[i+2]) < 0 {
				return "", ErrBadPath
			}
			c = byte(unhex(s[i+1])<<4 | unhex(s[i+2]))
			if c == '/' || c == '\\' {
				return "", ErrBadPath // an encoded slash would change how the path splits
			}
			i += 2
		}
		if c < 0x20 || c == 0x7f || c == '\\' {
			return "", ErrBadPath // raw or encoded: some servers take a backslash for a slash
		}
		b.WriteByte(c)
	}
	return b.String(), nil
}

// needsUnescape: s has an escape or a byte the slow path refuses (every
// control character and the backslash, not only NUL, CR and LF: the fuzz
// test found DEL, TAB and '\' accepted raw and refused percent-encoded).
func needsUnescape(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c == '%' || c < 0x20 || c == 0x7f || c == '\\' {
			return true
		}
	}
	return false
}

func unhex(c byte) int {
	switch {
	case c >= '0' && c <= '9':
		return int(c - '0')
	case c >= 'a' && c <= 'f':
		return int(c - 'a' + 10)
	case c >= 'A' && c <= 'F':
		return int(c - 'A' + 10)
	}
	return -1
}

// mirrorShaped accepts only what an apt source fetches from a Debian-style
// archive: files under a dists/ or pool/ directory. Everything else is refused,
// so the daemon can never be used as a general proxy.
func mirrorShaped(p string) error {
	if !strings.Contains(p, "/dists/") && !strings.Contains(p, "/pool/") {
		return ErrNotMirrorPath
	}
	base := p[strings.LastIndexByte(p, '/')+1:]
	if base == "favicon.ico" || strings.Contains(p, "/Packages.diff/") || strings.Contains(p, "/Sources.diff/") ||
		strings.HasSuffix(p, "/Packages.diff") || strings.HasSuffix(p, "/Sources.diff") {
		return ErrBlocked
	}
	if strings.HasSuffix(p, "/") {
		return ErrNotMirrorPath
	}
	return nil
}
