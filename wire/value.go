package wire

import (
	"crypto/sha1"
	"errors"
	"net/netip"
	"strconv"
)

// ValueForm is the shape of the value a peer stores under a file's key
// (reference §3.2).
type ValueForm uint8

// The four value forms, chosen by the file's piece count (ChooseForm).
const (
	FormContact ValueForm = iota // {c}
	FormInline                   // {c, t: {t: pieces}}
	FormHash                     // {c, h}: the piece string is stored in the DHT under h
	FormLink                     // {c, l}: the piece string is fetched over HTTP
)

// Piece-count thresholds of the value forms; the package documentation gives
// the arithmetic.
const (
	// MaxInlinePieces is the most piece hashes carried inline (the original's
	// DHT_PIECES).
	MaxInlinePieces = 4
	// MaxHashPieces is the most pieces whose piece string is stored in the DHT
	// (FormHash). The original's TORRENT_PIECES was 70, which fits neither
	// packet limit; 64 fits a store_value request and a get_value reply under
	// both MaxPacketIPv4 and MaxPacketIPv6.
	MaxHashPieces = 64
)

// PieceHashLen is the size of one piece hash (SHA1) in a piece string.
const PieceHashLen = 20

// Errors of the value decoders.
var (
	ErrPeerValue   = errors.New("wire: malformed peer value")
	ErrPieceString = errors.New("wire: malformed piece string")
)

// PeerValue is the apt-p2p value stored under a file's key (reference §3.2),
// or under its PartialKey by a peer whose download of it is running.
type PeerValue struct {
	Contact    netip.AddrPort // c: 6-byte compact peer (IPv4 + TCP port), or 18 bytes (IPv6 + TCP port) on the IPv6 network
	Form       ValueForm
	Pieces     []byte // FormInline: the 20*n-byte piece string (aliases the input on Parse)
	PiecesHash ID     // FormHash / FormLink: SHA1 of the piece string
	// Claim (p, an extension: package documentation, "Downloads in progress")
	// is when the peer claimed its download, in microseconds since the Unix
	// epoch; 0 when absent (every original value).
	Claim int64
}

// ChooseForm returns the value form for a file of numPieces pieces: contact
// only for one piece, inline hashes up to MaxInlinePieces, the piece string in
// the DHT up to MaxHashPieces, and over HTTP beyond.
func ChooseForm(numPieces int) ValueForm {
	switch {
	case numPieces <= 1:
		return FormContact
	case numPieces <= MaxInlinePieces:
		return FormInline
	case numPieces <= MaxHashPieces:
		return FormHash
	}
	return FormLink
}

// AppendPeerValue appends the bencoded value. An IPv4 contact is the
// original's 6-byte c; an IPv6 one the 18-byte c of the IPv6 extension,
// which only the IPv6 network carries (package documentation, "IPv6"). Any
// other address is written as 0.0.0.0 with its port, which downloaders
// cannot use.
func AppendPeerValue(dst []byte, v *PeerValue) []byte {
	if IsIPv6(v.Contact.Addr()) {
		dst = append(dst, "d1:c18:"...)
		dst = AppendCompactPeer6(dst, v.Contact)
	} else {
		dst = append(dst, "d1:c6:"...)
		dst = AppendCompactPeer(dst, v.Contact)
	}
	switch v.Form {
	case FormHash:
		dst = append(dst, "1:h20:"...)
		dst = appendID(dst, v.PiecesHash)
	case FormLink:
		dst = append(dst, "1:l20:"...)
		dst = appendID(dst, v.PiecesHash)
	}
	if v.Claim > 0 {
		dst = append(dst, "1:pi"...)
		dst = strconv.AppendInt(dst, v.Claim, 10)
		dst = append(dst, 'e')
	}
	if v.Form == FormInline { // keys in sorted order: c, h, l, p, t
		dst = append(dst, "1:td1:t"...)
		dst = appendStr(dst, v.Pieces)
		dst = append(dst, 'e')
	}
	return append(dst, 'e')
}

// Parse decodes a stored value: a strictly bencoded dict holding a 6-byte c
// (or an 18-byte IPv6 one, never an IPv4-mapped address),
// at most one of t (a dict {t: piece string}), h or l (20 bytes each), an
// optional positive integer p (Claim), and nothing after it. Keys it does not
// know are skipped, as the original skipped them, so that a later extension
// does not make today's daemons drop the value; a known key of the wrong
// shape is an error. A piece string is a non-empty multiple of 20 bytes.
// Pieces aliases b.
func (v *PeerValue) Parse(b []byte) error {
	*v = PeerValue{}
	if err := Valid(b); err != nil {
		return err
	}
	if b[0] != 'd' {
		return ErrPeerValue
	}
	haveC, extra := false, 0
	for i := 1; b[i] != 'e'; {
		k, j, _ := readStr(b, i)
		next, _ := skip(b, j, 1, nil)
		val := b[j:next]
		if len(k) != 1 {
			i = next // an unknown (longer) key
			continue
		}
		switch k[0] {
		case 'c':
			s, _, err := readStr(val, 0)
			if err != nil {
				return ErrPeerValue
			}
			if v.Contact, err = ParseCompactContact(s); err != nil {
				return ErrPeerValue
			}
			haveC = true
		case 'h', 'l':
			s, _, err := readStr(val, 0)
			if err != nil || len(s) != IDLen {
				return ErrPeerValue
			}
			v.PiecesHash = ID(s)
			v.Form = FormHash
			if k[0] == 'l' {
				v.Form = FormLink
			}
			extra++
		case 't':
			p, err := ParsePieceString(val)
			if err != nil {
				return ErrPeerValue
			}
			v.Pieces, v.Form = p, FormInline
			extra++
		case 'p':
			n, ok, end, err := readInt(val, 0)
			if err != nil || !ok || end != len(val) || n <= 0 {
				return ErrPeerValue
			}
			v.Claim = n
		}
		i = next
	}
	if !haveC || extra > 1 {
		*v = PeerValue{}
		return ErrPeerValue
	}
	return nil
}

// AppendPieceString appends the bencoded {t: pieces}: the DHT value stored
// under the piece-string hash (FormHash) and the body served at /~/<hash>
// (FormLink).
func AppendPieceString(dst, pieces []byte) []byte {
	dst = append(dst, "d1:t"...)
	dst = strconv.AppendInt(dst, int64(len(pieces)), 10)
	dst = append(dst, ':')
	dst = append(dst, pieces...)
	return append(dst, 'e')
}

// PieceStringLen is the encoded size of a piece string of n pieces.
func PieceStringLen(n int) int { return len("d1:te") + strLen(n*PieceHashLen) }

// PartialKey is the DHT key under which peers whose download of the file with
// key k is still running announce themselves (with a Claim): SHA1 of
// "apt-p2p partial " followed by k. Original peers never look it up, so they
// never take a partial holder for a complete one.
func PartialKey(k ID) ID {
	var b [len(partialPrefix) + IDLen]byte
	copy(b[:], partialPrefix)
	copy(b[len(partialPrefix):], k[:])
	return sha1.Sum(b[:])
}

const partialPrefix = "apt-p2p partial "

// ParsePieceString decodes a bencoded {t: pieces} strictly and returns the
// piece string, which aliases b: a non-empty multiple of 20 bytes.
func ParsePieceString(b []byte) ([]byte, error) {
	if len(b) < 4 || string(b[:4]) != "d1:t" {
		return nil, ErrPieceString
	}
	if len(b) > MaxDecodeLen {
		return nil, ErrTooLarge
	}
	p, j, err := readStr(b, 4)
	if err != nil {
		return nil, err
	}
	if j != len(b)-1 || b[j] != 'e' {
		return nil, ErrPieceString
	}
	if len(p) == 0 || len(p)%PieceHashLen != 0 {
		return nil, ErrPieceString
	}
	return p, nil
}
