package wire

import (
	"net/netip"
	"testing"
)

// Regression: a routing table may hold IPv6 contacts (kbucket accepts them), but
// the compact formats are IPv4-only; encoding one must not panic.
func TestCompactPeerIPv6DoesNotPanic(t *testing.T) {
	got := AppendCompactPeer(nil, netip.MustParseAddrPort("[2001:db8::1]:9977"))
	if len(got) != CompactPeerLen || string(got[:4]) != "\x00\x00\x00\x00" {
		t.Fatalf("IPv6 peer encoded as %x, want 0.0.0.0:9977", got)
	}
	ap, _ := ParseCompactPeer(got)
	if ap.Port() != 9977 || !ap.Addr().IsUnspecified() {
		t.Fatalf("round trip %v", ap)
	}
	mapped := AppendCompactPeer(nil, netip.MustParseAddrPort("[::ffff:165.234.1.34]:61234"))
	if string(mapped) != "\xa5\xea\x01\x22\xef\x32" {
		t.Fatalf("IPv4-mapped peer encoded as %x", mapped)
	}
}
