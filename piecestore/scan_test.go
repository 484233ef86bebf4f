package piecestore

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/apt-p2p/apt-p2p/internal/digest"
)

func writeFile(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

func scan(t *testing.T, s *Store, dirs ...string) []Info {
	t.Helper()
	var found []Info
	if err := s.ScanDirs(context.Background(), dirs, func(i Info) { found = append(found, i) }); err != nil {
		t.Fatal(err)
	}
	return found
}

// Reference §6.12 in this design: a file "fgfhds" shared from another directory.
// test_openExistingDB, test_getFile, test_lookupHash, test_isUnchanged.
func TestScanUnchangedAndChanged(t *testing.T) {
	root := t.TempDir()
	storeDir := filepath.Join(root, "cache")
	other := filepath.Join(root, "apt-p2p")
	file := filepath.Join(other, "khashmir.test")
	writeFile(t, file, []byte("fgfhds"))
	s := mustOpen(t, storeDir, Options{})
	found := scan(t, s, other)
	want := digestOf([]byte("fgfhds"), digest.SHA1, digest.SHA256)
	if len(found) != 1 || found[0].External != file || !want.Matches(&found[0].Digest) || found[0].Digest.Have != want.Have {
		t.Fatalf("found %+v", found)
	}
	if st := s.Stats(); st.External != 1 || st.ExternalBytes != 6 || st.Files != 0 {
		t.Fatalf("stats %+v (shared files are not copied)", st)
	}
	s.Close()
	s = mustOpen(t, storeDir, Options{})
	defer s.Close()
	// Unchanged after a restart: not hashed or announced again, still found.
	if f := scan(t, s, other); len(f) != 0 {
		t.Fatalf("unchanged file rescanned: %+v", f)
	}
	info, ok := s.LookupHash(found[0].Digest.SHA1[:])
	if !ok || info.External != file {
		t.Fatalf("lookup: %v %+v", ok, info)
	}
	if got, err := readStored(t, s, &info); err != nil || string(got) != "fgfhds" {
		t.Fatalf("read: %q %v", got, err)
	}
	// Touched 2 s later: refused (and dropped) when opened, then rehashed by the next scan,
	// never deleted.
	later := time.Now().Add(2 * time.Second)
	os.Chtimes(file, later, later)
	if _, err := s.OpenFile(&info); !errors.Is(err, ErrChanged) {
		t.Fatalf("changed file opened: %v", err)
	}
	if _, ok := s.LookupHash(info.Digest.SHA1[:]); ok {
		t.Fatal("changed file still listed")
	}
	if f := scan(t, s, other); len(f) != 1 {
		t.Fatalf("changed file not rehashed: %+v", f)
	}
	// Changed content while the store runs: the scan replaces the entry.
	writeFile(t, file, []byte("new content"))
	f := scan(t, s, other)
	if len(f) != 1 || f[0].Digest.Size != 11 {
		t.Fatalf("rescan: %+v", f)
	}
	if _, ok := s.LookupHash(info.Digest.SHA1[:]); ok {
		t.Fatal("old content still listed")
	}
	if _, err := os.Stat(file); err != nil {
		t.Fatal("scan deleted a shared file")
	}
}

// test_multipleHashes: the same content in several directories is one entry.
func TestScanSameContentTwice(t *testing.T) {
	root := t.TempDir()
	s := mustOpen(t, filepath.Join(root, "cache"), Options{})
	defer s.Close()
	for _, d := range []string{"top1", "top2/sub1", "top2/sub2"} {
		writeFile(t, filepath.Join(root, "other", d, "khashmir.test"), []byte("fgfhds"))
	}
	if f := scan(t, s, filepath.Join(root, "other")); len(f) != 1 {
		t.Fatalf("found %d entries for one content", len(f))
	}
	// A download of the same content gains a cached copy: one entry, both ways to serve.
	info := mustPut(t, s, []byte("fgfhds"), digest.SHA256)
	if info.External == "" {
		t.Fatal("merged entry lost its external path")
	}
	if st := s.Stats(); st.Files != 1 || st.External != 1 {
		t.Fatalf("stats %+v", st)
	}
}

// test_removeUntracked with distinct contents (identical ones would be one entry here).
func TestRemoveUntracked(t *testing.T) {
	root := t.TempDir()
	s := mustOpen(t, filepath.Join(root, "cache"), Options{})
	defer s.Close()
	base := filepath.Join(root, "apt-p2p")
	writeFile(t, filepath.Join(base, "khashmir.test"), []byte("fgfhds"))
	dirs := []string{filepath.Join(base, "top1"), filepath.Join(base, "top2", "sub1"), filepath.Join(base, "top2", "sub2")}
	for i, d := range dirs {
		writeFile(t, filepath.Join(d, "tmp", "khashmir.test"), []byte{'a' + byte(i)})
	}
	extra := filepath.Join(dirs[0], "test.khashmir")
	writeFile(t, extra, []byte("extra"))
	if f := scan(t, s, base); len(f) != 5 {
		t.Fatalf("scanned %d", len(f))
	}
	for _, step := range []struct {
		dirs []string
		want int
		pre  func()
	}{
		{dirs, 1, nil},
		{dirs, 0, nil},
		{dirs, 1, func() { os.Remove(extra) }},
		{dirs[1:], 1, nil},
		{dirs[:1], 2, nil},
	} {
		if step.pre != nil {
			step.pre()
		}
		if n := s.RemoveUntracked(step.dirs); n != step.want {
			t.Fatalf("removed %d, want %d", n, step.want)
		}
	}
	if st := s.Stats(); st.External != 0 {
		t.Fatalf("stats %+v", st)
	}
}

func TestScanProgressAndCancel(t *testing.T) {
	root := t.TempDir()
	var logBuf bytes.Buffer
	s := mustOpen(t, filepath.Join(root, "cache"), Options{Logger: slog.New(slog.NewTextHandler(&logBuf, nil))})
	defer s.Close()
	for i := range 3 {
		writeFile(t, filepath.Join(root, "o", string(rune('a'+i))), randData(uint64(i), PieceSize+1))
	}
	old := scanProgressEvery
	scanProgressEvery = 0 // a progress line after every read
	found := scan(t, s, filepath.Join(root, "o"))
	scanProgressEvery = old
	if len(found) != 3 || found[0].Pieces == nil {
		t.Fatalf("found %d", len(found))
	}
	log := logBuf.String()
	if !strings.Contains(log, "scanned shared directories") || !strings.Contains(log, "hashed=3") ||
		!strings.Contains(log, "msg=\"piecestore: scanning shared directories\" files=3 hashed=2 bytes=") ||
		!strings.Contains(log, "MB/s=") {
		t.Fatalf("log: %s", log)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	writeFile(t, filepath.Join(root, "o", "d"), []byte("d"))
	if err := s.ScanDirs(ctx, []string{filepath.Join(root, "o")}, nil); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled scan: %v", err)
	}
}
