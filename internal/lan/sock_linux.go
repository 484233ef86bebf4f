//go:build linux

package lan

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"

	"golang.org/x/sys/unix"
)

// groupConn is one family's socket: bound to the group address and port (so
// it receives that group's datagrams only: no unicast, no other group),
// joined on each link's interface, with TTL / hop limit 1 and loopback on,
// sending through a chosen interface with IP_PKTINFO / IPV6_PKTINFO, and
// told on receipt which interface a datagram came in on and where it was
// sent to.
type groupConn struct {
	fam   Family
	conn  *net.UDPConn
	group netip.AddrPort
	src   netip.Addr // source address of what we send (BIND_ADDRESS); invalid: the kernel's choice
}

func listenGroup(fam Family, port int, src netip.Addr) (*groupConn, error) {
	domain, group := unix.AF_INET, Group4
	if fam == IPv6 {
		domain, group = unix.AF_INET6, Group6
	}
	fd, err := unix.Socket(domain, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, unix.IPPROTO_UDP)
	if err != nil {
		return nil, fmt.Errorf("lan: %s socket: %w", fam, err)
	}
	type opt struct {
		level, name, v int
		optional       bool // IP(V6)_MULTICAST_ALL: older kernels lack it; binding to the group does its job
	}
	opts := []opt{{level: unix.SOL_SOCKET, name: unix.SO_REUSEADDR, v: 1}}
	var sa unix.Sockaddr
	if fam == IPv4 {
		opts = append(opts,
			opt{level: unix.IPPROTO_IP, name: unix.IP_MULTICAST_TTL, v: 1},
			opt{level: unix.IPPROTO_IP, name: unix.IP_MULTICAST_LOOP, v: 1},
			opt{level: unix.IPPROTO_IP, name: unix.IP_PKTINFO, v: 1},
			opt{level: unix.IPPROTO_IP, name: unix.IP_MULTICAST_ALL, v: 0, optional: true})
		sa = &unix.SockaddrInet4{Port: port, Addr: group.As4()}
	} else {
		opts = append(opts,
			opt{level: unix.IPPROTO_IPV6, name: unix.IPV6_V6ONLY, v: 1},
			opt{level: unix.IPPROTO_IPV6, name: unix.IPV6_MULTICAST_HOPS, v: 1},
			opt{level: unix.IPPROTO_IPV6, name: unix.IPV6_MULTICAST_LOOP, v: 1},
			opt{level: unix.IPPROTO_IPV6, name: unix.IPV6_RECVPKTINFO, v: 1},
			opt{level: unix.IPPROTO_IPV6, name: unix.IPV6_MULTICAST_ALL, v: 0, optional: true})
		sa = &unix.SockaddrInet6{Port: port, Addr: group.As16()}
	}
	for _, o := range opts {
		if err := unix.SetsockoptInt(fd, o.level, o.name, o.v); err != nil && !o.optional {
			unix.Close(fd)
			return nil, fmt.Errorf("lan: %s socket option %d/%d: %w", fam, o.level, o.name, err)
		}
	}
	if err := unix.Bind(fd, sa); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("lan: binding %s: %w", netip.AddrPortFrom(group, uint16(port)), err)
	}
	f := os.NewFile(uintptr(fd), "lan-"+fam.String())
	pc, err := net.FilePacketConn(f)
	f.Close() // FilePacketConn holds its own descriptor
	if err != nil {
		return nil, fmt.Errorf("lan: %s socket: %w", fam, err)
	}
	g := &groupConn{fam: fam, conn: pc.(*net.UDPConn), group: netip.AddrPortFrom(group, uint16(port))}
	if src.IsValid() && FamilyOf(src) == fam && !src.IsUnspecified() {
		g.src = src.Unmap()
	}
	return g, nil
}

// membership joins (or leaves) the group on interface ifindex.
func (g *groupConn) membership(ifindex int, join bool) error {
	rc, err := g.conn.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	err = rc.Control(func(fd uintptr) {
		if g.fam == IPv4 {
			mreq := &unix.IPMreqn{Multiaddr: Group4.As4(), Ifindex: int32(ifindex)}
			name := unix.IP_ADD_MEMBERSHIP
			if !join {
				name = unix.IP_DROP_MEMBERSHIP
			}
			serr = unix.SetsockoptIPMreqn(int(fd), unix.IPPROTO_IP, name, mreq)
		} else {
			mreq := &unix.IPv6Mreq{Multiaddr: Group6.As16(), Interface: uint32(ifindex)}
			name := unix.IPV6_JOIN_GROUP
			if !join {
				name = unix.IPV6_LEAVE_GROUP
			}
			serr = unix.SetsockoptIPv6Mreq(int(fd), unix.IPPROTO_IPV6, name, mreq)
		}
	})
	if err != nil {
		return err
	}
	if join && errors.Is(serr, unix.EADDRINUSE) {
		return nil // already a member there
	}
	return serr
}

// send multicasts pkt out of interface ifindex.
func (g *groupConn) send(ifindex int, pkt []byte) error {
	var oob []byte
	if g.fam == IPv4 {
		info := &unix.Inet4Pktinfo{Ifindex: int32(ifindex)}
		if g.src.IsValid() {
			info.Spec_dst = g.src.As4()
		}
		oob = unix.PktInfo4(info)
	} else {
		info := &unix.Inet6Pktinfo{Ifindex: uint32(ifindex)}
		if g.src.IsValid() {
			info.Addr = g.src.As16()
		}
		oob = unix.PktInfo6(info)
	}
	_, _, err := g.conn.WriteMsgUDPAddrPort(pkt, oob, g.group)
	return err
}

// oobLen holds one IP_PKTINFO or IPV6_PKTINFO control message.
var oobLen = unix.CmsgSpace(unix.SizeofInet6Pktinfo)

// read receives a datagram into buf: its length, source, the interface it
// came in on and the address it was sent to (0 and invalid when the kernel
// did not say). truncated: it was longer than buf.
func (g *groupConn) read(buf, oob []byte) (n int, from netip.AddrPort, ifindex int, dst netip.Addr, truncated bool, err error) {
	n, oobn, flags, from, err := g.conn.ReadMsgUDPAddrPort(buf, oob)
	if err != nil {
		return 0, from, 0, dst, false, err
	}
	msgs, perr := unix.ParseSocketControlMessage(oob[:oobn])
	if perr == nil {
		for _, m := range msgs {
			switch {
			case m.Header.Level == unix.IPPROTO_IP && m.Header.Type == unix.IP_PKTINFO && len(m.Data) >= unix.SizeofInet4Pktinfo:
				// struct in_pktinfo { int ipi_ifindex; in_addr ipi_spec_dst; in_addr ipi_addr; }
				ifindex = int(int32(binary.NativeEndian.Uint32(m.Data[0:4])))
				dst = netip.AddrFrom4([4]byte(m.Data[8:12]))
			case m.Header.Level == unix.IPPROTO_IPV6 && m.Header.Type == unix.IPV6_PKTINFO && len(m.Data) >= unix.SizeofInet6Pktinfo:
				// struct in6_pktinfo { in6_addr ipi6_addr; unsigned ipi6_ifindex; }
				dst = netip.AddrFrom16([16]byte(m.Data[0:16]))
				ifindex = int(binary.NativeEndian.Uint32(m.Data[16:20]))
			}
		}
	}
	return n, from, ifindex, dst, flags&unix.MSG_TRUNC != 0, nil
}

func (g *groupConn) close() error { return g.conn.Close() }
