// Package netbed builds private networks out of Linux network namespaces for
// tests and benchmarks that need more than loopback: hosts on a LAN, a mirror
// behind a slow, distant link, and (later) NATed sites and IPv6-only or
// dual-stack LANs. Daemons, apt-get and in-process servers run inside the
// bed's namespaces; nothing of a bed is reachable from, or touches, the
// machine's own network.
//
// # Shape
//
// A Bed has a router (forwarding on, IPv4 and IPv6) and segments. A segment is a
// bridge in its own namespace; the router and hosts attach to it with veth
// pairs. An attachment can go through a Link, which then gets a namespace of
// its own in the middle of the veth path:
//
//	host ──veth── [link: tbf ⇄ TAP ~delay line~ TAP ⇄ tbf] ──veth── bridge ── router, other hosts
//
// Rate limits are tbf qdiscs on the link namespace's two veth ends (queues in
// the middle of the path, as at a router). This kernel has no netem, so the
// added round-trip time is a delay line in the test process: each direction's
// frames are read from one TAP device and written to the other RTT/2 later, in
// order (virtio-net headers and GSO kept, so bulk TCP crosses as 64 KiB frames).
// TCP, UDP, ARP and IPv6 neighbour discovery all see the delay; connections are
// end to end, so handshakes, slow start and the mirror's view of client
// addresses are real. Profiles: LAN (unshaped, no added delay, round trips of
// tens of microseconds) and WAN (100 Mbit/s each way, 40 ms round trip).
//
// # Addresses
//
// Segment n (1…127) is 10.240.n.0/24 and fd42:0:0:n::/64 (its Family says which
// of the two it carries). The router is .1 / ::1; hosts get .11, .12, … in the
// order they attach, and default routes via the router. Addresses stay inside
// the 10.240.0.0/16 and fd42::/16 test ranges, never fd00::/64.
//
// # Processes and sockets
//
// A Host embeds its Namespace: Start forks a process inside it (killed if the
// test process dies), Do runs a function on a thread inside it (sockets it
// creates stay there: testrepo.ServeMirror inside Do serves on the bed),
// Listen/DialContext/HTTPClient wrap that. apt-get runs inside a host through
// apttest.Root.Start = host.Start.
//
// # Cleanup
//
// Namespaces are named netbed-<pid>-<process start time>-<bed>-<role>, so
// concurrent test processes never collide and `ip netns` shows whose they are.
// Close kills what still runs inside, stops the delay lines and deletes every
// namespace (their interfaces go with them). A test process killed before its
// cleanups ran leaves namespaces behind: the next New (or CleanStale) removes
// every netbed namespace whose creating process is gone, killing what ran in
// them; other namespaces are never touched.
//
// # Prerequisites
//
// Root (CAP_SYS_ADMIN, CAP_NET_ADMIN), iproute2's ip and tc (scripts/install-deps.sh
// installs them), and a kernel with network namespaces, veth, bridges, tbf and
// TUN/TAP. New fails with ErrPrerequisite and what to do when something is
// missing; tests fail rather than skip.
//
// # Extending it (issue 13)
//
// SegmentConfig.Family gives IPv6-only and dual-stack LANs; NoRouter plus a
// multi-homed host (Bed.Attach) gives a site behind a NAT host, whose
// masquerading the test sets up with Host.Run (nft) or a user-space relay; a
// LAN with no bootstrap is a segment whose daemons are given no BOOTSTRAP
// (bridges forward multicast: snooping is off). The package does not start
// daemons or know about apt-p2p: that stays with the tests and benchmarks.
package netbed
