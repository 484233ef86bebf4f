package aptindex

import (
	"bytes"
	"os"
	"runtime"
	"strings"
	"testing"

	"github.com/apt-p2p/apt-p2p/internal/digest"
)

// The full-size index: the machine's real bookworm lists when present, and
// always a generated index of the same size, with the same assertions.
func TestBookwormIndex(t *testing.T) {
	t.Run("generated", func(t *testing.T) {
		n := 63440
		if raceEnabled {
			n = 4000
		}
		pk := generatePackages(n)
		rel := generatedRelease(t, pk)
		// zstd: the xz writer of ulikunitz/xz needs minutes for 50 MB; xz is
		// covered by the fixtures and the benchmark.
		checkBookworm(t, pk, rel, "/dists/bookworm/main/binary-amd64/Packages.zst", compressWith(t, compZstd, pk, ""))
	})
	t.Run("real", func(t *testing.T) {
		raw, err := os.ReadFile(realPackages)
		if err != nil {
			// Not a skip: the generated case above ran the same checks.
			t.Logf("no real apt lists (%v): covered by the generated case only", err)
			return
		}
		rel, err := os.ReadFile(realRelease)
		must(t, err)
		pk, _ := bookwormPackages(t, 0)
		if raceEnabled {
			// Under the race detector a prefix keeps the test fast; the
			// Release check of the full file is then left out.
			pk = pk[:bytes.Index(pk[4<<20:], []byte("\n\n"))+4<<20+2]
			raw = compressWith(t, compLZ4, pk, "")
		}
		checkBookworm(t, pk, rel, "/dists/bookworm/main/binary-amd64/Packages.lz4", raw)
	})
}

// generatedRelease is an InRelease for a generated Packages, as Debian's
// (MD5Sum and SHA256 sections, Acquire-By-Hash).
func generatedRelease(t testing.TB, pk []byte) []byte {
	s := &suite{dir: "/dists/bookworm", files: map[string][]byte{"main/binary-amd64/Packages": pk}}
	return clearsign(s.release(true, digest.MD5, digest.SHA256), func(string) bool { return false })
}

func checkBookworm(t *testing.T, pk, inRelease []byte, path string, file []byte) {
	want := expectPackages(t, string(pk))
	ix := New()
	must(t, ix.Add(site, "/debian", "/dists/bookworm/InRelease", bytes.NewReader(inRelease)))

	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	must(t, ix.Add(site, "/debian", path, bytes.NewReader(file)))
	runtime.GC()
	runtime.ReadMemStats(&after)
	runtime.KeepAlive(file)
	heap := int64(after.HeapAlloc) - int64(before.HeapAlloc)

	st := ix.Stats()
	if st.Lists != 1 {
		t.Fatalf("stats %+v", st)
	}
	entries := ix.repos[repoKey{site, "/debian"}].lists[0].n
	if entries != len(want) {
		t.Fatalf("%d entries, the Packages has %d files", entries, len(want))
	}
	perEntry := float64(heap) / float64(entries)
	t.Logf("%d entries, heap %.1f MB, %.0f B/entry, Stats.Bytes %.1f MB", entries, float64(heap)/1e6, perEntry, float64(st.Bytes)/1e6)
	// Names and hashes alone are ~95 bytes a record; 200 leaves room for the
	// table and GC noise, and fails for a per-entry map or string per field.
	if !raceEnabled && perEntry > 200 {
		t.Errorf("%.0f bytes per entry, want at most 200", perEntry)
	}
	for fn, w := range want {
		mustLookup(t, ix, site, "/debian", "/"+fn, w)
	}
	// The Release's entry for the uncompressed Packages matches its content
	// (for the real lists: apt kept the content the InRelease signs).
	if !raceEnabled || !strings.HasSuffix(path, ".lz4") {
		got, ok := ix.Lookup(site, "/debian", "/dists/bookworm/main/binary-amd64/Packages")
		d := setOf(pk)
		if !ok || !got.Matches(&d) || !got.Has(digest.SHA256) {
			t.Fatalf("Release entry for Packages %v does not match its content %v", got, d)
		}
		h, _ := got.Strongest()
		if bh, ok := ix.Lookup(site, "/debian", "/dists/bookworm/main/binary-amd64/by-hash/SHA256/"+hexOf(got.Get(h))); !ok || bh != got {
			t.Fatalf("by-hash lookup %v, want %v", bh, got)
		}
		if !ix.Referenced(&d) {
			t.Fatal("Packages content not referenced")
		}
	}
}
