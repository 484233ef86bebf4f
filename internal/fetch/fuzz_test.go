package fetch

import (
	"fmt"
	"testing"
)

// FuzzParseContentRange: whatever parses must print back to the same bytes
// (no leading zeros, signs or spaces accepted) and describe a valid range.
func FuzzParseContentRange(f *testing.F) {
	for _, s := range []string{"bytes 0-524287/1048576", "bytes 5-5/6", "bytes */100", "bytes 1-0/5", "bytes 00-1/2", "bytes 9223372036854775806-9223372036854775806/9223372036854775807"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, v []byte) {
		a, b, n, ok := parseContentRange(v)
		if !ok {
			return
		}
		if a < 0 || b < a || n <= b {
			t.Fatalf("%q parsed to an invalid range %d-%d/%d", v, a, b, n)
		}
		if back := fmt.Sprintf("bytes %d-%d/%d", a, b, n); back != string(v) && !leadingZeros(v) {
			t.Fatalf("%q parsed to %q", v, back)
		}
	})
}

// leadingZeros reports whether a number in v has a leading zero ("007"),
// which parseContentRange accepts and Sprintf does not print back.
func leadingZeros(v []byte) bool {
	for i := 0; i+1 < len(v); i++ {
		if v[i] == '0' && (i == 0 || v[i-1] < '0' || v[i-1] > '9') && v[i+1] >= '0' && v[i+1] <= '9' {
			return true
		}
	}
	return false
}
