// Package portmap asks the home router to forward the daemon's ports (issue
// 13 item 1, PORT_MAPPING): NAT-PMP (RFC 6886) to the gateway of the default
// route, through github.com/jackpal/go-nat-pmp, or UPnP IGD (WANIPConnection:1
// or WANPPPConnection:1, found by an SSDP search), through
// github.com/huin/goupnp; auto tries NAT-PMP first. It maps the peer port
// (TCP: peers download from it) and the DHT port (UDP) with a lease (1 h),
// renews each lease at half its life, deletes the mappings on Close, and
// learns the router's external address.
//
// It is not a reachability check: a mapping says only that the router agreed
// to forward, not that peers get through (a second NAT, a firewall upstream).
// The reachability checker (engine/reach.go) still decides, by probes, as
// with no mapping; a working mapping only lets its probes arrive. Its rounds
// wait for the router's first answer (engine.ReachConfig.Ready), so that no
// probe is sent before the mapping exists.
//
// What peers are told. In the original protocol a peer's contact is the IP
// address others see its DHT datagrams come from plus its own TCP port. The
// service asks for the same external port as the local one, and a router
// that can gives it (then nothing changes for peers). A router may give
// another port (NAT-PMP, RFC 6886 §3.3: the suggested port is only a hint;
// UPnP: the port is taken, error 718, and the next ones are tried):
//
//   - UDP: a NAT-PMP mapping also applies to outbound datagrams from the
//     internal port, so DHT nodes see our datagrams come from the mapped
//     external port and put that in their tables. Nothing to tell them.
//     UPnP IGD says nothing of outbound traffic, so over UPnP only the local
//     port itself is asked for.
//   - TCP: peers learn our HTTP port only from our announcements (the
//     compact peer value's port) and probers from the reach query's port.
//     While a TCP mapping is active, both carry the mapped external port
//     (node.ContactOf, engine.Node.SetReachTCPPort); LAN peers, which reach
//     the local port directly, still get the local one. When the mapping
//     ends they go back to the local port.
//
// A router that does not answer, or refuses, costs one request cycle (the
// library's retransmissions, bounded by DefaultTimeout; an SSDP search of
// 2 s for UPnP) and then nothing until the next try, Retry after the first
// failure, doubling up to MaxRetry. A failure is logged once (again only
// when the error changes); the status says what happened.
package portmap

import (
	"fmt"
	"net/netip"
	"time"
)

// Proto is the transport of a mapping.
type Proto uint8

const (
	TCP Proto = iota
	UDP
)

func (p Proto) String() string {
	if p == UDP {
		return "udp"
	}
	return "tcp"
}

// MarshalText writes "tcp" or "udp" (JSON).
func (p Proto) MarshalText() ([]byte, error) { return []byte(p.String()), nil }

// UnmarshalText reads what MarshalText writes (`apt-p2p status` reads
// /stats.json).
func (p *Proto) UnmarshalText(b []byte) error {
	switch string(b) {
	case "tcp":
		*p = TCP
	case "udp":
		*p = UDP
	default:
		return fmt.Errorf("portmap: unknown protocol %q", b)
	}
	return nil
}

// Port is a local port to map.
type Port struct {
	Proto    Proto
	Internal uint16
}

func (p Port) String() string { return fmt.Sprintf("%s/%d", p.Proto, p.Internal) }

// Gateway speaks one port-mapping protocol to one router. Its calls block
// for at most a few seconds (the protocol's retransmissions).
type Gateway interface {
	// Protocol names the protocol ("NAT-PMP", "UPnP").
	Protocol() string
	// Addr is the router's address.
	Addr() netip.Addr
	// ExternalAddr is the router's public address.
	ExternalAddr() (netip.Addr, error)
	// Map asks for a mapping of internal to external (a suggestion) for
	// lease; it returns the external port and the lease granted.
	Map(p Proto, internal, external uint16, lease time.Duration) (uint16, time.Duration, error)
	// Unmap deletes the mapping of internal to external.
	Unmap(p Proto, internal, external uint16) error
}

// Mapping is an active mapping.
type Mapping struct {
	Proto    Proto     `json:"proto"`
	Internal uint16    `json:"internal"`
	External uint16    `json:"external"`
	Expires  time.Time `json:"expires"`
	Renew    time.Time `json:"renew"` // when it is renewed (half its lease)
}

// Status is what the service knows, for the status views.
type Status struct {
	Protocol string        `json:"protocol,omitempty"`
	Gateway  netip.Addr    `json:"gateway"`
	External netip.Addr    `json:"external"` // the router's public address
	Mappings []Mapping     `json:"mappings"` // active ones, in the order of Config.Ports
	Err      string        `json:"error,omitempty"`
	ErrSince time.Time     `json:"error_since,omitzero"`
	Failures int           `json:"failures"` // consecutive failed rounds
	Next     time.Time     `json:"next"`     // the next round (renewal or retry)
	Rounds   uint64        `json:"rounds"`
	Requests uint64        `json:"requests"` // protocol requests sent (each up to a few datagrams)
	Backoff  time.Duration `json:"backoff_ns,omitempty"`
}

// Mapped is the external port of p, if a mapping of it is active.
func (s Status) Mapped(p Port) (uint16, bool) {
	for _, m := range s.Mappings {
		if m.Proto == p.Proto && m.Internal == p.Internal {
			return m.External, true
		}
	}
	return 0, false
}

// Line is a one-line summary for the status page.
func (s Status) Line() string {
	var b []byte
	if len(s.Mappings) > 0 {
		b = fmt.Appendf(b, "%s via %s:", s.Protocol, s.Gateway)
		for _, m := range s.Mappings {
			b = fmt.Appendf(b, " %s %d → %s:%d", m.Proto, m.Internal, s.External, m.External)
		}
	} else {
		b = append(b, "no port mapped"...)
	}
	if s.Err != "" {
		b = fmt.Appendf(b, " (%s; %d failures, next try in %s)", s.Err, s.Failures, s.Backoff)
	}
	return string(b)
}
