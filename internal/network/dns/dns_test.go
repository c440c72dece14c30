package dns

import (
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	mdns "github.com/miekg/dns"
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

func TestStartStopInNetns(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("test needs root")
	}
	// A throwaway netns of our own, by path, removed at the end.
	name := fmt.Sprintf("btdns%d", os.Getpid()%100000)
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	defer exec.Command("ip", "netns", "del", name).Run()
	path := "/run/netns/" + name
	if out, err := exec.Command("ip", "netns", "exec", name, "ip", "link", "set", "lo", "up").CombinedOutput(); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	s := New(Config{})
	s.Add(Record{Network: "n", ContainerID: "A", Names: []string{"alpha"}, IP: netip.MustParseAddr("172.30.1.2")})
	// Start and stop at once, many times: no socket may stay open.
	for i := 0; i < 20; i++ {
		if err := s.Start("A", path); err != nil {
			t.Fatal(err)
		}
		s.Stop("A")
	}
	if err := s.Start("A", path); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var got []string
	err := InNetns(path, func() error {
		q := new(mdns.Msg)
		q.SetQuestion("alpha.", mdns.TypeA)
		r, _, err := (&mdns.Client{Timeout: 2 * time.Second}).Exchange(q, Address+":53")
		if err != nil {
			return err
		}
		for _, rr := range r.Answer {
			got = append(got, rr.(*mdns.A).A.String())
		}
		return nil
	})
	if err != nil || len(got) != 1 || got[0] != "172.30.1.2" {
		t.Fatalf("%v %v", got, err)
	}
	// Only the live listener's sockets are in the namespace.
	out, _ := exec.Command("ip", "netns", "exec", name, "ss", "-Hlun").CombinedOutput()
	if n := strings.Count(string(out), "127.0.0.11:"); n != 1 {
		t.Fatalf("udp sockets in netns: %d\n%s", n, out)
	}
}
