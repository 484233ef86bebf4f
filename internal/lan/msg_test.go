package lan

import (
	"errors"
	"strings"
	"testing"
)

var testCookie = Cookie{0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef}

// The message as wire/doc.go shows it, byte for byte.
func TestAppendMsgGolden(t *testing.T) {
	m := Msg{Group: IPv4, GroupPort: Port, PeerPort: 9977, DHTPort: 9977, Cookie: testCookie, Reply: true}
	want := "APT-P2P-LSD * HTTP/1.1\r\nHost: 239.192.152.143:9976\r\nPort: 9977\r\nDHT-Port: 9977\r\n" +
		"Cookie: 0123456789abcdef\r\nReply: yes\r\n\r\n"
	if got := string(AppendMsg(nil, &m)); got != want {
		t.Fatalf("got\n%q\nwant\n%q", got, want)
	}
	m = Msg{Group: IPv6, GroupPort: Port, PeerPort: 80, DHTPort: 65535, Cookie: testCookie}
	want = "APT-P2P-LSD * HTTP/1.1\r\nHost: [ff15::efc0:988f]:9976\r\nPort: 80\r\nDHT-Port: 65535\r\n" +
		"Cookie: 0123456789abcdef\r\n\r\n"
	if got := string(AppendMsg(nil, &m)); got != want {
		t.Fatalf("got\n%q\nwant\n%q", got, want)
	}
}

func TestParseRoundTrip(t *testing.T) {
	for _, m := range []Msg{
		{Group: IPv4, GroupPort: Port, PeerPort: 9977, DHTPort: 9977, Cookie: testCookie, Reply: true},
		{Group: IPv6, GroupPort: 1, PeerPort: 1, DHTPort: 65535, Cookie: Cookie{}},
	} {
		b := AppendMsg(nil, &m)
		var got Msg
		if err := got.Parse(b); err != nil {
			t.Fatalf("%q: %v", b, err)
		}
		if got != m {
			t.Fatalf("round trip: got %+v, want %+v", got, m)
		}
	}
}

// What Parse tolerates: header names in any case, blanks around values,
// headers in any order, unknown headers, BEP 14's extra empty line, an
// upper-case cookie.
func TestParseTolerates(t *testing.T) {
	in := "APT-P2P-LSD * HTTP/1.1\r\ncookie:\t0123456789ABCDEF \r\nX-Future: whatever: it says\r\n" +
		"dht-port: 6881\r\nPORT:80\r\nhost: [ff15::efc0:988f]:9976\r\nreply: YES\r\n\r\n\r\n"
	var m Msg
	if err := m.Parse([]byte(in)); err != nil {
		t.Fatal(err)
	}
	want := Msg{Group: IPv6, GroupPort: 9976, PeerPort: 80, DHTPort: 6881, Cookie: testCookie, Reply: true}
	if m != want {
		t.Fatalf("got %+v, want %+v", m, want)
	}
}

func TestParseRejects(t *testing.T) {
	valid := "APT-P2P-LSD * HTTP/1.1\r\nHost: 239.192.152.143:9976\r\nPort: 9977\r\nDHT-Port: 9977\r\nCookie: 0123456789abcdef\r\n\r\n"
	replace := func(old, new string) string {
		if !strings.Contains(valid, old) {
			t.Fatalf("test bug: %q not in the message", old)
		}
		return strings.Replace(valid, old, new, 1)
	}
	bep14 := "BT-SEARCH * HTTP/1.1\r\nHost: 239.192.152.143:6771\r\nPort: 6881\r\n" +
		"Infohash: 0123456789abcdef0123456789abcdef01234567\r\ncookie: x\r\n\r\n\r\n"
	cases := []struct {
		name, in string
		want     error
	}{
		{"empty", "", ErrRequestLine},
		{"BEP 14 search", bep14, ErrRequestLine},
		{"other method", replace("APT-P2P-LSD", "APT-P2P-LSE"), ErrRequestLine},
		{"LF line ends", strings.ReplaceAll(valid, "\r\n", "\n"), ErrRequestLine},
		{"lone CR", replace("Port: 9977\r\n", "Port: 9977\r"), ErrLine},
		{"no end", strings.TrimSuffix(valid, "\r\n"), ErrLine},
		{"no colon", replace("Port: 9977", "Port 9977"), ErrLine},
		{"space in name", replace("DHT-Port:", "DHT Port:"), ErrLine},
		{"empty name", replace("Port: 9977", ": 9977"), ErrLine},
		{"control char", replace("Port: 9977", "Port: 99\x0077"), ErrLine},
		{"duplicate", replace("Port: 9977\r\n", "Port: 9977\r\nport: 9977\r\n"), ErrDuplicate},
		{"missing cookie", replace("Cookie: 0123456789abcdef\r\n", ""), ErrMissing},
		{"missing host", replace("Host: 239.192.152.143:9976\r\n", ""), ErrMissing},
		{"port zero", replace("Port: 9977", "Port: 0"), ErrValue},
		{"port leading zero", replace("Port: 9977", "Port: 09977"), ErrValue},
		{"port too big", replace("Port: 9977", "Port: 65536"), ErrValue},
		{"port sign", replace("Port: 9977", "Port: +9977"), ErrValue},
		{"port empty", replace("Port: 9977", "Port: "), ErrValue},
		{"dht port letters", replace("DHT-Port: 9977", "DHT-Port: 99a7"), ErrValue},
		{"short cookie", replace("0123456789abcdef", "0123456789abcde"), ErrValue},
		{"long cookie", replace("0123456789abcdef", "0123456789abcdef0"), ErrValue},
		{"non-hex cookie", replace("0123456789abcdef", "0123456789abcdeg"), ErrValue},
		{"other group", replace("239.192.152.143", "239.192.152.144"), ErrValue},
		{"unicast host", replace("239.192.152.143:9976", "10.0.0.1:9976"), ErrValue},
		{"host without port", replace("239.192.152.143:9976", "239.192.152.143:"), ErrValue},
		{"reply no", replace("\r\n\r\n", "\r\nReply: no\r\n\r\n"), ErrValue},
		{"trailing bytes", valid + "x", ErrTrailing},
		{"two trailing lines", valid + "\r\n\r\n", ErrTrailing},
		{"too long", valid + strings.Repeat("x", MaxMsgLen), ErrTooLong},
		{"too many headers", replace("\r\n\r\n", "\r\n"+strings.Repeat("X: y\r\n", MaxHeaders-3)+"\r\n"), ErrTooMany},
	}
	for _, c := range cases {
		var m Msg
		if err := m.Parse([]byte(c.in)); !errors.Is(err, c.want) {
			t.Errorf("%s: got %v, want %v", c.name, err, c.want)
		}
	}
	// The largest number of header lines is accepted.
	var m Msg
	if err := m.Parse([]byte(replace("\r\n\r\n", "\r\n"+strings.Repeat("X: y\r\n", MaxHeaders-4)+"\r\n"))); err != nil {
		t.Errorf("%d header lines: %v", MaxHeaders, err)
	}
}
