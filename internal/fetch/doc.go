// Package fetch is the multi-source downloader: it fetches one file of known
// size from the peers the DHT found and from the mirror, as 512 KiB pieces over
// HTTP/1.1 Range requests, verifies every piece whose SHA-1 is known, and
// writes verified data into a Sink (a *piecestore.Writer in the daemon).
//
// What it does:
//   - Sources are the peers arriving on Job.Peers plus the mirror. The mirror
//     starts at once when there are no peers (Peers nil or closed), otherwise
//     when no peer bytes have arrived by Job.MirrorDelay, when fewer than
//     Job.MinPeers peers are usable, when peers are slow (less than
//     Config.SlowPeerRate together), or when every peer has failed.
//   - Every source has up to Config.Depth requests in flight (keep-alive
//     connections of a fasthttp.HostClient; see client.go for why not
//     PipelineClient). Pieces go out lowest index first, so the file fills in
//     order and apt can be fed while it downloads.
//   - Sources are ranked (source.go, score): a piece is left to a clearly
//     better source that has a free slot. When no unrequested piece is left,
//     an idle source asks for the oldest outstanding piece again (endgame);
//     the first verified copy wins and the other request is cut.
//   - A source that sends a piece failing its SHA-1, answers 200 to a Range
//     request, sends a wrong Content-Range or a short or long body is dropped
//     and its pieces go back to the queue. Peers are also banned for
//     Config.BanDuration: at once for breaking the protocol, and for a bad
//     piece once the download succeeds (if nobody can match the expected
//     hashes, the hashes are what is wrong). 404 drops a source without a ban;
//     connection errors and timeouts count against it, and it is dropped after
//     Config.MaxErrors in a row. At most Config.MaxPeers peers are used at once.
//   - The mirror, when it is the only source, streams: one GET from the first
//     missing byte, appended to the Sink with WriteAt as bytes arrive. A mirror
//     that ignores Range is streamed too (leading bytes it resends are
//     discarded), never trusted to return a piece.
//
// What it does not do: it does not check the whole-file hash (the Sink's
// Commit does; on a mismatch the caller bans the sources listed in
// Result.PieceSources with Downloader.Ban), it does not look up the DHT, and
// it keeps no file of its own. ResolvePieces settles the expected piece hashes
// from the DHT values before a Fetch.
package fetch
