// Package network is berth's container networking: Linux bridges, veth pairs
// moved into container network namespaces, and the files (/etc/hosts,
// /etc/hostname, /etc/resolv.conf) a container sees. Address allocation is in
// ./ipam, port publishing and NAT in ./nat, the embedded DNS server in ./dns.
package network

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/internal/errdefs"
)

// DefaultBridge is the name of the default network's bridge.
const DefaultBridge = "berth0"

// VethPrefix starts the name of every host-side veth berth creates.
const VethPrefix = "bv"

// BridgeConfig describes one network's bridge.
type BridgeConfig struct {
	Name    string       // interface name, at most 15 bytes
	Gateway netip.Prefix // gateway address with the subnet's length, e.g. 172.30.0.1/24
	MTU     int          // 0: kernel default (1500)
}

// EnsureBridge creates the bridge if missing (or adopts an existing one),
// gives it the gateway address, brings it up and sets route_localnet and
// forwarding on it (see below). It is idempotent: the daemon
// calls it for every network on start.
func EnsureBridge(cfg BridgeConfig) error {
	if err := validIfName(cfg.Name); err != nil {
		return err
	}
	link, err := netlink.LinkByName(cfg.Name)
	if err != nil {
		var nf netlink.LinkNotFoundError
		if !errors.As(err, &nf) {
			return fmt.Errorf("bridge %s: %w", cfg.Name, err)
		}
		br := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: cfg.Name, MTU: cfg.MTU, TxQLen: -1}}
		if err := netlink.LinkAdd(br); err != nil && !errors.Is(err, unix.EEXIST) {
			return fmt.Errorf("create bridge %s: %w", cfg.Name, err)
		}
		if link, err = netlink.LinkByName(cfg.Name); err != nil {
			return fmt.Errorf("bridge %s: %w", cfg.Name, err)
		}
	} else if link.Type() != "bridge" {
		return fmt.Errorf("interface %s exists and is a %s, not a bridge: %w", cfg.Name, link.Type(), errdefs.ErrConflict)
	}
	if cfg.Gateway.IsValid() {
		addrs, err := netlink.AddrList(link, netlink.FAMILY_V4)
		if err != nil {
			return fmt.Errorf("bridge %s: %w", cfg.Name, err)
		}
		want := prefixToIPNet(cfg.Gateway)
		found := false
		for _, a := range addrs {
			if a.IPNet.String() == want.String() {
				found = true
				continue
			}
			// A stale gateway from an earlier configuration.
			_ = netlink.AddrDel(link, &a)
		}
		if !found {
			if err := netlink.AddrAdd(link, &netlink.Addr{IPNet: want}); err != nil && !errors.Is(err, unix.EEXIST) {
				return fmt.Errorf("bridge %s: add %s: %w", cfg.Name, cfg.Gateway, err)
			}
		}
	}
	// route_localnet: DNAT of 127.0.0.1 to a container. forwarding on the
	// bridge only: hairpin (container → host address:published port → other
	// container) and routed replies work even while the host-wide
	// ip_forward is off; outbound NAT to other hosts needs ip_forward=1.
	for _, k := range []string{"route_localnet", "forwarding"} {
		if err := writeSysctl("net/ipv4/conf/"+cfg.Name+"/"+k, "1"); err != nil {
			return fmt.Errorf("bridge %s: %w", cfg.Name, err)
		}
	}
	if err := netlink.LinkSetUp(link); err != nil {
		return fmt.Errorf("bridge %s up: %w", cfg.Name, err)
	}
	return nil
}

// DeleteBridge removes the bridge (and so its address and routes); a missing
// bridge is not an error.
func DeleteBridge(name string) error {
	link, err := netlink.LinkByName(name)
	if err != nil {
		var nf netlink.LinkNotFoundError
		if errors.As(err, &nf) {
			return nil
		}
		return fmt.Errorf("bridge %s: %w", name, err)
	}
	if link.Type() != "bridge" {
		return fmt.Errorf("interface %s is not a bridge: %w", name, errdefs.ErrConflict)
	}
	if err := netlink.LinkDel(link); err != nil {
		return fmt.Errorf("delete bridge %s: %w", name, err)
	}
	return nil
}

// AttachOptions configures a container's interface on one network.
type AttachOptions struct {
	Address netip.Prefix     // container address with the subnet length, e.g. 172.30.0.2/24
	Gateway netip.Addr       // default route via it; zero: no default route
	MAC     net.HardwareAddr // nil: derived from Address as docker does (02:42:a.b.c.d)
	IfName  string           // name inside the container; default "eth0"
	MTU     int
}

// Endpoint is what Attach made.
type Endpoint struct {
	HostVeth string
	IfName   string
	MAC      net.HardwareAddr
	Address  netip.Prefix
}

// HostVethName is the deterministic host-side veth name for a container on
// a network, so a restarted daemon finds (and can remove) it.
func HostVethName(containerID, network string) string {
	h := sha256.Sum256([]byte(containerID + "\x00" + network))
	return VethPrefix + hex.EncodeToString(h[:])[:11]
}

// MACFromIP is docker's generated MAC address: 02:42 and the IPv4 bytes.
func MACFromIP(ip netip.Addr) net.HardwareAddr {
	b := ip.As4()
	return net.HardwareAddr{0x02, 0x42, b[0], b[1], b[2], b[3]}
}

// Attach connects the network namespace at netnsPath (/proc/PID/ns/net or a
// bind-mounted netns file) to the bridge: a veth pair whose host end joins
// the bridge and whose other end becomes opts.IfName inside the namespace,
// addressed, up, with lo up and the default route via the gateway. On error
// nothing is left behind.
func Attach(ctx context.Context, bridge, network, netnsPath, containerID string, opts AttachOptions) (Endpoint, error) {
	if !opts.Address.IsValid() || !opts.Address.Addr().Is4() {
		return Endpoint{}, fmt.Errorf("attach %.12s: no IPv4 address: %w", containerID, errdefs.ErrInvalidArgument)
	}
	if opts.IfName == "" {
		opts.IfName = "eth0"
	}
	if opts.MAC == nil {
		opts.MAC = MACFromIP(opts.Address.Addr())
	}
	br, err := netlink.LinkByName(bridge)
	if err != nil {
		return Endpoint{}, fmt.Errorf("attach %.12s: bridge %s: %w", containerID, bridge, errdefs.ErrNotFound)
	}
	ns, err := netns.GetFromPath(netnsPath)
	if err != nil {
		return Endpoint{}, fmt.Errorf("attach %.12s: open netns %s: %w", containerID, netnsPath, err)
	}
	defer ns.Close()
	nh, err := netlink.NewHandleAt(ns)
	if err != nil {
		return Endpoint{}, fmt.Errorf("attach %.12s: netlink in %s: %w", containerID, netnsPath, err)
	}
	defer nh.Close()
	if _, err := nh.LinkByName(opts.IfName); err == nil {
		return Endpoint{}, fmt.Errorf("attach %.12s: interface %s already exists in the container: %w", containerID, opts.IfName, errdefs.ErrConflict)
	}

	host := HostVethName(containerID, network)
	// A leftover from a crash: same deterministic name.
	if old, err := netlink.LinkByName(host); err == nil {
		_ = netlink.LinkDel(old)
	}
	mtu := opts.MTU
	if mtu == 0 {
		mtu = br.Attrs().MTU
	}
	// The container's end is created directly inside its namespace, with
	// its final name and MAC: moving a link between namespaces costs an RCU
	// grace period (~14 ms here), creating it there does not.
	veth := &netlink.Veth{
		LinkAttrs:        netlink.LinkAttrs{Name: host, MTU: mtu, TxQLen: -1, MasterIndex: br.Attrs().Index},
		PeerName:         opts.IfName,
		PeerNamespace:    netlink.NsFd(int(ns)),
		PeerHardwareAddr: opts.MAC,
		PeerMTU:          uint32(mtu),
	}
	if err := netlink.LinkAdd(veth); err != nil {
		return Endpoint{}, fmt.Errorf("attach %.12s: create veth: %w", containerID, err)
	}
	ok := false
	defer func() {
		if !ok {
			// Deleting the host end deletes the container's end too.
			if l, err := netlink.LinkByName(host); err == nil {
				_ = netlink.LinkDel(l)
			}
		}
	}()
	if err := ctx.Err(); err != nil {
		return Endpoint{}, err
	}
	hl, err := netlink.LinkByName(host)
	if err != nil {
		return Endpoint{}, fmt.Errorf("attach %.12s: %w", containerID, err)
	}
	cl, err := nh.LinkByName(opts.IfName)
	if err != nil {
		return Endpoint{}, fmt.Errorf("attach %.12s: %w", containerID, err)
	}
	if err := nh.AddrAdd(cl, &netlink.Addr{IPNet: prefixToIPNet(opts.Address)}); err != nil {
		return Endpoint{}, fmt.Errorf("attach %.12s: address %s: %w", containerID, opts.Address, err)
	}
	if err := nh.LinkSetUp(cl); err != nil {
		return Endpoint{}, fmt.Errorf("attach %.12s: %s up: %w", containerID, opts.IfName, err)
	}
	if lo, err := nh.LinkByName("lo"); err == nil {
		if err := nh.LinkSetUp(lo); err != nil {
			return Endpoint{}, fmt.Errorf("attach %.12s: lo up: %w", containerID, err)
		}
	}
	if opts.Gateway.IsValid() {
		r := &netlink.Route{LinkIndex: cl.Attrs().Index, Gw: net.IP(opts.Gateway.AsSlice()), Dst: nil}
		if err := nh.RouteAdd(r); err != nil && !errors.Is(err, unix.EEXIST) {
			return Endpoint{}, fmt.Errorf("attach %.12s: default route via %s: %w", containerID, opts.Gateway, err)
		}
	}
	if err := netlink.LinkSetUp(hl); err != nil {
		return Endpoint{}, fmt.Errorf("attach %.12s: host veth up: %w", containerID, err)
	}
	ok = true
	return Endpoint{HostVeth: host, IfName: opts.IfName, MAC: opts.MAC, Address: opts.Address}, nil
}

// Detach removes the container's interface on network by deleting the host
// end of its veth pair (the kernel deletes the other end). A missing veth
// (the namespace is gone, which already deleted the pair) is not an error.
func Detach(ctx context.Context, network, containerID string) error {
	name := HostVethName(containerID, network)
	l, err := netlink.LinkByName(name)
	if err != nil {
		var nf netlink.LinkNotFoundError
		if errors.As(err, &nf) {
			return nil
		}
		return fmt.Errorf("detach %.12s: %w", containerID, err)
	}
	if err := netlink.LinkDel(l); err != nil {
		return fmt.Errorf("detach %.12s: %w", containerID, err)
	}
	return nil
}

// RemoveStaleVeths deletes every berth host-side veth (name VethPrefix + 11
// hex digits) enslaved to one of bridges and not in keep: leftovers of
// containers that went away while the daemon was down. Veths on other
// bridges (another daemon's, a test's) are never touched. It returns the
// names it removed.
func RemoveStaleVeths(bridges []string, keep map[string]bool) ([]string, error) {
	masters := map[int]bool{}
	for _, b := range bridges {
		if l, err := netlink.LinkByName(b); err == nil {
			masters[l.Attrs().Index] = true
		}
	}
	if len(masters) == 0 {
		return nil, nil
	}
	links, err := Links()
	if err != nil {
		return nil, err
	}
	var removed []string
	for _, l := range links {
		n := l.Attrs().Name
		if l.Type() != "veth" || !strings.HasPrefix(n, VethPrefix) || len(n) != len(VethPrefix)+11 || keep[n] || !masters[l.Attrs().MasterIndex] {
			continue
		}
		if err := netlink.LinkDel(l); err != nil {
			return removed, fmt.Errorf("remove stale veth %s: %w", n, err)
		}
		removed = append(removed, n)
	}
	return removed, nil
}

// HostRoutes returns the destinations of the host's IPv4 routes (not the
// default route), which new subnets must not overlap. Berth's own bridges
// are skipped by name via skip.
func HostRoutes(skip func(ifname string) bool) ([]netip.Prefix, error) {
	routes, err := retryDump(func() ([]netlink.Route, error) { return netlink.RouteList(nil, netlink.FAMILY_V4) })
	if err != nil {
		return nil, err
	}
	var out []netip.Prefix
	for _, r := range routes {
		if r.Dst == nil {
			continue
		}
		if skip != nil && r.LinkIndex > 0 {
			if l, err := netlink.LinkByIndex(r.LinkIndex); err == nil && skip(l.Attrs().Name) {
				continue
			}
		}
		ones, _ := r.Dst.Mask.Size()
		a, ok := netip.AddrFromSlice(r.Dst.IP.To4())
		if !ok || ones == 0 {
			continue
		}
		out = append(out, netip.PrefixFrom(a, ones).Masked())
	}
	return out, nil
}

func prefixToIPNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: net.IP(p.Addr().AsSlice()), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}

func validIfName(n string) error {
	if n == "" || len(n) > 15 || strings.ContainsAny(n, "/ \t\n:") || n == "." || n == ".." {
		return fmt.Errorf("invalid interface name %q: %w", n, errdefs.ErrInvalidArgument)
	}
	return nil
}

func writeSysctl(key, val string) error {
	return os.WriteFile("/proc/sys/"+key, []byte(val), 0o644)
}

// EnableIPForward turns on net.ipv4.ip_forward (as dockerd does on start)
// and reports whether it was off before.
func EnableIPForward() (changed bool, err error) {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_forward")
	if err != nil {
		return false, err
	}
	if strings.TrimSpace(string(b)) == "1" {
		return false, nil
	}
	return true, writeSysctl("net/ipv4/ip_forward", "1")
}

// Links lists the host's links. A dump the kernel interrupts (links
// changing meanwhile: other daemons, tests) is read again.
func Links() ([]netlink.Link, error) { return retryDump(netlink.LinkList) }

func retryDump[T any](dump func() ([]T, error)) ([]T, error) {
	for i := 0; ; i++ {
		out, err := dump()
		if !errors.Is(err, netlink.ErrDumpInterrupted) || i == 20 {
			return out, err
		}
	}
}
