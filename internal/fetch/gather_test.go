package fetch

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/textproto"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// rawMirror answers every request on its connections with the script: each
// step is one Write of the given bytes of the response (header then body),
// after waiting for its gate if it has one. It reads each request's header
// first, like any HTTP server.
type rawStep struct {
	n    int           // bytes of the response to send in this Write; -1 = the rest
	gate chan struct{} // closed when the step may go; nil = at once
}

func rawMirror(t *testing.T, data []byte, steps ...rawStep) Source {
	t.Helper()
	h := 2 + loopbackHost.Add(1)%250
	ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.%d:0", h))
	if err != nil {
		t.Fatal(err)
	}
	quit := make(chan struct{})
	t.Cleanup(func() { close(quit); ln.Close() })
	resp := append(rawHeader(len(data)), data...)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				// A send buffer that takes the whole response: each Write
				// reaches the peer's receive queue before it returns.
				c.(*net.TCPConn).SetWriteBuffer(4 << 20) //nolint:errcheck // a hint
				tp := textproto.NewReader(bufio.NewReader(c))
				for {
					if _, err := tp.ReadLine(); err != nil { // the request line
						return
					}
					if _, err := tp.ReadMIMEHeader(); err != nil {
						return
					}
					rest := resp
					for _, st := range steps {
						if st.gate != nil {
							select {
							case <-st.gate:
							case <-quit:
								return
							}
						}
						n := st.n
						if n < 0 || n > len(rest) {
							n = len(rest)
						}
						if _, err := c.Write(rest[:n]); err != nil {
							return
						}
						rest = rest[n:]
					}
				}
			}()
		}
	}()
	return Source{Addr: ln.Addr().String(), Path: "/debian/f.deb"}
}

// rawHeader is rawMirror's response header for a body of size bytes.
func rawHeader(size int) []byte {
	return fmt.Appendf(nil, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\nContent-Type: application/octet-stream\r\n\r\n", size)
}

// The socket probe sees bytes that arrived and no Read took, and nothing
// once they are read.
func TestQueuedProbe(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			close(accepted)
			return
		}
		accepted <- c
	}()
	raw, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	c := newIdleConn(raw, 5*time.Second)
	defer c.Close()
	srv := <-accepted
	if srv == nil {
		t.Fatal("accept failed")
	}
	defer srv.Close()
	if c.queued() {
		t.Fatal("queued() on a connection nothing was sent on")
	}
	if _, err := srv.Write([]byte("0123456789")); err != nil {
		t.Fatal(err)
	}
	// Wait, through the poller, until the socket is readable, without
	// taking the bytes (a peek; the deadline only bounds a failure).
	rc, err := raw.(*net.TCPConn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	raw.SetReadDeadline(time.Now().Add(10 * time.Second))
	var peek [1]byte
	if err := rc.Read(func(fd uintptr) bool {
		_, _, err := unix.Recvfrom(int(fd), peek[:], unix.MSG_PEEK|unix.MSG_DONTWAIT)
		return err != unix.EAGAIN
	}); err != nil {
		t.Fatal(err)
	}
	if !c.queued() {
		t.Fatal("10 bytes arrived (the socket is readable), queued() is false")
	}
	buf := make([]byte, 64)
	if n, err := c.Read(buf); err != nil || n != 10 {
		t.Fatalf("Read = %d, %v; want the 10 bytes", n, err)
	}
	if c.queued() {
		t.Fatal("queued() after everything was read")
	}
	if a, ok := c.RemoteAddr().(*connAddr); !ok || a.c != c || a.String() != srv.LocalAddr().String() {
		t.Fatalf("RemoteAddr %v does not lead back to the connection", c.RemoteAddr())
	}
}

// A small file that arrives in one burst is handed to the Sink in one write,
// although the client's read buffer splits it: the stream reads on while the
// socket holds bytes (one write, one set of large page-cache folios).
func TestStreamWritesABurstAtOnce(t *testing.T) {
	t.Parallel()
	data, pieces := testFile(50<<10, 61) // more than the 32 KiB read buffer
	m := rawMirror(t, data, rawStep{n: -1})
	sink := newMemSink(int64(len(data)))
	res := fetchOK(t, New(testConfig()), &Job{Size: int64(len(data)), Pieces: pieces, Mirror: &m, Sink: sink})
	sink.check(t, data)
	checkAccounting(t, res, int64(len(data)))
	if sink.appends != 1 {
		t.Fatalf("the file came in one burst and went to the Sink in %d writes, want 1", sink.appends)
	}
}

// Gathering never holds bytes back: when the mirror stalls, everything it sent
// is in the Sink (a reader of the file in progress gets it) while the stream
// waits for more.
func TestStreamStallHandsOnWhatCame(t *testing.T) {
	t.Parallel()
	data, pieces := testFile(3*PieceSize+77, 62)
	gate := make(chan struct{})
	// 70 000 bytes (header included), another 230 000 a moment later, then a
	// stall until the test has seen them all in the Sink.
	m := rawMirror(t, data, rawStep{n: 70_000}, rawStep{n: 230_000}, rawStep{n: -1, gate: gate})
	// The body bytes sent before the stall: 300 000 minus the header.
	want := int64(300_000 - len(rawHeader(len(data))))
	sink := &reachSink{memSink: newMemSink(int64(len(data))), at: want, reached: make(chan struct{})}
	done := make(chan error, 1)
	var res Result
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		var err error
		res, err = New(testConfig()).Fetch(ctx, &Job{Size: int64(len(data)), Pieces: pieces, Mirror: &m, Sink: sink})
		done <- err
	}()
	select {
	case <-sink.reached:
	case err := <-done:
		t.Fatalf("Fetch ended while the mirror stalled: %v", err)
	case <-time.After(10 * time.Second): // the mirror is stalled: no more will come
		t.Fatalf("the mirror sent %d body bytes and stalled; the Sink holds %d", want, sink.Contiguous())
	}
	if c := sink.Contiguous(); c != want {
		t.Fatalf("the Sink holds %d bytes, the mirror sent %d", c, want)
	}
	close(gate)
	if err := <-done; err != nil {
		t.Fatalf("Fetch: %v", err)
	}
	sink.check(t, data)
	checkAccounting(t, res, int64(len(data)))
}

// reachSink is a memSink that closes reached once its contiguous bytes reach at.
type reachSink struct {
	*memSink
	at      int64
	reached chan struct{}
	once    sync.Once
}

func (s *reachSink) WriteAt(p []byte, off int64) (int, error) {
	n, err := s.memSink.WriteAt(p, off)
	if s.Contiguous() >= s.at {
		s.once.Do(func() { close(s.reached) })
	}
	return n, err
}
