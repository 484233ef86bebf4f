// Package aptindex maps a mirror path to the size and hashes that the signed apt
// index chain gives for it: Release/InRelease lists the index files (Packages*,
// Sources*, Translation-*, Contents-*, DEP-11, by-hash copies), and Packages and
// Sources list the .deb and source files.
//
// An Index holds the parsed indexes of several mirrors and suites at once, one
// repository per (site, baseDir) as split by SplitPath. Each index file occupies
// one slot named by its uncompressed path (Packages.xz, Packages.gz and a by-hash
// copy of either all fill ".../Packages"; InRelease and Release fill ".../Release"),
// so adding a new version of a file replaces exactly that file's old entries and
// nothing stale survives, without rebuilding anything else.
//
// Entries are stored compactly: one byte arena per index file holding each file
// name followed by its raw hashes, a 16-byte record per file and an
// open-addressing table of uint32 keyed by the xxhash of the name. The full
// Debian bookworm main amd64 Packages (63 440 packages) costs 8.6 MB (136 bytes
// a package). Lookups take a read lock and do not allocate.
//
// Loading: the compression is chosen by magic bytes (checked against the name's
// extension). xz goes through the xz(1) program when it is installed, because
// liblzma decodes about 2.3 times faster than ulikunitz/xz (the in-process
// fallback); the other decoders (klauspost gzip and zstd, compress/bzip2,
// pierrec/lz4) run in a goroutine a few buffers ahead of the parser. The parser
// scans bytes in place and allocates per file, not per paragraph.
//
// by-hash: apt fetches "<dir>/by-hash/SHA256/<hex>" instead of Packages.xz when
// the Release says Acquire-By-Hash. Add recognises such a file through the
// Release (add Releases first: Rebuild does) or, failing that, by its first
// paragraph, and files it in the slot of the index it is a copy of.
//
// Paths: lookups take the percent-decoded URL path (the caller decodes);
// Filename and Directory fields are stored exactly as the index writes them, so
// "pool/main/g/gcc/g++_12.deb" is found by the decoded path ".../g++_12.deb"
// whether apt sent "+" or "%2B". This fixes the original's mixing of raw and
// decoded paths (reference §8.2 item 10).
//
// Flat repositories (no dists/): Filename and Directory are relative to the
// directory of the Packages or Sources, so that directory is put before them.
//
// What it is not: it does not check signatures (apt does, on the InRelease it
// receives) and it does not check that an index file matches the hash its
// Release gives (the caller stores only verified files). It does not fetch
// anything; the node feeds it the files it caches.
package aptindex
