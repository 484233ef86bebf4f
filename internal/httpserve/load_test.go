package httpserve

import (
	"bufio"
	"io"
	"net/http"
	"testing"
)

func TestLoadHeaderRoundTrip(t *testing.T) {
	for _, l := range []Load{
		{Uploads: 3, MaxUploads: 32, Rate: 4812345, Capacity: 5242880, PerPeer: 1048576},
		{Uploads: 0, MaxUploads: 0, Rate: 0},
	} {
		v := AppendLoad(nil, l)
		got, ok := ParseLoad(v)
		if !ok || got != l {
			t.Errorf("%q: parsed %+v %v, want %+v", v, got, ok, l)
		}
	}
	for v, want := range map[string]Load{
		"capacity=10; later=x;uploads=1/2 ;rate=5": {Uploads: 1, MaxUploads: 2, Rate: 5, Capacity: 10}, // order free, unknown fields skipped
		"uploads=1/2; what":                        {Uploads: 1, MaxUploads: 2},
	} {
		if got, ok := ParseLoad([]byte(v)); !ok || got != want {
			t.Errorf("%q: parsed %+v %v, want %+v", v, got, ok, want)
		}
	}
	for _, bad := range []string{"", "uploads=1", "uploads=a/2", "rate=-1", "capacity=99999999999999999999", "uploads=1/2; rate=" + string(make([]byte, 300))} {
		if l, ok := ParseLoad([]byte(bad)); ok {
			t.Errorf("%q: accepted as %+v", bad, l)
		}
	}
}

func FuzzParseLoad(f *testing.F) {
	f.Add([]byte("uploads=3/32; rate=4812345; capacity=5242880; peer=1"))
	f.Add([]byte(";;=;uploads=/"))
	f.Fuzz(func(t *testing.T, v []byte) {
		l, ok := ParseLoad(v)
		if !ok {
			return
		}
		if l.Uploads < 0 || l.MaxUploads < 0 || l.Rate < 0 || l.Capacity < 0 || l.PerPeer < 0 {
			t.Fatalf("%q: negative field in %+v", v, l)
		}
		if again, ok := ParseLoad(AppendLoad(nil, l)); !ok || again != l {
			t.Fatalf("%q: %+v does not round-trip (%+v %v)", v, l, again, ok)
		}
	})
}

// Every file response says how busy the peer is: running uploads (this one
// included) and the cap, and the capacity it offers (UPLOAD_LIMIT times
// UPLOAD_WEIGHT) and the per-peer limit; a HEAD and a 503 say so too, the
// 503 with a Retry-After from the limit.
func TestLoadHeader(t *testing.T) {
	const size = 16 << 20 // more than the socket buffers: an unread upload keeps its slot
	c := newMemContent()
	p, _ := writeTemp(t, size, 44)
	c.files[string(fileHash)] = p
	h := NewPeerHandler(c, NewThrottle(Limits{GlobalBytesPerSec: 1 << 20, PerPeerBytesPerSec: 512 << 10, MaxUploads: 2}), nil)
	h.SetUploadWeight(2)
	addr := startServer(t, h.ServeFastHTTP, ServerConfig{})
	target := "/~/" + string(QuotePlus(nil, fileHash))
	for i, ip := range []string{"127.0.0.7", "127.0.0.8"} {
		conn := dialFrom(t, ip, addr)
		defer conn.Close()
		io.WriteString(conn, req("GET", target, ""))
		resp, err := readHeader(bufio.NewReader(conn))
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("upload from %s: %v %v", ip, resp, err)
		}
		l, ok := ParseLoad([]byte(resp.Header.Get(HeaderLoad)))
		if !ok || l.Uploads != i+1 || l.MaxUploads != 2 || l.Capacity != 2<<20 || l.PerPeer != 512<<10 {
			t.Fatalf("upload %d: load header %q (%+v)", i, resp.Header.Get(HeaderLoad), l)
		}
	}
	codes, _, hdrs := rawRequests(t, addr, req("HEAD", target, ""))
	if l, ok := ParseLoad([]byte(hdrs[0][http.CanonicalHeaderKey(HeaderLoad)])); codes[0] != 200 || !ok || l.Uploads != 2 || l.Capacity != 2<<20 {
		t.Fatalf("HEAD: %d, load %q; want 200 with the load (what an unknown peer is asked first)", codes[0], hdrs[0][http.CanonicalHeaderKey(HeaderLoad)])
	}
	codes, _, hdrs = rawRequests(t, addr, req("GET", target, ""))
	l, ok := ParseLoad([]byte(hdrs[0][http.CanonicalHeaderKey(HeaderLoad)]))
	if codes[0] != 503 || !ok || l.Uploads != 2 || l.Capacity != 2<<20 || hdrs[0]["Retry-After"] != "1" {
		t.Fatalf("third upload: %d, load %q, Retry-After %q; want 503 from a full peer, retry after 1 s (2 pieces at 1 MiB/s)",
			codes[0], hdrs[0][http.CanonicalHeaderKey(HeaderLoad)], hdrs[0]["Retry-After"])
	}
}
