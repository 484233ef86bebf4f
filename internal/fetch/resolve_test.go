package fetch

import (
	"bytes"
	"context"
	"crypto/sha1"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/apt-p2p/apt-p2p/wire"
)

func contact(ip string, port uint16) netip.AddrPort {
	return netip.AddrPortFrom(netip.MustParseAddr(ip), port)
}

// fakePieces returns n random piece hashes.
func fakePieces(n int, seed uint64) []byte {
	b, _ := testFile(int64(20*n), seed)
	return b
}

func noDHT(t *testing.T) func(context.Context, wire.ID) ([][]byte, error) {
	return func(context.Context, wire.ID) ([][]byte, error) {
		t.Error("dhtGet called")
		return nil, errors.New("unexpected")
	}
}

func noHTTP(t *testing.T) func(context.Context, netip.AddrPort, wire.ID) ([]byte, error) {
	return func(context.Context, netip.AddrPort, wire.ID) ([]byte, error) {
		t.Error("httpGet called")
		return nil, errors.New("unexpected")
	}
}

func TestResolveInlineMajority(t *testing.T) {
	t.Parallel()
	good := fakePieces(3, 30)
	bad := bytes.Repeat([]byte{7}, len(good))
	vals := []wire.PeerValue{
		{Contact: contact("10.0.0.1", 1), Form: wire.FormInline, Pieces: good},
		{Contact: contact("10.0.0.2", 1), Form: wire.FormInline, Pieces: bad},
		{Contact: contact("10.0.0.3", 1), Form: wire.FormInline, Pieces: good},
		{Contact: contact("10.0.0.4", 1), Form: wire.FormInline, Pieces: good[:40]}, // wrong length: ignored
	}
	p, err := ResolvePieces(context.Background(), 3*PieceSize, vals, noDHT(t), noHTTP(t))
	if err != nil || !bytes.Equal(p, good) {
		t.Fatalf("got %x, %v", p, err)
	}
	if &p[0] == &good[0] {
		t.Fatal("result aliases the input values")
	}
}

// One address announcing a bogus piece string from many ports counts once;
// two distinct addresses pointing at the real one through 'h' win.
func TestResolveSybilByDistinctIP(t *testing.T) {
	t.Parallel()
	good := fakePieces(10, 31)
	bad := bytes.Repeat([]byte{9}, len(good))
	var vals []wire.PeerValue
	for port := range uint16(20) {
		vals = append(vals, wire.PeerValue{Contact: contact("10.6.6.6", 1000+port), Form: wire.FormInline, Pieces: bad})
	}
	h := wire.ID(sha1.Sum(good))
	vals = append(vals,
		wire.PeerValue{Contact: contact("10.0.0.1", 80), Form: wire.FormHash, PiecesHash: h},
		wire.PeerValue{Contact: contact("10.0.0.2", 80), Form: wire.FormHash, PiecesHash: h})
	var asked wire.ID
	dhtGet := func(_ context.Context, key wire.ID) ([][]byte, error) {
		asked = key
		return [][]byte{
			[]byte("garbage"),
			wire.AppendPieceString(nil, bad), // valid encoding, wrong hash
			wire.AppendPieceString(nil, good),
		}, nil
	}
	p, err := ResolvePieces(context.Background(), 10*PieceSize, vals, dhtGet, noHTTP(t))
	if err != nil || !bytes.Equal(p, good) {
		t.Fatalf("got %d bytes, %v; want the 'h' piece string", len(p), err)
	}
	if asked != h {
		t.Fatalf("dhtGet asked %v, want %v", asked, h)
	}
}

func TestResolveNoneOrTie(t *testing.T) {
	t.Parallel()
	good := fakePieces(3, 32)
	other := bytes.Repeat([]byte{1}, len(good))
	none := []wire.PeerValue{
		{Contact: contact("10.0.0.1", 1), Form: wire.FormContact},
		{Contact: contact("10.0.0.2", 1), Form: wire.FormContact},
		{Contact: contact("10.0.0.3", 1), Form: wire.FormInline, Pieces: good},
	}
	if p, err := ResolvePieces(context.Background(), 3*PieceSize, none, noDHT(t), noHTTP(t)); p != nil || err != nil {
		t.Fatalf("majority without piece info: got %d bytes, %v", len(p), err)
	}
	tie := []wire.PeerValue{
		{Contact: contact("10.0.0.1", 1), Form: wire.FormInline, Pieces: good},
		{Contact: contact("10.0.0.2", 1), Form: wire.FormInline, Pieces: other},
	}
	if p, err := ResolvePieces(context.Background(), 3*PieceSize, tie, noDHT(t), noHTTP(t)); p != nil || err != nil {
		t.Fatalf("tie: got %d bytes, %v", len(p), err)
	}
	if p, err := ResolvePieces(context.Background(), PieceSize, tie, noDHT(t), noHTTP(t)); p != nil || err != nil {
		t.Fatalf("single piece: got %d bytes, %v", len(p), err)
	}
}

// pieceStringServer serves /~/... on loopback: the first `bad` requests get a
// wrong piece string, later ones the right one; it records concurrency.
type pieceStringServer struct {
	body, badBody []byte
	bad           int32
	n, cur, peak  atomic.Int32
	addr          netip.AddrPort
}

func newPieceStringServer(t *testing.T, good []byte, bad int32) *pieceStringServer {
	ps := &pieceStringServer{body: wire.AppendPieceString(nil, good), badBody: wire.AppendPieceString(nil, bytes.Repeat([]byte{3}, len(good))), bad: bad}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ps.addr = netip.MustParseAddrPort(ln.Addr().String())
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c := ps.cur.Add(1)
		defer ps.cur.Add(-1)
		for {
			p := ps.peak.Load()
			if c <= p || ps.peak.CompareAndSwap(p, c) {
				break
			}
		}
		time.Sleep(30 * time.Millisecond) // let concurrent requests overlap
		w.Header().Set("Content-Type", "application/x-bencoded")
		if ps.n.Add(1) <= ps.bad {
			w.Write(ps.badBody) //nolint:errcheck
			return
		}
		w.Write(ps.body) //nolint:errcheck
	})}
	go srv.Serve(ln) //nolint:errcheck
	t.Cleanup(func() { srv.Close() })
	return ps
}

// A real HTTP GET of the piece string (what the node passes as httpGet; the
// peer address is where the test server listens, the port tells peers apart).
func testHTTPGet(srv *pieceStringServer, calls *atomic.Int32) func(context.Context, netip.AddrPort, wire.ID) ([]byte, error) {
	return func(ctx context.Context, peer netip.AddrPort, h wire.ID) ([]byte, error) {
		calls.Add(1)
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("http://%s/~/%x", srv.addr, h[:]), nil)
		if err != nil {
			return nil, err
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return nil, err
		}
		defer resp.Body.Close()
		return io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	}
}

func TestResolveLinkOverHTTP(t *testing.T) {
	t.Parallel()
	good := fakePieces(100, 33)
	l := wire.ID(sha1.Sum(good))
	srv := newPieceStringServer(t, good, 5) // the first five answers are wrong
	var vals []wire.PeerValue
	for i := range 8 {
		vals = append(vals, wire.PeerValue{Contact: contact(fmt.Sprintf("10.1.0.%d", i+1), 9977), Form: wire.FormLink, PiecesHash: l})
	}
	var calls atomic.Int32
	p, err := ResolvePieces(context.Background(), 100*PieceSize, vals, noDHT(t), testHTTPGet(srv, &calls))
	if err != nil || !bytes.Equal(p, good) {
		t.Fatalf("got %d bytes, %v", len(p), err)
	}
	if pk := srv.peak.Load(); pk > maxPieceStringFetches || pk < 2 {
		t.Fatalf("peak concurrent piece-string fetches %d, want 2..%d", pk, maxPieceStringFetches)
	}
	if c := calls.Load(); c < 6 {
		t.Fatalf("%d fetches: wrong answers were accepted", c)
	}
}

// The same piece string announced as 'h' and 'l' is one version: when the
// DHT lookup fails, the peers that offer it over HTTP are asked.
func TestResolveHashFallsBackToLink(t *testing.T) {
	t.Parallel()
	good := fakePieces(40, 34)
	id := wire.ID(sha1.Sum(good))
	srv := newPieceStringServer(t, good, 0)
	vals := []wire.PeerValue{
		{Contact: contact("10.2.0.1", 9977), Form: wire.FormHash, PiecesHash: id},
		{Contact: contact("10.2.0.2", 9977), Form: wire.FormLink, PiecesHash: id},
		{Contact: contact("10.2.0.3", 9977), Form: wire.FormInline, Pieces: bytes.Repeat([]byte{5}, len(good))},
	}
	dhtGet := func(context.Context, wire.ID) ([][]byte, error) { return nil, errors.New("lookup timed out") }
	var calls atomic.Int32
	p, err := ResolvePieces(context.Background(), 40*PieceSize, vals, dhtGet, testHTTPGet(srv, &calls))
	if err != nil || !bytes.Equal(p, good) {
		t.Fatalf("got %d bytes, %v", len(p), err)
	}
}

func TestResolveCancelled(t *testing.T) {
	t.Parallel()
	good := fakePieces(100, 35)
	l := wire.ID(sha1.Sum(good))
	vals := []wire.PeerValue{
		{Contact: contact("10.3.0.1", 1), Form: wire.FormLink, PiecesHash: l},
		{Contact: contact("10.3.0.2", 1), Form: wire.FormLink, PiecesHash: l},
	}
	ctx, cancel := context.WithCancel(context.Background())
	var once sync.Once
	httpGet := func(ctx context.Context, _ netip.AddrPort, _ wire.ID) ([]byte, error) {
		once.Do(cancel)
		<-ctx.Done()
		return nil, ctx.Err()
	}
	if p, err := ResolvePieces(ctx, 100*PieceSize, vals, nil, httpGet); p != nil || !errors.Is(err, context.Canceled) {
		t.Fatalf("got %d bytes, %v", len(p), err)
	}
}
