package main

import (
	"cmp"
	"fmt"
	"io"
	"slices"
	"strings"
)

func formatSize(n int64) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1e9:
		return fmt.Sprintf("%.1f GB", float64(n)/1e9)
	case n >= 1e6:
		return fmt.Sprintf("%.0f MB", float64(n)/1e6)
	case n >= 1024 && n%1024 == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d B", n)
}

func pct(f float64) string { return fmt.Sprintf("%.1f%%", 100*f) }

// weightedMedian is the value at which the running weight first reaches half the
// total (with equal weights, the lower median).
func weightedMedian(vals, weights []float64) float64 {
	if len(vals) == 0 {
		return 0
	}
	idx := make([]int, len(vals))
	total := 0.0
	for i := range idx {
		idx[i] = i
		total += weights[i]
	}
	slices.SortFunc(idx, func(a, b int) int { return cmp.Compare(vals[a], vals[b]) })
	run := 0.0
	for _, i := range idx {
		run += weights[i]
		if run >= total/2 {
			return vals[i]
		}
	}
	return vals[idx[len(idx)-1]]
}

// obs is one pair's outcome at one level and block size.
type obs struct {
	class  string
	size   int64
	saved  int64 // bytes saved after paying for the checksums (negative when they cost more)
	gross  int64 // bytes matched, before the checksums' cost
	weight float64
}

func (o obs) saving() float64 { return float64(o.saved) / float64(max(o.size, 1)) }

type summary struct {
	median      map[string]float64 // per class, and "" for all pairs
	popMedian   float64            // every pair weighted by its class's population / sample count
	byteSaving  map[string]float64 // saved bytes / wanted bytes, per class and ""
	popBytes    float64            // per-class byte savings weighted by the classes' population bytes
	gross       float64            // matched bytes / wanted bytes, all pairs
	atLeast15   float64            // share of pairs saving >= 15%
	n           map[string]int
	popBytesTot map[string]int64
}

func summarise(outs []obs, pop map[string]ClassPopulation) summary {
	s := summary{median: map[string]float64{}, byteSaving: map[string]float64{}, n: map[string]int{}, popBytesTot: map[string]int64{}}
	vals := map[string][]float64{}
	var allVals, allW []float64
	saved, size := map[string]int64{}, map[string]int64{}
	var gross int64
	hits := 0
	for _, o := range outs {
		v := o.saving()
		vals[o.class] = append(vals[o.class], v)
		vals[""] = append(vals[""], v)
		allVals = append(allVals, v)
		allW = append(allW, o.weight)
		saved[o.class] += o.saved
		size[o.class] += o.size
		saved[""] += o.saved
		size[""] += o.size
		gross += o.gross
		s.n[o.class]++
		s.n[""]++
		if v >= 0.15 {
			hits++
		}
	}
	for c, v := range vals {
		s.median[c] = weightedMedian(v, ones(len(v)))
		s.byteSaving[c] = float64(saved[c]) / float64(max(size[c], 1))
	}
	s.popMedian = weightedMedian(allVals, allW)
	var wsum, wtot float64
	for c, p := range pop {
		if size[c] == 0 {
			continue
		}
		wsum += float64(p.Bytes) * s.byteSaving[c]
		wtot += float64(p.Bytes)
	}
	if wtot > 0 {
		s.popBytes = wsum / wtot
	}
	s.gross = float64(gross) / float64(max(size[""], 1))
	if len(outs) > 0 {
		s.atLeast15 = float64(hits) / float64(len(outs))
	}
	return s
}

func ones(n int) []float64 {
	w := make([]float64, n)
	for i := range w {
		w[i] = 1
	}
	return w
}

// collect gathers the outcome of every pair of kind at level ("deb" or "tar") for
// block size index bi, or for each pair's best block size when bi < 0.
func collect(res []PairResult, kind, level string, bi int, sumBytes int, pop map[string]ClassPopulation) (outs []obs, skipped int) {
	sampled := map[string]int{}
	for _, r := range res {
		if r.Kind == kind {
			sampled[r.Class]++
		}
	}
	for _, r := range res {
		if r.Kind != kind {
			continue
		}
		l := &r.Deb
		if level == "tar" {
			if r.Tar == nil || r.Tar.Err != "" || len(r.Tar.Matches) == 0 {
				skipped++
				continue
			}
			l = r.Tar
		}
		pick := func(m BlockMatch) obs {
			return obs{class: r.Class, size: l.Size, saved: l.Size - m.Fetched(l.Size, sumBytes), gross: m.MatchedBytes}
		}
		var o obs
		if bi >= 0 {
			o = pick(l.Matches[bi])
		} else {
			for i, m := range l.Matches {
				if c := pick(m); i == 0 || c.saved > o.saved {
					o = c
				}
			}
		}
		o.weight = float64(pop[r.Class].Pairs) / float64(sampled[r.Class])
		outs = append(outs, o)
	}
	return outs, skipped
}

// levelSizes are the block sizes measured at level, from the first pair that has them.
func levelSizes(res []PairResult, level string) []int {
	var out []int
	for _, r := range res {
		l := &r.Deb
		if level == "tar" {
			if r.Tar == nil || len(r.Tar.Matches) == 0 {
				continue
			}
			l = r.Tar
		}
		for _, m := range l.Matches {
			out = append(out, m.BlockSize)
		}
		return out
	}
	return nil
}

// WriteReport writes the markdown tables of the results.
func WriteReport(w io.Writer, s *Sample, res []PairResult, sumBytes int) {
	kinds := []struct{ kind, title string }{
		{"update", "bookworm → bookworm-security/-updates (the client has the previous version)"},
		{"arch", "amd64 wanted, arm64 of the same version held (architecture variants)"},
	}
	levels := []struct{ level, title string }{
		{"deb", "the compressed .deb as apt fetches it"},
		{"tar", "the uncompressed data.tar inside (what a deb-aware delta could match; context only)"},
	}
	fmt.Fprintf(w, "Checksums cost %d bytes per block of the wanted file (4-byte rolling + 16-byte strong, as zsync at most); savings are net of them.\n", sumBytes)
	for _, k := range kinds {
		pop := s.Population[k.kind]
		if pop == nil {
			continue
		}
		fmt.Fprintf(w, "\n#### %s\n\n", k.title)
		var head []string
		for _, c := range classes {
			head = append(head, c.Name)
		}
		counts := []string{}
		for _, c := range classes {
			outs, _ := collect(res, k.kind, "deb", 0, sumBytes, pop)
			n := 0
			var b int64
			for _, o := range outs {
				if o.class == c.Name {
					n++
					b += o.size
				}
			}
			counts = append(counts, fmt.Sprintf("%s: %d pairs (%s) of %d (%s)", c.Name, n, formatSize(b), pop[c.Name].Pairs, formatSize(pop[c.Name].Bytes)))
		}
		fmt.Fprintf(w, "Sample of the population (wanted-file bytes): %s; left out over the size limit: %d.\n", strings.Join(counts, "; "), s.Excluded[k.kind])
		for _, l := range levels {
			sizes := levelSizes(res, l.level)
			if len(sizes) == 0 {
				continue
			}
			_, skipped := collect(res, k.kind, l.level, 0, sumBytes, pop)
			fmt.Fprintf(w, "\n**%s**", l.title)
			if skipped > 0 {
				fmt.Fprintf(w, " (%d pairs not decoded, left out)", skipped)
			}
			fmt.Fprintf(w, "\n\n| block | median %s | median all | median all, population-weighted | pairs ≥15%% | bytes saved %s | bytes saved all | all, population-weighted | matched before checksums |\n",
				strings.Join(head, " | median "), strings.Join(head, " | bytes saved "))
			fmt.Fprintf(w, "|%s\n", strings.Repeat("---|", 2*len(classes)+6))
			for bi := range sizes {
				writeRow(w, formatSize(int64(sizes[bi])), res, k.kind, l.level, bi, sumBytes, pop)
			}
			writeRow(w, "best per file", res, k.kind, l.level, -1, sumBytes, pop)
			writeWhy(w, res, k.kind, l.level, sumBytes)
		}
		writeTop(w, res, k.kind, sumBytes, 10)
	}
}

func writeRow(w io.Writer, label string, res []PairResult, kind, level string, bi, sumBytes int, pop map[string]ClassPopulation) {
	outs, _ := collect(res, kind, level, bi, sumBytes, pop)
	s := summarise(outs, pop)
	cells := []string{label}
	for _, c := range classes {
		cells = append(cells, cell(s, c.Name, s.median))
	}
	cells = append(cells, pct(s.median[""]), pct(s.popMedian), pct(s.atLeast15))
	for _, c := range classes {
		cells = append(cells, cell(s, c.Name, s.byteSaving))
	}
	cells = append(cells, pct(s.byteSaving[""]), pct(s.popBytes), pct(s.gross))
	fmt.Fprintf(w, "| %s |\n", strings.Join(cells, " | "))
}

// writeWhy explains the level's numbers. At the .deb level: within one xz block,
// the LZMA output after the first changed input byte differs from the old one's,
// so what a matcher can find there is content xz stored verbatim (or the
// encoding of an identical tar prefix). At the data.tar level: how far the two
// tars agree from their start.
func writeWhy(w io.Writer, res []PairResult, kind, level string, sumBytes int) {
	if level == "tar" {
		var prefix, size int64
		var shares []float64
		for _, r := range res {
			if r.Kind != kind || r.Tar == nil || r.Tar.Err != "" {
				continue
			}
			prefix += r.Tar.Prefix
			size += r.Tar.Size
			shares = append(shares, float64(r.Tar.Prefix)/float64(max(r.Tar.Size, 1)))
		}
		fmt.Fprintf(w, "\nThe two data.tar files of a pair are identical from their start up to their first difference over %s of the wanted data.tar bytes (byte-weighted; median pair %s).\n",
			pct(float64(prefix)/float64(max(size, 1))), pct(weightedMedian(shares, ones(len(shares)))))
		return
	}
	var stored, size int64
	var hi, lo []float64
	for _, r := range res {
		if r.Kind != kind || len(r.Deb.Matches) == 0 {
			continue
		}
		stored += r.Deb.Stored
		size += r.Deb.Size
		share := float64(r.Deb.Stored) / float64(max(r.Deb.Size, 1))
		best := -1.0
		for _, m := range r.Deb.Matches {
			best = max(best, m.Saving(r.Deb.Size, sumBytes))
		}
		if best >= 0.15 {
			hi = append(hi, share)
		} else {
			lo = append(lo, share)
		}
	}
	fmt.Fprintf(w, "\nxz stored %s of the wanted .deb bytes verbatim (uncompressed LZMA2 chunks; byte-weighted). Median share stored verbatim: %s in the %d pairs that save ≥15%% at some block size, %s in the other %d.\n",
		pct(float64(stored)/float64(max(size, 1))), pct(weightedMedian(hi, ones(len(hi)))), len(hi), pct(weightedMedian(lo, ones(len(lo)))), len(lo))
}

// writeTop lists the pairs that save most at the .deb level (at their best
// block size), with what the data.tar level and the identical prefix give them.
func writeTop(w io.Writer, res []PairResult, kind string, sumBytes, n int) {
	type row struct {
		r           PairResult
		deb, tar    float64
		debBs, pref int64
		stored      int64
	}
	var rows []row
	for _, r := range res {
		if r.Kind != kind || len(r.Deb.Matches) == 0 {
			continue
		}
		x := row{r: r, deb: -1, tar: -1}
		for _, m := range r.Deb.Matches {
			if v := m.Saving(r.Deb.Size, sumBytes); v > x.deb {
				x.deb, x.debBs = v, int64(m.BlockSize)
			}
		}
		x.pref = -1
		if r.Tar != nil && r.Tar.Err == "" {
			x.pref = r.Tar.Prefix * 1000 / max(r.Tar.Size, 1)
			for _, m := range r.Tar.Matches {
				x.tar = max(x.tar, m.Saving(r.Tar.Size, sumBytes))
			}
		}
		x.stored = r.Deb.Stored
		rows = append(rows, x)
	}
	slices.SortStableFunc(rows, func(a, b row) int { return cmp.Compare(b.deb, a.deb) })
	fmt.Fprintf(w, "\nThe %d pairs saving most at the .deb level:\n\n| package | held → wanted | .deb size | saving (.deb, best block) | stored verbatim by xz | saving (data.tar) | identical data.tar prefix |\n|---|---|---|---|---|---|---|\n", min(n, len(rows)))
	for _, x := range rows[:min(n, len(rows))] {
		held := x.r.Old.Version
		if x.r.Kind == "arch" {
			held = x.r.Old.Arch
		}
		tar, pref := "–", "–"
		if x.tar > -1 {
			tar = pct(x.tar)
		}
		if x.pref >= 0 {
			pref = pct(float64(x.pref) / 1000)
		}
		fmt.Fprintf(w, "| %s | %s → %s | %s | %s (%s) | %s | %s | %s |\n", x.r.New.Package, held, x.r.New.Version, formatSize(x.r.Deb.Size),
			pct(x.deb), formatSize(x.debBs), pct(float64(x.stored)/float64(max(x.r.Deb.Size, 1))), tar, pref)
	}
}

func cell(s summary, class string, m map[string]float64) string {
	if s.n[class] == 0 {
		return "–"
	}
	return pct(m[class])
}

// Decision is the rule applied to the update pairs at the .deb level:
// the best median saving over the block sizes, plain and population-weighted.
func Decision(s *Sample, res []PairResult, sumBytes int) (best, bestPop float64, bs, bsPop int) {
	pop := s.Population["update"]
	sizes := levelSizes(res, "deb")
	best, bestPop = -1, -1
	for bi := range sizes {
		outs, _ := collect(res, "update", "deb", bi, sumBytes, pop)
		sum := summarise(outs, pop)
		if sum.median[""] > best {
			best, bs = sum.median[""], sizes[bi]
		}
		if sum.popMedian > bestPop {
			bestPop, bsPop = sum.popMedian, sizes[bi]
		}
	}
	return best, bestPop, bs, bsPop
}
