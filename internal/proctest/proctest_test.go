package proctest

import (
	"fmt"
	"net"
	"strconv"
	"sync"
	"testing"
)

func TestFreePortIsFreeForBoth(t *testing.T) {
	p := FreePort(t, "127.0.0.1")
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(p))
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("TCP %s: %v", addr, err)
	}
	defer ln.Close()
	uc, err := net.ListenPacket("udp", addr)
	if err != nil {
		t.Fatalf("UDP %s: %v", addr, err)
	}
	uc.Close()
}

func TestLockedBufferAndTail(t *testing.T) {
	var b LockedBuffer
	var wg sync.WaitGroup
	for i := range 10 {
		wg.Go(func() { fmt.Fprintf(&b, "line %d\n", i) })
	}
	wg.Wait()
	if got := len(b.String()); got != 70 {
		t.Fatalf("%d bytes, want 70", got)
	}
	if got := Tail("a\nb\nc\nd", 2); got != "c\nd" {
		t.Fatalf("Tail = %q", got)
	}
}
