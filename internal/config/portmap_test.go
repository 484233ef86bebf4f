package config

import (
	"strings"
	"testing"
)

// PORT_MAPPING is off by default, takes natpmp, upnp and auto, refuses anything else by
// name, and the written configuration reads back the same.
func TestPortMapping(t *testing.T) {
	if c := load(t, ""); c.PortMap.On() || c.PortMap.Mode != "no" {
		t.Fatalf("default: %+v", c.PortMap)
	}
	c := load(t, "[DEFAULT]\nPORT_MAPPING = natpmp\n")
	if !c.PortMap.On() || c.PortMap.Mode != "natpmp" {
		t.Fatalf("natpmp: %+v", c.PortMap)
	}
	for _, m := range []string{"natpmp", "upnp", "auto", "no"} {
		if c := load(t, "", "PORT_MAPPING="+m); c.PortMap.Mode != m || c.PortMap.On() != (m != "no") {
			t.Fatalf("command line %s: %+v", m, c.PortMap)
		}
	}
	if msg := loadErr(t, "[DEFAULT]\nPORT_MAPPING = pcp\n"); !strings.Contains(msg, "PORT_MAPPING") {
		t.Fatalf("bad PORT_MAPPING: %v", msg)
	}
	var b strings.Builder
	if err := c.Write(&b); err != nil || !strings.Contains(b.String(), "PORT_MAPPING = natpmp") {
		t.Fatalf("written config lacks PORT_MAPPING (%v):\n%s", err, b.String())
	}
	if again := load(t, b.String()); again.PortMap.Mode != "natpmp" {
		t.Fatalf("re-read: %+v", again.PortMap)
	}
}
