package main

import (
	"fmt"
	"io"
	"slices"
	"strings"
)

// DupeStats answers "what share of the files over a size holds content that is
// also published under another name", over the union of some Packages indexes.
type DupeStats struct {
	MinSize      int64
	Files        int   // distinct file names in the indexes
	Bytes        int64 // their bytes
	Over         int   // of them, files of at least MinSize
	OverBytes    int64
	Shared       int      // files of at least MinSize whose SHA256 some other file name also has
	SharedBytes  int64    //
	SharedGroups []string // the names of each content, " = " between them
	// SharedKinds counts the groups by the directories their names differ in
	// ("pool/main = pool/updates/main" is a security update copied into the release).
	SharedKinds map[string]int
	// arch:all files are one pool file listed by every architecture's index: the
	// same name, so apt already fetches (and apt-p2p already shares) one file.
	ArchAll      int
	ArchAllMulti int // arch:all files listed by more than one architecture's index
}

// Dupes computes DupeStats over indexes (each the parsed Packages of one suite
// and architecture).
func Dupes(indexes [][]Pkg, minSize int64) DupeStats {
	s := DupeStats{MinSize: minSize}
	byName := map[string]Pkg{}
	listedBy := map[string]int{}
	for _, idx := range indexes {
		inThis := map[string]bool{}
		for _, p := range idx {
			if _, ok := byName[p.Filename]; !ok {
				byName[p.Filename] = p
			}
			if !inThis[p.Filename] {
				inThis[p.Filename] = true
				listedBy[p.Filename]++
			}
		}
	}
	byHash := map[string][]string{}
	for name, p := range byName {
		s.Files++
		s.Bytes += p.Size
		if p.Arch == "all" {
			s.ArchAll++
			if listedBy[name] > 1 {
				s.ArchAllMulti++
			}
		}
		if p.Size >= minSize {
			s.Over++
			s.OverBytes += p.Size
			byHash[p.SHA256] = append(byHash[p.SHA256], name)
		}
	}
	for _, names := range byHash {
		if len(names) < 2 {
			continue
		}
		slices.Sort(names)
		s.Shared += len(names)
		s.SharedBytes += int64(len(names)) * byName[names[0]].Size
		s.SharedGroups = append(s.SharedGroups, strings.Join(names, " = "))
		var dirs []string
		for _, n := range names {
			dirs = append(dirs, poolArea(n))
		}
		slices.Sort(dirs)
		if s.SharedKinds == nil {
			s.SharedKinds = map[string]int{}
		}
		s.SharedKinds[strings.Join(slices.Compact(dirs), " = ")]++
	}
	slices.Sort(s.SharedGroups)
	return s
}

// poolArea is the part of a pool path before the source's directory:
// "pool/updates/main" of "pool/updates/main/a/ark/ark_1_amd64.deb".
func poolArea(name string) string {
	parts := strings.Split(name, "/")
	if len(parts) > 3 {
		return strings.Join(parts[:len(parts)-3], "/")
	}
	return "."
}

// Write prints the table; list adds every group of names sharing a content.
func (s DupeStats) Write(w io.Writer, list bool) {
	share := func(a, b int64) string { return pct(float64(a) / float64(max(b, 1))) }
	fmt.Fprintf(w, "| files (distinct names) | bytes | files ≥ %s | their share of files | their share of bytes | files ≥ %s with their content under another name | share of those files | share of their bytes | arch:all files | listed by more than one architecture |\n",
		formatSize(s.MinSize), formatSize(s.MinSize))
	fmt.Fprintf(w, "|---|---|---|---|---|---|---|---|---|---|\n")
	fmt.Fprintf(w, "| %d | %s | %d | %s | %s | %d | %s | %s | %d | %d |\n",
		s.Files, formatSize(s.Bytes), s.Over, share(int64(s.Over), int64(s.Files)), share(s.OverBytes, s.Bytes),
		s.Shared, share(int64(s.Shared), int64(s.Over)), share(s.SharedBytes, s.OverBytes), s.ArchAll, s.ArchAllMulti)
	kinds := make([]string, 0, len(s.SharedKinds))
	for k := range s.SharedKinds {
		kinds = append(kinds, k)
	}
	slices.Sort(kinds)
	for _, k := range kinds {
		fmt.Fprintf(w, "\n- %d contents published as %s\n", s.SharedKinds[k], k)
	}
	if list {
		for _, g := range s.SharedGroups {
			fmt.Fprintf(w, "\n    %s", g)
		}
		if len(s.SharedGroups) > 0 {
			fmt.Fprintln(w)
		}
	}
}
