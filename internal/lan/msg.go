package lan

import (
	"errors"
	"net/netip"
)

// Port is the UDP port of apt-p2p's LAN announcements on both groups. It is
// not BEP 14's 6771: BitTorrent clients listening there never see apt-p2p's
// messages, and ours never see theirs (wire/doc.go, "LAN discovery").
const Port = 9976

// The multicast groups: BEP 14's organization-local scope groups (RFC 2365
// 239.192/14; IPv6 scope 5, site-local), shared with BitTorrent's Local
// Service Discovery but on Port.
var (
	Group4 = netip.AddrFrom4([4]byte{239, 192, 152, 143})
	Group6 = netip.MustParseAddr("ff15::efc0:988f")
)

// Family is the address family of a group, an interface's addresses or a link.
type Family uint8

const (
	IPv4 Family = 4
	IPv6 Family = 6
)

func (f Family) String() string {
	if f == IPv6 {
		return "IPv6"
	}
	return "IPv4"
}

// Group is the family's multicast group.
func (f Family) Group() netip.Addr {
	if f == IPv6 {
		return Group6
	}
	return Group4
}

// FamilyOf is the family of a (an IPv4-mapped address is IPv4).
func FamilyOf(a netip.Addr) Family {
	if a.Unmap().Is4() {
		return IPv4
	}
	return IPv6
}

// Limits of a message. A message of ours is about 130 bytes; MaxMsgLen leaves
// room for headers a later version adds (unknown headers are skipped) while
// bounding what a hostile sender can make us scan.
const (
	MaxMsgLen  = 512
	MaxHeaders = 16 // header lines, known and unknown
)

// CookieLen is the length of a daemon's cookie in bytes (16 hex digits on the wire).
const CookieLen = 8

// Cookie identifies one run of a daemon: a daemon drops the messages that
// carry its own (multicast loops back to the sender), and a peer whose cookie
// changed has restarted.
type Cookie [CookieLen]byte

const hexDigits = "0123456789abcdef"

func (c Cookie) String() string {
	var b [2 * CookieLen]byte
	for i, x := range c {
		b[2*i], b[2*i+1] = hexDigits[x>>4], hexDigits[x&15]
	}
	return string(b[:])
}

// Msg is one announcement. Parse fills it; it keeps no reference to the
// datagram.
type Msg struct {
	// Group and GroupPort are the Host header: the group and port the message
	// was sent to.
	Group     Family
	GroupPort uint16
	// PeerPort is the sender's HTTP (TCP) port, where peers download from it.
	PeerPort uint16
	// DHTPort is the sender's DHT (UDP) port; with the datagram's source
	// address it is the sender's DHT contact.
	DHTPort uint16
	Cookie  Cookie
	// Reply asks every daemon that hears the message to announce itself soon
	// (randomised and rate-limited): the sender has just started, or just
	// came onto this link, and wants to learn the LAN without waiting for
	// the periodic announcements. Only these "hellos" carry it.
	Reply bool
}

// The wire format, HTTP-like as BEP 14's (wire/doc.go, "LAN discovery").
const (
	requestLine = "APT-P2P-LSD * HTTP/1.1"
	hostPrefix4 = "239.192.152.143:"
	hostPrefix6 = "[ff15::efc0:988f]:"
)

// Parse errors. Every one of them means the datagram is dropped and counted.
var (
	ErrTooLong     = errors.New("lan: message longer than MaxMsgLen")
	ErrRequestLine = errors.New("lan: not an apt-p2p LAN announcement (request line)")
	ErrLine        = errors.New("lan: malformed header line")
	ErrTooMany     = errors.New("lan: more than MaxHeaders header lines")
	ErrDuplicate   = errors.New("lan: header given twice")
	ErrMissing     = errors.New("lan: required header missing (Host, Port, DHT-Port, Cookie)")
	ErrValue       = errors.New("lan: malformed header value")
	ErrTrailing    = errors.New("lan: bytes after the end of the message")
)

// AppendMsg appends m as a datagram to dst. It allocates only when dst lacks
// room (a MaxMsgLen buffer always has it).
func AppendMsg(dst []byte, m *Msg) []byte {
	dst = append(dst, requestLine...)
	dst = append(dst, "\r\nHost: "...)
	if m.Group == IPv6 {
		dst = append(dst, hostPrefix6...)
	} else {
		dst = append(dst, hostPrefix4...)
	}
	dst = appendUint(dst, m.GroupPort)
	dst = append(dst, "\r\nPort: "...)
	dst = appendUint(dst, m.PeerPort)
	dst = append(dst, "\r\nDHT-Port: "...)
	dst = appendUint(dst, m.DHTPort)
	dst = append(dst, "\r\nCookie: "...)
	for _, x := range m.Cookie {
		dst = append(dst, hexDigits[x>>4], hexDigits[x&15])
	}
	if m.Reply {
		dst = append(dst, "\r\nReply: yes"...)
	}
	return append(dst, "\r\n\r\n"...)
}

func appendUint(dst []byte, v uint16) []byte {
	var b [5]byte
	i := len(b)
	for {
		i--
		b[i] = byte('0' + v%10)
		v /= 10
		if v == 0 {
			break
		}
	}
	return append(dst, b[i:]...)
}

// Header bits, for duplicates and required ones.
const (
	hHost = 1 << iota
	hPort
	hDHTPort
	hCookie
	hReply
	hRequired = hHost | hPort | hDHTPort | hCookie
)

// Parse decodes datagram b into m. It is strict about what it knows — the
// request line, CRLF line ends, each known header at most once, ports
// 1–65535 in decimal without leading zeros, a 16-digit hex cookie — and
// skips headers it does not know (a later version's), up to MaxHeaders lines.
// Header names are case-insensitive, as in HTTP; values may have spaces or
// tabs around them. It does not allocate. On error m is undefined.
func (m *Msg) Parse(b []byte) error {
	*m = Msg{}
	if len(b) > MaxMsgLen {
		return ErrTooLong
	}
	line, rest, ok := cutLine(b)
	if !ok || string(line) != requestLine {
		return ErrRequestLine
	}
	var seen, n int
	for {
		line, rest, ok = cutLine(rest)
		if !ok {
			return ErrLine
		}
		if len(line) == 0 {
			break
		}
		if n++; n > MaxHeaders {
			return ErrTooMany
		}
		colon := -1
		for i, c := range line {
			if c == ':' {
				colon = i
				break
			}
			if !isTokenChar(c) {
				return ErrLine
			}
		}
		if colon <= 0 {
			return ErrLine
		}
		name, val := line[:colon], trimSpace(line[colon+1:])
		for _, c := range val {
			if c < 0x20 && c != '\t' || c == 0x7f {
				return ErrLine
			}
		}
		var bit int
		switch {
		case equalFold(name, "Host"):
			bit = hHost
			if err := m.parseHost(val); err != nil {
				return err
			}
		case equalFold(name, "Port"):
			bit = hPort
			p, err := parsePort(val)
			if err != nil {
				return err
			}
			m.PeerPort = p
		case equalFold(name, "DHT-Port"):
			bit = hDHTPort
			p, err := parsePort(val)
			if err != nil {
				return err
			}
			m.DHTPort = p
		case equalFold(name, "Cookie"):
			bit = hCookie
			if len(val) != 2*CookieLen {
				return ErrValue
			}
			for i := range m.Cookie {
				hi, ok1 := unhex(val[2*i])
				lo, ok2 := unhex(val[2*i+1])
				if !ok1 || !ok2 {
					return ErrValue
				}
				m.Cookie[i] = hi<<4 | lo
			}
		case equalFold(name, "Reply"):
			bit = hReply
			if !equalFold(val, "yes") {
				return ErrValue
			}
			m.Reply = true
		default:
			continue // a later version's header
		}
		if seen&bit != 0 {
			return ErrDuplicate
		}
		seen |= bit
	}
	if seen&hRequired != hRequired {
		return ErrMissing
	}
	// BEP 14's messages end with an extra empty line; tolerate one.
	if len(rest) != 0 && string(rest) != "\r\n" {
		return ErrTrailing
	}
	return nil
}

func (m *Msg) parseHost(v []byte) error {
	var p []byte
	switch {
	case hasPrefix(v, hostPrefix4):
		m.Group, p = IPv4, v[len(hostPrefix4):]
	case hasPrefix(v, hostPrefix6):
		m.Group, p = IPv6, v[len(hostPrefix6):]
	default:
		return ErrValue
	}
	port, err := parsePort(p)
	if err != nil {
		return err
	}
	m.GroupPort = port
	return nil
}

// cutLine splits b at the first CRLF. ok is false when there is none, or
// when a lone CR or LF comes first.
func cutLine(b []byte) (line, rest []byte, ok bool) {
	for i, c := range b {
		switch c {
		case '\r':
			if i+1 < len(b) && b[i+1] == '\n' {
				return b[:i], b[i+2:], true
			}
			return nil, nil, false
		case '\n':
			return nil, nil, false
		}
	}
	return nil, nil, false
}

func parsePort(v []byte) (uint16, error) {
	if len(v) == 0 || len(v) > 5 || v[0] == '0' {
		return 0, ErrValue
	}
	var n uint32
	for _, c := range v {
		if c < '0' || c > '9' {
			return 0, ErrValue
		}
		n = n*10 + uint32(c-'0')
	}
	if n > 65535 {
		return 0, ErrValue
	}
	return uint16(n), nil
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

// isTokenChar reports whether c may appear in a header name (RFC 9110 tchar).
func isTokenChar(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	switch c {
	case '!', '#', '$', '%', '&', '\'', '*', '+', '-', '.', '^', '_', '`', '|', '~':
		return true
	}
	return false
}

func trimSpace(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t') {
		b = b[:len(b)-1]
	}
	return b
}

func hasPrefix(b []byte, p string) bool { return len(b) >= len(p) && string(b[:len(p)]) == p }

// equalFold compares ASCII case-insensitively.
func equalFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range b {
		x, y := b[i], s[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}
