package config

import "time"

// Reach is the configuration of reachability checking (issue 13): whether
// peers can reach this daemon over UDP (the DHT) and TCP (its HTTP peer port).
type Reach struct {
	// Check probes reachability (engine/reach.go). An unreachable daemon
	// announces nothing and joins the DHT read-only (BEP 43).
	Check bool
	// Interval is how often it is checked again once known.
	Interval time.Duration
}

var reachOptions = []option{
	{name: "REACH_CHECK", kind: kBool, def: "yes",
		help:  "find out whether other peers can reach this daemon (UDP and TCP probes by a few DHT nodes); one they cannot reach announces nothing and takes part in the DHT read-only",
		apply: boolOpt(func(c *Config) *bool { return &c.Reach.Check })},
	{name: "REACH_INTERVAL", kind: kTime, def: "15m",
		help:  "how often reachability is checked again once known (more often while unknown, and at once when the external address changes)",
		apply: durOpt(func(c *Config) *time.Duration { return &c.Reach.Interval })},
}

func init() { options = append(options, reachOptions...) }

// reachValue is valueString for the options above; ok is false for others.
func (c *Config) reachValue(o option) (v string, ok bool) {
	switch o.name {
	case "REACH_CHECK":
		return fmtBool(c.Reach.Check), true
	case "REACH_INTERVAL":
		return fmtTime(c.Reach.Interval), true
	}
	return "", false
}
