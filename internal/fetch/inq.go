package fetch

import (
	"net"
	"syscall"

	"golang.org/x/sys/unix"
)

// inqProbe asks the kernel how many received bytes wait in a TCP socket's
// queue (SIOCINQ): one ioctl, no allocation (the callback is made once).
type inqProbe struct {
	raw syscall.RawConn
	ctl func(fd uintptr)
	n   int
	err error
}

func (p *inqProbe) init(c net.Conn) {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return
	}
	p.raw = raw
	p.ctl = func(fd uintptr) { p.n, p.err = unix.IoctlGetInt(int(fd), unix.SIOCINQ) }
}

func (p *inqProbe) queued() bool {
	if p.raw == nil {
		return false
	}
	if err := p.raw.Control(p.ctl); err != nil {
		return false
	}
	return p.err == nil && p.n > 0
}
