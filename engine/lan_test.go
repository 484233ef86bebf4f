package engine

import (
	"context"
	"net/netip"
	"testing"
	"time"
)

// Two bootstrap nodes that know nothing of each other (no BOOTSTRAP, as on a
// LAN found by multicast): introducing one to the other puts each in the
// other's table, and a value stored by one is found by the other.
func TestIntroduce(t *testing.T) {
	cfg := testConfig()
	cfg.BootstrapNode = true
	a, b := startNode(t, cfg), startNode(t, cfg)
	mustJoin(t, a)
	mustJoin(t, b)
	a.Introduce(b.Addr())
	eventually(t, 10*time.Second, "both tables to hold the other", func() bool { return tableLen(a) == 1 && tableLen(b) == 1 })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	key := sha1Key("introduced")
	if r, err := a.Put(ctx, key, []byte("v")); err != nil || r.Stored == 0 {
		t.Fatalf("put: %+v %v", r, err)
	}
	vals, err := b.GetValues(ctx, key)
	if err != nil || len(vals) != 1 || string(vals[0]) != "v" {
		t.Fatalf("get: %q %v", vals, err)
	}
}

// What Introduce refuses: addresses the table would refuse, contacts
// already in the table, and a second introduction while the first ping is
// in flight. Each refusal sends nothing.
func TestIntroduceRefuses(t *testing.T) {
	cfg := testConfig()
	cfg.LocalOK = false
	out := &captureOut{}
	c, err := New(cfg, out)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1000, 0)
	c.Start(now, nil)
	out.pkts = nil
	for _, a := range []string{"127.0.0.1:9977", "192.168.1.5:9977", "[2001:db8::1]:9977", "198.51.100.7:0"} {
		if c.Introduce(now, netip.MustParseAddrPort(a)) {
			t.Errorf("%s was introduced without LOCAL_OK", a)
		}
	}
	if len(out.pkts) != 0 {
		t.Fatalf("sent %d packets for refused introductions", len(out.pkts))
	}
	pub := netip.MustParseAddrPort("198.51.100.7:9977")
	if !c.Introduce(now, pub) || len(out.pkts) != 1 || out.to[0] != pub {
		t.Fatalf("a public address: sent to %v", out.to)
	}
	if c.Introduce(now, pub) {
		t.Fatal("introduced again while the first ping is in flight")
	}
	c.Table().Insert(kbucketNode(sha1Key("x"), netip.MustParseAddrPort("198.51.100.8:9977")), true, now)
	if c.Table().Len() != 1 {
		t.Fatal("test bug: the node did not enter the table")
	}
	if c.Introduce(now, netip.MustParseAddrPort("198.51.100.8:9977")) {
		t.Fatal("introduced a contact the table holds")
	}
}

type captureOut struct {
	pkts [][]byte
	to   []netip.AddrPort
}

func (o *captureOut) Send(to netip.AddrPort, pkt []byte) {
	o.pkts = append(o.pkts, append([]byte(nil), pkt...))
	o.to = append(o.to, to)
}
