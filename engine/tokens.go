package engine

import (
	"crypto/sha1"
	"net/netip"

	"github.com/apt-p2p/apt-p2p/wire"
)

// numSecrets is how many token secrets are kept: a token stays valid for two
// to three checkpoint intervals (§2.7).
const numSecrets = 3

// tokens holds the rotating store-token secrets, newest first.
type tokens struct {
	secrets [numSecrets][wire.IDLen]byte
	n       int
}

// rotate puts a new secret at the front and keeps the newest numSecrets.
func (t *tokens) rotate(secret [wire.IDLen]byte) {
	copy(t.secrets[1:], t.secrets[:numSecrets-1])
	t.secrets[0] = secret
	if t.n < numSecrets {
		t.n++
	}
}

// tokenFor is SHA1(secret ‖ IP as text), the IP in dotted-quad form for IPv4
// (the port is not part of it). It does not allocate.
func tokenFor(secret *[wire.IDLen]byte, ip netip.Addr) wire.ID {
	var buf [wire.IDLen + 64]byte
	b := append(buf[:0], secret[:]...)
	b = ip.Unmap().AppendTo(b)
	return sha1.Sum(b)
}

// current returns the token handed to ip in find_node responses.
func (t *tokens) current(ip netip.Addr) wire.ID {
	return tokenFor(&t.secrets[0], ip)
}

// valid reports whether tok was issued to ip under any kept secret.
func (t *tokens) valid(tok wire.ID, ip netip.Addr) bool {
	for i := 0; i < t.n; i++ {
		if tokenFor(&t.secrets[i], ip) == tok {
			return true
		}
	}
	return false
}
