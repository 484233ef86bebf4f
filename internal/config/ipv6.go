package config

import "fmt"

// IPv6 is the configuration of address families (issue 13 item 2): which
// networks the daemon takes part in and listens on.
type IPv6 struct {
	// Families is ADDRESS_FAMILIES: "both" (the default: the IPv4 DHT of the
	// original protocol and the IPv6 DHT of its extension, wherever the
	// machine has IPv6), "ipv4" (the original network only) or "ipv6".
	Families string
}

// Want4 and Want6 say which families ADDRESS_FAMILIES turns on.
func (v IPv6) Want4() bool { return v.Families != "ipv6" }
func (v IPv6) Want6() bool { return v.Families != "ipv4" }

// TCPNetwork is the network the HTTP listener opens for ADDRESS_FAMILIES:
// "tcp" (dual-stack on every address where the machine has IPv6), "tcp4"
// or "tcp6".
func (c *Config) TCPNetwork() string {
	switch c.IPv6.Families {
	case "ipv4":
		return "tcp4"
	case "ipv6":
		return "tcp6"
	}
	return "tcp"
}

var ipv6Options = []option{
	{name: "ADDRESS_FAMILIES", kind: kEnum, def: "both", enum: []string{"both", "ipv4", "ipv6"},
		help:  "address families to use: both (IPv4 and IPv6 where this machine has it: apt, peers and the DHT on each; IPv4 peers of the original protocol see nothing of IPv6), ipv4 (the original network only) or ipv6 (IPv6 only); with BIND_ADDRESS set, only that address's family runs",
		apply: strOpt(func(c *Config) *string { return &c.IPv6.Families })},
}

func init() { options = append(options, ipv6Options...) }

// ipv6Value is valueString for the options above ("" for others).
func (c *Config) ipv6Value(o option) string {
	if o.name == "ADDRESS_FAMILIES" {
		return c.IPv6.Families
	}
	return ""
}

// checkFamilies refuses settings that contradict each other: a BIND_ADDRESS
// of a family ADDRESS_FAMILIES turns off (the listeners would fail with a
// message about the port), and the mainline DHT, which speaks IPv4 only
// (BEP 5; BEP 32 is not implemented there), on a daemon without IPv4.
func (c *Config) checkFamilies() error {
	v4 := c.IPv6.Want4()
	if b := c.Bind; b.IsValid() {
		is4 := b.Is4() || b.Is4In6()
		if is4 && !c.IPv6.Want4() || !is4 && !c.IPv6.Want6() {
			return fmt.Errorf("BIND_ADDRESS %s is an %s address, but ADDRESS_FAMILIES is %s: bind an address of that family, or set ADDRESS_FAMILIES to both",
				c.BindAddress, map[bool]string{true: "IPv4", false: "IPv6"}[is4], c.IPv6.Families)
		}
		if !b.IsUnspecified() || is4 {
			v4 = is4 // "::" is every address of both families
		}
	}
	if c.Mainline.UsesMainline() && !v4 {
		return fmt.Errorf("NETWORKS %s: the mainline DHT speaks IPv4 only, and this daemon has no IPv4 (ADDRESS_FAMILIES %s, BIND_ADDRESS %q): set NETWORKS to apt-p2p, or give the daemon IPv4",
			c.Mainline.Networks, c.IPv6.Families, c.BindAddress)
	}
	return nil
}
