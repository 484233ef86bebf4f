package piecestore

import (
	"context"
	"io/fs"
	"path/filepath"
	"time"

	"github.com/apt-p2p/apt-p2p/internal/digest"
)

// scanProgressEvery is how often ScanDirs logs its progress (a variable for tests).
var scanProgressEvery = 5 * time.Second

// ScanDirs walks dirs (OTHER_DIRS, e.g. /var/cache/apt/archives) and shares the regular
// files in them without copying them: new files and changed ones (size or mtime differs)
// are hashed (SHA-1, SHA-256, pieces) and recorded as External; a changed file is rehashed,
// never deleted. found is called for each of those so the node can announce it; unchanged
// files are skipped (DueForAnnounce keeps them announced). Entries outside dirs or whose
// file is gone are dropped first (RemoveUntracked). Progress (files and bytes done, rate)
// is logged every few seconds. The caller runs it in a goroutine; it stops when ctx ends.
func (s *Store) ScanDirs(ctx context.Context, dirs []string, found func(Info)) error {
	if n := s.RemoveUntracked(dirs); n > 0 {
		s.log.Info("piecestore: dropped untracked shared files", "count", n)
	}
	start := time.Now()
	lastLog := start
	every := scanProgressEvery
	var files, hashed int
	var bytes int64
	progress := func(n int64) {
		bytes += n
		if now := time.Now(); now.Sub(lastLog) >= every {
			lastLog = now
			secs := now.Sub(start).Seconds()
			s.log.Info("piecestore: scanning shared directories", "files", files, "hashed", hashed,
				"bytes", bytes, "MB/s", float64(bytes)/1e6/secs)
		}
	}
	for _, dir := range dirs {
		err := filepath.WalkDir(dir, func(path string, de fs.DirEntry, err error) error {
			if err != nil {
				s.log.Warn("piecestore: scanning", "path", path, "err", err)
				return nil
			}
			if cerr := ctx.Err(); cerr != nil {
				return cerr
			}
			if !de.Type().IsRegular() {
				return nil
			}
			files++
			fi, err := s.fs.Stat(path)
			if err != nil {
				return nil
			}
			size, mtime := fi.Size(), fi.ModTime().UnixNano()
			s.mu.RLock()
			old := s.byExt[path]
			unchanged := old != nil && old.extSize == size && old.extMtime == mtime
			s.mu.RUnlock()
			if unchanged {
				progress(0)
				return nil
			}
			var want digest.Set
			d, pieces, err := s.hashFile(ctx, path, &want, progress)
			if err != nil {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				s.log.Warn("piecestore: hashing shared file", "path", path, "err", err)
				return nil
			}
			// The file may have changed while we read it: then the next scan rehashes it.
			if fi2, err := s.fs.Stat(path); err != nil || fi2.Size() != size || fi2.ModTime().UnixNano() != mtime || d.Size != size {
				return nil
			}
			hashed++
			if old != nil {
				s.dropExternal(old)
			}
			info, ok := s.addExternal(path, size, mtime, d, pieces)
			if ok && found != nil {
				found(info)
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	secs := time.Since(start).Seconds()
	s.log.Info("piecestore: scanned shared directories", "files", files, "hashed", hashed,
		"bytes", bytes, "seconds", secs)
	return nil
}

// addExternal records content d shared from path. If the content is already known (cached,
// or shared from another path), the existing entry gains the external path only if it has
// none. ok is false if nothing was recorded.
func (s *Store) addExternal(path string, size, mtime int64, d digest.Set, pieces []byte) (Info, bool) {
	s.metaMu.Lock()
	defer s.metaMu.Unlock()
	s.mu.Lock()
	e := s.bySHA256[d.SHA256]
	var snap entry
	if e != nil {
		if e.info.External != "" {
			s.mu.Unlock()
			return Info{}, false
		}
		s.removeLocked(e)
		e.info.Digest.Merge(&d)
		e.info.External, e.extSize, e.extMtime = path, size, mtime
		s.insertLocked(e)
	} else {
		e = &entry{extSize: size, extMtime: mtime}
		e.info.Digest = d
		e.info.Complete = true
		e.info.External = path
		e.setPieces(pieces)
		s.insertLocked(e)
	}
	snap = *e
	s.mu.Unlock()
	if err := s.metaUpdate([]*entry{&snap}, nil); err != nil {
		s.log.Warn("piecestore: recording shared file", "path", path, "err", err)
	}
	return snap.info, true
}
