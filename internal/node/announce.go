package node

import (
	"context"
	"sync"
	"time"

	"github.com/apt-p2p/apt-p2p/internal/digest"
	"github.com/apt-p2p/apt-p2p/piecestore"
	"github.com/apt-p2p/apt-p2p/wire"
)

// announceParallel bounds concurrent DHT stores during refresh rounds. Each
// store is a lookup plus up to STORE_REDUNDANCY stores; 16 in flight refresh a
// cache of 100 000 files in a 2.5 h window even at several seconds per store
// (the original's one-every-3-seconds loop managed ~3 600, §4.11).
const announceParallel = 16

// announce stores info's value under its key, in the form its piece count calls
// for, plus the piece string under its own key for the 'h' form.
func (n *Node) announce(ctx context.Context, info piecestore.Info) bool {
	if _, ok := n.store.LookupHash(info.Digest.SHA256[:]); !ok {
		return false // dropped since it was listed (a rotten copy): announce nothing
	}
	contact, ok := n.Contact()
	if !ok {
		n.log.Debug("not announcing yet: our address is not known")
		return false // the refresh loop retries
	}
	keys := announceKeys(&info.Digest)
	if len(keys) == 0 {
		return false
	}
	v := wire.PeerValue{Contact: contact, Form: wire.ChooseForm(piecestore.NumPieces(info.Digest.Size))}
	switch v.Form {
	case wire.FormInline:
		v.Pieces = info.Pieces
	case wire.FormHash, wire.FormLink:
		v.PiecesHash = info.PiecesHash
	}
	if (v.Form != wire.FormContact) && len(info.Pieces) == 0 {
		v.Form = wire.FormContact // no piece hashes recorded: contact only
	}
	actx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	value := wire.AppendPeerValue(nil, &v)
	for _, key := range keys {
		res, err := n.dht.Put(actx, key, value)
		if err != nil || res.Stored == 0 {
			n.Stats.AnnounceFailed.Inc()
			n.log.Debug("announce failed", "key", key, "stored", res.Stored, "err", err)
			return false
		}
		n.log.Debug("announced", "key", key, "form", v.Form, "stored", res.Stored, "took", res.Elapsed)
	}
	if v.Form == wire.FormHash {
		if _, err := n.dht.Put(actx, info.PiecesHash, wire.AppendPieceString(nil, info.Pieces)); err != nil {
			n.Stats.AnnounceFailed.Inc()
		}
	}
	n.Stats.Announced.Inc()
	_ = n.store.MarkAnnounced(&info, time.Now())
	return true
}

// announceLoop re-announces files before their DHT entries expire, and
// announces files whose first announcement failed (e.g. before our address was known).
func (n *Node) announceLoop() {
	t := time.NewTicker(time.Minute)
	defer t.Stop()
	first := time.After(5 * time.Second)
	for {
		select {
		case <-n.ctx.Done():
			return
		case <-first:
		case <-t.C:
		}
		n.prune(time.Now())
		n.refreshRound()
	}
}

func (n *Node) refreshRound() {
	due := n.store.DueForAnnounce(time.Now().Add(-n.cfg.KeyRefresh), 4096)
	if len(due) == 0 {
		return
	}
	t0 := time.Now()
	sem := make(chan struct{}, announceParallel)
	var wg sync.WaitGroup
	var ok, failed int
	var mu sync.Mutex
	for _, info := range due {
		if n.ctx.Err() != nil {
			break
		}
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			r := n.announce(n.ctx, info)
			mu.Lock()
			if r {
				ok++
			} else {
				failed++
			}
			mu.Unlock()
		})
	}
	wg.Wait()
	n.log.Info("announce round", "due", len(due), "ok", ok, "failed", failed, "took", time.Since(t0).Round(time.Millisecond))
}

// announceKeys are the DHT keys a requester may look this content up by. A
// requester derives its key from its index (digest.Set.Key: SHA1, else SHA256,
// else MD5), and indexes differ: Debian's Packages have listed only MD5 and
// SHA256 since bookworm, older archives and other repositories also give SHA1.
// A file whose stored digest knows both SHA1 and SHA256 (an index that gave
// both, or a file shared from OTHER_DIRS, hashed here) is announced under both;
// one downloaded through a SHA256-only index only under the SHA256 key, the key
// every requester with that index uses. MD5 is a key only when nothing else is.
func announceKeys(d *digest.Set) []wire.ID {
	var keys []wire.ID
	for _, t := range []digest.Type{digest.SHA1, digest.SHA256} {
		if d.Has(t) {
			keys = append(keys, wire.NormKey(d.Get(t)))
		}
	}
	if len(keys) == 0 && d.Has(digest.MD5) {
		keys = append(keys, wire.NormKey(d.MD5[:]))
	}
	return keys
}
