package lan

import (
	"net"
	"net/netip"
)

// SystemInterfaces lists the machine's interfaces that can carry LAN
// announcements: up, running, multicast-capable and not loopback, with
// their addresses.
func SystemInterfaces() ([]Iface, error) {
	ifs, err := net.Interfaces()
	if err != nil {
		return nil, err
	}
	var out []Iface
	for _, ifi := range ifs {
		const want = net.FlagUp | net.FlagRunning | net.FlagMulticast
		if ifi.Flags&want != want || ifi.Flags&net.FlagLoopback != 0 {
			continue
		}
		addrs, err := ifi.Addrs()
		if err != nil {
			continue
		}
		ifc := Iface{Index: ifi.Index, Name: ifi.Name}
		for _, a := range addrs {
			ipn, ok := a.(*net.IPNet)
			if !ok {
				continue
			}
			ip, ok := netip.AddrFromSlice(ipn.IP)
			if !ok {
				continue
			}
			ip = ip.Unmap()
			ones, _ := ipn.Mask.Size()
			if p, err := ip.Prefix(ones); err == nil {
				ifc.Addrs = append(ifc.Addrs, netip.PrefixFrom(ip, p.Bits()))
			}
		}
		if len(ifc.Addrs) > 0 {
			out = append(out, ifc)
		}
	}
	return out, nil
}

// forBind keeps what a daemon bound to bind may use: with no BIND_ADDRESS
// (invalid or unspecified) every interface; otherwise only the interface
// holding bind, and only bind's family on it (the daemon's DHT and HTTP
// sockets answer on that address only). fams is the families to use.
func forBind(ifs []Iface, bind netip.Addr) (out []Iface, fams []Family) {
	if !bind.IsValid() || bind.IsUnspecified() {
		return ifs, []Family{IPv4, IPv6}
	}
	bind = bind.Unmap()
	for _, ifc := range ifs {
		for _, p := range ifc.Addrs {
			if p.Addr().WithZone("") == bind.WithZone("") {
				out = append(out, ifc)
				break
			}
		}
	}
	return out, []Family{FamilyOf(bind)}
}
