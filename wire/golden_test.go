package wire

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

var rewrite = flag.Bool("rewrite", false, "rewrite the golden files under testdata/ (transcript and fuzz seeds)")

// goldenCase is one packet of the transcript: built by an encoder, or given
// raw to show how Parse treats it.
type goldenCase struct {
	name string
	pkt  []byte
}

func goldenCases() []goldenCase {
	self, target, key, token := refID, idOf(0x20), idOf(0x40), idOf(0x60)
	nodes := testNodes(8)
	value := AppendPeerValue(nil, &PeerValue{Contact: refPeer})
	inline := AppendPeerValue(nil, &PeerValue{Contact: refPeer, Form: FormInline, Pieces: pieces(2)})
	hashed := AppendPeerValue(nil, &PeerValue{Contact: refPeer, Form: FormHash, PiecesHash: idOf(0x80)})
	gv, _ := AppendGetValueResp(nil, refTID, self, [][]byte{value, inline, hashed}, MaxPacketIPv4)
	ps := AppendPieceString(nil, pieces(5))
	psResp, _ := AppendGetValueResp(nil, refTID, self, [][]byte{ps}, MaxPacketIPv4)
	tid := string(refTID[:])
	id := "20:" + string(self[:])
	return []goldenCase{
		{"ping", AppendPing(nil, refTID, self)},
		{"join", AppendJoin(nil, refTID, self)},
		{"find_node", AppendFindNode(nil, refTID, self, target)},
		{"find_value", AppendFindValue(nil, refTID, self, key)},
		{"get_value", AppendGetValue(nil, refTID, self, key, 10)},
		{"store_value", AppendStoreValue(nil, refTID, self, key, inline, token)},
		{"ping_response", AppendIDResp(nil, refTID, self)},
		{"join_response", AppendJoinResp(nil, refTID, self, refPeer)},
		{"find_node_response", AppendFindNodeResp(nil, refTID, self, nodes, token)},
		{"find_value_response", AppendFindValueResp(nil, refTID, self, nodes, 3)},
		{"get_value_response", gv},
		{"get_value_response_piece_string", psResp},
		{"error_token", AppendError(nil, refTID, ErrCodeInvalidToken, "token is invalid, do a find_nodes to get a fresh one")},
		{"error_unknown_method", AppendError(nil, refTID, ErrCodeMethodUnknown, "unknown method announce_peer")},
		// Raw packets: what Parse does with them.
		{"raw_unknown_method", []byte("d1:ad2:id" + id + "e1:q13:announce_peer1:t20:" + tid + "1:y1:qe")},
		{"raw_extra_argument", []byte("d1:ad2:id" + id + "6:target" + id + "e1:q4:ping1:t20:" + tid + "1:y1:qe")},
		{"raw_short_tid", []byte("d1:ad2:id" + id + "e1:q4:ping1:t2:aa1:y1:qe")},
		{"raw_bep5_nodes_string", []byte("d1:rd2:id" + id + "5:nodes26:" + strings.Repeat("n", 26) + "e1:t20:" + tid + "1:y1:re")},
		{"raw_unsorted_keys", []byte("d1:q4:ping1:ad2:id" + id + "e1:t20:" + tid + "1:y1:qe")},
		{"raw_version_key", []byte("d1:rd2:id" + id + "e1:t20:" + tid + "1:v4:A0151:y1:re")},
	}
}

// summary renders what Parse makes of a packet, one line.
func summary(pkt []byte) string {
	var m Msg
	err := m.Parse(pkt)
	var b strings.Builder
	if err != nil {
		fmt.Fprintf(&b, "error=%q ", err.Error())
		if err != ErrBadArgs {
			return strings.TrimSpace(b.String())
		}
	}
	fmt.Fprintf(&b, "y=%c tid=%s", m.Y, m.TID)
	if m.Y == 'q' {
		fmt.Fprintf(&b, " method=%s name=%q", m.Method, m.MethodName)
	}
	if m.Has&FieldID != 0 {
		fmt.Fprintf(&b, " id=%s", m.ID)
	}
	if m.Has&FieldTarget != 0 {
		fmt.Fprintf(&b, " target=%s", m.Target)
	}
	if m.Has&FieldKey != 0 {
		fmt.Fprintf(&b, " key=%s", m.Key)
	}
	if m.Has&FieldToken != 0 {
		fmt.Fprintf(&b, " token=%s", m.Token)
	}
	if m.Has&FieldNum != 0 {
		fmt.Fprintf(&b, " num=%d", m.Num)
	}
	if m.Has&FieldValue != 0 {
		fmt.Fprintf(&b, " value=%q", m.Value)
	}
	if m.Has&FieldNodes != 0 {
		fmt.Fprintf(&b, " nodes=[")
		for i := range m.Nodes.Len() {
			n := m.Nodes.At(i)
			if i > 0 {
				b.WriteByte(' ')
			}
			fmt.Fprintf(&b, "%s@%s", n.ID.String()[:8], n.Addr)
		}
		b.WriteByte(']')
	}
	if m.Has&FieldValues != 0 {
		fmt.Fprintf(&b, " values=%d[", m.Values.Len())
		first := true
		for v := range m.Values.All {
			if !first {
				b.WriteByte(' ')
			}
			first = false
			fmt.Fprintf(&b, "%q", v)
		}
		b.WriteByte(']')
	}
	if m.Has&FieldIPAddr != 0 {
		fmt.Fprintf(&b, " ip_addr=%q", m.IPAddr)
	}
	if m.Has&FieldPort != 0 {
		fmt.Fprintf(&b, " port=%d", m.Port)
	}
	if m.Y == 'e' {
		fmt.Fprintf(&b, " code=%d msg=%q", m.ErrCode, m.ErrMsg)
	}
	return b.String()
}

func renderTranscript() []byte {
	var b bytes.Buffer
	b.WriteString("# KRPC golden transcript: each packet as bytes (Go-quoted), its size, and what Parse makes of it.\n")
	b.WriteString("# Regenerate with: go test ./wire/ -run TestGoldenTranscript -rewrite\n")
	for _, c := range goldenCases() {
		fmt.Fprintf(&b, "\n== %s\npacket %d %s\nparsed %s\n", c.name, len(c.pkt), strconv.Quote(string(c.pkt)), summary(c.pkt))
	}
	return b.Bytes()
}

// TestGoldenTranscript compares every encoder's bytes and Parse's reading of
// them with testdata/krpc.transcript, and checks that the packets recorded there
// still parse to the recorded summary (so the file is also a decoder fixture).
func TestGoldenTranscript(t *testing.T) {
	path := filepath.Join("testdata", "krpc.transcript")
	got := renderTranscript()
	if *rewrite {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		writeFuzzSeeds(t)
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -rewrite to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("transcript differs from %s (run with -rewrite after checking the change):\n%s", path, firstDiff(got, want))
	}
	// Read the recorded packets back independently of the encoders.
	lines := strings.Split(string(want), "\n")
	n := 0
	for i, l := range lines {
		if !strings.HasPrefix(l, "packet ") {
			continue
		}
		f := strings.SplitN(l, " ", 3)
		pkt, err := strconv.Unquote(f[2])
		if err != nil {
			t.Fatalf("line %d: %v", i+1, err)
		}
		if strconv.Itoa(len(pkt)) != f[1] {
			t.Errorf("line %d: size %s, packet has %d", i+1, f[1], len(pkt))
		}
		if s := "parsed " + summary([]byte(pkt)); i+1 >= len(lines) || lines[i+1] != s {
			t.Errorf("line %d: Parse gives %q", i+2, s)
		}
		n++
	}
	if n != len(goldenCases()) {
		t.Errorf("transcript has %d packets, want %d", n, len(goldenCases()))
	}
}

func firstDiff(a, b []byte) string {
	al, bl := strings.Split(string(a), "\n"), strings.Split(string(b), "\n")
	for i := range max(len(al), len(bl)) {
		var x, y string
		if i < len(al) {
			x = al[i]
		}
		if i < len(bl) {
			y = bl[i]
		}
		if x != y {
			return fmt.Sprintf("line %d:\n got  %s\n want %s", i+1, x, y)
		}
	}
	return ""
}

// writeFuzzSeeds writes the golden packets as seed corpus entries of the fuzz
// targets, so `go test` replays them.
func writeFuzzSeeds(t *testing.T) {
	for _, c := range goldenCases() {
		for _, target := range []string{"FuzzParse", "FuzzParseRoundTrip", "FuzzDecodeZeebo"} {
			dir := filepath.Join("testdata", "fuzz", target)
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			body := "go test fuzz v1\n[]byte(" + strconv.Quote(string(c.pkt)) + ")\n"
			if err := os.WriteFile(filepath.Join(dir, "golden-"+c.name), []byte(body), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
}
