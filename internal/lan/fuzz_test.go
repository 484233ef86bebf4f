package lan

import "testing"

// FuzzParse: Parse never panics, reads nothing beyond MaxMsgLen, and what it
// accepts survives AppendMsg → Parse unchanged.
func FuzzParse(f *testing.F) {
	for _, m := range []Msg{
		{Group: IPv4, GroupPort: Port, PeerPort: 9977, DHTPort: 9977, Cookie: testCookie, Reply: true},
		{Group: IPv6, GroupPort: Port, PeerPort: 80, DHTPort: 6881, Cookie: testCookie},
	} {
		f.Add(AppendMsg(nil, &m))
	}
	f.Add([]byte("APT-P2P-LSD * HTTP/1.1\r\ncookie:\t0123456789ABCDEF \r\nX-Future: a: b\r\n" +
		"dht-port: 6881\r\nPORT:80\r\nhost: [ff15::efc0:988f]:9976\r\n\r\n\r\n"))
	f.Add([]byte("BT-SEARCH * HTTP/1.1\r\nHost: 239.192.152.143:6771\r\nPort: 6881\r\n" +
		"Infohash: 0123456789abcdef0123456789abcdef01234567\r\ncookie: x\r\n\r\n\r\n"))
	f.Add([]byte("APT-P2P-LSD * HTTP/1.1\r\nPort: 1\r\nPort: 2\r\n\r\n"))
	f.Add([]byte("APT-P2P-LSD * HTTP/1.1\r\nHost: 239.192.152.143:0\r\n\r\n"))
	f.Add([]byte("APT-P2P-LSD * HTTP/1.1\r\n\r"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		var m Msg
		if err := m.Parse(b); err != nil {
			return
		}
		if len(b) > MaxMsgLen {
			t.Fatalf("accepted %d bytes, more than MaxMsgLen", len(b))
		}
		if m.GroupPort == 0 || m.PeerPort == 0 || m.DHTPort == 0 {
			t.Fatalf("accepted a zero port: %+v", m)
		}
		out := AppendMsg(nil, &m)
		var again Msg
		if err := again.Parse(out); err != nil {
			t.Fatalf("re-parse of %q: %v", out, err)
		}
		if again != m {
			t.Fatalf("round trip: %+v became %+v", m, again)
		}
	})
}
