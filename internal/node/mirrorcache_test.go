package node

import (
	"testing"
	"time"
)

func TestClientMaxAge(t *testing.T) {
	for _, c := range []struct {
		cc, pragma string
		want       time.Duration
	}{
		{"", "", -1},
		{"max-age=0", "", 0},
		{"max-age=120", "", 2 * time.Minute},
		{"public, Max-Age=5", "", 5 * time.Second},
		{"no-cache", "", 0},
		{"", "no-cache", 0},
		{"max-age=x", "", 0},
		{"max-age=-3", "", 0},
		{"no-transform", "", -1},
	} {
		if got := clientMaxAge([]byte(c.cc), []byte(c.pragma)); got != c.want {
			t.Errorf("Cache-Control %q Pragma %q: %v, want %v", c.cc, c.pragma, got, c.want)
		}
	}
}
