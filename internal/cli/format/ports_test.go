package format

import (
	"net/netip"
	"testing"

	"github.com/moby/moby/api/types/container"
)

func TestPorts(t *testing.T) {
	any4, any6 := netip.MustParseAddr("0.0.0.0"), netip.MustParseAddr("::")
	p := func(ip netip.Addr, pub, priv uint16, proto string) container.PortSummary {
		return container.PortSummary{IP: ip, PublicPort: pub, PrivatePort: priv, Type: proto}
	}
	for _, c := range []struct {
		in   []container.PortSummary
		want string
	}{
		{nil, ""},
		{[]container.PortSummary{p(netip.Addr{}, 0, 80, "tcp")}, "80/tcp"},
		{[]container.PortSummary{p(netip.Addr{}, 0, 81, "tcp"), p(netip.Addr{}, 0, 80, "tcp"), p(netip.Addr{}, 0, 83, "tcp")}, "80-81/tcp, 83/tcp"},
		{[]container.PortSummary{p(any4, 8080, 80, "tcp"), p(any6, 8080, 80, "tcp")}, "0.0.0.0:8080->80/tcp, [::]:8080->80/tcp"},
		{[]container.PortSummary{p(any4, 90, 90, "tcp"), p(any4, 91, 91, "tcp"), p(any4, 53, 53, "udp")}, "0.0.0.0:53->53/udp, 0.0.0.0:90-91->90-91/tcp"},
		{[]container.PortSummary{p(any6, 90, 90, "tcp"), p(any6, 91, 91, "tcp")}, "[::]:90-91->90-91/tcp"},
	} {
		if got := Ports(c.in); got != c.want {
			t.Errorf("%v: %q, want %q", c.in, got, c.want)
		}
	}
}
