package wire

import (
	"bytes"
	"fmt"
	"testing"
)

// Byte-for-byte checks of the error replies against the original's wording
// (reference §2.6, §2.8, §8.4), written out by hand.
func TestErrorRepliesAsTheOriginal(t *testing.T) {
	tid := string(refTID[:])
	cases := []struct {
		name string
		got  []byte
		want string
	}{
		{"203", AppendUnknownMethod(nil, refTID, []byte("announce_peer")),
			"d1:eli203e28:unknown method announce_peere1:t20:" + tid + "1:y1:ee"},
		{"201 too large", AppendResponseTooLong(nil, refTID, ErrCodeServer, 1491),
			"d1:eli201e23:response was 1491 bytese1:t20:" + tid + "1:y1:ee"},
		{"206", AppendResponseTooLong(nil, refTID, ErrCodeResponseTooLong, 1500),
			"d1:eli206e23:response was 1500 bytese1:t20:" + tid + "1:y1:ee"},
		{"205 (§8.4, 99 bytes)", AppendError(nil, refTID, ErrCodeInvalidToken, "token is invalid, do a find_nodes to get a fresh one"),
			"d1:eli205e52:token is invalid, do a find_nodes to get a fresh onee1:t20:" + tid + "1:y1:ee"},
	}
	for _, c := range cases {
		if string(c.got) != c.want {
			t.Errorf("%s:\n got %q\nwant %q", c.name, c.got, c.want)
		}
	}
	if n := len(cases[3].got); n != 99 {
		t.Errorf("token error is %d bytes, want 99", n)
	}
}

// A hostile method name of any length gives a 203 within both packet
// limits that still parses.
func TestUnknownMethodBounded(t *testing.T) {
	for _, n := range []int{0, 1, MaxErrMsgLen - 15, MaxErrMsgLen - 14, MaxErrMsgLen, 60000} {
		name := bytes.Repeat([]byte("x"), n)
		pkt := AppendUnknownMethod(nil, refTID, name)
		if len(pkt) > MaxErrorLen || len(pkt) > MaxPacketIPv6 {
			t.Fatalf("name of %d bytes: reply of %d bytes", n, len(pkt))
		}
		var m Msg
		if err := m.Parse(pkt); err != nil || m.ErrCode != ErrCodeMethodUnknown || len(m.ErrMsg) > MaxErrMsgLen ||
			!bytes.HasPrefix(m.ErrMsg, []byte("unknown method ")) {
			t.Fatalf("name of %d bytes: %v %+v", n, err, m)
		}
	}
}

// The reference's sizes for piece strings (§2.8): a get_value reply holding
// one n-piece string is 91 + 20·n bytes, a store_value request 163 + 20·n.
func TestPieceStringSizes(t *testing.T) {
	for _, n := range []int{50, 66, 69, 70, 499} {
		ps := AppendPieceString(nil, bytes.Repeat([]byte{1}, 20*n))
		if got := SingleValueRespLen(len(ps)); got != 91+20*n {
			t.Errorf("%d pieces: reply %d bytes, want %d", n, got, 91+20*n)
		}
		p, k := AppendGetValueResp(nil, refTID, refID, [][]byte{ps}, MaxParseLen)
		if k != 1 || len(p) != 91+20*n {
			t.Errorf("%d pieces: encoded reply %d bytes", n, len(p))
		}
		req := AppendStoreValue(nil, refTID, refID, idOf(1), ps, idOf(2))
		byHand := fmt.Sprintf("d1:ad2:id20:%s3:key20:%s5:token20:%s5:value%d:%se1:q11:store_value1:t20:%s1:y1:qe",
			refID[:], ptr(idOf(1)), ptr(idOf(2)), len(ps), ps, refTID[:])
		if string(req) != byHand || len(req) != 163+20*n {
			t.Errorf("%d pieces: store_value %d bytes, by hand %d", n, len(req), len(byHand))
		}
	}
}

func ptr(id ID) []byte { return id[:] }
