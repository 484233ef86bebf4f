package fetch

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"
)

type pstate uint8

const (
	missing pstate = iota // nobody is fetching it
	active                // one or two sources are fetching it
	done                  // verified and handed to the Sink (or being written)
)

type piece struct {
	state   pstate
	holders [2]*source // the sources fetching it; [1] only in endgame
	since   time.Time  // when the first holder asked
	expect  float64    // seconds the first holder was expected to take (LoadAware), 0 if unknown
	// streamer is the mirror stream once it has appended bytes of this piece
	// with WriteAt: from then on only the stream may finish it.
	streamer *source
}

// download is the state of one Fetch. Fields without a comment are guarded by mu.
type download struct {
	d   *Downloader
	job *Job
	ctx context.Context
	n   int

	mu       sync.Mutex
	cond     *sync.Cond // broadcast on every change of pieces, sources or finished
	pieces   []piece
	next     int // no missing piece below next
	left     int // pieces not done
	sources  []*source
	byKey    map[string]*source
	mirror   *source  // the mirror source once started
	standby  []Source // peers beyond MaxPeers, used as others drop out
	noPeers  bool     // the peer channel has closed: no new source will come
	finished bool
	err      error
	banned   []string
	suspects []string // sent pieces failing their hash: banned if the download succeeds
	supplier []string

	isDone   []atomic.Bool // per piece, readable without mu (endgame losers poll it)
	over     atomic.Bool   // finished, readable without mu
	peerRecv atomic.Int64  // peer body bytes received
	wasted   atomic.Int64

	// gate: Sink writes hold it shared; Fetch takes it exclusively before it
	// returns, so no write can land after that.
	gate   sync.RWMutex
	closed bool

	doneCh chan struct{} // closed when finished
	wake   chan struct{} // nudges the supervisor (a source was dropped)
}

func newDownload(ctx context.Context, d *Downloader, job *Job, n int) *download {
	dl := &download{
		d:        d,
		job:      job,
		ctx:      ctx,
		n:        n,
		pieces:   make([]piece, n),
		left:     n,
		byKey:    make(map[string]*source),
		supplier: make([]string, n),
		isDone:   make([]atomic.Bool, n),
		doneCh:   make(chan struct{}),
		wake:     make(chan struct{}, 1),
	}
	dl.cond = sync.NewCond(&dl.mu)
	return dl
}

func (dl *download) pieceDone(i int) bool { return dl.isDone[i].Load() || dl.over.Load() }

// slowCheck is how often the supervisor looks at the peers' throughput.
const slowCheck = 250 * time.Millisecond

// run is the supervisor: it takes peers from the channel, starts the mirror
// when the rules say so, and notices when nothing can succeed any more.
func (dl *download) run() (Result, error) {
	job := dl.job
	dl.mu.Lock()
	for i := range dl.n { // resume: whatever the Sink already holds
		if job.Sink.HavePiece(i) {
			dl.pieces[i].state = done
			dl.isDone[i].Store(true)
			dl.left--
		}
	}
	if dl.left == 0 {
		dl.finishLocked(nil)
	}
	dl.mu.Unlock()

	peers := job.Peers
	peersOpen := peers != nil
	var delay <-chan time.Time
	delayPassed := !peersOpen
	if peersOpen && job.Mirror != nil {
		if job.MirrorDelay <= 0 {
			delayPassed = true
		} else {
			t := dl.d.clk.NewTimer(job.MirrorDelay)
			defer t.Stop()
			delay = t.C()
		}
	}
	tick := dl.d.clk.NewTimer(slowCheck)
	defer tick.Stop()
	rateAt, rateBytes := dl.d.clk.Now(), int64(0)
	slow := false
	// The peers the lookup has already found join together, before any of
	// them picks a piece: added one at a time, the first one's workers would
	// take the first pieces (all of a small file) before the ranking could
	// compare it with the others.
	dl.mu.Lock()
drain:
	for peersOpen {
		select {
		case src, ok := <-peers:
			if !ok {
				peers, peersOpen = nil, false
				break drain
			}
			dl.addPeerLocked(src)
		default:
			break drain
		}
	}
	dl.mu.Unlock()
	dl.evaluate(peersOpen, delayPassed, slow)
loop:
	for {
		select {
		case <-dl.doneCh:
			break loop
		case <-dl.ctx.Done():
			dl.finish(fmt.Errorf("fetch: %w", dl.ctx.Err()))
			break loop
		case src, ok := <-peers:
			if !ok {
				peers, peersOpen = nil, false
			} else {
				dl.addPeer(src)
			}
		case <-delay:
			delayPassed, delay = true, nil
			rateAt, rateBytes = dl.d.clk.Now(), dl.peerRecv.Load()
		case now := <-tick.C():
			tick.Reset(slowCheck)
			dl.mu.Lock()
			dl.sampleRatesLocked(slowCheck.Seconds())
			if dl.d.cfg.LoadAware {
				// Estimates move with time alone (a probe that stays
				// silent, a back-off that ends): sources that left a piece
				// to another look again.
				dl.cond.Broadcast()
			}
			dl.mu.Unlock()
			// Slow peers: measured over windows of at least a second, and only
			// once the race deadline has passed.
			if el := now.Sub(rateAt); delayPassed && el >= time.Second {
				b := dl.peerRecv.Load()
				slow = float64(b-rateBytes)/el.Seconds() < float64(dl.d.cfg.SlowPeerRate)
				rateAt, rateBytes = now, b
			}
		case <-dl.wake:
		}
		dl.evaluate(peersOpen, delayPassed, slow)
	}

	dl.gate.Lock()
	dl.closed = true
	dl.gate.Unlock()

	dl.mu.Lock()
	defer dl.mu.Unlock()
	if dl.err == nil { // the piece hashes proved right: the suspects lied
		for _, k := range dl.suspects {
			dl.d.Ban(k, dl.d.clk.Now().Add(dl.d.cfg.BanDuration))
			dl.banned = append(dl.banned, k)
		}
	}
	res := Result{
		BytesBySource: make(map[string]int64, len(dl.sources)),
		Banned:        slices.Clone(dl.banned),
		PieceSources:  slices.Clone(dl.supplier),
		Wasted:        dl.wasted.Load(),
	}
	for _, s := range dl.sources {
		if s.delivered == 0 {
			continue
		}
		res.BytesBySource[s.key] += s.delivered
		if s.mirror {
			res.MirrorBytes += s.delivered
		} else {
			res.PeerBytes += s.delivered
		}
	}
	return res, dl.err
}

// evaluate starts the mirror when it is due and fails the download when no
// source is left and none can come.
func (dl *download) evaluate(peersOpen, delayPassed, slow bool) {
	dl.mu.Lock()
	defer dl.mu.Unlock()
	if dl.finished {
		return
	}
	dl.noPeers = !peersOpen
	live := dl.livePeersLocked()
	keep := dl.standby[:0]
	for _, src := range dl.standby {
		switch {
		case dl.byKey[src.Addr] != nil || dl.d.Banned(src.Addr):
		case live >= dl.d.cfg.MaxPeers || src.Partial && dl.livePartialLocked() > 0:
			keep = append(keep, src)
		default:
			dl.addSourceLocked(dl.d.newSource(src, false), false)
			live++
		}
	}
	clear(dl.standby[len(keep):])
	dl.standby = keep
	minPeers := max(dl.job.MinPeers, 1)
	if dl.job.Herd {
		minPeers, slow = 1, false
	}
	m := dl.job.Mirror
	if dl.mirror == nil && m != nil && !dl.d.Banned(m.Addr) {
		// Every peer found so far has failed (a stale DHT value: stopped, or
		// restarted on another port) and nothing came from them: the mirror
		// starts now rather than when the lookup or the delay ends. Peers
		// the lookup still finds join as sources.
		allFailed := live == 0 && len(dl.sources) > 0 && dl.peerRecv.Load() == 0
		start := !peersOpen && live < minPeers || allFailed ||
			delayPassed && (live < minPeers || dl.peerRecv.Load() == 0 || slow)
		if start {
			s := dl.d.newSource(*m, true)
			dl.mirror = s
			dl.addSourceLocked(s, live == 0)
		}
	}
	mirrorGone := m == nil || dl.mirror != nil && dl.mirror.dropped || dl.mirror == nil && dl.d.Banned(m.Addr)
	if live == 0 && !peersOpen && mirrorGone {
		var last error
		for _, s := range dl.sources {
			if s.lastErr != nil {
				last = s.lastErr
			}
		}
		if last != nil {
			dl.finishLocked(fmt.Errorf("%w (last error: %v)", ErrNoSources, last))
		} else {
			dl.finishLocked(ErrNoSources)
		}
	}
}

func (dl *download) addPeer(src Source) {
	dl.mu.Lock()
	dl.addPeerLocked(src)
	dl.mu.Unlock()
}

func (dl *download) addPeerLocked(src Source) {
	if src.Addr == "" || dl.d.Banned(src.Addr) || dl.d.Unreachable(src.Addr) {
		return
	}
	if dl.finished || dl.byKey[src.Addr] != nil {
		return
	}
	// One partial peer streams at a time: the others are its stand-ins (a
	// crowd's followers each follow one earlier download, not all of them).
	if dl.livePeersLocked() >= dl.d.cfg.MaxPeers || src.Partial && dl.livePartialLocked() > 0 {
		if len(dl.standby) < maxStandby && !slices.ContainsFunc(dl.standby, func(x Source) bool { return x.Addr == src.Addr }) {
			dl.standby = append(dl.standby, src)
		}
		return
	}
	dl.addSourceLocked(dl.d.newSource(src, false), false)
}

// maxStandby bounds the stand-in peers one download remembers.
const maxStandby = 256

func (dl *download) livePartialLocked() int {
	live := 0
	for _, s := range dl.sources {
		if s.partial && !s.dropped {
			live++
		}
	}
	return live
}

func (dl *download) livePeersLocked() int {
	live := 0
	for _, s := range dl.sources {
		if !s.mirror && !s.dropped {
			live++
		}
	}
	return live
}

// addSourceLocked registers s and starts its workers: one stream for a mirror
// that is the only source and for a peer still downloading the file (it can
// only send what it has, as it gets it: one request that streams holds one of
// its upload slots, where Depth piece requests would hold Depth, mostly
// waiting), Depth piece workers otherwise.
func (dl *download) addSourceLocked(s *source, stream bool) {
	dl.sources = append(dl.sources, s)
	dl.byKey[s.key] = s
	if s.probing && !s.partial {
		s.headProbe, s.probeAt = true, dl.d.clk.Now()
		go dl.probeHead(s)
	} else {
		s.probing = s.probing && !s.partial
	}
	if stream || s.partial {
		s.streaming = true
		go dl.streamWorker(s)
		return
	}
	for range dl.d.cfg.Depth {
		go dl.worker(s)
	}
	dl.cond.Broadcast()
}

func (dl *download) finish(err error) {
	dl.mu.Lock()
	dl.finishLocked(err)
	dl.mu.Unlock()
}

func (dl *download) finishLocked(err error) {
	if dl.finished {
		return
	}
	dl.finished = true
	dl.err = err
	dl.over.Store(true)
	close(dl.doneCh)
	dl.cond.Broadcast()
}

// busyLocked leaves s alone for the time its 503 asked: it keeps its place
// (a busy peer is not a bad one) and its requests wait (waitNotBusy); the
// supervisor brings in the mirror meanwhile by its usual rules.
func (dl *download) busyLocked(s *source, b *busy) {
	until := dl.d.clk.Now().Add(b.d)
	if until.After(s.busyUntil) {
		s.busyUntil = until
		dl.d.cfg.Logger.Debug("fetch: source busy", "source", s.key, "for", b.d)
	}
	dl.nudge()
}

// waitNotBusy waits until s may be asked again; false if the download ended
// meanwhile.
func (dl *download) waitNotBusy(s *source) bool {
	dl.mu.Lock()
	wait := s.busyUntil.Sub(dl.d.clk.Now())
	dl.mu.Unlock()
	if wait <= 0 {
		return true
	}
	t := dl.d.clk.NewTimer(wait)
	defer t.Stop()
	select {
	case <-t.C():
		return true
	case <-dl.doneCh:
		return false
	}
}

func (dl *download) nudge() {
	select {
	case dl.wake <- struct{}{}:
	default:
	}
}

// worker runs requests for one source until the download ends or the source
// is dropped.
func (dl *download) worker(s *source) {
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	sum := new([20]byte) // one per worker: it escapes into the Sink call
	for {
		if !dl.waitNotBusy(s) {
			return
		}
		i, ok := dl.claim(s)
		if !ok {
			return
		}
		t0 := dl.d.clk.Now()
		data, hdr, err := dl.getPiece(s, i, *bp, sum, t0)
		dl.complete(s, i, data, sum, err, t0, hdr)
	}
}

// claim picks the next piece for s, waiting while there is none for it.
func (dl *download) claim(s *source) (int, bool) {
	dl.mu.Lock()
	defer dl.mu.Unlock()
	for {
		if dl.finished || s.dropped || s.noRange {
			return 0, false
		}
		if s.inflight < dl.d.cfg.Depth {
			if i := dl.pickMissing(s); i >= 0 {
				return i, true
			}
			if i := dl.pickEndgame(s); i >= 0 {
				return i, true
			}
		}
		dl.cond.Wait()
	}
}

func (dl *download) hold(s *source, i, slot int) {
	p := &dl.pieces[i]
	p.holders[slot] = s
	if slot == 0 {
		p.state = active
		p.since, p.expect = dl.d.clk.Now(), 0
	}
	s.inflight++
}

// pickMissing returns the lowest unrequested piece, unless a clearly better
// source has a free slot to take it (by speed), or would finish it clearly
// sooner even after waiting for a slot (Config.LoadAware: source.go,
// "Load-aware ranking").
func (dl *download) pickMissing(s *source) int {
	for dl.next < dl.n && dl.pieces[dl.next].state != missing {
		dl.next++
	}
	if dl.next >= dl.n {
		return -1
	}
	expect := 0.0
	if dl.d.cfg.LoadAware {
		if s.probing && (s.inflight > 0 || s.headProbe) {
			return -1
		}
		now := dl.d.clk.Now()
		if s.probing {
			s.probeAt = now
		}
		depth := dl.d.cfg.Depth
		dl.refreshStaleLocked(s, now)
		mine := dl.ectLocked(s, now, depth)
		best, perSec := math.Inf(1), 0.0
		for _, o := range dl.sources {
			if o == s || o.dropped || o.streaming || o.noRange {
				continue
			}
			dl.refreshStaleLocked(o, now)
			e := dl.ectLocked(o, now, depth)
			best = min(best, e)
			perSec += float64(depth) / e
		}
		// Sooner than the others would do it, or sooner than they would
		// finish every piece still unrequested (this one included) without
		// s: a slow source helps in the bulk of a file, not at its end.
		if mine > rankMargin*best && mine*perSec > float64(dl.n-dl.next) {
			return -1
		}
		expect = mine
	} else {
		w := dl.d.cfg.MirrorWeight
		mine := s.score(w)
		for _, o := range dl.sources {
			if o != s && !o.dropped && !o.streaming && !o.noRange && o.inflight < dl.d.cfg.Depth && o.score(w) > rankMargin*mine {
				return -1
			}
		}
	}
	i := dl.next
	dl.hold(s, i, 0)
	dl.pieces[i].expect = expect
	dl.next++
	return i
}

// refreshStaleLocked asks s HEAD for a fresh load header when its last one
// has gone stale (source.go, "Load-aware ranking").
func (dl *download) refreshStaleLocked(s *source, now time.Time) {
	if !s.mirror && !s.probing && !s.partial && dl.d.staleLoad(s.key, now) {
		go dl.refreshLoad(s)
	}
}

// pickEndgame gives an idle source a second copy of a piece another source
// holds, only near the end (no piece is left that nobody fetches) and only
// when it is overdue: the idle source is expected to finish it in less than
// half the time its holder still needs at the holder's current rate (a
// stalled holder needs forever). Of those, the one the holder needs longest
// for. A copy that loses is wasted bytes, so honest, merely busy holders are
// left alone. Single-piece files are not duplicated among peers (one GET from
// the best source, the next on failure); the mirror may still take one over a
// stalled peer. A partial peer streams only and is never given a copy. With
// LoadAware a piece is overdue only once it has taken rankMargin times what
// its holder was expected to take when it was given the piece.
func (dl *download) pickEndgame(s *source) int {
	if s.inflight > 0 || dl.n == 1 && !s.mirror || s.partial || dl.next < dl.n {
		return -1
	}
	now := dl.d.clk.Now()
	mine := s.lat + PieceSize/s.rate // seconds for a whole piece from s
	if dl.d.cfg.LoadAware {
		mine = dl.ectLocked(s, now, dl.d.cfg.Depth)
	}
	best, bestLeft := -1, 0.0
	for i := range dl.pieces {
		p := &dl.pieces[i]
		if p.state != active || p.holders[1] != nil || p.holders[0] == s || p.holders[0] == nil || p.streamer != nil {
			continue
		}
		if dl.d.cfg.LoadAware && now.Sub(p.since).Seconds() < rankMargin*p.expect {
			// Not overdue: its holder is as fast as its load said. (Its
			// rate in this download is measured only every slowCheck, so a
			// request that just started would look stalled.)
			continue
		}
		left := dl.timeLeftLocked(p.holders[0], i, now)
		if left > 2*mine && left > bestLeft {
			best, bestLeft = i, left
		}
	}
	if best >= 0 {
		dl.hold(s, best, 1)
	}
	return best
}

// timeLeftLocked estimates the seconds holder h still needs for piece i at
// its current rate: its requests share its rate; a stream reaches i after
// the pieces before it. +Inf for a holder that has received nothing lately.
func (dl *download) timeLeftLocked(h *source, i int, now time.Time) float64 {
	if h.liveRate <= 0 {
		return math.Inf(1)
	}
	end := float64(int64(i)*PieceSize + pieceLen(i, dl.job.Size))
	if h.streaming {
		return (end - float64(dl.job.Sink.Contiguous())) / h.liveRate
	}
	perRequest := h.liveRate / float64(max(h.inflight, 1))
	elapsed := now.Sub(dl.pieces[i].since).Seconds()
	return float64(pieceLen(i, dl.job.Size))/perRequest - elapsed
}

// sampleRatesLocked updates every source's current receive rate from the
// bytes it received since the last sample, dt seconds ago.
func (dl *download) sampleRatesLocked(dt float64) {
	for _, s := range dl.sources {
		got := s.recv.Load()
		inst := float64(got-s.recvSampled) / dt
		s.recvSampled = got
		s.liveRate += 0.5 * (inst - s.liveRate)
	}
}

// release removes s from piece i's holders; a piece nobody holds is missing again.
func (dl *download) releaseLocked(s *source, i int) {
	p := &dl.pieces[i]
	switch s {
	case p.holders[0]:
		p.holders[0], p.holders[1] = p.holders[1], nil
	case p.holders[1]:
		p.holders[1] = nil
	default:
		return
	}
	if p.streamer == s {
		p.streamer = nil
	}
	if p.state == active && p.holders[0] == nil {
		p.state = missing
		if i < dl.next {
			dl.next = i
		}
	}
}

// complete takes the outcome of one piece request.
func (dl *download) complete(s *source, i int, data []byte, sum *[20]byte, err error, t0, hdr time.Time) {
	dl.mu.Lock()
	s.inflight--
	s.probing = false
	p := &dl.pieces[i]
	held := p.holders[0] == s || p.holders[1] == s
	if err != nil || !held || s.dropped || dl.finished || p.state == done || p.streamer != nil && p.streamer != s {
		if held {
			dl.releaseLocked(s, i)
		}
		var b *busy
		switch {
		case err == nil:
			dl.wasted.Add(int64(len(data)))
		case errors.As(err, &b):
			dl.busyLocked(s, b)
		case !errors.Is(err, errLost) && !errors.Is(err, fasthttp.ErrNoFreeConns) && !dl.finished:
			// (no free connection: other downloads use this source; not its fault)
			dl.sourceErrorLocked(s, err)
		}
		dl.cond.Broadcast()
		dl.mu.Unlock()
		return
	}
	// This copy wins: the other holder, if any, sees isDone and stops.
	p.state = done
	p.holders = [2]*source{}
	dl.isDone[i].Store(true)
	dl.supplier[i] = s.key
	s.errs = 0
	s.observe(int64(len(data)), t0, hdr, dl.d.clk.Now())
	rate, lat := s.rate, s.lat
	dl.mu.Unlock()
	dl.d.saveHistory(s, rate, lat)

	dl.gate.RLock()
	var werr error
	if !dl.closed {
		werr = dl.job.Sink.WritePiece(i, data, sum)
	}
	dl.gate.RUnlock()

	dl.mu.Lock()
	if werr != nil {
		dl.finishLocked(fmt.Errorf("%w: piece %d: %w", ErrSink, i, werr))
	} else if !dl.finished {
		s.delivered += int64(len(data))
		dl.left--
		if dl.left == 0 {
			dl.finishLocked(nil)
		}
	}
	dl.cond.Broadcast()
	dl.mu.Unlock()
}

// sourceErrorLocked records err against s: bad data drops (and, for peers,
// bans) at once; 404 drops; anything else drops after MaxErrors in a row.
func (dl *download) sourceErrorLocked(s *source, err error) {
	s.lastErr = err
	s.errs++
	log := dl.d.cfg.Logger
	switch {
	case s.mirror && errors.Is(err, errIgnoredRange):
		// Not malice, and the mirror is the last resort: stream it instead.
		s.errs--
		if !s.noRange {
			s.noRange = true
			s.streaming = true
			log.Debug("fetch: mirror ignores Range, streaming it", "mirror", s.key)
			go dl.streamWorker(s)
		}
	case errors.Is(err, errBadPiece), errors.Is(err, errIgnoredRange), errors.Is(err, errContentRange),
		errors.Is(err, errBodyLength), errors.Is(err, ErrMirrorPiece):
		log.Debug("fetch: dropping source for bad data", "source", s.key, "err", err)
		switch {
		case s.mirror:
		case errors.Is(err, errBadPiece):
			// Only as bad as the expected piece hashes are right: if every
			// source fails them, they are what is wrong (poisoned piece info),
			// and honest peers must not be banned for it. Decided at the end.
			dl.suspects = append(dl.suspects, s.key)
		default: // broke the protocol whatever the hashes
			dl.d.Ban(s.key, dl.d.clk.Now().Add(dl.d.cfg.BanDuration))
			dl.banned = append(dl.banned, s.key)
		}
		dl.dropLocked(s)
	case errors.Is(err, errNotFound):
		dl.dropLocked(s)
	case !s.mirror && dialFailed(err):
		// Not there (stopped, or a stale DHT value): no point in retrying it.
		if !s.dropped {
			dl.d.noteUnreachable(s.key)
			dl.dropLocked(s)
		}
	case s.errs >= dl.d.cfg.MaxErrors:
		log.Debug("fetch: dropping source after repeated errors", "source", s.key, "err", err)
		dl.dropLocked(s)
	}
}

// dropLocked takes s out of this download and frees the pieces it holds.
func (dl *download) dropLocked(s *source) {
	if s.dropped {
		return
	}
	s.dropped = true
	for i := range dl.pieces {
		dl.releaseLocked(s, i)
	}
	dl.cond.Broadcast()
	dl.nudge()
}
