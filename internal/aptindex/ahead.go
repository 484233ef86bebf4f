package aptindex

import "io"

// aheadReader runs a decompressor in its own goroutine, a few buffers ahead
// of the parser, so that decoding and parsing overlap on two cores: a load
// then costs about the longer of the two instead of their sum.
type aheadReader struct {
	full chan []byte // decoded buffers, in order; closed after the last
	free chan []byte // buffers the parser has finished with
	stop chan struct{}
	cur  []byte // unread part of held
	held []byte
	err  error // the decoder's error, valid once full is closed
}

const (
	aheadBufs    = 4
	aheadBufSize = 256 << 10
)

func newAheadReader(r io.Reader) *aheadReader {
	a := &aheadReader{
		full: make(chan []byte, aheadBufs),
		free: make(chan []byte, aheadBufs),
		stop: make(chan struct{}),
	}
	for range aheadBufs {
		a.free <- make([]byte, aheadBufSize)
	}
	go a.run(r)
	return a
}

func (a *aheadReader) run(r io.Reader) {
	defer close(a.full)
	for {
		var buf []byte
		select {
		case buf = <-a.free:
		case <-a.stop:
			return
		}
		// Fill the buffer; io.ReadFull would hide a decoder's own
		// io.ErrUnexpectedEOF (a truncated stream) as a short last buffer.
		n := 0
		var err error
		for n < len(buf) && err == nil {
			var m int
			m, err = r.Read(buf[n:])
			n += m
		}
		if n > 0 {
			a.full <- buf[:n] // never blocks: full has room for every buffer
		}
		if err != nil {
			if err != io.EOF {
				a.err = err
			}
			return
		}
	}
}

func (a *aheadReader) Read(p []byte) (int, error) {
	for len(a.cur) == 0 {
		if a.held != nil {
			a.free <- a.held[:cap(a.held)]
			a.held = nil
		}
		buf, ok := <-a.full
		if !ok {
			if a.err != nil {
				return 0, a.err
			}
			return 0, io.EOF
		}
		a.cur, a.held = buf, buf
	}
	n := copy(p, a.cur)
	a.cur = a.cur[n:]
	return n, nil
}

// Close stops the decoding goroutine and waits for it, so that the decoder
// can be released safely.
func (a *aheadReader) Close() {
	close(a.stop)
	for range a.full {
	}
}
