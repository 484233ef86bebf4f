// Package engine is apt-p2p's DHT node: the modified Khashmir/Kademlia
// protocol of the original apt-p2p (reference §2) over UDP.
//
// The heart is Core, a sans-IO state machine: datagrams (HandlePacket) and
// timer events (Tick) go in, datagrams (Output.Send) and caller results
// (callbacks of Get, Put, FindNode, OnJoined) come out. It never reads the
// clock, sleeps or touches a socket, and it is owned by one goroutine, so it
// has no locks. It holds the routing table (package kbucket), the
// transaction table with retransmission of identical datagrams, the store
// tokens, the value storage with its limits, per-node RTT estimates, the
// iterative lookups (find_node, find_value, get_value, store_value with
// α = ConcurrentReqs in flight, abort-early and leap-frog), joining with
// external-address discovery, and the checkpoints.
//
// Every caller operation (Get, Put, FindNode, Claim) returns an Op; Cancel
// ends it in the core, stopping the lookups only it was waiting for and
// releasing their requests (a Get shared by several callers of one key goes
// on for the others).
//
// Node runs one Core on a real UDP Transport in one event-loop goroutine and
// offers a goroutine-safe API; a caller's done context cancels its
// operation in the core. The checkpoint's snapshot is taken on the loop and
// written by another goroutine (one writer, the latest snapshot wins, Close
// waits for it), so a slow disk never stalls the DHT. The simulator (package engine/sim) runs many
// cores on a virtual clock and a simulated network.
//
// The engine is not the application: it does not know what values mean
// beyond the pluggable Validator (AptValidator is apt-p2p's) and the family
// of a peer value's contact, and it does not republish values (the caller
// re-Puts before KeyExpire).
//
// A Core serves one address family (family.go): IPv4, the original
// protocol, or IPv6, its extension in the spirit of BEP 32 (wire/doc.go,
// "IPv6"). A dual-stack node runs one core of each, paired, on one event
// loop and one dual-stack socket (dualstack.go): two routing tables, two
// value stores, two external-address votes, one node ID and one state file.
// Nothing of the IPv6 network ever reaches an IPv4 address: an IPv4 core
// never sends want or nodes6 unasked and never stores or puts a value with
// an IPv6 contact.
//
// MainlineCore is the second personality: a BitTorrent mainline DHT node
// (BEP 5 with BEP 42 node IDs, BEP 43 read-only nodes and BEP 44 immutable
// items), built the same way (sans-IO, one owner, the same kbucket table,
// timer heap, RTT estimates and token secrets, cancellable operations) and
// run by MainlineNode. It is tested against python3-libtorrent nodes on
// loopback (mainline_interop_test.go). wire/doc.go says how apt-p2p content
// maps onto it.
package engine
