//go:build !race

package httpserve

import (
	"net/netip"
	"testing"
)

// Scanning an apt connection's requests allocates nothing: it sits on every
// read of a trusted connection.
func TestReadAheadScanAllocs(t *testing.T) {
	calls := 0
	ra := &readAhead{hook: func(netip.Addr, []byte, []byte) { calls++ }, ahead: 100, sending: true}
	stream := []byte(pipelineText("/debian/pool/main/a/a/a_1_amd64.deb", "/debian/pool/main/b/b/b_1_amd64.deb", "/c"))
	if n := testing.AllocsPerRun(100, func() {
		ra.handled.Store(ra.seen)
		ra.scan(stream)
	}); n != 0 {
		t.Errorf("scan: %v allocations per call, want 0", n)
	}
	if calls == 0 {
		t.Fatal("the hook was never called: the guard measured nothing")
	}
}
