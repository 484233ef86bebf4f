package piecestore

import (
	"bytes"
	"context"
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/bbolt"

	"github.com/apt-p2p/apt-p2p/internal/digest"
	"github.com/apt-p2p/apt-p2p/wire"
)

// PieceSize is the size of the pieces files are hashed and fetched in.
const PieceSize = 512 << 10

// Errors.
var (
	ErrBusy          = errors.New("piecestore: the content is already being written")
	ErrMismatch      = errors.New("piecestore: content does not match its expected hash and size")
	ErrAborted       = errors.New("piecestore: write aborted")
	ErrNotFound      = errors.New("piecestore: not found")
	ErrClosed        = errors.New("piecestore: store closed")
	ErrShape         = errors.New("piecestore: write is neither an append at the contiguous end nor a whole aligned piece")
	ErrPieceMismatch = errors.New("piecestore: piece does not match its expected SHA-1")
	ErrIncomplete    = errors.New("piecestore: commit before every byte was written")
	ErrChanged       = errors.New("piecestore: shared file changed on disk")
	ErrFinished      = errors.New("piecestore: write after hashing finished")
	ErrNoHash        = errors.New("piecestore: expected content has no size or no hash")
	ErrSuspended     = errors.New("piecestore: write suspended (resumed by the next Create of the content)")
	ErrCorrupt       = errors.New("piecestore: stored file no longer matches its hash (dropped)")
	ErrInUse         = errors.New("piecestore: the file is open for reading")
)

// Options configure a Store.
type Options struct {
	FS       FS    // narrow file-system interface; nil = the real OS (tests inject faults)
	MaxBytes int64 // cache quota in bytes; 0 = unlimited
	Logger   *slog.Logger
	Now      func() time.Time // nil = time.Now
	// Referenced reports whether any current apt index still refers to content d (for
	// eviction: unreferenced first). It is called with the store locked: it must not call
	// back into the Store.
	Referenced func(d *digest.Set) bool
	// FlushInterval is how often last-access, last-announced and path changes are written
	// to the metadata database (they are also written at Close and GC). 0 = 30 s; < 0 = only
	// at Close and GC. Losing them in a crash is harmless: a file is announced early or its
	// LRU position is a little off.
	FlushInterval time.Duration
	// MaxPendingCommits bounds the Commits in progress: Create waits while this many are
	// (back-pressure on a burst of downloads when the disk is slower than the network).
	// 0 = DefaultMaxPendingCommits; < 0 = no bound.
	MaxPendingCommits int
	// OpenFiles is how many descriptors of recently served files stay open, so that a hot
	// file costs no open(2) and no fstat(2) per request. 0 = DefaultOpenFiles; < 0 = none.
	OpenFiles int
	// ScrubRate is how many bytes per second the background scrub reads, rehashing every
	// stored file in turn to find copies that rotted on disk while the daemon runs (they are
	// dropped). 0 = no scrub.
	ScrubRate int64
	// ScrubInterval is the least time between the starts of two scrub passes; 0 = 24 h.
	ScrubInterval time.Duration
	// Dropped, if set, is called after an entry was dropped because its file vanished,
	// changed or no longer matches its hash (reason says which), so the caller can stop
	// announcing it; the store already forgot it, and the next request fetches it again. It
	// is called without the store's locks held, from the goroutine that found the problem.
	Dropped func(info Info, reason string)
	// Clock paces the scrub; nil = the real clock. Now, if nil, is Clock.Now.
	Clock Clock

	// noSync turns off the metadata database's fsyncs, for tests whose FS models
	// durability itself.
	noSync bool
}

// Info describes one stored file. Its slices are shared with the store and must not be
// modified; the store never modifies them in place either (it replaces them), so an Info
// stays valid and consistent after the store changes.
type Info struct {
	Digest        digest.Set // size and every hash known/computed for the content
	Pieces        []byte     // SHA-1 piece hashes, 20 bytes per 512 KiB piece (nil if the file has <= 1 piece)
	PiecesHash    wire.ID    // SHA1(Pieces), zero if no pieces
	Complete      bool       // verified and whole
	LastAccess    time.Time
	LastAnnounced time.Time
	Paths         []string // index paths referring to it ("host:port/basedir/path")
	External      string   // for files shared from OTHER_DIRS: their path there (not copied into the cache)
}

// Stats are counters and sizes for the status page and metrics.
type Stats struct {
	Files         int   // complete files in the cache (data/)
	Bytes         int64 // their total size
	External      int   // files shared from other directories
	ExternalBytes int64
	MaxBytes      int64
	Writers       int   // writes in progress
	Readers       int   // open Readers
	Commits       int64 // successful commits since Open
	Mismatches    int64 // commits refused because the content did not match
	Evictions     int64
	EvictedBytes  int64
	Adopted       int64 // data files found without metadata and re-adopted after rehashing (at Open/GC)
	Dropped       int64 // entries dropped because their file was missing, changed or corrupt
	CommitBatches int64 // metadata transactions of the group committer
	CreateWaits   int64 // times Create waited for MaxPendingCommits (back-pressure)
	OpenFiles     int   // descriptors in the open-file cache
	Verified      int64 // files hashed before their first serve since Open
	Corrupt       int64 // files found not to match their hash (first serve or scrub), then dropped
	Scrubbed      int64 // files rehashed by the scrub
	ScrubBytes    int64 // bytes read by the scrub
}

type entry struct {
	info     Info
	name     string // file name under data/, "" if the content is only shared externally
	extSize  int64
	extMtime int64 // ns
	readers  int
	gone     bool // removed from the maps
	// vid is the identity of the file (the data file, else the external one) when its content
	// was last found to match: by the commit that wrote it, a first serve or the scrub. Zero:
	// not verified since Open.
	vid       fileID
	of        *openFile     // cached descriptor, or nil
	verifying chan struct{} // closed when the OpenFile that opens or verifies it is done
}

func (e *entry) key() [32]byte { return e.info.Digest.SHA256 }

// setPieces records the full piece list, keeping it only when there is more than one piece.
func (e *entry) setPieces(pieces []byte) {
	e.info.Pieces = PieceString(pieces)
	e.info.PiecesHash = wire.ID{}
	if e.info.Pieces != nil {
		e.info.PiecesHash = sha1.Sum(e.info.Pieces)
	}
}

// Store is the content-addressed cache. All methods are safe for concurrent use.
type Store struct {
	dir, dataDir, tmpDir string
	fs                   FS
	hook                 MetaHook
	opt                  Options
	log                  *slog.Logger
	now                  func() time.Time
	db                   *bbolt.DB

	// metaMu serialises "change the maps, then write the metadata" sequences so that a
	// flush of an entry's snapshot can never land after that entry's deletion. Lock order:
	// Writer.mu, then metaMu, then mu.
	metaMu   sync.Mutex
	mu       sync.RWMutex
	byMD5    map[[16]byte]*entry
	bySHA1   map[[20]byte]*entry
	bySHA256 map[[32]byte]*entry
	bySHA512 map[[64]byte]*entry
	byPieces map[wire.ID]*entry
	byExt    map[string]*entry
	writers  map[[32]byte]*Writer // keyed by each expected hash, normalised to 32 bytes with its type
	// resumable: partial files kept from an earlier run or a suspended
	// Writer, by SHA-256 (resume.go).
	resumable map[[32]byte]*resumeState
	dirty     map[*entry]struct{}
	st        Stats
	closed    bool

	// Group commit (commit.go), under mu.
	commitQ    []*commitReq
	committing int           // Commits in progress
	maxPending int           // MaxPendingCommits
	room       chan struct{} // closed when committing drops below maxPending
	commitWake chan struct{}
	commitGate chan struct{} // tests: the committer takes a token before each batch

	// Open descriptors (open.go), under mu.
	ofHead, ofTail *openFile
	maxOpen        int
	toClose        []File
	verifySem      chan struct{}
	dropNotes      []droppedNote // Options.Dropped calls to make once the locks are released

	clock  Clock
	tmpSeq atomic.Uint64
	stop   chan struct{}
	wg     sync.WaitGroup
}

var bucketFiles = []byte("files")

// Open opens (creating if needed) the store in dir and reconciles disk and metadata:
// temporary files are removed; metadata whose data file is missing or has the wrong size
// is dropped; data files without metadata are rehashed and re-adopted only if the hash in
// their name verifies, and deleted otherwise.
func Open(dir string, opt Options) (*Store, error) {
	s := &Store{
		dir:      dir,
		dataDir:  filepath.Join(dir, "data"),
		tmpDir:   filepath.Join(dir, "tmp"),
		fs:       opt.FS,
		opt:      opt,
		log:      opt.Logger,
		now:      opt.Now,
		byMD5:    make(map[[16]byte]*entry),
		bySHA1:   make(map[[20]byte]*entry),
		bySHA256: make(map[[32]byte]*entry),
		bySHA512: make(map[[64]byte]*entry),
		byPieces: make(map[wire.ID]*entry),
		byExt:    make(map[string]*entry),
		writers:  make(map[[32]byte]*Writer),
		dirty:    make(map[*entry]struct{}),
		stop:     make(chan struct{}),

		commitWake: make(chan struct{}, 1),
		verifySem:  make(chan struct{}, verifyParallel),
		clock:      opt.Clock,
		maxPending: opt.MaxPendingCommits,
		maxOpen:    opt.OpenFiles,
	}
	if s.fs == nil {
		s.fs = OSFS{}
	}
	s.hook, _ = s.fs.(MetaHook)
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.clock == nil {
		s.clock = realClock{}
	}
	if s.now == nil {
		s.now = s.clock.Now
	}
	if s.maxPending == 0 {
		s.maxPending = DefaultMaxPendingCommits
	}
	if s.maxOpen == 0 {
		s.maxOpen = DefaultOpenFiles
	}
	s.st.MaxBytes = opt.MaxBytes
	for _, d := range []string{s.dataDir, s.tmpDir} {
		if err := s.fs.MkdirAll(d, 0o755); err != nil {
			return nil, fmt.Errorf("piecestore: %w", err)
		}
	}
	if err := s.keepResumable(); err != nil {
		return nil, err
	}
	db, err := bbolt.Open(filepath.Join(dir, "meta.db"), 0o644, &bbolt.Options{Timeout: 5 * time.Second, NoSync: opt.noSync})
	if err != nil {
		return nil, fmt.Errorf("piecestore: metadata: %w", err)
	}
	s.db = db
	if err := s.load(); err != nil {
		db.Close()
		return nil, err
	}
	s.evict() // the quota may have been lowered
	s.wg.Add(1)
	go s.committer()
	if opt.ScrubRate > 0 {
		s.wg.Add(1)
		go s.scrubLoop(opt.ScrubRate, opt.ScrubInterval)
	}
	iv := opt.FlushInterval
	if iv == 0 {
		iv = 30 * time.Second
	}
	if iv > 0 {
		s.wg.Add(1)
		go s.flusher(iv)
	}
	return s, nil
}

// load reads every record and reconciles them with data/.
func (s *Store) load() error {
	var drop [][]byte
	var entries []*entry
	err := s.db.Update(func(tx *bbolt.Tx) error {
		_, err := tx.CreateBucketIfNotExists(bucketFiles)
		return err
	})
	if err != nil {
		return fmt.Errorf("piecestore: metadata: %w", err)
	}
	err = s.db.View(func(tx *bbolt.Tx) error {
		return tx.Bucket(bucketFiles).ForEach(func(k, v []byte) error {
			e, err := decodeRecord(v)
			if err != nil || len(k) != 32 || [32]byte(k) != e.key() {
				s.log.Warn("piecestore: dropping corrupt metadata record", "key", hex.EncodeToString(k))
				drop = append(drop, append([]byte(nil), k...))
				return nil
			}
			entries = append(entries, e)
			return nil
		})
	})
	if err != nil {
		return fmt.Errorf("piecestore: metadata: %w", err)
	}
	// Sized once: growing five maps through 100 000 inserts costs more than the decoding.
	n := len(entries)
	s.bySHA256 = make(map[[32]byte]*entry, n)
	s.bySHA1 = make(map[[20]byte]*entry, n)
	s.byMD5 = make(map[[16]byte]*entry, n)
	onDisk := make(map[string]int64)
	ents, err := s.fs.ReadDir(s.dataDir)
	if err != nil {
		return fmt.Errorf("piecestore: %w", err)
	}
	for _, de := range ents {
		fi, err := de.Info()
		if err != nil || !fi.Mode().IsRegular() {
			continue
		}
		onDisk[de.Name()] = fi.Size()
	}
	var update []*entry
	for _, e := range entries {
		if e.name != "" {
			size, ok := onDisk[e.name]
			delete(onDisk, e.name)
			if !ok || size != e.info.Digest.Size || e.name != dataName(&e.info.Digest) {
				s.log.Warn("piecestore: data file missing or wrong size; dropping it", "file", e.name, "size", size, "want", e.info.Digest.Size)
				if ok {
					_ = s.fs.Remove(filepath.Join(s.dataDir, e.name))
				}
				s.st.Dropped++
				e.name = ""
				if e.info.External == "" {
					drop = append(drop, append([]byte(nil), e.info.Digest.SHA256[:]...))
					continue
				}
				update = append(update, e)
			}
		}
		s.insertLocked(e)
	}
	// Data files without metadata: a crash between the rename and the metadata commit.
	for name, size := range onDisk {
		e, err := s.adopt(name, size)
		if err != nil {
			s.log.Warn("piecestore: removing unverifiable data file", "file", name, "err", err)
			if err := s.fs.Remove(filepath.Join(s.dataDir, name)); err != nil {
				return fmt.Errorf("piecestore: %w", err)
			}
			continue
		}
		if old := s.bySHA256[e.key()]; old != nil {
			old.name = e.name
			update = append(update, old)
			s.st.Files++
			s.st.Bytes += old.info.Digest.Size
		} else {
			s.insertLocked(e)
			update = append(update, e)
		}
		s.st.Adopted++
		s.log.Info("piecestore: re-adopted verified data file without metadata", "file", name)
	}
	if len(drop) > 0 || len(update) > 0 {
		if err := s.metaUpdate(update, drop); err != nil {
			return err
		}
	}
	return nil
}

// dataName is the file name under data/ for content d: its SHA-256, which the store always
// computes, so the name depends only on the content, never on which hashes an index gave.
func dataName(d *digest.Set) string {
	return "sha256-" + hex.EncodeToString(d.SHA256[:])
}

// adopt rehashes data/name and returns an entry if its content matches its name.
func (s *Store) adopt(name string, size int64) (*entry, error) {
	hx, ok := strings.CutPrefix(name, "sha256-")
	var want digest.Set
	if !ok || want.PutHex(digest.SHA256, hx) != nil {
		return nil, errors.New("not a data file name")
	}
	want.Size = size
	want.Have |= 1 << digest.MD5 // so that MD5-only index entries still find it
	d, pieces, err := s.hashFile(context.Background(), filepath.Join(s.dataDir, name), &want, nil)
	if err != nil {
		return nil, err
	}
	if d.SHA256 != want.SHA256 || d.Size != size {
		return nil, ErrMismatch
	}
	e := &entry{name: name}
	e.info.Digest = d
	e.info.Complete = true
	e.setPieces(pieces)
	return e, nil
}

// hashFile hashes a whole file with a Hasher (SHA-1, SHA-256, and what want carries).
// progress, if not nil, is called with the bytes read so far after each read.
func (s *Store) hashFile(ctx context.Context, path string, want *digest.Set, progress func(int64)) (digest.Set, []byte, error) {
	f, err := s.fs.Open(path)
	if err != nil {
		return digest.Set{}, nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return digest.Set{}, nil, err
	}
	h := NewHasher(want, fi.Size())
	buf := make([]byte, 1<<20)
	var off int64
	for {
		if err := ctx.Err(); err != nil {
			return digest.Set{}, nil, err
		}
		n, err := f.ReadAt(buf, off)
		h.write(buf[:n])
		off += int64(n)
		if progress != nil {
			progress(int64(n))
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return digest.Set{}, nil, err
		}
	}
	d, pieces := h.Finish()
	return d, pieces, nil
}

// insertLocked adds e to the maps and the totals.
func (s *Store) insertLocked(e *entry) {
	d := &e.info.Digest
	if d.Has(digest.MD5) {
		s.byMD5[d.MD5] = e
	}
	if d.Has(digest.SHA1) {
		s.bySHA1[d.SHA1] = e
	}
	s.bySHA256[d.SHA256] = e
	if d.Has(digest.SHA512) {
		s.bySHA512[d.SHA512] = e
	}
	if e.info.Pieces != nil {
		s.byPieces[e.info.PiecesHash] = e
	}
	if e.info.External != "" {
		s.byExt[e.info.External] = e
		s.st.External++
		s.st.ExternalBytes += d.Size
	}
	if e.name != "" {
		s.st.Files++
		s.st.Bytes += d.Size
	}
	e.gone = false
}

// removeLocked takes e out of the maps and the totals.
func (s *Store) removeLocked(e *entry) {
	d := &e.info.Digest
	if d.Has(digest.MD5) && s.byMD5[d.MD5] == e {
		delete(s.byMD5, d.MD5)
	}
	if d.Has(digest.SHA1) && s.bySHA1[d.SHA1] == e {
		delete(s.bySHA1, d.SHA1)
	}
	if s.bySHA256[d.SHA256] == e {
		delete(s.bySHA256, d.SHA256)
	}
	if d.Has(digest.SHA512) && s.bySHA512[d.SHA512] == e {
		delete(s.bySHA512, d.SHA512)
	}
	if e.info.Pieces != nil && s.byPieces[e.info.PiecesHash] == e {
		delete(s.byPieces, e.info.PiecesHash)
	}
	s.dropExternalLocked(e)
	if e.name != "" {
		s.st.Files--
		s.st.Bytes -= d.Size
	}
	delete(s.dirty, e)
	// Whatever changes next (eviction, a drop, a merge), the verified descriptor is not
	// handed out for it any more.
	s.forgetFileLocked(e)
	e.vid = fileID{}
	e.gone = true
}

func (s *Store) dropExternalLocked(e *entry) {
	if e.info.External == "" {
		return
	}
	if s.byExt[e.info.External] == e {
		delete(s.byExt, e.info.External)
	}
	s.st.External--
	s.st.ExternalBytes -= e.info.Digest.Size
}

// metaUpdate writes the records of put and deletes the keys in del, in one transaction.
func (s *Store) metaUpdate(put []*entry, del [][]byte) error {
	if s.hook != nil {
		if err := s.hook.BeforeMetaCommit(); err != nil {
			return fmt.Errorf("piecestore: metadata: %w", err)
		}
	}
	// bbolt inserts into a sorted node: unsorted keys make a big batch quadratic.
	slices.SortFunc(put, func(a, b *entry) int {
		return bytes.Compare(a.info.Digest.SHA256[:], b.info.Digest.SHA256[:])
	})
	var buf []byte
	err := s.db.Update(func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketFiles)
		for _, k := range del {
			if err := b.Delete(k); err != nil {
				return err
			}
		}
		for _, e := range put {
			buf = e.appendRecord(buf[:0])
			k := e.key()
			// bbolt keeps references to key and value until the transaction ends.
			if err := b.Put(append([]byte(nil), k[:]...), append([]byte(nil), buf...)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("piecestore: metadata: %w", err)
	}
	return nil
}

// lookupLocked finds the entry for content d (strongest hash first), or nil.
func (s *Store) lookupLocked(d *digest.Set) *entry {
	var e *entry
	if d.Has(digest.SHA512) {
		e = s.bySHA512[d.SHA512]
	}
	if e == nil && d.Has(digest.SHA256) {
		e = s.bySHA256[d.SHA256]
	}
	if e == nil && d.Has(digest.SHA1) {
		e = s.bySHA1[d.SHA1]
	}
	if e == nil && d.Has(digest.MD5) {
		e = s.byMD5[d.MD5]
	}
	if e == nil || !e.info.Digest.Matches(d) {
		return nil
	}
	return e
}

// Lookup finds a complete, verified file whose content matches d (any hash known to both,
// and the size).
func (s *Store) Lookup(d *digest.Set) (Info, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if e := s.lookupLocked(d); e != nil {
		return e.info, true
	}
	return Info{}, false
}

// LookupHash finds a complete file by one full hash of any type (16/20/32/64 bytes).
func (s *Store) LookupHash(h []byte) (Info, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var e *entry
	switch len(h) {
	case 16:
		e = s.byMD5[[16]byte(h)]
	case 20:
		e = s.bySHA1[[20]byte(h)]
	case 32:
		e = s.bySHA256[[32]byte(h)]
	case 64:
		e = s.bySHA512[[64]byte(h)]
	}
	if e == nil {
		return Info{}, false
	}
	return e.info, true
}

// LookupPieces finds the piece string whose SHA1 is h (for /~/<piece-string hash> and the
// DHT 'h' value). The slice is shared: do not modify it.
func (s *Store) LookupPieces(h wire.ID) ([]byte, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if e := s.byPieces[h]; e != nil {
		return e.info.Pieces, true
	}
	return nil, false
}

// AddPath records that the index path refers to the content of info.
func (s *Store) AddPath(info *Info, path string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.lookupLocked(&info.Digest)
	if e == nil {
		return ErrNotFound
	}
	for _, p := range e.info.Paths {
		if p == path {
			return nil
		}
	}
	// Copy on write: Infos handed out earlier share the old slice.
	paths := make([]string, len(e.info.Paths), len(e.info.Paths)+1)
	copy(paths, e.info.Paths)
	e.info.Paths = append(paths, path)
	s.dirty[e] = struct{}{}
	return nil
}

// MarkAnnounced records that info's content was announced in the DHT at t.
func (s *Store) MarkAnnounced(info *Info, t time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.lookupLocked(&info.Digest)
	if e == nil {
		return ErrNotFound
	}
	e.info.LastAnnounced = t
	s.dirty[e] = struct{}{}
	return nil
}

// Stats returns the current counters.
func (s *Store) Stats() Stats {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.st
}

func (s *Store) flusher(iv time.Duration) {
	defer s.wg.Done()
	t := time.NewTicker(iv)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
			if err := s.flush(); err != nil {
				s.log.Warn("piecestore: flushing metadata", "err", err)
			}
			s.closeIdle(s.now().Add(-openFileIdle))
		}
	}
}

// flush writes the records of entries whose access time, announce time or paths changed.
func (s *Store) flush() error {
	s.metaMu.Lock()
	defer s.metaMu.Unlock()
	s.mu.Lock()
	if len(s.dirty) == 0 {
		s.mu.Unlock()
		return nil
	}
	put := make([]*entry, 0, len(s.dirty))
	snap := make([]entry, 0, len(s.dirty))
	for e := range s.dirty {
		if !e.gone {
			snap = append(snap, entry{info: e.info, name: e.name, extSize: e.extSize, extMtime: e.extMtime})
		}
	}
	clear(s.dirty)
	s.mu.Unlock()
	for i := range snap {
		put = append(put, &snap[i])
	}
	return s.metaUpdate(put, nil)
}

// Close flushes pending metadata and closes the store. Open Readers and Writers must be
// closed or finished first.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrClosed
	}
	s.closed = true
	s.mu.Unlock()
	close(s.stop)
	s.wg.Wait()
	s.closeAllFiles()
	err := s.flush()
	if cerr := s.db.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("piecestore: metadata: %w", cerr)
	}
	return err
}

// drop removes e entirely (metadata and any data file), e.g. because its file changed.
func (s *Store) drop(e *entry, why string) {
	s.metaMu.Lock()
	s.dropLocked(e, why)
	s.metaMu.Unlock()
	s.notifyDropped()
}

// droppedNote is one call of Options.Dropped waiting for the locks to be released.
type droppedNote struct {
	info Info
	why  string
}

// notifyDropped calls Options.Dropped for the drops made so far; no lock may be held.
func (s *Store) notifyDropped() {
	s.mu.Lock()
	ns := s.dropNotes
	s.dropNotes = nil
	s.mu.Unlock()
	if s.opt.Dropped == nil {
		return
	}
	for _, n := range ns {
		s.opt.Dropped(n.info, n.why)
	}
}

// dropLocked is drop with metaMu held.
func (s *Store) dropLocked(e *entry, why string) {
	s.mu.Lock()
	if e.gone {
		s.mu.Unlock()
		return
	}
	s.removeLocked(e)
	s.st.Dropped++
	name := e.name
	info := e.info
	s.mu.Unlock()
	s.closePending()
	s.log.Warn("piecestore: dropping file", "sha256", hex.EncodeToString(e.info.Digest.SHA256[:]), "external", e.info.External, "reason", why)
	k := e.key()
	if err := s.metaUpdate(nil, [][]byte{k[:]}); err != nil {
		s.log.Warn("piecestore: dropping metadata", "err", err)
	}
	if name != "" {
		_ = s.fs.Remove(filepath.Join(s.dataDir, name))
	}
	if s.opt.Dropped != nil {
		s.mu.Lock()
		s.dropNotes = append(s.dropNotes, droppedNote{info, why})
		s.mu.Unlock()
	}
}
