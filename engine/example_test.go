package engine_test

import (
	"context"
	"crypto/sha256"
	"fmt"
	"time"

	"github.com/apt-p2p/apt-p2p/engine"
	"github.com/apt-p2p/apt-p2p/wire"
)

// A node on loopback that is its own bootstrap node stores a value and
// reads it back. A daemon would set Listen to ":9977", Bootstrap to the
// known nodes, StateDir to its state directory, and keep the default
// validator (AptValidator).
func Example() {
	cfg := engine.Default()
	cfg.LocalOK = true       // loopback addresses are fine in this example
	cfg.BootstrapNode = true // joined even though nobody else is there
	cfg.Validate = nil       // accept any value, not only apt-p2p's
	n, err := engine.Start(engine.Options{Config: cfg, Listen: "127.0.0.1:0"})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer n.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := n.WaitJoined(ctx); err != nil {
		fmt.Println(err)
		return
	}
	sum := sha256.Sum256([]byte("hello_2.10-3_amd64.deb"))
	key := wire.NormKey(sum[:]) // SHA256 truncated to 20 bytes
	r, err := n.Put(ctx, key, []byte("a value"))
	fmt.Println("stored on", r.Stored, "node(s)", err)
	res, err := n.Get(ctx, key, func(v []byte) { fmt.Printf("value %q\n", v) })
	fmt.Println("values:", res.Values, err)
	// Output:
	// stored on 1 node(s) <nil>
	// value "a value"
	// values: 1 <nil>
}
