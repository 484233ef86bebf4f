package config

import (
	"errors"
	"fmt"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// Volunteer is the preheat mode (issue 15, package volunteer): a partial
// mirror held before anyone asks. Off while Sources is empty.
type Volunteer struct {
	Sources       []VolunteerSource
	Components    []string
	Architectures []string
	Priorities    []string
	Sections      []string
	Packages      []string
	New           time.Duration // only files first listed less than this long ago (0: any age)
	Budget        int64         // bytes (0: no budget of its own)
	Rate          int64         // bytes/s for its downloads (0: unlimited)
	Refresh       time.Duration
}

// VolunteerSource is one line of VOLUNTEER_SOURCES: a mirror as written after
// the daemon's address in a URL-prefix sources.list line, and suites.
type VolunteerSource struct {
	Mirror string
	Suites []string
}

// On reports whether the volunteer mode is configured.
func (v Volunteer) On() bool { return len(v.Sources) > 0 }

// debianArch is the machine's Debian architecture name, the default of
// VOLUNTEER_ARCHITECTURES.
func debianArch() string {
	switch runtime.GOARCH {
	case "386":
		return "i386"
	case "arm":
		return "armhf"
	case "ppc64le":
		return "ppc64el"
	case "mips64le":
		return "mips64el"
	case "mipsle":
		return "mipsel"
	}
	return runtime.GOARCH
}

// parseVolunteerSources reads one "mirror suite [suite...]" per line.
func parseVolunteerSources(s string) ([]VolunteerSource, error) {
	var out []VolunteerSource
	for _, line := range strings.Split(s, "\n") {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		if len(f) < 2 {
			return nil, fmt.Errorf("expected a mirror and at least one suite on each line, like %q, got %q",
				"deb.debian.org/debian bookworm bookworm-updates", strings.TrimSpace(line))
		}
		m := f[0]
		switch {
		case strings.HasPrefix(m, "http://"):
			m = strings.TrimPrefix(m, "http://")
		case strings.HasPrefix(m, "https://"):
			m = "https/" + strings.TrimPrefix(m, "https://")
		}
		m = strings.Trim(m, "/")
		if !strings.Contains(m, "/") && !strings.Contains(m, ".") && !strings.Contains(m, ":") {
			return nil, fmt.Errorf("%q is not a mirror (write it as host/path, e.g. deb.debian.org/debian)", f[0])
		}
		out = append(out, VolunteerSource{Mirror: m, Suites: f[1:]})
	}
	return out, nil
}

var volunteerOptions = []option{
	{name: "VOLUNTEER_SOURCES", kind: kSources, def: "",
		help:  "volunteer mode: hold part of a mirror before anyone asks, and serve it to the swarm. One mirror per line, as after the daemon's address in a sources.list line, then its suites: deb.debian.org/debian bookworm bookworm-updates (empty: off)",
		apply: func(c *Config, v any) { c.Volunteer.Sources = v.([]VolunteerSource) }},
	{name: "VOLUNTEER_COMPONENTS", kind: kList, def: "main", help: "components a volunteer holds",
		apply: listOpt(func(c *Config) *[]string { return &c.Volunteer.Components })},
	{name: "VOLUNTEER_ARCHITECTURES", kind: kList, def: debianArch(), help: "architectures a volunteer holds (their lists include Architecture: all packages)",
		apply: listOpt(func(c *Config) *[]string { return &c.Volunteer.Architectures })},
	{name: "VOLUNTEER_PRIORITIES", kind: kList, def: "", help: "only packages of these priorities, e.g. required important standard (empty: any)",
		apply: listOpt(func(c *Config) *[]string { return &c.Volunteer.Priorities })},
	{name: "VOLUNTEER_SECTIONS", kind: kList, def: "", help: "only packages of these sections, e.g. net admin (empty: any)",
		apply: listOpt(func(c *Config) *[]string { return &c.Volunteer.Sections })},
	{name: "VOLUNTEER_PACKAGES", kind: kList, def: "", help: "only these packages, by name (empty: any)",
		apply: listOpt(func(c *Config) *[]string { return &c.Volunteer.Packages })},
	{name: "VOLUNTEER_NEW", kind: kTime, def: "0", help: "only files first listed in the indexes less than this long ago, as this volunteer saw them appear, e.g. 3d (0: any age)",
		apply: durOpt(func(c *Config) *time.Duration { return &c.Volunteer.New })},
	{name: "VOLUNTEER_BUDGET", kind: kBytes, def: "0", help: "largest size of what a volunteer holds, e.g. 50G; newest files first (0: no budget of its own; CACHE_SIZE still applies and must be larger)",
		apply: i64Opt(func(c *Config) *int64 { return &c.Volunteer.Budget })},
	{name: "VOLUNTEER_RATE", kind: kBytes, def: "4M", help: "bandwidth of a volunteer's own downloads, bytes per second, e.g. 10M (0: unlimited); a download apt asks for meanwhile runs at full speed",
		apply: i64Opt(func(c *Config) *int64 { return &c.Volunteer.Rate })},
	{name: "VOLUNTEER_REFRESH", kind: kTime, def: "6h", help: "how often a volunteer fetches the indexes again (±10%)",
		apply: durOpt(func(c *Config) *time.Duration { return &c.Volunteer.Refresh })},
}

func init() { options = append(options, volunteerOptions...) }

// checkVolunteer reports the volunteer options that cannot work together.
func (c *Config) checkVolunteer() error {
	v := c.Volunteer
	if !v.On() {
		return nil
	}
	var errs []error
	if len(v.Architectures) == 0 {
		errs = append(errs, errors.New("VOLUNTEER_ARCHITECTURES: set the architectures to hold, e.g. amd64"))
	}
	if len(v.Components) == 0 {
		errs = append(errs, errors.New("VOLUNTEER_COMPONENTS: set the components to hold, e.g. main"))
	}
	if v.Refresh < time.Minute {
		errs = append(errs, errors.New("VOLUNTEER_REFRESH: at least 1m (the mirror is asked at every refresh)"))
	}
	if c.CacheSize > 0 && (v.Budget == 0 || v.Budget > c.CacheSize) {
		errs = append(errs, fmt.Errorf("VOLUNTEER_BUDGET (%d) must be set and below CACHE_SIZE (%d), or the cache's own eviction removes what the volunteer fetched", v.Budget, c.CacheSize))
	}
	return errors.Join(errs...)
}

// volunteerValue is valueString for the options above ("" for others).
func (c *Config) volunteerValue(o option) (string, bool) {
	v := c.Volunteer
	switch o.name {
	case "VOLUNTEER_SOURCES":
		var lines []string
		for _, s := range v.Sources {
			lines = append(lines, s.Mirror+" "+strings.Join(s.Suites, " "))
		}
		return strings.Join(lines, "\n  "), true
	case "VOLUNTEER_COMPONENTS":
		return strings.Join(v.Components, " "), true
	case "VOLUNTEER_ARCHITECTURES":
		return strings.Join(v.Architectures, " "), true
	case "VOLUNTEER_PRIORITIES":
		return strings.Join(v.Priorities, " "), true
	case "VOLUNTEER_SECTIONS":
		return strings.Join(v.Sections, " "), true
	case "VOLUNTEER_PACKAGES":
		return strings.Join(v.Packages, " "), true
	case "VOLUNTEER_NEW":
		return fmtTime(v.New), true
	case "VOLUNTEER_BUDGET":
		return strconv.FormatInt(v.Budget, 10), true
	case "VOLUNTEER_RATE":
		return strconv.FormatInt(v.Rate, 10), true
	case "VOLUNTEER_REFRESH":
		return fmtTime(v.Refresh), true
	}
	return "", false
}
