// Package download is the life of one download, top to bottom: what happens
// between "apt wants a file whose hash the index knows and the cache does not
// hold" and "the file is verified, stored and announced".
//
// A Manager runs the downloads of one daemon, one Flight per content (single
// flight: every apt request for the same content joins the same Flight). Its
// collaborators are injected: the DHT (DHT), the piece store (Store), the HTTP
// downloader that talks to peers and the mirror (Fetcher) and the clock. It
// knows nothing of HTTP servers or apt indexes: package node turns apt
// requests into Requests and streams a Flight's Writer back to apt.
//
// # One Flight, in order
//
//  1. Start: a Writer is created in the store (the bytes go there as they
//     arrive; apt and peers can read its verified, contiguous prefix).
//  2. Lookup: the file's DHT key is looked up for complete holders (Get) and,
//     at the same time, the download claims its place among the peers
//     downloading it now (Claim under wire.PartialKey: see "Flash crowds").
//     A key that had no values a moment ago, or whose last download from peers
//     failed verification, skips the wait (negative cache, mirror-only mark).
//  3. Decide: complete holders found → fetch from them, the mirror racing
//     after an adaptive delay (about twice the recent lookup time) or when the
//     peers are too slow. An earlier claim found → follow: fetch from the
//     earlier claimants as they download, the mirror only if they stall.
//     Otherwise → lead: the mirror at once.
//  4. Piece hashes of complete holders are resolved by majority vote (inline,
//     a DHT key, or a peer's /~/ endpoint: fetch.ResolvePieces).
//  5. Fetch: fetch.Downloader pulls 512 KiB pieces from the sources (ranked by
//     measured speed, bad ones banned) into the Writer, which checks piece
//     hashes where known and the whole-file hash at the end, holding the last
//     byte back until it matches.
//  6. Verify and commit: the Writer is committed to the store; an index file
//     is parsed (Request.AfterCommit) before the Flight is done, so requests
//     that wait for the index see it.
//  7. Announce: the file is stored under its key in the value form its piece
//     count calls for, and refreshed before it expires (Manager.RefreshLoop).
//
// A whole-file mismatch cuts every reader before the end (the held-back last
// byte), marks the key mirror-only for a while and starts the refetch from
// the mirror at once (apt's retry joins it). When the refetch is verified, its
// piece hashes say exactly which pieces were wrong, and only their suppliers
// are banned: an honest peer that relayed bytes it could not check is not
// punished for a liar upstream.
//
// # Flash crowds
//
// Daemons that ask for the same file within one lookup time (a fleet on a
// schedule, a CI farm) would otherwise all go to the mirror, since a file is
// announced only once complete. Instead every download stores a claim under
// wire.PartialKey(key) as it starts: its contact and its start time. The
// claim is a DHT Claim (a store, then a get_value of the same nodes), so of
// any two daemons storing at the same time at least one sees the other. The
// claims a daemon sees are ordered by (start time, contact); the first one is
// the leader. A daemon that sees an earlier claim follows: it fetches from
// the earlier claimants, whose peer servers stream the verified contiguous
// part of their growing file (waiting a bounded time for bytes that are on
// their way), and it turns to the mirror only if they fail or stall for
// Config.HerdPatience. So a crowd costs the mirror about one copy, and a lone
// daemon pays only the claim's round trip, which runs alongside the lookup it
// makes anyway.
//
// Original peers never look up PartialKey and never send the request header
// that asks for a partial file (X-Apt-P2P-Partial), so they neither take a
// partial holder for a complete one nor receive bytes that are not verified.
package download
