package aptindex

import (
	"bytes"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/cespare/xxhash/v2"
)

// Paragraph edge cases: whitespace-only separators, CRLF, no final newline,
// leading blank lines, a paragraph longer than the read buffer, one-byte reads.
func TestParseEdges(t *testing.T) {
	h := strings.Repeat("ab", 32)
	long := "Description: x\n" + strings.Repeat(" "+strings.Repeat("y", 99)+"\n", 5000) // 500 KB
	text := "\n\n \t\nPackage: a\nFilename: pool/a.deb\nSize: 1\nSHA256: " + h + "\n \t\n" +
		"Package: b\r\nFilename: ./pool/b.deb\r\nSize: 2\r\nsha256: " + h + "\r\n\r\n" +
		"Package: c\n" + long + "Filename: pool/c.deb\nSize: 3\nSHA256: " + h + "\n\n\n\n" +
		"Package: nohash\nFilename: pool/nohash.deb\nSize: 4\n\n" +
		"Package: badhash\nFilename: pool/badhash.deb\nSHA256: " + h[:63] + "x\nMD5sum: 0123456789abcdef0123456789ABCDEF\n\n" +
		"Package: d\nFilename: pool/d.deb\nSize: 5\nSHA256: " + h
	for _, oneByte := range []bool{false, true} {
		var r = bytes.NewReader([]byte(text))
		var b builder
		var err error
		if oneByte {
			err = parsePackages(iotest.OneByteReader(r), &b)
		} else {
			err = parsePackages(r, &b)
		}
		must(t, err)
		l := b.finish("/s", "/s", 1)
		want := map[string]int64{"pool/a.deb": 1, "pool/b.deb": 2, "pool/c.deb": 3, "pool/badhash.deb": -1, "pool/d.deb": 5}
		if l.n != len(want) {
			t.Fatalf("%d entries, want %d", l.n, len(want))
		}
		for n, size := range want {
			off, ok := l.find(n, xxhash.Sum64String(n))
			if !ok || l.size(off) != size {
				t.Fatalf("%s: found %v, want size %d", n, ok, size)
			}
			if s := l.set(off); n == "pool/badhash.deb" && (s.Has(2) || !s.Has(0)) {
				t.Fatalf("badhash: %v", s)
			}
		}
	}
	// A paragraph longer than the limit is an error, not unbounded memory.
	huge := "Package: x\nDescription: x\n" + strings.Repeat(" "+strings.Repeat("z", 1023)+"\n", maxStanza/1024+1)
	var b builder
	if err := parsePackages(strings.NewReader(huge+"\n"+huge), &b); err != errLongStanza {
		t.Fatalf("huge paragraph: %v", err)
	}
}
