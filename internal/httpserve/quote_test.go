package httpserve

import (
	"bytes"
	"errors"
	"testing"
)

// The reference's example (§4.4): the hash contains 0x20, which quote_plus turns into '+'.
func TestQuotePlusReferenceExample(t *testing.T) {
	h := mustHex("ca20b80c00e707f87e5d292b9de55f42ff1ac421")
	const want = "%CA+%B8%0C%00%E7%07%F8%7E%5D%29%2B%9D%E5_B%FF%1A%C4%21"
	if got := QuotePlus(nil, h); string(got) != want {
		t.Fatalf("QuotePlus = %s, want %s", got, want)
	}
	back, err := UnquotePlus(nil, []byte(want))
	if err != nil || !bytes.Equal(back, h) {
		t.Fatalf("UnquotePlus = %x, %v; want %x", back, err, h)
	}
}

// Python 2: quote_plus keeps A-Z a-z 0-9 _ . -, maps ' ' to '+', escapes everything else in upper hex
// ('/' and '~' included, since quote_plus passes an empty safe set and 2.x's always_safe lacks '~').
func TestQuotePlusEveryByte(t *testing.T) {
	for c := 0; c < 256; c++ {
		got := string(QuotePlus(nil, []byte{byte(c)}))
		var want string
		switch {
		case 'A' <= c && c <= 'Z', 'a' <= c && c <= 'z', '0' <= c && c <= '9', c == '_', c == '.', c == '-':
			want = string(rune(c))
		case c == ' ':
			want = "+"
		default:
			want = "%" + string("0123456789ABCDEF"[c>>4]) + string("0123456789ABCDEF"[c&15])
		}
		if got != want {
			t.Errorf("byte %#02x: got %q want %q", c, got, want)
		}
	}
}

func TestUnquotePlus(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want string
		err  error
	}{
		{"abc", "abc", nil},
		{"a+b", "a b", nil},
		{"%2b%2B", "++", nil},
		{"%e9", "\xe9", nil},
		{"%7e~", "~~", nil}, // unquote accepts unescaped bytes too
		{"", "", nil},
		{"%", "", ErrBadEscape},
		{"%4", "", ErrBadEscape},
		{"ab%zz", "ab", ErrBadEscape},
		{"%G0", "", ErrBadEscape},
	} {
		got, err := UnquotePlus(nil, []byte(tc.in))
		if !errors.Is(err, tc.err) || (err == nil && string(got) != tc.want) {
			t.Errorf("UnquotePlus(%q) = %q, %v; want %q, %v", tc.in, got, err, tc.want, tc.err)
		}
	}
}

func TestQuoteRoundTripAllLengths(t *testing.T) {
	buf := make([]byte, 0, 256*3)
	for _, n := range []int{16, 20, 32, 64} {
		h := make([]byte, n)
		for i := range h {
			h[i] = byte(i*37 + n)
		}
		q := QuotePlus(buf[:0], h)
		back, err := UnquotePlus(nil, q)
		if err != nil || !bytes.Equal(back, h) {
			t.Fatalf("n=%d: round trip %x -> %s -> %x (%v)", n, h, q, back, err)
		}
	}
}

func FuzzQuotePlus(f *testing.F) {
	f.Add(mustHex("ca20b80c00e707f87e5d292b9de55f42ff1ac421"))
	f.Add([]byte(" +%~/"))
	f.Fuzz(func(t *testing.T, b []byte) {
		q := QuotePlus(nil, b)
		for _, c := range q {
			if !quoteSafe[c] && c != '+' && c != '%' {
				t.Fatalf("unsafe byte %q in %q", c, q)
			}
		}
		back, err := UnquotePlus(nil, q)
		if err != nil || !bytes.Equal(back, b) {
			t.Fatalf("round trip %x -> %s -> %x (%v)", b, q, back, err)
		}
	})
}

func FuzzUnquotePlus(f *testing.F) {
	f.Add([]byte("%CA+%B8%0C%00"))
	f.Add([]byte("%zz"))
	f.Fuzz(func(t *testing.T, s []byte) {
		d, err := UnquotePlus(nil, s)
		if err != nil {
			return
		}
		if len(d) > len(s) {
			t.Fatalf("decoded longer than input: %q -> %q", s, d)
		}
		// Re-quoting a decoded name and decoding again is stable.
		d2, err := UnquotePlus(nil, QuotePlus(nil, d))
		if err != nil || !bytes.Equal(d, d2) {
			t.Fatalf("%q: %x vs %x (%v)", s, d, d2, err)
		}
	})
}
