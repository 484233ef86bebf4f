package sim

import (
	"fmt"
	"testing"
	"time"

	"github.com/apt-p2p/apt-p2p/engine"
	"github.com/apt-p2p/apt-p2p/wire"
)

func TestScratchPhases(t *testing.T) {
	s, _, err := build(Config{Nodes: 1000, Unresponsive: 0.5, RTTMin: 20 * time.Millisecond, RTTMax: 300 * time.Millisecond,
		Loss: 0.01, Seed: 1, Settle: 16 * time.Minute, Engine: engine.Default()})
	if err != nil {
		t.Fatal(err)
	}
	var fn, gt, pt []time.Duration
	pending := 0
	for k := 0; k < 60; k++ {
		i := int32(1 + k*7)
		core := s.nodes[i].core.(aptCore).Core
		var key wire.ID
		key[0], key[1] = byte(k), 0x55
		at := s.now + int64(k)*int64(5*time.Second)
		pending += 3
		s.at(at, func() {
			core.FindNode(s.time(), key, func(r engine.Result) { pending--; fn = append(fn, r.Elapsed) })
			s.rewake(i)
		})
		key2 := key
		key2[2] = 1
		s.at(at+int64(2*time.Second), func() {
			core.Get(s.time(), key2, func([]byte) {}, func(r engine.Result) { pending--; gt = append(gt, r.Elapsed) })
			s.rewake(i)
		})
		key3 := key
		key3[2] = 2
		s.at(at+int64(4*time.Second), func() {
			core.Put(s.time(), key3, []byte("x"), func(r engine.Result) { pending--; pt = append(pt, r.Elapsed) })
			s.rewake(i)
		})
	}
	s.runUntil(s.now+int64(time.Hour), func() bool { return pending == 0 })
	fmt.Println("findnode", percentile(fn, 50), percentile(fn, 90), "get", percentile(gt, 50), percentile(gt, 90), "put", percentile(pt, 50), percentile(pt, 90))
}
