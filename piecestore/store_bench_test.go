package piecestore

import (
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/apt-p2p/apt-p2p/internal/digest"
)

// BenchmarkCommit stores a file (PIECESTORE_COMMIT_MB, default 8; RESULTS.md uses 100)
// through the store — sequential 256 KiB writes, or whole pieces in reverse order (the
// read-back path) — and commits it (fsync, rename, directory fsync, metadata commit); the
// baseline writes the same bytes to a file, fsyncs and renames it without hashing.
func BenchmarkCommit(b *testing.B) {
	size := envInt("PIECESTORE_COMMIT_MB", 8) << 20
	data := randData(70, size)
	d := digestOf(data, digest.SHA256)
	dir := b.TempDir()
	b.Run("store-sequential", func(b *testing.B) {
		s := mustOpen(b, filepath.Join(dir, "s1"), Options{})
		defer s.Close()
		b.SetBytes(int64(size))
		for b.Loop() {
			w, err := s.Create(d, nil)
			if err != nil {
				b.Fatal(err)
			}
			for off := 0; off < size; off += 256 << 10 {
				if _, err := w.WriteAt(data[off:min(off+256<<10, size)], int64(off)); err != nil {
					b.Fatal(err)
				}
			}
			if _, err := w.Commit(); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("store-sequential-sparse", func(b *testing.B) {
		s := mustOpen(b, filepath.Join(dir, "s3"), Options{FS: sparseFS{}})
		defer s.Close()
		b.SetBytes(int64(size))
		for b.Loop() {
			w, err := s.Create(d, nil)
			if err != nil {
				b.Fatal(err)
			}
			for off := 0; off < size; off += 256 << 10 {
				if _, err := w.WriteAt(data[off:min(off+256<<10, size)], int64(off)); err != nil {
					b.Fatal(err)
				}
			}
			if _, err := w.Commit(); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("store-pieces-reversed", func(b *testing.B) {
		s := mustOpen(b, filepath.Join(dir, "s2"), Options{})
		defer s.Close()
		pieces := piecesOf(data)
		b.SetBytes(int64(size))
		for b.Loop() {
			w, err := s.Create(d, pieces)
			if err != nil {
				b.Fatal(err)
			}
			for i := NumPieces(int64(size)) - 1; i >= 0; i-- {
				if err := w.WritePiece(i, data[i*PieceSize:min((i+1)*PieceSize, size)], nil); err != nil {
					b.Fatal(err)
				}
			}
			if _, err := w.Commit(); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("baseline-write+fsync+rename", func(b *testing.B) {
		b.SetBytes(int64(size))
		n := 0
		for b.Loop() {
			n++
			tmp := filepath.Join(dir, fmt.Sprintf("plain%d.tmp", n))
			f, err := os.Create(tmp)
			if err != nil {
				b.Fatal(err)
			}
			for off := 0; off < size; off += 256 << 10 {
				if _, err := f.Write(data[off:min(off+256<<10, size)]); err != nil {
					b.Fatal(err)
				}
			}
			if err := f.Sync(); err != nil {
				b.Fatal(err)
			}
			f.Close()
			if err := os.Rename(tmp, filepath.Join(dir, "plain")); err != nil {
				b.Fatal(err)
			}
			OSFS{}.SyncDir(dir)
		}
	})
}

// fillEntries puts n synthetic complete entries into the in-memory maps.
func fillEntries(s *Store, n int) []digest.Set {
	ds := make([]digest.Set, n)
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := range ds {
		var d digest.Set
		d.Size = int64(1000 + i)
		var h [64]byte
		binary.LittleEndian.PutUint64(h[:], uint64(i)*0x9e3779b97f4a7c15)
		binary.LittleEndian.PutUint64(h[24:], uint64(i))
		d.Put(digest.SHA256, h[:32])
		d.Put(digest.MD5, h[8:24])
		e := &entry{name: dataName(&d)}
		e.info.Digest = d
		e.info.Complete = true
		s.insertLocked(e)
		ds[i] = d
	}
	return ds
}

// BenchmarkLookup: a lookup among 100 000 files, by digest (what the HTTP front does for
// apt) and by one raw hash (what the peer server does for /~/<hash>).
func BenchmarkLookup(b *testing.B) {
	s := mustOpen(b, b.TempDir(), Options{})
	defer s.Close()
	ds := fillEntries(s, 100_000)
	b.Run("Lookup-digest", func(b *testing.B) {
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			if _, ok := s.Lookup(&ds[i%len(ds)]); !ok {
				b.Fatal("miss")
			}
			i += 7919
		}
	})
	// The floor: the same random accesses into a bare map of the same entries, reading one
	// field (no lock, no Info copy, no digest check).
	b.Run("baseline-bare-map", func(b *testing.B) {
		m := make(map[[32]byte]*entry, len(ds))
		for k, v := range s.bySHA256 {
			m[k] = v
		}
		b.ReportAllocs()
		i := 0
		var sz int64
		for b.Loop() {
			if e := m[ds[i%len(ds)].SHA256]; e != nil {
				sz += e.info.Digest.Size
			}
			i += 7919
		}
		if sz == 0 {
			b.Fatal("miss")
		}
	})
	b.Run("LookupHash-sha256", func(b *testing.B) {
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			if _, ok := s.LookupHash(ds[i%len(ds)].SHA256[:]); !ok {
				b.Fatal("miss")
			}
			i += 7919
		}
	})
}

// BenchmarkOpenMetadata is start-up time for PIECESTORE_OPEN_N records (default 2 000;
// RESULTS.md uses 100 000): Open on a bbolt database of shared (external) entries, against
// reading the same records from one sidecar file per entry — the design not taken.
func BenchmarkOpenMetadata(b *testing.B) {
	n := envInt("PIECESTORE_OPEN_N", 2000)
	dir := b.TempDir()
	s := mustOpen(b, filepath.Join(dir, "store"), Options{})
	ds := fillEntries(s, n)
	s.mu.Lock()
	var put []*entry
	for i := range ds {
		e := s.bySHA256[ds[i].SHA256]
		s.removeLocked(e)
		e.name = ""
		e.info.External = "/var/cache/apt/archives/pkg" + strconv.Itoa(i) + "_1.0_amd64.deb"
		e.info.LastAccess = time.Unix(1_700_000_000, 0)
		put = append(put, e)
	}
	s.mu.Unlock()
	if err := s.metaUpdate(put, nil); err != nil {
		b.Fatal(err)
	}
	s.Close()
	side := filepath.Join(dir, "sidecars")
	os.Mkdir(side, 0o755)
	for i, e := range put {
		os.WriteFile(filepath.Join(side, strconv.Itoa(i)+".meta"), e.appendRecord(nil), 0o644)
	}
	b.Run("bbolt-Open", func(b *testing.B) {
		for b.Loop() {
			s, err := Open(filepath.Join(dir, "store"), Options{FlushInterval: -1})
			if err != nil {
				b.Fatal(err)
			}
			if st := s.Stats(); st.External != n {
				b.Fatalf("%d entries", st.External)
			}
			s.Close()
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/entry")
	})
	b.Run("sidecar-files", func(b *testing.B) {
		for b.Loop() {
			ents, err := os.ReadDir(side)
			if err != nil {
				b.Fatal(err)
			}
			got := 0
			for _, de := range ents {
				raw, err := os.ReadFile(filepath.Join(side, de.Name()))
				if err != nil {
					b.Fatal(err)
				}
				if _, err := decodeRecord(raw); err == nil {
					got++
				}
			}
			if got != n {
				b.Fatalf("%d records", got)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/entry")
	})
}

// sparseFS is the OS file system without fallocate (files are sized with Truncate), to
// measure what reserving space costs.
type sparseFS struct{ OSFS }

type sparseFile struct{ File }

func (sparseFS) Create(name string) (File, error) {
	f, err := OSFS{}.Create(name)
	if err != nil {
		return nil, err
	}
	return sparseFile{f}, nil
}
