//go:build !race

package fetch

import "testing"

const raceEnabled = false

// Allocation guards: the per-piece parsing must not allocate.
func TestParseContentRangeAllocs(t *testing.T) {
	v := []byte("bytes 524288-1048575/2097152")
	if n := testing.AllocsPerRun(100, func() {
		if _, _, _, ok := parseContentRange(v); !ok {
			t.Fatal("parse failed")
		}
	}); n != 0 {
		t.Fatalf("parseContentRange: %v allocs", n)
	}
}
