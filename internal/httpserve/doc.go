// Package httpserve is the HTTP serving side of the data plane: it sends files to peers and to apt.
//
// It provides
//   - QuotePlus / UnquotePlus, the original's Python 2 quoting of raw hash bytes in /~/ URLs;
//   - ServeFile, which answers GET/HEAD for one file (complete or still being written) with single
//     Range requests, If-Range, conditional GETs, ETag and Last-Modified, sending the body with
//     sendfile(2) through fasthttp's SetBodyStream;
//   - StreamBody, the body of a file that is still being downloaded: it sends each newly verified
//     span as soon as it is available and cuts the connection if the download fails, so a client
//     never sees a complete response with wrong content;
//   - PeerHandler, the /~/<quoted hash> upload handler of the peer protocol (files by full hash,
//     bencoded piece strings by piece-string hash);
//   - Throttle, the upload limits (global rate, per-peer rate, concurrent uploads) that keep one
//     peer from being a free mirror for everyone; apt-facing responses never use it;
//   - NewServer and LimitListener, the fasthttp server settings and per-IP connection cap used by the
//     daemon's single listener, with the read-ahead of pipelined apt requests (readahead.go) and the
//     express lane (express.go): a trusted client's plain GET of a file the caller's Express hook
//     has ready is answered on the connection's read, without fasthttp, byte for byte as ServeFile
//     would answer it.
//
// It is not the router (which URL goes where), not the apt proxy logic, and not the downloader:
// it knows nothing of indexes, mirrors or the DHT. Files come from the caller (the node adapts the
// piecestore to the Content and Growing interfaces); this package never opens paths by name.
//
// # sendfile
//
// File bodies are sent after the handler returns, by fasthttp on the connection's goroutine, through
// SetBodyStream with a body whose WriteTo flushes the headers and then calls sendfile(2) itself, at
// an explicit offset, on the connection's descriptor (connections accepted through LimitListener carry
// it). That path allocates nothing and never moves the file's offset. Headers go out with MSG_MORE so
// they share TCP segments with the body. On connections without a descriptor (TLS, wrapped conns) the
// body of a complete file is copied with pread: a file given to ServeFile may be shared by many
// responses at once (the store's open-file cache shares descriptors), so its offset is never used.
// StreamBody reopens a growing file through /proc/self/fd, so the writer may close its descriptor at
// any time without the body sending from a reused descriptor number; that private file's offset is
// its own, so without a descriptor it still goes out through the connection's ReadFrom (Go's
// sendfile path) as *io.LimitedReader{*os.File}.
//
// # The load header (an extension)
//
// Every file response of the peer handler, HEAD and 503 included, says how
// busy the peer is, so that downloaders spread their pieces by when each
// source would finish one, not by its past speed alone (internal/fetch,
// "Load-aware ranking"); a downloader that knows nothing of a peer asks HEAD
// first, a round trip that holds no upload slot:
//
//	X-Apt-P2P-Load: uploads=3/32; rate=4812345; capacity=5242880; peer=1048576
//
// uploads: file uploads running now, this one included, and MAX_UPLOADS (0:
// no cap); a request beyond the cap gets 503, whose Retry-After is the time
// the running uploads take to send about a piece each at UPLOAD_LIMIT (1 to
// 5 s; 5 s without a limit). rate: bytes per second sent to peers over about
// the last second. capacity: the upload rate the peer offers, bytes per
// second: UPLOAD_LIMIT if set, else the fastest it has sent at lately
// (fading with a 10-minute half-life; absent until it has uploaded), times
// UPLOAD_WEIGHT: a volunteer with a fast link raises the weight to take more
// load, a laptop on battery or a metered link lowers it to take less. peer:
// UPLOAD_LIMIT_PER_PEER, when set.
//
// A downloader expects one more request to get about capacity/(uploads+1),
// at most peer. Fields are separated by ";", unknown fields are skipped and
// their order is free, so later versions may add some; a value longer than
// 256 bytes or a malformed known field makes the downloader ignore the
// header. Original peers neither send nor read it (an unknown response
// header), and the protocol is otherwise unchanged: a downloader ranks a peer
// without it by measured speed, as before.
package httpserve
