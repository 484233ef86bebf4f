package front

import (
	"encoding/json"

	"github.com/valyala/fasthttp"
)

// lookup answers /lookup?q=<mirror URL or path, or hex hash> with what the
// node knows about it (node.Lookup), as JSON.
func (s *Server) lookup(ctx *fasthttp.RequestCtx) {
	res := s.n.Lookup(ctx, string(ctx.QueryArgs().Peek("q")))
	ctx.SetContentType("application/json")
	b, _ := json.MarshalIndent(res, "", "  ")
	ctx.SetBody(append(b, '\n'))
}
