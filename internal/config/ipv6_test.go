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

// Settings that contradict each other are refused at load, with what to
// do, rather than failing later at a listener with a message about ports.
func TestAddressFamiliesContradictions(t *testing.T) {
	for _, tc := range []struct{ conf, want string }{
		{"[DEFAULT]\nADDRESS_FAMILIES = ipv6\nBIND_ADDRESS = 127.0.0.1\n", "is an IPv4 address, but ADDRESS_FAMILIES is ipv6"},
		{"[DEFAULT]\nADDRESS_FAMILIES = ipv4\nBIND_ADDRESS = ::1\n", "is an IPv6 address, but ADDRESS_FAMILIES is ipv4"},
		{"[DEFAULT]\nADDRESS_FAMILIES = ipv6\n[apt_p2p_Khashmir]\nNETWORKS = both\n", "mainline DHT speaks IPv4 only"},
		{"[DEFAULT]\nBIND_ADDRESS = ::1\n[apt_p2p_Khashmir]\nNETWORKS = mainline\n", "mainline DHT speaks IPv4 only"},
		{"[DEFAULT]\nADDRESS_FAMILIES = ipv4\nBIND_ADDRESS = ::\n", "is an IPv6 address, but ADDRESS_FAMILIES is ipv4"},
	} {
		if msg := loadErr(t, tc.conf); !strings.Contains(msg, tc.want) {
			t.Errorf("%q: %v, want %q", tc.conf, msg, tc.want)
		}
	}
	for _, ok := range []string{
		"[DEFAULT]\nADDRESS_FAMILIES = ipv6\nBIND_ADDRESS = ::1\n",
		"[DEFAULT]\nBIND_ADDRESS = 127.0.0.1\n[apt_p2p_Khashmir]\nNETWORKS = both\n",
		"[DEFAULT]\nBIND_ADDRESS = ::\n[apt_p2p_Khashmir]\nNETWORKS = both\n",
	} {
		load(t, ok)
	}
}
