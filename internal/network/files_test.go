package network

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/berth-dev/berth/internal/errdefs"
)

func TestHostsFile(t *testing.T) {
	got := string(HostsFile(HostsOptions{
		Hostname: "web", Domainname: "example.org",
		IPs:        []netip.Addr{netip.MustParseAddr("172.30.1.2")},
		ExtraHosts: []HostEntry{{Name: "db", IP: "10.1.2.3"}},
	}))
	want := "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\nff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n" +
		"10.1.2.3\tdb\n172.30.1.2\tweb.example.org web\n"
	if got != want {
		t.Fatalf("got\n%s\nwant\n%s", got, want)
	}
	if string(HostnameFile("web")) != "web\n" {
		t.Fatal("hostname")
	}
	for in, want := range map[string]HostEntry{"db:10.1.2.3": {"db", "10.1.2.3"}, "db=::1": {"db", "::1"}, "gw:host-gateway": {"gw", "host-gateway"}, "v6:[fd00::1]": {"v6", "fd00::1"}} {
		if e, err := ParseExtraHost(in); err != nil || e != want {
			t.Errorf("%s: %v %v", in, e, err)
		}
	}
	for _, in := range []string{"db", "db:", ":1.2.3.4", "db:notanip"} {
		if _, err := ParseExtraHost(in); !errdefs.IsInvalidArgument(err) {
			t.Errorf("%s: %v", in, err)
		}
	}
}

func TestResolvConf(t *testing.T) {
	host := []byte("# comment\nnameserver 127.0.0.53\nnameserver 192.0.2.53\nsearch corp.example\noptions edns0 trust-ad\n")
	// Default bridge: loopback resolvers dropped, no embedded DNS.
	c, ups, err := ResolvConf(ResolvOptions{Host: host})
	if err != nil {
		t.Fatal(err)
	}
	if s := string(c); !strings.Contains(s, "nameserver 192.0.2.53\n") || strings.Contains(s, "127.0.0.53") ||
		!strings.Contains(s, "search corp.example\n") || !strings.Contains(s, "options edns0 trust-ad\n") || len(ups) != 0 {
		t.Fatalf("default bridge:\n%s %v", s, ups)
	}
	// Only loopback resolvers: docker's fallbacks.
	c, _, _ = ResolvConf(ResolvOptions{Host: []byte("nameserver 127.0.0.53\n")})
	if !strings.Contains(string(c), "nameserver 8.8.8.8\nnameserver 8.8.4.4\n") {
		t.Fatalf("fallback:\n%s", c)
	}
	// User network: 127.0.0.11, ndots:0, the host's resolvers as upstreams.
	c, ups, _ = ResolvConf(ResolvOptions{Host: host, Embedded: true})
	if s := string(c); !strings.Contains(s, "nameserver 127.0.0.11\n") || strings.Count(s, "nameserver") != 1 ||
		!strings.Contains(s, "options ndots:0 edns0 trust-ad\n") || strings.Join(ups, ",") != "127.0.0.53:53,192.0.2.53:53" {
		t.Fatalf("user network:\n%s %v", s, ups)
	}
	// Flags win.
	c, ups, _ = ResolvConf(ResolvOptions{Host: host, Embedded: true, DNS: []string{"192.0.2.99"}, Search: []string{"."}, Options: []string{"ndots:2"}})
	if s := string(c); strings.Contains(s, "search") || !strings.Contains(s, "options ndots:2\n") || strings.Join(ups, ",") != "192.0.2.99:53" {
		t.Fatalf("flags:\n%s %v", s, ups)
	}
	if _, _, err := ResolvConf(ResolvOptions{DNS: []string{"nope"}}); !errdefs.IsInvalidArgument(err) {
		t.Fatalf("bad --dns: %v", err)
	}
}
