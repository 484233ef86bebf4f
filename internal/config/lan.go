package config

// LAN is the configuration of LAN discovery (issue 13 item 3; internal/lan).
type LAN struct {
	// Discovery is LAN_DISCOVERY: announce this daemon on its LANs by
	// multicast and put the daemons heard into the DHT.
	Discovery bool
	// LocalOKAuto says LOCAL_OK was set nowhere and is yes because of the
	// rule in lanLocalOK.
	LocalOKAuto bool
}

var lanOptions = []option{
	{name: "LAN_DISCOVERY", kind: kBool, def: "yes",
		help:  "find the apt-p2p daemons on this machine's LANs by multicast and add them to the DHT, with no configuration; with no BOOTSTRAP (the DHT is then the LAN's own) LOCAL_OK, unless set, becomes yes so that the LAN's private addresses are usable",
		apply: boolOpt(func(c *Config) *bool { return &c.LAN.Discovery })},
}

func init() {
	options = append(options, lanOptions...)
	postBuild = append(postBuild, lanLocalOK)
}

// lanLocalOK: a daemon with LAN discovery on, no BOOTSTRAP and only the
// apt-p2p DHT has a DHT made of what LAN discovery finds, and LANs have
// private addresses; the original's LOCAL_OK = no would refuse them all. So
// when LOCAL_OK is set nowhere (file, section or command line) it becomes
// yes. A daemon given BOOTSTRAP nodes, or on the public mainline DHT, keeps
// LOCAL_OK = no unless told otherwise: private addresses would be
// unreachable for its peers elsewhere.
func lanLocalOK(ini *iniFile, dhtSec string, c *Config) error {
	if !c.LAN.Discovery || len(c.DHT.Bootstrap) > 0 || c.Mainline.UsesMainline() {
		return nil
	}
	if _, set := ini.raw(dhtSec, "LOCAL_OK"); set {
		return nil
	}
	c.LocalOK, c.DHT.LocalOK, c.LAN.LocalOKAuto = true, true, true
	return nil
}

// lanValue is valueString for the options above.
func (c *Config) lanValue(o option) (string, bool) {
	if o.name == "LAN_DISCOVERY" {
		return fmtBool(c.LAN.Discovery), true
	}
	return "", false
}
