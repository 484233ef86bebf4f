package config

import (
	"strings"
	"testing"
)

// The mainline DHT is off unless NETWORKS says otherwise; its options parse,
// refuse what they should, and are written back by the config subcommand.
func TestMainlineOptions(t *testing.T) {
	c := load(t, "")
	if c.Mainline.Networks != "apt-p2p" || c.Mainline.UsesMainline() || !c.Mainline.AptP2P() || c.Mainline.Port != 9978 ||
		len(c.Mainline.Bootstrap) != 4 {
		t.Fatalf("defaults: %+v", c.Mainline)
	}
	c = load(t, "[apt_p2p_Khashmir]\nNETWORKS = Mainline\nMAINLINE_PORT = 6881\nMAINLINE_BOOTSTRAP = 127.0.0.1:1 127.0.0.1:2\nMAINLINE_READ_ONLY = yes\n")
	if !c.Mainline.UsesMainline() || c.Mainline.AptP2P() || c.Mainline.Port != 6881 || !c.Mainline.ReadOnly ||
		strings.Join(c.Mainline.Bootstrap, ",") != "127.0.0.1:1,127.0.0.1:2" {
		t.Fatalf("set: %+v", c.Mainline)
	}
	if c := load(t, "", "apt_p2p_Khashmir.NETWORKS=both"); !c.Mainline.UsesMainline() || !c.Mainline.AptP2P() {
		t.Fatalf("both: %+v", c.Mainline)
	}
	c = load(t, "[apt_p2p_Khashmir]\nNETWORKS = mainline\nMAINLINE_PORT = 6881\n")
	if msg := loadErr(t, "[apt_p2p_Khashmir]\nNETWORKS = bittorrent\n"); !strings.Contains(msg, "NETWORKS") {
		t.Fatalf("bad NETWORKS: %v", msg)
	}
	var b strings.Builder
	if err := c.Write(&b); err != nil || !strings.Contains(b.String(), "NETWORKS = mainline") || !strings.Contains(b.String(), "MAINLINE_PORT = 6881") {
		t.Fatalf("written config lacks the mainline options (%v):\n%s", err, b.String())
	}
}
