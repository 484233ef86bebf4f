package node

import (
	"context"
	"sync"
	"time"

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
	contact, ok := n.Contact()
	if !ok {
		n.log.Debug("not announcing yet: our address is not known")
		return false // the refresh loop retries
	}
	key, ok := info.Digest.Key()
	if !ok {
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
	res, err := n.dht.Put(actx, key, wire.AppendPeerValue(nil, &v))
	if err != nil || res.Stored == 0 {
		n.Stats.AnnounceFailed.Inc()
		n.log.Debug("announce failed", "key", key, "stored", res.Stored, "err", err)
		return false
	}
	n.log.Debug("announced", "key", key, "form", v.Form, "stored", res.Stored, "took", res.Elapsed)
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
