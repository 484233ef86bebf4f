package main

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"
)

// LevelResult is the block matching of one pair at one level: the .deb as apt
// fetches it, or the uncompressed data.tar inside it.
type LevelResult struct {
	Size      int64  `json:"size"`       // the wanted file's bytes at this level
	BasisSize int64  `json:"basis_size"` // the file the client has
	Member    string `json:"member,omitempty"`
	// Prefix is, at the data.tar level, how many leading bytes the two tars share.
	// (Not kept for the compressed members: their xz block headers hold the sizes,
	// so they differ from byte 14 on even when the tars differ only at the end.)
	Prefix int64 `json:"prefix"`
	// Stored is, at the .deb level, how many bytes of the wanted data.tar.xz are
	// payload of uncompressed LZMA2 chunks (see xzStoredBytes).
	Stored  int64        `json:"stored,omitempty"`
	Matches []BlockMatch `json:"matches"` // one per block size
	Err     string       `json:"err,omitempty"`
}

// PairResult is everything measured for one pair.
type PairResult struct {
	Pair
	Deb LevelResult  `json:"deb"`
	Tar *LevelResult `json:"tar,omitempty"`
}

// MeasureOpts says what to measure.
type MeasureOpts struct {
	Cache      string
	BlockSizes []int // at the .deb level
	TarSizes   []int // at the data.tar level
	TarLimit   int64
	Workers    int
	Progress   io.Writer
}

// readDeb reads a sampled file from the cache (as apt-get download names it, or
// by its pool name) and checks it against the index: a benchmark over the wrong
// bytes measures nothing.
func readDeb(cache string, p Pkg) ([]byte, error) {
	var b []byte
	var err error
	for _, name := range []string{p.LocalName(), path.Base(p.Filename)} {
		b, err = os.ReadFile(filepath.Join(cache, name))
		if err == nil || !errors.Is(err, os.ErrNotExist) {
			break
		}
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w (bench/similarity.sh downloads the sample)", p.Spec(), err)
	}
	sum := sha256.Sum256(b)
	if int64(len(b)) != p.Size || hex.EncodeToString(sum[:]) != p.SHA256 {
		return nil, fmt.Errorf("%s: the cached file (%d bytes) is not the one the index lists (%d bytes, SHA256 %s)", p.Spec(), len(b), p.Size, p.SHA256)
	}
	return b, nil
}

// storedBytes is xzStoredBytes of an .xz member, 0 for other compressions (or a
// stream it cannot walk: the number is an explanation, not the measurement).
func storedBytes(m arMember) int64 {
	if !strings.HasSuffix(m.Name, ".xz") {
		return 0
	}
	n, _ := xzStoredBytes(m.Data)
	return n
}

// AddStored fills in Stored for results measured before it existed, from the cache.
func AddStored(res []PairResult, cache string) error {
	for i := range res {
		r := &res[i]
		if r.Deb.Stored != 0 || !strings.HasSuffix(r.Deb.Member, ".xz") {
			continue
		}
		b, err := readDeb(cache, r.New)
		if err != nil {
			return err
		}
		if m, err := dataMember(b); err == nil {
			r.Deb.Stored = storedBytes(m)
		}
	}
	return nil
}

func matchAll(target, basis []byte, sizes []int) []BlockMatch {
	out := make([]BlockMatch, len(sizes))
	for i, bs := range sizes {
		out[i] = MatchBlocks(target, basis, bs)
	}
	return out
}

// MeasurePair reads a pair from the cache and matches it at every block size.
func MeasurePair(p Pair, o MeasureOpts) (PairResult, error) {
	r := PairResult{Pair: p}
	newDeb, err := readDeb(o.Cache, p.New)
	if err != nil {
		return r, err
	}
	oldDeb, err := readDeb(o.Cache, p.Old)
	if err != nil {
		return r, err
	}
	r.Deb = LevelResult{Size: int64(len(newDeb)), BasisSize: int64(len(oldDeb)), Matches: matchAll(newDeb, oldDeb, o.BlockSizes)}
	if nm, err := dataMember(newDeb); err == nil {
		r.Deb.Member, r.Deb.Stored = nm.Name, storedBytes(nm)
	}
	if len(o.TarSizes) == 0 {
		return r, nil
	}
	// A data.tar that cannot be read (or is over the limit) is noted in the pair,
	// not fatal: the decision rests on the .deb level.
	r.Tar = &LevelResult{}
	newTar, member, err := DataTar(newDeb, o.TarLimit)
	if err != nil {
		r.Tar.Err = fmt.Sprintf("%s: %v", p.New.Spec(), err)
		return r, nil
	}
	oldTar, _, err := DataTar(oldDeb, o.TarLimit)
	if err != nil {
		r.Tar.Err = fmt.Sprintf("%s: %v", p.Old.Spec(), err)
		return r, nil
	}
	r.Tar.Size, r.Tar.BasisSize, r.Tar.Member = int64(len(newTar)), int64(len(oldTar)), member
	r.Tar.Prefix = commonPrefix(newTar, oldTar)
	r.Tar.Matches = matchAll(newTar, oldTar, o.TarSizes)
	return r, nil
}

// Measure measures every pair of the sample with o.Workers at once; results
// keep the sample's order.
func Measure(s *Sample, o MeasureOpts) ([]PairResult, error) {
	out := make([]PairResult, len(s.Pairs))
	errs := make([]error, len(s.Pairs))
	next := make(chan int)
	var wg sync.WaitGroup
	var mu sync.Mutex
	done := 0
	for range max(1, o.Workers) {
		wg.Go(func() {
			for i := range next {
				out[i], errs[i] = MeasurePair(s.Pairs[i], o)
				if o.Progress != nil {
					mu.Lock()
					done++
					p := s.Pairs[i]
					fmt.Fprintf(o.Progress, "[%d/%d] %s %s %s <- %s\n", done, len(s.Pairs), p.Kind, p.New.Package, p.New.Version, p.Old.Version)
					mu.Unlock()
				}
			}
		})
	}
	for i := range s.Pairs {
		next <- i
	}
	close(next)
	wg.Wait()
	return out, errors.Join(errs...)
}
