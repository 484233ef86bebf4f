package httpserve

import (
	"bufio"
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

const (
	// defaultWriteStallTimeout bounds one send step: a client that takes longer than this to accept
	// sendStep bytes (under ~35 KB/s) is cut off, so a reader that stopped reading cannot pin a
	// connection, an open file and an upload slot forever. It replaces the server's WriteTimeout for
	// file bodies, which would otherwise cut every long download over a modest link.
	// ServerConfig.WriteStallTimeout overrides it for connections from LimitListener.
	defaultWriteStallTimeout = 2 * time.Minute
	// sendStep is the largest span sent per step (one deadline renewal) when no rate limit applies.
	// It only matters for big files (a 512 KiB piece is one step); the kernel moves at most a socket
	// buffer per sendfile(2) call anyway, so the extra calls cost nothing measurable.
	sendStep = 4 << 20
	// smallBody is the size up to which a body is copied into the connection's write buffer with
	// pread (one write(2) for headers and body) instead of flush + sendfile (two syscalls).
	smallBody = 16 << 10
)

// ErrShortFile is returned by a body writer whose file ends before the promised Content-Length.
var ErrShortFile = errors.New("httpserve: file shorter than its announced size")

// sender sends spans of a file to a connection with sendfile, pacing them through a Throttle and
// keeping the write deadline moving while progress is made.
type sender struct {
	conn  net.Conn // for write deadlines; nil outside a server
	stall time.Duration
	raw   syscall.RawConn // conn's descriptor for direct sendfile; nil: go through ReadFrom
	thr   *Throttle
	peer  *peerBucket
	slot  bool          // holds a Throttle upload slot
	sent  *atomic.Int64 // bytes sent, for statistics; may be nil
	lr    io.LimitedReader
	rs    rawSend
	// rsWrite is rs.write bound once: a method value made per call would allocate.
	rsWrite func(uintptr) bool
	// deadline is set once this response moved the write deadline (cleared by done).
	deadline bool
}

// setConn records the connection a response goes to. The direct sendfile path needs its
// descriptor; connections from LimitListener carry a cached RawConn, others cost one allocation.
func (s *sender) setConn(c net.Conn) {
	s.conn = c
	s.stall = defaultWriteStallTimeout
	if lc, ok := c.(*tcpLimitConn); ok {
		s.stall = lc.l.stall
	}
	if !directSendfile {
		return
	}
	switch c := c.(type) {
	case *tcpLimitConn:
		s.raw = c.raw
	case syscall.Conn:
		if rc, err := c.SyscallConn(); err == nil {
			s.raw = rc
		}
	}
}

// sendDirect sends [off, off+n) of f with sendfile(2) at an explicit offset on the connection's own
// descriptor. handled = false means nothing was sent and the caller should use another path.
func (s *sender) sendDirect(f *os.File, off, n int64) (written int64, err error, handled bool) {
	if s.rsWrite == nil {
		s.rsWrite = s.rs.write
	}
	// The stall deadline is armed only if sendfile would block: a body that fits in the socket
	// buffer (most small files) costs no deadline timer operations.
	s.rs = rawSend{infd: int(f.Fd()), off: off, remain: int(n), conn: s.conn, stall: s.stall}
	werr := s.raw.Write(s.rsWrite)
	if s.rs.armed {
		s.deadline = true
	}
	written, err = s.rs.n, s.rs.err
	if err == nil {
		err = werr
	}
	if written == 0 && err != nil && unsupported(err) {
		return 0, nil, false
	}
	return written, err, true
}

// flushFor prepares w for sendfile: bufio.Writer.ReadFrom hands the reader to the connection's
// ReadFrom (sendfile) only while its buffer is empty, so headers still buffered are written first.
func flushFor(w io.Writer) error {
	if bw, ok := w.(*bufio.Writer); ok && bw.Buffered() > 0 {
		return bw.Flush()
	}
	return nil
}

// sendSpan sends [off, off+n) of f to w: directly with sendfile(2) at an explicit offset when w is
// the connection's writer and the descriptor is known. Otherwise, if f is this response's own
// (private), through w's ReadFrom (Go's sendfile, which reads from and moves f's offset); else with
// pread copies: a shared f's offset is never used.
func (s *sender) sendSpan(w io.Writer, f *os.File, off, n int64, private bool) (written int64, err error) {
	if n <= 0 {
		return 0, nil
	}
	// The direct path writes to the descriptor under fasthttp's connection writer, so it is only
	// taken when w is that writer (a *bufio.Writer, flushed first).
	if bw, ok := w.(*bufio.Writer); ok && s.raw != nil {
		// Headers still buffered go out with MSG_MORE, to share segments with the body (unless
		// a rate limit may hold the body back).
		lc, _ := s.conn.(*tcpLimitConn)
		if lc != nil && bw.Buffered() > 0 && !s.thr.limited() {
			lc.more = true
		}
		err := bw.Flush()
		if lc != nil {
			lc.more = false
		}
		if err != nil {
			return 0, err
		}
		for n > 0 {
			step := min(n, sendStep)
			if s.thr.limited() {
				step = min(step, s.thr.step)
				s.thr.wait(s.peer, step)
			}
			m, err, handled := s.sendDirect(f, off, step)
			if !handled {
				s.raw = nil // e.g. a file system without sendfile: copy from here on
				m, err := s.sendSpan(w, f, off, n, private)
				return written + m, err
			}
			written += m
			off += m
			n -= m
			if s.sent != nil {
				s.sent.Add(m)
			}
			if err != nil {
				return written, err
			}
		}
		return written, nil
	}
	rf, ok := w.(io.ReaderFrom)
	if !ok || !private {
		return s.copySpan(w, f, off, n)
	}
	if err := flushFor(w); err != nil {
		return 0, err
	}
	if _, err := f.Seek(off, io.SeekStart); err != nil {
		return 0, err
	}
	for n > 0 {
		step := min(n, sendStep)
		if s.thr.limited() {
			step = min(step, s.thr.step)
			s.thr.wait(s.peer, step)
		}
		s.moveDeadline()
		s.lr.R, s.lr.N = f, step
		m, err := rf.ReadFrom(&s.lr)
		s.lr.R = nil
		written += m
		n -= m
		if s.sent != nil {
			s.sent.Add(m)
		}
		if err != nil {
			return written, err
		}
		if m < step {
			return written, ErrShortFile
		}
	}
	return written, nil
}

var copyBufPool = sync.Pool{New: func() any { b := make([]byte, 64<<10); return &b }}

// copySpan is the fallback for connections without a descriptor (TLS, wrapped connections) when the
// file is shared, and for writers without ReadFrom.
func (s *sender) copySpan(w io.Writer, f *os.File, off, n int64) (written int64, err error) {
	bp := copyBufPool.Get().(*[]byte)
	defer copyBufPool.Put(bp)
	buf := *bp
	if s.thr.limited() {
		buf = buf[:s.thr.step]
	}
	for n > 0 {
		chunk := buf[:min(int64(len(buf)), n)]
		m, rerr := f.ReadAt(chunk, off)
		if m < len(chunk) {
			if rerr == nil || rerr == io.EOF {
				rerr = ErrShortFile
			}
			// What the file has goes out, then the response is cut (the server closes the
			// connection without flushing its writer).
			k, _ := w.Write(chunk[:m])
			if bw, ok := w.(*bufio.Writer); ok {
				bw.Flush() //nolint:errcheck // the response is cut either way
			}
			written += int64(k)
			if s.sent != nil {
				s.sent.Add(int64(k))
			}
			return written, rerr
		}
		if s.thr.limited() {
			s.thr.wait(s.peer, int64(m))
		}
		s.moveDeadline()
		k, werr := w.Write(chunk)
		written += int64(k)
		off += int64(k)
		n -= int64(k)
		if s.sent != nil {
			s.sent.Add(int64(k))
		}
		if werr != nil {
			return written, werr
		}
	}
	return written, nil
}

// moveDeadline gives the next step of a copy the stall timeout.
func (s *sender) moveDeadline() {
	if s.conn != nil {
		s.conn.SetWriteDeadline(time.Now().Add(s.stall)) //nolint:errcheck // a failed write reports it
		s.deadline = true
	}
}

// done clears the moving write deadline if this response set one (the server sets its own before
// the next response, if any) and gives back the upload slot.
func (s *sender) done() {
	if s.deadline && s.conn != nil {
		s.conn.SetWriteDeadline(time.Time{}) //nolint:errcheck
	}
	if s.slot {
		s.thr.release(s.peer)
	}
	*s = sender{rsWrite: s.rsWrite} // rsWrite is bound to s.rs, which stays in place
}

// fileBody is the body of a complete file: SetBodyStream gets one, fasthttp calls WriteTo then Close.
// Pooled, so serving a file allocates nothing of its own.
type fileBody struct {
	sender
	f       *os.File
	off, n  int64
	release func()
	closed  bool
}

var fileBodyPool = sync.Pool{New: func() any { return new(fileBody) }}

// WriteTo sends the span. Small bodies are copied with pread into the connection's write buffer
// behind the headers; larger ones go out with sendfile.
func (b *fileBody) WriteTo(w io.Writer) (int64, error) {
	if b.n <= 0 {
		return 0, nil
	}
	if bw, ok := w.(*bufio.Writer); ok && !b.thr.limited() && b.n <= smallBody && int64(bw.Available()) >= b.n {
		buf := bw.AvailableBuffer()[:b.n]
		m, err := b.f.ReadAt(buf, b.off)
		if m < len(buf) {
			if err == nil || err == io.EOF {
				err = ErrShortFile
			}
			return 0, err
		}
		k, err := bw.Write(buf)
		if b.sent != nil {
			b.sent.Add(int64(k))
		}
		b.off += int64(k)
		b.n -= int64(k)
		return int64(k), err
	}
	m, err := b.sendSpan(w, b.f, b.off, b.n, false)
	b.off += m
	b.n -= m
	return m, err
}

// Read serves consumers that do not use WriteTo (fasthttp only does so for bodies it is not
// allowed to WriteTo); it reads with pread so the file offset stays free for sendfile.
func (b *fileBody) Read(p []byte) (int, error) {
	if b.n <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > b.n {
		p = p[:b.n]
	}
	m, err := b.f.ReadAt(p, b.off)
	b.off += int64(m)
	b.n -= int64(m)
	if m > 0 && err == io.EOF {
		err = nil
	}
	if m == 0 && err == io.EOF {
		err = ErrShortFile
	}
	return m, err
}

// SupportsBodyWriteTo tells fasthttp that WriteTo may replace Read (fasthttp.BodyWriterTo).
func (b *fileBody) SupportsBodyWriteTo() bool { return true }

// Close releases the file and the upload slot; fasthttp calls it once the response is written or
// abandoned.
func (b *fileBody) Close() error {
	if b.closed {
		return nil
	}
	b.closed = true
	rel := b.release
	b.sender.done()
	b.f, b.off, b.n, b.release = nil, 0, 0, nil
	b.closed = false
	fileBodyPool.Put(b)
	if rel != nil {
		rel()
	}
	return nil
}
