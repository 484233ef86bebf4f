package portmap

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/huin/goupnp"
	"github.com/huin/goupnp/dcps/internetgateway2"
	"github.com/huin/goupnp/soap"
)

// igdClient is what WANIPConnection1 and WANPPPConnection1 clients of an
// Internet Gateway Device both offer.
type igdClient interface {
	AddPortMappingCtx(ctx context.Context, remoteHost string, externalPort uint16, protocol string, internalPort uint16,
		internalClient string, enabled bool, description string, leaseSeconds uint32) error
	DeletePortMappingCtx(ctx context.Context, remoteHost string, externalPort uint16, protocol string) error
	GetExternalIPAddressCtx(ctx context.Context) (string, error)
	GetServiceClient() *goupnp.ServiceClient
}

// upnpIGD is a Gateway speaking UPnP IGD (WANIPConnection:1 or
// WANPPPConnection:1, which IGD:2 routers offer too) through
// github.com/huin/goupnp.
type upnpIGD struct {
	c       igdClient
	addr    netip.Addr // the router's (its description's host)
	local   string     // our address on the router's network
	timeout time.Duration
}

// UPnP error codes (IGD:1 WANIPConnection:1 §2.4.16).
const (
	upnpConflict           = 718 // ConflictInMappingEntry
	upnpOnlyPermanentLease = 725 // OnlyPermanentLeasesSupported
)

// upnpDescription names our mappings in the router's table.
const upnpDescription = "apt-p2p"

// OpenUPnP finds an Internet Gateway Device by SSDP (a multicast search of
// about 2 s on every IPv4 interface), preferring the gateway of the default
// route when several answer (Config.Open). Its requests give up after
// timeout (DefaultTimeout if 0).
func OpenUPnP(timeout time.Duration) func() (Gateway, error) {
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	return func() (Gateway, error) {
		ctx, cancel := context.WithTimeout(context.Background(), timeout+3*time.Second)
		defer cancel()
		var (
			wg     sync.WaitGroup
			ip     []*internetgateway2.WANIPConnection1
			ppp    []*internetgateway2.WANPPPConnection1
			ipErr  error
			pppErr error
		)
		wg.Go(func() { ip, _, ipErr = internetgateway2.NewWANIPConnection1ClientsCtx(ctx) })
		wg.Go(func() { ppp, _, pppErr = internetgateway2.NewWANPPPConnection1ClientsCtx(ctx) })
		wg.Wait()
		var found []igdClient
		for _, c := range ip {
			found = append(found, c)
		}
		for _, c := range ppp {
			found = append(found, c)
		}
		if len(found) == 0 {
			if err := errors.Join(ipErr, pppErr); err != nil {
				return nil, fmt.Errorf("UPnP: searching for an Internet gateway: %w", err)
			}
			return nil, errors.New("UPnP: no Internet gateway device answered the search")
		}
		gw, _ := DefaultGateway()
		pick := found[0]
		for _, c := range found {
			if a, ok := hostAddr(c.GetServiceClient().Location); ok && a == gw {
				pick = c
				break
			}
		}
		g := &upnpIGD{c: pick, timeout: timeout}
		sc := pick.GetServiceClient()
		g.addr, _ = hostAddr(sc.Location)
		if l := sc.LocalAddr(); l != nil {
			g.local = l.String()
		} else if g.local = localAddrFor(g.addr); g.local == "" {
			return nil, fmt.Errorf("UPnP: no local address towards the gateway %s", g.addr)
		}
		return g, nil
	}
}

// hostAddr is the IP address in a URL's host.
func hostAddr(u *url.URL) (netip.Addr, bool) {
	if u == nil {
		return netip.Addr{}, false
	}
	a, err := netip.ParseAddr(u.Hostname())
	return a.Unmap(), err == nil
}

// localAddrFor is the address the kernel would send from to reach gw.
func localAddrFor(gw netip.Addr) string {
	c, err := net.DialUDP("udp4", nil, net.UDPAddrFromAddrPort(netip.AddrPortFrom(gw, 1900)))
	if err != nil {
		return ""
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).IP.String()
}

func (g *upnpIGD) Protocol() string { return "UPnP" }
func (g *upnpIGD) Addr() netip.Addr { return g.addr }

func (g *upnpIGD) ctx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), g.timeout)
}

func (g *upnpIGD) ExternalAddr() (netip.Addr, error) {
	ctx, cancel := g.ctx()
	defer cancel()
	s, err := g.c.GetExternalIPAddressCtx(ctx)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("UPnP external address from %s: %w", g.addr, err)
	}
	a, err := netip.ParseAddr(strings.TrimSpace(s))
	if err != nil {
		return netip.Addr{}, fmt.Errorf("UPnP external address from %s: %q: %w", g.addr, s, err)
	}
	return a.Unmap(), nil
}

// Map asks for external (a port already ours is simply renewed). A router
// that holds a TCP port for another machine (718) is asked for the next
// ports, a few. A UDP port must be the one asked for: unlike NAT-PMP, IGD
// says nothing of outbound datagrams, so DHT nodes see the port the NAT's
// own translation gives (Linux keeps the local one when it can), and a
// mapping of another would not be where they send. A router that takes
// permanent mappings only (725, IGD:1) gets one, which Unmap deletes at
// Close.
func (g *upnpIGD) Map(p Proto, internal, external uint16, lease time.Duration) (uint16, time.Duration, error) {
	secs := uint32(max(lease/time.Second, 1))
	proto := strings.ToUpper(p.String())
	tries := uint16(4)
	if p == UDP {
		tries = 1
	}
	var err error
	for try := range tries {
		ext := external + try
		if ext == 0 { // wrapped
			break
		}
		ctx, cancel := g.ctx()
		err = g.c.AddPortMappingCtx(ctx, "", ext, proto, internal, g.local, true, upnpDescription, secs)
		if upnpCode(err) == upnpOnlyPermanentLease {
			err = g.c.AddPortMappingCtx(ctx, "", ext, proto, internal, g.local, true, upnpDescription, 0)
		}
		cancel()
		if err == nil {
			return ext, lease, nil
		}
		if upnpCode(err) != upnpConflict {
			break
		}
	}
	return 0, 0, fmt.Errorf("UPnP mapping of %s/%d at %s: %w", p, internal, g.addr, err)
}

func (g *upnpIGD) Unmap(p Proto, _, ext uint16) error {
	ctx, cancel := g.ctx()
	defer cancel()
	if err := g.c.DeletePortMappingCtx(ctx, "", ext, strings.ToUpper(p.String())); err != nil {
		return fmt.Errorf("UPnP deletion of %s/%d at %s: %w", p, ext, g.addr, err)
	}
	return nil
}

// upnpCode is the UPnP error code of a SOAP fault (0 if err is none).
func upnpCode(err error) int {
	var f *soap.SOAPFaultError
	if errors.As(err, &f) {
		return f.Detail.UPnPError.Errorcode
	}
	return 0
}
