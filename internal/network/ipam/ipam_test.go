package ipam

import (
	"errors"
	"net/netip"
	"path/filepath"
	"testing"

	"github.com/berth-dev/berth/internal/errdefs"
)

func TestAllocatePersistAndErrors(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ipam.json")
	a, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	host := []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")}
	p, err := a.AddPool("n1", PoolConfig{Subnet: "172.30.5.0/24", IPRange: "172.30.5.128/30"}, host)
	if err != nil {
		t.Fatal(err)
	}
	if p.Gateway.String() != "172.30.5.1" {
		t.Fatalf("gateway %s", p.Gateway)
	}
	// Overlaps: another pool, a host route.
	if _, err := a.AddPool("n2", PoolConfig{Subnet: "172.30.0.0/16"}, host); !errdefs.IsConflict(err) {
		t.Fatalf("overlap with pool: %v", err)
	}
	if _, err := a.AddPool("n2", PoolConfig{Subnet: "192.0.2.128/25"}, host); !errdefs.IsConflict(err) {
		t.Fatalf("overlap with host route: %v", err)
	}
	if _, err := a.AddPool("n2", PoolConfig{Subnet: "172.30.6.0/24", Gateway: "172.30.7.1"}, host); !errdefs.IsInvalidArgument(err) {
		t.Fatalf("gateway outside: %v", err)
	}
	if _, err := a.AddPool("n2", PoolConfig{Subnet: "172.30.6.0/24", IPRange: "172.30.7.0/25"}, host); !errdefs.IsInvalidArgument(err) {
		t.Fatalf("range outside: %v", err)
	}
	// Range of 4 addresses, all usable (not network/broadcast of the subnet).
	var got []netip.Addr
	for i := 0; i < 4; i++ {
		ip, err := a.Allocate("n1", "c", netip.Addr{})
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, ip)
	}
	if got[0].String() != "172.30.5.128" || got[3].String() != "172.30.5.131" {
		t.Fatalf("got %v", got)
	}
	if _, err := a.Allocate("n1", "c", netip.Addr{}); !errors.Is(err, errdefs.ErrUnavailable) {
		t.Fatalf("exhausted: %v", err)
	}
	if _, err := a.Allocate("n1", "c", netip.MustParseAddr("172.30.9.9")); !errdefs.IsInvalidArgument(err) {
		t.Fatalf("outside subnet: %v", err)
	}
	if _, err := a.Allocate("n1", "c", netip.MustParseAddr("172.30.5.130")); !errdefs.IsConflict(err) {
		t.Fatalf("taken: %v", err)
	}
	if _, err := a.Allocate("n1", "c", netip.MustParseAddr("172.30.5.1")); !errdefs.IsConflict(err) {
		t.Fatalf("gateway: %v", err)
	}
	if ip, err := a.Allocate("n1", "d", netip.MustParseAddr("172.30.5.7")); err != nil || ip.String() != "172.30.5.7" {
		t.Fatalf("static: %v %v", ip, err)
	}
	if err := a.Release("n1", got[1]); err != nil {
		t.Fatal(err)
	}
	// Re-open: same state, no duplicates.
	b, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	ip, err := b.Allocate("n1", "e", netip.Addr{})
	if err != nil || ip != got[1] {
		t.Fatalf("after reopen: %v %v", ip, err)
	}
	if _, err := b.Allocate("n1", "e", netip.Addr{}); !errors.Is(err, errdefs.ErrUnavailable) {
		t.Fatalf("after reopen, exhausted: %v", err)
	}
	if err := b.ReleaseOwner("n1", "c"); err != nil {
		t.Fatal(err)
	}
	q, _ := b.Pool("n1")
	if len(q.Allocated) != 2 {
		t.Fatalf("allocated after ReleaseOwner: %v", q.Allocated)
	}
	// Automatic subnet skips used pools and host routes.
	auto, err := b.AddPool("auto", PoolConfig{}, []netip.Prefix{netip.MustParsePrefix("172.17.0.0/16")})
	if err != nil || auto.Subnet.String() != "172.18.0.0/16" {
		t.Fatalf("auto: %v %v", auto.Subnet, err)
	}
	if err := b.RemovePool("auto"); err != nil {
		t.Fatal(err)
	}
	if _, ok := b.Pool("auto"); ok {
		t.Fatal("pool still there")
	}
}
