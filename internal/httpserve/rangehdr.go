package httpserve

import (
	"bytes"
	"errors"
	"time"

	"github.com/valyala/fasthttp"
)

// ErrUnsatisfiable is returned by ParseRange for a single byte range that lies wholly outside the
// representation (first byte at or past the end, a zero-length suffix, or any range of an empty file).
// The server answers 416 with "Content-Range: bytes */<size>".
var ErrUnsatisfiable = errors.New("httpserve: range not satisfiable")

// ParseRange interprets a Range header value for a representation of size bytes. It returns the
// inclusive byte positions [start, end] and partial = true for one satisfiable range (end clamped to
// size-1, suffix ranges "bytes=-N" honoured). It returns partial = false, err = nil when the whole
// representation should be sent with 200: no header, another unit, a syntax error (RFC 9110 §14.2
// lets a server ignore it), or several ranges — multipart/byteranges is not implemented, as in
// fasthttp and the original's peers, which only ever ask for one range. It returns ErrUnsatisfiable
// when the one range cannot be satisfied (416).
func ParseRange(header []byte, size int64) (start, end int64, partial bool, err error) {
	const unit = "bytes="
	if len(header) < len(unit) || !asciiEqualFold(header[:len(unit)], unit) {
		return 0, 0, false, nil
	}
	b := trimOWS(header[len(unit):])
	if bytes.IndexByte(b, ',') >= 0 {
		return 0, 0, false, nil
	}
	dash := bytes.IndexByte(b, '-')
	if dash < 0 {
		return 0, 0, false, nil
	}
	first, last := trimOWS(b[:dash]), trimOWS(b[dash+1:])
	if len(first) == 0 {
		// Suffix range: the last N bytes.
		n, ok := parseDigits(last)
		if !ok {
			return 0, 0, false, nil
		}
		if n == 0 || size == 0 {
			return 0, 0, false, ErrUnsatisfiable
		}
		if n > size {
			n = size
		}
		return size - n, size - 1, true, nil
	}
	s, ok := parseDigits(first)
	if !ok {
		return 0, 0, false, nil
	}
	e := size - 1
	if len(last) > 0 {
		if e2, ok := parseDigits(last); !ok || e2 < s {
			return 0, 0, false, nil // invalid range-spec: ignore the header
		} else if e2 < e {
			e = e2
		}
	}
	if s >= size {
		return 0, 0, false, ErrUnsatisfiable
	}
	return s, e, true, nil
}

// parseDigits parses a non-empty run of decimal digits, refusing values that would overflow int64.
func parseDigits(b []byte) (int64, bool) {
	if len(b) == 0 || len(b) > 18 {
		return 0, false
	}
	var n int64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}

func trimOWS(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t') {
		b = b[:len(b)-1]
	}
	return b
}

func asciiEqualFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range b {
		c := b[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != s[i] {
			return false
		}
	}
	return true
}

// ifRangeMatches reports whether an If-Range value still names this representation, so the Range
// applies (RFC 9110 §13.1.5): an entity tag must match the strong ETag exactly (weak tags never match);
// a date must equal Last-Modified exactly.
func ifRangeMatches(v, etag []byte, modTime time.Time) bool {
	if len(v) == 0 {
		return true
	}
	if v[0] == '"' || bytes.HasPrefix(v, []byte("W/")) {
		return len(etag) > 0 && bytes.Equal(v, etag)
	}
	if modTime.IsZero() {
		return false
	}
	t, err := fasthttp.ParseHTTPDate(v)
	return err == nil && t.Unix() == modTime.Unix()
}

// etagListMatches implements If-None-Match's weak comparison against our strong tag.
func etagListMatches(list, etag []byte) bool {
	if len(etag) == 0 {
		return false
	}
	for len(list) > 0 {
		var item []byte
		if i := bytes.IndexByte(list, ','); i >= 0 {
			item, list = trimOWS(list[:i]), list[i+1:]
		} else {
			item, list = trimOWS(list), nil
		}
		if len(item) == 1 && item[0] == '*' {
			return true
		}
		item = bytes.TrimPrefix(item, []byte("W/"))
		if bytes.Equal(item, etag) {
			return true
		}
	}
	return false
}
