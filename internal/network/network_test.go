package network_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	mdns "github.com/miekg/dns"
	"github.com/vishvananda/netlink"

	"github.com/berth-dev/berth/internal/errdefs"
	"github.com/berth-dev/berth/internal/network"
	"github.com/berth-dev/berth/internal/network/dns"
	"github.com/berth-dev/berth/internal/network/nat"
	"github.com/berth-dev/berth/internal/testutil"
)

// Subnets used here: 172.30.200.0/24 (default bridge), 172.30.201.0/24
// (user network), 172.30.202.0/24 (internal), 172.30.203.0/24 (another
// user network), 172.30.250.0/30 (a fake
// outside host behind a veth). newEnv skips if the host routes any of them.

type hostState struct{ links, netns, ruleset, addrs, routes, forward, nsfs string }

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %v: %v\n%s", name, args, err, out)
	}
	return string(out)
}

func snapshot(t *testing.T) hostState {
	t.Helper()
	// Link names and states only (counters and the like change).
	var links []string
	for _, l := range strings.Split(run(t, "ip", "-o", "link", "show"), "\n") {
		if f := strings.Fields(l); len(f) > 1 && !foreignLine(l) {
			links = append(links, f[1])
		}
	}
	sort.Strings(links)
	return hostState{
		links:   strings.Join(links, " "),
		netns:   ownNetns(run(t, "ip", "netns", "list")),
		ruleset: ownRuleset(run(t, "nft", "list", "ruleset")),
		addrs:   ownLines(run(t, "ip", "-4", "-o", "addr", "show")),
		routes:  ownLines(run(t, "ip", "route", "show", "table", "all")),
		forward: run(t, "cat", "/proc/sys/net/ipv4/ip_forward"),
		nsfs:    nsfsMounts(t),
	}
}

// foreignIf matches the interfaces other tests and daemons running at the
// same time make: test daemons' bridges (nettest: bt<pid36>x<n>), their
// user networks (br-<id12>) and veths (bv<hex11>), the private dockerd's
// (bd-<hex>, veth<hex>), the scripts' (bbe, bbcli, bdemo) and default ones.
var foreignIf = regexp.MustCompile(`\b(bt[0-9a-z]+x[0-9a-z]+|br-[0-9a-f]{12}|bv[0-9a-f]{11}|bd-[0-9a-f]+|veth[0-9a-f]+|bbe[0-9]+|bbcli[0-9]+|bdemo[0-9]+|berth0|docker0)\b`)

// foreignLine is a line about another process's interface, and none of
// this test's (btd/btu/bti<pid>, bt<pid>-x).
func foreignLine(l string) bool {
	if !foreignIf.MatchString(l) {
		return false
	}
	p := os.Getpid() % 100000
	for _, own := range []string{fmt.Sprintf("btd%d", p), fmt.Sprintf("btu%d", p), fmt.Sprintf("bti%d", p), fmt.Sprintf("bt%d-", p)} {
		if strings.Contains(l, own) {
			return false
		}
	}
	return true
}

// ownLines drops the lines about other processes' interfaces.
func ownLines(s string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if !foreignLine(l) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// ownRuleset drops the tables of other berth test processes (packages run
// in parallel) from a ruleset listing; everything else is compared.
func ownRuleset(rs string) string {
	mine := fmt.Sprintf("berth_t%d ", os.Getpid()%100000)
	var out []string
	skip := false
	for _, l := range strings.Split(rs, "\n") {
		if strings.HasPrefix(l, "table ") {
			skip = strings.Contains(l, " berth") && !strings.Contains(l, mine) // other daemons' and tests' tables
		}
		if !skip {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// ownNetns drops the namespaces of the dns package's test (packages run in
// parallel) from `ip netns list`.
func ownNetns(list string) string {
	var out []string
	for _, l := range strings.Split(list, "\n") {
		if !strings.HasPrefix(l, "btdns") {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// nsfsMounts lists this test's namespace bind mounts (other packages' tests
// may hold their own).
func nsfsMounts(t *testing.T) string {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		if strings.Contains(l, " nsfs ") && (strings.Contains(l, fmt.Sprintf("bt%d-", os.Getpid()%100000)) || strings.Contains(l, "netns-d")) {
			out = append(out, strings.Fields(l)[4])
		}
	}
	return strings.Join(out, " ")
}

// outside makes an "outside host" of the test's own: a netns behind a veth
// from the host (172.30.250.0/30), forwarding enabled on that veth only,
// serving on 172.30.250.2:9000 the source address it sees.
func outside(t *testing.T) {
	// An "outside" host of our own: a netns behind a veth from the host
	// (172.30.250.0/30), forwarding enabled on that veth only.
	nsO := newNetns(t, "o")
	id := os.Getpid() % 100000
	hostSide, peer := fmt.Sprintf("bto%dh", id), fmt.Sprintf("bto%dp", id)
	run(t, "ip", "link", "add", hostSide, "type", "veth", "peer", "name", peer)
	t.Cleanup(func() { exec.Command("ip", "link", "del", hostSide).Run() })
	nsName := strings.TrimPrefix(nsO, "/run/netns/")
	run(t, "ip", "link", "set", peer, "netns", nsName)
	run(t, "ip", "addr", "add", "172.30.250.1/30", "dev", hostSide)
	run(t, "ip", "link", "set", hostSide, "up")
	if err := os.WriteFile("/proc/sys/net/ipv4/conf/"+hostSide+"/forwarding", []byte("1"), 0o644); err != nil {
		t.Fatal(err)
	}
	run(t, "ip", "netns", "exec", nsName, "ip", "addr", "add", "172.30.250.2/30", "dev", peer)
	run(t, "ip", "netns", "exec", nsName, "ip", "link", "set", peer, "up")
	var ln net.Listener
	if err := dns.InNetns(nsO, func() (err error) {
		ln, err = net.Listen("tcp4", "172.30.250.2:9000")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			ap, _ := netip.ParseAddrPort(c.RemoteAddr().String())
			io.WriteString(c, ap.Addr().String()+"\n")
			c.Close()
		}
	}()
}

type env struct {
	t       *testing.T
	state   string
	table   string
	defBr   string
	userBr  string
	intBr   string
	otherBr string
	cfg     network.Config
	m       *network.Manager
	ups     string // fake upstream resolver, 127.0.0.1:port
}

// newEnv opens a Manager with private names (bridges, table, state dir) and
// registers a cleanup that tears everything down and checks the host is
// exactly as found.
func newEnv(t *testing.T) *env {
	testutil.RequireRoot(t)
	routes, err := network.HostRoutes(nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, sn := range []string{"172.30.200.0/24", "172.30.201.0/24", "172.30.202.0/24", "172.30.203.0/24", "172.30.250.0/30"} {
		for _, r := range routes {
			if r.Overlaps(netip.MustParsePrefix(sn)) {
				t.Skipf("host already routes %s (%s): the test would clash", sn, r)
			}
		}
	}
	before := snapshot(t)
	// Cleanups run last-registered first: this check runs after all others.
	t.Cleanup(func() {
		if after := snapshot(t); after != before {
			t.Errorf("host state changed:\nbefore: %+v\nafter:  %+v", before, after)
		}
	})
	id := os.Getpid() % 100000
	e := &env{t: t, state: t.TempDir(), table: fmt.Sprintf("berth_t%d", id),
		defBr: fmt.Sprintf("btd%d", id), userBr: fmt.Sprintf("btu%d", id), intBr: fmt.Sprintf("bti%d", id), otherBr: fmt.Sprintf("bte%d", id)}
	t.Cleanup(func() {
		if e.m != nil {
			if err := e.m.Teardown(context.Background()); err != nil {
				t.Errorf("teardown: %v", err)
			}
		}
		// Belt and braces: whatever a failed test left.
		for _, br := range []string{e.defBr, e.userBr, e.intBr, e.otherBr} {
			network.DeleteBridge(br)
		}
		exec.Command("nft", "delete", "table", "ip", e.table).Run()
	})
	e.ups = fakeUpstream(t)
	e.cfg = network.Config{StateDir: e.state, NATTable: e.table, DefaultBridge: e.defBr,
		DefaultSubnet: "172.30.200.0/24", DNSUpstreams: []string{e.ups}}
	if e.m, err = network.Open(context.Background(), e.cfg); err != nil {
		t.Fatal(err)
	}
	return e
}

// newNetns makes a named network namespace (ip netns add), removed on cleanup.
func newNetns(t *testing.T, name string) string {
	t.Helper()
	name = fmt.Sprintf("bt%d-%s", os.Getpid()%100000, name)
	run(t, "ip", "netns", "add", name)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", name).Run() })
	return "/run/netns/" + name
}

// listenIn runs listen inside the netns and closes what it opened at
// cleanup.
func listenIn[T io.Closer](t *testing.T, nsPath string, listen func() (T, error)) T {
	t.Helper()
	var l T
	if err := dns.InNetns(nsPath, func() (err error) {
		l, err = listen()
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// serveTCP starts a server inside the netns answering each connection with
// greeting, until cleanup.
func serveTCP(t *testing.T, nsPath string, port int, greeting string) {
	t.Helper()
	ln := listenIn(t, nsPath, func() (net.Listener, error) {
		return net.Listen("tcp4", fmt.Sprintf("0.0.0.0:%d", port))
	})
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			io.WriteString(c, greeting+"\n")
			c.Close()
		}
	}()
}

func serveUDP(t *testing.T, nsPath string, port int, greeting string) {
	t.Helper()
	pc := listenIn(t, nsPath, func() (net.PacketConn, error) {
		return net.ListenPacket("udp4", fmt.Sprintf("0.0.0.0:%d", port))
	})
	go func() {
		buf := make([]byte, 1500)
		for {
			_, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			pc.WriteTo([]byte(greeting+"\n"), from)
		}
	}()
}

// readTCP dials addr (from nsPath, or from the host when nsPath is "") and
// returns the first line.
func readTCP(nsPath, addr string) (string, error) {
	var c net.Conn
	dial := func() (err error) {
		c, err = net.DialTimeout("tcp4", addr, 3*time.Second)
		return err
	}
	var err error
	if nsPath == "" {
		err = dial()
	} else {
		err = dns.InNetns(nsPath, dial)
	}
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(3 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	return strings.TrimSpace(line), err
}

// readTCPQuick is readTCP with a short timeout, for connections that must fail.
func readTCPQuick(nsPath, addr string) (string, error) {
	var c net.Conn
	err := dns.InNetns(nsPath, func() (err error) {
		c, err = net.DialTimeout("tcp4", addr, 300*time.Millisecond)
		return err
	})
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(300 * time.Millisecond))
	line, err := bufio.NewReader(c).ReadString('\n')
	return line, err
}

func readUDP(addr string) (string, error) {
	c, err := net.Dial("udp4", addr)
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(3 * time.Second))
	if _, err := c.Write([]byte("hi")); err != nil {
		return "", err
	}
	buf := make([]byte, 100)
	n, err := c.Read(buf)
	return strings.TrimSpace(string(buf[:n])), err
}

// query asks the embedded DNS server (127.0.0.11 inside nsPath).
func query(t *testing.T, nsPath, name string, qtype uint16, proto string) *mdns.Msg {
	t.Helper()
	var r *mdns.Msg
	err := dns.InNetns(nsPath, func() (err error) {
		q := new(mdns.Msg)
		q.SetQuestion(mdns.Fqdn(name), qtype)
		c := &mdns.Client{Net: proto, Timeout: 3 * time.Second}
		r, _, err = c.Exchange(q, dns.Address+":53")
		return err
	})
	if err != nil {
		t.Fatalf("query %s in %s: %v", name, nsPath, err)
	}
	return r
}

func aRecords(m *mdns.Msg) []string {
	var out []string
	for _, rr := range m.Answer {
		if a, ok := rr.(*mdns.A); ok {
			out = append(out, a.A.String())
		}
	}
	return out
}

// fakeUpstream is a resolver on 127.0.0.1 answering every A query with
// 198.51.100.7 (a documentation address nobody sends traffic to).
func fakeUpstream(t *testing.T) string {
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &mdns.Server{PacketConn: pc, Handler: mdns.HandlerFunc(func(w mdns.ResponseWriter, q *mdns.Msg) {
		m := new(mdns.Msg)
		m.SetReply(q)
		m.Answer = append(m.Answer, &mdns.A{Hdr: mdns.RR_Header{Name: q.Question[0].Name, Rrtype: mdns.TypeA, Class: mdns.ClassINET, Ttl: 5},
			A: net.ParseIP("198.51.100.7")})
		w.WriteMsg(m)
	})}
	go srv.ActivateAndServe()
	t.Cleanup(func() { srv.Shutdown() })
	return pc.LocalAddr().String()
}

func hostAddress(t *testing.T) string {
	routes, err := netlink.RouteList(nil, netlink.FAMILY_V4)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range routes {
		isDefault := r.Dst == nil
		if r.Dst != nil {
			ones, _ := r.Dst.Mask.Size()
			isDefault = ones == 0
		}
		if isDefault && r.LinkIndex > 0 {
			l, err := netlink.LinkByIndex(r.LinkIndex)
			if err != nil {
				continue
			}
			addrs, _ := netlink.AddrList(l, netlink.FAMILY_V4)
			if len(addrs) > 0 {
				return addrs[0].IP.String()
			}
		}
	}
	t.Skip("no primary interface address")
	return ""
}

func TestNetworks(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	m := e.m
	nsA, nsB, nsC := newNetns(t, "a"), newNetns(t, "b"), newNetns(t, "c")
	const idA, idB, idC = "aaaaaaaaaaaa0000000000000000000000000000000000000000000000000001",
		"bbbbbbbbbbbb0000000000000000000000000000000000000000000000000002",
		"cccccccccccc0000000000000000000000000000000000000000000000000003"

	un, err := m.CreateNetwork(ctx, network.NetworkSpec{Name: "tnet", Subnet: "172.30.201.0/24", BridgeName: e.userBr})
	if err != nil {
		t.Fatal(err)
	}
	// Bad input, nothing half-made.
	if _, err := m.CreateNetwork(ctx, network.NetworkSpec{Name: "over", Subnet: "172.30.201.128/25", BridgeName: e.intBr}); !errdefs.IsConflict(err) {
		t.Fatalf("overlapping subnet: %v", err)
	}
	if _, err := m.CreateNetwork(ctx, network.NetworkSpec{Name: "tnet", Subnet: "172.30.202.0/24"}); !errdefs.IsConflict(err) {
		t.Fatalf("duplicate name: %v", err)
	}
	if _, err := netlink.LinkByName(e.intBr); err == nil {
		t.Fatal("refused network left its bridge")
	}
	if _, err := m.Connect(ctx, "tnet", network.EndpointSpec{ContainerID: idA, Name: "alpha", NetnsPath: nsA, IP: netip.MustParseAddr("172.30.9.9")}); !errdefs.IsInvalidArgument(err) {
		t.Fatalf("address outside subnet: %v", err)
	}
	if _, err := m.Connect(ctx, "nosuch", network.EndpointSpec{ContainerID: idA, NetnsPath: nsA}); !errdefs.IsNotFound(err) {
		t.Fatalf("unknown network: %v", err)
	}
	// Port in use: refused, nothing left (no address, no veth, no rule).
	busy, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	busyPort := uint16(busy.Addr().(*net.TCPAddr).Port)
	if _, err := m.Connect(ctx, "tnet", network.EndpointSpec{ContainerID: idA, Name: "alpha", NetnsPath: nsA,
		Ports: []nat.PortMapping{{Proto: "tcp", HostIP: netip.MustParseAddr("127.0.0.1"), HostPort: busyPort, ContainerPort: 80}}}); !errdefs.IsConflict(err) || !strings.Contains(err.Error(), "already allocated") {
		t.Fatalf("port in use: %v", err)
	}
	if n, _ := m.Network("tnet"); len(n.Endpoints) != 0 {
		t.Fatalf("endpoint left after refusal: %v", n.Endpoints)
	}
	if _, err := netlink.LinkByName(network.HostVethName(idA, un.ID)); err == nil {
		t.Fatal("veth left after refusal")
	}

	// Two containers (and a third sharing an alias) on the user network.
	epA, err := m.Connect(ctx, "tnet", network.EndpointSpec{ContainerID: idA, Name: "alpha", NetnsPath: nsA, Aliases: []string{"svc"}})
	if err != nil {
		t.Fatal(err)
	}
	epB, err := m.Connect(ctx, "tnet", network.EndpointSpec{ContainerID: idB, Name: "beta", NetnsPath: nsB, Aliases: []string{"svc", "bee"},
		Ports: []nat.PortMapping{{Proto: "tcp", ContainerPort: 8080}, {Proto: "udp", ContainerPort: 5353}}})
	if err != nil {
		t.Fatal(err)
	}
	if !un.Subnet.Contains(epA.Address.Addr()) || epA.Address.Bits() != 24 || epA.Address == epB.Address || epA.IfName != "eth0" {
		t.Fatalf("addresses: %v %v", epA, epB)
	}
	if want := network.MACFromIP(epA.Address.Addr()).String(); epA.MAC != want || !strings.HasPrefix(want, "02:42:ac:1e:c9:") {
		t.Fatalf("mac %s, want %s", epA.MAC, want)
	}
	ipA, ipB := epA.Address.Addr().String(), epB.Address.Addr().String()
	serveTCP(t, nsB, 8080, "hello from beta")
	serveUDP(t, nsB, 5353, "udp from beta")
	serveTCP(t, nsA, 8080, "hello from alpha")

	// Inside the namespace: eth0, lo up, default route via the gateway.
	out := run(t, "ip", "netns", "exec", strings.TrimPrefix(nsA, "/run/netns/"), "ip", "-4", "-o", "addr")
	if !strings.Contains(out, "eth0    inet "+epA.Address.String()) || !strings.Contains(out, "lo    inet 127.0.0.1/8") {
		t.Fatalf("addresses in netns:\n%s", out)
	}
	out = run(t, "ip", "netns", "exec", strings.TrimPrefix(nsA, "/run/netns/"), "ip", "route")
	if !strings.Contains(out, "default via 172.30.201.1 dev eth0") {
		t.Fatalf("routes in netns:\n%s", out)
	}

	t.Run("files", func(t *testing.T) {
		hosts, hostname, resolv, err := m.Files(idA, network.FilesOptions{Hostname: "aaaaaaaaaaaa", ExtraHosts: []string{"gw:host-gateway", "db:192.0.2.77"}})
		if err != nil {
			t.Fatal(err)
		}
		if h := string(hosts); !strings.Contains(h, ipA+"\taaaaaaaaaaaa\n") || !strings.Contains(h, "172.30.200.1\tgw\n") || !strings.Contains(h, "192.0.2.77\tdb\n") {
			t.Fatalf("hosts:\n%s", h)
		}
		if string(hostname) != "aaaaaaaaaaaa\n" || !strings.Contains(string(resolv), "nameserver 127.0.0.11\n") {
			t.Fatalf("hostname %q resolv:\n%s", hostname, resolv)
		}
		if _, _, _, err := m.Files(idA, network.FilesOptions{ExtraHosts: []string{"bad"}}); !errdefs.IsInvalidArgument(err) {
			t.Fatalf("bad add-host: %v", err)
		}
	})
	t.Run("by IP", func(t *testing.T) {
		if got, err := readTCP(nsA, ipB+":8080"); err != nil || got != "hello from beta" {
			t.Fatalf("a→b: %q %v", got, err)
		}
		if got, err := readTCP(nsB, ipA+":8080"); err != nil || got != "hello from alpha" {
			t.Fatalf("b→a: %q %v", got, err)
		}
	})
	t.Run("DNS", func(t *testing.T) {
		if got := aRecords(query(t, nsA, "beta", mdns.TypeA, "udp")); len(got) != 1 || got[0] != ipB {
			t.Fatalf("beta: %v", got)
		}
		if got := aRecords(query(t, nsA, "BEE.", mdns.TypeA, "tcp")); len(got) != 1 || got[0] != ipB {
			t.Fatalf("alias over tcp: %v", got)
		}
		if got := aRecords(query(t, nsB, idA[:12], mdns.TypeA, "udp")); len(got) != 1 || got[0] != ipA {
			t.Fatalf("short id: %v", got)
		}
		first := aRecords(query(t, nsA, "svc", mdns.TypeA, "udp"))
		second := aRecords(query(t, nsA, "svc", mdns.TypeA, "udp"))
		if len(first) != 2 || len(second) != 2 || first[0] == second[0] {
			t.Fatalf("round robin: %v then %v", first, second)
		}
		if r := query(t, nsA, "beta", mdns.TypeAAAA, "udp"); r.Rcode != mdns.RcodeSuccess || len(r.Answer) != 0 {
			t.Fatalf("AAAA of a container: %v", r)
		}
		if got := aRecords(query(t, nsA, "upstream.example", mdns.TypeA, "udp")); len(got) != 1 || got[0] != "198.51.100.7" {
			t.Fatalf("forwarded: %v", got)
		}
		b4 := epB.Address.Addr().As4()
		ptr := query(t, nsA, fmt.Sprintf("%d.%d.%d.%d.in-addr.arpa", b4[3], b4[2], b4[1], b4[0]), mdns.TypePTR, "udp")
		if len(ptr.Answer) != 1 || ptr.Answer[0].(*mdns.PTR).Ptr != "beta." {
			t.Fatalf("PTR: %v", ptr.Answer)
		}
		// By name, as a program in the container would: resolve then dial.
		if got, err := readTCP(nsA, aRecords(query(t, nsA, "beta", mdns.TypeA, "udp"))[0]+":8080"); err != nil || got != "hello from beta" {
			t.Fatalf("a→beta: %q %v", got, err)
		}
		// Port 53 stays free for the container's own programs.
		if err := dns.InNetns(nsB, func() error {
			u, err := net.ListenPacket("udp4", "0.0.0.0:53")
			if err != nil {
				return err
			}
			defer u.Close()
			l, err := net.Listen("tcp4", "0.0.0.0:53")
			if err != nil {
				return err
			}
			return l.Close()
		}); err != nil {
			t.Fatalf("container cannot bind port 53: %v", err)
		}
		// And with busybox's own resolver.
		if _, err := os.Stat(testutil.BusyboxPath); err == nil {
			out := run(t, "ip", "netns", "exec", strings.TrimPrefix(nsA, "/run/netns/"), testutil.BusyboxPath, "nslookup", "beta", dns.Address)
			if !strings.Contains(out, ipB) {
				t.Fatalf("busybox nslookup:\n%s", out)
			}
		}
	})
	t.Run("published ports", func(t *testing.T) {
		tcpPort, udpPort := epB.Ports[0].HostPort, epB.Ports[1].HostPort
		if tcpPort == 0 || udpPort == 0 {
			t.Fatalf("no host ports picked: %v", epB.Ports)
		}
		if got, err := readTCP("", fmt.Sprintf("127.0.0.1:%d", tcpPort)); err != nil || got != "hello from beta" {
			t.Fatalf("via 127.0.0.1: %q %v", got, err)
		}
		host := hostAddress(t)
		if got, err := readTCP("", fmt.Sprintf("%s:%d", host, tcpPort)); err != nil || got != "hello from beta" {
			t.Fatalf("via %s: %q %v", host, got, err)
		}
		if got, err := readUDP(fmt.Sprintf("127.0.0.1:%d", udpPort)); err != nil || got != "udp from beta" {
			t.Fatalf("udp via 127.0.0.1: %q %v", got, err)
		}
		// Hairpin: a container reaches another through the host's address
		// and through its gateway address.
		for _, dst := range []string{host, un.Gateway.String()} {
			if got, err := readTCP(nsA, fmt.Sprintf("%s:%d", dst, tcpPort)); err != nil || got != "hello from beta" {
				t.Fatalf("hairpin via %s: %q %v", dst, got, err)
			}
		}
		// The port is held: another process cannot take it.
		if l, err := net.Listen("tcp4", fmt.Sprintf("0.0.0.0:%d", tcpPort)); err == nil {
			l.Close()
			t.Fatal("published port not reserved")
		}
	})
	outside(t)
	t.Run("other network", func(t *testing.T) {
		// A container of another (non-internal) network: beta's published
		// port through the host's address works, beta's own address does not.
		_, err := m.CreateNetwork(ctx, network.NetworkSpec{Name: "tother", Subnet: "172.30.203.0/24", BridgeName: e.otherBr})
		if err != nil {
			t.Fatal(err)
		}
		nsE := newNetns(t, "e")
		if _, err := m.Connect(ctx, "tother", network.EndpointSpec{ContainerID: "eeee", Name: "epsilon", NetnsPath: nsE}); err != nil {
			t.Fatal(err)
		}
		if got, err := readTCP(nsE, fmt.Sprintf("%s:%d", hostAddress(t), epB.Ports[0].HostPort)); err != nil || got != "hello from beta" {
			t.Fatalf("published port from another network: %q %v", got, err)
		}
		if got, err := readTCPQuick(nsE, ipB+":8080"); err == nil {
			t.Fatalf("reached beta directly from another network: %q", got)
		}
		if err := m.DisconnectAll(ctx, "eeee"); err != nil {
			t.Fatal(err)
		}
		if err := m.RemoveNetwork(ctx, "tother"); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("outbound NAT", func(t *testing.T) {
		// The outside sees the host's address, not the container's.
		if got, err := readTCP(nsA, "172.30.250.2:9000"); err != nil || got != "172.30.250.1" {
			t.Fatalf("outbound from alpha seen as %q (%v), want 172.30.250.1", got, err)
		}
	})
	t.Run("internal", func(t *testing.T) {
		in, err := m.CreateNetwork(ctx, network.NetworkSpec{Name: "tint", Subnet: "172.30.202.0/24", BridgeName: e.intBr, Internal: true})
		if err != nil {
			t.Fatal(err)
		}
		ep, err := m.Connect(ctx, "tint", network.EndpointSpec{ContainerID: idC, Name: "gamma", NetnsPath: nsC})
		if err != nil {
			t.Fatal(err)
		}
		if ep.Gateway.IsValid() {
			t.Fatalf("internal network gave a default route via %s", ep.Gateway)
		}
		// No way out of an internal network, even with a route.
		run(t, "ip", "netns", "exec", strings.TrimPrefix(nsC, "/run/netns/"), "ip", "route", "add", "172.30.250.0/30", "via", in.Gateway.String())
		if got, err := readTCPQuick(nsC, "172.30.250.2:9000"); err == nil {
			t.Fatalf("internal container reached the outside, seen as %q", got)
		}
		// No traffic between networks (alpha routes via its gateway).
		serveTCP(t, nsC, 8080, "hello from gamma")
		if got, err := readTCPQuick(nsA, ep.Address.Addr().String()+":8080"); err == nil {
			t.Fatalf("alpha reached gamma on another network: %q", got)
		}
		out := run(t, "ip", "netns", "exec", strings.TrimPrefix(nsC, "/run/netns/"), "ip", "route")
		if strings.Contains(out, "default") {
			t.Fatalf("default route on internal network:\n%s", out)
		}
		rules := run(t, "nft", "list", "table", "ip", e.table)
		if strings.Contains(rules, "ip saddr 172.30.202.0/24 oifname != \""+e.intBr+"\" masquerade") ||
			!strings.Contains(rules, "ip saddr 172.30.201.0/24 oifname != \""+e.userBr+"\" masquerade") ||
			!strings.Contains(rules, "iifname \""+e.intBr+"\" oifname != \""+e.intBr+"\" drop") {
			t.Fatalf("rules:\n%s", rules)
		}
		// Names of other networks are not visible.
		if r := query(t, nsC, "beta", mdns.TypeA, "udp"); len(aRecords(r)) != 0 && aRecords(r)[0] == ipB {
			t.Fatalf("beta visible from another network: %v", r)
		}
		// A second network: eth1, no second default route, names of both.
		ep2, err := m.Connect(ctx, "tint", network.EndpointSpec{ContainerID: idA, Name: "alpha", NetnsPath: nsA})
		if err != nil {
			t.Fatal(err)
		}
		if ep2.IfName != "eth1" || ep2.Gateway.IsValid() {
			t.Fatalf("second endpoint: %+v", ep2)
		}
		if got := aRecords(query(t, nsA, "gamma", mdns.TypeA, "udp")); len(got) != 1 || got[0] != ep.Address.Addr().String() {
			t.Fatalf("gamma from alpha: %v", got)
		}
		if err := m.RemoveNetwork(ctx, in.ID[:8]); !errdefs.IsConflict(err) {
			t.Fatalf("remove with endpoints: %v", err)
		}
		if err := m.Disconnect(ctx, "tint", idA); err != nil {
			t.Fatal(err)
		}
		if err := m.Disconnect(ctx, "tint", idC); err != nil {
			t.Fatal(err)
		}
		if err := m.RemoveNetwork(ctx, "tint"); err != nil {
			t.Fatal(err)
		}
		if err := m.RemoveNetwork(ctx, "bridge"); !errdefs.IsFailedPrecondition(err) {
			t.Fatalf("remove bridge: %v", err)
		}
		if _, err := netlink.LinkByName(e.intBr); err == nil {
			t.Fatal("bridge of removed network left")
		}
		// alpha still answers DNS on tnet after leaving tint.
		if got := aRecords(query(t, nsA, "beta", mdns.TypeA, "udp")); len(got) != 1 {
			t.Fatalf("DNS after disconnect from other network: %v", got)
		}
	})
	t.Run("restart", func(t *testing.T) {
		// Daemon restart: close (rules and veths stay), re-open, restore
		// with a and b alive; c's leftover veth (simulated) must go.
		stale := network.HostVethName(idC, un.ID)
		run(t, "ip", "link", "add", stale, "type", "veth", "peer", "name", "btstale"+fmt.Sprint(os.Getpid()%1000))
		run(t, "ip", "link", "set", stale, "master", e.userBr)
		// Same shape of name but not on our bridges: must survive.
		foreign := network.VethPrefix + "0123456789a"
		run(t, "ip", "link", "add", foreign, "type", "veth", "peer", "name", "btforeign"+fmt.Sprint(os.Getpid()%1000))
		t.Cleanup(func() { exec.Command("ip", "link", "del", foreign).Run() })
		if err := m.Close(); err != nil {
			t.Fatal(err)
		}
		m2, err := network.Open(ctx, e.cfg)
		if err != nil {
			t.Fatal(err)
		}
		e.m = m2
		if err := m2.Restore(ctx, map[string]string{idA: nsA, idB: nsB}); err != nil {
			t.Fatal(err)
		}
		if _, err := netlink.LinkByName(stale); err == nil {
			t.Fatal("stale veth survived restore")
		}
		if _, err := netlink.LinkByName(foreign); err != nil {
			t.Fatal("restore removed a veth that is not on berth's bridges")
		}
		eps := m2.Endpoints(idB)
		if len(eps) != 1 || eps[0].Address != epB.Address || eps[0].Ports[0].HostPort != epB.Ports[0].HostPort {
			t.Fatalf("restored endpoints: %+v", eps)
		}
		// No duplicate address for a newcomer.
		// This one as the engine makes them: a bind-mounted netns file.
		nsD := fmt.Sprintf("%s/netns-d", t.TempDir())
		if err := network.CreateNetns(nsD); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if err := network.DeleteNetns(nsD); err != nil {
				t.Error(err)
			}
		})
		epD, err := m2.Connect(ctx, "tnet", network.EndpointSpec{ContainerID: "dddd", Name: "delta", NetnsPath: nsD})
		if err != nil {
			t.Fatal(err)
		}
		if a := epD.Address.Addr().String(); a == ipA || a == ipB {
			t.Fatalf("duplicate address %s after restart", a)
		}
		if got, err := readTCP("", fmt.Sprintf("127.0.0.1:%d", epB.Ports[0].HostPort)); err != nil || got != "hello from beta" {
			t.Fatalf("published port after restart: %q %v", got, err)
		}
		if got := aRecords(query(t, nsD, "beta", mdns.TypeA, "udp")); len(got) != 1 || got[0] != ipB {
			t.Fatalf("DNS after restart: %v", got)
		}
		// Container removal takes its rules and veths.
		if err := m2.DisconnectAll(ctx, idB); err != nil {
			t.Fatal(err)
		}
		if rules := run(t, "nft", "list", "table", "ip", e.table); strings.Contains(rules, "dnat to") {
			t.Fatalf("DNAT left after removal:\n%s", rules)
		}
		if _, err := netlink.LinkByName(epB.HostVeth); err == nil {
			t.Fatal("veth left after removal")
		}
		if _, err := readTCP("", fmt.Sprintf("127.0.0.1:%d", epB.Ports[0].HostPort)); err == nil {
			t.Fatal("port still answered after removal")
		}
	})
}
