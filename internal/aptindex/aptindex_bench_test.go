package aptindex

import (
	"bytes"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/apt-p2p/apt-p2p/internal/digest"
)

// Benchmarks of index load time against the command-line decompressor of the
// same file, memory per entry and lookup cost. bench/aptindex.sh prepares the
// full bookworm Packages in every compression (from the machine's apt lists,
// else generated) in APTINDEX_BENCH_DIR; without it a generated 8 000-stanza
// index is used so that a smoke run stays quick.

var benchTools = []struct {
	ext, tool string
	c         compression
}{{".xz", "xz", compXZ}, {".gz", "gzip", compGzip}, {".zst", "zstd", compZstd}, {".lz4", "lz4", compLZ4}, {".bz2", "bzip2", compBzip2}}

func benchFiles(b *testing.B) (dir string, small bool) {
	if d := os.Getenv("APTINDEX_BENCH_DIR"); d != "" {
		return d, false
	}
	dir = b.TempDir()
	pk := generatePackages(8000)
	must(b, os.WriteFile(filepath.Join(dir, "Packages"), pk, 0o644))
	for _, bt := range benchTools {
		if _, err := exec.LookPath(bt.tool); err != nil {
			continue
		}
		cmd := exec.Command(bt.tool, "-c", "-k", filepath.Join(dir, "Packages"))
		out, err := os.Create(filepath.Join(dir, "Packages"+bt.ext))
		must(b, err)
		cmd.Stdout = out
		must(b, cmd.Run())
		out.Close()
	}
	return dir, true
}

// BenchmarkLoad: per iteration, the decompressor's own command (`xz -dc f
// >/dev/null`) and Index.Add of the same file; reports both and their ratio.
// The ratio is the figure of merit (target ≤ 1.5 for xz).
func BenchmarkLoad(b *testing.B) {
	dir, small := benchFiles(b)
	if small {
		b.Log("APTINDEX_BENCH_DIR not set: 8 000 generated stanzas")
	}
	for _, bt := range benchTools {
		name := filepath.Join(dir, "Packages"+bt.ext)
		if _, err := os.Stat(name); err != nil {
			continue
		}
		if _, err := exec.LookPath(bt.tool); err != nil {
			continue
		}
		decoders := []string{""}
		if bt.c == compXZ {
			decoders = []string{"xz(1)", "ulikunitz"}
		}
		for _, dec := range decoders {
			b.Run(bt.tool+dec, func(b *testing.B) {
				var cliT, loadT, cliCPU, loadCPU time.Duration
				var entries int
				for b.Loop() {
					t0 := time.Now()
					cmd := exec.Command(bt.tool, "-dc", name) // stdout: /dev/null
					must(b, cmd.Run())
					t1 := time.Now()
					cliCPU += cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
					ix := New()
					if dec == "ulikunitz" {
						ix.SetXZCommand("")
					}
					c0 := cpuTime()
					f, err := os.Open(name)
					must(b, err)
					must(b, ix.Add(site, "/debian", "/dists/bookworm/main/binary-amd64/Packages"+bt.ext, f))
					f.Close()
					loadCPU += cpuTime() - c0
					loadT += time.Since(t1)
					cliT += t1.Sub(t0)
					entries = ix.Stats().Entries
				}
				n := float64(b.N)
				b.ReportMetric(cliT.Seconds()*1e3/n, "cli-ms")
				b.ReportMetric(loadT.Seconds()*1e3/n, "load-ms")
				b.ReportMetric(float64(loadT)/float64(cliT), "load/cli")
				b.ReportMetric(cliCPU.Seconds()*1e3/n, "cli-cpu-ms")
				b.ReportMetric(loadCPU.Seconds()*1e3/n, "load-cpu-ms")
				b.ReportMetric(float64(loadCPU)/float64(cliCPU), "cpu-load/cli")
				b.ReportMetric(float64(entries), "entries")
				b.ReportMetric(0, "ns/op") // the per-iteration time mixes both; see the metrics
			})
		}
	}
}

// cpuTime is the user+system CPU time of this process and its waited-for
// children (the xz(1) decoder), which a busy shared machine disturbs far less
// than wall time.
func cpuTime() time.Duration {
	var self, kids syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &self)
	_ = syscall.Getrusage(syscall.RUSAGE_CHILDREN, &kids)
	tv := func(t syscall.Timeval) time.Duration { return time.Duration(t.Nano()) }
	return tv(self.Utime) + tv(self.Stime) + tv(kids.Utime) + tv(kids.Stime)
}

// BenchmarkParse: parsing alone, from memory, plain text.
func BenchmarkParse(b *testing.B) {
	pk := generatePackages(8000)
	b.SetBytes(int64(len(pk)))
	b.ReportAllocs()
	for b.Loop() {
		var bl builder
		must(b, parsePackages(bytes.NewReader(pk), &bl))
		bl.finish("/x", "/x", 1)
	}
}

// bookwormIndex loads the bookworm-sized index (the real one when present).
func bookwormIndex(b *testing.B) (*Index, []string, int64, int) {
	pk, _ := bookwormPackages(b, 63440)
	want := expectPackages(b, string(pk))
	ix := New()
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	must(b, ix.Add(site, "/debian", "/dists/bookworm/main/binary-amd64/Packages", bytes.NewReader(pk)))
	runtime.GC()
	runtime.ReadMemStats(&after)
	runtime.KeepAlive(pk)
	names := make([]string, 0, len(want))
	for fn := range want {
		names = append(names, "/"+fn)
	}
	rand.New(rand.NewPCG(1, 2)).Shuffle(len(names), func(i, j int) { names[i], names[j] = names[j], names[i] })
	return ix, names, int64(after.HeapAlloc) - int64(before.HeapAlloc), len(want)
}

// BenchmarkMemory reports the heap the bookworm index holds.
func BenchmarkMemory(b *testing.B) {
	var heap int64
	var n int
	for b.Loop() {
		_, _, heap, n = bookwormIndex(b)
	}
	b.ReportMetric(float64(heap)/float64(n), "B/entry")
	b.ReportMetric(float64(heap)/1e6, "MB")
	b.ReportMetric(float64(n), "entries")
}

// BenchmarkLookup: random .deb names of the bookworm index, misses, Release
// entries and by-hash paths.
func BenchmarkLookup(b *testing.B) {
	ix, names, _, _ := bookwormIndex(b)
	s := newSuite(b, "/dists/bookworm", readTestdata(b, "Packages"), readTestdata(b, "Sources"))
	must(b, ix.Add(site, "/debian", "/dists/bookworm/InRelease", bytes.NewReader(clearsign(s.release(true, digest.MD5, digest.SHA256), func(string) bool { return false }))))
	xzSet := setOf(s.files["main/binary-amd64/Packages.xz"])
	var sink digest.Set
	// A request's path is fresh in the cache when it is looked up: cycle
	// through 4096 random names held in fresh strings, so the cost measured
	// is the index's (table, record and name in the arena), not that of
	// reading names scattered through the 50 MB test text.
	hot := make([]string, 4096)
	for i := range hot {
		hot[i] = strings.Clone(names[i*len(names)/len(hot)])
	}
	b.Run("deb", func(b *testing.B) {
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			sink, _ = ix.Lookup(site, "/debian", hot[i%len(hot)])
			i++
		}
	})
	miss := make([]string, len(hot))
	for i, n := range hot {
		miss[i] = n + ".missing"
	}
	b.Run("miss", func(b *testing.B) {
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			sink, _ = ix.Lookup(site, "/debian", miss[i%len(miss)])
			i++
		}
	})
	b.Run("release", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			sink, _ = ix.Lookup(site, "/debian", "/dists/bookworm/main/binary-amd64/Packages.xz")
		}
	})
	b.Run("byhash", func(b *testing.B) {
		p := "/dists/bookworm/main/binary-amd64/by-hash/SHA256/" + hexOf(xzSet.SHA256[:])
		b.ReportAllocs()
		for b.Loop() {
			sink, _ = ix.Lookup(site, "/debian", p)
		}
	})
	b.Run("referenced", func(b *testing.B) {
		d, _ := ix.Lookup(site, "/debian", names[0])
		b.ReportAllocs()
		for b.Loop() {
			ix.Referenced(&d)
		}
	})
	_ = sink
}
