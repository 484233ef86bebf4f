// Package kbucket is the DHT routing table of apt-p2p: Kademlia k-buckets over
// 160-bit IDs with XOR distance, as in the original's ktable.py (reference
// §2.10), with its bugs fixed.
//
// The table starts as one bucket covering [0, 2^160). Only the bucket that
// holds our own ID is ever split (in the middle), so the buckets are the
// siblings of the path from the root of the ID trie down to our own ID, plus
// the bucket at the end of that path. A bucket holds at most K nodes, ordered
// by when they last answered (oldest first). When a node leaves the table the
// two deepest buckets are merged back while they hold K nodes or fewer
// together.
//
// Only nodes that have answered us ("contacted") enter the table; a node that
// was only heard of is reported back as NeedsPing and the caller pings it.
// Addresses that cannot belong to a reachable peer (private, loopback,
// link-local, multicast, ...) are refused unless Config.AllowLocal is set.
//
// What it is not: kbucket does no I/O, starts no goroutines and has no clock
// of its own (every call that needs the time takes it as an argument). It is
// not safe for concurrent use: the DHT engine's event loop owns the table.
// The ping-the-oldest replacement policy, re-pings and the ID-change check are
// the engine's; the table gives it the answers it needs (BucketFull with the
// oldest node, Get, Remove).
//
// Closest, Insert, Get and Failed do not allocate in the steady state (a
// split of a bucket allocates the new bucket's storage unless a merged one can
// be reused); allocation guards in alloc_test.go check it.
package kbucket
