package dns

import (
	"net/netip"
	"testing"
)

func TestLookupScopeAndRoundRobin(t *testing.T) {
	s := New(Config{})
	a, b, c := netip.MustParseAddr("172.30.1.2"), netip.MustParseAddr("172.30.1.3"), netip.MustParseAddr("172.30.2.2")
	s.Add(Record{Network: "n1", ContainerID: "A", Names: []string{"alpha", "Web"}, IP: a})
	s.Add(Record{Network: "n1", ContainerID: "B", Names: []string{"beta", "web"}, IP: b})
	s.Add(Record{Network: "n2", ContainerID: "C", Names: []string{"gamma", "web"}, IP: c})
	if got := s.Lookup("A", "BETA."); len(got) != 1 || got[0] != b {
		t.Fatalf("beta: %v", got)
	}
	if got := s.Lookup("A", "gamma"); len(got) != 0 {
		t.Fatalf("gamma is on another network: %v", got)
	}
	first, second := s.Lookup("A", "web"), s.Lookup("A", "web")
	if len(first) != 2 || len(second) != 2 || first[0] == second[0] {
		t.Fatalf("round robin: %v %v", first, second)
	}
	if got := s.Lookup("nobody", "alpha"); len(got) != 0 {
		t.Fatalf("unknown asker: %v", got)
	}
	s.Remove("n1", "B")
	if got := s.Lookup("A", "web"); len(got) != 1 || got[0] != a {
		t.Fatalf("after remove: %v", got)
	}
	if ip, ok := ptrAddr("2.1.30.172.in-addr.arpa."); !ok || ip != a || s.reverse("A", ip) != "alpha" {
		t.Fatalf("ptr: %v %v", ip, ok)
	}
}

func TestUpstreamsFromResolvConf(t *testing.T) {
	got := UpstreamsFromResolvConf([]byte("nameserver 127.0.0.53\n# x\nnameserver fd00::1\nnameserver bad\nsearch x\n"))
	if len(got) != 2 || got[0] != "127.0.0.53:53" || got[1] != "[fd00::1]:53" {
		t.Fatalf("%v", got)
	}
}
