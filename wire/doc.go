// Package wire is the byte-level codec of the apt-p2p DHT: strict bencode, the
// KRPC messages of the original apt-p2p protocol, compact node (26 B) and peer
// (6 B) formats and their IPv6 forms (38 B, 18 B; "IPv6" below), and the
// values peers store under a file's key.
//
// It is not a transport and keeps no state: it neither sends nor retries,
// matches transactions, checks tokens nor chooses which values to return. The
// engine does that.
//
// # Bencode
//
// Decoding is as strict as the original's decoder (reference §2.1): the whole
// input is consumed; string lengths and integers have no leading zero (except
// i0e); i-0e and ie are invalid; dict keys are strings in strictly increasing
// order (so unsorted and duplicate keys are rejected). Beyond the original,
// nesting is capped at MaxDepth, a datagram at MaxParseLen, a general value at
// MaxDecodeLen bytes and MaxDecodeItems items. The original's non-standard
// extensions (u-strings, t-datetimes) are not accepted: nothing uses them on
// the wire. Decode and Encode/AppendValue are the general codec, for stored
// values and piece strings.
//
// # KRPC hot path
//
// (*Msg).Parse decodes a datagram in one pass into a caller-owned Msg whose
// byte fields alias the packet, without allocating. The AppendXxx functions
// write whole packets with their keys as constant literals in sorted order,
// without allocating when dst has room (a [MaxPacketIPv4]byte buffer always
// does for responses).
//
// # Packet limits
//
// Requests are accepted up to the UDP maximum (MaxParseLen), as the original
// did: it bounded only responses, and its peers send store_value requests of
// 163 + 20·n bytes for an n-piece piece string (1483–1563 bytes for 66–70
// pieces). Parsing stays bounded (MaxParseLen, MaxDepth; the engine reads
// into one buffer of MaxParseLen+1 bytes), and a reply over the packet limit
// is dropped: no conforming peer sends one.
//
// Responses must fit one unfragmented datagram: MaxPacketIPv4 = 1472 bytes,
// MaxPacketIPv6 = 1452. Fixed-shape messages have constant maximum sizes
// (PingLen … MaxErrorLen), all under 1452 with MaxNodes = 8 nodes: a find_node
// reply with 8 nodes is 337 bytes. AppendGetValueResp computes the exact fit
// of its values (a value of L bytes costs len(itoa(L)) + 1 + L on top of a
// 76-byte reply), including the last one, which the original's search never
// considered.
//
// A get_value reply leaves out a value that could not fit any reply even
// alone (SingleValueRespLen(len) over the limit: an original peer's 70-piece
// piece string is 1410 bytes, its reply 1491) and fills with the others. If
// every value picked is such a value, the reply is error 201 "response was
// <n> bytes" (AppendResponseTooLong), the code the original's requesters
// received in that case (its truncation assertion failed); the value stays
// stored, counted by find_value, and the node's own Get reads it. A reply
// with nothing to shorten that is still too long is error 206 with the same
// wording, as in the original.
//
// # Deviations from the original, on purpose
//
//   - Error 203 says "unknown method <name>" as the original does, with the
//     name cut so the message stays within MaxErrMsgLen (AppendUnknownMethod).
//   - Malformed datagrams are dropped and counted, never answered, as in the
//     original; but a query whose arguments are wrong or extra gets 204 (the
//     original's TypeError), and argument values are type-checked (20-byte
//     id, target, key, token; integer num), which the original did not do.
//   - A nodes list never holds the requester, nodes failing right now, or
//     (while verified nodes suffice) nodes still on NAT probation; it is
//     sorted by XOR distance to the target as the original's.
//   - Stored values are validated (engine.AptValidator: a piece string only
//     under the SHA-1 of its pieces, a peer value only with the storer's own
//     IP as contact) and bounded by per-key, per-source-IP and total quotas;
//     a refused store gets 201 with the reason.
//   - Values larger than 1472 bytes are refused (engine.Config.MaxValueSize):
//     none could ever be returned.
//
// # Value forms and their thresholds
//
// A file of n pieces is published as {c} (n ≤ 1), {c, t: {t: pieces}}
// (n ≤ MaxInlinePieces = 4, 104 bytes at n = 4), {c, h} with the piece string
// {t: pieces} stored under h (n ≤ MaxHashPieces), or {c, l} with the piece
// string fetched over HTTP (larger n).
//
// MaxHashPieces is chosen so that the piece-string value fits both a
// store_value request and a get_value reply under both packet limits. For
// 50 ≤ n ≤ 499 pieces the piece string {t: 20n bytes} is
//
//	"d1:t" + "<20n>:" (5) + 20n + "e"        = 20n + 10 bytes (4-digit length),
//
// a get_value reply holding it is
//
//	76 + len("<20n+10>:") (5) + 20n + 10     = 91 + 20n bytes,
//
// and a store_value request carrying it is
//
//	148 + 5 + 20n + 10                       = 163 + 20n bytes.
//
// The store request binds: 163 + 20n ≤ 1452 gives n ≤ 64 (1443 bytes; 65
// pieces make 1463 > 1452), and 163 + 20n ≤ 1472 would give 65. The reply
// allows n ≤ 68 (1452) or 69 (1472). So MaxHashPieces = 64 fits all four
// cases; the original's 70 fits none (reply 1491, request 1563 bytes), which
// made its 70-piece files unretrievable (reference §2.8, §8.2 item 1).
// Files of more than 64 pieces (32 MiB) use the l form.
//
// # Downloads in progress (an extension)
//
// The original announces a file only once its download has been verified.
// apt-p2p also announces a download while it runs, so that daemons asking for
// the same file at the same moment find each other (internal/download has the
// protocol). Such a peer stores a value under PartialKey(k), not under the
// file's key k: original peers only ever look up k, so they never take a
// partial holder for a complete one. The value is the ordinary {c} with one
// more key, p: when the claim was sent, in microseconds since the Unix epoch
// (i<µs>e), e.g. d1:c6:<6B>1:pi1733472000123456ee (33 bytes). Peers order
// claims by (p, c) to elect the one that fetches from the mirror; the
// microseconds keep ties rare among daemons of one host.
//
// Value dicts skip keys they do not know, in both directions: the original
// read values as Python dicts and ignored other keys, and Parse skips them
// too, so a later extension does not make a daemon drop a value. A known key
// of the wrong shape still makes the value malformed.
//
// # Reachability (an extension) and read-only nodes (BEP 43)
//
// KRPC has no way to ask "can you reach me?", so apt-p2p adds one query,
// reach (reach.go). The requester sends
//
//	a: {id: <20>, nonce: <20 random bytes>, port: <TCP port>, token: <20>}
//
// (port and token optional). The responder answers from its DHT port
//
//	r: {id: <20>, ip: <requester's address as seen, compact: 6 bytes, 18 over IPv6>,
//	    tcp: 1 (only when a TCP probe was started), token: <20>}
//
// and then probes: a datagram d1:rd2:id20:<id>e1:t20:<nonce>1:y1:re (a
// reply whose TID is the nonce, 66 bytes) sent from another UDP port than
// its DHT port, to the requester's source address; and, only when the query
// named a port and carried a valid token for the requester's IP (the token
// of an earlier reach or find_node reply, as for store_value), a TCP
// connection to that port on the requester's IP with GET /~reach/<nonce in
// hex>. The requester counts a probe that arrives (UDP: a reply to no
// request, from the responder's IP but not the port it asked; TCP: the path)
// as proof of reachability, and one that has not arrived 10 s after the
// reply as a miss. Rules that keep it from being abused:
//
//   - Probes go only to the requester's own source address (UDP) and to the
//     port it names on its own IP (TCP, only with the token: a spoofed
//     source gets no connection). A daemon cannot be made to contact a third
//     party.
//   - At most 2 probes per requester IP and 6 in all per minute; more are
//     answered 201 "reach: too many probes". At most 4 TCP probes are in
//     flight, each given up after 5 s.
//   - The UDP probe comes from another port because a datagram from the
//     port the requester just sent to passes any NAT; the TCP probe needs no
//     such care (a NAT keeps no mapping for a listening port). The UDP probe
//     is fooled only by a NAT that filters by address but not port (RFC
//     4787 address-dependent filtering): such a node is then taken for
//     reachable over UDP, which is the original protocol's assumption
//     anyway; port-dependent NATs (Linux masquerading) and symmetric NATs
//     are found out.
//
// Why not only the passive evidence libtorrent uses (a query from a node we
// never contacted)? It is used too (from an address not sent to for 10 min
// and not on our own /24), but in a young or small network every node has
// contacted every other, so no such query ever comes, and it says nothing
// about TCP, the port peers download from.
//
// Original peers answer reach with 203 (unknown method) and BitTorrent
// nodes with 204; such errors, a rate limit and a timeout count as no
// evidence either way, and a peer that answered so is not asked again for
// an hour. Each transport's state is unknown → reachable on one probe that
// arrived → unreachable after 3 misses in a row from at least 2 IPs (1 when
// only one is known); unknown behaves as reachable, as the original did.
// Rounds ask 3 table nodes, those not contacted lately first, not on our /24.
//
// A daemon unreachable over UDP marks every query it sends with the
// top-level key ro = 1 (BEP 43), placed in key order between q and t; the
// original read only t, y, q and a, so it ignores it. A query that carries
// ro is answered, but its sender is neither pinged nor added to the routing
// table, and leaves it if it was there, so it is never handed out in a nodes
// list. Unlike BEP 43's read-only nodes, ours still answer queries (only
// nodes they contacted can send them any).
//
// Rounds run on the IPv4 network only: an IPv6 node answers reach (its ip
// is then 18 bytes) but does not ask, so its state stays unknown and it
// behaves as reachable, as IPv6 nodes without a NAT in front are.
//
// # Port mapping (PORT_MAPPING; nothing new on the wire)
//
// A daemon behind a NAT may ask its router for mappings of its peer port
// (TCP) and DHT port (UDP) with NAT-PMP or UPnP IGD (internal/portmap). The
// wire does not change; what changes is which port peers are told, since
// the original protocol's contact is the IP others see plus our port. The
// daemon asks for the same external port as its local one; when the router
// grants another:
//
//   - UDP: a NAT-PMP mapping also rewrites the internal port's outbound
//     datagrams to the external port, so DHT nodes see and store the mapped
//     port from our datagrams' source, as for any NATed node. UPnP says
//     nothing of outbound traffic: over UPnP only the same UDP port is
//     asked for.
//   - TCP: the peer value's contact (c, and the mainline announce_peer port)
//     carries the mapped external port while the mapping holds, and reach
//     queries name it as their port, so TCP probes test the path peers will
//     use. Peers found by LAN discovery get the local port.
//
// A mapping is no evidence of reachability: reach probes decide, as without
// one.
//
// # IPv6 (an extension, in the spirit of BEP 32)
//
// The original protocol is IPv4 only: 26-byte nodes, 6-byte contacts. The
// extension adds a second network over IPv6 (ipv6.go) and leaves the IPv4
// network exactly as the original knows it. As in BEP 32 the two are
// separate DHTs: a node keeps one routing table and one value store per
// family and answers each family's queries from its own; a dual-stack node
// runs both under one node ID, announces on each with its contact of that
// family, looks up on both and merges what it finds.
//
// On the IPv6 network:
//
//   - nodes6. A find_node or find_value reply lists IPv6 nodes under nodes6:
//     a bencoded list of 38-byte strings (20-byte ID, 16-byte address, 2-byte
//     port), the same list form as nodes rather than BEP 32's concatenated
//     string, so that both parse and validate alike. A reply with 8 nodes6
//     is 434 bytes; with 8 nodes and 8 nodes6 (MaxFindNodeRespWantLen) 675.
//     An entry holding an IPv4-mapped address is skipped by the reader.
//   - want. find_node and find_value take an optional argument want, a list
//     of "n4" and "n6" (other strings are ignored, as BEP 32 asks): the reply
//     carries nodes for n4 and nodes6 for n6, each from that family's table;
//     without want it carries the family the query came over, as the
//     original's replies do. d1:ad2:id20:<id>6:target20:<t>4:wantl2:n42:n6ee…
//     (127 bytes). Any other method with a want is answered with 204, as any
//     unknown argument. A dual-stack node whose IPv4 table is empty (no
//     IPv4 bootstrap address, or none answering) asks for both families on
//     the IPv6 network and lets the IPv4 nodes it learns into its IPv4 table
//     once they answer a ping; from its first IPv4 node on, its IPv4 lookups
//     do the rest (asking for longer cost more than it gave: see
//     engine.Core's queryWant). It never sends want over IPv4 (an original
//     answers 204), so the IPv4 network learns nothing of IPv6.
//   - Values. A peer value is the original's dict with an 18-byte c: the
//     16-byte IPv6 address and the TCP port, d1:c18:<18B>e (26 bytes); the h
//     form is 52 bytes, a claim 47. An 18-byte c holding an IPv4-mapped
//     address is malformed (an IPv4 peer uses 6 bytes), so the engine's
//     check that the contact is the storer's address can never pass an
//     IPv6 contact stored over IPv4. Piece strings ({t}) carry no address
//     and are the same on both networks, so the thresholds above hold on
//     both. A get_value reply over IPv6 fits 47 plain values (87 over IPv4).
//   - join. ip_addr is the requester's IPv6 address in text form (RFC 5952,
//     no zone); tokens are SHA1(secret ‖ address text) as over IPv4.
//   - Packet limit. Replies to an IPv6 address stay under MaxPacketIPv6 =
//     1452 bytes; every fixed-shape message is under it by construction.
//
// Nothing of this reaches an IPv4-only original peer: an IPv4 node never
// sends want or nodes6 unasked, never stores, puts or returns a value with
// an 18-byte c (values stored over IPv6 stay in the IPv6 store and are only
// answered over IPv6), and its replies are the original's byte for byte.
// Unknown keys stay tolerated both ways: a reply's unknown keys are skipped
// (nodes6 from an IPv4 peer that was asked with want is read, a want in a
// reply ignored), and values skip keys they do not know.
//
// # The mainline DHT (BEP 5): a second personality
//
// mainline.go is the codec of the BitTorrent mainline DHT: ping, find_node,
// get_peers and announce_peer (BEP 5), the top-level ip of replies (BEP 42),
// ro (BEP 43) and immutable items, get and put (BEP 44). It follows the
// mainline network rather than the original apt-p2p protocol: transaction
// IDs of any length up to MaxMLTIDLen, nodes as one string of 26-byte
// entries, values as a list of 6-byte peers, tokens of any length up to
// MaxMLTokenLen, unknown keys and unsorted envelope keys tolerated (clients
// add want, noseed, name…), and the BEP 5 error codes (203 protocol error,
// 204 unknown method). Replies stay under MaxPacketIPv6 by construction: at
// most MaxNodes nodes, MaxMLPeers peers, an item of at most MaxItemLen.
// BEP42ID and BEP42Valid implement BEP 42's node-ID rule (CRC32-C of the
// masked IPv4 address; local addresses exempt).
//
// How apt-p2p content maps onto it:
//
//   - Info-hash. A file is announced under MainlineInfoHash(k) = SHA-1 of
//     "apt-p2p file " followed by the file's 20-byte apt-p2p DHT key k
//     (NormKey of its SHA-1, or its truncated SHA-256, as a requester derives
//     it from its index). The prefix keeps apt-p2p's announcements apart
//     from BitTorrent torrents and from anything else that might use raw
//     file hashes as keys; anyone who knows the file's hash can still
//     compute it (see the privacy note in README.md). A download in
//     progress is announced under MainlineInfoHash(PartialKey(k)); the
//     claim order of "Downloads in progress" needs the apt-p2p DHT (an
//     announce carries no value).
//   - HTTP port. announce_peer is sent with implied_port 0 and port = the
//     daemon's HTTP (TCP) port, so get_peers returns IP:HTTP-port directly;
//     the IP is the one the storing node saw the announce come from. The file
//     is then fetched as from any apt-p2p peer: /~/<quote_plus(hash)>.
//   - Piece hashes. BEP 44 immutable items were evaluated: an item's v is at
//     most 1000 bytes, so a piece string fits up to 49 pieces ("980:" + 980
//     bytes; 984 ≤ 1000), and its get reply (about 1300 bytes) fits both
//     packet limits. But an immutable item's target is the SHA-1 of its
//     value: a downloader that knows only the file's hash cannot compute it,
//     and an announce has no room to carry it (the apt-p2p DHT carries it in
//     the h form). Mutable items with a key pair derived from the file hash
//     would make the target computable, but then anyone could overwrite the
//     piece string. So piece strings are not put in the mainline DHT; a
//     mainline-found file comes with piece hashes only from the apt-p2p DHT
//     (when both networks are on) or is verified as a whole against the
//     index's hash (the original's fallback when no piece string could be
//     had, reference §3.3). The engine still speaks BEP 44 get/put (tested
//     against libtorrent both ways) for a later use that can name targets.
//
// # LAN discovery (internal/lan)
//
// Daemons on one link find each other by multicast, in the spirit of
// BitTorrent's Local Service Discovery (BEP 14), and put each other in the
// DHT, so a LAN with no BOOTSTRAP node forms a DHT of its own.
//
// Groups and port. BEP 14's groups, 239.192.152.143 (RFC 2365
// organization-local scope) and ff15::efc0:988f (site-local scope), but UDP
// port 9976, not BEP 14's 6771, and a request line of our own. BitTorrent
// clients bind 6771, so they never receive apt-p2p's announcements (which
// name no torrent and would at best be logged as junk), and a daemon bound to
// the group on 9976 never receives theirs; were one sent to 9976 anyway, its
// "BT-SEARCH" line makes it malformed here and our line makes ours malformed
// there. Sharing the groups costs nothing: the kernel filters by port. TTL
// and hop limit are 1: announcements never leave the link. Each family has
// one socket bound to the group address itself (so no unicast and no other
// group reaches it), joined on every interface that is up, running,
// multicast-capable and not loopback — IPv4 where the interface has an IPv4
// address, IPv6 where it has an IPv6 one (a link-local address is enough) —
// or, with BIND_ADDRESS, only the interface holding that address, in its
// family; bound to a loopback address, a daemon announces nothing.
//
// Message. HTTP-like text as BEP 14's, CRLF line ends, at most MaxMsgLen
// (512) bytes and MaxHeaders (16) header lines:
//
//	APT-P2P-LSD * HTTP/1.1
//	Host: 239.192.152.143:9976        (or [ff15::efc0:988f]:9976)
//	Port: 9977                        the sender's HTTP (TCP) port
//	DHT-Port: 9977                    the sender's DHT (UDP) port
//	Cookie: 0123456789abcdef          8 random bytes in hex, one per daemon run
//	Reply: yes                        only in hellos
//	<empty line>
//
// Header names are case-insensitive and values may have blanks around them;
// each known header appears at most once; ports are 1–65535 in decimal
// without leading zeros; unknown headers are skipped (a later version may add
// some; an incompatible one changes the request line); one extra empty line
// after the end (BEP 14's habit) is tolerated, anything else is not. The
// sender's DHT contact is the datagram's source address with DHT-Port; its
// peer address is that address with Port. A datagram that breaks any rule
// is dropped and counted (reason malformed); so is one longer than 512
// bytes (oversize), one sent to another address than the group (not_group),
// and one whose source is not inside a subnet of the interface it came in
// on — IPv6 link-local sources always are — or that came in on an interface
// we do not use (off_link). A message carrying our own cookie is ours,
// looped back: it is ignored (its source tells us the address peers see us
// at), not counted as a drop.
//
// Schedule. On each link: a hello (Reply: yes) within 200 ms of start (or of
// the link appearing: interfaces are listed again every minute), a second
// hello 2 s later in case the first was lost, then an announcement every
// 60–90 s (uniform jitter; "at most once a minute", per daemon, where BEP 14
// says per torrent). A hello asks every daemon that hears it to announce
// itself: it schedules one reply on that link a random 0–1 s later (plus
// 20 ms per peer it knows, at most 5 s, so a large LAN's replies spread
// out), and every hello heard meanwhile shares that reply; it does not reply
// while its own hello is due (that hello announces it), answers one peer at
// most once in 30 s unless its cookie changed (a restart), and replies at
// most 10 times in a burst, refilled one per 6 s (at most ~600 an hour under
// a flood of hellos). A newcomer so learns the LAN within a second or two;
// the daemons that hear its hello also ping it at once through the DHT.
//
// Bounds. Per source address, 10 messages in a burst refilled one per 6 s;
// beyond that they are dropped unread (rate); at most 1024 sources tracked.
// At most 256 peers remembered (the least recently heard is forgotten
// first); a peer not heard for 5 minutes is forgotten (it stays in the DHT
// routing table while it answers there).
//
// Families. A daemon joins the group of each address family its DHT runs
// in (ADDRESS_FAMILIES): both on a dual-stack daemon, one otherwise. A
// contact heard on the IPv4 group goes to the IPv4 network, one heard on the
// IPv6 group to the IPv6 network ("IPv6" above); an IPv6 link-local source
// is refused there (the 38-byte node cannot carry its zone), so an IPv6 LAN
// peer is usable when its announcements leave with a global or unique-local
// address, as the kernel picks for the site-scope group when it has one.
//
// Reachability. Every daemon that hears an announcement pings its sender at
// once, so a daemon's first queries from its LAN peers come before it has
// sent them anything. The subnets of the interfaces LAN discovery runs on
// (with their real prefix lengths) and IPv6 link-local addresses count as
// our own networks for the reachability check: no evidence from there, and
// no prober chosen there.
//
// What it is trusted with: nothing but a contact to ping. Every message
// accepted hands its sender's DHT contact to the DHT engine of its family,
// which pings it unless its table already holds that address or a ping to it
// is in flight (engine.Core.Introduce); only an answer to that ping puts it
// in the table.
// Announcements carry no files, keys or values, and are not authenticated:
// a host on the link can claim to be a daemon and will be pinged, no more.
//
// With LAN discovery on, no BOOTSTRAP and only the apt-p2p DHT, LOCAL_OK
// becomes yes unless set (the DHT is then the LAN's own, and LANs use private
// addresses), and a daemon whose DHT cannot tell its own address (several
// interface addresses and no join reply) takes its address of that family
// on the LAN where it heard the most peers of the family as its contact of
// that family (never an IPv6 link-local one).
package wire
