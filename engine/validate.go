package engine

import (
	"crypto/sha1"
	"errors"
	"net/netip"

	"github.com/apt-p2p/apt-p2p/wire"
)

// ErrContactMismatch refuses a value whose contact is not the storer.
var ErrContactMismatch = errors.New("engine: value contact IP is not the storer's address")

// AptValidator is apt-p2p's value check (§3.2). A value is either a piece
// string {t: pieces} stored under SHA1(pieces), which certifies itself, or
// a wire.PeerValue whose contact IP must be the storer's source IP, so that
// nobody can point downloaders at a third party (reflection, §8.2). Our own
// stores (from is the zero AddrPort) skip the IP check.
func AptValidator(key wire.ID, value []byte, from netip.AddrPort) error {
	if pieces, err := wire.ParsePieceString(value); err == nil {
		if sha1.Sum(pieces) != key {
			return ErrBadValue
		}
		return nil
	}
	var v wire.PeerValue
	if err := v.Parse(value); err != nil {
		return ErrBadValue
	}
	if from.IsValid() && v.Contact.Addr().Unmap() != from.Addr().Unmap() {
		return ErrContactMismatch
	}
	return nil
}
