package node

import (
	"slices"
	"testing"

	"github.com/apt-p2p/apt-p2p/internal/portmap"
)

func TestPortMapPorts(t *testing.T) {
	tcp := portmap.Port{Proto: portmap.TCP, Internal: 9977}
	udp := portmap.Port{Proto: portmap.UDP, Internal: 9977}
	ml := portmap.Port{Proto: portmap.UDP, Internal: 9978}
	for _, c := range []struct {
		name                string
		dhtOnly             bool
		peer, dht, mainline uint16
		want                []portmap.Port
	}{
		{"apt-p2p DHT", false, 9977, 9977, 0, []portmap.Port{tcp, udp}},
		{"both DHTs", false, 9977, 9977, 9978, []portmap.Port{tcp, udp, ml}},
		{"DHT-only", true, 9977, 9977, 0, []portmap.Port{udp}},
	} {
		if got := portMapPorts(c.dhtOnly, c.peer, c.dht, c.mainline); !slices.Equal(got, c.want) {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
	}
	// A mapping's external port is what peers are told; without one, the
	// local port.
	st := portmap.Status{Mappings: []portmap.Mapping{{Proto: portmap.TCP, Internal: 9977, External: 9980}}}
	if p := mappedPort(st, tcp); p != 9980 {
		t.Errorf("mapped TCP: %d, want 9980", p)
	}
	if p := mappedPort(st, udp); p != 9977 {
		t.Errorf("unmapped UDP: %d, want 9977", p)
	}
}
