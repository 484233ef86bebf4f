package fetch

import (
	"bufio"
	"context"
	"crypto/sha1"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

// The benchmarks serve the file from a child process (this test binary
// re-executed with benchServerEnv set), so that the servers' CPU time and
// allocations are not counted as the downloader's.

const benchServerEnv = "FETCH_BENCH_SERVER" // "size,seed,rate1,rate2,..." (rates in bytes/s, 0 = unlimited)

func TestMain(m *testing.M) {
	if spec := os.Getenv(benchServerEnv); spec != "" {
		runBenchServer(spec)
		return
	}
	os.Exit(m.Run())
}

// runBenchServer starts one server per rate, prints their addresses on one
// line, and serves until stdin closes.
func runBenchServer(spec string) {
	f := strings.Split(spec, ",")
	size, _ := strconv.ParseInt(f[0], 10, 64)
	seed, _ := strconv.ParseUint(f[1], 10, 64)
	data, _ := testFile(size, seed)
	tb := &fakeTB{}
	var addrs []string
	for _, r := range f[2:] {
		rate, _ := strconv.ParseInt(r, 10, 64)
		addrs = append(addrs, newServer(tb, data, behavior{rate: rate}).addr)
	}
	fmt.Println(strings.Join(addrs, " "))
	io.Copy(io.Discard, os.Stdin) //nolint:errcheck // EOF: the benchmark is done
	for _, c := range tb.cleanups {
		c()
	}
}

// fakeTB lets newServer run outside a test.
type fakeTB struct {
	testing.TB
	cleanups []func()
}

func (f *fakeTB) Helper()                      {}
func (f *fakeTB) Cleanup(fn func())            { f.cleanups = append(f.cleanups, fn) }
func (f *fakeTB) Fatal(args ...any)            { fmt.Fprintln(os.Stderr, args...); os.Exit(1) }
func (f *fakeTB) Fatalf(s string, args ...any) { fmt.Fprintf(os.Stderr, s+"\n", args...); os.Exit(1) }

// startBenchServers runs the child process and returns the server addresses.
func startBenchServers(b *testing.B, size int64, seed uint64, rates ...int64) []string {
	b.Helper()
	spec := []string{strconv.FormatInt(size, 10), strconv.FormatUint(seed, 10)}
	for _, r := range rates {
		spec = append(spec, strconv.FormatInt(r, 10))
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), benchServerEnv+"="+strings.Join(spec, ","))
	stdin, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		stdin.Close()
		cmd.Wait() //nolint:errcheck
	})
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		b.Fatalf("bench server: %v", err)
	}
	return strings.Fields(line)
}

func (m *memSink) reset() {
	m.mu.Lock()
	clear(m.have)
	m.contig, m.appends, m.pieces, m.firstAt = 0, 0, 0, time.Time{}
	m.mu.Unlock()
}

func benchSize() int64 {
	if raceEnabled {
		return 16 << 20
	}
	return 200 << 20
}

// BenchmarkFourPeersRateLimited: 4 peers each limited to R; the aggregate
// should reach at least 3.5·R. Reports the aggregate and ratio to R.
func BenchmarkFourPeersRateLimited(b *testing.B) {
	size := benchSize()
	const rate = 25 << 20 // R = 25 MiB/s per peer
	data, pieces := testFile(size, 42)
	addrs := startBenchServers(b, size, 42, rate, rate, rate, rate)
	sink := newMemSink(size)
	sink.trustSums = true
	d := New(Config{Version: "bench"})
	b.SetBytes(size)
	b.ReportAllocs()
	var el time.Duration
	for b.Loop() {
		sink.reset()
		var srcs []Source
		for _, a := range addrs {
			srcs = append(srcs, Source{Addr: a, Path: peerPath})
		}
		t0 := time.Now()
		res, err := d.Fetch(context.Background(), &Job{Size: size, Pieces: pieces, Peers: peerChan(srcs...), Sink: sink})
		el += time.Since(t0)
		if err != nil {
			b.Fatal(err)
		}
		if len(res.BytesBySource) != 4 {
			b.Fatalf("not all peers used: %v", res.BytesBySource)
		}
	}
	b.StopTimer()
	sink.check(b, data)
	agg := float64(size) * float64(b.N) / el.Seconds()
	b.ReportMetric(agg/(1<<20), "MiB/s")
	b.ReportMetric(agg/rate, "xR")
}

// BenchmarkOnePeerVsGET compares a Fetch from one unlimited peer (512 KiB
// Range requests, 4 in flight, SHA-1 per piece) with one plain GET of the
// same file into the same Sink, with fasthttp and with net/http.
func BenchmarkOnePeerVsGET(b *testing.B) {
	size := benchSize()
	data, pieces := testFile(size, 43)
	addr := startBenchServers(b, size, 43, 0)[0]
	sink := newMemSink(size)
	sink.trustSums = true
	npieces := float64((size + PieceSize - 1) / PieceSize)

	b.Run("fetch", func(b *testing.B) {
		d := New(Config{Version: "bench"})
		b.SetBytes(size)
		b.ReportAllocs()
		var ms0, ms1 runtime.MemStats
		runtime.ReadMemStats(&ms0)
		for b.Loop() {
			sink.reset()
			if _, err := d.Fetch(context.Background(), &Job{Size: size, Pieces: pieces, Peers: peerChan(Source{Addr: addr, Path: peerPath}), Sink: sink}); err != nil {
				b.Fatal(err)
			}
		}
		runtime.ReadMemStats(&ms1)
		b.ReportMetric(float64(ms1.Mallocs-ms0.Mallocs)/float64(b.N)/npieces, "allocs/piece")
		b.StopTimer()
		sink.check(b, data)
	})
	b.Run("mirror-stream", func(b *testing.B) {
		d := New(Config{Version: "bench"})
		b.SetBytes(size)
		b.ReportAllocs()
		m := Source{Addr: addr, Path: peerPath}
		for b.Loop() {
			sink.reset()
			if _, err := d.Fetch(context.Background(), &Job{Size: size, Mirror: &m, Sink: sink}); err != nil {
				b.Fatal(err)
			}
		}
		b.StopTimer()
		sink.check(b, data)
	})
	b.Run("get-fasthttp", func(b *testing.B) {
		hc := &fasthttp.HostClient{Addr: addr, StreamResponseBody: true}
		b.SetBytes(size)
		b.ReportAllocs()
		buf := make([]byte, 64<<10)
		for b.Loop() {
			sink.reset()
			req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
			req.SetRequestURI(peerPath)
			req.Header.SetHost(addr)
			if err := hc.Do(req, resp); err != nil {
				b.Fatal(err)
			}
			if _, err := io.CopyBuffer(sinkWriter{sink}, resp.BodyStream(), buf); err != nil {
				b.Fatal(err)
			}
			resp.CloseBodyStream() //nolint:errcheck
			fasthttp.ReleaseRequest(req)
			fasthttp.ReleaseResponse(resp)
		}
		b.StopTimer()
		sink.check(b, data)
	})
	// The same GET, hashing each 512 KiB piece as it completes: what storing a
	// streamed download costs anyway (the piece store hashes appends).
	b.Run("get-fasthttp-sha1", func(b *testing.B) {
		hc := &fasthttp.HostClient{Addr: addr, StreamResponseBody: true}
		b.SetBytes(size)
		b.ReportAllocs()
		buf := make([]byte, PieceSize)
		for b.Loop() {
			sink.reset()
			req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
			req.SetRequestURI(peerPath)
			req.Header.SetHost(addr)
			if err := hc.Do(req, resp); err != nil {
				b.Fatal(err)
			}
			body := resp.BodyStream()
			for i := 0; int64(i)*PieceSize < size; i++ {
				p := buf[:pieceLen(i, size)]
				if _, err := io.ReadFull(body, p); err != nil {
					b.Fatal(err)
				}
				sum := sha1.Sum(p)
				if err := sink.WritePiece(i, p, &sum); err != nil {
					b.Fatal(err)
				}
			}
			resp.CloseBodyStream() //nolint:errcheck
			fasthttp.ReleaseRequest(req)
			fasthttp.ReleaseResponse(resp)
		}
		b.StopTimer()
		sink.check(b, data)
	})
	b.Run("get-nethttp", func(b *testing.B) {
		c := &http.Client{}
		b.SetBytes(size)
		b.ReportAllocs()
		buf := make([]byte, 64<<10)
		for b.Loop() {
			sink.reset()
			resp, err := c.Get("http://" + addr + peerPath)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := io.CopyBuffer(sinkWriter{sink}, resp.Body, buf); err != nil {
				b.Fatal(err)
			}
			resp.Body.Close()
		}
		b.StopTimer()
		sink.check(b, data)
	})
}

// sinkWriter appends to a Sink as an io.Writer (the plain GET baselines).
type sinkWriter struct{ s *memSink }

func (w sinkWriter) Write(p []byte) (int, error) { return w.s.WriteAt(p, w.s.Contiguous()) }
