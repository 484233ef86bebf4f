package engine

import (
	"bytes"
	"errors"
	"net/netip"
	"time"

	"github.com/apt-p2p/apt-p2p/wire"
)

// Errors a store can be refused with; they are sent to the storer as the
// message of a KRPC 201 error.
var (
	ErrValueTooLarge = errors.New("engine: value too large")
	ErrKeyFull       = errors.New("engine: too many values for this key")
	ErrSourceFull    = errors.New("engine: too many values stored from this address")
	ErrStoreFull     = errors.New("engine: value storage full")
	ErrBadValue      = errors.New("engine: value refused")
)

// storedValue is one value under a key.
type storedValue struct {
	data    []byte
	src     netip.Addr // the storer's IP, for the per-source quota
	refresh time.Time  // last (re-)store
}

type keyValues struct {
	vals []storedValue
}

// valueStore is the set of values per key of §2.12, bounded by the limits
// of Config so that a flood of stores cannot exhaust memory.
type valueStore struct {
	keys     map[wire.ID]*keyValues
	perIP    map[netip.Addr]int
	nvalues  int
	nbytes   int
	maxSize  int
	perKey   int
	perSrc   int
	maxVals  int
	maxBytes int
}

func newValueStore(c *Config) *valueStore {
	return &valueStore{
		keys:     make(map[wire.ID]*keyValues),
		perIP:    make(map[netip.Addr]int),
		maxSize:  c.MaxValueSize,
		perKey:   c.MaxValuesPerKey,
		perSrc:   c.MaxValuesPerIP,
		maxVals:  c.MaxStoredValues,
		maxBytes: c.MaxStoredBytes,
	}
}

// put stores value under key, or refreshes its timestamp if it is already
// there. The value is copied.
func (s *valueStore) put(key wire.ID, value []byte, src netip.Addr, now time.Time) error {
	if len(value) > s.maxSize {
		return ErrValueTooLarge
	}
	kv := s.keys[key]
	if kv != nil {
		for i := range kv.vals {
			if bytes.Equal(kv.vals[i].data, value) {
				kv.vals[i].refresh = now
				return nil
			}
		}
		if len(kv.vals) >= s.perKey {
			return ErrKeyFull
		}
	}
	src = src.Unmap()
	if s.perIP[src] >= s.perSrc {
		return ErrSourceFull
	}
	if s.nvalues >= s.maxVals || s.nbytes+len(value) > s.maxBytes {
		return ErrStoreFull
	}
	if kv == nil {
		kv = &keyValues{}
		s.keys[key] = kv
	}
	kv.vals = append(kv.vals, storedValue{data: bytes.Clone(value), src: src, refresh: now})
	s.perIP[src]++
	s.nvalues++
	s.nbytes += len(value)
	return nil
}

// count is the number of values under key.
func (s *valueStore) count(key wire.ID) int {
	if kv := s.keys[key]; kv != nil {
		return len(kv.vals)
	}
	return 0
}

// appendValues appends the values under key to dst (aliases, not copies).
func (s *valueStore) appendValues(dst [][]byte, key wire.ID) [][]byte {
	if kv := s.keys[key]; kv != nil {
		for i := range kv.vals {
			dst = append(dst, kv.vals[i].data)
		}
	}
	return dst
}

// expire deletes values not refreshed since before cutoff.
func (s *valueStore) expire(cutoff time.Time) (removed int) {
	for k, kv := range s.keys {
		j := 0
		for _, v := range kv.vals {
			if v.refresh.Before(cutoff) {
				s.drop(v)
				removed++
				continue
			}
			kv.vals[j] = v
			j++
		}
		clear(kv.vals[j:])
		kv.vals = kv.vals[:j]
		if j == 0 {
			delete(s.keys, k)
		}
	}
	return removed
}

func (s *valueStore) drop(v storedValue) {
	s.nvalues--
	s.nbytes -= len(v.data)
	if n := s.perIP[v.src] - 1; n > 0 {
		s.perIP[v.src] = n
	} else {
		delete(s.perIP, v.src)
	}
}
