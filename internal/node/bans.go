package node

import "github.com/apt-p2p/apt-p2p/internal/fetch"

// Bans lists the sources (peers, mirrors) the downloader shuns now, for the
// status page, stats.json and /metrics.
func (n *Node) Bans() []fetch.Ban { return n.fetcher.Bans() }
