package httpserve

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
)

// Growing is what a partially downloaded file offers to a streaming reader; *piecestore.Writer
// satisfies it.
type Growing interface {
	// Available is how many bytes from offset 0 may be sent now (verified and contiguous).
	Available() int64
	// Wait blocks until Available() > off, the download ended (its final error, nil on success), or
	// ctx ends.
	Wait(ctx context.Context, off int64) (avail int64, err error)
	// File is the file being written; it is only read with pread or through a private reopen.
	File() *os.File
}

// ErrSourceFailed wraps the error a Growing reported; the response is cut short because of it.
var ErrSourceFailed = errors.New("httpserve: download failed while streaming")

// StreamBody sends [off, off+n) of a growing file as it becomes available. It is an io.WriterTo
// (plus io.Reader and io.Closer, as fasthttp's SetBodyStream wants): give it to SetBodyStream with
// the full length n, so the client sees the real Content-Length from the start. Each newly available
// span goes out with sendfile. If the Growing fails (hash mismatch, abort), WriteTo returns an error
// and fasthttp closes the connection before the announced length, so the client never receives a
// complete response with bad content and apt retries.
type StreamBody struct {
	sender
	g        Growing
	ctx      context.Context
	pos, end int64
	done     func()
	f        *os.File // private reopen of g.File(), for an offset of our own
	reopened bool
	closed   bool
}

// NewStreamBody returns a body that streams [off, off+n) of g. done, if not nil, is called once
// when fasthttp closes the body (after the last byte, or after a failure).
func NewStreamBody(g Growing, off, n int64, done func()) *StreamBody {
	return &StreamBody{g: g, ctx: context.Background(), pos: off, end: off + n, done: done}
}

// SetContext makes waits for more data end when ctx does (server shutdown, request cancelled).
func (s *StreamBody) SetContext(ctx context.Context) {
	if ctx != nil {
		s.ctx = ctx
	}
}

// privateFile returns a descriptor of the growing content that this body owns: the writer may close
// its own when the download ends or is aborted, and a number reused by another open must never be
// sent from. It is reopened through /proc/self/fd (works for unlinked temporary files too), which
// also gives an offset of its own for the ReadFrom path. Without /proc it returns nil and the body
// falls back to pread copies from g.File().
func (s *StreamBody) privateFile() *os.File {
	if !s.reopened {
		s.reopened = true
		if r, ok := s.g.(Reopener); ok {
			s.f = r.Reopen()
		} else {
			s.f = reopen(s.g.File())
		}
	}
	return s.f
}

// Reopener is a Growing that opens its file again itself, safely against its
// own Close (piecestore.Writer does it under its lock): reading the
// descriptor of an *os.File another goroutine may be closing is a data race.
type Reopener interface {
	Reopen() *os.File
}

// reopen opens src's file again through /proc/self/fd. The writer may close src at any moment and
// its descriptor number may then be reused by an unrelated open, so the new file is accepted only if
// it is the same file (device and inode) that src was before the reopen.
func reopen(src *os.File) *os.File {
	if src == nil {
		return nil
	}
	st1, err := src.Stat()
	if err != nil {
		return nil
	}
	var name [32]byte
	p := strconv.AppendUint(append(name[:0], "/proc/self/fd/"...), uint64(src.Fd()), 10)
	f, err := os.Open(string(p))
	if err != nil {
		return nil
	}
	if st2, err := f.Stat(); err != nil || !os.SameFile(st1, st2) {
		f.Close()
		return nil
	}
	return f
}

// WriteTo sends the span, waiting for the download as needed.
func (s *StreamBody) WriteTo(w io.Writer) (written int64, err error) {
	// Headers first: the client should see the response start even if the first piece is slow.
	if bw, ok := w.(*bufio.Writer); ok && bw.Buffered() > 0 {
		if err := bw.Flush(); err != nil {
			return 0, err
		}
	}
	for s.pos < s.end {
		avail := s.g.Available()
		if avail <= s.pos {
			avail, err = s.g.Wait(s.ctx, s.pos)
			if err != nil {
				return written, fmt.Errorf("%w: %w", ErrSourceFailed, err)
			}
			if avail <= s.pos {
				return written, fmt.Errorf("%w: ended at %d of %d", ErrSourceFailed, avail, s.end)
			}
		}
		upto := min(avail, s.end)
		var m int64
		if f := s.privateFile(); f != nil {
			m, err = s.sendSpan(w, f, s.pos, upto-s.pos, true)
		} else if src := s.g.File(); src != nil {
			m, err = s.copySpan(w, src, s.pos, upto-s.pos)
		} else {
			return written, fmt.Errorf("%w: no file", ErrSourceFailed)
		}
		s.pos += m
		written += m
		if err != nil {
			return written, err
		}
	}
	return written, nil
}

// Read is for consumers that do not use WriteTo: it waits like WriteTo and reads with pread.
func (s *StreamBody) Read(p []byte) (int, error) {
	if s.pos >= s.end {
		return 0, io.EOF
	}
	avail := s.g.Available()
	if avail <= s.pos {
		var err error
		if avail, err = s.g.Wait(s.ctx, s.pos); err != nil {
			return 0, fmt.Errorf("%w: %w", ErrSourceFailed, err)
		}
		if avail <= s.pos {
			return 0, fmt.Errorf("%w: ended at %d of %d", ErrSourceFailed, avail, s.end)
		}
	}
	upto := min(avail, s.end)
	if int64(len(p)) > upto-s.pos {
		p = p[:upto-s.pos]
	}
	m, err := s.g.File().ReadAt(p, s.pos)
	s.pos += int64(m)
	if m > 0 && err == io.EOF {
		err = nil
	}
	return m, err
}

// SupportsBodyWriteTo tells fasthttp that WriteTo may replace Read.
func (s *StreamBody) SupportsBodyWriteTo() bool { return true }

// Close closes the private file, gives back any upload slot and calls done, once.
func (s *StreamBody) Close() error {
	if s.closed {
		return nil
	}
	s.closed = true
	s.sender.done()
	var err error
	if s.f != nil {
		err = s.f.Close()
		s.f = nil
	}
	if s.done != nil {
		s.done()
	}
	return err
}
