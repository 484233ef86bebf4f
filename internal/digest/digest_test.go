package digest

import (
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
	"testing"
)

func TestKeyPreferenceAndNormalisation(t *testing.T) {
	data := []byte("apt-p2p is the best")
	m, s1, s256 := md5.Sum(data), sha1.Sum(data), sha256.Sum256(data)

	var s Set
	s.Size = int64(len(data))
	if _, ok := s.Key(); ok {
		t.Fatal("empty set has a key")
	}
	_ = s.Put(MD5, m[:])
	k, _ := s.Key()
	if string(k[:16]) != string(m[:]) || k[16] != 0 || k[19] != 0 {
		t.Fatalf("MD5 key not zero-padded: %x", k)
	}
	_ = s.Put(SHA256, s256[:])
	k, _ = s.Key()
	if string(k[:]) != string(s256[:20]) {
		t.Fatalf("SHA256 key not truncated: %x", k)
	}
	_ = s.Put(SHA1, s1[:])
	if kt, _ := s.KeyType(); kt != SHA1 {
		t.Fatalf("key type %v, want SHA1", kt)
	}
	if st, _ := s.Strongest(); st != SHA256 {
		t.Fatalf("strongest %v, want SHA256", st)
	}
	if got := s.String(); got != "size=19 MD5=6b5abdd30d7ed80edd229f9071d8c23c SHA1=3bba0a5d97b7946ad2632002bf9caefe2cb18e00 SHA256=47f2238a30a0340faa2bf01a9bdc42ba77b07b411cda1e24cd8d7b5c4b7d82a7" {
		t.Fatalf("String() = %s", got)
	}
}

func TestMatches(t *testing.T) {
	var a, b Set
	a.Size, b.Size = 10, 10
	_ = a.PutHex(SHA256, "47f2238a30a0340faa2bf01a9bdc42ba77b07b411cda1e24cd8d7b5c4b7d82a7")
	_ = b.PutHex(MD5, "6b5abdd30d7ed80edd229f9071d8c23c")
	if a.Matches(&b) {
		t.Fatal("sets with no common hash match")
	}
	b.Merge(&a)
	if !a.Matches(&b) {
		t.Fatal("merged set does not match")
	}
	b.Size = 11
	if a.Matches(&b) {
		t.Fatal("size mismatch ignored")
	}
	if err := a.PutHex(SHA1, "zz"); err == nil {
		t.Fatal("bad hex accepted")
	}
}
