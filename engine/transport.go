package engine

import (
	"net"
	"net/netip"
	"time"
)

// Transport is a UDP socket as the runner uses it. ReadFrom blocks until a
// datagram arrives or the read deadline passes (then it returns an error
// whose Timeout() is true); SetReadDeadline may be called from any
// goroutine to interrupt a blocked ReadFrom. WriteTo is only called from the
// runner's goroutine.
type Transport interface {
	ReadFrom(b []byte) (n int, from netip.AddrPort, err error)
	WriteTo(b []byte, to netip.AddrPort) error
	SetReadDeadline(t time.Time) error
	LocalAddr() netip.AddrPort
	Close() error
}

// UDPTransport is the default transport: a net.UDPConn used through the
// allocation-free ReadFromUDPAddrPort / WriteToUDPAddrPort.
type UDPTransport struct {
	conn *net.UDPConn
}

// ListenUDP opens a UDPTransport on addr ("127.0.0.1:0", ":9977").
func ListenUDP(addr string) (*UDPTransport, error) {
	ua, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		return nil, err
	}
	c, err := net.ListenUDP("udp", ua)
	if err != nil {
		return nil, err
	}
	// A busy DHT node receives bursts; the default 208 KiB buffer drops them.
	c.SetReadBuffer(4 << 20)
	c.SetWriteBuffer(4 << 20)
	return &UDPTransport{conn: c}, nil
}

// NewUDPTransport wraps an open socket.
func NewUDPTransport(c *net.UDPConn) *UDPTransport { return &UDPTransport{conn: c} }

func (t *UDPTransport) ReadFrom(b []byte) (int, netip.AddrPort, error) {
	return t.conn.ReadFromUDPAddrPort(b)
}

func (t *UDPTransport) WriteTo(b []byte, to netip.AddrPort) error {
	_, err := t.conn.WriteToUDPAddrPort(b, to)
	return err
}

func (t *UDPTransport) SetReadDeadline(d time.Time) error { return t.conn.SetReadDeadline(d) }

func (t *UDPTransport) LocalAddr() netip.AddrPort {
	return t.conn.LocalAddr().(*net.UDPAddr).AddrPort()
}

func (t *UDPTransport) Close() error { return t.conn.Close() }
