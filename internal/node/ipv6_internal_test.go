package node

import (
	"errors"
	"net/netip"
	"testing"
	"time"

	"github.com/apt-p2p/apt-p2p/engine"
	"github.com/apt-p2p/apt-p2p/wire"
)

// A dual-stack announcement rewrites a peer value's contact to each
// network's, keeps everything else (form, piece hashes, claim time), leaves
// piece strings alone, and skips a network whose contact is unknown.
func TestWithContact(t *testing.T) {
	c4, c6 := netip.MustParseAddrPort("10.240.1.11:9977"), netip.MustParseAddrPort("[fd42:0:0:1::11]:9977")
	v := wire.PeerValue{Contact: c4, Form: wire.FormHash, PiecesHash: wire.ID{7}, Claim: 1733472000123456}
	raw := wire.AppendPeerValue(nil, &v)
	out, err := withContact(raw, c6, true)
	var got wire.PeerValue
	if err != nil || got.Parse(out) != nil || got.Contact != c6 || got.Form != v.Form || got.PiecesHash != v.PiecesHash || got.Claim != v.Claim {
		t.Fatalf("rewritten value %q: %+v %v", out, got, err)
	}
	if same, _ := withContact(raw, c4, true); string(same) != string(raw) {
		t.Error("a value already carrying the contact was re-encoded")
	}
	ps := wire.AppendPieceString(nil, make([]byte, 40))
	if out, err := withContact(ps, c6, false); err != nil || string(out) != string(ps) {
		t.Errorf("piece string: %q %v", out, err)
	}
	if _, err := withContact(raw, netip.AddrPort{}, false); !errors.Is(err, errNoContact) {
		t.Errorf("unknown contact: %v", err)
	}
}

// An operation on both networks succeeds if either did; its counts add up,
// its time is the slower one's, its first value the sooner one's.
func TestMergeResults(t *testing.T) {
	r, err := mergeResults([]engine.Result{
		{Stored: 3, Values: 1, Messages: 10, Hops: 2, Elapsed: 40 * time.Millisecond, FirstValue: 30 * time.Millisecond},
		{Err: engine.ErrNotJoined},
	}, []error{nil, engine.ErrNotJoined})
	if err != nil || r.Err != nil || r.Stored != 3 || r.Messages != 10 {
		t.Fatalf("one network joined: %+v %v", r, err)
	}
	r, err = mergeResults([]engine.Result{
		{Stored: 3, Messages: 10, Hops: 2, Elapsed: 40 * time.Millisecond, FirstValue: 30 * time.Millisecond},
		{Stored: 2, Messages: 7, Hops: 3, Elapsed: 20 * time.Millisecond, FirstValue: 10 * time.Millisecond},
	}, []error{nil, nil})
	if err != nil || r.Stored != 5 || r.Messages != 17 || r.Hops != 3 || r.Elapsed != 40*time.Millisecond || r.FirstValue != 10*time.Millisecond {
		t.Fatalf("both: %+v %v", r, err)
	}
	_, err = mergeResults([]engine.Result{{}, {}}, []error{errNoContact, engine.ErrNotStored})
	if !errors.Is(err, errNoContact) {
		t.Fatalf("neither: %v", err)
	}
}
