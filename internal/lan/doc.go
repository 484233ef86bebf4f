// Package lan is apt-p2p's LAN discovery (issue 13, item 3): daemons on one
// link find each other with no configuration, so a lab whose machines have
// no BOOTSTRAP node forms a DHT of its own and shares packages out of the
// box. It is a multicast announcement in the spirit of BitTorrent's Local
// Service Discovery (BEP 14): BEP 14's groups (239.192.152.143 and
// ff15::efc0:988f), apt-p2p's own port (Port, 9976) and message
// ("APT-P2P-LSD * HTTP/1.1"), so that BitTorrent clients and apt-p2p
// daemons on one LAN never read each other's announcements. wire/doc.go,
// "LAN discovery", is the protocol: message format, schedule and limits.
//
// What a daemon learns from an announcement is a peer's DHT contact (the
// datagram's source address and its DHT-Port) and its HTTP port. The node
// hands every contact to the DHT engine (engine.Node.Introduce), which pings
// it unless its routing table already holds that address; an answer puts it
// in the table like any node. Nothing else trusts an announcement: files
// still come only by hash, and peers' values still come from the DHT.
//
// Core is the protocol without I/O or clock, as engine.Core is the DHT's:
// datagrams, interface lists and ticks go in, datagrams and introductions
// come out. Its tests drive it on a virtual clock. Service runs a Core on
// real sockets (Linux: one socket per family bound to the group, joined on
// every multicast-capable interface, IP_PKTINFO to send out of one interface
// and to learn where a datagram came in, TTL and hop limit 1) with a
// clock.Clock for its schedule.
//
// It is not a second DHT: it keeps only the peers heard in the last few
// minutes (bounded), for the status page and for introductions; lookups
// and announcements of files go through the DHT as ever.
package lan
