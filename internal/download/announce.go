package download

import (
	"context"
	"net/netip"
	"sync"
	"time"

	"github.com/apt-p2p/apt-p2p/internal/clock"
	"github.com/apt-p2p/apt-p2p/internal/digest"
	"github.com/apt-p2p/apt-p2p/piecestore"
	"github.com/apt-p2p/apt-p2p/wire"
)

// announceParallel bounds concurrent DHT stores during refresh rounds. Each
// store is a lookup plus up to STORE_REDUNDANCY stores; 16 in flight refresh a
// cache of 100 000 files in a 2.5 h window even at several seconds per store
// (the original's one-every-3-seconds loop managed ~3 600, §4.11).
const announceParallel = 16

// Announce stores info's value under its keys, in the form its piece count
// calls for, plus the piece string under its own key for the h form. It
// reports whether every store succeeded (the refresh loop retries otherwise).
func (m *Manager) Announce(ctx context.Context, info piecestore.Info) bool {
	if _, ok := m.store.LookupHash(info.Digest.SHA256[:]); !ok {
		return false // dropped since it was listed (a rotten copy): announce nothing
	}
	if !m.reachable() {
		// Peers could not fetch from us: announce nothing (the refresh
		// loop announces it once we are reachable).
		return false
	}
	if m.cfg.OtherNetworks != nil {
		if ok, done := m.cfg.OtherNetworks(ctx, info); done {
			m.counted(ok, &info)
			return ok
		}
	}
	if m.dht == nil {
		return false
	}
	contact, ok := m.cfg.Contact()
	if !ok {
		m.log.Debug("not announcing yet: our address is not known")
		return false
	}
	keys := AnnounceKeys(&info.Digest)
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
	if v.Form != wire.FormContact && len(info.Pieces) == 0 {
		v.Form = wire.FormContact // no piece hashes recorded: contact only
	}
	actx, cancel := clock.WithTimeout(ctx, m.clk, time.Minute)
	defer cancel()
	value := wire.AppendPeerValue(nil, &v)
	for _, key := range keys {
		res, err := m.dht.Put(actx, key, value)
		if err != nil || res.Stored == 0 {
			m.Counters.AnnounceFailed.Add(1)
			m.log.Debug("announce failed", "key", key, "stored", res.Stored, "err", err)
			return false
		}
		m.log.Debug("announced", "key", key, "form", v.Form, "stored", res.Stored, "took", res.Elapsed)
	}
	if v.Form == wire.FormHash {
		if _, err := m.dht.Put(actx, info.PiecesHash, wire.AppendPieceString(nil, info.Pieces)); err != nil {
			m.Counters.AnnounceFailed.Add(1)
		}
	}
	m.announcedWith(contact)
	m.counted(true, &info)
	return true
}

// reachable says whether peers can reach us (Config.Reachable; nil: yes).
func (m *Manager) reachable() bool { return m.cfg.Reachable == nil || m.cfg.Reachable() }

// announcedWith records the contact a successful announcement carried.
func (m *Manager) announcedWith(c netip.AddrPort) {
	m.annMu.Lock()
	defer m.annMu.Unlock()
	if !m.annContact.IsValid() {
		m.annContact = c
	} else if m.annContact != c {
		m.annMixed = true
	}
}

// onlyAnnouncedAs reports whether every announcement of this run carried c.
func (m *Manager) onlyAnnouncedAs(c netip.AddrPort) bool {
	m.annMu.Lock()
	defer m.annMu.Unlock()
	return !m.annMixed && (!m.annContact.IsValid() || m.annContact == c)
}

// counted records an announcement's outcome.
func (m *Manager) counted(ok bool, info *piecestore.Info) {
	if !ok {
		m.Counters.AnnounceFailed.Add(1)
		return
	}
	m.Counters.Announced.Add(1)
	_ = m.store.MarkAnnounced(info, m.clk.Now())
}

// RefreshLoop re-announces files before their DHT entries expire and
// announces those whose first announcement failed (e.g. before our address
// was known), once a minute, the first time after a few seconds. It returns
// when the Manager closes.
func (m *Manager) RefreshLoop() {
	if !clock.Sleep(m.ctx, m.clk, 5*time.Second) {
		return
	}
	for {
		m.Prune()
		m.refreshRound()
		if !clock.Sleep(m.ctx, m.clk, time.Minute) {
			return
		}
	}
}

func (m *Manager) refreshRound() {
	if !m.reachable() {
		return // nothing to announce while peers cannot reach us
	}
	before := m.clk.Now().Add(-m.cfg.KeyRefresh)
	contact, known := m.cfg.Contact()
	moved, recorded := false, false
	if known && m.cfg.AnnouncedAs != nil {
		var was netip.AddrPort
		was, recorded = m.cfg.AnnouncedAs()
		moved = !recorded || was != contact
	}
	if moved {
		// Our values in the DHT name an address we no longer answer on
		// (or we do not know what they name): announce everything that
		// was announced before we noticed, starting now. With no record at
		// all (a first run, or a cache from before the record existed),
		// what this run announced under contact is sound: only earlier
		// runs' announcements are in doubt (re-announcing the files of a
		// first run's first minutes was a burst of useless stores).
		if m.movedAt.IsZero() {
			m.movedAt = m.clk.Now()
			if !recorded && m.onlyAnnouncedAs(contact) {
				m.movedAt = m.startedAt
			}
		}
		before = m.movedAt
	}
	due := m.store.DueForAnnounce(before, 4096)
	if moved && len(due) > 0 {
		m.log.Info("re-announcing stored files under our address", "contact", contact, "files", len(due))
	}
	if len(due) == 0 {
		if moved && m.cfg.SaveAnnouncedAs != nil {
			m.cfg.SaveAnnouncedAs(contact)
			m.movedAt = time.Time{}
		}
		return
	}
	t0 := m.clk.Now()
	sem := make(chan struct{}, announceParallel)
	var wg sync.WaitGroup
	var ok, failed int
	var mu sync.Mutex
	for _, info := range due {
		if m.ctx.Err() != nil {
			break
		}
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			r := m.Announce(m.ctx, info)
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
	m.log.Info("announce round", "due", len(due), "ok", ok, "failed", failed, "took", clock.Since(m.clk, t0).Round(time.Millisecond))
	if moved && failed == 0 && m.cfg.SaveAnnouncedAs != nil && len(due) < 4096 {
		m.cfg.SaveAnnouncedAs(contact)
		m.movedAt = time.Time{}
	}
}

// AnnounceKeys are the DHT keys a requester may look this content up by. A
// requester derives its key from its index (digest.Set.Key: SHA1, else SHA256,
// else MD5), and indexes differ: Debian's Packages have listed only MD5 and
// SHA256 since bookworm, older archives and other repositories also give SHA1.
// A file whose stored digest knows both SHA1 and SHA256 (an index that gave
// both, or a file shared from OTHER_DIRS, hashed here) is announced under both;
// one downloaded through a SHA256-only index only under the SHA256 key, the key
// every requester with that index uses. MD5 is a key only when nothing else is.
func AnnounceKeys(d *digest.Set) []wire.ID {
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
