package main

import (
	"cmp"
	"fmt"
	"hash/fnv"
	"slices"
	"strings"
)

// Pair is one measurement: the client wants New and already has Old.
type Pair struct {
	Kind  string `json:"kind"` // "update" (Old is the version before New) or "arch" (Old is New's arm64 twin)
	Class string `json:"class"`
	New   Pkg    `json:"new"`
	Old   Pkg    `json:"old"`
}

// Size classes of the wanted file, in decimal units (the PRsync facts speak of 1 MB).
var classes = []struct {
	Name  string
	Below int64
}{
	{"<100 kB", 100e3},
	{"100 kB-1 MB", 1e6},
	{"1-10 MB", 10e6},
	{">=10 MB", 1 << 62},
}

func sizeClass(size int64) string {
	for _, c := range classes {
		if size < c.Below {
			return c.Name
		}
	}
	return classes[len(classes)-1].Name
}

// ClassPopulation is what a class holds before sampling, for weighting the sample.
type ClassPopulation struct {
	Pairs int   `json:"pairs"`
	Bytes int64 `json:"bytes"`
}

// Sample is what `plan` writes and `measure` reads.
type Sample struct {
	Rule       string                                `json:"rule"`
	Population map[string]map[string]ClassPopulation `json:"population"` // kind -> class -> population
	Excluded   map[string]int                        `json:"excluded"`   // kind -> pairs over the size limit
	Pairs      []Pair                                `json:"pairs"`
}

// normName is a binary package's name with every run of digits replaced by '#',
// so that a kernel's linux-image-6.1.0-57-amd64 follows linux-image-6.1.0-56-amd64
// (the ABI number is in the name) the way xz-utils 5.4.1-1 follows 5.4.1-0.2.
func normName(name string) string {
	var b strings.Builder
	digits := false
	for i := 0; i < len(name); i++ {
		if isDigit(name[i]) {
			if !digits {
				b.WriteByte('#')
			}
			digits = true
			continue
		}
		digits = false
		b.WriteByte(name[i])
	}
	return b.String()
}

// UpdatePairs pairs every package of the update suites (updates) whose
// architecture is arch or all with its predecessor: of the packages of the same
// source, architecture and name up to digits in any suite (all), the one with the
// highest version below it. Packages with no lower version anywhere (new ones,
// and updates the release has since taken in unchanged) are left out.
func UpdatePairs(all, updates []Pkg, arch string) []Pair {
	type key struct{ source, norm, arch string }
	byKey := map[key][]Pkg{}
	seen := map[string]bool{}
	for _, p := range all {
		if seen[p.Filename] {
			continue
		}
		seen[p.Filename] = true
		k := key{p.Source, normName(p.Package), p.Arch}
		byKey[k] = append(byKey[k], p)
	}
	var out []Pair
	done := map[string]bool{}
	for _, p := range updates {
		if p.Arch != arch && p.Arch != "all" || done[p.Filename] {
			continue
		}
		done[p.Filename] = true
		var best *Pkg
		for i, q := range byKey[key{p.Source, normName(p.Package), p.Arch}] {
			if CompareVersions(q.Version, p.Version) >= 0 {
				continue
			}
			if best == nil || CompareVersions(q.Version, best.Version) > 0 {
				best = &byKey[key{p.Source, normName(p.Package), p.Arch}][i]
			}
		}
		if best != nil {
			out = append(out, Pair{Kind: "update", Class: sizeClass(p.Size), New: p, Old: *best})
		}
	}
	return out
}

// ArchPairs pairs every package of arch (not arch:all, which is one file for
// every architecture) with the same package and version built for other.
func ArchPairs(pkgs []Pkg, arch, other string) []Pair {
	type key struct{ name, version string }
	twins := map[key]Pkg{}
	for _, p := range pkgs {
		if p.Arch == other {
			twins[key{p.Package, p.Version}] = p
		}
	}
	var out []Pair
	done := map[string]bool{}
	for _, p := range pkgs {
		if p.Arch != arch || done[p.Filename] {
			continue
		}
		done[p.Filename] = true
		if q, ok := twins[key{p.Package, p.Version}]; ok {
			out = append(out, Pair{Kind: "arch", Class: sizeClass(p.Size), New: p, Old: q})
		}
	}
	return out
}

// SampleOpts is the sampling rule.
type SampleOpts struct {
	PerClass  int    // pairs per size class
	PerSource int    // at most this many pairs of one source package per class
	MaxSize   int64  // pairs whose either file is larger are left out (counted in Excluded)
	Seed      string // mixed into the hash that orders the candidates
}

// Describe says the rule in words for the report.
func (o SampleOpts) Describe() string {
	return fmt.Sprintf("per kind and size class of the wanted file, up to %d pairs in the order of FNV-1a(seed %q + package + arch + version), at most %d per source package per class; pairs with a file over %s left out",
		o.PerClass, o.Seed, o.PerSource, formatSize(o.MaxSize))
}

// Choose draws the sample from pairs (all of one kind) and adds its population to s.
func (o SampleOpts) Choose(s *Sample, kind string, pairs []Pair) {
	if s.Population == nil {
		s.Population = map[string]map[string]ClassPopulation{}
		s.Excluded = map[string]int{}
	}
	pop := map[string]ClassPopulation{}
	byClass := map[string][]Pair{}
	for _, p := range pairs {
		if p.New.Size > o.MaxSize || p.Old.Size > o.MaxSize {
			s.Excluded[kind]++
			continue
		}
		c := pop[p.Class]
		c.Pairs++
		c.Bytes += p.New.Size
		pop[p.Class] = c
		byClass[p.Class] = append(byClass[p.Class], p)
	}
	s.Population[kind] = pop
	rank := func(p Pair) uint64 {
		h := fnv.New64a()
		h.Write([]byte(o.Seed + "\x00" + p.New.Package + "\x00" + p.New.Arch + "\x00" + p.New.Version))
		return h.Sum64()
	}
	for _, c := range classes {
		cand := byClass[c.Name]
		slices.SortFunc(cand, func(x, y Pair) int { return cmp.Compare(rank(x), rank(y)) })
		perSource := map[string]int{}
		taken := 0
		for _, p := range cand {
			if taken == o.PerClass {
				break
			}
			if perSource[p.New.Source] == o.PerSource {
				continue
			}
			perSource[p.New.Source]++
			taken++
			s.Pairs = append(s.Pairs, p)
		}
	}
}
