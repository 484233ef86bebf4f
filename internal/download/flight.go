package download

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/apt-p2p/apt-p2p/internal/clock"
	"github.com/apt-p2p/apt-p2p/internal/fetch"
	"github.com/apt-p2p/apt-p2p/piecestore"
	"github.com/apt-p2p/apt-p2p/wire"
)

// Source names where a download's bytes came from.
type Source string

// Sources of a download.
const (
	SourceMirror Source = "mirror"
	SourcePeers  Source = "peers"
	SourceMixed  Source = "peers+mirror"
	// SourceFetching: still deciding (bytes may come from either).
	SourceFetching Source = "fetching"
)

// Role is what a download decided to do.
type Role string

// Roles of a download.
const (
	RoleLookup   Role = "lookup"      // still looking up
	RolePeers    Role = "peers"       // complete holders found
	RoleLeader   Role = "leader"      // no holder, no earlier claim: the mirror at once
	RoleFollower Role = "follower"    // an earlier claimant is downloading it: fetch from it
	RoleMirror   Role = "mirror-only" // no DHT, or the last peer download failed verification
)

// Flight is one content being downloaded, shared by every request for it.
type Flight struct {
	m       *Manager
	req     Request
	key     wire.ID
	w       *piecestore.Writer // set before ready closes; nil if it could not be created
	ready   chan struct{}      // closed once w is set (or could not be)
	done    chan struct{}      // closed when the download, its commit and AfterCommit are over
	cancel  context.CancelFunc
	started time.Time
	refetch bool // the mirror-only download after a mismatch

	readers atomic.Int32 // apt responses streaming from it now
	joins   atomic.Int32 // apt responses ever served from it
	uploads atomic.Int32 // peer responses streaming from it now

	refetchNow bool // set by run before done closes: its hash failed with bytes from peers

	mu   sync.Mutex
	src  Source
	role Role
	err  error // why it failed, for apt
}

// Writer is where the bytes go; apt and peers stream its available prefix.
// Flights that Start returns, Active lists and Partial finds have one.
func (f *Flight) Writer() *piecestore.Writer { return f.w }

func (f *Flight) isReady() bool {
	select {
	case <-f.ready:
		return f.w != nil
	default:
		return false
	}
}

// Done is closed when the download has ended (stored, or failed).
func (f *Flight) Done() <-chan struct{} { return f.done }

// Request is what is downloaded.
func (f *Flight) Request() *Request { return &f.req }

// Key is the content's DHT key.
func (f *Flight) Key() wire.ID { return f.key }

// Failure says why the download failed, in words for apt; nil if it has not.
func (f *Flight) Failure() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.err
}

// Source is where the bytes came from; SourceFetching until the download ends.
func (f *Flight) Source() Source {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.src == "" {
		return SourceFetching
	}
	return f.src
}

// Role is what the download decided to do.
func (f *Flight) Role() Role {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.role == "" {
		return RoleLookup
	}
	return f.role
}

// Join counts one more apt response streaming from the Flight; it reports
// whether an earlier one did (the bytes of a later one come from the
// daemon's own copy, as for a stored file). Leave undoes the first count.
func (f *Flight) Join() (shared bool) {
	f.readers.Add(1)
	return f.joins.Add(1) > 1
}

// Leave ends one Join.
func (f *Flight) Leave() { f.readers.Add(-1) }

// Readers is the number of apt responses streaming from it now.
func (f *Flight) Readers() int { return int(f.readers.Load()) }

// Uploads counts peer responses streaming from it now (StartUpload/EndUpload).
func (f *Flight) Uploads() int { return int(f.uploads.Load()) }

// StartUpload and EndUpload bracket a peer's response from the Flight.
func (f *Flight) StartUpload() { f.uploads.Add(1) }

// EndUpload ends a StartUpload.
func (f *Flight) EndUpload() { f.uploads.Add(-1) }

func (f *Flight) setRole(r Role) {
	f.mu.Lock()
	f.role = r
	f.mu.Unlock()
}

func (f *Flight) fail(err error) {
	f.mu.Lock()
	f.err = err
	f.mu.Unlock()
}

// run is the whole download: lookup and claim, decision, fetch, verification,
// commit. It returns the stored file, for the announcement.
func (f *Flight) run(ctx context.Context) (piecestore.Info, bool) {
	m := f.m
	t0 := m.clk.Now()
	d := &f.req.Digest
	useDHT := m.dht != nil && !f.refetch && m.peersAllowed(f.key)
	var plan plan
	if useDHT {
		plan = f.lookup(ctx)
	} else {
		f.setRole(RoleMirror)
		plan.peers = make(chan fetch.Source)
		close(plan.peers)
	}
	var pieces []byte
	if len(plan.complete) > 0 && piecestore.NumPieces(d.Size) > 1 {
		// Piece hashes are worth the time the mirror waits for the peers
		// anyway, not more: without them the whole-file hash still decides
		// (and a mismatch is settled piece by piece against the mirror).
		budget := max(plan.mirrorDelay, minResolve)
		t := m.clk.Now()
		pctx, cancel := clock.WithTimeout(ctx, m.clk, budget)
		pieces, _ = fetch.ResolvePieces(pctx, d.Size, plan.complete, m.dhtGetRaw, m.fetch.PieceString)
		cancel()
		if pieces != nil && len(pieces) != piecestore.NumPieces(d.Size)*wire.PieceHashLen {
			pieces = nil
		}
		plan.mirrorDelay = max(plan.mirrorDelay-clock.Since(m.clk, t), 0)
	}
	mirror := f.req.Mirror
	mirror.Mirror = true
	var sink fetch.Sink = f.w
	if f.req.Pace != nil {
		sink = pacedSink{f.w, f, ctx}
	}
	job := &fetch.Job{
		Size:        d.Size,
		Pieces:      pieces,
		Peers:       plan.peers,
		Mirror:      &mirror,
		MirrorDelay: plan.mirrorDelay,
		MinPeers:    m.cfg.MinPeers,
		Herd:        plan.follow,
		Sink:        sink,
	}
	res, err := m.fetch.Fetch(ctx, job)
	f.account(res)
	if err != nil {
		// The store checks the whole-file hash as the last byte arrives, so a
		// mismatch usually surfaces as the sink refusing the write.
		if errors.Is(err, piecestore.ErrMismatch) || errors.Is(f.w.Err(), piecestore.ErrMismatch) {
			f.mismatch(job, res)
			return piecestore.Info{}, false
		}
		f.fail(fmt.Errorf("download from %s failed: %w", mirror.Addr, err))
		if m.ctx.Err() != nil {
			// The daemon is stopping: keep what arrived, for the next start.
			f.w.Suspend()
		} else {
			f.w.Abort()
		}
		m.log.Warn("download failed", "path", f.req.Path, "err", err, "took", clock.Since(m.clk, t0).Round(time.Millisecond))
		return piecestore.Info{}, false
	}
	info, err := f.w.Commit()
	if err != nil {
		if errors.Is(err, piecestore.ErrMismatch) {
			f.mismatch(job, res)
			return piecestore.Info{}, false
		}
		f.fail(fmt.Errorf("the download could not be stored: %w", err))
		m.log.Warn("download could not be stored", "path", f.req.Path, "err", err)
		return piecestore.Info{}, false
	}
	m.log.Info("download verified", "path", f.req.Path, "size", d.Size, "role", f.Role(), "mirror", res.MirrorBytes, "peers", res.PeerBytes,
		"wasted", res.Wasted, "sources", len(res.BytesBySource), "pieces_known", pieces != nil, "took", clock.Since(m.clk, t0).Round(time.Millisecond))
	if f.req.Path != "" {
		_ = m.store.AddPath(&info, f.req.Path)
	}
	if f.refetch {
		m.settleMismatch(f.key, &info)
	}
	if f.req.AfterCommit != nil {
		f.req.AfterCommit(info)
	}
	return info, true
}

// minResolve is the least time piece hashes may take to resolve when the
// mirror would not wait for the peers at all.
const minResolve = 250 * time.Millisecond

// account records where the bytes came from.
func (f *Flight) account(res fetch.Result) {
	m := f.m
	m.Counters.MirrorBytes.Add(res.MirrorBytes)
	m.Counters.PeerBytes.Add(res.PeerBytes)
	m.Counters.WastedBytes.Add(res.Wasted)
	src := SourceMirror
	switch {
	case res.PeerBytes > 0 && res.MirrorBytes > 0:
		src = SourceMixed
	case res.PeerBytes > 0:
		src = SourcePeers
	}
	f.mu.Lock()
	f.src = src
	f.mu.Unlock()
}

// describeSources names where a download's bytes came from, for messages.
func describeSources(res fetch.Result) string {
	switch {
	case res.PeerBytes > 0 && res.MirrorBytes > 0:
		return "peers and the mirror"
	case res.PeerBytes > 0:
		return "peers"
	}
	return "the mirror"
}

// pacedSink asks Request.Pace before each write, unless apt streams from the
// Flight (then it waits for the bytes, and the download runs at full speed).
type pacedSink struct {
	*piecestore.Writer
	f   *Flight
	ctx context.Context
}

func (p pacedSink) pace(n int) error {
	if p.f.Readers() > 0 {
		return nil
	}
	return p.f.req.Pace(p.ctx, n)
}

func (p pacedSink) WriteAt(b []byte, off int64) (int, error) {
	if err := p.pace(len(b)); err != nil {
		return 0, err
	}
	return p.Writer.WriteAt(b, off)
}

func (p pacedSink) WritePiece(i int, data []byte, sum *[20]byte) error {
	if err := p.pace(len(data)); err != nil {
		return err
	}
	return p.Writer.WritePiece(i, data, sum)
}
