package portmap

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"

	natpmp "github.com/jackpal/go-nat-pmp"
)

// DefaultTimeout bounds one NAT-PMP request with its retransmissions (RFC
// 6886 §3.1: 250 ms, doubling; a router that answers does so in the first
// few milliseconds).
const DefaultTimeout = 4 * time.Second

// natPMP is a Gateway speaking NAT-PMP (RFC 6886) to a router on UDP 5351.
type natPMP struct {
	gw netip.Addr
	c  *natpmp.Client
}

// NewNATPMP returns a NAT-PMP Gateway for the router at gw; each request
// gives up after timeout (DefaultTimeout if 0). The router maps to the
// address our request comes from: the one the kernel picks for gw.
func NewNATPMP(gw netip.Addr, timeout time.Duration) Gateway {
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	return &natPMP{gw: gw, c: natpmp.NewClientWithTimeout(net.IP(gw.AsSlice()), timeout)}
}

// OpenNATPMP finds the default gateway and returns a NAT-PMP Gateway for it
// (Config.Open).
func OpenNATPMP(timeout time.Duration) func() (Gateway, error) {
	return func() (Gateway, error) {
		gw, err := DefaultGateway()
		if err != nil {
			return nil, err
		}
		return NewNATPMP(gw, timeout), nil
	}
}

func (g *natPMP) Protocol() string { return "NAT-PMP" }
func (g *natPMP) Addr() netip.Addr { return g.gw }

func (g *natPMP) ExternalAddr() (netip.Addr, error) {
	r, err := g.c.GetExternalAddress()
	if err != nil {
		return netip.Addr{}, fmt.Errorf("NAT-PMP external address from %s: %w", g.gw, err)
	}
	return netip.AddrFrom4(r.ExternalIPAddress), nil
}

func (g *natPMP) Map(p Proto, internal, external uint16, lease time.Duration) (uint16, time.Duration, error) {
	secs := max(int(lease/time.Second), 1)
	r, err := g.c.AddPortMapping(p.String(), int(internal), int(external), secs)
	if err != nil {
		return 0, 0, fmt.Errorf("NAT-PMP mapping of %s/%d at %s: %w", p, internal, g.gw, err)
	}
	if r.MappedExternalPort == 0 || r.PortMappingLifetimeInSeconds == 0 {
		return 0, 0, fmt.Errorf("NAT-PMP mapping of %s/%d at %s: the router granted port %d for %d s", p, internal, g.gw,
			r.MappedExternalPort, r.PortMappingLifetimeInSeconds)
	}
	return r.MappedExternalPort, time.Duration(r.PortMappingLifetimeInSeconds) * time.Second, nil
}

// Unmap deletes a mapping: a request with lifetime 0 and external port 0
// (RFC 6886 §3.4).
func (g *natPMP) Unmap(p Proto, internal, _ uint16) error {
	if _, err := g.c.AddPortMapping(p.String(), int(internal), 0, 0); err != nil {
		return fmt.Errorf("NAT-PMP deletion of %s/%d at %s: %w", p, internal, g.gw, err)
	}
	return nil
}

// OpenAuto tries NAT-PMP at the default gateway, and UPnP IGD when that
// gateway does not answer NAT-PMP (PORT_MAPPING = auto).
func OpenAuto(timeout time.Duration) func() (Gateway, error) {
	pmp, upnp := OpenNATPMP(timeout), OpenUPnP(timeout)
	return func() (Gateway, error) {
		g, err := pmp()
		if err == nil {
			if _, err = g.ExternalAddr(); err == nil {
				return g, nil
			}
		}
		g, uerr := upnp()
		if uerr != nil {
			return nil, errors.Join(err, uerr)
		}
		return g, nil
	}
}
