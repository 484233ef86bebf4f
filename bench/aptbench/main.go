// Command aptbench is the helper of the proxy, cold-fetch and memory benchmarks (bench/proxy.sh,
// bench/cold.sh, bench/memory.sh). It is a benchmark harness, not part of the daemon.
//
//	aptbench gen -dir D -spec small:1000:51200,big:1:104857600 [-seed N]
//	    writes an unsigned apt repository under D/debian: pool/main/.../<name>_1.0-1_amd64.deb files of
//	    random bytes (no dpkg-deb: the caches only look at names, sizes and hashes), their
//	    dists/stable/main/binary-amd64/Packages{,.xz} index and a Release listing it, plus
//	    D/list-<group> (one pool path per line, relative to D) and D/list-all.
//	aptbench release -dir DISTDIR -suite S FILE...
//	    writes DISTDIR/Release listing FILE... (paths relative to DISTDIR), for a copied index.
//	aptbench get -base URL -list FILE [-conns C] [-depth D] [-out TSV] [-prefix P]
//	    fetches base+P+line for every line of FILE over C keep-alive connections with up to D
//	    pipelined requests on each (C=1 D=1: one at a time; C=1 D=10: apt's default pipelining),
//	    discards the bodies, and prints the wall time, the bytes and the median/p90 time to the
//	    first byte and to the last byte. -out writes one line per file: path, status, bytes,
//	    seconds to first byte, seconds to last byte (both from the moment its request was written).
//	aptbench syslog -socket /dev/log -out FILE
//	    receives syslog datagrams on a Unix socket and appends them to FILE until killed, for
//	    approx, which exits when it cannot connect to /dev/log (containers often have none).
//
// Every non-200 answer or short body is an error: a benchmark of a failing cache measures nothing.
package main

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"hash"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ulikunitz/xz"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: aptbench gen|release|get ...")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "gen":
		err = gen(os.Args[2:])
	case "release":
		err = release(os.Args[2:])
	case "get":
		err = get(os.Args[2:])
	case "syslog":
		err = syslogd(os.Args[2:])
	default:
		err = fmt.Errorf("unknown command %q", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "aptbench:", err)
		os.Exit(1)
	}
}

type group struct {
	name  string
	count int
	size  int64
}

func parseSpec(s string) ([]group, error) {
	var gs []group
	for _, part := range strings.Split(s, ",") {
		f := strings.Split(part, ":")
		if len(f) != 3 {
			return nil, fmt.Errorf("bad spec %q (want name:count:size)", part)
		}
		n, err1 := strconv.Atoi(f[1])
		sz, err2 := strconv.ParseInt(f[2], 10, 64)
		if err1 != nil || err2 != nil || n <= 0 || sz <= 0 {
			return nil, fmt.Errorf("bad spec %q", part)
		}
		gs = append(gs, group{f[0], n, sz})
	}
	return gs, nil
}

type sums struct {
	size              int64
	md5, sha1, sha256 string
}

func hashAll(data []byte) sums {
	hs := []hash.Hash{md5.New(), sha1.New(), sha256.New()}
	for _, h := range hs {
		h.Write(data)
	}
	return sums{int64(len(data)), hex.EncodeToString(hs[0].Sum(nil)), hex.EncodeToString(hs[1].Sum(nil)), hex.EncodeToString(hs[2].Sum(nil))}
}

func gen(args []string) error {
	fs := flag.NewFlagSet("gen", flag.ExitOnError)
	dir := fs.String("dir", "", "output directory")
	spec := fs.String("spec", "", "groups name:count:size, comma-separated")
	seed := fs.Uint64("seed", 1, "payload seed")
	fs.Parse(args)
	gs, err := parseSpec(*spec)
	if err != nil || *dir == "" {
		return fmt.Errorf("gen: need -dir and -spec: %v", err)
	}
	repo := filepath.Join(*dir, "debian")
	if err := os.MkdirAll(repo, 0o755); err != nil {
		return err
	}
	var pk bytes.Buffer
	all, err := os.Create(filepath.Join(*dir, "list-all"))
	if err != nil {
		return err
	}
	defer all.Close()
	for gi, g := range gs {
		lf, err := os.Create(filepath.Join(*dir, "list-"+g.name))
		if err != nil {
			return err
		}
		rng := rand.NewChaCha8([32]byte{byte(*seed), byte(*seed >> 8), byte(gi)})
		buf := make([]byte, 1<<20)
		for i := 0; i < g.count; i++ {
			name := fmt.Sprintf("bench-%s-%05d", g.name, i)
			rel := path.Join("pool/main", name[:7], name, name+"_1.0-1_amd64.deb")
			full := filepath.Join(repo, filepath.FromSlash(rel))
			if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
				return err
			}
			f, err := os.Create(full)
			if err != nil {
				return err
			}
			hs := []hash.Hash{md5.New(), sha1.New(), sha256.New()}
			w := io.MultiWriter(f, hs[0], hs[1], hs[2])
			for left := g.size; left > 0; {
				n := min(left, int64(len(buf)))
				rng.Read(buf[:n])
				if _, err := w.Write(buf[:n]); err != nil {
					f.Close()
					return err
				}
				left -= n
			}
			if err := f.Close(); err != nil {
				return err
			}
			fmt.Fprintf(&pk, "Package: %s\nVersion: 1.0-1\nArchitecture: amd64\nMaintainer: bench <bench@example.org>\n"+
				"Installed-Size: %d\nSection: misc\nPriority: optional\nDescription: benchmark payload\n"+
				"Filename: %s\nSize: %d\nMD5sum: %x\nSHA1: %x\nSHA256: %x\n\n",
				name, g.size>>10, rel, g.size, hs[0].Sum(nil), hs[1].Sum(nil), hs[2].Sum(nil))
			fmt.Fprintln(lf, "debian/"+rel)
			fmt.Fprintln(all, "debian/"+rel)
		}
		if err := lf.Close(); err != nil {
			return err
		}
	}
	dist := filepath.Join(repo, "dists", "stable")
	bin := filepath.Join(dist, "main", "binary-amd64")
	if err := os.MkdirAll(bin, 0o755); err != nil {
		return err
	}
	var xzb, gzb bytes.Buffer
	xw, err := xz.NewWriter(&xzb)
	if err != nil {
		return err
	}
	xw.Write(pk.Bytes())
	if err := xw.Close(); err != nil {
		return err
	}
	zw := gzip.NewWriter(&gzb)
	zw.Write(pk.Bytes())
	if err := zw.Close(); err != nil {
		return err
	}
	for name, data := range map[string][]byte{"Packages": pk.Bytes(), "Packages.xz": xzb.Bytes(), "Packages.gz": gzb.Bytes()} {
		if err := os.WriteFile(filepath.Join(bin, name), data, 0o644); err != nil {
			return err
		}
	}
	return writeRelease(dist, "stable", []string{"main/binary-amd64/Packages", "main/binary-amd64/Packages.gz", "main/binary-amd64/Packages.xz"})
}

func release(args []string) error {
	fs := flag.NewFlagSet("release", flag.ExitOnError)
	dir := fs.String("dir", "", "dists/<suite> directory")
	suite := fs.String("suite", "stable", "suite name")
	fs.Parse(args)
	if *dir == "" || fs.NArg() == 0 {
		return errors.New("release: need -dir and files")
	}
	return writeRelease(*dir, *suite, fs.Args())
}

func writeRelease(dist, suite string, files []string) error {
	ss := make([]sums, len(files))
	for i, f := range files {
		data, err := os.ReadFile(filepath.Join(dist, filepath.FromSlash(f)))
		if err != nil {
			return err
		}
		ss[i] = hashAll(data)
	}
	var rel bytes.Buffer
	fmt.Fprintf(&rel, "Origin: bench\nLabel: bench\nSuite: %s\nCodename: %s\nDate: %s\nArchitectures: amd64\nComponents: main\nDescription: apt-p2p benchmark repository\n",
		suite, suite, time.Now().Add(-time.Minute).UTC().Format(time.RFC1123))
	for _, sec := range []struct {
		name string
		get  func(s sums) string
	}{{"MD5Sum", func(s sums) string { return s.md5 }}, {"SHA1", func(s sums) string { return s.sha1 }}, {"SHA256", func(s sums) string { return s.sha256 }}} {
		rel.WriteString(sec.name + ":\n")
		for i, f := range files {
			fmt.Fprintf(&rel, " %s %16d %s\n", sec.get(ss[i]), ss[i].size, f)
		}
	}
	return os.WriteFile(filepath.Join(dist, "Release"), rel.Bytes(), 0o644)
}

type result struct {
	path        string
	status      int
	bytes       int64
	ttfb, total time.Duration
	err         error
}

func get(args []string) error {
	fs := flag.NewFlagSet("get", flag.ExitOnError)
	base := fs.String("base", "", "base URL, e.g. http://127.0.0.1:3142/127.0.0.1:8080/")
	list := fs.String("list", "", "file of paths, one a line")
	conns := fs.Int("conns", 1, "keep-alive connections")
	depth := fs.Int("depth", 1, "pipelined requests in flight per connection")
	out := fs.String("out", "", "per-file TSV output")
	quiet := fs.Bool("q", false, "print only the wall time in seconds and the reconnect count")
	fs.Parse(args)
	u, err := url.Parse(*base)
	if err != nil || u.Scheme != "http" || *list == "" {
		return fmt.Errorf("get: need an http -base and -list (%v)", err)
	}
	data, err := os.ReadFile(*list)
	if err != nil {
		return err
	}
	var paths []string
	for _, l := range strings.Split(string(data), "\n") {
		if l = strings.TrimSpace(l); l != "" {
			paths = append(paths, strings.TrimSuffix(u.Path, "/")+"/"+l)
		}
	}
	res := make([]result, len(paths))
	var next, reconnects atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, *conns)
	t0 := time.Now()
	for range *conns {
		wg.Go(func() {
			if err := worker(u.Host, paths, res, &next, *depth, &reconnects); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	wall := time.Since(t0)
	close(errs)
	if err := <-errs; err != nil {
		return err
	}
	var total int64
	var ttfb, ttlb []time.Duration
	for _, r := range res {
		if r.err != nil {
			return fmt.Errorf("%s: %w", r.path, r.err)
		}
		if r.status != http.StatusOK {
			return fmt.Errorf("%s: status %d", r.path, r.status)
		}
		total += r.bytes
		ttfb = append(ttfb, r.ttfb)
		ttlb = append(ttlb, r.total)
	}
	if *out != "" {
		var b bytes.Buffer
		for _, r := range res {
			fmt.Fprintf(&b, "%s\t%d\t%d\t%.6f\t%.6f\n", r.path, r.status, r.bytes, r.ttfb.Seconds(), r.total.Seconds())
		}
		if err := os.WriteFile(*out, b.Bytes(), 0o644); err != nil {
			return err
		}
	}
	if *quiet {
		fmt.Printf("%.4f %d\n", wall.Seconds(), reconnects.Load())
		return nil
	}
	fmt.Printf("files %d reconnects %d bytes %d wall %.4f s ttfb p50 %.2f ms p90 %.2f ms  ttlb p50 %.2f ms p90 %.2f ms\n",
		len(res), reconnects.Load(), total, wall.Seconds(), ms(pct(ttfb, 50)), ms(pct(ttfb, 90)), ms(pct(ttlb, 50)), ms(pct(ttlb, 90)))
	return nil
}

func ms(d time.Duration) float64 { return float64(d) / 1e6 }

func pct(ds []time.Duration, p int) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[(len(s)-1)*p/100]
}

// worker takes paths from next and fetches them over one connection with up to depth
// requests written ahead of the response being read (HTTP/1.1 pipelining, as apt does).
// When the server closes the connection between responses (apt-cacher-ng does so now and
// then after a cache miss), it reconnects and writes the unanswered requests again, as apt
// does; reconnects counts those.
func worker(host string, paths []string, res []result, next *atomic.Int64, depth int, reconnects *atomic.Int64) error {
	var (
		c        net.Conn
		br       *bufio.Reader
		bw       *bufio.Writer
		inflight []int
		at       = make(map[int]time.Time)
	)
	dial := func() error {
		if c != nil {
			c.Close()
		}
		var err error
		if c, err = net.Dial("tcp", host); err != nil {
			return err
		}
		br = bufio.NewReaderSize(c, 64<<10)
		bw = bufio.NewWriter(c)
		return nil
	}
	send := func(i int) {
		fmt.Fprintf(bw, "GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: aptbench\r\n\r\n", paths[i], host)
		at[i] = time.Now()
	}
	if err := dial(); err != nil {
		return err
	}
	defer func() { c.Close() }()
	for {
		for len(inflight) < depth {
			i := int(next.Add(1) - 1)
			if i >= len(paths) {
				break
			}
			inflight = append(inflight, i)
			send(i)
		}
		if len(inflight) == 0 {
			return nil
		}
		if err := bw.Flush(); err != nil {
			return err
		}
		i := inflight[0]
		r := &res[i]
		r.path = paths[i]
		if _, err := br.Peek(1); err != nil {
			// Closed before this response began: nothing of it was lost.
			if reconnects.Add(1) > 10000 {
				return fmt.Errorf("%s: too many reconnects: %w", r.path, err)
			}
			if err := dial(); err != nil {
				return err
			}
			for _, j := range inflight {
				send(j)
			}
			continue
		}
		r.ttfb = time.Since(at[i])
		resp, err := http.ReadResponse(br, &http.Request{Method: "GET"})
		if err != nil {
			r.err = err
			return err
		}
		r.status = resp.StatusCode
		r.bytes, err = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		r.total = time.Since(at[i])
		if err != nil {
			r.err = err
			return err
		}
		if resp.ContentLength >= 0 && r.bytes != resp.ContentLength {
			r.err = fmt.Errorf("short body: %d of %d", r.bytes, resp.ContentLength)
			return r.err
		}
		inflight = inflight[1:]
		delete(at, i)
		if resp.Close {
			reconnects.Add(1)
			if err := dial(); err != nil {
				return err
			}
			for _, j := range inflight {
				send(j)
			}
		}
	}
}

func syslogd(args []string) error {
	fs := flag.NewFlagSet("syslog", flag.ExitOnError)
	sock := fs.String("socket", "/dev/log", "Unix datagram socket to create")
	out := fs.String("out", "", "file to append the messages to")
	fs.Parse(args)
	f, err := os.OpenFile(*out, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: *sock, Net: "unixgram"})
	if err != nil {
		return err
	}
	os.Chmod(*sock, 0o666)
	buf := make([]byte, 64<<10)
	for {
		n, _, err := c.ReadFrom(buf)
		if err != nil {
			return err
		}
		f.Write(append(buf[:n:n], '\n'))
	}
}
