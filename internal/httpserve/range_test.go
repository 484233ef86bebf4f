package httpserve

import (
	"errors"
	"testing"
	"time"
)

func TestParseRange(t *testing.T) {
	const size = 1000
	for _, tc := range []struct {
		h          string
		start, end int64
		partial    bool
		err        error
	}{
		{"", 0, 0, false, nil},
		{"bytes=0-99", 0, 99, true, nil},
		{"bytes=100-199", 100, 199, true, nil},
		{"Bytes = 5-", 0, 0, false, nil}, // "bytes=" must be contiguous
		{"bytes=5-", 5, 999, true, nil},
		{"bytes=990-2000", 990, 999, true, nil}, // end clamped
		{"bytes=-100", 900, 999, true, nil},
		{"bytes=-5000", 0, 999, true, nil},
		{"bytes=999-999", 999, 999, true, nil},
		{"bytes= 10 - 20 ", 10, 20, true, nil},
		{"bytes=1000-", 0, 0, false, ErrUnsatisfiable},
		{"bytes=1000-1001", 0, 0, false, ErrUnsatisfiable},
		{"bytes=-0", 0, 0, false, ErrUnsatisfiable},
		{"bytes=0-1,5-6", 0, 0, false, nil}, // multi-range: whole file
		{"bytes=20-10", 0, 0, false, nil},   // invalid: ignored
		{"bytes=x-10", 0, 0, false, nil},
		{"bytes=10", 0, 0, false, nil},
		{"items=0-10", 0, 0, false, nil},
		{"bytes=99999999999999999999-", 0, 0, false, nil},
	} {
		s, e, p, err := ParseRange([]byte(tc.h), size)
		if !errors.Is(err, tc.err) || p != tc.partial || (p && (s != tc.start || e != tc.end)) {
			t.Errorf("ParseRange(%q) = %d, %d, %v, %v; want %d, %d, %v, %v", tc.h, s, e, p, err, tc.start, tc.end, tc.partial, tc.err)
		}
	}
	if _, _, _, err := ParseRange([]byte("bytes=0-10"), 0); !errors.Is(err, ErrUnsatisfiable) {
		t.Errorf("empty file: %v", err)
	}
}

func TestIfRangeMatches(t *testing.T) {
	mod := time.Date(2008, 5, 1, 12, 0, 0, 0, time.UTC)
	etag := []byte(`"abcd"`)
	for _, tc := range []struct {
		v    string
		want bool
	}{
		{"", true},
		{`"abcd"`, true},
		{`"abce"`, false},
		{`W/"abcd"`, false}, // weak tags never match If-Range
		{"Thu, 01 May 2008 12:00:00 GMT", true},
		{"Thu, 01 May 2008 12:00:01 GMT", false},
		{"not a date", false},
	} {
		if got := ifRangeMatches([]byte(tc.v), etag, mod); got != tc.want {
			t.Errorf("ifRangeMatches(%q) = %v", tc.v, got)
		}
	}
}

func TestETagListMatches(t *testing.T) {
	etag := []byte(`"ab"`)
	for _, tc := range []struct {
		v    string
		want bool
	}{
		{`"ab"`, true}, {`W/"ab"`, true}, {`"x", "ab"`, true}, {`*`, true}, {`"x"`, false}, {`"a"`, false},
	} {
		if got := etagListMatches([]byte(tc.v), etag); got != tc.want {
			t.Errorf("%q: %v", tc.v, got)
		}
	}
}

func FuzzParseRange(f *testing.F) {
	f.Add([]byte("bytes=0-99"), int64(100))
	f.Add([]byte("bytes=-5"), int64(3))
	f.Fuzz(func(t *testing.T, h []byte, size int64) {
		if size < 0 {
			return
		}
		s, e, p, err := ParseRange(h, size)
		if err != nil && p {
			t.Fatal("partial with error")
		}
		if p && (s < 0 || e < s || e >= size) {
			t.Fatalf("%q size %d: bad range %d-%d", h, size, s, e)
		}
	})
}
