package front

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"strings"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/apt-p2p/apt-p2p/internal/aptindex"
	"github.com/apt-p2p/apt-p2p/internal/digest"
	"github.com/apt-p2p/apt-p2p/internal/mirrorurl"
	"github.com/apt-p2p/apt-p2p/wire"
)

// lookupResult is what /lookup?q=... answers (the `apt-p2p lookup` subcommand).
type lookupResult struct {
	Query  string   `json:"query"`
	Site   string   `json:"site,omitempty"`
	Base   string   `json:"base_dir,omitempty"`
	Path   string   `json:"path,omitempty"`
	Index  string   `json:"index,omitempty"` // the hashes the index gives
	Key    string   `json:"dht_key,omitempty"`
	Cached bool     `json:"cached"`
	Paths  []string `json:"cached_paths,omitempty"`
	Pieces int      `json:"pieces,omitempty"`
	Peers  []string `json:"dht_peers"`
	Error  string   `json:"error,omitempty"`
}

// lookup answers /lookup?q=<mirror path or hex hash>: what the index, the cache
// and the DHT know about it.
func (s *Server) lookup(ctx *fasthttp.RequestCtx) {
	q := strings.TrimSpace(string(ctx.QueryArgs().Peek("q")))
	res := lookupResult{Query: q, Peers: []string{}}
	var d digest.Set
	d.Size = -1
	have := false
	if h, err := hex.DecodeString(q); err == nil && (len(h) == 16 || len(h) == 20 || len(h) == 32 || len(h) == 64) {
		t := map[int]digest.Type{16: digest.MD5, 20: digest.SHA1, 32: digest.SHA256, 64: digest.SHA512}[len(h)]
		_ = d.Put(t, h)
		have = true
		// A cached file knows all its hashes, so the DHT key (SHA1 when the
		// index gives one) comes out right whichever hash was asked for.
		if info, ok := s.n.Store().LookupHash(h); ok {
			d = info.Digest
		}
	} else {
		raw := q
		if !strings.HasPrefix(raw, "http://") && !strings.HasPrefix(raw, "https://") {
			raw = "http://" + strings.TrimPrefix(raw, "/")
		}
		u, err := mirrorurl.ParseAbsolute(raw)
		if err != nil {
			res.Error = err.Error()
		} else {
			res.Site = u.Site()
			res.Base, res.Path = aptindex.SplitPath(res.Site, u.Path, s.n.Index().BaseDirs)
			d, have = s.n.Index().Lookup(res.Site, res.Base, res.Path)
			if !have {
				res.Error = "the index has no hash for this path (not listed in any cached Release/Packages/Sources)"
			}
		}
	}
	if have {
		res.Index = d.String()
		if k, ok := d.Key(); ok {
			res.Key = k.String()
		}
		if info, ok := s.n.Store().Lookup(&d); ok {
			res.Cached, res.Paths, res.Pieces = true, info.Paths, len(info.Pieces)/20
		}
		if k, ok := d.Key(); ok {
			c, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			vals, _ := s.n.DHT().GetValues(c, k)
			cancel()
			for _, raw := range vals {
				var v wire.PeerValue
				if v.Parse(raw) == nil {
					res.Peers = append(res.Peers, v.Contact.String())
				}
			}
		}
	}
	ctx.SetContentType("application/json")
	b, _ := json.MarshalIndent(res, "", "  ")
	ctx.SetBody(append(b, '\n'))
}
