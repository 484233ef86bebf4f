// Command aptprof runs the apt-p2p daemon's parts (node.New, front.New, httpserve) wired as
// cmd/apt-p2p's `run --embedded` wires them, plus net/http/pprof on a second address, so the
// benchmarks can take CPU and heap profiles of the real serving and fetching paths. It is a
// benchmark harness, not part of the daemon (the daemon has no profiling endpoint).
//
//	aptprof -pprof 127.0.0.1:6060 -set PORT=9977 -set CACHE_DIR=/tmp/c -set BIND_ADDRESS=127.0.0.1
//	go tool pprof -top http://127.0.0.1:6060/debug/pprof/heap
package main

import (
	"context"
	"flag"
	"log/slog"
	"net"
	"net/http"
	_ "net/http/pprof"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"

	"github.com/apt-p2p/apt-p2p/internal/config"
	"github.com/apt-p2p/apt-p2p/internal/front"
	"github.com/apt-p2p/apt-p2p/internal/httpserve"
	"github.com/apt-p2p/apt-p2p/internal/membudget"
	"github.com/apt-p2p/apt-p2p/internal/node"
)

// defaults is cmd/apt-p2p/default.conf's content: a lone node that counts as joined.
const defaults = `[DEFAULT]
PORT = 9977
CACHE_DIR = .run/cache
USERNAME =
[apt_p2p_Khashmir]
BOOTSTRAP =
BOOTSTRAP_NODE = yes
`

type sets []string

func (s *sets) String() string     { return strings.Join(*s, ",") }
func (s *sets) Set(v string) error { *s = append(*s, v); return nil }

func main() {
	pp := flag.String("pprof", "127.0.0.1:6060", "address of the net/http/pprof server")
	var ov sets
	flag.Var(&ov, "set", "NAME=value or SECTION.NAME=value (repeatable)")
	flag.Parse()
	cfg, _, err := config.Load([]config.Source{{Name: "defaults", Data: strings.NewReader(defaults)}}, ov...)
	if err != nil {
		slog.Error("config", "err", err)
		os.Exit(1)
	}
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.LogLevel))
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	ln, err := net.Listen("tcp", net.JoinHostPort(cfg.BindAddress, strconv.Itoa(cfg.Port)))
	if err != nil {
		log.Error("listen", "err", err)
		os.Exit(1)
	}
	go func() { log.Error("pprof", "err", http.ListenAndServe(*pp, nil)) }()
	membudget.SetLimit(cfg.MemoryLimit) // as cmd/apt-p2p does
	go (&membudget.Releaser{}).Run(context.Background())
	n, err := node.New(cfg, log)
	if err != nil {
		log.Error("node", "err", err)
		os.Exit(1)
	}
	fr := front.New(n, log.With("part", "http"))
	// As cmd/apt-p2p.
	scfg := fr.ServerConfig("apt-p2p/"+node.Version, log.With("part", "http"))
	srv := httpserve.NewServer(fr.Handler, scfg)
	go func() { _ = srv.Serve(httpserve.LimitListener(ln, scfg)) }()
	log.Info("listening", "addr", ln.Addr().String(), "pprof", *pp)
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	<-sig
	_ = srv.Shutdown()
	fr.Close()
	_ = n.Close()
}
