//go:build !linux

package lan

import (
	"errors"
	"net/netip"
)

// errUnsupported: the sockets need Linux's IP_PKTINFO and socket options.
var errUnsupported = errors.New("lan: LAN discovery is only implemented on Linux")

type groupConn struct{ fam Family }

var oobLen = 64

func listenGroup(fam Family, port int, src netip.Addr) (*groupConn, error) {
	return nil, errUnsupported
}

func (g *groupConn) membership(ifindex int, join bool) error { return errUnsupported }
func (g *groupConn) send(ifindex int, pkt []byte) error      { return errUnsupported }
func (g *groupConn) read(buf, oob []byte) (int, netip.AddrPort, int, netip.Addr, bool, error) {
	return 0, netip.AddrPort{}, 0, netip.Addr{}, false, errUnsupported
}
func (g *groupConn) close() error { return nil }
