package config

import (
	"strings"
	"testing"
	"time"
)

// The volunteer mode is off by default; its sources are one mirror and its
// suites per line (http:// and https:// URLs taken too), its filters and
// limits parse, bad values are refused with the file and line, a budget that
// the cache quota would undercut is refused, and the config subcommand writes
// them back in a form Load reads.
func TestVolunteerOptions(t *testing.T) {
	c := load(t, "")
	if c.Volunteer.On() || c.Volunteer.Rate != 4<<20 || c.Volunteer.Refresh != 6*time.Hour || strings.Join(c.Volunteer.Components, " ") != "main" ||
		len(c.Volunteer.Architectures) != 1 {
		t.Fatalf("defaults: %+v", c.Volunteer)
	}
	c = load(t, "[DEFAULT]\nVOLUNTEER_SOURCES =\n  deb.debian.org/debian bookworm bookworm-updates\n  https://security.debian.org/debian-security/ bookworm-security\n"+
		"VOLUNTEER_ARCHITECTURES = amd64 arm64\nVOLUNTEER_PRIORITIES = required important\nVOLUNTEER_NEW = 3d\nVOLUNTEER_BUDGET = 50G\nVOLUNTEER_RATE = 10M\n")
	v := c.Volunteer
	if !v.On() || len(v.Sources) != 2 || v.Sources[0].Mirror != "deb.debian.org/debian" || strings.Join(v.Sources[0].Suites, " ") != "bookworm bookworm-updates" ||
		v.Sources[1].Mirror != "https/security.debian.org/debian-security" || strings.Join(v.Sources[1].Suites, " ") != "bookworm-security" ||
		strings.Join(v.Architectures, " ") != "amd64 arm64" || strings.Join(v.Priorities, " ") != "required important" ||
		v.New != 72*time.Hour || v.Budget != 50<<30 || v.Rate != 10<<20 {
		t.Fatalf("set: %+v", v)
	}
	var b strings.Builder
	if err := c.Write(&b); err != nil {
		t.Fatal(err)
	}
	again := load(t, b.String())
	if len(again.Volunteer.Sources) != 2 || again.Volunteer.Sources[1].Mirror != v.Sources[1].Mirror || again.Volunteer.New != v.New {
		t.Fatalf("written and read back: %+v\n%s", again.Volunteer, b.String())
	}
	for text, want := range map[string]string{
		"[DEFAULT]\nVOLUNTEER_SOURCES = deb.debian.org/debian\n":                     "test.conf:2: VOLUNTEER_SOURCES: expected a mirror and at least one suite",
		"[DEFAULT]\nVOLUNTEER_SOURCES = bookworm main\n":                             "not a mirror",
		"[DEFAULT]\nVOLUNTEER_SOURCES = d.o/debian sid\nCACHE_SIZE = 10G\n":          "VOLUNTEER_BUDGET (0) must be set and below CACHE_SIZE",
		"[DEFAULT]\nVOLUNTEER_SOURCES = d.o/debian sid\nVOLUNTEER_REFRESH = 10s\n":   "VOLUNTEER_REFRESH: at least 1m",
		"[DEFAULT]\nVOLUNTEER_SOURCES = d.o/debian sid\nVOLUNTEER_ARCHITECTURES =\n": "VOLUNTEER_ARCHITECTURES: set the architectures",
	} {
		if msg := loadErr(t, text); !strings.Contains(msg, want) {
			t.Errorf("%q: error %q, want it to say %q", text, msg, want)
		}
	}
	if c := load(t, "[DEFAULT]\nVOLUNTEER_SOURCES = d.o/debian sid\nCACHE_SIZE = 10G\nVOLUNTEER_BUDGET = 8G\n"); c.Volunteer.Budget != 8<<30 {
		t.Fatalf("budget under the cache size: %+v", c.Volunteer)
	}
}

func TestUploadWeightAndLoadAware(t *testing.T) {
	if c := load(t, ""); c.UploadWeight != 1 || !c.LoadAware {
		t.Fatalf("defaults: weight %v, load aware %v", c.UploadWeight, c.LoadAware)
	}
	if c := load(t, "[DEFAULT]\nUPLOAD_WEIGHT = 0.25\nLOAD_AWARE = no\n"); c.UploadWeight != 0.25 || c.LoadAware {
		t.Fatalf("set: weight %v, load aware %v", c.UploadWeight, c.LoadAware)
	}
	for _, bad := range []string{"0", "-1", "x", "NaN", "1e9"} {
		if msg := loadErr(t, "[DEFAULT]\nUPLOAD_WEIGHT = "+bad+"\n"); !strings.Contains(msg, "UPLOAD_WEIGHT") {
			t.Errorf("UPLOAD_WEIGHT = %s: %v", bad, msg)
		}
	}
}
