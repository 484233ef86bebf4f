package node

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/apt-p2p/apt-p2p/internal/clock"
	"github.com/apt-p2p/apt-p2p/internal/mirrorurl"
)

// mirrorCache keeps files that the index gives no hash for (Release, InRelease,
// Release.gpg, and anything apt asks for before its index is known) under their
// mirror path, with the validators needed for conditional requests. Hashed files
// never live here: they go to the content-addressed piece store.
//
// Many apt clients asking for the same index at once (cron on a fleet) share one
// upstream request, and a copy validated less than freshFor ago is served
// without asking the mirror again (apt-cacher-ng's FreshIndexMaxAge idea).
type mirrorCache struct {
	dir      string
	freshFor time.Duration
	clk      clock.Clock // dates revalidations (freshFor)
	client   *fasthttp.Client
	maxSize  int64

	mu      sync.Mutex
	flights map[string]*flight
}

type flight struct {
	done chan struct{}
	res  cachedFile
	err  error
}

// fileMeta is stored beside each cached file.
type fileMeta struct {
	URL          string    `json:"url"`
	LastModified string    `json:"last_modified,omitempty"`
	ETag         string    `json:"etag,omitempty"`
	ContentType  string    `json:"content_type,omitempty"`
	Validated    time.Time `json:"validated"`
	Size         int64     `json:"size"`
}

// cachedFile is the outcome of a lookup: a path on disk, or an upstream status to relay.
type cachedFile struct {
	path    string
	meta    fileMeta
	status  int  // upstream status when it is not a cacheable 200 (404, 500, ...)
	fetched bool // new content arrived from upstream (parse it if it is an index)
	stale   bool // upstream failed; this is an older copy
}

const metaSuffix = ".apt-p2p-meta"

// maxUnhashedSize bounds a file fetched without a known hash.
const maxUnhashedSize = 1 << 30

func newMirrorCache(dir string, freshFor time.Duration, userAgent string, tlsConfig *tls.Config) *mirrorCache {
	return &mirrorCache{
		dir:      dir,
		freshFor: freshFor,
		clk:      clock.Real,
		maxSize:  maxUnhashedSize,
		flights:  map[string]*flight{},
		client: &fasthttp.Client{
			Name:                     userAgent,
			ReadTimeout:              60 * time.Second,
			WriteTimeout:             30 * time.Second,
			MaxIdleConnDuration:      30 * time.Second,
			MaxConnsPerHost:          16,
			StreamResponseBody:       true,
			DisablePathNormalizing:   true,
			NoDefaultUserAgentHeader: false,
			TLSConfig:                tlsConfig,
			Dial: func(addr string) (net.Conn, error) {
				// DualStack: fasthttp.DialTimeout resolves IPv4 only, and a
				// mirror at [fd42::80] was "no such host".
				return fasthttp.DialDualStackTimeout(addr, 10*time.Second)
			},
		},
	}
}

// localPath maps a mirror URL to its place under the cache directory.
func (c *mirrorCache) localPath(u mirrorurl.URL) string {
	scheme := "http"
	if u.TLS {
		scheme = "https"
	}
	// u.Path is normalised (no "..", no empty segments), so Join cannot escape.
	return filepath.Join(c.dir, scheme, strings.ReplaceAll(u.Addr(), ":", "_"), filepath.FromSlash(u.Path))
}

// clientMaxAge reads how old a cached answer the client accepts from its
// Cache-Control and Pragma headers; -1 when it does not say. apt sends
// "Cache-Control: max-age=0" for index files during apt-get update
// (Acquire::http::Max-Age), and it must then see a Release file the mirror has
// replaced, not our copy of a minute ago: the revalidation is a conditional
// request, cheap when nothing changed, and concurrent updates still share one.
func clientMaxAge(cacheControl, pragma []byte) time.Duration {
	if bytes.Contains(bytes.ToLower(pragma), []byte("no-cache")) {
		return 0
	}
	age := time.Duration(-1)
	for _, d := range bytes.Split(bytes.ToLower(cacheControl), []byte(",")) {
		d = bytes.TrimSpace(d)
		switch {
		case bytes.Equal(d, []byte("no-cache")), bytes.Equal(d, []byte("no-store")):
			return 0
		case bytes.HasPrefix(d, []byte("max-age=")):
			n, err := strconv.ParseInt(string(bytes.Trim(d[len("max-age="):], `"`)), 10, 64)
			if err != nil || n < 0 {
				return 0 // unparsable: be safe and revalidate
			}
			if n > 1<<31 {
				n = 1 << 31
			}
			age = time.Duration(n) * time.Second
		}
	}
	return age
}

func readMeta(path string) (fileMeta, bool) {
	var m fileMeta
	b, err := os.ReadFile(path + metaSuffix)
	if err != nil || json.Unmarshal(b, &m) != nil {
		return m, false
	}
	st, err := os.Stat(path)
	if err != nil || st.Size() != m.Size {
		return m, false // data and metadata disagree: treat as absent
	}
	return m, true
}

// get returns the file for u, revalidating with the mirror unless the cached
// copy is fresh: validated less than freshFor ago, and less than maxAge ago
// (the client's Cache-Control; negative: no limit). Concurrent calls for one
// URL share one upstream request.
func (c *mirrorCache) get(ctx context.Context, u mirrorurl.URL, maxAge time.Duration) (cachedFile, error) {
	key := u.String()
	path := c.localPath(u)
	fresh := c.freshFor
	// HTTP ages are whole seconds: a copy validated less than a second ago
	// has age 0 and satisfies max-age=0. That second lets a fleet's
	// simultaneous apt-get updates share one revalidation even when they do
	// not overlap exactly.
	if maxAge >= 0 && maxAge+time.Second < fresh {
		fresh = maxAge + time.Second
	}
	if m, ok := readMeta(path); ok && clock.Since(c.clk, m.Validated) < fresh {
		return cachedFile{path: path, meta: m}, nil
	}
	c.mu.Lock()
	if f, ok := c.flights[key]; ok {
		c.mu.Unlock()
		select {
		case <-f.done:
			// Only the request that fetched counts the mirror's bytes and
			// parses the new index; the others are served the daemon's copy.
			res := f.res
			res.fetched = false
			return res, f.err
		case <-ctx.Done():
			return cachedFile{}, ctx.Err()
		}
	}
	f := &flight{done: make(chan struct{})}
	c.flights[key] = f
	c.mu.Unlock()

	f.res, f.err = c.fetch(u, path)
	c.mu.Lock()
	delete(c.flights, key)
	c.mu.Unlock()
	close(f.done)
	return f.res, f.err
}

// fetch asks the mirror, conditionally when a copy exists. If the mirror cannot
// be reached, an existing copy is served (stale) rather than failing apt.
func (c *mirrorCache) fetch(u mirrorurl.URL, path string) (cachedFile, error) {
	old, haveOld := readMeta(path)
	req := fasthttp.AcquireRequest()
	resp := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.SetRequestURI(u.String())
	req.Header.SetHost(u.HostHeader())
	if haveOld {
		if old.LastModified != "" {
			req.Header.Set("If-Modified-Since", old.LastModified)
		}
		if old.ETag != "" {
			req.Header.Set("If-None-Match", old.ETag)
		}
	}
	err := c.client.DoTimeout(req, resp, 60*time.Second)
	if err != nil {
		if haveOld {
			return cachedFile{path: path, meta: old, stale: true}, nil
		}
		return cachedFile{}, &mirrorUnreachable{addr: u.Addr(), why: unreachableReason(err), err: err}
	}
	defer resp.CloseBodyStream() //nolint:errcheck // nothing to do about a close error
	switch code := resp.StatusCode(); {
	case code == fasthttp.StatusNotModified && haveOld:
		old.Validated = c.clk.Now()
		_ = writeMeta(path, old)
		return cachedFile{path: path, meta: old}, nil
	case code != fasthttp.StatusOK:
		if code >= 500 && haveOld {
			return cachedFile{path: path, meta: old, stale: true}, nil
		}
		return cachedFile{status: code}, nil
	}
	meta := fileMeta{
		URL:          u.String(),
		LastModified: string(resp.Header.Peek("Last-Modified")),
		ETag:         string(resp.Header.Peek("ETag")),
		ContentType:  string(resp.Header.ContentType()),
		Validated:    c.clk.Now(),
	}
	n, err := writeAtomic(path, resp.BodyStream(), c.maxSize)
	if err != nil {
		if haveOld {
			return cachedFile{path: path, meta: old, stale: true}, nil
		}
		return cachedFile{}, fmt.Errorf("mirror %s: %w", u, err)
	}
	meta.Size = n
	if err := writeMeta(path, meta); err != nil {
		return cachedFile{}, err
	}
	return cachedFile{path: path, meta: meta, fetched: true}, nil
}

// mirrorUnreachable is a mirror that could not be asked at all. Its message
// is short and says why, since it becomes the status line apt shows:
// "mirror deb.debain.org:80 unreachable: no such host".
type mirrorUnreachable struct {
	addr, why string
	err       error
}

func (e *mirrorUnreachable) Error() string { return "mirror " + e.addr + " unreachable: " + e.why }
func (e *mirrorUnreachable) Unwrap() error { return e.err }

// unreachableReason says in a few words why a request to a mirror failed
// before any answer: the client's errors name its internals ("error when
// dialing ...: dial tcp4 ...: connect: ...") or the resolver's address.
func unreachableReason(err error) string {
	var dnsErr *net.DNSError
	var unknownCA x509.UnknownAuthorityError
	var badName x509.HostnameError
	var invalid x509.CertificateInvalidError
	var notTLS tls.RecordHeaderError
	switch {
	case errors.As(err, &dnsErr) && dnsErr.IsNotFound,
		// The client dials IPv4 only; a name without an IPv4 address (or
		// one the resolver must not look up, like .onion) ends here.
		strings.Contains(err.Error(), "couldn't find dns entries"):
		return "no such host"
	case errors.As(err, &dnsErr):
		return "name lookup failed: " + dnsErr.Err
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	case errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH):
		return "no route to host"
	case errors.Is(err, fasthttp.ErrDialTimeout), errors.Is(err, fasthttp.ErrTimeout), errors.Is(err, os.ErrDeadlineExceeded):
		return "timed out"
	case errors.As(err, &unknownCA):
		return "its TLS certificate is signed by an unknown authority (set UPSTREAM_CA_FILE to trust its CA)"
	case errors.As(err, &badName):
		return "its TLS certificate is not valid for " + badName.Host
	case errors.As(err, &invalid):
		return "its TLS certificate is invalid: " + invalid.Error()
	case errors.As(err, &notTLS):
		return "it does not speak TLS (an http mirror written as https/...?)"
	}
	return err.Error()
}

var errTooLarge = errors.New("node: file larger than the limit for files without a known hash")

// writeAtomic writes r to path through a temporary file, fsync and rename, so a
// crash never leaves a partial file under the real name.
func writeAtomic(path string, r io.Reader, max int64) (int64, error) {
	if r == nil {
		r = strings.NewReader("")
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return 0, err
	}
	tmp, err := os.CreateTemp(dir, ".tmp-*")
	if err != nil {
		return 0, err
	}
	defer os.Remove(tmp.Name())
	n, err := io.Copy(tmp, io.LimitReader(r, max+1))
	if err == nil && n > max {
		err = errTooLarge
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return 0, err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return 0, err
	}
	syncDir(dir)
	return n, nil
}

func writeMeta(path string, m fileMeta) error {
	b, _ := json.Marshal(m)
	_, err := writeAtomic(path+metaSuffix, strings.NewReader(string(b)), 1<<20)
	return err
}

func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
}

// walk calls fn for every cached file (for rebuilding the index at start-up).
func (c *mirrorCache) walk(fn func(path string, m fileMeta)) error {
	return filepath.WalkDir(c.dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || strings.HasSuffix(p, metaSuffix) || strings.HasPrefix(d.Name(), ".tmp-") {
			if err == nil && strings.HasPrefix(d.Name(), ".tmp-") {
				os.Remove(p) // left by a crash
			}
			return nil
		}
		if m, ok := readMeta(p); ok {
			fn(p, m)
		}
		return nil
	})
}
