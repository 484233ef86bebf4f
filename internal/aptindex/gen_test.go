package aptindex

import (
	"bytes"
	"crypto/md5"
	"crypto/sha256"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"strings"
	"testing"

	"github.com/pierrec/lz4/v4"
)

// Real apt lists of this machine, used when present.
const (
	realLists    = "/var/lib/apt/lists/"
	realPackages = realLists + "deb.debian.org_debian_dists_bookworm_main_binary-amd64_Packages.lz4"
	realRelease  = realLists + "deb.debian.org_debian_dists_bookworm_InRelease"
)

// bookwormPackages is the plain text of Debian bookworm main amd64 Packages:
// the machine's own apt list if present, else a generated one of the same
// shape (n stanzas, about 790 bytes each, like the real one). real says which.
func bookwormPackages(tb testing.TB, n int) (text []byte, real bool) {
	tb.Helper()
	if f, err := os.Open(realPackages); err == nil {
		defer f.Close()
		b, err := io.ReadAll(lz4.NewReader(f))
		must(tb, err)
		return b, true
	}
	return generatePackages(n), false
}

var words = strings.Fields(`lib data common dev utils tools doc perl python3 java gnome kde qt5 gtk3 x11
	server client plugin core extra fonts theme games sound video net ssl xml json http ruby node go rust`)

// generatePackages writes n Packages stanzas with the fields and sizes of
// real ones (Depends lists, multi-line Tag, Description-md5, MD5sum, SHA256).
func generatePackages(n int) []byte {
	r := rand.New(rand.NewPCG(4, 63440))
	var b bytes.Buffer
	b.Grow(n * 800)
	for i := range n {
		name := fmt.Sprintf("%s%s%d-%s", words[r.IntN(len(words))], words[r.IntN(len(words))], i, words[r.IntN(len(words))])
		src := name[:1]
		if strings.HasPrefix(name, "lib") {
			src = name[:4]
		}
		ver := fmt.Sprintf("%d.%d.%d-%d", r.IntN(20), r.IntN(50), r.IntN(100), 1+r.IntN(5))
		arch := "amd64"
		if r.IntN(3) == 0 {
			arch = "all"
		}
		fn := fmt.Sprintf("pool/main/%s/%s/%s_%s_%s.deb", src, name, name, ver, arch)
		fmt.Fprintf(&b, "Package: %s\nVersion: %s\nInstalled-Size: %d\n", name, ver, r.IntN(100000))
		fmt.Fprintf(&b, "Maintainer: Debian %s Team <pkg-%s-devel@lists.alioth.debian.org>\nArchitecture: %s\n", words[r.IntN(len(words))], words[r.IntN(len(words))], arch)
		b.WriteString("Depends: ")
		for j := range 2 + r.IntN(12) {
			if j > 0 {
				b.WriteString(", ")
			}
			fmt.Fprintf(&b, "lib%s%d (>= %d.%d)", words[r.IntN(len(words))], r.IntN(30), r.IntN(10), r.IntN(30))
		}
		fmt.Fprintf(&b, "\nDescription: %s for the %s %s\n", words[r.IntN(len(words))], words[r.IntN(len(words))], words[r.IntN(len(words))])
		fmt.Fprintf(&b, "Homepage: https://%s.example.org/\n", name)
		fmt.Fprintf(&b, "Description-md5: %x\n", md5.Sum([]byte(name)))
		fmt.Fprintf(&b, "Tag: devel::lang:%s, implemented-in::c, interface::commandline,\n role::program, use::%s,\n works-with::%s\n", words[r.IntN(len(words))], words[r.IntN(len(words))], words[r.IntN(len(words))])
		fmt.Fprintf(&b, "Section: %s\nPriority: optional\n", words[r.IntN(len(words))])
		fmt.Fprintf(&b, "Filename: %s\nSize: %d\nMD5sum: %x\nSHA256: %x\n\n", fn, 1000+r.IntN(5_000_000), md5.Sum([]byte(fn)), sha256.Sum256([]byte(fn)))
	}
	return b.Bytes()
}

var writeGenerated = flag.String("write-generated", "", "write a generated bookworm-sized Packages to this file (bench.sh)")

// TestWriteGenerated writes the generated index for bench.sh when asked and
// otherwise checks that the generator gives the size it promises.
func TestWriteGenerated(t *testing.T) {
	n := 63440
	if *writeGenerated == "" {
		n = 500
	}
	pk := generatePackages(n)
	if got := bytes.Count(pk, []byte("\nFilename: ")); got != n {
		t.Fatalf("%d stanzas, want %d", got, n)
	}
	if per := len(pk) / n; per < 600 || per > 1000 {
		t.Fatalf("%d bytes per stanza, real ones average 790", per)
	}
	if *writeGenerated != "" {
		must(t, os.WriteFile(*writeGenerated, pk, 0o644))
	}
}
