// Command apt-p2p is the apt-p2p daemon. The daemon itself is being built
// (see issues 5 and 6); until then this command only says so.
package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Fprintln(os.Stderr, "apt-p2p: the daemon is not built yet; the wire codec, DHT and cache are being assembled first")
	os.Exit(1)
}
