package node

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"time"

	"github.com/apt-p2p/apt-p2p/engine"
	"github.com/apt-p2p/apt-p2p/internal/download"
	"github.com/apt-p2p/apt-p2p/piecestore"
	"github.com/apt-p2p/apt-p2p/wire"
)

// MainlineDHT is the narrow interface through which downloads and
// announcements reach the BitTorrent mainline DHT (issue 14; the content
// mapping is in wire/doc.go, "The mainline DHT"). A download package can
// take it as is.
type MainlineDHT interface {
	// Peers calls onPeer with the HTTP address of every peer found holding
	// the file whose apt-p2p DHT key is key, and returns how many there were.
	Peers(ctx context.Context, key wire.ID, onPeer func(netip.AddrPort)) (int, error)
	// Announce announces that we hold the file whose key is key, at our
	// HTTP port.
	Announce(ctx context.Context, key wire.ID) error
}

// mainlineDHT is MainlineDHT on an engine.MainlineNode.
type mainlineDHT struct {
	n        *engine.MainlineNode
	httpPort func() uint16 // the peer port peers elsewhere reach (portmap.go)
}

func (m mainlineDHT) Peers(ctx context.Context, key wire.ID, onPeer func(netip.AddrPort)) (int, error) {
	peers, r, err := m.n.GetPeers(ctx, wire.MainlineInfoHash(key))
	for _, p := range peers {
		onPeer(p)
	}
	return r.Values, err
}

func (m mainlineDHT) Announce(ctx context.Context, key wire.ID) error {
	_, err := m.n.Announce(ctx, wire.MainlineInfoHash(key), m.httpPort())
	return err
}

// startMainline starts the mainline DHT node when NETWORKS asks for it.
func (n *Node) startMainline() error {
	m := n.cfg.Mainline
	if !m.UsesMainline() {
		return nil
	}
	c := engine.MainlineDefault()
	c.LocalOK = n.cfg.DHT.LocalOK
	c.ReadOnly = m.ReadOnly
	listen := n.cfg.ListenAddr(m.Port)
	mn, err := engine.StartMainline(engine.MainlineOptions{
		MainlineConfig: c,
		Listen:         listen,
		Bootstrap:      m.Bootstrap,
		Logger:         n.log.With("part", "mainline"),
	})
	if err != nil {
		return fmt.Errorf("mainline DHT on UDP %s: %w (is the port in use? set [%s] MAINLINE_PORT)", listen, err, n.cfg.DHTSection)
	}
	n.mainline = mn
	n.mdht = mainlineDHT{n: mn, httpPort: func() uint16 { return n.announcedPort(engine.IPv4) }}
	n.wg.Go(n.mainlineLoop)
	return nil
}

// Mainline is the mainline DHT node, nil when NETWORKS leaves it off.
func (n *Node) Mainline() *engine.MainlineNode { return n.mainline }

// MainlinePeers is the narrow interface to the mainline DHT, nil when off.
func (n *Node) MainlinePeers() MainlineDHT { return n.mdht }

// aptBootstrap is the apt-p2p DHT's bootstrap list: none when NETWORKS is
// mainline, so that the apt-p2p engine (still running for its status and
// API) joins no network.
func (n *Node) aptBootstrap() []string {
	if !n.cfg.Mainline.AptP2P() {
		return nil
	}
	return n.cfg.DHT.Bootstrap
}

// lookupPeers is the DHT lookup of a download: the apt-p2p DHT's values
// and, when on, the mainline DHT's peers as contact-only values ({c}: the
// mainline DHT carries no piece hashes), both through onValue (never called
// concurrently). It returns when both lookups are over.
func (n *Node) lookupPeers(ctx context.Context, key wire.ID, onValue func([]byte)) (engine.Result, error) {
	if n.mdht == nil {
		return n.dhtGet(ctx, key, onValue)
	}
	var mu sync.Mutex
	deliver := func(raw []byte) {
		mu.Lock()
		defer mu.Unlock()
		onValue(raw)
	}
	var (
		wg           sync.WaitGroup
		mlN          int
		mlErr        error
		mlT0         = time.Now()
		mlElapsedDur time.Duration
	)
	wg.Go(func() {
		mlN, mlErr = n.mdht.Peers(ctx, key, func(p netip.AddrPort) {
			deliver(wire.AppendPeerValue(nil, &wire.PeerValue{Contact: p}))
		})
		mlElapsedDur = time.Since(mlT0)
	})
	var r engine.Result
	var err error
	if n.cfg.Mainline.AptP2P() {
		r, err = n.dhtGet(ctx, key, deliver)
	} else {
		err = errMainlineOnly
	}
	wg.Wait()
	r.Values += mlN
	if err == errMainlineOnly {
		r.Elapsed, err = mlElapsedDur, mlErr
	} else if err != nil && mlErr == nil {
		err = nil // one network answered
	}
	return r, err
}

var errMainlineOnly = errors.New("node: the apt-p2p DHT is off")

// announceOtherNetworks announces info on the mainline DHT when it is on
// (download.Config.OtherNetworks). done says the apt-p2p DHT is off, so the
// mainline announce is the announcement (ok: it succeeded); with both
// networks on, the mainline announce is best effort and the apt-p2p one
// decides.
func (n *Node) announceOtherNetworks(ctx context.Context, info piecestore.Info) (ok, done bool) {
	if n.mdht == nil {
		return false, false
	}
	actx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	ok = true
	for _, key := range download.AnnounceKeys(&info.Digest) {
		if err := n.mdht.Announce(actx, key); err != nil {
			ok = false
			n.log.Debug("mainline announce failed", "key", key, "err", err)
		}
	}
	return ok, !n.cfg.Mainline.AptP2P()
}

// downloadDHT is the DHT the download manager sees: the apt-p2p DHT, whose
// lookups also ask the mainline DHT when it is on (lookupPeers).
type downloadDHT struct{ n *Node }

func (d downloadDHT) Get(ctx context.Context, key wire.ID, onValue func([]byte)) (engine.Result, error) {
	return d.n.lookupPeers(ctx, key, d.n.ownFilter(onValue))
}

// The apt-p2p DHT's operations run on every address family (ipv6.go).

func (d downloadDHT) GetValues(ctx context.Context, key wire.ID) ([][]byte, error) {
	vals, err := d.n.dhtGetValues(ctx, key)
	return d.n.filterOwn(vals), err
}

func (d downloadDHT) Put(ctx context.Context, key wire.ID, value []byte) (engine.Result, error) {
	return d.n.dhtPut(ctx, key, value)
}

func (d downloadDHT) Claim(ctx context.Context, key wire.ID, build func(time.Time) []byte, settle time.Duration) (engine.Result, [][]byte, error) {
	r, vals, err := d.n.dhtClaim(ctx, key, build, settle)
	return r, d.n.filterOwn(vals), err
}

// MainlineReannounce is how often every cached file is announced again on
// the mainline DHT: storing nodes forget an announce after about 30 minutes
// (libtorrent and this engine's MainlineConfig.PeerExpire), far sooner than
// the apt-p2p DHT's KEY_EXPIRE.
const MainlineReannounce = 25 * time.Minute

// mainlineLoop re-announces the cache on the mainline DHT every
// MainlineReannounce, 16 announces in flight.
func (n *Node) mainlineLoop() {
	t := time.NewTicker(MainlineReannounce)
	defer t.Stop()
	for {
		select {
		case <-n.ctx.Done():
			return
		case <-t.C:
		}
		if !n.Reachable() {
			continue // peers could not fetch from us (reach.go)
		}
		files := n.store.DueForAnnounce(time.Now(), 0)
		sem := make(chan struct{}, 16)
		var wg sync.WaitGroup
		for _, info := range files {
			if n.ctx.Err() != nil {
				break
			}
			sem <- struct{}{}
			wg.Go(func() {
				defer func() { <-sem }()
				ctx, cancel := context.WithTimeout(n.ctx, time.Minute)
				defer cancel()
				for _, key := range download.AnnounceKeys(&info.Digest) {
					if err := n.mdht.Announce(ctx, key); err != nil {
						n.log.Debug("mainline re-announce failed", "key", key, "err", err)
					}
				}
			})
		}
		wg.Wait()
	}
}
