package piecestore

import (
	"bytes"
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/binary"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/apt-p2p/apt-p2p/internal/digest"
)

// digestOf returns the size and the requested hashes of data (all four if none is named).
func digestOf(data []byte, types ...digest.Type) digest.Set {
	if len(types) == 0 {
		types = []digest.Type{digest.MD5, digest.SHA1, digest.SHA256, digest.SHA512}
	}
	d := digest.Set{Size: int64(len(data))}
	for _, t := range types {
		switch t {
		case digest.MD5:
			h := md5.Sum(data)
			d.Put(t, h[:])
		case digest.SHA1:
			h := sha1.Sum(data)
			d.Put(t, h[:])
		case digest.SHA256:
			h := sha256.Sum256(data)
			d.Put(t, h[:])
		case digest.SHA512:
			h := sha512.Sum512(data)
			d.Put(t, h[:])
		}
	}
	return d
}

func randData(seed uint64, n int) []byte {
	var key [32]byte
	binary.LittleEndian.PutUint64(key[:], seed)
	b := make([]byte, n)
	rand.NewChaCha8(key).Read(b)
	return b
}

func piecesOf(data []byte) []byte {
	var p []byte
	for off := 0; off < len(data); off += PieceSize {
		s := sha1.Sum(data[off:min(off+PieceSize, len(data))])
		p = append(p, s[:]...)
	}
	return p
}

func mustOpen(t testing.TB, dir string, opt Options) *Store {
	t.Helper()
	if opt.FlushInterval == 0 {
		opt.FlushInterval = -1
	}
	s, err := Open(dir, opt)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func mustPut(t testing.TB, s *Store, data []byte, types ...digest.Type) Info {
	t.Helper()
	info, err := s.Put(digestOf(data, types...), bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	return info
}

// readStored reads a file through OpenFile and the *os.File it hands out.
func readStored(t testing.TB, s *Store, info *Info) ([]byte, error) {
	t.Helper()
	r, err := s.OpenFile(info)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	f := r.File()
	if f == nil {
		t.Fatal("Reader.File() is nil on the OS file system")
	}
	return io.ReadAll(io.NewSectionReader(f, 0, r.Size()))
}

func dirNames(t testing.TB, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return names
}

// abandon closes the metadata database without flushing anything: what a crash leaves.
func (s *Store) abandon() {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	close(s.stop)
	s.wg.Wait()
	s.db.Close()
}

// checkAllVerified reads every entry of s and checks its content against its digest.
func checkAllVerified(t testing.TB, s *Store) {
	t.Helper()
	s.mu.RLock()
	var infos []Info
	for _, e := range s.bySHA256 {
		infos = append(infos, e.info)
	}
	s.mu.RUnlock()
	for i := range infos {
		got, err := readStored(t, s, &infos[i])
		if err != nil {
			t.Errorf("entry %v: %v", infos[i].Digest, err)
			continue
		}
		d := digestOf(got, digest.SHA256)
		if !infos[i].Digest.Matches(&d) || d.Size != infos[i].Digest.Size {
			t.Errorf("entry %v serves unverified content", infos[i].Digest)
		}
	}
	if n := dirNames(t, filepath.Join(s.dir, "tmp")); len(n) != 0 {
		t.Errorf("temporary files left: %v", n)
	}
}
