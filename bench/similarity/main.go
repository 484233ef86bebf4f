// Command similarity measures how many bytes block-level reuse (rsync/zsync
// style: rolling-checksum matching at any offset) would save when a client that
// holds one Debian package fetches a similar one, against fetching the whole file
// (issue 15, item 3). It is a benchmark harness, not part of the daemon; the
// driver is bench/similarity.sh and the results are in bench/RESULTS.md.
//
//	similarity plan -base F,... -updates F,... [-arch amd64 -other arm64] [-per-class N]
//	        [-per-source N] [-arch-per-class N] [-max-size BYTES] [-seed S] -out sample.json -fetch FILE
//	    reads Packages indexes (the release's for both architectures, and the update
//	    suites' for -arch), pairs every updated package with its previous version and
//	    every -arch package with its -other twin of the same version, draws the sample
//	    (rule in SampleOpts.Describe) and writes it, with the population per size class,
//	    to -out; -fetch gets one `apt-get download` spec and file name per line.
//	similarity measure -sample sample.json -cache DIR [-bs 512,1024,...] [-sumbytes 20]
//	        [-tar-bs 512,4096,65536|none] [-tar-limit BYTES] [-j N] -out results.json
//	    matches every pair's wanted file against the one held, at the .deb level (-bs)
//	    and at the uncompressed data.tar level (-tar-bs), writes the raw results and
//	    prints the report (markdown).
//	similarity report -sample sample.json -results results.json [-sumbytes 20] [-cache DIR]
//	    prints the report again from saved results.
//	similarity dupes [-min-size BYTES] [-list] PACKAGES... | -sample sample.json
//	    counts files of at least -min-size whose content is also published under
//	    another name in the union of the indexes (or among the sampled files).
package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: similarity plan|measure|report|dupes ...")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "plan":
		err = cmdPlan(os.Args[2:])
	case "measure":
		err = cmdMeasure(os.Args[2:])
	case "report":
		err = cmdReport(os.Args[2:])
	case "dupes":
		err = cmdDupes(os.Args[2:])
	default:
		err = fmt.Errorf("unknown command %q (plan, measure, report, dupes)", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "similarity:", err)
		os.Exit(1)
	}
}

func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

func readAll(files []string) ([]Pkg, error) {
	var all []Pkg
	for _, f := range files {
		p, err := ReadPackages(f)
		if err != nil {
			return nil, err
		}
		all = append(all, p...)
	}
	return all, nil
}

func parseBytes(s string) (int64, error) {
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || f < 0 {
		return 0, fmt.Errorf("bad byte count %q", s)
	}
	return int64(f), nil
}

func cmdPlan(args []string) error {
	fs := flag.NewFlagSet("plan", flag.ContinueOnError)
	base := fs.String("base", "", "comma-separated Packages files of the release (both architectures)")
	updates := fs.String("updates", "", "comma-separated Packages files of the update suites")
	arch := fs.String("arch", "amd64", "the architecture of the wanted files")
	other := fs.String("other", "arm64", "the architecture of the held twin for the arch pairs (empty: none)")
	perClass := fs.Int("per-class", 40, "update pairs per size class")
	archPerClass := fs.Int("arch-per-class", 20, "arch pairs per size class")
	perSource := fs.Int("per-source", 3, "at most this many pairs of one source package per class")
	maxSize := fs.String("max-size", "160e6", "leave out pairs with a file over this many bytes")
	seed := fs.String("seed", "issue15", "seed of the sampling order")
	out := fs.String("out", "", "sample file to write (JSON)")
	fetch := fs.String("fetch", "", "file to write the apt-get download specs to (spec and file name per line)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *base == "" || *updates == "" || *out == "" {
		return errors.New("plan needs -base, -updates and -out")
	}
	maxBytes, err := parseBytes(*maxSize)
	if err != nil {
		return err
	}
	basePkgs, err := readAll(splitList(*base))
	if err != nil {
		return err
	}
	updPkgs, err := readAll(splitList(*updates))
	if err != nil {
		return err
	}
	all := append(append([]Pkg{}, basePkgs...), updPkgs...)
	opts := SampleOpts{PerClass: *perClass, PerSource: *perSource, MaxSize: maxBytes, Seed: *seed}
	s := &Sample{Rule: opts.Describe()}
	opts.Choose(s, "update", UpdatePairs(all, updPkgs, *arch))
	if *other != "" && *archPerClass > 0 {
		ao := opts
		ao.PerClass = *archPerClass
		ao.Choose(s, "arch", ArchPairs(basePkgs, *arch, *other))
	}
	if err := writeJSON(*out, s); err != nil {
		return err
	}
	if *fetch != "" {
		var b strings.Builder
		seen := map[string]bool{}
		for _, p := range s.Pairs {
			for _, q := range []Pkg{p.New, p.Old} {
				if !seen[q.Filename] {
					seen[q.Filename] = true
					fmt.Fprintf(&b, "%s %s %d\n", q.Spec(), q.LocalName(), q.Size)
				}
			}
		}
		if err := os.WriteFile(*fetch, []byte(b.String()), 0o644); err != nil {
			return err
		}
	}
	for _, kind := range []string{"update", "arch"} {
		n := 0
		for _, p := range s.Pairs {
			if p.Kind == kind {
				n++
			}
		}
		fmt.Printf("%s: %d pairs sampled; population %v; over the size limit %d\n", kind, n, s.Population[kind], s.Excluded[kind])
	}
	return nil
}

func writeJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", " ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

func readJSON(path string, v any) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

func parseSizes(s string) ([]int, error) {
	var out []int
	for _, f := range splitList(s) {
		n, err := strconv.Atoi(f)
		if err != nil || n <= 0 {
			return nil, fmt.Errorf("bad block size %q", f)
		}
		out = append(out, n)
	}
	if len(out) == 0 {
		return nil, errors.New("no block sizes")
	}
	return out, nil
}

func cmdMeasure(args []string) error {
	fs := flag.NewFlagSet("measure", flag.ContinueOnError)
	sample := fs.String("sample", "", "sample file written by plan")
	cache := fs.String("cache", "", "directory holding the downloaded .debs")
	bs := fs.String("bs", "512,1024,2048,4096,8192,16384,32768,65536", "block sizes")
	sumBytes := fs.Int("sumbytes", 20, "checksum bytes a client fetches per block")
	tarBs := fs.String("tar-bs", "512,4096,65536", "block sizes at the data.tar level (none: skip it)")
	tarLimit := fs.String("tar-limit", "2e9", "largest data.tar to decode, in bytes")
	workers := fs.Int("j", 1, "pairs measured at once")
	out := fs.String("out", "", "results file to write (JSON)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *sample == "" || *cache == "" || *out == "" {
		return errors.New("measure needs -sample, -cache and -out")
	}
	sizes, err := parseSizes(*bs)
	if err != nil {
		return err
	}
	var tarSizes []int
	if *tarBs != "none" {
		if tarSizes, err = parseSizes(*tarBs); err != nil {
			return err
		}
	}
	limit, err := parseBytes(*tarLimit)
	if err != nil {
		return err
	}
	var s Sample
	if err := readJSON(*sample, &s); err != nil {
		return err
	}
	res, err := Measure(&s, MeasureOpts{Cache: *cache, BlockSizes: sizes, TarSizes: tarSizes, TarLimit: limit, Workers: *workers, Progress: os.Stderr})
	if err != nil {
		return err
	}
	if err := writeJSON(*out, res); err != nil {
		return err
	}
	printReport(&s, res, *sumBytes)
	return nil
}

func printReport(s *Sample, res []PairResult, sumBytes int) {
	fmt.Printf("Sample rule: %s.\n\n", s.Rule)
	WriteReport(os.Stdout, s, res, sumBytes)
	best, bestPop, bs, bsPop := Decision(s, res, sumBytes)
	verdict := "below"
	if best >= 0.15 || bestPop >= 0.15 {
		verdict = "at or above"
	}
	fmt.Printf("\nDecision (update pairs, compressed .deb): best median saving %s (at %s), population-weighted %s (at %s): %s the 15%% threshold.\n",
		pct(best), formatSize(int64(bs)), pct(bestPop), formatSize(int64(bsPop)), verdict)
}

func cmdReport(args []string) error {
	fs := flag.NewFlagSet("report", flag.ContinueOnError)
	sample := fs.String("sample", "", "sample file written by plan")
	results := fs.String("results", "", "results file written by measure")
	sumBytes := fs.Int("sumbytes", 20, "checksum bytes a client fetches per block")
	cache := fs.String("cache", "", "the .deb cache, to add what older results lack (xz stored bytes)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	var s Sample
	if err := readJSON(*sample, &s); err != nil {
		return err
	}
	var res []PairResult
	if err := readJSON(*results, &res); err != nil {
		return err
	}
	if len(res) == 0 {
		return errors.New("no results")
	}
	if *cache != "" {
		if err := AddStored(res, *cache); err != nil {
			return err
		}
	}
	printReport(&s, res, *sumBytes)
	return nil
}

func cmdDupes(args []string) error {
	fs := flag.NewFlagSet("dupes", flag.ContinueOnError)
	minSize := fs.String("min-size", "1e6", "smallest file counted, in bytes")
	sample := fs.String("sample", "", "count over the files of this sample instead of Packages files")
	list := fs.Bool("list", false, "list every group of names sharing a content")
	if err := fs.Parse(args); err != nil {
		return err
	}
	minBytes, err := parseBytes(*minSize)
	if err != nil {
		return err
	}
	var idx [][]Pkg
	if *sample != "" {
		var s Sample
		if err := readJSON(*sample, &s); err != nil {
			return err
		}
		var files []Pkg
		for _, p := range s.Pairs {
			files = append(files, p.New, p.Old)
		}
		idx = append(idx, files)
	} else if fs.NArg() == 0 {
		return errors.New("dupes needs Packages files or -sample")
	}
	for _, f := range fs.Args() {
		p, err := ReadPackages(f)
		if err != nil {
			return err
		}
		idx = append(idx, p)
	}
	Dupes(idx, minBytes).Write(os.Stdout, *list)
	return nil
}
