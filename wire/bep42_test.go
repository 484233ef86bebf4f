package wire

import (
	"net/netip"
	"testing"
)

// The test vectors of BEP 42: only the first 21 bits and the last byte are
// fixed by the address and r.
func TestBEP42Vectors(t *testing.T) {
	for _, v := range []struct {
		ip   string
		r    byte
		want string
	}{
		{"124.31.75.21", 1, "5fbfbff10c5d6a4ec8a88e4c6ab4c28b95eee401"},
		{"21.75.31.124", 86, "5a3ce9c14e7a08645677bbd1cfe7d8f956d53256"},
		{"65.23.51.170", 22, "a5d43220bc8f112a3d426c84764f8c2a1150e616"},
		{"84.124.73.14", 65, "1b0321dd1bb1fe518101ceef99462b947a01ff41"},
		{"43.213.53.83", 90, "e56f6cbf5b7c4be0237986d5243b87aa6d51305a"},
	} {
		want, _ := ParseID(v.want)
		ip := netip.MustParseAddr(v.ip)
		if !BEP42Valid(want, ip) {
			t.Errorf("%s: vector ID not valid", v.ip)
		}
		got := BEP42ID(want, ip, v.r)
		if got != want {
			t.Errorf("%s r=%d: %s, want %s", v.ip, v.r, got, want)
		}
		bad := want
		bad[0] ^= 0x80
		if BEP42Valid(bad, ip) {
			t.Errorf("%s: a changed first byte still valid", v.ip)
		}
	}
	if !BEP42Valid(ID{}, netip.MustParseAddr("127.0.0.1")) || !BEP42Valid(ID{}, netip.MustParseAddr("192.168.1.1")) {
		t.Error("local addresses are exempt")
	}
}
