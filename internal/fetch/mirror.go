package fetch

import (
	"crypto/sha1"
	"errors"
	"fmt"
	"hash"
	"io"
	"time"

	"github.com/valyala/fasthttp"
)

// The mirror stream: one GET from the first missing byte to the end, appended
// to the Sink with WriteAt as bytes arrive, so apt is fed before a whole piece
// is in. It claims pieces one by one as it reaches them; a piece the stream
// has started writing belongs to it. When it reaches a piece someone else has
// finished or fully holds, a mirror that honours Range stops streaming and
// turns into Depth ordinary piece workers; a mirror that ignores Range reads
// through (the bytes are discarded) since a new request would start at 0 again.

// errYield ends a stream so that the mirror continues in piece mode.
var errYield = errors.New("fetch: stream yields to piece mode")

// errGap restarts a stream that waits for a piece nobody is fetching.
var errGap = errors.New("fetch: stream restarts at an earlier gap")

// streamState is the stream's running piece hash, kept across reconnects so a
// piece interrupted midway can still be verified.
type streamState struct {
	h     hash.Hash
	k     int   // piece the hash covers
	hpos  int64 // file offset the hash has reached
	valid bool  // the hash covers piece k from its start
}

func (dl *download) streamWorker(s *source) {
	st := &streamState{h: sha1.New(), k: -1}
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	for {
		if !dl.waitNotBusy(s) {
			return
		}
		pos, end, yield, ok := dl.streamStart(s)
		if !ok {
			return
		}
		err := errYield
		if !yield {
			err = dl.streamOnce(s, st, pos, end, *bp)
			dl.mu.Lock()
			dl.unreserveLocked(s)
			dl.mu.Unlock()
		}
		if err == nil || errors.Is(err, errLost) || errors.Is(err, errGap) || s.partial && errors.Is(err, errYield) {
			// (a partial peer never turns to piece mode: it streams again
			// from the next piece it can take)
			continue
		}
		var b *busy
		if errors.As(err, &b) {
			dl.mu.Lock()
			dl.busyLocked(s, b)
			dl.mu.Unlock()
			continue
		}
		dl.mu.Lock()
		if errors.Is(err, errYield) && !s.noRange {
			s.streaming = false
			if !dl.finished && !s.dropped {
				for range dl.d.cfg.Depth {
					go dl.worker(s)
				}
			}
			dl.cond.Broadcast()
			dl.mu.Unlock()
			return
		}
		if !errors.Is(err, errYield) && !dl.finished {
			if errors.Is(err, ErrMirrorPiece) || errors.Is(err, ErrSink) {
				// Unverified bytes are already in the Sink: nothing can fix that here.
				dl.finishLocked(err)
			} else {
				dl.sourceErrorLocked(s, err)
			}
		}
		dl.mu.Unlock()
	}
}

// A streaming request asks for about streamAhead of data at the stream's
// current rate, between minStreamSpan and maxStreamSpan pieces. The stream
// reserves those pieces, so no other source starts on them while it runs,
// and the request is bounded, so a stream cut early (a piece taken over, a
// gap behind it) leaves little in flight that nobody wants, while the pieces
// beyond stay free for other sources. Each span costs one round trip more
// than an open-ended stream: at 2 s of data per span, a few percent. When no
// other source is left or can come, the span runs to the end of the file.
const (
	streamAhead   = 2 * time.Second
	minStreamSpan = 8
	maxStreamSpan = 64
)

// streamSpan is how many pieces s's next streaming request reserves.
func streamSpan(s *source) int {
	rate := max(s.liveRate, s.rate)
	n := int(rate * streamAhead.Seconds() / PieceSize)
	return min(max(n, minStreamSpan), maxStreamSpan)
}

// streamStart waits for a place to stream from and returns its file offset
// and the end of the span it reserved; yield means a Range-capable mirror
// should serve pieces instead.
func (dl *download) streamStart(s *source) (pos, end int64, yield, ok bool) {
	dl.mu.Lock()
	defer dl.mu.Unlock()
	for {
		if dl.finished || s.dropped {
			s.streaming = false
			dl.cond.Broadcast()
			return 0, 0, false, false
		}
		k := -1
		for i := 0; i < dl.n; i++ {
			if dl.streamCanTake(s, i) {
				k = i
				break
			}
		}
		// Appends only land at the Sink's contiguous end: a gap before k that
		// others are still fetching is better served in piece mode.
		if k >= 0 && (s.noRange || dl.allDoneBelow(k)) {
			pos := int64(k) * PieceSize
			c := dl.job.Sink.Contiguous()
			if c > pos && c < pos+pieceLen(k, dl.job.Size) {
				// The Sink already has the piece's first bytes (our own
				// interrupted stream, or a download resumed after a
				// restart): go on from there.
				pos = c
			}
			return pos, dl.reserveLocked(s, k), false, true
		}
		if !s.noRange && !s.partial {
			return 0, 0, true, true
		}
		// Nothing this stream can take now (a partial peer waits for the
		// pieces others hold to be done or given back).
		dl.cond.Wait()
	}
}

// reserveLocked holds the pieces from k on that nobody else holds, up to
// streamSpan of them, for s's stream (without request slots, as the stream's
// current piece), and returns the file offset where they end. A mirror that
// ignores Range sends everything to the end anyway.
func (dl *download) reserveLocked(s *source, k int) int64 {
	if s.noRange {
		return dl.job.Size
	}
	now := dl.d.clk.Now()
	span := streamSpan(s)
	if dl.noPeers && len(dl.standby) == 0 && dl.livePeersLocked() == 0 && !s.partial {
		// No other source is left or can come (the lookup is over and found
		// nobody usable): one request to the end. Each further span would
		// cost a round trip, and often a cold pooled connection (on a
		// 40 ms WAN link the spans held a lone daemon at ~73 of 88 Mbit/s).
		span = dl.n
	}
	i := k
	for ; i < dl.n && i-k < span; i++ {
		p := &dl.pieces[i]
		switch {
		case p.streamer == s || p.holders[0] == s:
		case p.state == missing:
			p.state, p.holders[0], p.since, p.expect = active, s, now, 0
		default:
			return int64(i) * PieceSize
		}
	}
	return min(int64(i)*PieceSize, dl.job.Size)
}

// unreserveLocked gives back the pieces s's stream reserved and did not
// reach (its current piece stays its own, to resume in).
func (dl *download) unreserveLocked(s *source) {
	for i := range dl.pieces {
		if p := &dl.pieces[i]; p.state == active && p.holders[0] == s && p.streamer != s {
			dl.releaseLocked(s, i)
		}
	}
	dl.cond.Broadcast()
}

func (dl *download) allDoneBelow(k int) bool {
	for i := range k {
		if dl.pieces[i].state != done {
			return false
		}
	}
	return true
}

// streamCanTake: piece i is not done and the stream may write it.
func (dl *download) streamCanTake(s *source, i int) bool {
	p := &dl.pieces[i]
	switch {
	case p.state == done:
		return false
	case p.streamer == s, p.holders[0] == s && p.holders[1] == nil:
		return true // ours, or reserved by us and not duplicated
	case p.streamer != nil:
		return false
	case p.state == missing:
		return true
	}
	// Held by a peer: a Range-capable mirror leaves it (and yields to piece
	// mode); one that ignores Range reads through it anyway, so it may as well
	// race for it.
	return s.noRange && p.holders[1] == nil
}

// enterPiece is called when the stream reaches the start (or resume point) of
// piece k. It returns true if the stream writes k, false if it must skip it.
// Before the first write it waits until the Sink's contiguous prefix reaches
// the piece, since appends are only accepted there.
func (dl *download) enterPiece(s *source, k int, pos int64) (bool, error) {
	dl.mu.Lock()
	defer dl.mu.Unlock()
	if dl.finished || s.dropped {
		return false, errLost
	}
	if !dl.streamCanTake(s, k) {
		return false, nil
	}
	p := &dl.pieces[k]
	if p.streamer != s { // the stream holds its piece without a request slot
		switch {
		case p.state == missing:
			p.state, p.holders[0], p.since, p.expect = active, s, dl.d.clk.Now(), 0
		case p.holders[0] != s:
			p.holders[1] = s
		}
		p.streamer = s
	}
	// Its bytes are the stream's from here on: if the whole file then fails
	// its hash, this is who sent them.
	dl.supplier[k] = s.key
	for dl.job.Sink.Contiguous() < pos {
		if dl.finished || s.dropped {
			return false, errLost
		}
		// A piece before us went back to the queue (its source failed) and
		// nobody may be left to fetch it but us: start over from there.
		for i := range k {
			if dl.pieces[i].state == missing {
				return false, errGap
			}
		}
		dl.cond.Wait()
	}
	if c := dl.job.Sink.Contiguous(); c != pos {
		return false, fmt.Errorf("%w: stream at %d but the sink's contiguous end is %d", ErrSink, pos, c)
	}
	return true, nil
}

// gatherMax bounds the bytes a stream gathers into one write.
const gatherMax = 256 << 10

// streamOnce runs one streaming request for the file's bytes [pos, end).
func (dl *download) streamOnce(s *source, st *streamState, pos, end int64, buf []byte) error {
	size := dl.job.Size
	req := fasthttp.AcquireRequest()
	resp := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	s.setupRequest(req)
	switch {
	case s.noRange:
	case end < size:
		req.Header.SetByteRange(int(pos), int(end-1))
	case pos > 0:
		req.Header.SetByteRange(int(pos), -1)
	}
	if err := s.hc.Do(req, resp); err != nil {
		return fmt.Errorf("fetch: %s: %w", s.key, err)
	}
	defer resp.CloseBodyStream() //nolint:errcheck // discards the connection if the body was not read to its end
	skip := int64(0)             // leading bytes the mirror resends
	switch st := resp.StatusCode(); st {
	case fasthttp.StatusOK:
		skip = pos
		if (pos > 0 || end < size) && !s.noRange {
			if !s.mirror {
				return fmt.Errorf("%w: stream of %d-%d", errIgnoredRange, pos, end-1)
			}
			dl.mu.Lock()
			s.noRange = true
			dl.mu.Unlock()
		}
		end = size
		if cl := resp.Header.ContentLength(); cl >= 0 && int64(cl) != size {
			return fmt.Errorf("%w: %s sent %d bytes, the index says %d", errBodyLength, s.key, cl, size)
		}
	case fasthttp.StatusPartialContent:
		a, b, total, ok := parseContentRange(resp.Header.Peek(fasthttp.HeaderContentRange))
		if !ok || a != pos || b != end-1 || total != size {
			return fmt.Errorf("%w: asked %d-%d/%d, got %q", errContentRange, pos, end-1, size, resp.Header.Peek(fasthttp.HeaderContentRange))
		}
	case fasthttp.StatusNotFound:
		return errNotFound
	case fasthttp.StatusServiceUnavailable:
		if !s.mirror {
			return busyError(resp)
		}
		return fmt.Errorf("%w %d from %s", errStatus, st, s.key)
	default:
		return fmt.Errorf("%w %d from %s", errStatus, st, s.key)
	}
	body := resp.BodyStream()
	if body == nil {
		return fmt.Errorf("%w: no body", errBodyLength)
	}
	// cur is the file offset of the next byte from the body; k the piece it
	// falls in; writing says whether the stream owns piece k.
	cur := pos - skip
	k, lastDone := -1, -1
	writing := false
	conn := responseConn(resp)
	got := 0 // bytes read into buf from cur on, not yet handed on
	for cur < end {
		// Bytes are handed on (written, visible to readers of the file) as
		// soon as the socket has nothing more, but what has already arrived
		// is gathered into one write, up to gatherMax and ending on a
		// gatherMax boundary of the file: a file that came in one burst is
		// written in one piece, which the page cache then holds in large
		// folios, and serving it hot costs less. (Over TLS, or with chunked
		// framing, the queued bytes may be part of a record or of a chunk
		// header whose rest is still on its way: the gathered bytes then
		// wait with that read for it, which the sender has already sent.)
		want := min(int64(len(buf)), end-cur, gatherMax-cur%gatherMax)
		m, rerr := body.Read(buf[got:want])
		s.noteRecv(dl, m)
		got += m
		if rerr == nil && m > 0 && int64(got) < want && conn.queued() {
			continue
		}
		data := buf[:got]
		got = 0
		for len(data) > 0 {
			if cur < pos { // resent prefix of a mirror that ignores Range
				d := min(int64(len(data)), pos-cur)
				data, cur = data[d:], cur+d
				dl.wasted.Add(d)
				continue
			}
			pk := int(cur / PieceSize)
			pieceEnd := int64(pk)*PieceSize + pieceLen(pk, size)
			if pk != k {
				k = pk
				var err error
				if writing, err = dl.enterPiece(s, k, cur); err != nil {
					return err
				}
				if !writing && !s.noRange {
					return errYield
				}
				if writing {
					st.begin(k, cur)
				}
			}
			take := min(int64(len(data)), pieceEnd-cur)
			if writing {
				if dl.job.Pieces != nil {
					// Only to check against known piece hashes: without them
					// the store hashes the stream anyway, and a second SHA-1
					// pass here was a third of a cold fetch's CPU.
					st.write(data[:take], cur)
				}
				dl.gate.RLock()
				if dl.closed {
					dl.gate.RUnlock()
					return errLost
				}
				_, werr := dl.job.Sink.WriteAt(data[:take], cur)
				dl.gate.RUnlock()
				if werr != nil {
					return fmt.Errorf("%w: at %d: %w", ErrSink, cur, werr)
				}
				dl.mu.Lock()
				s.delivered += take
				dl.mu.Unlock()
			} else {
				dl.wasted.Add(take)
			}
			data, cur = data[take:], cur+take
			if writing && cur == pieceEnd {
				if cur == end {
					// The request's last piece is marked done after the
					// response has been read to its end and its connection
					// given back: the download may end with it, and the
					// next one should find the connection idle.
					lastDone = k
				} else if err := dl.streamPieceDone(s, st, k); err != nil {
					return err
				}
				writing = false
			}
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			return fmt.Errorf("fetch: %s at byte %d: %w", s.key, cur, rerr)
		}
		if cur < end && dl.over.Load() {
			// (at the end, read on to EOF below, so the connection is kept)
			return errLost
		}
	}
	if cur < end {
		return fmt.Errorf("%w: %s body ended at %d of %d", errBodyLength, s.key, cur, end)
	}
	// Read to EOF so the keep-alive connection goes back to the pool (apt
	// fetches many files from one mirror), and so a longer body is caught.
	var extra [1]byte
	if m, rerr := body.Read(extra[:]); m > 0 {
		return fmt.Errorf("%w: %s sent more than %d bytes", errBodyLength, s.key, end-(pos-skip))
	} else if rerr != nil && rerr != io.EOF {
		return fmt.Errorf("fetch: %s at the end: %w", s.key, rerr)
	}
	resp.CloseBodyStream() //nolint:errcheck // read to EOF: the connection goes back to the pool
	if lastDone >= 0 {
		return dl.streamPieceDone(s, st, lastDone)
	}
	return nil
}

func (st *streamState) begin(k int, cur int64) {
	if st.k == k && st.hpos == cur {
		return // resuming our own partial piece
	}
	st.h.Reset()
	st.k = k
	st.hpos = cur
	st.valid = cur == int64(k)*PieceSize
}

func (st *streamState) write(p []byte, cur int64) {
	if cur == st.hpos {
		st.h.Write(p)
		st.hpos += int64(len(p))
	} else {
		st.valid = false
	}
}

// streamPieceDone marks piece k done once the stream has written all of it.
func (dl *download) streamPieceDone(s *source, st *streamState, k int) error {
	if pc := dl.job.Pieces; pc != nil && st.valid && st.k == k {
		var sum [20]byte
		st.h.Sum(sum[:0])
		if [20]byte(pc[20*k:20*k+20]) != sum {
			return fmt.Errorf("%w: piece %d from %s", ErrMirrorPiece, k, s.key)
		}
	}
	st.k = -1
	dl.mu.Lock()
	defer dl.mu.Unlock()
	if dl.finished {
		return errLost
	}
	p := &dl.pieces[k]
	if p.state != done {
		p.state = done
		p.holders = [2]*source{}
		p.streamer = nil
		dl.isDone[k].Store(true)
		dl.supplier[k] = s.key
		dl.left--
		if dl.left == 0 {
			dl.finishLocked(nil)
		}
	}
	s.errs = 0
	dl.cond.Broadcast()
	return nil
}
