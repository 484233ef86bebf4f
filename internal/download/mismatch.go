package download

import (
	"bytes"
	"fmt"
	"slices"
	"time"

	"github.com/apt-p2p/apt-p2p/internal/fetch"
	"github.com/apt-p2p/apt-p2p/piecestore"
	"github.com/apt-p2p/apt-p2p/wire"
)

// mismatch remembers a download whose whole-file hash did not match, until
// the mirror refetch shows which pieces were wrong.
type mismatch struct {
	at        time.Time
	pieces    []byte   // SHA-1 of each piece as received (20 bytes per piece)
	suppliers []string // fetch.Result.PieceSources: who supplied each piece
	mirror    string   // the mirror's address (never banned for this)
	path      string
}

// mismatch handles a download whose whole-file hash did not match: every
// reader was cut before the end (the store holds the last byte back until the
// hash matched), the key goes to the mirror only for a while, and the Manager
// refetches it from the mirror at once; apt's retry joins that refetch. Who
// to ban is settled when the refetch is verified (settleMismatch), except
// where the answer is already certain: a file of one piece has one supplier.
func (f *Flight) mismatch(job *fetch.Job, res fetch.Result) {
	m := f.m
	// Refetch at once only when peers sent some of it: the refetch is what
	// tells which of them lied. Bytes from the mirror alone that failed are
	// the mirror's problem (a half-synced mirror), which an immediate second
	// try would most likely repeat; apt's retry goes to the mirror anyway.
	f.refetchNow = res.PeerBytes > 0 || slices.ContainsFunc(res.PieceSources, func(a string) bool {
		return a != "" && a != job.Mirror.Addr
	})
	f.fail(fmt.Errorf("the file from %s did not match its hash; try again: the retry goes to the mirror", describeSources(res)))
	pieces := f.w.PieceHashes()
	f.w.Abort()
	m.Counters.Mismatches.Add(1)
	mm := &mismatch{at: m.clk.Now(), pieces: pieces, suppliers: res.PieceSources, mirror: job.Mirror.Addr, path: f.req.Path}
	m.mu.Lock()
	m.mirrorOnly[f.key] = mm
	m.mu.Unlock()
	if sole := soleSupplier(res.PieceSources); sole != "" && sole != mm.mirror {
		// One source supplied every piece: nothing is left to find out.
		m.ban(sole, "sent a file that failed its hash", f.req.Path)
	}
	if f.refetch {
		m.log.Warn("the mirror's copy failed verification too: the index and the mirror disagree", "path", f.req.Path)
		return
	}
	m.log.Warn("downloaded file failed verification; refetching from the mirror to find the bad pieces",
		"path", f.req.Path, "mirror", res.MirrorBytes, "peers", res.PeerBytes, "sources", len(res.BytesBySource))
}

// settleMismatch compares a verified refetch with the mismatched download it
// replaces and bans the suppliers of the pieces that differed.
func (m *Manager) settleMismatch(key wire.ID, info *piecestore.Info) {
	m.mu.Lock()
	mm := m.mirrorOnly[key]
	m.mu.Unlock()
	if mm == nil || mm.pieces == nil {
		return
	}
	good := info.Pieces
	if good == nil { // one piece: the store keeps no piece string, and its hash is the file's
		return
	}
	bad := 0
	for i, sup := range mm.suppliers {
		lo, hi := i*wire.PieceHashLen, (i+1)*wire.PieceHashLen
		if hi > len(good) || hi > len(mm.pieces) {
			break
		}
		if !bytes.Equal(good[lo:hi], mm.pieces[lo:hi]) {
			bad++
			if sup != mm.mirror {
				m.ban(sup, fmt.Sprintf("sent piece %d, which differs from the verified copy", i), mm.path)
			}
		}
	}
	m.log.Info("mismatch settled against the verified refetch", "path", mm.path, "bad_pieces", bad)
	mm.pieces, mm.suppliers = nil, nil
}

// soleSupplier is the source that supplied every piece, or "" if there were
// several (or none).
func soleSupplier(suppliers []string) string {
	if len(suppliers) == 0 {
		return ""
	}
	for _, s := range suppliers[1:] {
		if s != suppliers[0] {
			return ""
		}
	}
	return suppliers[0]
}
