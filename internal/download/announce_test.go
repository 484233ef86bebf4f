package download

import (
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
	"testing"

	"github.com/apt-p2p/apt-p2p/internal/digest"
	"github.com/apt-p2p/apt-p2p/wire"
)

// A requester's key comes from its index; the announcement must be under that
// key whatever the index listed. Debian's bookworm Packages list MD5sum and
// SHA256 only, so their requesters use the SHA-256 key (regression: the store
// used to compute a whole-file SHA-1 for everything, and files were announced
// under a SHA-1 key nobody with a modern index looks up).
func TestAnnounceKeysMatchRequesters(t *testing.T) {
	data := []byte("apt-p2p is the best")
	m, s1, s256 := md5.Sum(data), sha1.Sum(data), sha256.Sum256(data)
	set := func(types ...digest.Type) digest.Set {
		d := digest.Set{Size: int64(len(data))}
		for _, ty := range types {
			switch ty {
			case digest.MD5:
				_ = d.Put(ty, m[:])
			case digest.SHA1:
				_ = d.Put(ty, s1[:])
			case digest.SHA256:
				_ = d.Put(ty, s256[:])
			}
		}
		return d
	}
	contains := func(keys []wire.ID, k wire.ID) bool {
		for _, x := range keys {
			if x == k {
				return true
			}
		}
		return false
	}
	for _, tc := range []struct {
		name     string
		index    digest.Set // what a requester's index lists
		stored   digest.Set // what the store records for the announcer
		wantKeys int
	}{
		{"bookworm (MD5+SHA256)", set(digest.MD5, digest.SHA256), set(digest.MD5, digest.SHA256), 1},
		{"older archive (SHA1+SHA256)", set(digest.MD5, digest.SHA1, digest.SHA256), set(digest.MD5, digest.SHA1, digest.SHA256), 2},
		{"OTHER_DIRS file, bookworm requester", set(digest.MD5, digest.SHA256), set(digest.SHA1, digest.SHA256), 2},
		{"OTHER_DIRS file, SHA1 requester", set(digest.SHA1, digest.SHA256), set(digest.SHA1, digest.SHA256), 2},
		{"MD5-only index", set(digest.MD5), set(digest.MD5), 1},
	} {
		want, _ := tc.index.Key()
		keys := AnnounceKeys(&tc.stored)
		if !contains(keys, want) || len(keys) != tc.wantKeys {
			t.Errorf("%s: announced under %v, requester looks up %v", tc.name, keys, want)
		}
	}
}
