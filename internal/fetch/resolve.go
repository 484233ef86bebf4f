package fetch

import (
	"context"
	"crypto/sha1"
	"net/netip"
	"sort"
	"sync"

	"github.com/apt-p2p/apt-p2p/wire"
)

// maxPieceStringFetches is how many peers are asked for an 'l' piece string at once (§3.3).
const maxPieceStringFetches = 4

// version is one piece string the values point to, identified by its SHA-1
// (inline, 'h' and 'l' values of the same piece string agree), with the
// distinct IPs that back it and the ways to obtain it.
type version struct {
	id        wire.ID // SHA1(piece string); zero for "no piece info"
	none      bool
	form      wire.ValueForm // the cheapest form seen (tie-break: none, inline, h, l)
	t         []byte         // an inline copy, if any value carried one
	hasH      bool           // some value says it is in the DHT under id
	linkPeers []netip.AddrPort
	votes     int
}

// ResolvePieces settles the expected SHA-1 piece hashes of a file of size
// bytes from the DHT values found under its key (reference §3.3, with the
// vote fixed): every IP address votes once, for the piece info of its first
// value, so a Sybil announcing from many ports of one address counts once;
// inline, 'h' and 'l' values naming the same piece string (by its SHA-1) are
// one version. Versions are tried from the most votes down (ties: none,
// inline, h, l as in the original): inline strings as they are, 'h' through
// dhtGet (the first value whose SHA1(t) == h), 'l' through httpGet of the
// piece string from the peers that announced it, up to 4 at a time (the
// first body whose SHA1(t) == l). A piece string of the wrong length for size
// never counts. It returns nil pieces, and no error, when the file has one
// piece, when the largest vote is "no piece info", when the top two versions
// tie, or when nothing can be fetched: the download then goes on without
// piece hashes and the whole-file hash decides. err is only ctx's error.
func ResolvePieces(ctx context.Context, size int64, values []wire.PeerValue,
	dhtGet func(ctx context.Context, key wire.ID) ([][]byte, error),
	httpGet func(ctx context.Context, peer netip.AddrPort, h wire.ID) ([]byte, error)) (pieces []byte, err error) {
	n := int((size + PieceSize - 1) / PieceSize)
	if n <= 1 {
		return nil, nil
	}
	want := n * wire.PieceHashLen
	voted := make(map[netip.Addr]bool, len(values))
	var vs []*version
	for i := range values {
		v := &values[i]
		var id wire.ID
		switch v.Form {
		case wire.FormInline:
			if len(v.Pieces) != want {
				continue // cannot be this file's piece string
			}
			id = sha1.Sum(v.Pieces)
		case wire.FormHash, wire.FormLink:
			id = v.PiecesHash
		}
		var ver *version
		for _, x := range vs {
			if x.id == id && x.none == (v.Form == wire.FormContact) {
				ver = x
				break
			}
		}
		if ver == nil {
			ver = &version{id: id, none: v.Form == wire.FormContact, form: v.Form}
			vs = append(vs, ver)
		}
		ver.form = min(ver.form, v.Form)
		switch v.Form {
		case wire.FormInline:
			ver.t = v.Pieces
		case wire.FormHash:
			ver.hasH = true
		case wire.FormLink:
			if v.Contact.IsValid() && v.Contact.Port() != 0 {
				ver.linkPeers = append(ver.linkPeers, v.Contact)
			}
		}
		if ip := v.Contact.Addr().Unmap(); !voted[ip] {
			voted[ip] = true
			ver.votes++
		}
	}
	sort.SliceStable(vs, func(i, j int) bool {
		if vs[i].votes != vs[j].votes {
			return vs[i].votes > vs[j].votes
		}
		return vs[i].form < vs[j].form
	})
	if len(vs) == 0 || vs[0].none || len(vs) > 1 && vs[0].votes == vs[1].votes {
		return nil, nil
	}
	for _, ver := range vs {
		if ver.votes == 0 || ver.none {
			continue
		}
		p := ver.t
		if p == nil && ver.hasH {
			p = resolveHash(ctx, ver.id, want, dhtGet)
		}
		if p == nil && len(ver.linkPeers) > 0 {
			p = resolveLink(ctx, ver.id, want, ver.linkPeers, httpGet)
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if p != nil {
			return append([]byte(nil), p...), nil
		}
	}
	return nil, nil
}

// checkPieceString decodes a bencoded {t: ...} and returns t if SHA1(t) == h
// and it has the expected length.
func checkPieceString(b []byte, h wire.ID, want int) []byte {
	t, err := wire.ParsePieceString(b)
	if err != nil || len(t) != want || wire.ID(sha1.Sum(t)) != h {
		return nil
	}
	return t
}

func resolveHash(ctx context.Context, h wire.ID, want int, dhtGet func(context.Context, wire.ID) ([][]byte, error)) []byte {
	if dhtGet == nil {
		return nil
	}
	vals, err := dhtGet(ctx, h)
	if err != nil {
		return nil
	}
	for _, v := range vals {
		if t := checkPieceString(v, h, want); t != nil {
			return t
		}
	}
	return nil
}

func resolveLink(ctx context.Context, h wire.ID, want int, peers []netip.AddrPort,
	httpGet func(context.Context, netip.AddrPort, wire.ID) ([]byte, error)) []byte {
	if httpGet == nil || len(peers) == 0 {
		return nil
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		mu     sync.Mutex
		result []byte
		wg     sync.WaitGroup
	)
	sem := make(chan struct{}, maxPieceStringFetches)
	seen := make(map[netip.AddrPort]bool, len(peers))
	for _, p := range peers {
		if seen[p] {
			continue
		}
		seen[p] = true
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		wg.Add(1)
		go func(p netip.AddrPort) {
			defer wg.Done()
			defer func() { <-sem }()
			body, err := httpGet(ctx, p, h)
			if err != nil {
				return
			}
			if t := checkPieceString(body, h, want); t != nil {
				mu.Lock()
				if result == nil {
					result = t
					cancel()
				}
				mu.Unlock()
			}
		}(p)
	}
	wg.Wait()
	return result
}
