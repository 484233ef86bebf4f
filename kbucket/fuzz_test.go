package kbucket

import (
	"slices"
	"testing"

	"github.com/apt-p2p/apt-p2p/wire"
)

// FuzzOperations runs a table through operations decoded from the input
// and checks the invariants and Closest against brute force after each.
// Each operation is 3 bytes: opcode, then two bytes that pick an ID near
// or far from ours (so deep splits and merges are reachable).
func FuzzOperations(f *testing.F) {
	f.Add([]byte{0, 1, 2, 0, 1, 3, 4, 1, 2})
	f.Add([]byte("\x00\x00\x01\x00\x00\x02\x00\x00\x03\x00\x00\x04\x00\x00\x05\x00\x00\x06\x00\x00\x07\x00\x00\x08\x00\x00\x09\x00\x80\x01\x03\x00\x01"))
	f.Add(slices.Repeat([]byte{0, 0x9f, 7, 1, 0x9f, 7, 0, 0x10, 3, 2, 0x9f, 7, 3, 0x10, 3}, 20))
	f.Fuzz(func(t *testing.T, data []byte) {
		var self wire.ID
		self[0], self[19] = 0xa5, 0x5a
		k := 1 + len(data)%4*3 // 1, 4, 7, 10
		tb := New(self, Config{K: k, MaxFailures: 2})
		for i := 0; i+3 <= len(data) && i < 3*2000; i += 3 {
			op, a, b := data[i], data[i+1], data[i+2]
			// a's low 7 bits: how many leading bits the ID shares with ours;
			// b varies the rest.
			id := self
			cpl := int(a&0x7f) * 160 / 128
			if cpl < 160 {
				id[cpl/8] ^= 0x80 >> uint(cpl%8)
				for j := cpl + 1; j < 160; j++ {
					if (uint(b)*2654435761>>uint(j%29))&1 == 1 {
						id[j/8] ^= 0x80 >> uint(j%8)
					}
				}
			}
			now := at(i)
			switch op % 5 {
			case 0:
				tb.Insert(node(id, int(b)), true, now)
			case 1:
				n, nb := tb.Len(), tb.NumBuckets()
				if res, _ := tb.Insert(node(id, int(b)), false, now); res == Added || res == Updated ||
					tb.Len() != n || tb.NumBuckets() != nb {
					t.Fatalf("uncontacted insert %v changed the table", res)
				}
			case 2:
				tb.Failed(id)
			case 3:
				tb.Remove(id)
			case 4:
				kk := 1 + int(b)%16
				got := ids(tb.Closest(nil, id, kk))
				if want := ids(bruteClosest(tb, id, kk, nil)); !slices.Equal(got, want) {
					t.Fatalf("Closest(%s, %d) = %v, want %v", id, kk, got, want)
				}
			}
			if err := invariantError(tb); err != nil {
				t.Fatalf("after op %d: %v", i/3, err)
			}
		}
	})
}
