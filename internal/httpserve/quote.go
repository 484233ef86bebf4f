package httpserve

import "errors"

// ErrBadEscape is returned by UnquotePlus for a '%' not followed by two hex digits.
var ErrBadEscape = errors.New("httpserve: malformed %-escape")

// quoteSafe marks the bytes Python 2's urllib.quote never escapes (its always_safe set).
var quoteSafe = func() (t [256]bool) {
	for c := 'A'; c <= 'Z'; c++ {
		t[c] = true
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c] = true
	}
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	t['_'], t['.'], t['-'] = true, true, true
	return t
}()

const upperHex = "0123456789ABCDEF"

// QuotePlus appends Python 2's urllib.quote_plus(b) to dst and returns the extended slice:
// A–Z a–z 0–9 _ . - are kept, a space becomes '+', every other byte (including '/' and '~')
// becomes %XX in upper-case hex. It is how the original names files in /~/ URLs (reference §4.4).
func QuotePlus(dst []byte, b []byte) []byte {
	for _, c := range b {
		switch {
		case quoteSafe[c]:
			dst = append(dst, c)
		case c == ' ':
			dst = append(dst, '+')
		default:
			dst = append(dst, '%', upperHex[c>>4], upperHex[c&15])
		}
	}
	return dst
}

func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// UnquotePlus appends the decoding of s to dst: '+' becomes a space and %XX (either hex case) the
// byte XX; every other byte is copied. It inverts QuotePlus and agrees with Python 2's unquote_plus
// on every well-formed input. Python passes a malformed escape such as "%zz" through unchanged; no
// quote_plus output contains one, so here it is an error (ErrBadEscape) and the server answers 404.
func UnquotePlus(dst []byte, s []byte) ([]byte, error) {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '+':
			dst = append(dst, ' ')
		case '%':
			if i+2 >= len(s) {
				return dst, ErrBadEscape
			}
			hi, ok1 := unhex(s[i+1])
			lo, ok2 := unhex(s[i+2])
			if !ok1 || !ok2 {
				return dst, ErrBadEscape
			}
			dst = append(dst, hi<<4|lo)
			i += 2
		default:
			dst = append(dst, c)
		}
	}
	return dst, nil
}
