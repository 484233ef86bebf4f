package volunteer

import (
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/cespare/xxhash/v2"
)

// state is what a volunteer keeps between refreshes and restarts (the
// daemon stores it as a file in its cache directory).
type state struct {
	Version int `json:"version"`
	// Lists holds, for each Packages list (mirror, suite, component,
	// architecture), the 64-bit hashes of the file names it listed at the
	// last refresh: a name missing from it at the next refresh is new.
	// base64 of sorted little-endian uint64s. Kept only for "new" selections.
	Lists map[string]string `json:"lists,omitempty"`
	// FirstSeen is when a file first appeared in a list this volunteer had
	// read before (Unix seconds), by mirror/filename. Files of a list's
	// first refresh have no date: they were there before this volunteer
	// looked, and count as old.
	FirstSeen map[string]int64 `json:"first_seen,omitempty"`
	// Held are the files this volunteer fetched itself (so it removes them
	// when they leave the selection), by mirror/filename.
	Held map[string]heldFile `json:"held,omitempty"`
}

type heldFile struct {
	SHA256 string `json:"sha256"`
	Size   int64  `json:"size"`
}

const stateVersion = 1

// maxState bounds the state file read back (Debian main of one architecture
// takes about 0.7 MB per list).
const maxState = 256 << 20

func newState() *state {
	return &state{Version: stateVersion, Lists: map[string]string{}, FirstSeen: map[string]int64{}, Held: map[string]heldFile{}}
}

func parseState(b []byte) (*state, error) {
	st := newState()
	if len(b) == 0 {
		return st, nil
	}
	if len(b) > maxState {
		return newState(), fmt.Errorf("volunteer: state file larger than %d bytes", maxState)
	}
	if err := json.Unmarshal(b, st); err != nil || st.Version != stateVersion {
		return newState(), fmt.Errorf("volunteer: state file unreadable (starting afresh): %v", err)
	}
	if st.Lists == nil {
		st.Lists = map[string]string{}
	}
	if st.FirstSeen == nil {
		st.FirstSeen = map[string]int64{}
	}
	if st.Held == nil {
		st.Held = map[string]heldFile{}
	}
	return st, nil
}

func (st *state) marshal() []byte {
	b, _ := json.Marshal(st)
	return b
}

func nameHash(name string) uint64 { return xxhash.Sum64String(name) }

func encodeHashes(hs []uint64) string {
	slices.Sort(hs)
	hs = slices.Compact(hs)
	b := make([]byte, 8*len(hs))
	for i, h := range hs {
		binary.LittleEndian.PutUint64(b[8*i:], h)
	}
	return base64.StdEncoding.EncodeToString(b)
}

// decodeHashes returns the sorted hashes, or ok = false for a list never
// read (or a damaged entry, which then counts as never read).
func decodeHashes(s string, present bool) ([]uint64, bool) {
	if !present {
		return nil, false
	}
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil || len(b)%8 != 0 {
		return nil, false
	}
	hs := make([]uint64, len(b)/8)
	for i := range hs {
		hs[i] = binary.LittleEndian.Uint64(b[8*i:])
	}
	return hs, true
}

// observe records the file names a list has now (keys are mirror/filename)
// and dates the ones that are new since its last refresh with now.
func (st *state) observe(list string, keys []string, now time.Time) {
	hs := make([]uint64, len(keys))
	for i, k := range keys {
		hs[i] = nameHash(k)
	}
	v, present := st.Lists[list]
	old, known := decodeHashes(v, present)
	if known {
		for i, k := range keys {
			if _, found := slices.BinarySearch(old, hs[i]); !found {
				if _, dated := st.FirstSeen[k]; !dated {
					st.FirstSeen[k] = now.Unix()
				}
			}
		}
	}
	st.Lists[list] = encodeHashes(hs)
}

// firstSeen is when the file appeared; zero for one there before the
// volunteer first read its list.
func (st *state) firstSeen(key string) time.Time {
	if s, ok := st.FirstSeen[key]; ok {
		return time.Unix(s, 0)
	}
	return time.Time{}
}

// prune forgets dates older than keep, and the lists no longer configured.
func (st *state) prune(now time.Time, keep time.Duration, lists map[string]bool) {
	for k, s := range st.FirstSeen {
		if now.Sub(time.Unix(s, 0)) > keep {
			delete(st.FirstSeen, k)
		}
	}
	for k := range st.Lists {
		if !lists[k] {
			delete(st.Lists, k)
		}
	}
}
