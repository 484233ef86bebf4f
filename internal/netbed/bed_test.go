package netbed

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

func newBed(t *testing.T) *Bed {
	t.Helper()
	b, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := b.Close(); err != nil {
			t.Error(err)
		}
	})
	return b
}

// wanBed is the shape of the benchmark: two hosts on a LAN, a mirror behind a
// WAN link, both segments dual-stack.
func wanBed(t *testing.T, link Link) (b *Bed, h1, h2, mirror *Host) {
	t.Helper()
	b = newBed(t)
	lan, err := b.AddSegment(SegmentConfig{Name: "lan", Family: DualStack})
	if err != nil {
		t.Fatal(err)
	}
	wan, err := b.AddSegment(SegmentConfig{Name: "mirror", Family: DualStack, Uplink: link})
	if err != nil {
		t.Fatal(err)
	}
	if h1, err = b.AddHost("h1", lan, LAN); err != nil {
		t.Fatal(err)
	}
	if h2, err = b.AddHost("h2", lan, LAN); err != nil {
		t.Fatal(err)
	}
	if mirror, err = b.AddHost("mirror", wan, LAN); err != nil {
		t.Fatal(err)
	}
	return b, h1, h2, mirror
}

// echoServer accepts on ln and copies every connection back to itself.
func echoServer(t *testing.T, ln net.Listener) {
	t.Helper()
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { io.Copy(c, c); c.Close() }()
		}
	}()
}

// roundTrip connects from h to addr, sends msg and reads it back; it returns
// how long the TCP handshake took.
func roundTrip(t *testing.T, h *Host, addr netip.AddrPort, msg string) time.Duration {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	t0 := time.Now()
	c, err := h.DialContext(ctx, "tcp", addr.String())
	if err != nil {
		t.Fatalf("%s → %s: %v", h.HostName, addr, err)
	}
	connect := time.Since(t0)
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, msg); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(c, got); err != nil || string(got) != msg {
		t.Fatalf("%s → %s: echo %q, %v", h.HostName, addr, got, err)
	}
	return connect
}

func TestBedReachability(t *testing.T) {
	b, h1, h2, mirror := wanBed(t, WAN)
	for _, fam := range []string{"4", "6"} {
		for _, dst := range []*Host{h2, mirror} {
			a := dst.Addr4()
			if fam == "6" {
				a = dst.Addr6()
			}
			ln, err := dst.Listen("tcp"+fam, netip.AddrPortFrom(a, 0).String())
			if err != nil {
				t.Fatal(err)
			}
			echoServer(t, ln)
			d := roundTrip(t, h1, netip.MustParseAddrPort(ln.Addr().String()), "hello over IPv"+fam)
			t.Logf("h1 → %s over IPv%s: TCP handshake %v", dst.HostName, fam, d)
			// A lower bound, not a timing threshold: the delay line writes no
			// frame before its due time, so the SYN/SYN-ACK exchange through
			// the WAN link cannot take less than its RTT however loaded the
			// machine is.
			if dst == mirror && d < WAN.RTT {
				t.Errorf("handshake through the WAN link took %v, less than its RTT %v", d, WAN.RTT)
			}
		}
	}
	if st := b.LinkStats(); st.Forwarded == 0 {
		t.Errorf("no frame crossed the delay lines: %+v", st)
	}
}

// TestBedBulkIntact sends a few MB through the shaped, delayed link both ways
// and checks every byte arrives (GSO frames through the TAP delay line, tbf).
func TestBedBulkIntact(t *testing.T) {
	b, h1, _, mirror := wanBed(t, WAN)
	data := make([]byte, 6<<20)
	rng := rand.NewChaCha8([32]byte{1})
	rng.Read(data)
	want := sha256.Sum256(data)
	ln, err := mirror.Listen("tcp", netip.AddrPortFrom(mirror.Addr6(), 0).String())
	if err != nil {
		t.Fatal(err)
	}
	echoServer(t, ln)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c, err := h1.DialContext(ctx, "tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	t0 := time.Now()
	go func() { c.Write(data); c.(*net.TCPConn).CloseWrite() }()
	h := sha256.New()
	n, err := io.Copy(h, c)
	took := time.Since(t0)
	if err != nil || n != int64(len(data)) || !bytes.Equal(h.Sum(nil), want[:]) {
		t.Fatalf("echoed %d of %d bytes (err %v), hash match %v", n, len(data), err, bytes.Equal(h.Sum(nil), want[:]))
	}
	t.Logf("6 MiB each way through %v in %v (%.1f Mbit/s each way); delay lines: %+v",
		WAN, took, float64(len(data))*8/took.Seconds()/1e6, b.LinkStats())
}

func TestBedUDP(t *testing.T) {
	_, h1, _, mirror := wanBed(t, WAN)
	pc, err := mirror.ListenPacket("udp6", netip.AddrPortFrom(mirror.Addr6(), 0).String())
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	go func() {
		buf := make([]byte, 1500)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			pc.WriteTo(buf[:n], from)
		}
	}()
	var c net.PacketConn
	if err := h1.Do(func() (err error) { c, err = net.ListenPacket("udp6", "[::]:0"); return err }); err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.WriteTo([]byte("ping"), pc.LocalAddr()); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 16)
	n, _, err := c.ReadFrom(buf)
	if err != nil || string(buf[:n]) != "ping" {
		t.Fatalf("UDP echo over IPv6 through the WAN link: %q %v", buf[:n], err)
	}
}

func nsExists(name string) bool {
	_, err := os.Stat(filepath.Join(netnsDir, name))
	return err == nil
}

func TestBedCloseRemovesEverything(t *testing.T) {
	b, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	lan, err := b.AddSegment(SegmentConfig{Name: "lan"})
	if err != nil {
		b.Close()
		t.Fatal(err)
	}
	h, err := b.AddHost("h1", lan, WAN)
	if err != nil {
		b.Close()
		t.Fatal(err)
	}
	sleep := exec.Command("sleep", "600")
	if err := h.Start(sleep); err != nil {
		b.Close()
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- sleep.Wait() }()
	names := b.Namespaces()
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	for _, n := range names {
		if nsExists(n) {
			t.Errorf("namespace %s left after Close", n)
		}
	}
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		sleep.Process.Kill()
		t.Error("a process started in the bed outlived Close")
	}
	if err := b.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, err := b.AddHost("h2", lan, LAN); err == nil {
		t.Error("AddHost on a closed bed worked")
	}
}

// TestCleanStaleAfterKill runs a bed in a child process, kills it with
// SIGKILL (no cleanup runs), and checks that the next New removes what it
// left, while a running bed's namespaces stay.
func TestCleanStaleAfterKill(t *testing.T) {
	live := newBed(t)
	child := exec.Command(os.Args[0])
	child.Env = append(os.Environ(), "NETBED_CHILD=1")
	out, err := child.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	defer child.Process.Kill()
	// The child prints its namespaces on one line, then waits to be killed.
	var line []byte
	buf := make([]byte, 1)
	deadline := time.Now().Add(60 * time.Second)
	for !bytes.HasPrefix(line, []byte("NAMESPACES ")) || !bytes.HasSuffix(line, []byte("\n")) {
		if bytes.HasSuffix(line, []byte("\n")) {
			line = line[:0]
		}
		if time.Now().After(deadline) {
			t.Fatal("the child bed did not start")
		}
		if _, err := out.Read(buf); err != nil {
			t.Fatalf("child: %v (output so far %q)", err, line)
		}
		line = append(line, buf[0])
	}
	names := strings.Fields(strings.TrimPrefix(strings.TrimSpace(string(line)), "NAMESPACES "))
	if len(names) < 3 {
		t.Fatalf("child reported %q", line)
	}
	child.Process.Kill()
	child.Wait()
	for _, n := range names {
		if !nsExists(n) {
			t.Fatalf("namespace %s of the killed child is already gone: the test shows nothing", n)
		}
	}
	removed, err := CleanStale()
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range names {
		if nsExists(n) {
			t.Errorf("stale namespace %s not removed (removed: %v)", n, removed)
		}
	}
	for _, n := range live.Namespaces() {
		if !nsExists(n) {
			t.Errorf("CleanStale removed %s of a running bed", n)
		}
	}
}

// childBed is the child process of TestCleanStaleAfterKill: it builds a bed,
// prints its namespaces and waits to be killed.
func childBed() {
	b, err := New(Options{})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	lan, err := b.AddSegment(SegmentConfig{Name: "lan"})
	if err == nil {
		_, err = b.AddHost("h1", lan, WAN)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Stdout.WriteString("NAMESPACES " + strings.Join(b.Namespaces(), " ") + "\n")
	time.Sleep(time.Minute) // killed by the parent long before
	os.Exit(1)
}

func TestMain(m *testing.M) {
	if os.Getenv("NETBED_CHILD") == "1" {
		childBed()
	}
	os.Exit(m.Run())
}

// BenchmarkWANLink measures what the WAN profile carries: one TCP flow and
// four at once, each iteration 8 MiB from the mirror's side to h1, reported
// in Mbit/s (the link is 100 Mbit/s; TCP over 40 ms should fill most of it).
//
//	go test -run '^$' -bench WANLink -benchtime 20x ./internal/netbed
func BenchmarkWANLink(b *testing.B) {
	bed, err := New(Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer bed.Close()
	lan, err := bed.AddSegment(SegmentConfig{Name: "lan"})
	if err != nil {
		b.Fatal(err)
	}
	wan, err := bed.AddSegment(SegmentConfig{Name: "mirror", Uplink: WAN})
	if err != nil {
		b.Fatal(err)
	}
	h1, err := bed.AddHost("h1", lan, LAN)
	if err != nil {
		b.Fatal(err)
	}
	src, err := bed.AddHost("mirror", wan, LAN)
	if err != nil {
		b.Fatal(err)
	}
	const total = 8 << 20
	chunk := make([]byte, 64<<10)
	ln, err := src.Listen("tcp", netip.AddrPortFrom(src.Addr4(), 0).String())
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	// Each connection asks for n bytes with an 8-byte request and gets them.
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				var hdr [8]byte
				for {
					if _, err := io.ReadFull(c, hdr[:]); err != nil {
						return
					}
					for left := int(binary.BigEndian.Uint64(hdr[:])); left > 0; {
						n, err := c.Write(chunk[:min(left, len(chunk))])
						if err != nil {
							return
						}
						left -= n
					}
				}
			}()
		}
	}()
	for _, flows := range []int{1, 4} {
		b.Run(fmt.Sprintf("flows=%d", flows), func(b *testing.B) {
			conns := make([]net.Conn, flows)
			for i := range conns {
				if conns[i], err = h1.DialContext(context.Background(), "tcp", ln.Addr().String()); err != nil {
					b.Fatal(err)
				}
				defer conns[i].Close()
			}
			b.SetBytes(total)
			b.ResetTimer()
			t0 := time.Now()
			for range b.N {
				var wg sync.WaitGroup
				for _, c := range conns {
					wg.Go(func() {
						var hdr [8]byte
						binary.BigEndian.PutUint64(hdr[:], total/uint64(flows))
						c.Write(hdr[:])
						io.CopyN(io.Discard, c, int64(total/flows))
					})
				}
				wg.Wait()
			}
			b.ReportMetric(float64(total)*float64(b.N)*8/time.Since(t0).Seconds()/1e6, "Mbit/s")
		})
	}
}
