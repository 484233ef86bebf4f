package config

import (
	"strings"
	"testing"
)

// ADDRESS_FAMILIES defaults to both, refuses anything else than its three
// values, picks the HTTP listener's network, and survives the config
// subcommand's round trip.
func TestAddressFamilies(t *testing.T) {
	c := load(t, "")
	if c.IPv6.Families != "both" || !c.IPv6.Want4() || !c.IPv6.Want6() || c.TCPNetwork() != "tcp" {
		t.Fatalf("defaults: %+v %s", c.IPv6, c.TCPNetwork())
	}
	for _, tc := range []struct{ v, tcp string }{{"IPv4", "tcp4"}, {"ipv6", "tcp6"}, {"both", "tcp"}} {
		c := load(t, "[DEFAULT]\nADDRESS_FAMILIES = "+tc.v+"\n")
		if c.TCPNetwork() != tc.tcp || c.IPv6.Want4() != (tc.tcp != "tcp6") || c.IPv6.Want6() != (tc.tcp != "tcp4") {
			t.Errorf("%s: %+v %s", tc.v, c.IPv6, c.TCPNetwork())
		}
		var b strings.Builder
		if err := c.Write(&b); err != nil {
			t.Fatal(err)
		}
		back := load(t, b.String())
		if back.IPv6 != c.IPv6 {
			t.Errorf("%s: written and read back as %+v:\n%s", tc.v, back.IPv6, b.String())
		}
	}
	if msg := loadErr(t, "[DEFAULT]\nADDRESS_FAMILIES = ipv5\n"); !strings.Contains(msg, "ADDRESS_FAMILIES") || !strings.Contains(msg, "both, ipv4, ipv6") {
		t.Fatalf("bad value: %v", msg)
	}
}
