// Command servebench serves a directory with apt-p2p's HTTP serving code, for comparing it with
// nginx (bench/serve.sh). It is a benchmark harness, not part of the daemon.
//
//	GET /<name>                  apt-facing path: httpserve.ServeFile (never throttled)
//	GET /~/<quote_plus(sha1)>    peer path: httpserve.PeerHandler
//
// Each request opens the file, as the daemon does through the piecestore. On SIGINT/SIGTERM it
// prints the requests served and the process's allocations per request, then exits.
package main

import (
	"crypto/sha1"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/apt-p2p/apt-p2p/internal/httpserve"
	"github.com/valyala/fasthttp"
)

type entry struct {
	path string
	size int64
	mod  time.Time
}

type dirContent struct {
	byName map[string]entry
	byHash map[string]entry
}

func (d *dirContent) OpenByHash(h []byte) (*os.File, int64, time.Time, func(), bool) {
	e, ok := d.byHash[string(h)]
	if !ok {
		return nil, 0, time.Time{}, nil, false
	}
	f, err := os.Open(e.path)
	if err != nil {
		return nil, 0, time.Time{}, nil, false
	}
	return f, e.size, e.mod, func() { f.Close() }, true
}

func (d *dirContent) PieceString([]byte) ([]byte, bool) { return nil, false }

func (d *dirContent) OpenPartial([]byte) (httpserve.Growing, int64, func(), bool) {
	return nil, 0, nil, false
}

func main() {
	listen := flag.String("listen", "127.0.0.1:0", "address to listen on")
	dir := flag.String("dir", "", "directory of files to serve")
	peerList := flag.String("peerlist", "", "write the /~/ path of every file to this file")
	cpuProfile := flag.String("cpuprofile", "", "write a CPU profile to this file until the signal")
	flag.Parse()
	if *cpuProfile != "" {
		pf, err := os.Create(*cpuProfile)
		if err != nil {
			log.Fatal(err)
		}
		if err := pprof.StartCPUProfile(pf); err != nil {
			log.Fatal(err)
		}
	}
	var paths []string
	d := &dirContent{byName: map[string]entry{}, byHash: map[string]entry{}}
	ents, err := os.ReadDir(*dir)
	if err != nil {
		log.Fatal(err)
	}
	for _, de := range ents {
		p := filepath.Join(*dir, de.Name())
		st, err := os.Stat(p)
		if err != nil || !st.Mode().IsRegular() {
			continue
		}
		f, err := os.Open(p)
		if err != nil {
			log.Fatal(err)
		}
		h := sha1.New()
		io.Copy(h, f) //nolint:errcheck
		f.Close()
		e := entry{p, st.Size(), st.ModTime()}
		d.byName["/"+de.Name()] = e
		d.byHash[string(h.Sum(nil))] = e
		paths = append(paths, "/~/"+string(httpserve.QuotePlus(nil, h.Sum(nil))))
	}
	if *peerList != "" {
		var b []byte
		for _, p := range paths {
			b = append(append(b, p...), '\n')
		}
		if err := os.WriteFile(*peerList, b, 0o644); err != nil {
			log.Fatal(err)
		}
	}
	peer := httpserve.NewPeerHandler(d, nil, nil)
	var requests atomic.Int64
	handler := func(ctx *fasthttp.RequestCtx) {
		requests.Add(1)
		path := ctx.Path()
		if len(path) > 2 && path[1] == '~' && path[2] == '/' {
			peer.ServeFastHTTP(ctx)
			return
		}
		e, ok := d.byName[string(path)]
		if !ok {
			ctx.SetStatusCode(fasthttp.StatusNotFound)
			return
		}
		f, err := os.Open(e.path)
		if err != nil {
			ctx.SetStatusCode(fasthttp.StatusNotFound)
			return
		}
		httpserve.ServeFile(ctx, &httpserve.FileResponse{File: f, Size: e.size, ModTime: e.mod,
			ContentType: "application/octet-stream", Release: func() { f.Close() }})
	}
	cfg := httpserve.ServerConfig{MaxConnsPerIP: 1024}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		log.Fatal(err)
	}
	srv := httpserve.NewServer(handler, cfg)
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	start := ms.Mallocs
	fmt.Printf("listening %s\n", ln.Addr())
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		<-sig
		pprof.StopCPUProfile()
		runtime.ReadMemStats(&ms)
		n := requests.Load()
		fmt.Printf("requests %d mallocs %d allocs/request %.2f\n", n, ms.Mallocs-start, float64(ms.Mallocs-start)/float64(max(n, 1)))
		os.Exit(0)
	}()
	if err := srv.Serve(httpserve.LimitListener(ln, cfg)); err != nil {
		log.Fatal(err)
	}
}
