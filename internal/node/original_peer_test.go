package node_test

import (
	"bytes"
	"crypto/rand"
	"crypto/sha1"
	"crypto/sha256"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/apt-p2p/apt-p2p/internal/aptindex"
	"github.com/apt-p2p/apt-p2p/internal/testrepo"
	"github.com/apt-p2p/apt-p2p/wire"
)

// originalPeer is a test double of an original apt-p2p downloader: it speaks
// only the formats of the reference (shared/reference/apt-p2p-original.md
// §2.2, §2.5, §3.2–§3.3, §4.4), written out here by hand: get_value with a
// 20-byte transaction ID over UDP, values read as dicts of which it knows c,
// t, h and l (other keys ignored, as a Python dict lookup does), piece
// strings from the DHT, and GET /~/<quote_plus(hash)> with Range per 512 KiB
// piece and no extension header.
type originalPeer struct {
	t    *testing.T
	conn *net.UDPConn
	id   [20]byte
}

func newOriginalPeer(t *testing.T) *originalPeer {
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.ParseIP("127.0.0.9")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	p := &originalPeer{t: t, conn: c}
	rand.Read(p.id[:])
	return p
}

func bstr(b []byte) string { return strconv.Itoa(len(b)) + ":" + string(b) }

// getValue asks the node at addr for every value under key (§2.5 get_value, num 0).
func (p *originalPeer) getValue(addr string, key [20]byte) [][]byte {
	p.t.Helper()
	var tid [20]byte
	rand.Read(tid[:])
	req := "d1:ad2:id" + bstr(p.id[:]) + "3:key" + bstr(key[:]) + "3:numi0ee1:q9:get_value1:t" + bstr(tid[:]) + "1:y1:qe"
	to, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		p.t.Fatal(err)
	}
	if _, err := p.conn.WriteToUDP([]byte(req), to); err != nil {
		p.t.Fatal(err)
	}
	buf := make([]byte, 1500)
	p.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		n, _, err := p.conn.ReadFromUDP(buf)
		if err != nil {
			p.t.Fatalf("get_value: %v", err)
		}
		if n > 1472 {
			p.t.Fatalf("reply of %d bytes exceeds the packet limit", n)
		}
		msg, err := wire.Decode(buf[:n])
		if err != nil || string(msg.Get("t").Str) != string(tid[:]) {
			continue
		}
		if string(msg.Get("y").Str) != "r" {
			p.t.Fatalf("get_value answered %q", buf[:n])
		}
		var out [][]byte
		if vs := msg.Get("r").Get("values"); vs != nil {
			for _, v := range vs.List {
				out = append(out, v.Str)
			}
		}
		return out
	}
}

// fetch downloads the file with full hash h, whose expected SHA-256 and size
// the index gives, from the peers the DHT node at dht lists under key, as the
// original does; it returns false (the original then goes to the mirror)
// when no peer could give it, and fails the test if it ever accepts wrong
// bytes.
func (p *originalPeer) fetch(dht string, key [20]byte, h []byte, sha256hex string, size int64) (got bool, peers int) {
	p.t.Helper()
	for _, raw := range p.getValue(dht, key) {
		v, err := wire.Decode(raw)
		if err != nil || v.Kind != wire.KindDict || v.Get("c") == nil || len(v.Get("c").Str) != 6 {
			continue // the original would have crashed (§8.2 item 6); either way not a source
		}
		peers++
		c := v.Get("c").Str
		addr := net.JoinHostPort(net.IP(c[:4]).String(), strconv.Itoa(int(c[4])<<8|int(c[5])))
		var pieces []byte
		switch {
		case v.Get("t") != nil:
			pieces = v.Get("t").Get("t").Str
		case v.Get("h") != nil:
			for _, ps := range p.getValue(dht, [20]byte(v.Get("h").Str)) {
				if d, err := wire.Decode(ps); err == nil && d.Get("t") != nil && sha1.Sum(d.Get("t").Str) == [20]byte(v.Get("h").Str) {
					pieces = d.Get("t").Str
				}
			}
		}
		body, ok := p.httpGet(addr, h, size, pieces)
		if !ok {
			continue
		}
		if sum := sha256.Sum256(body); fmt.Sprintf("%x", sum) != sha256hex || int64(len(body)) != size {
			p.t.Fatalf("the original peer was handed %d bytes that do not verify", len(body))
		}
		return true, peers
	}
	return false, peers
}

// httpGet fetches piece by piece (one plain GET for a one-piece file) and
// checks each piece against pieces when known.
func (p *originalPeer) httpGet(addr string, h []byte, size int64, pieces []byte) ([]byte, bool) {
	const pieceSize = 512 << 10
	u := "http://" + addr + "/~/" + quotePlusPython(h)
	n := (size + pieceSize - 1) / pieceSize
	var out []byte
	for i := int64(0); i < n; i++ {
		req, _ := http.NewRequest("GET", u, nil)
		req.Header.Set("User-Agent", "apt-p2p/0.1.5 (twisted/8.1.0 twisted.web2/8.1.0)")
		if n > 1 {
			end := min((i+1)*pieceSize, size) - 1
			req.Header.Set("Range", fmt.Sprintf("bytes=%d-%d", i*pieceSize, end))
		}
		resp, err := client.Do(req)
		if err != nil {
			return nil, false
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		want := http.StatusOK
		if n > 1 {
			want = http.StatusPartialContent
		}
		if err != nil || resp.StatusCode != want {
			return nil, false // §4.6: a 404 or error drops the source
		}
		if pieces != nil && sha1.Sum(b) != [20]byte(pieces[20*i:20*i+20]) {
			p.t.Fatalf("piece %d from %s does not match its piece hash", i, addr)
		}
		out = append(out, b...)
	}
	return out, true
}

// quotePlusPython is Python 2's urllib.quote_plus (§4.4).
func quotePlusPython(b []byte) string {
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

// TestOriginalPeerAndDownloadsInProgress (issue 10): an original peer looks a
// file up while a daemon downloads it and after it has finished. Mid-download
// it finds nothing under the file's key (the daemon's claim is under the
// partial key, which the original never asks for) and, asking the daemon
// directly as with a stale value, gets a 404, never a partial body, so it
// goes to the mirror as it would anyway. Once the daemon has finished, it
// finds it under the key, in the value form of the reference, and downloads
// the file piece by piece with every piece verified.
func TestOriginalPeerAndDownloadsInProgress(t *testing.T) {
	repo, base := sharedRepo(t)
	m := serveMirror(t, base)
	a, b := pair(t, nil, nil)
	aptUpdate(t, a, m, repo)
	orig := newOriginalPeer(t)
	for _, name := range []string{"tiny", "multi"} {
		p := repo.Package(name)
		site := m.Addr()
		bd, path := aptindex.SplitPath(site, "/debian/"+p.Filename, a.n.Index().BaseDirs)
		waitFor(t, "A's index to know "+name, 10*time.Second, func() (bool, string) { return indexed(a, m, p), "" })
		ds, _ := a.n.Index().Lookup(site, bd, path)
		key, _ := ds.Key()
		kt, _ := ds.KeyType()
		h := ds.Get(kt)

		// A downloads it slowly (2 s at the mirror's pace).
		m.SetFault("/debian/"+p.Filename, testrepo.Fault{Rate: max(p.Size/2, 16<<10)})
		done := make(chan struct{})
		go func() { defer close(done); wantPackage(t, a, m, p) }()
		waitFor(t, "A to be mid-download", 10*time.Second, func() (bool, string) {
			act := a.n.ActiveDownloads()
			return len(act) == 1 && act[0].Done > 0, fmt.Sprintf("%+v", act)
		})
		for _, d := range []*daemon{a, b} {
			if got, peers := orig.fetch(d.dhtAddr(), key, h, p.SHA256, p.Size); got || peers != 0 {
				t.Fatalf("%s mid-download: the original peer found %d peer(s) under the key (got the file: %v)", name, peers, got)
			}
		}
		if body, ok := orig.httpGet(a.addr(), h, p.Size, nil); ok {
			t.Fatalf("%s mid-download: the original peer got %d bytes from a daemon that is still downloading", name, len(body))
		}
		<-done
		m.SetFault("/debian/"+p.Filename, testrepo.Fault{})

		waitFor(t, "A's announcement of "+name, 10*time.Second, func() (bool, string) {
			return len(orig.getValue(b.dhtAddr(), key)) > 0, ""
		})
		for _, raw := range orig.getValue(b.dhtAddr(), key) {
			if v, err := wire.Decode(raw); err != nil || v.Get("p") != nil {
				t.Errorf("%s: a value under the file's key carries a claim: %q", name, raw)
			}
		}
		if got, peers := orig.fetch(b.dhtAddr(), key, h, p.SHA256, p.Size); !got || peers != 1 {
			t.Fatalf("%s finished: the original peer found %d peer(s) and got the file: %v", name, peers, got)
		}
	}
	if !bytes.Equal([]byte(quotePlusPython([]byte{0xca, 0x20, 0xb8, '+', '~'})), []byte("%CA+%B8%2B%7E")) {
		t.Fatal("quote_plus double differs from the reference's rule")
	}
}
