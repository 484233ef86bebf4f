package fetch

import (
	"context"
	"errors"
	"testing"
)

// refusingSink is a memSink whose last piece is refused, the way the piece
// store refuses the last byte of content whose whole-file hash does not match.
type refusingSink struct {
	*memSink
	last int
	err  error
}

func (s *refusingSink) WritePiece(i int, data []byte, sum *[20]byte) error {
	if i == s.last {
		return s.err
	}
	return s.memSink.WritePiece(i, data, sum)
}

func (s *refusingSink) WriteAt(p []byte, off int64) (int, error) {
	if off+int64(len(p)) > int64(s.last)*PieceSize {
		return 0, s.err
	}
	return s.memSink.WriteAt(p, off)
}

// Regression: Fetch wrapped the Sink's error with %v, so a caller could not
// tell a whole-file mismatch from other failures with errors.Is.
func TestSinkErrorStaysVisible(t *testing.T) {
	data, pieces := testFile(3*PieceSize, 7)
	storeErr := errors.New("store: content does not match its hash")
	for _, viaMirror := range []bool{false, true} {
		sink := &refusingSink{memSink: newMemSink(int64(len(data))), last: 2, err: storeErr}
		srv := newServer(t, data, behavior{})
		job := &Job{Size: int64(len(data)), Pieces: pieces, Sink: sink}
		if viaMirror {
			m := srv.source("/file")
			m.Mirror = true
			job.Mirror = &m
		} else {
			job.Peers = peerChan(srv.source("/file"))
		}
		_, err := New(testConfig()).Fetch(context.Background(), job)
		if !errors.Is(err, ErrSink) || !errors.Is(err, storeErr) {
			t.Fatalf("mirror=%v: Fetch error %v does not wrap both ErrSink and the sink's error", viaMirror, err)
		}
	}
}
