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
// its metadata committed. Commits are grouped: each Commit fsyncs its own file (concurrent
// fsyncs share the journal's commits), then one committer goroutine takes every file pending at
// that moment, renames them all, fsyncs data/ once and records them in one bbolt transaction;
// each Commit returns once its file is durable. A burst of small downloads thus costs a
// directory fsync and a metadata fsync per batch, not per file, and Options.MaxPendingCommits
// bounds the Commits in progress (Create waits: back-pressure on the downloads, not a pile of
// goroutines holding their state). Open reconciles: temporary files are deleted; a record whose data
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
// # Serving and verification
//
// OpenFile returns a Reader with the *os.File for sendfile (pread + sendfile, no mmap: a read
// through a mapping of a file truncated behind our back would kill the process with SIGBUS;
// sizes are checked at open instead). An open Reader pins its file against eviction.
//
// Descriptors of recently served files stay open (Options.OpenFiles, nginx's open_file_cache):
// a hot file costs no open(2) and no fstat(2) per request, and Readers of one content share a
// descriptor, read only at explicit offsets. Files are opened without os.Open's netpoller
// registration attempt (epoll refuses regular files).
//
// Nothing is served that was not verified since the store opened: a file's SHA-256 is
// recomputed before the first time it is served after Open (lazily, so a large cache does not
// delay start-up; bench/RESULTS.md compares this with streaming while hashing), and again when
// its identity changes (inode, size, mtime, or ctime: an edit that restores mtime still shows).
// A committed file counts as verified (it was hashed as it was written). Bit rot changes no
// metadata: the scrub (Options.ScrubRate, ScrubInterval) rehashes every file in turn in the
// background. A copy that no longer matches is dropped and Options.Dropped is called, so the
// node stops announcing it; the next request fetches it again.
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
//     file changed since it was hashed) or ErrCorrupt (its content no longer matches): the
//     entry is dropped, fetch the content again. Its first call for a file after Open hashes
//     the file, so it may take as long as reading it.
//   - Create may wait for room among the pending commits: do not call it holding a lock that a
//     download needs to reach Commit; CreateContext bounds the wait.
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
