package kbucket

import (
	"testing"

	"github.com/apt-p2p/apt-p2p/wire"
)

// benchTable is the routing table after 1000 random nodes were offered
// (as contacted): the table a node has after a while on a large DHT.
func benchTable(b *testing.B) (*Table, []wire.ID) {
	r := newRand(50)
	tb := New(randID(r), Config{})
	fillRandom(tb, r, 1000)
	targets := make([]wire.ID, 1024)
	for i := range targets {
		targets[i] = randID(r)
		if i%4 == 0 { // a quarter near our own ID, as for our own lookups
			copy(targets[i][:2], tb.self[:2])
		}
	}
	return tb, targets
}

// cpuMeter reports CPU nanoseconds per operation ("cpu-ns/op").
type cpuMeter struct{ start int64 }

func startCPU() cpuMeter { return cpuMeter{processCPU()} }

func (m cpuMeter) report(b *testing.B) {
	if b.N > 0 {
		b.ReportMetric(float64(processCPU()-m.start)/float64(b.N), "cpu-ns/op")
	}
}

// BenchmarkClosest compares Closest with the original's findNodes ported
// as written (gather range neighbours, sort.Slice) on the same table and
// targets; "nodes" is the table size.
func BenchmarkClosest(b *testing.B) {
	b.Run("impl=kbucket", func(b *testing.B) {
		tb, targets := benchTable(b)
		dst := make([]Node, 0, 8)
		b.ReportAllocs()
		i := 0
		m := startCPU()
		for b.Loop() {
			dst = tb.Closest(dst[:0], targets[i&1023], 8)
			i++
		}
		m.report(b)
		b.ReportMetric(float64(tb.Len()), "nodes")
	})
	b.Run("impl=original", func(b *testing.B) {
		tb, targets := benchTable(b)
		b.ReportAllocs()
		i := 0
		m := startCPU()
		for b.Loop() {
			origClosest(tb, targets[i&1023], 8)
			i++
		}
		m.report(b)
		b.ReportMetric(float64(tb.Len()), "nodes")
	})
}

// BenchmarkInsert offers random nodes (mostly refused by full buckets) and
// refreshes known ones, the mix the engine sees on every packet.
func BenchmarkInsert(b *testing.B) {
	b.Run("op=new", func(b *testing.B) {
		tb, targets := benchTable(b)
		now := at(5000)
		b.ReportAllocs()
		i := 0
		m := startCPU()
		for b.Loop() {
			tb.Insert(node(targets[i&1023], i), true, now)
			i++
		}
		m.report(b)
	})
	b.Run("op=refresh", func(b *testing.B) {
		tb, _ := benchTable(b)
		all := tb.Nodes(nil)
		now := at(5000)
		b.ReportAllocs()
		i := 0
		m := startCPU()
		for b.Loop() {
			tb.Insert(all[i%len(all)], true, now)
			i++
		}
		m.report(b)
	})
}

func BenchmarkAddrAllowed(b *testing.B) {
	addrs := []Node{node(wire.ID{}, 1), {Addr: publicAddr(2)}}
	b.ReportAllocs()
	i := 0
	m := startCPU()
	for b.Loop() {
		AddrAllowed(addrs[i&1].Addr.Addr(), false)
		i++
	}
	m.report(b)
}
