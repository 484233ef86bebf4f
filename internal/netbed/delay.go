package netbed

import (
	"fmt"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// clock is what a delay line reads and waits on; its tests drive a fake one.
type clock interface {
	Now() time.Time
	// SleepUntil returns at t or later.
	SleepUntil(t time.Time)
}

type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }

func (realClock) SleepUntil(t time.Time) {
	if d := time.Until(t); d > 0 {
		time.Sleep(d)
	}
}

// frameConn is one end of a delay line: a TAP device's file, or a test's fake.
type frameConn interface {
	Read(p []byte) (int, error)
	Write(p []byte) (int, error)
}

// maxFrame bounds one read from a TAP device: a virtio-net header plus a
// 64 KiB GSO frame with its Ethernet header.
const maxFrame = 1 << 17

// delayQueue bounds the frames in flight in one direction. At 100 Mbit/s and
// 20 ms one way about 170 full-size frames (far fewer GSO frames) are in flight;
// a delayed link at 1 Gbit/s with 50 ms one way needs about 4 200.
const delayQueue = 16384

type frame struct {
	due time.Time
	b   []byte
}

// delayLine forwards the frames read from src to dst, each written no earlier
// than delay after it was read, in the order read: the propagation delay of one
// direction of a link, which the kernel here cannot add (no netem). A frame that
// finds the line full is dropped, as a full queue would.
type delayLine struct {
	src, dst frameConn
	delay    time.Duration
	clk      clock
	q        chan frame

	Forwarded atomic.Int64
	Dropped   atomic.Int64
	WriteErrs atomic.Int64
}

func newDelayLine(src, dst frameConn, delay time.Duration, clk clock, queue int) *delayLine {
	return &delayLine{src: src, dst: dst, delay: delay, clk: clk, q: make(chan frame, queue)}
}

// run forwards until src fails (it is closed), then drains and returns.
func (l *delayLine) run() {
	var wg sync.WaitGroup
	wg.Go(func() {
		linePriority()
		l.writeLoop()
	})
	linePriority()
	l.readLoop()
	wg.Wait()
}

// linePriority gives the calling goroutine an OS thread of its own with a
// higher scheduling priority (best effort): the delay line stands in for
// wires, and on a machine busy with other work its frames must not wait for
// a CPU, or the link's delay and rate would vary with the load. The thread
// is released when the goroutine exits.
func linePriority() {
	runtime.LockOSThread()
	_ = unix.Setpriority(unix.PRIO_PROCESS, unix.Gettid(), -10)
}

func (l *delayLine) readLoop() {
	defer close(l.q)
	buf := make([]byte, maxFrame)
	for {
		n, err := l.src.Read(buf)
		if err != nil {
			return
		}
		f := frame{due: l.clk.Now().Add(l.delay), b: append([]byte(nil), buf[:n]...)}
		select {
		case l.q <- f:
		default:
			l.Dropped.Add(1)
		}
	}
}

func (l *delayLine) writeLoop() {
	for f := range l.q {
		l.clk.SleepUntil(f.due)
		if _, err := l.dst.Write(f.b); err != nil {
			// The far device is down or closed (the bed is closing); keep
			// draining so the reader never blocks.
			l.WriteErrs.Add(1)
			continue
		}
		l.Forwarded.Add(1)
	}
}

// Offload flags of TUNSETOFFLOAD (linux/if_tun.h): the TAP device may hand over
// and take frames with partial checksums and TCP segmentation still to do, so
// bulk TCP crosses the delay line as 64 KiB frames, not 1 514-byte ones.
const (
	tunFCsum = 0x01
	tunFTSO4 = 0x02
	tunFTSO6 = 0x04
)

// openTap creates the TAP device name in the namespace of the calling thread
// (call it inside Namespace.Do): /dev/net/tun binds the device to the
// namespace of whoever opens it. Frames read and written carry a virtio-net
// header, which a delay line passes through untouched.
func openTap(name string) (*os.File, error) {
	fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
	if err != nil {
		return nil, fmt.Errorf("netbed: /dev/net/tun: %w (delayed links need the kernel's TUN/TAP driver; as root: mkdir -p /dev/net && mknod /dev/net/tun c 10 200)", err)
	}
	ifr, err := unix.NewIfreq(name)
	if err == nil {
		ifr.SetUint16(unix.IFF_TAP | unix.IFF_NO_PI | unix.IFF_VNET_HDR)
		err = unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr)
	}
	if err == nil {
		err = unix.IoctlSetInt(fd, unix.TUNSETOFFLOAD, tunFCsum|tunFTSO4|tunFTSO6)
	}
	if err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("netbed: creating TAP device %s: %w", name, err)
	}
	// Non-blocking, so reads wait in the runtime poller and Close ends them.
	return os.NewFile(uintptr(fd), name), nil
}
