package portmap

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"strconv"
	"strings"
)

// RouteFile is where Linux lists the IPv4 routes of the caller's network
// namespace.
const RouteFile = "/proc/net/route"

// ErrNoGateway: the routing table has no IPv4 default route through a gateway.
var ErrNoGateway = errors.New("portmap: no IPv4 default route through a gateway")

// Route flags of /proc/net/route (linux/route.h).
const (
	rtfUp      = 0x1
	rtfGateway = 0x2
)

// DefaultGateway is the gateway of the IPv4 default route with the lowest
// metric, read from RouteFile.
func DefaultGateway() (netip.Addr, error) {
	f, err := os.Open(RouteFile)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("portmap: finding the default gateway: %w", err)
	}
	defer f.Close()
	return ParseRoutes(f)
}

// ParseRoutes reads a /proc/net/route table and returns the gateway of its
// default route with the lowest metric. Addresses there are 32-bit numbers
// printed in host byte order.
func ParseRoutes(r io.Reader) (netip.Addr, error) {
	sc := bufio.NewScanner(r)
	var best netip.Addr
	bestMetric := uint64(1<<64 - 1)
	first := true
	for sc.Scan() {
		if first { // the header
			first = false
			continue
		}
		f := strings.Fields(sc.Text())
		if len(f) < 8 {
			continue
		}
		dst, err1 := strconv.ParseUint(f[1], 16, 32)
		gw, err2 := strconv.ParseUint(f[2], 16, 32)
		flags, err3 := strconv.ParseUint(f[3], 16, 16)
		metric, err4 := strconv.ParseUint(f[6], 10, 32)
		mask, err5 := strconv.ParseUint(f[7], 16, 32)
		if err := errors.Join(err1, err2, err3, err4, err5); err != nil {
			continue
		}
		if dst != 0 || mask != 0 || flags&(rtfUp|rtfGateway) != rtfUp|rtfGateway || gw == 0 {
			continue
		}
		var b [4]byte
		binary.NativeEndian.PutUint32(b[:], uint32(gw))
		if metric < bestMetric {
			best, bestMetric = netip.AddrFrom4(b), metric
		}
	}
	if err := sc.Err(); err != nil {
		return netip.Addr{}, fmt.Errorf("portmap: reading the routing table: %w", err)
	}
	if !best.IsValid() {
		return netip.Addr{}, ErrNoGateway
	}
	return best, nil
}
