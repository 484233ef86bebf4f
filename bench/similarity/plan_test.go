package main

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"
)

func pk(name, source, version, arch string, size int64) Pkg {
	p := Pkg{Package: name, Source: source, Version: version, Arch: arch, Size: size}
	p.Filename = "pool/main/" + name[:1] + "/" + source + "/" + p.LocalName()
	p.SHA256 = fmt.Sprintf("%064x", len(p.Filename)*1000003+int(size))
	return p
}

func TestNormName(t *testing.T) {
	for in, want := range map[string]string{
		"linux-image-6.1.0-57-amd64": "linux-image-#.#.#-#-amd#",
		"xz-utils":                   "xz-utils",
		"python3.11":                 "python#.#",
		"":                           "",
	} {
		if got := normName(in); got != want {
			t.Errorf("normName(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestUpdatePairs(t *testing.T) {
	base := []Pkg{
		pk("xz-utils", "xz-utils", "5.4.1-0.2", "amd64", 1000),
		pk("linux-image-6.1.0-50-amd64", "linux", "6.1.170-1", "amd64", 70e6),
		pk("same", "same", "1.0-1", "amd64", 10),
		pk("doc", "doc", "1.0", "all", 5e6),
		pk("libx1", "x", "1.0", "amd64", 100),
		pk("libx1", "x", "1.0", "arm64", 100),
		pk("liby1", "y", "1.0", "amd64", 100),
	}
	upd := []Pkg{
		pk("xz-utils", "xz-utils", "5.4.1-1", "amd64", 1100),
		pk("linux-image-6.1.0-53-amd64", "linux", "6.1.180-1", "amd64", 71e6),
		pk("linux-image-6.1.0-54-amd64", "linux", "6.1.190-1", "amd64", 72e6),
		pk("same", "same", "1.0-1", "amd64", 10), // the release took the update in
		pk("brand-new", "brand-new", "1.0", "amd64", 10),
		pk("doc", "doc", "1.1", "all", 6e6),
		pk("libx1", "x", "1.1", "arm64", 100), // not the wanted architecture
		pk("liby2", "z", "2.0", "amd64", 100), // same name up to digits, other source
	}
	all := append(slices.Clone(base), upd...)
	got := map[string]string{}
	for _, p := range UpdatePairs(all, upd, "amd64") {
		if p.Kind != "update" || p.Class != sizeClass(p.New.Size) {
			t.Fatalf("pair %+v", p)
		}
		got[p.New.Package+" "+p.New.Version] = p.Old.Package + " " + p.Old.Version
	}
	want := map[string]string{
		"xz-utils 5.4.1-1":                     "xz-utils 5.4.1-0.2",
		"linux-image-6.1.0-53-amd64 6.1.180-1": "linux-image-6.1.0-50-amd64 6.1.170-1",
		"linux-image-6.1.0-54-amd64 6.1.190-1": "linux-image-6.1.0-53-amd64 6.1.180-1",
		"doc 1.1":                              "doc 1.0",
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("pairs\n%v\nwant\n%v", got, want)
	}
}

func TestArchPairs(t *testing.T) {
	pkgs := []Pkg{
		pk("a", "a", "1.0", "amd64", 10), pk("a", "a", "1.0", "arm64", 11),
		pk("b", "b", "1.0", "amd64", 10), pk("b", "b", "1.1", "arm64", 11),
		pk("c", "c", "1.0", "all", 10),
	}
	ps := ArchPairs(pkgs, "amd64", "arm64")
	if len(ps) != 1 || ps[0].New.Package != "a" || ps[0].Old.Arch != "arm64" || ps[0].Kind != "arch" {
		t.Fatalf("%+v", ps)
	}
}

func TestChoose(t *testing.T) {
	var pairs []Pair
	add := func(name, source string, size int64) {
		n := pk(name, source, "2.0", "amd64", size)
		o := pk(name, source, "1.0", "amd64", size)
		pairs = append(pairs, Pair{Kind: "update", Class: sizeClass(size), New: n, Old: o})
	}
	for i := range 10 {
		add(fmt.Sprintf("big%d", i), "big", 20e6) // one source: capped
	}
	for i := range 30 {
		add(fmt.Sprintf("small%d", i), fmt.Sprintf("s%d", i), 50e3)
	}
	add("huge", "huge", 500e6)
	o := SampleOpts{PerClass: 5, PerSource: 2, MaxSize: 160e6, Seed: "t"}
	var s Sample
	o.Choose(&s, "update", pairs)
	perClass := map[string]int{}
	for _, p := range s.Pairs {
		perClass[p.Class]++
	}
	if perClass["<100 kB"] != 5 || perClass[">=10 MB"] != 2 || len(s.Pairs) != 7 {
		t.Fatalf("per class %v", perClass)
	}
	if s.Excluded["update"] != 1 {
		t.Fatalf("excluded %v", s.Excluded)
	}
	if p := s.Population["update"][">=10 MB"]; p.Pairs != 10 || p.Bytes != 200e6 {
		t.Fatalf("population %+v", p)
	}
	// The same seed draws the same sample; another seed another one.
	var again, other Sample
	o.Choose(&again, "update", slices.Clone(pairs))
	o.Seed = "u"
	o.Choose(&other, "update", slices.Clone(pairs))
	names := func(s Sample) string {
		var b strings.Builder
		for _, p := range s.Pairs {
			b.WriteString(p.New.Package + " ")
		}
		return b.String()
	}
	if names(again) != names(s) || names(other) == names(s) {
		t.Fatalf("samples %q, %q, %q", names(s), names(again), names(other))
	}
}

func TestDupes(t *testing.T) {
	a := pk("a", "a", "1", "amd64", 2e6)
	b := pk("b", "b", "1", "amd64", 2e6)
	b.SHA256 = a.SHA256 // same content under another name
	c := pk("c", "c", "1", "amd64", 3e6)
	small1 := pk("s", "s", "1", "amd64", 10)
	small2 := pk("t", "t", "1", "amd64", 10)
	small2.SHA256 = small1.SHA256
	all := pk("d", "d", "1", "all", 4e6)
	s := Dupes([][]Pkg{{a, b, small1, small2, all}, {c, all, a}}, 1e6)
	if s.Files != 6 || s.Over != 4 || s.Shared != 2 || s.SharedBytes != 4e6 || s.OverBytes != 11e6 || s.ArchAll != 1 || s.ArchAllMulti != 1 {
		t.Fatalf("%+v", s)
	}
	if fmt.Sprint(s.SharedKinds) != "map[pool/main:1]" {
		t.Fatalf("kinds %v", s.SharedKinds)
	}
	sec := a
	sec.Filename = "pool/updates/main/a/a/" + a.LocalName()
	s = Dupes([][]Pkg{{a}, {sec}}, 1e6)
	if s.Shared != 2 || fmt.Sprint(s.SharedKinds) != "map[pool/main = pool/updates/main:1]" {
		t.Fatalf("security copy: %+v", s)
	}
}

func TestCommonPrefix(t *testing.T) {
	a := randomBytes(70, 10_000)
	b := slices.Clone(a)
	b[9000] ^= 1
	for _, c := range []struct {
		a, b []byte
		want int64
	}{{a, b, 9000}, {a, a, 10_000}, {a, a[:5], 5}, {nil, a, 0}, {a[1:], a, 0}} {
		if got := commonPrefix(c.a, c.b); got != c.want {
			t.Fatalf("commonPrefix = %d, want %d", got, c.want)
		}
	}
}

func TestWeightedMedian(t *testing.T) {
	if got := weightedMedian([]float64{3, 1, 2}, ones(3)); got != 2 {
		t.Fatalf("median %v", got)
	}
	if got := weightedMedian([]float64{0, 0.5}, []float64{1, 3}); got != 0.5 {
		t.Fatalf("weighted median %v", got)
	}
	if got := weightedMedian(nil, nil); got != 0 {
		t.Fatalf("empty %v", got)
	}
}

// Population weighting: a class sampled twice as densely counts half as much.
func TestSummarisePopulationWeights(t *testing.T) {
	pop := map[string]ClassPopulation{"<100 kB": {Pairs: 100, Bytes: 1e6}, ">=10 MB": {Pairs: 1, Bytes: 100e6}}
	res := []PairResult{}
	add := func(class string, size, matched int64) {
		res = append(res, PairResult{
			Pair: Pair{Kind: "update", Class: class},
			Deb:  LevelResult{Size: size, Matches: []BlockMatch{{BlockSize: 1000, Blocks: int((size + 999) / 1000), MatchedBytes: matched}}},
		})
	}
	add("<100 kB", 10_000, 0)
	add(">=10 MB", 20e6, 10e6)
	add(">=10 MB", 20e6, 10e6)
	outs, _ := collect(res, "update", "deb", 0, 0, pop)
	s := summarise(outs, pop)
	if s.median[""] != 0.5 || s.median["<100 kB"] != 0 {
		t.Fatalf("medians %v", s.median)
	}
	// Weights: 100 for the small pair, 0.5 for each big one.
	if s.popMedian != 0 {
		t.Fatalf("population-weighted median %v, want 0", s.popMedian)
	}
	if want := 100e6 * 0.5 / 101e6; math.Abs(s.popBytes-want) > 1e-9 {
		t.Fatalf("population byte saving %v, want %v", s.popBytes, want)
	}
	if math.Abs(s.byteSaving[""]-20e6/40.01e6) > 1e-9 {
		t.Fatalf("sample byte saving %v", s.byteSaving[""])
	}
}
