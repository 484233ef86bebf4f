package front

import (
	"context"
	"encoding/json"

	"github.com/valyala/fasthttp"
)

// lookup answers /lookup?q=<mirror URL or path, or hex hash> with what the
// node knows about it (node.Lookup), as JSON.
func (s *Server) lookup(ctx *fasthttp.RequestCtx) {
	// Not ctx: a context derived from a *fasthttp.RequestCtx reads the
	// server's done channel from a goroutine of its own, which fasthttp's
	// Shutdown resets unsynchronised (a data race the race detector caught
	// in TestLookupForms). The lookup is bounded by its own timeout.
	res := s.n.Lookup(context.Background(), string(ctx.QueryArgs().Peek("q")))
	ctx.SetContentType("application/json")
	b, _ := json.MarshalIndent(res, "", "  ")
	ctx.SetBody(append(b, '\n'))
}
