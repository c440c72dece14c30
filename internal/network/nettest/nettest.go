// Package nettest gives test daemons their own bridge and nftables table,
// so that daemons of concurrent tests (and of other checkouts on the same
// host) never share or rebuild each other's, and removes and checks what
// they leave.
package nettest

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/nftables"
	"github.com/vishvananda/netlink"

	"github.com/berth-dev/berth/internal/network"
)

var seq atomic.Int32

// Names of one test daemon's network objects.
type Names struct {
	Bridge string // the default bridge's interface
	Table  string // berth's nftables table
}

// New returns fresh names: "bt" + the process ID and a counter in base 36
// (interface names have at most 15 bytes).
func New() Names {
	suffix := strconv.FormatInt(int64(os.Getpid()), 36) + "x" + strconv.FormatInt(int64(seq.Add(1)), 36)
	return Names{Bridge: "bt" + suffix, Table: "berth_t" + suffix}
}

// Config are the daemon.json keys for them; ip-forward stays as the host
// has it (tests only talk to loopback and their own containers).
func (n Names) Config() map[string]any {
	return map[string]any{"bridge": n.Bridge, "nft-table": n.Table, "ip-forward": false}
}

// ConfigJSON is Config as a daemon.json body.
func (n Names) ConfigJSON() string {
	return fmt.Sprintf(`{"bridge": %q, "nft-table": %q, "ip-forward": false}`, n.Bridge, n.Table)
}

// Cleanup is for after the daemon stopped with every container removed:
// it reports veths still on the daemon's bridges (endpoints a removal
// missed) as errors, removes the bridges and the table, and checks they
// are gone.
func (n Names) Cleanup(t testing.TB, root string) {
	t.Helper()
	state := filepath.Join(root, "network")
	bridges := bridgesOf(state)
	WaitVeths(root, 5*time.Second) // exited containers' veths go with their namespaces
	veths, err := network.Purge(state, n.Table)
	if err != nil {
		t.Errorf("purge networks: %v", err)
	}
	if len(veths) > 0 {
		t.Errorf("veths left on the daemon's bridges: %v", veths)
	}
	for _, br := range bridges {
		if _, err := netlink.LinkByName(br); err == nil {
			t.Errorf("bridge %s left behind", br)
		}
	}
	if c, err := nftables.New(); err == nil {
		if _, err := c.ListTableOfFamily(n.Table, nftables.TableFamilyIPv4); err == nil {
			t.Errorf("nftables table %s left behind", n.Table)
		}
	}
}

// bridgesOf reads the bridge names from the manager's state file.
func bridgesOf(state string) []string {
	b, err := os.ReadFile(filepath.Join(state, "networks.json"))
	if err != nil {
		return nil
	}
	var out []string
	for _, part := range strings.Split(string(b), `"bridge": "`)[1:] {
		if i := strings.IndexByte(part, '"'); i > 0 {
			out = append(out, part[:i])
		}
	}
	return out
}

// Veths lists the host-side veths on the bridges of the daemon whose root
// is root: after every container is gone there must be none.
func Veths(root string) []string {
	masters := map[int]bool{}
	for _, br := range bridgesOf(filepath.Join(root, "network")) {
		if l, err := netlink.LinkByName(br); err == nil {
			masters[l.Attrs().Index] = true
		}
	}
	links, _ := network.Links()
	var out []string
	for _, l := range links {
		if l.Type() == "veth" && masters[l.Attrs().MasterIndex] {
			out = append(out, l.Attrs().Name)
		}
	}
	return out
}

// WaitVeths waits up to timeout for the veths on the daemon's bridges to
// be gone (the kernel deletes an exited container's with its namespace,
// in the background) and returns those still there.
func WaitVeths(root string, timeout time.Duration) []string {
	deadline := time.Now().Add(timeout)
	for {
		v := Veths(root)
		if len(v) == 0 || time.Now().After(deadline) {
			return v
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// FreeSubnet returns a /24 of 10.213.0.0/16 no host route overlaps,
// starting at a place that depends on the process, so that concurrent test
// processes rarely try the same one.
func FreeSubnet(t testing.TB, skip ...netip.Prefix) netip.Prefix {
	t.Helper()
	routes, err := network.HostRoutes(nil)
	if err != nil {
		t.Fatal(err)
	}
	routes = append(routes, skip...)
	start := os.Getpid() + int(seq.Add(1))*7
	for i := 0; i < 256; i++ {
		p := netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 213, byte((start + i) % 256), 0}), 24)
		free := true
		for _, r := range routes {
			if r.Overlaps(p) {
				free = false
				break
			}
		}
		if free {
			return p
		}
	}
	t.Skip("no free /24 in 10.213.0.0/16")
	return netip.Prefix{}
}

// HostAddress is the host's own IPv4 address on its first interface that
// is up and not loopback nor one of berth's or docker's bridges and veths:
// published ports must answer there too.
func HostAddress(t testing.TB) netip.Addr {
	t.Helper()
	links, err := network.Links()
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range links {
		a := l.Attrs()
		if a.Flags&net.FlagUp == 0 || a.Flags&net.FlagLoopback != 0 || l.Type() == "bridge" || l.Type() == "veth" {
			continue
		}
		addrs, _ := netlink.AddrList(l, netlink.FAMILY_V4)
		for _, ad := range addrs {
			if ip, ok := netip.AddrFromSlice(ad.IP.To4()); ok && ip.IsGlobalUnicast() {
				return ip
			}
		}
	}
	t.Skip("no host address outside loopback")
	return netip.Addr{}
}
