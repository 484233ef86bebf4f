package config

import (
	"strconv"
	"strings"
)

// Mainline is the configuration of the BitTorrent mainline DHT (issue 14),
// kept in the DHT section beside the apt-p2p DHT's options.
type Mainline struct {
	// Networks says which DHTs the daemon uses: "apt-p2p" (the default),
	// "mainline" or "both".
	Networks  string
	Port      int      // UDP port of the mainline DHT node
	Bootstrap []string // mainline routers or nodes, host:port
	ReadOnly  bool     // BEP 43: take part without answering queries
}

// AptP2P and UsesMainline say which networks are on.
func (m Mainline) AptP2P() bool       { return m.Networks != "mainline" }
func (m Mainline) UsesMainline() bool { return m.Networks == "mainline" || m.Networks == "both" }

// defaultMainlineRouters are the public mainline routers BitTorrent clients
// bootstrap from (engine.DefaultMainlineRouters; repeated here so config
// does not import the engine).
const defaultMainlineRouters = "router.bittorrent.com:6881 router.utorrent.com:6881 dht.transmissionbt.com:6881 dht.libtorrent.org:25401"

var mainlineOptions = []option{
	{dht: true, name: "NETWORKS", kind: kEnum, def: "apt-p2p", enum: []string{"apt-p2p", "mainline", "both"},
		help:  "DHTs to find peers on: apt-p2p (this protocol, needs BOOTSTRAP nodes), mainline (the public BitTorrent DHT; announces which files this machine holds to anyone), or both",
		apply: strOpt(func(c *Config) *string { return &c.Mainline.Networks })},
	{dht: true, name: "MAINLINE_PORT", kind: kInt, def: "9978", help: "UDP port of the mainline DHT node (NETWORKS mainline or both)",
		apply: intOpt(func(c *Config) *int { return &c.Mainline.Port })},
	{dht: true, name: "MAINLINE_BOOTSTRAP", kind: kList, def: defaultMainlineRouters, help: "mainline DHT routers or nodes to join through, host:port",
		apply: listOpt(func(c *Config) *[]string { return &c.Mainline.Bootstrap })},
	{dht: true, name: "MAINLINE_READ_ONLY", kind: kBool, def: "no", help: "join the mainline DHT read-only (BEP 43): look up and announce, answer no queries (behind a NAT)",
		apply: boolOpt(func(c *Config) *bool { return &c.Mainline.ReadOnly })},
}

func init() { options = append(options, mainlineOptions...) }

// mainlineValue is valueString for the options above ("" for others).
func (c *Config) mainlineValue(o option) string {
	switch o.name {
	case "NETWORKS":
		return c.Mainline.Networks
	case "MAINLINE_PORT":
		return strconv.Itoa(c.Mainline.Port)
	case "MAINLINE_BOOTSTRAP":
		return strings.Join(c.Mainline.Bootstrap, "\n  ")
	case "MAINLINE_READ_ONLY":
		return fmtBool(c.Mainline.ReadOnly)
	}
	return ""
}
