package httpserve

import (
	"net"
	"syscall"
	"time"
	"unsafe"
)

// rawSend is one sendfile(2) span with an explicit file offset, run inside the connection's
// RawConn.Write so the runtime poller waits for writability and honours the write deadline.
// Unlike net.TCPConn.ReadFrom (which uses and moves the file's shared offset and allocates a
// RawConn and a closure per call), it reads at its own offset like pread and allocates nothing.
//
// The write deadline (the stall timeout) is moved only when the socket is full and the poller is
// about to wait, once per span: a span that the socket buffer takes at once costs no timer work.
type rawSend struct {
	infd   int
	off    int64
	remain int
	n      int64
	err    error
	conn   net.Conn      // whose write deadline to arm before waiting; nil: none
	stall  time.Duration // the stall timeout
	armed  bool          // the deadline was moved for this span
}

func (r *rawSend) write(fd uintptr) bool {
	for r.remain > 0 {
		n, err := syscall.Sendfile(int(fd), r.infd, &r.off, r.remain)
		if n > 0 {
			r.remain -= n
			r.n += int64(n)
		}
		switch err {
		case nil:
			if n == 0 {
				r.err = ErrShortFile
				return true
			}
		case syscall.EAGAIN:
			r.arm() // socket buffer full: let the poller wait, until the stall deadline at most
			return false
		case syscall.EINTR:
		default:
			r.err = err
			return true
		}
	}
	return true
}

// arm moves the write deadline to the stall timeout, once per span, before the poller waits.
func (r *rawSend) arm() {
	if !r.armed && r.conn != nil {
		r.conn.SetWriteDeadline(time.Now().Add(r.stall)) //nolint:errcheck // a failed write reports it
		r.armed = true
	}
}

// write sends the express lane's header, with MSG_MORE when a body follows so both share
// segments, then the body with rawSend. A full socket arms the stall deadline either way.
func (x *expressSend) write(fd uintptr) bool {
	for len(x.hdr) > 0 {
		flags := uintptr(syscall.MSG_NOSIGNAL)
		if x.body.remain > 0 {
			flags |= syscall.MSG_MORE
		}
		r, _, e := syscall.Syscall6(syscall.SYS_SENDTO, fd, uintptr(unsafe.Pointer(&x.hdr[0])), uintptr(len(x.hdr)), flags, 0, 0)
		switch e {
		case 0:
			x.hdr = x.hdr[r:]
		case syscall.EAGAIN:
			x.body.arm()
			return false
		case syscall.EINTR:
		default:
			x.body.err = e
			return true
		}
	}
	return x.body.write(fd)
}

// directSendfile reports whether rawSend can be used on this platform.
const directSendfile = true

// unsupported reports whether err means sendfile cannot work for this pair of descriptors, so the
// caller should fall back to copying.
func unsupported(err error) bool {
	return err == syscall.EINVAL || err == syscall.ENOSYS || err == syscall.EOPNOTSUPP
}

// moreSend writes p with MSG_MORE: the kernel holds a short header until the sendfile that follows
// and sends both in full-sized segments, as nginx's tcp_nopush does, without two extra setsockopt
// calls per response. The sendfile call without MSG_MORE pushes everything out.
type moreSend struct {
	p   []byte
	n   int
	err error
}

func (m *moreSend) write(fd uintptr) bool {
	for m.n < len(m.p) {
		b := m.p[m.n:]
		r, _, e := syscall.Syscall6(syscall.SYS_SENDTO, fd, uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)),
			syscall.MSG_MORE|syscall.MSG_NOSIGNAL, 0, 0)
		switch e {
		case 0:
			m.n += int(r)
		case syscall.EAGAIN:
			return false
		case syscall.EINTR:
		default:
			m.err = e
			return true
		}
	}
	return true
}
