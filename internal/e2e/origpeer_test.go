package e2e

import (
	"crypto/rand"
	"crypto/sha1"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/apt-p2p/apt-p2p/wire"
)

// origNode is a test double of an IPv4-only original apt-p2p node (reference
// shared/reference/apt-p2p-original.md §2.2–§2.8, §3.2–§3.3, §4.4), written
// from the reference by hand with the general bencode codec, not the
// engine's: it joins through a daemon, answers the daemon's queries the way
// the original did (so the daemon keeps it in its IPv4 table and queries it
// during lookups), and asks for nodes, values and files.
//
// Every datagram it receives is held to what an original peer could take:
// at most 1472 bytes, strict bencode, a 20-byte t, only the envelope keys
// the original sends, exactly the original's argument names per method (no
// want: the original answered an unknown argument with 204), no nodes6,
// nodes as a list of 26-byte strings, values whose c is 6 bytes. A breach
// is recorded in violations; the test fails on any.
type origNode struct {
	t    *testing.T
	conn net.PacketConn
	id   [20]byte
	self netip.AddrPort

	mu         sync.Mutex
	waiting    map[string]chan *wire.Value // by transaction ID
	violations []string
	received   int // datagrams
	queries    map[string]int
	askers     map[netip.Addr]int // queries by sender
	done       chan struct{}
}

// newOrigNode serves on conn (an IPv4 UDP socket in its host's namespace).
func newOrigNode(t *testing.T, conn net.PacketConn) *origNode {
	o := &origNode{t: t, conn: conn, waiting: map[string]chan *wire.Value{}, queries: map[string]int{}, askers: map[netip.Addr]int{}, done: make(chan struct{})}
	rand.Read(o.id[:])
	copy(o.id[16:], "A017") // the original's version suffix (§2.3)
	o.self = conn.LocalAddr().(*net.UDPAddr).AddrPort()
	go o.serve()
	t.Cleanup(func() { conn.Close(); <-o.done })
	return o
}

func (o *origNode) violate(format string, a ...any) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.violations = append(o.violations, fmt.Sprintf(format, a...))
}

// serve reads every datagram, checks it, answers queries and hands replies
// to the calls waiting for them.
func (o *origNode) serve() {
	defer close(o.done)
	buf := make([]byte, 65536)
	for {
		n, from, err := o.conn.ReadFrom(buf)
		if err != nil {
			return
		}
		pkt := append([]byte(nil), buf[:n]...)
		o.mu.Lock()
		o.received++
		o.mu.Unlock()
		m, ok := o.check(pkt, from)
		if !ok {
			continue
		}
		switch string(m.Get("y").Str) {
		case "q":
			o.answer(m, from)
		case "r", "e":
			o.mu.Lock()
			ch := o.waiting[string(m.Get("t").Str)]
			delete(o.waiting, string(m.Get("t").Str))
			o.mu.Unlock()
			if ch != nil {
				ch <- m
			}
		}
	}
}

// originalArgs are the argument names of each method the original accepts.
var originalArgs = map[string][]string{
	"ping": {"id"}, "join": {"id"}, "find_node": {"id", "target"}, "find_value": {"id", "key"},
	"get_value": {"id", "key", "num"}, "store_value": {"id", "key", "token", "value"},
}

// check holds a received datagram to the original's formats.
func (o *origNode) check(pkt []byte, from net.Addr) (*wire.Value, bool) {
	if len(pkt) > wire.MaxPacketIPv4 {
		o.violate("%d-byte datagram from %v", len(pkt), from)
	}
	v, err := wire.Decode(pkt)
	if err != nil || v.Kind != wire.KindDict {
		o.violate("undecodable datagram from %v: %v %q", from, err, pkt)
		return nil, false
	}
	for _, e := range v.Dict {
		switch string(e.Key) {
		case "t", "y", "q", "a", "r", "e":
		default:
			o.violate("envelope key %q from %v", e.Key, from)
		}
	}
	if t := v.Get("t"); t == nil || len(t.Str) != 20 {
		o.violate("transaction ID not 20 bytes from %v", from)
		return nil, false
	}
	switch y := v.Get("y"); {
	case y == nil:
		o.violate("no y from %v", from)
		return nil, false
	case string(y.Str) == "q":
		a := v.Get("a")
		want, known := originalArgs[string(v.Get("q").Str)]
		if !known || a == nil || len(a.Dict) != len(want) {
			o.violate("query %q with arguments %v from %v", v.Get("q").Str, keysOf(a), from)
			break
		}
		for i, e := range a.Dict {
			if string(e.Key) != want[i] {
				o.violate("query %q with arguments %v from %v", v.Get("q").Str, keysOf(a), from)
			}
		}
		if val := a.Get("value"); val != nil {
			o.checkValue(val.Str, from) // a daemon storing its value on us
		}
	case string(y.Str) == "r":
		r := v.Get("r")
		if r == nil || r.Kind != wire.KindDict {
			o.violate("reply without r from %v", from)
			return nil, false
		}
		for _, e := range r.Dict {
			switch string(e.Key) {
			case "id", "nodes", "token", "num", "values", "ip_addr", "port":
			default:
				o.violate("reply key %q from %v", e.Key, from)
			}
		}
		if nodes := r.Get("nodes"); nodes != nil {
			if nodes.Kind != wire.KindList {
				o.violate("nodes not a list from %v", from)
			}
			for _, nd := range nodes.List {
				if len(nd.Str) != wire.CompactNodeLen {
					o.violate("a %d-byte node from %v", len(nd.Str), from)
				}
			}
		}
		if vals := r.Get("values"); vals != nil {
			for _, val := range vals.List {
				o.checkValue(val.Str, from)
			}
		}
	}
	return &v, true
}

// checkValue: a value under a file's key is a dict whose c the original can
// uncompact (6 bytes, §3.3); piece strings ({t}) have no c.
func (o *origNode) checkValue(raw []byte, from net.Addr) {
	d, err := wire.Decode(raw)
	if err != nil || d.Kind != wire.KindDict {
		o.violate("value %q from %v is not a dict", raw, from)
		return
	}
	if c := d.Get("c"); c != nil && len(c.Str) != wire.CompactPeerLen {
		o.violate("value with a %d-byte contact from %v: %q", len(c.Str), from, raw)
	}
}

func keysOf(v *wire.Value) []string {
	if v == nil {
		return nil
	}
	var out []string
	for _, e := range v.Dict {
		out = append(out, string(e.Key))
	}
	return out
}

// answer replies to a query as the original would, with no nodes and no
// values of its own (it is a newcomer), and a token for store_value.
func (o *origNode) answer(m *wire.Value, from net.Addr) {
	q := string(m.Get("q").Str)
	o.mu.Lock()
	o.queries[q]++
	o.askers[from.(*net.UDPAddr).AddrPort().Addr().Unmap()]++
	o.mu.Unlock()
	r := map[string]any{"id": o.id[:]}
	switch q {
	case "find_node":
		r["nodes"], r["token"] = []any{}, make([]byte, 20)
	case "find_value":
		r["nodes"], r["num"] = []any{}, 0
	case "get_value":
		r["values"] = []any{}
	case "join":
		ap := from.(*net.UDPAddr).AddrPort()
		r["ip_addr"], r["port"] = ap.Addr().String(), int(ap.Port())
	}
	pkt, _ := wire.Encode(nil, map[string]any{"t": m.Get("t").Str, "y": "r", "r": r})
	o.conn.WriteTo(pkt, from)
}

// call sends a query and waits for its reply (r dict) or error.
func (o *origNode) call(to netip.AddrPort, method string, args map[string]any) (*wire.Value, error) {
	var tid [20]byte
	rand.Read(tid[:])
	args["id"] = o.id[:]
	pkt, err := wire.Encode(nil, map[string]any{"t": tid[:], "y": "q", "q": method, "a": args})
	if err != nil {
		return nil, err
	}
	ch := make(chan *wire.Value, 1)
	o.mu.Lock()
	o.waiting[string(tid[:])] = ch
	o.mu.Unlock()
	for try := 0; try < 3; try++ { // the original's resends (§2.9), shortened
		if _, err := o.conn.WriteTo(pkt, net.UDPAddrFromAddrPort(to)); err != nil {
			return nil, err
		}
		select {
		case m := <-ch:
			if e := m.Get("e"); e != nil {
				return nil, fmt.Errorf("%s: error %v", method, e.List)
			}
			return m.Get("r"), nil
		case <-time.After(2 * time.Second):
		}
	}
	return nil, fmt.Errorf("%s to %v: timeout", method, to)
}

// nodes decodes a reply's nodes list.
func nodesOf(r *wire.Value) []netip.AddrPort {
	var out []netip.AddrPort
	if r == nil || r.Get("nodes") == nil {
		return nil
	}
	for _, nd := range r.Get("nodes").List {
		if _, ap, err := wire.ParseCompactNode(nd.Str); err == nil {
			out = append(out, ap)
		}
	}
	return out
}

// values runs find_value then get_value (num 0: all) on one node.
func (o *origNode) values(to netip.AddrPort, key [20]byte) ([][]byte, error) {
	r, err := o.call(to, "find_value", map[string]any{"key": key[:]})
	if err != nil {
		return nil, err
	}
	if n := r.Get("num"); n == nil || n.Int == 0 {
		return nil, nil
	}
	r, err = o.call(to, "get_value", map[string]any{"key": key[:], "num": 0})
	if err != nil {
		return nil, err
	}
	var out [][]byte
	if vs := r.Get("values"); vs != nil {
		for _, v := range vs.List {
			out = append(out, v.Str)
		}
	}
	return out, nil
}

// fetch downloads the file whose full hash is h from the contact of a value
// as the original does (§3.3, §4.4): piece hashes from the value (t, or h
// through the DHT node dht), GET /~/<quote_plus(hash)> with a Range per
// 512 KiB piece, every piece checked, then the whole file.
func (o *origNode) fetch(client *http.Client, dht netip.AddrPort, raw, h []byte, sha256hex string, size int64) error {
	v, err := wire.Decode(raw)
	if err != nil || v.Get("c") == nil || len(v.Get("c").Str) != 6 {
		return fmt.Errorf("value %q: not one the original can use", raw)
	}
	c := v.Get("c").Str
	addr := net.JoinHostPort(net.IP(c[:4]).String(), strconv.Itoa(int(c[4])<<8|int(c[5])))
	var pieces []byte
	switch {
	case v.Get("t") != nil:
		pieces = v.Get("t").Get("t").Str
	case v.Get("h") != nil:
		vals, err := o.values(dht, [20]byte(v.Get("h").Str))
		if err != nil {
			return err
		}
		for _, ps := range vals {
			if d, err := wire.Decode(ps); err == nil && d.Get("t") != nil && sha1.Sum(d.Get("t").Str) == [20]byte(v.Get("h").Str) {
				pieces = d.Get("t").Str
			}
		}
	}
	const pieceSize = 512 << 10
	n := (size + pieceSize - 1) / pieceSize
	var body []byte
	for i := int64(0); i < n; i++ {
		req, _ := http.NewRequest("GET", "http://"+addr+"/~/"+quotePlus(h), nil)
		req.Header.Set("User-Agent", "apt-p2p/0.1.5 (twisted/8.1.0 twisted.web2/8.1.0)")
		if n > 1 {
			req.Header.Set("Range", fmt.Sprintf("bytes=%d-%d", i*pieceSize, min((i+1)*pieceSize, size)-1))
		}
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || (resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusPartialContent) {
			return fmt.Errorf("piece %d from %s: HTTP %d %v", i, addr, resp.StatusCode, err)
		}
		if pieces != nil && sha1.Sum(b) != [20]byte(pieces[20*i:20*i+20]) {
			return fmt.Errorf("piece %d from %s does not match its piece hash", i, addr)
		}
		body = append(body, b...)
	}
	if fmt.Sprintf("%x", sha256.Sum256(body)) != sha256hex || int64(len(body)) != size {
		return errors.New("the file does not verify")
	}
	return nil
}

// quotePlus is Python 2's urllib.quote_plus (§4.4).
func quotePlus(b []byte) string {
	var s []byte
	for _, c := range b {
		switch {
		case c >= 'A' && c <= 'Z', c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '_', c == '.', c == '-':
			s = append(s, c)
		case c == ' ':
			s = append(s, '+')
		default:
			s = fmt.Appendf(s, "%%%02X", c)
		}
	}
	return string(s)
}

// askedBy reports whether a query came from a.
func (o *origNode) askedBy(a netip.Addr) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.askers[a] > 0
}

// report is what the double saw: datagrams, queries by method, breaches.
func (o *origNode) report() (received int, queries map[string]int, violations []string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	q := map[string]int{}
	for k, v := range o.queries {
		q[k] = v
	}
	return o.received, q, append([]string(nil), o.violations...)
}
