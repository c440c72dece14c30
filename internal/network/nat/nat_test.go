package nat

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/berth-dev/berth/internal/errdefs"
	"github.com/berth-dev/berth/internal/testutil"
)

func TestParsePortSpec(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want string
	}{
		{"80", "0.0.0.0:0->80/tcp"},
		{"8080:80", "0.0.0.0:8080->80/tcp"},
		{"127.0.0.1:8080:80/udp", "127.0.0.1:8080->80/udp"},
		{"127.0.0.1::80", "127.0.0.1:0->80/tcp"},
		{"0.0.0.0:1000-1002:2000-2002", "0.0.0.0:1000->2000/tcp 0.0.0.0:1001->2001/tcp 0.0.0.0:1002->2002/tcp"},
	} {
		ms, err := ParsePortSpec(tc.in)
		if err != nil {
			t.Fatalf("%s: %v", tc.in, err)
		}
		var s []string
		for _, m := range ms {
			s = append(s, m.String())
		}
		if got := strings.Join(s, " "); got != tc.want {
			t.Errorf("%s: got %s want %s", tc.in, got, tc.want)
		}
	}
	for _, in := range []string{"", "0", "x:80", "1:2:3:4", "80/sctp", "1000-1001:80", "70000", "1.2.3.4:a:80", "[::1]:80:80"} {
		if _, err := ParsePortSpec(in); !errdefs.IsInvalidArgument(err) {
			t.Errorf("%q: want invalid argument, got %v", in, err)
		}
	}
	ms, err := ExposedToMappings([]string{"80/tcp", "53/udp"})
	if err != nil || len(ms) != 2 || ms[1].Proto != "udp" || ms[0].HostPort != 0 {
		t.Fatalf("exposed: %v %v", ms, err)
	}
}

func TestReserve(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	port := uint16(l.Addr().(*net.TCPAddr).Port)
	if _, err := Reserve("tcp", netip.Addr{}, port); !errdefs.IsConflict(err) || !strings.Contains(err.Error(), "port is already allocated") {
		t.Fatalf("in use: %v", err)
	}
	r, err := Reserve("tcp", netip.MustParseAddr("127.0.0.1"), 0)
	if err != nil || r.Port == 0 {
		t.Fatalf("free port: %v", err)
	}
	// Held: nobody else can take it.
	if _, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", r.Port)); err == nil {
		t.Fatal("reserved port could be bound again")
	}
	r2, err := Reserve("udp", netip.Addr{}, r.Port)
	if err != nil {
		t.Fatalf("udp on same number: %v", err)
	}
	r2.Close()
	r.Close()
	if l2, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", r.Port)); err != nil {
		t.Fatalf("released port: %v", err)
	} else {
		l2.Close()
	}
}

func TestTableRules(t *testing.T) {
	testutil.RequireRoot(t)
	name := fmt.Sprintf("berth_n%d", os.Getpid())
	tb, err := Open(name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		tb.Destroy()
		if strings.Contains(ruleset(t), "table ip "+name+" ") {
			t.Errorf("table %s left behind", name)
		}
	})
	if err := tb.AddNetwork(Network{Name: "a", Bridge: "bt-none-a", Subnet: netip.MustParsePrefix("172.30.77.0/24")}); err != nil {
		t.Fatal(err)
	}
	if err := tb.AddNetwork(Network{Name: "i", Bridge: "bt-none-i", Subnet: netip.MustParsePrefix("172.30.78.0/24"), Internal: true}); err != nil {
		t.Fatal(err)
	}
	// Idempotent.
	if err := tb.AddNetwork(Network{Name: "a", Bridge: "bt-none-a", Subnet: netip.MustParsePrefix("172.30.77.0/24")}); err != nil {
		t.Fatal(err)
	}
	ms, _ := ParsePortSpec("127.0.0.1:18080-18081:80-81")
	for i := range ms {
		ms[i].ContainerIP = netip.MustParseAddr("172.30.77.2")
	}
	if err := tb.Publish("c1", ms); err != nil {
		t.Fatal(err)
	}
	out := listTable(t, name)
	for _, want := range []string{
		`ip saddr 172.30.77.0/24 oifname != "bt-none-a" masquerade`,
		`oifname "bt-none-a" ip saddr 127.0.0.0/8 masquerade`,
		`ct status dnat masquerade`,
		`iifname "bt-none-i" oifname != "bt-none-i" drop`,
		`ip daddr 127.0.0.1 tcp dport 18081 dnat to 172.30.77.2:81`,
		`fib daddr type local jump ports`,
		`iifname "bt-none-a" oifname != "bt-none-a" oifname @bridges ct status ! dnat drop`,
		`elements = { "bt-none-a",`, `"bt-none-i" }`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("missing %q in\n%s", want, out)
		}
	}
	if strings.Contains(out, `ip saddr 172.30.78.0/24 oifname != "bt-none-i" masquerade`) {
		t.Errorf("internal network is masqueraded:\n%s", out)
	}
	if err := tb.Unpublish("c1"); err != nil {
		t.Fatal(err)
	}
	if err := tb.RemoveNetwork("i"); err != nil {
		t.Fatal(err)
	}
	out = listTable(t, name)
	if strings.Contains(out, "dnat to") || strings.Contains(out, "bt-none-i") || !strings.Contains(out, `elements = { "bt-none-a" }`) {
		t.Errorf("rules left:\n%s", out)
	}
	// Re-open drops stale rules.
	tb2, err := Open(name)
	if err != nil {
		t.Fatal(err)
	}
	if rs, _ := tb2.Rules(chainPostrouting); len(rs) != 0 {
		t.Errorf("stale rules after re-open: %v", rs)
	}
	if err := tb.Publish("c2", []PortMapping{{Proto: "tcp", HostPort: 1}}); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("incomplete mapping: %v", err)
	}
}

func ruleset(t *testing.T) string {
	out, err := exec.Command("nft", "list", "ruleset").CombinedOutput()
	if err != nil {
		t.Fatalf("nft: %v %s", err, out)
	}
	return string(out)
}

func listTable(t *testing.T, name string) string {
	out, err := exec.Command("nft", "list", "table", "ip", name).CombinedOutput()
	if err != nil {
		t.Fatalf("nft: %v %s", err, out)
	}
	return string(out)
}
