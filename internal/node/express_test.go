package node_test

import (
	"context"
	"net"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/apt-p2p/apt-p2p/internal/apttest"
	"github.com/apt-p2p/apt-p2p/internal/httpserve"
	"github.com/apt-p2p/apt-p2p/internal/testrepo"
)

// countingExpress counts the answers the express lane gave.
type countingExpress struct {
	httpserve.Express
	answered atomic.Int64
}

func (c *countingExpress) ExpressDone(f *httpserve.ExpressFile, sent int64, err error) {
	if err == nil {
		c.answered.Add(1)
	}
	c.Express.ExpressDone(f, sent, err)
}

// TestAptWithoutPipeliningTakesTheExpressLane: real apt-get with pipelining off (one request at a
// time on a connection, as Acquire::http::Pipeline-Depth "0" or a proxy in between makes it) gets
// files it fetched before from the express lane, with its own request headers, in both the URL-prefix
// and the proxy form, and the files verify.
func TestAptWithoutPipeliningTakesTheExpressLane(t *testing.T) {
	base := t.TempDir()
	specs := []testrepo.PackageSpec{{Name: "one", Size: 30 << 10}, {Name: "two", Size: 200 << 10},
		{Name: "three", Size: 700 << 10}, {Name: "big", Size: 2 << 20}}
	repo, err := testrepo.Build(filepath.Join(base, "debian"), testrepo.Options{Packages: specs, Seed: 31})
	if err != nil {
		t.Fatal(err)
	}
	m := serveMirror(t, base)
	d := startDaemon(t, "A", "127.0.0.2", "", "apt_p2p_Khashmir.BOOTSTRAP_NODE=yes")
	ln, err := net.Listen("tcp", d.ip+":0")
	if err != nil {
		t.Fatal(err)
	}
	scfg := d.fr.ServerConfig("apt-p2p/test", nil)
	lane := &countingExpress{Express: scfg.Express}
	scfg.Express = lane
	srv := httpserve.NewServer(d.fr.Handler, scfg)
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(httpserve.LimitListener(ln, scfg)) }()
	t.Cleanup(func() { _ = srv.Shutdown(); <-done })
	addr := ln.Addr().String()

	ctx := context.Background()
	names := []string{"one", "two", "three", "big"}
	for _, form := range []string{"prefix", "proxy"} {
		r, err := apttest.NewRoot(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		r.SetOption("Acquire::http::Pipeline-Depth", "0")
		if form == "prefix" {
			err = r.SetSources(repo.SourcesLine("http://" + addr + "/" + m.Addr() + "/debian"))
		} else {
			r.SetProxy("http://" + addr)
			err = r.SetSources(repo.SourcesLine("http://" + m.Addr() + "/debian"))
		}
		if err != nil {
			t.Fatal(err)
		}
		if err := r.Update(ctx); err != nil {
			t.Fatalf("%s: %v", form, err)
		}
		for round := range 3 { // the first fills the store (prefix form) or names the URIs (proxy form)
			before := lane.answered.Load()
			work := t.TempDir()
			if err := r.Download(ctx, work, names...); err != nil {
				t.Fatalf("%s, round %d: %v", form, round, err)
			}
			if err := apttest.VerifyFiles(repo, work, names...); err != nil {
				t.Fatalf("%s, round %d: %v", form, round, err)
			}
			if got := lane.answered.Load() - before; round == 2 && got != 3 {
				t.Fatalf("%s: the express lane answered %d of apt's requests in the third round, want the 3 files under 1 MiB",
					form, got)
			}
			if got, want := d.n.Stats.Express.Load(), lane.answered.Load(); got != want {
				t.Fatalf("aptp2p_apt_express_answers_total is %d, the lane answered %d", got, want)
			}
		}
	}
}
