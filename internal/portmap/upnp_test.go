package portmap

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/huin/goupnp"
	"github.com/huin/goupnp/soap"
)

// fakeIGD is an igdClient whose AddPortMapping fails with the UPnP error
// codes it is given, by port, and records every call.
type fakeIGD struct {
	codes map[uint16]int // external port → UPnP error code
	perm  bool           // only permanent leases (725 for any other)
	calls []string
}

func upnpFault(code int) error {
	f := &soap.SOAPFaultError{FaultCode: "s:Client", FaultString: "UPnPError"}
	f.Detail.UPnPError.Errorcode = code
	return f
}

func (f *fakeIGD) AddPortMappingCtx(_ context.Context, _ string, ext uint16, proto string, internal uint16, client string, _ bool, _ string, lease uint32) error {
	f.calls = append(f.calls, fmt.Sprintf("add %s %d→%s:%d %d", proto, ext, client, internal, lease))
	if c := f.codes[ext]; c != 0 {
		return upnpFault(c)
	}
	if f.perm && lease != 0 {
		return upnpFault(upnpOnlyPermanentLease)
	}
	return nil
}

func (f *fakeIGD) DeletePortMappingCtx(_ context.Context, _ string, ext uint16, proto string) error {
	f.calls = append(f.calls, fmt.Sprintf("delete %s %d", proto, ext))
	return nil
}

func (f *fakeIGD) GetExternalIPAddressCtx(context.Context) (string, error) { return "10.240.8.2", nil }
func (f *fakeIGD) GetServiceClient() *goupnp.ServiceClient                 { return &goupnp.ServiceClient{} }

func newFakeIGD(f *fakeIGD) *upnpIGD {
	return &upnpIGD{c: f, addr: netip.MustParseAddr("10.240.9.1"), local: "10.240.9.20", timeout: time.Second}
}

// A TCP port another machine holds (718): the next ports are tried. A UDP
// one is not (IGD says nothing of outbound datagrams, so another port would
// not be where DHT nodes send).
func TestUPnPConflict(t *testing.T) {
	f := &fakeIGD{codes: map[uint16]int{9977: upnpConflict, 9978: upnpConflict}}
	g := newFakeIGD(f)
	ext, lease, err := g.Map(TCP, 9977, 9977, time.Hour)
	if err != nil || ext != 9979 || lease != time.Hour {
		t.Fatalf("TCP: %d %s %v; want 9979 for 1 h", ext, lease, err)
	}
	want := []string{"add TCP 9977→10.240.9.20:9977 3600", "add TCP 9978→10.240.9.20:9977 3600", "add TCP 9979→10.240.9.20:9977 3600"}
	if !slices.Equal(f.calls, want) {
		t.Fatalf("calls %q, want %q", f.calls, want)
	}
	f.calls = nil
	if _, _, err := g.Map(UDP, 9977, 9977, time.Hour); err == nil || upnpCode(err) != upnpConflict || len(f.calls) != 1 {
		t.Fatalf("UDP: %v after %q; want the conflict after one request", err, f.calls)
	}
	// Four TCP ports taken: give up.
	f = &fakeIGD{codes: map[uint16]int{9977: upnpConflict, 9978: upnpConflict, 9979: upnpConflict, 9980: upnpConflict}}
	if _, _, err := newFakeIGD(f).Map(TCP, 9977, 9977, time.Hour); err == nil || len(f.calls) != 4 {
		t.Fatalf("%v after %q; want an error after 4 requests", err, f.calls)
	}
	// Another error is not retried on other ports.
	f = &fakeIGD{codes: map[uint16]int{9977: 501}}
	if _, _, err := newFakeIGD(f).Map(TCP, 9977, 9977, time.Hour); err == nil || len(f.calls) != 1 {
		t.Fatalf("%v after %q; want an error after 1 request", err, f.calls)
	}
}

// A router that takes permanent mappings only (725, IGD:1) gets one; the
// service renews it as any other and deletes it at Close.
func TestUPnPPermanentOnly(t *testing.T) {
	f := &fakeIGD{perm: true}
	g := newFakeIGD(f)
	ext, _, err := g.Map(UDP, 9977, 9977, time.Hour)
	if err != nil || ext != 9977 {
		t.Fatalf("%d %v", ext, err)
	}
	want := []string{"add UDP 9977→10.240.9.20:9977 3600", "add UDP 9977→10.240.9.20:9977 0"}
	if !slices.Equal(f.calls, want) {
		t.Fatalf("calls %q, want %q", f.calls, want)
	}
	if err := g.Unmap(UDP, 9977, 9977); err != nil || f.calls[2] != "delete UDP 9977" {
		t.Fatalf("Unmap: %v, calls %q", err, f.calls)
	}
	if a, err := g.ExternalAddr(); err != nil || a != netip.MustParseAddr("10.240.8.2") {
		t.Fatalf("external %s %v", a, err)
	}
}
