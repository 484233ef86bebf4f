package config

// PortMap is the configuration of port mapping (issue 13 item 1;
// internal/portmap): asking the router to forward the peer and DHT ports.
type PortMap struct {
	// Mode is PORT_MAPPING: "no" (the default), "natpmp" (NAT-PMP, RFC
	// 6886, to the gateway of the default route), "upnp" (UPnP IGD, found
	// by SSDP) or "auto" (NAT-PMP, else UPnP).
	Mode string
}

// On says whether PORT_MAPPING asks the router for anything.
func (p PortMap) On() bool { return p.Mode != "" && p.Mode != "no" }

var portMapOptions = []option{
	{name: "PORT_MAPPING", kind: kEnum, def: "no", enum: []string{"no", "natpmp", "upnp", "auto"},
		help:  "ask the router for port mappings of PORT (TCP) and the DHT's UDP port (and MAINLINE_PORT with the mainline DHT): no; natpmp (NAT-PMP to the gateway of the default route); upnp (UPnP IGD, found by SSDP multicast); auto (NAT-PMP, else UPnP). Leases of 1 h are renewed while the daemon runs and deleted when it stops; the reachability check still decides whether peers can reach us",
		apply: strOpt(func(c *Config) *string { return &c.PortMap.Mode })},
}

func init() { options = append(options, portMapOptions...) }

// portMapValue is valueString for the options above; ok is false for others.
func (c *Config) portMapValue(o option) (string, bool) {
	if o.name == "PORT_MAPPING" {
		return c.PortMap.Mode, true
	}
	return "", false
}
