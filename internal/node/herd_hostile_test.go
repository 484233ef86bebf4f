package node_test

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"testing"
	"time"

	"github.com/apt-p2p/apt-p2p/internal/aptindex"
	"github.com/apt-p2p/apt-p2p/internal/testrepo"
	"github.com/apt-p2p/apt-p2p/wire"
)

// fakeClaimant is a peer that claims a download under the file's partial key
// (through daemon h's DHT node, whose address it shares) and then serves
// whatever serve writes: it lies about having the file, stalls, or sends
// wrong bytes. The key is the one daemon d's index gives.
func fakeClaimant(t *testing.T, h, d *daemon, m *testrepo.Mirror, p *testrepo.Package, serve http.HandlerFunc) netip.AddrPort {
	t.Helper()
	ln, err := net.Listen("tcp", h.ip+":0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: serve}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	contact := netip.MustParseAddrPort(ln.Addr().String())
	site := m.Addr()
	b, path := aptindex.SplitPath(site, "/debian/"+p.Filename, d.n.Index().BaseDirs)
	ds, ok := d.n.Index().Lookup(site, b, path)
	key, ok2 := ds.Key()
	if !ok || !ok2 {
		t.Fatalf("%s is not in %s's index", p.Name, d.name)
	}
	// It started a moment ago: whoever asks now follows it.
	claim := wire.AppendPeerValue(nil, &wire.PeerValue{Contact: contact, Claim: time.Now().Add(-50 * time.Millisecond).UnixMicro()})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if r, err := h.n.DHT().Put(ctx, wire.PartialKey(key), claim); err != nil || r.Stored == 0 {
		t.Fatalf("storing the fake claim: %+v %v", r, err)
	}
	return contact
}

// TestHostileClaimants: a peer that claims to be downloading a file and then
// has nothing (404), never sends a byte, or sends wrong bytes from its
// "partial file" costs a follower at most its patience: the download still
// ends with the right bytes, from the mirror, and the one that sent wrong
// bytes is banned.
func TestHostileClaimants(t *testing.T) {
	repo, base := sharedRepo(t)
	for _, tc := range []struct {
		name    string
		pkg     string
		serve   func(want []byte) http.HandlerFunc
		banned  bool
		retried bool // apt's first answer may be cut (the wrong bytes were caught at the end)
	}{
		{"claims but has nothing", "multi", func([]byte) http.HandlerFunc {
			return func(w http.ResponseWriter, r *http.Request) { http.NotFound(w, r) }
		}, false, false},
		{"claims and never sends", "tiny", func([]byte) http.HandlerFunc {
			return func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() }
		}, false, false},
		{"sends wrong bytes", "multi", func(want []byte) http.HandlerFunc {
			bad := bytes.Clone(want)
			bad[len(bad)/2] ^= 0xff
			return func(w http.ResponseWriter, r *http.Request) {
				http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(bad))
			}
		}, true, true},
		{"sends a wrong single-piece file", "tiny", func(want []byte) http.HandlerFunc {
			bad := bytes.Clone(want)
			bad[10] ^= 0xff
			return func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Length", strconv.Itoa(len(bad)))
				w.Write(bad)
			}
		}, true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := serveMirror(t, base)
			a, b := pair(t, nil, []string{"HERD_PATIENCE=0.5s"})
			aptUpdate(t, b, m, repo)
			p := repo.Package(tc.pkg)
			want, _ := p.Bytes()
			waitFor(t, "B's index to know "+p.Name, 10*time.Second, func() (bool, string) { return indexed(b, m, p), "" })
			fake := fakeClaimant(t, a, b, m, p, tc.serve(want))
			m.Reset()
			code, body, err := getLenient(t, b.url(m, p.Filename))
			complete := err == nil && code == http.StatusOK && bytes.Equal(body, want)
			if err == nil && code == http.StatusOK && int64(len(body)) == p.Size && !complete {
				t.Fatal("apt received a complete file with the wrong content")
			}
			if !complete {
				if !tc.retried {
					t.Fatalf("first answer: HTTP %d, %d of %d bytes, err %v", code, len(body), p.Size, err)
				}
				wantPackage(t, b, m, p) // apt's retry
			}
			waitFor(t, "the good copy stored", 10*time.Second, func() (bool, string) { return stored(t, b, p), "" })
			if got := m.BytesServed("/debian/" + p.Filename); got < p.Size {
				t.Errorf("the mirror sent %d bytes of %d: where did the good copy come from?", got, p.Size)
			}
			if tc.banned {
				waitFor(t, "the liar banned", 5*time.Second, func() (bool, string) { return b.n.Banned(fake.String()), "" })
			} else if b.n.Banned(fake.String()) {
				t.Errorf("%v banned for %s", fake, tc.name)
			}
		})
	}
}
