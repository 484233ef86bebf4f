package piecestore

import (
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"hash"

	"github.com/apt-p2p/apt-p2p/internal/digest"
)

// Hasher computes, in one pass over data written in order, the SHA-1 of every 512 KiB
// piece and the whole-file hashes: always SHA-1 and SHA-256 (so any content can be found
// by them), plus MD5 and SHA-512 when asked for. It allocates nothing per Write.
//
// It re-expresses the original's Hash.py (reference §3.1) with two differences that do not
// change what is announced: piece hashes are computed for every file, including one piece
// for a file of at most 512 KiB (the original skipped that for SHA-1 files; the DHT layer
// treats <= 1 piece as "no piece information" either way, and so does Info.Pieces), and
// the hasher cannot exist unstarted (the original's test_failure has no equivalent).
type Hasher struct {
	whole     [4]hash.Hash // by digest.Type; nil when not computed
	piece     hash.Hash
	pieceFill int
	pieces    []byte
	n         int64
	done      bool
	sum       [64]byte
}

// NewHasher returns a Hasher computing SHA-1, SHA-256 and every other hash type want
// carries (want may be nil). size, if >= 0, is used to size the piece list up front.
func NewHasher(want *digest.Set, size int64) *Hasher {
	h := &Hasher{piece: sha1.New()}
	h.whole[digest.SHA1] = sha1.New()
	h.whole[digest.SHA256] = sha256.New()
	if want != nil && want.Has(digest.MD5) {
		h.whole[digest.MD5] = md5.New()
	}
	if want != nil && want.Has(digest.SHA512) {
		h.whole[digest.SHA512] = sha512.New()
	}
	if size >= 0 {
		h.pieces = make([]byte, 0, NumPieces(size)*sha1.Size)
	}
	return h
}

// newVerifyingHasher returns a Hasher computing only what checking content against want
// needs: SHA-256 (which names every stored file), the SHA-1 piece hashes, and a whole-file
// hash of another type only when want has nothing stronger to check against. The Writer
// merges want's hashes into the result after a successful check, so the content is still
// found by each of them, and its stored digest carries exactly the hashes the index gave
// plus SHA-256: the DHT key derived from it is the one a requester derives from the index.
// (Computing every type cost a downloaded .deb five hashes per byte, MD5 alone 29% of a
// cold fetch's CPU; and a computed whole-file SHA-1 made the announcement key differ from
// the key of a requester whose index, like Debian's since bookworm, lists no SHA-1.)
func newVerifyingHasher(want *digest.Set, size int64) *Hasher {
	h := &Hasher{piece: sha1.New()}
	h.whole[digest.SHA256] = sha256.New()
	switch {
	case want.Has(digest.SHA256):
	case want.Has(digest.SHA512):
		h.whole[digest.SHA512] = sha512.New()
	case want.Has(digest.SHA1):
		h.whole[digest.SHA1] = sha1.New()
	case want.Has(digest.MD5):
		h.whole[digest.MD5] = md5.New()
	}
	if size >= 0 {
		h.pieces = make([]byte, 0, NumPieces(size)*sha1.Size)
	}
	return h
}

// NumPieces is the number of 512 KiB pieces of a file of size bytes.
func NumPieces(size int64) int {
	return int((size + PieceSize - 1) / PieceSize)
}

// Write hashes p. It fails with ErrFinished after Finish.
func (h *Hasher) Write(p []byte) (int, error) {
	if h.done {
		return 0, ErrFinished
	}
	h.write(p)
	return len(p), nil
}

func (h *Hasher) write(p []byte) {
	for _, w := range h.whole {
		if w != nil {
			w.Write(p)
		}
	}
	h.n += int64(len(p))
	for len(p) > 0 {
		k := min(PieceSize-h.pieceFill, len(p))
		h.piece.Write(p[:k])
		h.pieceFill += k
		p = p[k:]
		if h.pieceFill == PieceSize {
			h.pieces = h.piece.Sum(h.pieces)
			h.piece.Reset()
			h.pieceFill = 0
		}
	}
}

// writePiece hashes a whole piece whose SHA-1 the caller already knows (it must start on
// a piece boundary), so the piece is not SHA-1'd twice.
func (h *Hasher) writePiece(p []byte, sum *[20]byte) {
	for _, w := range h.whole {
		if w != nil {
			w.Write(p)
		}
	}
	h.n += int64(len(p))
	h.pieces = append(h.pieces, sum[:]...)
}

// Finish ends hashing and returns the whole-file digest (Size = bytes hashed) and the
// SHA-1 piece hashes of every piece (20 bytes each; see PieceString for what to announce).
// The piece slice is the Hasher's own.
func (h *Hasher) Finish() (digest.Set, []byte) {
	if !h.done {
		h.done = true
		if h.pieceFill > 0 {
			h.pieces = h.piece.Sum(h.pieces)
			h.pieceFill = 0
		}
	}
	d := digest.Set{Size: h.n}
	for t, w := range h.whole {
		if w != nil {
			_ = d.Put(digest.Type(t), w.Sum(h.sum[:0]))
		}
	}
	return d, h.pieces
}

// Verify finishes hashing and reports whether every hash known to both expected and the
// result agrees (at least one must be common) and the size matches (reference §3.1 verify()).
func (h *Hasher) Verify(expected *digest.Set) bool {
	d, _ := h.Finish()
	return expected.Size == d.Size && expected.Matches(&d)
}

// PieceString applies the announcement rule of reference §3.1: a file of at most one piece
// has no piece string (nil); otherwise it is the concatenated piece hashes.
func PieceString(pieces []byte) []byte {
	if len(pieces) <= sha1.Size {
		return nil
	}
	return pieces
}
