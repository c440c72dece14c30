package engine_test

import (
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/berth-dev/berth/internal/network/nettest"
)

// Network tests: real bridges, veths, nftables DNAT and the embedded DNS
// of a daemon with its own bridge and table, driven through both the
// docker CLI and berth's. Traffic goes only to loopback, the host's own
// address (from the host itself) and the test's containers.

// netOnly: the network tests look at berth's bridges and state and expect
// docker 25+'s messages; the private dockerd is 20.10 with iptables off.
const netOnly = "checks berth's bridges and docker 25+'s network messages"

// refused runs a command that must fail with exit code wantCode and want
// in its stderr (the test goes on, unlike cli.refuses).
func refused(t *testing.T, c cli, wantCode int, want string, args ...string) {
	t.Helper()
	out, errOut, code := c.run(args...)
	if code != wantCode || !strings.Contains(errOut, want) {
		t.Errorf("%s %s: exit %d (want %d), stderr %q (want %q), stdout %q", c.name, strings.Join(args, " "), code, wantCode, errOut, want, out)
	}
}

// server runs a busybox TCP server answering every connection with reply.
func serverCmd(port int, reply string) []string {
	return []string{"sh", "-c", fmt.Sprintf("while true; do echo %s | nc -l -p %d; done", reply, port)}
}

// dial reads what a TCP server at addr says, retrying while it is not
// there yet (the busybox loop restarts nc between connections).
func dial(t *testing.T, addr string) string {
	t.Helper()
	var last error
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		conn, err := net.DialTimeout("tcp", addr, 2*time.Second)
		if err != nil {
			last = err
			continue
		}
		_ = conn.SetDeadline(time.Now().Add(3 * time.Second))
		b, err := io.ReadAll(conn)
		conn.Close()
		if err == nil && len(b) > 0 {
			return string(b)
		}
		last = fmt.Errorf("read: %v (%q)", err, b)
	}
	t.Fatalf("dial %s: %v", addr, last)
	return ""
}

// freePort is a TCP port nothing listens on right now.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp4", "0.0.0.0:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// noVeths checks that no veth is left on the daemon's bridges. The kernel
// deletes an exited container's veths with its namespace, in the
// background: they get a few seconds to go.
func noVeths(t *testing.T, d *daemon, when string) {
	t.Helper()
	v := nettest.WaitVeths(d.root, 10*time.Second)
	if len(v) > 0 {
		t.Errorf("%s: veths left on the daemon's bridges: %v", when, v)
	}
}

// TestNetworkUserDefined: containers on a user network find each other by
// name and alias through the embedded DNS and talk TCP; connect and
// disconnect change a running container's interfaces; a network in use
// cannot be removed.
func TestNetworkUserDefined(t *testing.T) {
	berthOnly(t, netOnly)
	d := startDaemon(t)
	// berth's network verbs print what docker's print.
	cs := d.clis()
	cs[0].must(t, d, "network", "create", "--label", "a=b", "tables")
	for _, args := range [][]string{{"network", "ls"}, {"network", "ls", "-q"}, {"network", "ls", "--no-trunc"},
		{"network", "ls", "--filter", "label=a=b", "--format", "{{.Name}} {{.Labels}} {{.Internal}}"},
		{"network", "inspect", "-f", "{{.Name}} {{.Driver}} {{.Scope}} {{.Internal}} {{.IPAM.Driver}}", "tables", "bridge"}} {
		if k, b := cs[0].must(t, d, args...), cs[1].must(t, d, args...); k != b {
			t.Errorf("%v differs:\ndocker: %q\nberth:  %q", args, k, b)
		}
	}
	for _, c := range cs {
		out, errOut, code := c.run("network", "rm", "nope")
		if code != 1 || out != "" || errOut != "Error response from daemon: network nope not found\nexit status 1\n" {
			t.Errorf("%s network rm nope: exit %d, %q, %q", c.name, code, out, errOut)
		}
	}
	cs[1].must(t, d, "network", "rm", "tables")
	for _, c := range cs {
		t.Run(c.name, func(t *testing.T) {
			subnet := nettest.FreeSubnet(t)
			net1 := "net1-" + c.name
			c.must(t, d, "network", "create", "--subnet", subnet.String(), "--label", "test=net", net1)
			ls := c.must(t, d, "network", "ls", "--format", "{{.Name}} {{.Driver}} {{.Scope}}")
			for _, want := range []string{"bridge bridge local", "host host local", "none null local", net1 + " bridge local"} {
				if !strings.Contains(ls, want+"\n") {
					t.Errorf("network ls lacks %q:\n%s", want, ls)
				}
			}
			if out := c.must(t, d, "network", "ls"); !strings.HasPrefix(out, "NETWORK ID     NAME") {
				t.Errorf("network ls header: %q", out)
			}
			c.must(t, d, append([]string{"run", "-d", "--name", "srv-" + c.name, "--network", net1, "--network-alias", "web", testImage}, serverCmd(8080, "hello")...)...)
			ip := strings.TrimSpace(c.must(t, d, "inspect", "-f", "{{(index .NetworkSettings.Networks \""+net1+"\").IPAddress}}", "srv-"+c.name))
			if a, err := netip.ParseAddr(ip); err != nil || !subnet.Contains(a) {
				t.Fatalf("srv address %q not in %s", ip, subnet)
			}
			out := c.must(t, d, "run", "--rm", "--network", net1, testImage, "sh", "-c",
				"nslookup srv-"+c.name+"; nslookup web; echo ---; nc srv-"+c.name+" 8080; cat /etc/resolv.conf")
			if strings.Count(out, "Address: "+ip) != 2 || !strings.Contains(out, "---\nhello\n") || !strings.Contains(out, "nameserver 127.0.0.11") {
				t.Errorf("name resolution and TCP between containers:\n%s", out)
			}
			insp := c.must(t, d, "network", "inspect", "-f", "{{range .Containers}}{{.Name}} {{.IPv4Address}}{{end}} {{.Labels}} {{(index .IPAM.Config 0).Subnet}}", net1)
			if want := fmt.Sprintf("srv-%s %s/24 map[test:net] %s\n", c.name, ip, subnet); insp != want {
				t.Errorf("network inspect: %q, want %q", insp, want)
			}
			if out := c.must(t, d, "ps", "--filter", "network="+net1, "--format", "{{.Names}} {{.Networks}}"); out != "srv-"+c.name+" "+net1+"\n" {
				t.Errorf("ps --filter network: %q", out)
			}
			// A container on the default bridge joins the user network while
			// it runs, reaches srv by name, and leaves again.
			c.must(t, d, "run", "-d", "--name", "joiner-"+c.name, testImage, "sleep", "300")
			fixed := subnet.Addr().As4()
			fixed[3] = 200
			jip := netip.AddrFrom4(fixed).String()
			c.must(t, d, "network", "connect", "--alias", "j", "--ip", jip, net1, "joiner-"+c.name)
			out = c.must(t, d, "exec", "joiner-"+c.name, "sh", "-c", "ip -o -4 addr show eth1; nc srv-"+c.name+" 8080")
			if !strings.Contains(out, " "+jip+"/24") || !strings.HasSuffix(out, "hello\n") {
				t.Errorf("after connect:\n%s", out)
			}
			refused(t, c, 1, "endpoint with name joiner-"+c.name+" already exists in network "+net1, "network", "connect", net1, "joiner-"+c.name)
			c.must(t, d, "network", "disconnect", net1, "joiner-"+c.name)
			if out := c.must(t, d, "exec", "joiner-"+c.name, "ip", "-o", "link"); strings.Contains(out, "eth1") {
				t.Errorf("eth1 still there after disconnect:\n%s", out)
			}
			refused(t, c, 1, "error while removing network: network "+net1+" has active endpoints", "network", "rm", net1)
			// A renamed container answers to its new name.
			c.must(t, d, "rename", "srv-"+c.name, "renamed-"+c.name)
			if out := c.must(t, d, "run", "--rm", "--network", net1, testImage, "nslookup", "renamed-"+c.name); !strings.Contains(out, "Address: "+ip) {
				t.Errorf("nslookup after rename:\n%s", out)
			}
			c.must(t, d, "rm", "-f", "renamed-"+c.name, "joiner-"+c.name)
			if out := c.must(t, d, "network", "rm", net1); out != net1+"\n" {
				t.Errorf("network rm: %q", out)
			}
			evs := c.must(t, d, "events", "--since", "0", "--until", fmt.Sprint(time.Now().Unix()+1), "--filter", "network="+net1,
				"--format", "{{.Action}} {{.Actor.Attributes.name}}")
			for _, want := range []string{"create " + net1, "connect " + net1, "disconnect " + net1, "destroy " + net1} {
				if !strings.Contains(evs, want+"\n") {
					t.Errorf("network events lack %q:\n%s", want, evs)
				}
			}
			noVeths(t, d, "after rm")
		})
	}
}

// TestNetworkPublishedPorts: -p and -P answer from the host on 127.0.0.1
// and on the host's own address; port, ps and inspect show the mappings;
// a port in use is refused with docker's error and leaves nothing behind.
func TestNetworkPublishedPorts(t *testing.T) {
	berthOnly(t, netOnly)
	d := startDaemon(t)
	host := nettest.HostAddress(t)
	for _, c := range d.clis() {
		t.Run(c.name, func(t *testing.T) {
			port := freePort(t)
			name := "pub-" + c.name
			c.must(t, d, append([]string{"run", "-d", "--name", name, "-p", fmt.Sprintf("%d:80", port), testImage}, serverCmd(80, "published")...)...)
			for _, addr := range []string{fmt.Sprintf("127.0.0.1:%d", port), fmt.Sprintf("%s:%d", host, port)} {
				if got := dial(t, addr); got != "published\n" {
					t.Errorf("%s answered %q", addr, got)
				}
			}
			// From another container, through the host's address (hairpin NAT).
			if out := c.must(t, d, "run", "--rm", testImage, "sh", "-c", fmt.Sprintf("for i in 1 2 3 4 5; do nc %s %d && break; sleep 0.2; done", host, port)); out != "published\n" {
				t.Errorf("published port from a container through %s: %q", host, out)
			}
			if out := c.must(t, d, "port", name); out != fmt.Sprintf("80/tcp -> 0.0.0.0:%d\n", port) {
				t.Errorf("port: %q", out)
			}
			if out := c.must(t, d, "port", name, "80"); out != fmt.Sprintf("0.0.0.0:%d\n", port) {
				t.Errorf("port 80: %q", out)
			}
			if out := c.must(t, d, "ps", "--filter", "name="+name, "--format", "{{.Ports}}"); out != fmt.Sprintf("0.0.0.0:%d->80/tcp\n", port) {
				t.Errorf("ps PORTS: %q", out)
			}
			// The same host port again: docker's error, no container left
			// running, no veth.
			refused(t, c, 125, fmt.Sprintf("Bind for 0.0.0.0:%d failed: port is already allocated", port),
				"run", "-d", "--name", name+"-2", "-p", fmt.Sprintf("%d:80", port), testImage, "sleep", "300")
			if out := c.must(t, d, "inspect", "-f", "{{.State.Status}}", name+"-2"); out != "created\n" {
				t.Errorf("the refused container: %q", out)
			}
			c.must(t, d, "rm", "-f", name, name+"-2")
			noVeths(t, d, "after a refused port")

			// A host range takes its first free port: the first is held here.
			hold, err := net.Listen("tcp4", "0.0.0.0:0")
			if err != nil {
				t.Fatal(err)
			}
			held := hold.Addr().(*net.TCPAddr).Port
			c.must(t, d, "run", "-d", "--name", name+"-r", "-p", fmt.Sprintf("%d-%d:80", held, held+1), testImage, "sleep", "300")
			hold.Close()
			if out := c.must(t, d, "port", name+"-r", "80"); out != fmt.Sprintf("0.0.0.0:%d\n", held+1) {
				t.Errorf("host port range with the first port taken: %q, want port %d", out, held+1)
			}
			c.must(t, d, "rm", "-f", name+"-r")

			// -P: the EXPOSE'd (here --expose) ports get free host ports.
			c.must(t, d, append([]string{"run", "-d", "--name", name, "--expose", "81", "-P", testImage}, serverCmd(81, "any")...)...)
			hp := strings.TrimSpace(c.must(t, d, "port", name, "81/tcp"))
			if !strings.HasPrefix(hp, "0.0.0.0:") {
				t.Fatalf("-P mapping: %q", hp)
			}
			if got := dial(t, "127.0.0.1:"+strings.TrimPrefix(hp, "0.0.0.0:")); got != "any\n" {
				t.Errorf("-P port answered %q", got)
			}
			c.must(t, d, "rm", "-f", name)
			noVeths(t, d, "after rm")
		})
	}
}

// TestNetworkModes: none has only lo, container: shares the other's
// namespace and files, host shares the host's, and the generated files
// hold --hostname, --add-host and --dns.
func TestNetworkModes(t *testing.T) {
	berthOnly(t, netOnly)
	d := startDaemon(t)
	for _, c := range d.clis() {
		t.Run(c.name, func(t *testing.T) {
			if out := c.must(t, d, "run", "--rm", "--network", "none", testImage, "sh", "-c", "ls /sys/class/net"); out != "lo\n" {
				t.Errorf("--network none interfaces: %q", out)
			}
			if out := c.must(t, d, "run", "--rm", "--mac-address", "92:d0:c6:0a:29:33", testImage, "cat", "/sys/class/net/eth0/address"); out != "92:d0:c6:0a:29:33\n" {
				t.Errorf("--mac-address: %q", out)
			}
			lone := "lone-" + c.name
			c.must(t, d, "run", "-d", "--name", lone, "--network", "none", testImage, "sleep", "300")
			if out := c.must(t, d, "network", "inspect", "-f", "{{range .Containers}}{{.Name}} {{end}}", "none"); out != lone+" \n" {
				t.Errorf("network inspect none: %q", out)
			}
			c.must(t, d, "rm", "-f", lone)
			owner := "owner-" + c.name
			c.must(t, d, "run", "-d", "--name", owner, "--hostname", "h1", "--add-host", "db:10.1.2.3", "--dns", "10.9.9.9", testImage, "sleep", "300")
			ip := strings.TrimSpace(c.must(t, d, "inspect", "-f", "{{.NetworkSettings.Networks.bridge.IPAddress}}", owner))
			if c.name == "docker" { // API 1.50: the deprecated top-level fields too
				if legacy := c.must(t, d, "inspect", "-f", "{{.NetworkSettings.IPAddress}} {{.NetworkSettings.Gateway}}", owner); !strings.HasPrefix(legacy, ip+" ") {
					t.Errorf("NetworkSettings.IPAddress: %q, want %s", legacy, ip)
				}
			}
			files := c.must(t, d, "exec", owner, "sh", "-c", "hostname; grep db /etc/hosts; grep h1 /etc/hosts; cat /etc/resolv.conf")
			if want := "h1\n10.1.2.3\tdb\n" + ip + "\th1\n"; !strings.HasPrefix(files, want) || !strings.Contains(files, "nameserver 10.9.9.9\n") {
				t.Errorf("generated files:\n%s\nwant prefix %q", files, want)
			}
			out := c.must(t, d, "run", "--rm", "--network", "container:"+owner, testImage, "sh", "-c", "ip -o -4 addr show eth0; hostname")
			if !strings.Contains(out, " "+ip+"/") || !strings.HasSuffix(out, "h1\n") {
				t.Errorf("container: mode:\n%s", out)
			}
			refused(t, c, 125, "conflicting options: hostname and the network mode", "run", "--rm", "--network", "container:"+owner, "--hostname", "x", testImage, "true")
			hostLinks, _ := os.ReadDir("/sys/class/net")
			out, errOut, code := c.run("run", "--rm", "--network", "host", "-p", "80:80", testImage, "ls", "/sys/class/net")
			if code != 0 || !strings.Contains(errOut, "WARNING: Published ports are discarded when using host network mode") {
				t.Errorf("--network host -p: exit %d, stderr %q", code, errOut)
			}
			if len(strings.Fields(out)) < len(hostLinks)-5 || !strings.Contains(out, "lo\n") {
				t.Errorf("--network host sees %q, the host has %d links", out, len(hostLinks))
			}
			c.must(t, d, "rm", "-f", owner)
			noVeths(t, d, "after rm")
		})
	}
}

// TestNetworkBadInput: docker's errors, nothing half made.
func TestNetworkBadInput(t *testing.T) {
	berthOnly(t, netOnly)
	d := startDaemon(t)
	for _, c := range d.clis() {
		t.Run(c.name, func(t *testing.T) {
			subnet := nettest.FreeSubnet(t)
			n := "bad-" + c.name
			c.must(t, d, "network", "create", "--subnet", subnet.String(), n)
			before := c.must(t, d, "network", "ls", "-q")
			refused(t, c, 1, "Pool overlaps with other one on this address space", "network", "create", "--subnet", subnet.String(), n+"-2")
			refused(t, c, 1, "network with name "+n+" already exists", "network", "create", n)
			refused(t, c, 1, "network nope-"+c.name+" not found", "network", "rm", "nope-"+c.name)
			refused(t, c, 1, "network nope-"+c.name+" not found", "network", "inspect", "nope-"+c.name)
			refused(t, c, 1, "bridge is a pre-defined network and cannot be removed", "network", "rm", "bridge")
			if after := c.must(t, d, "network", "ls", "-q"); after != before {
				t.Errorf("networks changed by refused requests:\n%s\n%s", before, after)
			}
			outside := netip.AddrFrom4([4]byte{10, 214, 0, 9}).String()
			refused(t, c, 125, "no configured subnet or ip-range contain the IP address "+outside,
				"run", "--rm", "--network", n, "--ip", outside, testImage, "true")
			refused(t, c, 125, "user specified IP address is supported on user defined networks only",
				"run", "--rm", "--ip", subnet.Addr().Next().Next().String(), testImage, "true")
			refused(t, c, 125, "network nope-"+c.name+" not found", "run", "--rm", "--network", "nope-"+c.name, testImage, "true")
			refused(t, c, 1, "No such container: nope", "network", "connect", n, "nope")
			// --ip inside the subnet works, and is then taken.
			want := subnet.Addr().Next().Next().Next().String()
			c.must(t, d, "run", "-d", "--name", "fixed-"+c.name, "--network", n, "--ip", want, testImage, "sleep", "300")
			if got := strings.TrimSpace(c.must(t, d, "inspect", "-f", "{{(index .NetworkSettings.Networks \""+n+"\").IPAddress}}", "fixed-"+c.name)); got != want {
				t.Errorf("--ip: got %s, want %s", got, want)
			}
			refused(t, c, 125, "already in use", "run", "--rm", "--network", n, "--ip", want, testImage, "true")
			c.must(t, d, "rm", "-f", "fixed-"+c.name)
			noVeths(t, d, "after refused runs")
			c.must(t, d, "network", "rm", n)
			if out := c.must(t, d, "network", "prune", "-f"); out != "" {
				t.Errorf("prune with nothing to prune: %q", out)
			}
		})
	}
}

// TestNetworkRestore: a daemon killed and started again keeps running
// containers reachable (published port, DNS), and releases their
// endpoints when they stop.
func TestNetworkRestore(t *testing.T) {
	berthOnly(t, netOnly)
	d := startDaemon(t)
	c := d.clis()[0]
	subnet := nettest.FreeSubnet(t)
	c.must(t, d, "network", "create", "--subnet", subnet.String(), "keep")
	port := freePort(t)
	c.must(t, d, append([]string{"run", "-d", "--name", "kept", "--network", "keep", "-p", fmt.Sprintf("127.0.0.1:%d:80", port), testImage}, serverCmd(80, "still")...)...)
	ip := strings.TrimSpace(c.must(t, d, "inspect", "-f", "{{.NetworkSettings.Networks.keep.IPAddress}}", "kept"))
	d.kill()
	d.start()
	if got := dial(t, fmt.Sprintf("127.0.0.1:%d", port)); got != "still\n" {
		t.Errorf("published port after a daemon restart: %q", got)
	}
	out := c.must(t, d, "run", "--rm", "--network", "keep", testImage, "sh", "-c", "nslookup kept; nc kept 80")
	if !strings.Contains(out, "Address: "+ip) || !strings.HasSuffix(out, "still\n") {
		t.Errorf("DNS and TCP after a daemon restart:\n%s", out)
	}
	// A second container gets another address (the allocation survived).
	ip2 := strings.TrimSpace(c.must(t, d, "run", "--rm", "--network", "keep", testImage, "sh", "-c", "ip -o -4 addr show eth0 | awk '{print $4}'"))
	if strings.HasPrefix(ip2, ip+"/") {
		t.Errorf("address %s handed out twice", ip)
	}
	c.must(t, d, "stop", "-t", "1", "kept")
	noVeths(t, d, "after stop")
	c.must(t, d, "rm", "kept")
	c.must(t, d, "network", "rm", "keep")
}

// TestNetworkMulti: a container on two networks (--network twice), an
// internal network without a default route, and a stopped container
// connected to a network joins it at its start.
func TestNetworkMulti(t *testing.T) {
	berthOnly(t, netOnly)
	d := startDaemon(t)
	for _, c := range d.clis() {
		t.Run(c.name, func(t *testing.T) {
			subA := nettest.FreeSubnet(t)
			subB := nettest.FreeSubnet(t, subA)
			inner, outer := "inner-"+c.name, "outer-"+c.name
			c.must(t, d, "network", "create", "--internal", "--subnet", subA.String(), inner)
			c.must(t, d, "network", "create", "--subnet", subB.String(), outer)
			if out := c.must(t, d, "network", "inspect", "-f", "{{.Internal}}", inner); out != "true\n" {
				t.Errorf("inspect Internal: %q", out)
			}
			out := c.must(t, d, "run", "--rm", "--network", outer, "--network", inner, testImage, "sh", "-c",
				"ip -o -4 addr show eth0; ip -o -4 addr show eth1; ip route | grep default")
			gwB := subB.Addr().Next().String()
			if !strings.Contains(out, "eth0    inet "+subB.Addr().String()[:len(subB.Addr().String())-1]) ||
				!strings.Contains(out, "eth1    inet "+subA.Addr().String()[:len(subA.Addr().String())-1]) ||
				!strings.Contains(out, "default via "+gwB+" dev eth0") {
				t.Errorf("two networks:\n%s", out)
			}
			if out := c.must(t, d, "run", "--rm", "--network", inner, testImage, "sh", "-c", "ip route | grep default || true"); out != "" {
				t.Errorf("internal network has a default route: %q", out)
			}
			name := "later-" + c.name
			c.must(t, d, "create", "--name", name, testImage, "sleep", "300")
			c.must(t, d, "network", "connect", outer, name)
			c.must(t, d, "start", name)
			nets := c.must(t, d, "inspect", "-f", "{{range $k, $v := .NetworkSettings.Networks}}{{$k}}={{$v.IPAddress}} {{end}}", name)
			if !strings.Contains(nets, "bridge=1") || !strings.Contains(nets, outer+"="+subB.Addr().String()[:len(subB.Addr().String())-1]) {
				t.Errorf("connected while stopped, then started: %q", nets)
			}
			c.must(t, d, "rm", "-f", name)
			c.must(t, d, "network", "rm", inner, outer)
			noVeths(t, d, "after rm")
		})
	}
}
