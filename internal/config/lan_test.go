package config

import (
	"strings"
	"testing"
)

// LAN_DISCOVERY is on by default; with no BOOTSTRAP and LOCAL_OK set nowhere,
// LOCAL_OK becomes yes (the DHT is the LAN's own); BOOTSTRAP nodes, the
// mainline DHT, LAN_DISCOVERY = no or any explicit LOCAL_OK keep the
// original's rule.
func TestLANDiscovery(t *testing.T) {
	cases := []struct {
		name      string
		text      string
		overrides []string
		discovery bool
		localOK   bool
		auto      bool
	}{
		{"defaults", "", nil, true, true, true},
		{"off", "[DEFAULT]\nLAN_DISCOVERY = no\n", nil, false, false, false},
		{"off on the command line", "", []string{"LAN_DISCOVERY=off"}, false, false, false},
		{"bootstrap", "[apt_p2p_Khashmir]\nBOOTSTRAP = 192.0.2.1:9977\n", nil, true, false, false},
		{"explicit no", "[DEFAULT]\nLOCAL_OK = no\n", nil, true, false, false},
		{"explicit no in the DHT section", "[apt_p2p_Khashmir]\nLOCAL_OK = no\n", nil, true, false, false},
		{"explicit no on the command line", "", []string{"LOCAL_OK=no"}, true, false, false},
		{"explicit yes with bootstrap", "[DEFAULT]\nLOCAL_OK = yes\n[apt_p2p_Khashmir]\nBOOTSTRAP = 192.0.2.1:9977\n", nil, true, true, false},
		{"mainline", "[apt_p2p_Khashmir]\nNETWORKS = both\n", nil, true, false, false},
	}
	for _, k := range cases {
		c := load(t, k.text, k.overrides...)
		if c.LAN.Discovery != k.discovery || c.DHT.LocalOK != k.localOK || c.LocalOK != k.localOK || c.LAN.LocalOKAuto != k.auto {
			t.Errorf("%s: LAN %+v, LOCAL_OK %v / DHT %v; want discovery %v, LOCAL_OK %v, auto %v",
				k.name, c.LAN, c.LocalOK, c.DHT.LocalOK, k.discovery, k.localOK, k.auto)
		}
	}
	if msg := loadErr(t, "[DEFAULT]\nLAN_DISCOVERY = sometimes\n"); !strings.Contains(msg, "LAN_DISCOVERY") {
		t.Fatalf("bad LAN_DISCOVERY: %v", msg)
	}
	var b strings.Builder
	c := load(t, "[DEFAULT]\nLAN_DISCOVERY = no\n")
	if err := c.Write(&b); err != nil || !strings.Contains(b.String(), "LAN_DISCOVERY = no") {
		t.Fatalf("written config lacks LAN_DISCOVERY (%v):\n%s", err, b.String())
	}
	// What the config subcommand writes reads back the same.
	again := load(t, b.String())
	if again.LAN.Discovery || again.LocalOK {
		t.Fatalf("re-read: %+v LOCAL_OK %v", again.LAN, again.LocalOK)
	}
}
