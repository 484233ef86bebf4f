package main

import (
	"bytes"
	"os/exec"
	"testing"
)

func xzCompress(t *testing.T, data []byte, args ...string) []byte {
	t.Helper()
	cmd := exec.Command("xz", append([]string{"-c"}, args...)...)
	cmd.Stdin = bytes.NewReader(data)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("xz %v (scripts/install-deps.sh installs xz-utils): %v", args, err)
	}
	return out
}

// Random bytes cannot be compressed, so xz stores (almost) all of them in
// uncompressed chunks; zeros compress to nearly nothing and are stored nowhere.
// The walk must also get through several blocks (threaded xz) and every check type.
func TestXzStoredBytes(t *testing.T) {
	random := randomBytes(80, 1<<20)
	half := append(make([]byte, 512<<10), random[:512<<10]...)
	for _, args := range [][]string{
		{"-6"}, {"-1", "-C", "crc32"}, {"-1", "-C", "none"}, {"-1", "-C", "sha256"},
		{"-1", "-T2", "--block-size=262144"}, {"-1", "-T1", "--block-size=100000", "-C", "crc32"},
	} {
		for _, c := range []struct {
			name     string
			data     []byte
			min, max int64
		}{
			{"random", random, int64(len(random)) - 64<<10, int64(len(random))},
			{"zeros", make([]byte, 1<<20), 0, 0},
			{"half", half, 512<<10 - 64<<10, 512 << 10},
		} {
			got, err := xzStoredBytes(xzCompress(t, c.data, args...))
			if err != nil {
				t.Fatalf("%s %v: %v", c.name, args, err)
			}
			if got < c.min || got > c.max {
				t.Fatalf("%s %v: %d bytes stored, want %d..%d", c.name, args, got, c.min, c.max)
			}
		}
	}
	good := xzCompress(t, random[:100000])
	if _, err := xzStoredBytes(good[:len(good)/2]); err == nil {
		t.Fatal("a truncated stream was walked to its end")
	}
	if _, err := xzStoredBytes([]byte("not xz at all")); err == nil {
		t.Fatal("garbage accepted")
	}
}
