package front

import (
	"fmt"
	"io"

	"github.com/apt-p2p/apt-p2p/internal/node"
	"github.com/apt-p2p/apt-p2p/internal/portmap"
)

// PortMapStatus is port mapping's part of the status (PORT_MAPPING;
// internal/portmap): the router asked, its external address and the
// mappings it granted. Nil when PORT_MAPPING is no. A mapping is no
// evidence of reachability: the reach block says what the probes found.
type PortMapStatus struct {
	Mode string `json:"mode"`
	portmap.Status
}

func portMapStatus(n *node.Node) *PortMapStatus {
	pi := n.PortMap()
	if !pi.On {
		return nil
	}
	return &PortMapStatus{Mode: pi.Mode, Status: pi.Status}
}

// OK says whether every port asked for is mapped.
func (p *PortMapStatus) OK() bool { return p != nil && p.Err == "" && len(p.Mappings) > 0 }

// writePortMapMetrics adds the mapped ports to /metrics (nothing when off).
func writePortMapMetrics(w io.Writer, n *node.Node) {
	p := portMapStatus(n)
	if p == nil {
		return
	}
	fmt.Fprintf(w, "# HELP aptp2p_port_mapped External port the router maps to a local port (PORT_MAPPING); absent while unmapped.\n# TYPE aptp2p_port_mapped gauge\n")
	for _, m := range p.Mappings {
		fmt.Fprintf(w, "aptp2p_port_mapped{proto=%q,internal=\"%d\"} %d\n", m.Proto, m.Internal, m.External)
	}
	fmt.Fprintf(w, "# HELP aptp2p_port_mapping_requests_total Port mapping requests sent to the router.\n# TYPE aptp2p_port_mapping_requests_total counter\naptp2p_port_mapping_requests_total %d\n", p.Requests)
	fmt.Fprintf(w, "# HELP aptp2p_port_mapping_failures Consecutive failed port mapping rounds.\n# TYPE aptp2p_port_mapping_failures gauge\naptp2p_port_mapping_failures %d\n", p.Failures)
}
