// Package piecestore is apt-p2p's on-disk cache: a content-addressed store of verified
// files, found by any of their hashes (MD5, SHA-1, SHA-256, SHA-512, or the SHA-1 of their
// piece string) whatever mirror path asked for them, so identical files under different
// names are stored once.
//
// # Layout
//
//	<dir>/data/sha256-<hex>   complete, verified files, named by their SHA-256 (always computed,
//	                          so the name depends on the content only)
//	<dir>/tmp/<n>.part        files being written; removed at Open
//	<dir>/meta.db             metadata (bbolt): one record per content, keyed by SHA-256
//
// Files shared from other directories (OTHER_DIRS, see ScanDirs) are not copied: their
// entries carry the External path and the size and mtime they were hashed at.
//
// # Why bbolt for metadata
//
// Per-file sidecar files were the alternative. bbolt wins on the three things that matter:
// crash safety (a transaction is atomic and durable when Update returns: a record is never
// half-written, while a sidecar needs its own write-temp/fsync/rename/fsync-dir dance),
// atomic multi-key updates (an eviction pass or a start-up reconciliation deletes and
// rewrites many records in one fsync instead of one per file), and start-up time (100 000
// records are read in one sequential pass over one memory-mapped file, instead of 100 000
// open/read/close calls). It is the embedded store etcd runs on, well kept and pinned.
// Records are a small hand-written binary layout (record.go). Last-access, last-announced
// and path changes are written in batches (Options.FlushInterval, Close, GC): losing them
// in a crash only makes an announcement early or an LRU position approximate.
//
// # Crash safety
//
// A file is written to tmp/, fsynced, renamed into data/, data/ is fsynced, and only then is
// its metadata committed. Open reconciles: temporary files are deleted; a record whose data
// file is missing or has the wrong size is dropped; a data file without a record (a crash
// between the rename and the metadata commit) is rehashed and re-adopted only if its content
// matches the SHA-256 in its name, and deleted otherwise. So after a crash at any point
// nothing partial or unverified is presented as complete, and nothing whose Commit returned
// is lost. Downloads in progress are not resumed across restarts (their temporary files go).
// All data-file I/O goes through the FS interface so tests inject short writes, ENOSPC and
// crashes at every step (faultfs_test.go).
//
// # Hashing
//
// A Writer hashes in one pass as data arrives: SHA-1 per 512 KiB piece plus every whole-file
// hash the expected digest carries, and always SHA-1 and SHA-256. Data appended in order is
// hashed straight from the caller's buffer; pieces written out of order are hashed (whole-file
// hashes only: their piece SHA-1 is already known) when the contiguous prefix reaches them,
// read back with ReadAt into a reused buffer. The standard library's crypto/sha1 and
// crypto/sha256 are used: they have SHA-NI code on amd64 and measured the same as
// minio/sha256-simd on this project's machines (reference go-stack.md §0.2 and §2.1), so
// that module is not a dependency.
//
// Hold-back rule: a Writer's Available never reaches Size until every byte is in and the
// whole-file hash and size matched, so apt never receives a complete file with a wrong hash.
//
// # Serving
//
// OpenFile returns a Reader with the *os.File for sendfile (pread + sendfile, no mmap: a read
// through a mapping of a file truncated behind our back would kill the process with SIGBUS;
// sizes are checked at open instead). An open Reader pins its file against eviction.
//
// # For callers
//
//   - Create reserves the file's space (fallocate), so a full disk fails Create, not the
//     download; it first evicts cached files (same order as for the quota) to make room once.
//   - Every Writer must end in Commit or Abort: until then its content is busy (ErrBusy) and
//     its temporary file stays.
//   - Writer.File stays readable after Commit (it is then the stored file), so a response
//     streaming a download need not coordinate with the downloader.
//   - Lookup and the other lookups return an Info whose slices are shared: read-only.
//   - OpenFile can fail with ErrChanged (a file truncated behind the store's back, or a shared
//     file changed since it was hashed): the entry is dropped, fetch the content again.
//   - Options.Referenced is called with the store locked: it must not call the Store.
//   - Eviction, drops, GC and the commit's rename-to-metadata step are serialised, so none of
//     them can remove a file another is committing.
//
// # What it is not
//
// It does not download, parse apt indexes or talk to the DHT: callers tell it the expected
// content (digest.Set), which index paths refer to it (AddPath), and whether indexes still
// refer to it (Options.Referenced, for eviction).
package piecestore
