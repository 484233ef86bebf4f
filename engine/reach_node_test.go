package engine

import (
	"bufio"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/apt-p2p/apt-p2p/wire"
)

// The runner's probes on real sockets: the UDP probe leaves from another
// port than the DHT's, the TCP probe requests ReachPath(nonce); Close waits
// for probes in flight.
func TestRunnerProbes(t *testing.T) {
	n := startNode(t, testConfig())
	out := transportOutput{n}

	uc, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.MustParseAddrPort("127.0.0.1:0")))
	if err != nil {
		t.Fatal(err)
	}
	defer uc.Close()
	var nonce, id wire.ID
	copy(nonce[:], "nonce-of-this-probe1")
	out.SendProbe(uc.LocalAddr().(*net.UDPAddr).AddrPort(), wire.AppendReachProbe(nil, nonce, id))
	uc.SetReadDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, 2048)
	nb, from, err := uc.ReadFromUDPAddrPort(buf)
	if err != nil {
		t.Fatal(err)
	}
	var m wire.Msg
	if err := m.Parse(buf[:nb]); err != nil || m.TID != nonce {
		t.Fatalf("probe datagram %q: %v", buf[:nb], err)
	}
	if from.Port() == n.Addr().Port() {
		t.Fatalf("the probe came from the DHT port %v", from)
	}

	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	got := make(chan string, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			got <- err.Error()
			return
		}
		defer c.Close()
		line, _ := bufio.NewReader(c).ReadString('\n')
		c.Write([]byte("HTTP/1.1 204 No Content\r\n\r\n"))
		got <- line
	}()
	out.DialProbe(ln.Addr().(*net.TCPAddr).AddrPort(), nonce)
	select {
	case line := <-got:
		if want := "GET " + ReachPath(nonce) + " HTTP/1.1"; strings.TrimSpace(line) != want {
			t.Fatalf("TCP probe sent %q, want %q", line, want)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no TCP probe")
	}
	if p, ok := ParseReachPath([]byte(ReachPath(nonce))); !ok || p != nonce {
		t.Fatal("ReachPath does not parse back")
	}
	n.Close()
	if n.reach.dials.Load() != 0 {
		t.Fatal("Close returned with TCP probes in flight")
	}
	out.SendProbe(from, []byte("x")) // after Close: nothing, no panic
	out.DialProbe(ln.Addr().(*net.TCPAddr).AddrPort(), nonce)
}
