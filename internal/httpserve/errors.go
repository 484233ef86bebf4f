package httpserve

import (
	"strings"

	"github.com/valyala/fasthttp"
)

// MaxReason bounds the reason phrase Error puts in the status line. apt keeps
// at most 359 bytes of it (methods/basehttp.cc reads "%3u%359[^\n]") and shows
// it on one terminal line; longer reasons are cut with "...".
const MaxReason = 200

// Error answers with status code and reason as the status line's reason
// phrase ("HTTP/1.1 502 mirror deb.debain.org:80 unreachable: no such host")
// and as a one-line text body. apt shows the status line and never the body,
// so the reason is what the user reads; the body is for curl and browsers.
// reason is made safe for a header (see Reason); an empty reason gives the
// standard text of code.
func Error(ctx *fasthttp.RequestCtx, code int, reason string) {
	r := Reason(reason)
	if r == "" {
		r = fasthttp.StatusMessage(code)
	}
	ctx.Error("apt-p2p: "+r+"\n", code)
	ctx.Response.Header.SetStatusMessage([]byte(r))
}

// Reason makes s safe as an HTTP reason phrase: one line of printable ASCII
// (control characters, CR and LF become spaces, other characters '?'), runs of
// spaces collapsed, trimmed, a leading "apt-p2p: " dropped (the body adds it
// back), and at most MaxReason bytes.
func Reason(s string) string {
	s = strings.TrimPrefix(strings.TrimSpace(s), "apt-p2p: ")
	var b strings.Builder
	b.Grow(min(len(s), MaxReason))
	space := false
	for _, c := range s {
		switch {
		case c < 0x20 || c == 0x7f || c == ' ':
			space = b.Len() > 0
			continue
		case c >= 0x80:
			c = '?' // one per character, also for invalid UTF-8
		}
		if space {
			b.WriteByte(' ')
			space = false
		}
		b.WriteByte(byte(c))
		if b.Len() > MaxReason {
			break
		}
	}
	r := b.String()
	if len(r) > MaxReason {
		r = strings.TrimRight(r[:MaxReason-3], " ") + "..."
	}
	return r
}
