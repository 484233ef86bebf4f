package httpserve

import (
	"bufio"
	"bytes"
	"io"
	"testing"

	"github.com/valyala/fasthttp"
)

// FuzzPeerHandler feeds arbitrary request targets and Range headers to the /~/ handler: it must
// never panic, only find the known hashes, and answer with a status from the protocol's set.
func FuzzPeerHandler(f *testing.F) {
	c := newFixedContent(f, 3000)
	h := NewPeerHandler(c, nil, nil)
	f.Add([]byte("/~/"+string(QuotePlus(nil, fileHash))), []byte("bytes=0-99"))
	f.Add([]byte("/~/"+string(QuotePlus(nil, torrentHash))), []byte(""))
	f.Add([]byte("/~/foobar"), []byte("bytes=-5"))
	f.Add([]byte("/~/%zz/.."), []byte("bytes=5-1,7-9"))
	f.Fuzz(func(t *testing.T, target, rng []byte) {
		var ctx fasthttp.RequestCtx
		ctx.Request.Header.SetMethod("GET")
		ctx.Request.Header.SetRequestURIBytes(target)
		if len(rng) > 0 {
			ctx.Request.Header.SetBytesV("Range", rng)
		}
		h.ServeFastHTTP(&ctx)
		var out bytes.Buffer
		bw := bufio.NewWriter(&out)
		if err := ctx.Response.Write(bw); err != nil && ctx.Response.StatusCode()/100 == 2 {
			t.Fatalf("writing a %d: %v", ctx.Response.StatusCode(), err)
		}
		bw.Flush()
		switch code := ctx.Response.StatusCode(); code {
		case 200, 206:
			uri := ctx.Request.Header.RequestURI()
			name, err := UnquotePlus(nil, bytes.TrimPrefix(uri, []byte("/~/")))
			if err != nil || (!bytes.Equal(name, fileHash) && !bytes.Equal(name, torrentHash)) {
				t.Fatalf("%q answered %d", target, code)
			}
		case 404, 416:
		default:
			t.Fatalf("%q: status %d", target, code)
		}
		io.Copy(io.Discard, &out)
	})
}
