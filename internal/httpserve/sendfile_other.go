//go:build !linux

package httpserve

import (
	"net"
	"time"
)

type rawSend struct {
	infd   int
	off    int64
	remain int
	n      int64
	err    error
	conn   net.Conn
	stall  time.Duration
	armed  bool
}

func (r *rawSend) write(fd uintptr) bool { return true }

const directSendfile = false

func unsupported(err error) bool { return true }

type moreSend struct {
	p   []byte
	n   int
	err error
}

func (m *moreSend) write(fd uintptr) bool { return true }

func (x *expressSend) write(fd uintptr) bool { return true } // never used: expressReady needs directSendfile
