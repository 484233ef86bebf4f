package front

import (
	"bytes"
	"net"
	"net/netip"
	"strconv"

	"github.com/valyala/fasthttp"

	"github.com/apt-p2p/apt-p2p/internal/httpserve"
)

// liftReason gives an error answer from the node the reason its body states,
// in the status line: apt shows "502 mirror x:80 unreachable: no such host"
// where it would show "502 Bad Gateway". Answers written with httpserve.Error
// already carry theirs; this covers the node's paths still writing plain
// ctx.Error bodies. Streamed bodies are never read.
func liftReason(ctx *fasthttp.RequestCtx) {
	r := &ctx.Response
	if r.StatusCode() < 400 || len(r.Header.StatusMessage()) > 0 || r.IsBodyStream() {
		return
	}
	body := r.Body()
	if i := bytes.IndexByte(body, '\n'); i >= 0 {
		body = body[:i]
	}
	if reason := httpserve.Reason(string(body)); reason != "" {
		r.Header.SetStatusMessage([]byte(reason))
	}
}

// refuseConnect answers apt's CONNECT (an https:// source in proxy mode):
// the daemon never tunnels what it cannot verify and cache. The answer and
// the log say which source line to write instead.
func (s *Server) refuseConnect(ctx *fasthttp.RequestCtx, from netip.Addr, uri []byte) {
	host, port, err := net.SplitHostPort(string(uri))
	if err != nil {
		host, port = string(uri), "443"
	}
	target := host
	if port != "443" {
		target = net.JoinHostPort(host, port)
	}
	self := "<apt-p2p>:" + strconv.Itoa(s.n.Config().Port)
	if la, ok := ctx.LocalAddr().(*net.TCPAddr); ok {
		self = la.String()
	}
	reason := "no https tunnels (CONNECT " + string(uri) + "): write the source as http://" + self + "/https/" + target + "/..."
	httpserve.Error(ctx, fasthttp.StatusMethodNotAllowed, reason)
	s.log.Warn("CONNECT refused", "from", from, "target", string(uri),
		"hint", "use http://"+self+"/https/"+target+"/... sources instead of https:// through the proxy")
}
