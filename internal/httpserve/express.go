package httpserve

import (
	"bytes"
	"io"
	"net/netip"
	"os"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"
)

// The express lane: plain GETs of hot files answered without fasthttp.
//
// A cached small file served through fasthttp cost about 15 µs of CPU per request against nginx's
// 11 µs, and a bare Go server that reads the request, looks the file up and sends its header and
// sendfile(2) measured 9.7 µs (bench/RESULTS.md proxy section): the difference is fasthttp's
// parsing of every header, its response building and its per-request bookkeeping, not goroutines.
// So on a connection of a trusted client that sends one request at a time, the read-ahead's direct
// read looks at what it has just read before handing it to fasthttp. If it is exactly one
// complete request, "GET <uri> HTTP/1.1" with only headers that cannot change the answer (Host,
// User-Agent, Accept…: no Range, no conditional, no Connection other than keep-alive, no body),
// and the Express hook has a complete file for that URI, the answer is written there and then:
// the status line, Server, Date, the file's own header lines and the body with sendfile, exactly
// what ServeFile would have sent for it. Anything else goes to fasthttp untouched, so every other
// case keeps one implementation.
//
// Order is kept: the lane only answers when every byte fasthttp was given before formed complete
// requests that its handler has taken (the scanner counts them), so fasthttp, which reads only
// once it has written and flushed every earlier answer, has nothing left to send. A client that
// pipelines never gets here (its connection turns to the reader goroutine), and neither does one
// whose requests carried bodies.

// defaultExpressMaxSize is the largest file the express lane sends by default
// (ServerConfig.ExpressMaxSize); larger ones go to fasthttp. The lane saves a few microseconds
// per request, which only count for small files, and fasthttp's Shutdown lets an answer it is
// sending finish, while a connection inside the lane counts as idle to it and is closed: at
// most one small answer is cut when the daemon stops.
const defaultExpressMaxSize = 1 << 20

// Express answers hot files on the express lane (ServerConfig.Express). Both methods run on the
// connection's goroutine and must not block.
type Express interface {
	// ExpressOpen fills f (File, Size, Header, Release, and Tag as it likes) for a GET of uri from
	// a trusted client, or returns false: the request then goes to the handler as usual.
	ExpressOpen(from netip.Addr, uri []byte, f *ExpressFile) bool
	// ExpressDone reports the end of the answer: sent body bytes, and err if it was cut (the
	// connection is then closed). It must release f.Release.
	ExpressDone(f *ExpressFile, sent int64, err error)
}

// ExpressFile is one answer of the express lane.
type ExpressFile struct {
	// File is the complete file; it is sent with sendfile at explicit offsets.
	File *os.File
	// Size is its length.
	Size int64
	// Header holds the response's header lines after Date, from ExpressHeader.
	Header []byte
	// Release is the holder of the open file, for ExpressDone.
	Release io.Closer
	// Tag is the hook's own.
	Tag any
	// From is the client, and Start when its request had been read (both set by the server).
	From  netip.Addr
	Start time.Time
}

// ExpressHeader returns the header lines ServeFile sends for a 200 of a complete file of size bytes
// with this content type (empty: application/octet-stream) and entity tag hash (nil: none), each
// ending in CRLF: keep it with the file and give it as ExpressFile.Header.
func ExpressHeader(size int64, contentType string, etag []byte) []byte {
	if contentType == "" {
		contentType = octetStream
	}
	b := make([]byte, 0, 96+len(contentType)+2*len(etag))
	b = append(b, "Content-Type: "...)
	b = append(b, contentType...)
	b = append(b, "\r\nContent-Length: "...)
	b = strconv.AppendInt(b, size, 10)
	b = append(b, "\r\nAccept-Ranges: bytes\r\n"...)
	if len(etag) > 0 {
		b = append(b, "ETag: "...)
		b = appendETag(b, etag)
		b = append(b, "\r\n"...)
	}
	return b
}

// expressHeaders are the request headers the lane accepts (lower case): none of them changes the
// answer for a file. Any other header sends the request to fasthttp.
var expressHeaders = [...]string{"host", "user-agent", "accept", "accept-encoding", "accept-language",
	"cache-control", "pragma", "referer", "x-forwarded-for", "via"}

// expressRequest returns the URI of req if it is exactly one complete request the lane may answer.
func expressRequest(req []byte) (uri []byte, ok bool) {
	end := bytes.Index(req, crlfcrlf)
	if end < 0 || end != len(req)-4 || !bytes.HasPrefix(req, getSP) {
		return nil, false
	}
	line, rest, _ := bytes.Cut(req[:end+2], crlf)
	line = line[len(getSP):]
	sp := bytes.IndexByte(line, ' ')
	if sp <= 0 || string(line[sp+1:]) != "HTTP/1.1" {
		return nil, false
	}
	uri = line[:sp]
	if uri[0] != '/' && !bytes.HasPrefix(uri, httpScheme) {
		return nil, false
	}
	for _, c := range uri {
		if c <= ' ' || c >= 0x7f {
			return nil, false
		}
	}
	for len(rest) > 0 {
		var h []byte
		h, rest, _ = bytes.Cut(rest, crlf)
		colon := bytes.IndexByte(h, ':')
		if colon <= 0 || !expressHeader(h[:colon], bytes.TrimLeft(h[colon+1:], " \t")) {
			return nil, false
		}
	}
	return uri, true
}

func expressHeader(name, value []byte) bool {
	if len(name) == len("connection") && hasPrefixFold(name, "connection") {
		return len(value) == len("keep-alive") && hasPrefixFold(value, "keep-alive")
	}
	for _, h := range expressHeaders {
		if len(name) == len(h) && hasPrefixFold(name, h) {
			return true
		}
	}
	return false
}

var (
	crlfcrlf   = []byte("\r\n\r\n")
	crlf       = []byte("\r\n")
	getSP      = []byte("GET ")
	httpScheme = []byte("http://")
)

// expressReady reports whether fasthttp has nothing left to answer: every byte it was given ended
// a request its handler has taken.
func (ra *readAhead) expressReady() bool {
	return directSendfile && ra.express != nil && ra.ended && !ra.off && ra.lastErr == nil && ra.c.raw != nil &&
		ra.seen == ra.handled.Load()
}

// serveExpress answers req (just read, nothing else buffered) if the lane takes it. served = false
// leaves req to fasthttp; an error means the answer was cut and the connection must close.
func (ra *readAhead) serveExpress(req []byte) (served bool, err error) {
	uri, ok := expressRequest(req)
	if !ok {
		return false, nil
	}
	f := &ra.xf
	*f = ExpressFile{From: ra.from, Start: time.Now()}
	if !ra.express.ExpressOpen(ra.from, uri, f) {
		*f = ExpressFile{}
		return false, nil
	}
	if f.Size > ra.c.l.expressMax {
		f.Release.Close()
		*f = ExpressFile{}
		return false, nil
	}
	h := append(ra.xhdr[:0], "HTTP/1.1 200 OK\r\n"...)
	if ra.name != "" {
		h = append(h, "Server: "...)
		h = append(h, ra.name...)
		h = append(h, "\r\n"...)
	}
	h = appendDate(h, f.Start)
	h = append(h, f.Header...)
	h = append(h, "\r\n"...)
	ra.xhdr = h
	if n := ra.handled.Load(); n != ra.xcleared {
		// fasthttp answered since the last express answer and left its write deadline on the
		// socket (it sets one per answer and never clears it): past, it would cut this one.
		ra.c.TCPConn.SetWriteDeadline(time.Time{}) //nolint:errcheck // a failed write reports it
		ra.xcleared = n
	}
	ra.xs = expressSend{hdr: h, body: rawSend{infd: int(f.File.Fd()), remain: int(f.Size), conn: ra.c, stall: ra.c.l.stall}}
	if ra.xsWrite == nil {
		ra.xsWrite = ra.xs.write
	}
	werr := ra.c.raw.Write(ra.xsWrite)
	err = ra.xs.body.err
	if err == nil {
		err = werr
	}
	if ra.xs.body.armed {
		ra.c.TCPConn.SetWriteDeadline(time.Time{}) //nolint:errcheck // as sender.done
	}
	sent, start := ra.xs.body.n, f.Start
	ra.xs = expressSend{}
	ra.express.ExpressDone(f, sent, err)
	*f = ExpressFile{}
	if err != nil {
		return true, err
	}
	// Idle again, as after fasthttp's answers (connState), with a fresh idle timeout.
	ra.c.served.Store(true)
	ra.c.idleSeq.Store(ra.c.l.seq.Add(1))
	ra.c.busy.Store(false)
	ra.deadline = start.Add(ra.idleTimeout) // (from the request: a small file is sent in microseconds)
	return true, nil
}

// expressSend is one express answer on the wire: the header, then the body (sendfile_linux.go).
type expressSend struct {
	hdr  []byte
	body rawSend
}

// dateLine caches the Date header line of the current second.
type dateLine struct {
	sec  int64
	line []byte
}

var curDate atomic.Pointer[dateLine]

// appendDate appends "Date: <IMF-fixdate>\r\n" for now.
func appendDate(b []byte, now time.Time) []byte {
	sec := now.Unix()
	d := curDate.Load()
	if d == nil || d.sec != sec {
		l := append([]byte("Date: "), fasthttp.AppendHTTPDate(nil, now)...)
		d = &dateLine{sec: sec, line: append(l, "\r\n"...)}
		curDate.Store(d)
	}
	return append(b, d.line...)
}
