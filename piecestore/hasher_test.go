package piecestore

import (
	"bytes"
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"testing"

	"github.com/apt-p2p/apt-p2p/internal/digest"
)

// Reference §6.11: D = "1234567890" × 122,880 (1,228,800 bytes = 2 pieces + 180,224 bytes).
const (
	vecSHA1       = "31286ad2710b0a91d2139015a345ccb08d2ec3c5"
	vecPieces     = "2c4720d8bb506cf1a3a00c570ae6e661c9952fe5" + "f656eb2fa8ad5b075af987a4f577dfe17c008e93" + "4d5bbfeeaa2b19ba56f639390d176fcb8ecf5019"
	vecPiecesHash = "b8529ac18f36fe6153de1bfbf2c729a2fdd70f10"
)

func vectorData() []byte { return bytes.Repeat([]byte("1234567890"), 122880) }

func checkVector(t *testing.T, h *Hasher) {
	t.Helper()
	d, pieces := h.Finish()
	if d.Size != 1228800 {
		t.Errorf("size %d", d.Size)
	}
	if got := hex.EncodeToString(d.SHA1[:]); got != vecSHA1 {
		t.Errorf("SHA1 %s, want %s", got, vecSHA1)
	}
	if got := hex.EncodeToString(pieces); got != vecPieces {
		t.Errorf("pieces %s, want %s", got, vecPieces)
	}
	ps := PieceString(pieces)
	if got := sha1.Sum(ps); hex.EncodeToString(got[:]) != vecPiecesHash {
		t.Errorf("piece-string hash %x, want %s", got, vecPiecesHash)
	}
}

func TestHasherPieces(t *testing.T) { // test_pieces: 10-byte updates
	data := vectorData()
	h := NewHasher(nil, int64(len(data)))
	for i := 0; i < len(data); i += 10 {
		h.Write(data[i : i+10])
	}
	checkVector(t, h)
}

func TestHasherPiecesAtOnce(t *testing.T) {
	h := NewHasher(nil, -1)
	h.Write(vectorData())
	checkVector(t, h)
}

func TestHasherPiecesBoundaries(t *testing.T) {
	data := vectorData()
	h := NewHasher(nil, int64(len(data)))
	off := 0
	for _, n := range []int{524280, 8, 2, 524280, 6, 4, 180220} {
		h.Write(data[off : off+n])
		off += n
	}
	if off != len(data) {
		t.Fatalf("sizes cover %d bytes", off)
	}
	checkVector(t, h)
}

func TestHasherPiecesOtherHashes(t *testing.T) { // whole-file type SHA256: same SHA-1 pieces
	data := vectorData()
	var want digest.Set
	want.Size = int64(len(data))
	if err := want.PutHex(digest.SHA256, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"); err != nil {
		t.Fatal(err)
	}
	want.Have = 1 << digest.SHA256
	h := NewHasher(&want, want.Size)
	h.Write(data)
	checkVector(t, h)
	if h.Verify(&want) {
		t.Error("verify true against a wrong SHA256")
	}
}

// test_sha1 / test_md5 / test_sha256 on "apt-p2p is the best".
func TestHasherSmallVectors(t *testing.T) {
	const text = "apt-p2p is the best"
	for _, tc := range []struct {
		typ digest.Type
		hex string
	}{
		{digest.SHA1, "3bba0a5d97b7946ad2632002bf9caefe2cb18e00"},
		{digest.MD5, "6b5abdd30d7ed80edd229f9071d8c23c"},
		{digest.SHA256, "47f2238a30a0340faa2bf01a9bdc42ba77b07b411cda1e24cd8d7b5c4b7d82a7"},
	} {
		var want digest.Set
		want.Size = 19
		if err := want.PutHex(tc.typ, tc.hex); err != nil {
			t.Fatal(err)
		}
		h := NewHasher(&want, want.Size)
		if _, err := h.Write([]byte(text)); err != nil {
			t.Fatal(err)
		}
		d, pieces := h.Finish()
		if got := hex.EncodeToString(d.Get(tc.typ)); got != tc.hex {
			t.Errorf("%v = %s, want %s", tc.typ, got, tc.hex)
		}
		if !h.Verify(&want) {
			t.Errorf("%v: verify false", tc.typ)
		}
		if _, err := h.Write([]byte("x")); !errors.Is(err, ErrFinished) {
			t.Errorf("%v: update after finish: %v, want ErrFinished", tc.typ, err)
		}
		// One piece (the whole file): no piece string is announced.
		if len(pieces) != 20 || PieceString(pieces) != nil {
			t.Errorf("%v: pieces %x", tc.typ, pieces)
		}
		want.Size = 20
		if h.Verify(&want) {
			t.Errorf("%v: verify true with the wrong size", tc.typ)
		}
	}
}

// Piece-list rule of §3.1: exactly 512 KiB is one piece (no piece string), one byte more is two.
func TestPieceStringRule(t *testing.T) {
	for _, tc := range []struct {
		size   int
		pieces int
		str    bool
	}{{0, 0, false}, {1, 1, false}, {PieceSize, 1, false}, {PieceSize + 1, 2, true}, {3 * PieceSize, 3, true}} {
		h := NewHasher(nil, int64(tc.size))
		h.Write(make([]byte, tc.size))
		_, p := h.Finish()
		if len(p) != 20*tc.pieces || (PieceString(p) != nil) != tc.str || NumPieces(int64(tc.size)) != tc.pieces {
			t.Errorf("size %d: %d piece bytes, piece string %v", tc.size, len(p), PieceString(p) != nil)
		}
	}
}
