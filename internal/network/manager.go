package network

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/berth-dev/berth/internal/errdefs"
	"github.com/berth-dev/berth/internal/network/dns"
	"github.com/berth-dev/berth/internal/network/ipam"
	"github.com/berth-dev/berth/internal/network/nat"
)

// Names of the pre-defined networks, as docker's.
const (
	BridgeNetwork = "bridge"
	HostNetwork   = "host"
	NoneNetwork   = "none"
)

// Config of a Manager.
type Config struct {
	StateDir       string   // holds networks.json and ipam.json; required
	NATTable       string   // nftables table (family ip); default "berth"
	DefaultBridge  string   // interface of the "bridge" network; default "berth0"
	DefaultSubnet  string   // of the "bridge" network; default: first free of ipam.DefaultPools
	DefaultGateway string   // of the "bridge" network (docker's bip address); default: the subnet's first
	HostResolvConf string   // default /etc/resolv.conf
	DNSUpstreams   []string // host:port forwarders; default: from HostResolvConf
	// EnableIPForward sets net.ipv4.ip_forward=1 (needed for outbound NAT
	// and hairpin), as dockerd does. Off in tests that must leave the host as found.
	EnableIPForward bool
}

// NetworkSpec is `network create`.
type NetworkSpec struct {
	Name       string
	Driver     string // "bridge" (default)
	Subnet     string
	Gateway    string
	IPRange    string
	Internal   bool
	Labels     map[string]string
	BridgeName string // com.docker.network.bridge.name; default br-<id12>
}

// NetworkInfo is one network as inspected.
type NetworkInfo struct {
	ID         string                  `json:"id"`
	Name       string                  `json:"name"`
	Driver     string                  `json:"driver"`
	Bridge     string                  `json:"bridge,omitempty"`
	Subnet     netip.Prefix            `json:"subnet,omitempty"`
	Gateway    netip.Addr              `json:"gateway,omitempty"`
	IPRange    netip.Prefix            `json:"ipRange,omitempty"`
	Internal   bool                    `json:"internal,omitempty"`
	Labels     map[string]string       `json:"labels,omitempty"`
	Created    time.Time               `json:"created"`
	Predefined bool                    `json:"predefined,omitempty"`
	Endpoints  map[string]EndpointInfo `json:"endpoints,omitempty"` // by container ID
}

// UserDefined reports whether the network has the embedded DNS server.
func (n NetworkInfo) UserDefined() bool { return !n.Predefined }

// EndpointSpec is one container joining one network (`run --network`,
// `network connect`).
type EndpointSpec struct {
	ContainerID string
	Name        string // container name (without "/"), resolvable on user networks
	NetnsPath   string // /proc/PID/ns/net or a bind-mounted netns file
	IP          netip.Addr
	MAC         net.HardwareAddr
	Aliases     []string
	Ports       []nat.PortMapping // ContainerIP is filled in; HostPort 0 = pick
	// DNS overrides the embedded server's upstreams for this container (--dns).
	DNS []string
}

// EndpointInfo is one container's interface on one network.
type EndpointInfo struct {
	ContainerID string            `json:"containerId"`
	Name        string            `json:"name"`
	Network     string            `json:"network"`
	NetnsPath   string            `json:"netnsPath"`
	HostVeth    string            `json:"hostVeth"`
	IfName      string            `json:"ifName"`
	Address     netip.Prefix      `json:"address"`
	Gateway     netip.Addr        `json:"gateway"`
	MAC         string            `json:"mac"`
	Aliases     []string          `json:"aliases,omitempty"`
	Ports       []nat.PortMapping `json:"ports,omitempty"`
	DNS         []string          `json:"dns,omitempty"`
}

// Manager owns berth's networks: their bridges, addresses, NAT rules and
// DNS, persisted under Config.StateDir. All methods are safe for concurrent use.
type Manager struct {
	cfg   Config
	mu    sync.Mutex
	nets  map[string]*NetworkInfo // by ID
	ipam  *ipam.Allocator
	nat   *nat.Table
	dns   *dns.Server
	ports map[string][]*nat.Reservation // by container ID
	// detaching counts the veth deletions ReleaseAll left running.
	detaching sync.WaitGroup
}

type stateFile struct {
	Version  int            `json:"version"`
	Networks []*NetworkInfo `json:"networks"`
}

// Open loads the state, (re)creates every bridge and berth's nftables table,
// and makes the pre-defined networks. Endpoints are kept as recorded until
// Restore says which containers are still alive.
func Open(ctx context.Context, cfg Config) (*Manager, error) {
	if cfg.StateDir == "" {
		return nil, fmt.Errorf("network: no state dir: %w", errdefs.ErrInvalidArgument)
	}
	if cfg.DefaultBridge == "" {
		cfg.DefaultBridge = DefaultBridge
	}
	if cfg.HostResolvConf == "" {
		cfg.HostResolvConf = "/etc/resolv.conf"
	}
	a, err := ipam.Open(filepath.Join(cfg.StateDir, "ipam.json"))
	if err != nil {
		return nil, err
	}
	m := &Manager{cfg: cfg, nets: map[string]*NetworkInfo{}, ipam: a, ports: map[string][]*nat.Reservation{}}
	if b, err := os.ReadFile(m.statePath()); err == nil {
		var st stateFile
		if err := json.Unmarshal(b, &st); err != nil {
			return nil, fmt.Errorf("network: decode state: %w", err)
		}
		for _, n := range st.Networks {
			if n.Endpoints == nil {
				n.Endpoints = map[string]EndpointInfo{}
			}
			m.nets[n.ID] = n
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("network: %w", err)
	}
	if cfg.EnableIPForward {
		if _, err := EnableIPForward(); err != nil {
			return nil, fmt.Errorf("network: enable ip_forward: %w", err)
		}
	}
	ups := cfg.DNSUpstreams
	if ups == nil {
		if b, err := os.ReadFile(cfg.HostResolvConf); err == nil {
			ups = dns.UpstreamsFromResolvConf(b)
		}
	}
	m.dns = dns.New(dns.Config{Upstreams: ups})
	if m.nat, err = nat.Open(cfg.NATTable); err != nil {
		return nil, err
	}
	// Pre-defined networks. Choosing a free subnet and making its bridge
	// (whose route marks it taken) is one step for all daemons on the host.
	unlock := hostLock()
	defer unlock()
	for _, pd := range []struct{ name, driver string }{{BridgeNetwork, "bridge"}, {HostNetwork, "host"}, {NoneNetwork, "null"}} {
		if m.byName(pd.name) != nil {
			continue
		}
		n := &NetworkInfo{ID: newID(), Name: pd.name, Driver: pd.driver, Predefined: true, Created: time.Now().UTC(), Endpoints: map[string]EndpointInfo{}}
		if pd.driver == "bridge" {
			n.Bridge = cfg.DefaultBridge
			if err := m.addPool(n, NetworkSpec{Subnet: cfg.DefaultSubnet, Gateway: cfg.DefaultGateway}); err != nil {
				return nil, fmt.Errorf("network: default bridge: %w", err)
			}
		}
		m.nets[n.ID] = n
	}
	for _, n := range m.sorted() {
		if n.Driver != "bridge" {
			continue
		}
		if err := m.setupBridge(n); err != nil {
			return nil, err
		}
	}
	if err := m.save(); err != nil {
		return nil, err
	}
	return m, nil
}

func (m *Manager) statePath() string { return filepath.Join(m.cfg.StateDir, "networks.json") }

func (m *Manager) save() error {
	st := stateFile{Version: 1, Networks: m.sorted()}
	b, err := json.MarshalIndent(&st, "", "  ")
	if err != nil {
		return err
	}
	return ipam.WriteFileAtomic(m.statePath(), b, 0o600)
}

func (m *Manager) sorted() []*NetworkInfo {
	out := make([]*NetworkInfo, 0, len(m.nets))
	for _, n := range m.nets {
		out = append(out, n)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

func (m *Manager) byName(name string) *NetworkInfo {
	for _, n := range m.nets {
		if n.Name == name {
			return n
		}
	}
	return nil
}

// find resolves a name, a full ID or a unique ID prefix (docker's order).
func (m *Manager) find(ref string) (*NetworkInfo, error) {
	if n := m.byName(ref); n != nil {
		return n, nil
	}
	if n, ok := m.nets[ref]; ok {
		return n, nil
	}
	var hit *NetworkInfo
	for id, n := range m.nets {
		if ref != "" && strings.HasPrefix(id, ref) {
			if hit != nil {
				return nil, fmt.Errorf("network %s is ambiguous: %w", ref, errdefs.ErrInvalidArgument)
			}
			hit = n
		}
	}
	if hit == nil {
		return nil, fmt.Errorf("network %s not found: %w", ref, errdefs.ErrNotFound)
	}
	return hit, nil
}

func newID() string {
	b := make([]byte, 32)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// hostRoutes are the routes new subnets must avoid: the host's, minus those
// of berth's own bridges (which are pools already).
func (m *Manager) hostRoutes() []netip.Prefix {
	own := map[string]bool{}
	for _, n := range m.nets {
		if n.Bridge != "" {
			own[n.Bridge] = true
		}
	}
	rs, _ := HostRoutes(func(ifn string) bool { return own[ifn] })
	return rs
}

func (m *Manager) addPool(n *NetworkInfo, spec NetworkSpec) error {
	p, err := m.ipam.AddPool(n.ID, ipam.PoolConfig{Subnet: spec.Subnet, Gateway: spec.Gateway, IPRange: spec.IPRange}, m.hostRoutes())
	if err != nil {
		return err
	}
	n.Subnet, n.Gateway, n.IPRange = p.Subnet, p.Gateway, p.IPRange
	return nil
}

func (m *Manager) setupBridge(n *NetworkInfo) error {
	if err := EnsureBridge(BridgeConfig{Name: n.Bridge, Gateway: netip.PrefixFrom(n.Gateway, n.Subnet.Bits())}); err != nil {
		return fmt.Errorf("network %s: %w", n.Name, err)
	}
	if err := m.nat.AddNetwork(nat.Network{Name: n.ID, Bridge: n.Bridge, Subnet: n.Subnet, Internal: n.Internal}); err != nil {
		return fmt.Errorf("network %s: %w", n.Name, err)
	}
	return nil
}

// CreateNetwork is `network create`: a bridge network with its pool.
// Duplicate name: ErrConflict; overlapping subnet: ErrConflict; bad
// subnet, gateway or range: ErrInvalidArgument. Nothing is left behind on error.
func (m *Manager) CreateNetwork(ctx context.Context, spec NetworkSpec) (NetworkInfo, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if spec.Driver == "" {
		spec.Driver = "bridge"
	}
	if spec.Driver != "bridge" {
		return NetworkInfo{}, fmt.Errorf("network driver %q: %w", spec.Driver, errdefs.ErrNotImplemented)
	}
	if spec.Name == "" || strings.ContainsAny(spec.Name, "/ \t\n:") {
		return NetworkInfo{}, fmt.Errorf("invalid network name %q: %w", spec.Name, errdefs.ErrInvalidArgument)
	}
	if m.byName(spec.Name) != nil {
		return NetworkInfo{}, fmt.Errorf("network with name %s already exists: %w", spec.Name, errdefs.ErrConflict)
	}
	n := &NetworkInfo{ID: newID(), Name: spec.Name, Driver: "bridge", Internal: spec.Internal, Labels: spec.Labels,
		Created: time.Now().UTC(), Endpoints: map[string]EndpointInfo{}}
	n.Bridge = spec.BridgeName
	if n.Bridge == "" {
		n.Bridge = "br-" + n.ID[:12]
	}
	if err := validIfName(n.Bridge); err != nil {
		return NetworkInfo{}, err
	}
	unlock := hostLock()
	defer unlock()
	for _, o := range m.nets {
		if o.Bridge == n.Bridge {
			return NetworkInfo{}, fmt.Errorf("bridge %s is used by network %s: %w", n.Bridge, o.Name, errdefs.ErrConflict)
		}
	}
	if err := m.addPool(n, spec); err != nil {
		return NetworkInfo{}, err
	}
	if err := m.setupBridge(n); err != nil {
		m.nat.RemoveNetwork(n.ID)
		DeleteBridge(n.Bridge)
		m.ipam.RemovePool(n.ID)
		return NetworkInfo{}, err
	}
	m.nets[n.ID] = n
	if err := m.save(); err != nil {
		delete(m.nets, n.ID)
		m.nat.RemoveNetwork(n.ID)
		DeleteBridge(n.Bridge)
		m.ipam.RemovePool(n.ID)
		return NetworkInfo{}, err
	}
	return copyNet(n), nil
}

// RemoveNetwork is `network rm`: refused for pre-defined networks
// (ErrFailedPrecondition) and networks with endpoints (ErrConflict).
func (m *Manager) RemoveNetwork(ctx context.Context, ref string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	n, err := m.find(ref)
	if err != nil {
		return err
	}
	if n.Predefined {
		return fmt.Errorf("%s is a pre-defined network and cannot be removed: %w", n.Name, errdefs.ErrFailedPrecondition)
	}
	if len(n.Endpoints) > 0 {
		return fmt.Errorf("error while removing network: network %s id %s has active endpoints: %w", n.Name, n.ID, errdefs.ErrConflict)
	}
	return m.removeLocked(n)
}

func (m *Manager) removeLocked(n *NetworkInfo) error {
	if err := m.nat.RemoveNetwork(n.ID); err != nil {
		return err
	}
	if n.Bridge != "" {
		if err := DeleteBridge(n.Bridge); err != nil {
			return err
		}
	}
	if err := m.ipam.RemovePool(n.ID); err != nil && !errdefs.IsNotFound(err) {
		return err
	}
	delete(m.nets, n.ID)
	return m.save()
}

// Prune removes the user-defined networks without endpoints for which keep
// returns false (nil keep: all of them), returning their names.
func (m *Manager) Prune(ctx context.Context, keep func(NetworkInfo) bool) ([]string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []string
	for _, n := range m.sorted() {
		if n.Predefined || len(n.Endpoints) > 0 || (keep != nil && keep(copyNet(n))) {
			continue
		}
		if err := m.removeLocked(n); err != nil {
			return out, err
		}
		out = append(out, n.Name)
	}
	return out, nil
}

// Network returns one network by name, ID or ID prefix.
func (m *Manager) Network(ref string) (NetworkInfo, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	n, err := m.find(ref)
	if err != nil {
		return NetworkInfo{}, err
	}
	return copyNet(n), nil
}

// Networks lists every network, sorted by name.
func (m *Manager) Networks() []NetworkInfo {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []NetworkInfo
	for _, n := range m.sorted() {
		out = append(out, copyNet(n))
	}
	return out
}

func copyNet(n *NetworkInfo) NetworkInfo {
	c := *n
	c.Endpoints = make(map[string]EndpointInfo, len(n.Endpoints))
	for k, v := range n.Endpoints {
		c.Endpoints[k] = v
	}
	return c
}

// Endpoints returns a container's endpoints, ordered by interface name.
func (m *Manager) Endpoints(containerID string) []EndpointInfo {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.endpointsLocked(containerID)
}

func (m *Manager) endpointsLocked(containerID string) []EndpointInfo {
	var out []EndpointInfo
	for _, n := range m.nets {
		if ep, ok := n.Endpoints[containerID]; ok {
			out = append(out, ep)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].IfName < out[j].IfName })
	return out
}

// Connect attaches a running container (its netns) to a bridge network:
// address from IPAM (spec.IP if given), veth + eth<N> + default route (the
// first network only), published ports (host ports reserved, then DNAT), and
// on user-defined networks its names in the embedded DNS, served at
// 127.0.0.11 in its netns. Everything done is undone on error.
func (m *Manager) Connect(ctx context.Context, network string, spec EndpointSpec) (EndpointInfo, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	n, err := m.find(network)
	if err != nil {
		return EndpointInfo{}, err
	}
	if n.Driver != "bridge" {
		return EndpointInfo{}, fmt.Errorf("cannot connect to network %s (driver %s): %w", n.Name, n.Driver, errdefs.ErrInvalidArgument)
	}
	if spec.ContainerID == "" || spec.NetnsPath == "" {
		return EndpointInfo{}, fmt.Errorf("connect: container ID and netns path required: %w", errdefs.ErrInvalidArgument)
	}
	if _, ok := n.Endpoints[spec.ContainerID]; ok {
		return EndpointInfo{}, fmt.Errorf("endpoint with name %s already exists in network %s: %w", spec.Name, n.Name, errdefs.ErrConflict)
	}
	if n.Predefined && (spec.IP.IsValid() || len(spec.Aliases) > 0) {
		return EndpointInfo{}, fmt.Errorf("user specified IP address and aliases are supported only for user-defined networks: %w", errdefs.ErrInvalidArgument)
	}
	existing := m.endpointsLocked(spec.ContainerID)
	used := map[string]bool{}
	for _, ep := range existing {
		used[ep.IfName] = true
	}
	ifName := "eth0"
	for i := 1; used[ifName]; i++ {
		ifName = fmt.Sprintf("eth%d", i)
	}
	var undo []func()
	fail := func(err error) (EndpointInfo, error) {
		for i := len(undo) - 1; i >= 0; i-- {
			undo[i]()
		}
		return EndpointInfo{}, err
	}
	ip, err := m.ipam.Allocate(n.ID, spec.ContainerID, spec.IP)
	if err != nil {
		return fail(err)
	}
	undo = append(undo, func() { m.ipam.Release(n.ID, ip) })

	ports, res, err := reservePorts(spec.Ports, ip)
	if err != nil {
		return fail(err)
	}
	undo = append(undo, func() { closeAll(res) })

	gw := netip.Addr{}
	if len(existing) == 0 && !n.Internal {
		gw = n.Gateway
	}
	ep, err := Attach(ctx, n.Bridge, n.ID, spec.NetnsPath, spec.ContainerID, AttachOptions{
		Address: netip.PrefixFrom(ip, n.Subnet.Bits()), Gateway: gw, MAC: spec.MAC, IfName: ifName,
	})
	if err != nil {
		return fail(err)
	}
	undo = append(undo, func() { Detach(context.Background(), n.ID, spec.ContainerID) })

	if len(ports) > 0 {
		if err := m.nat.Publish(m.portTag(n.ID, spec.ContainerID), ports); err != nil {
			return fail(err)
		}
		undo = append(undo, func() { m.nat.Unpublish(m.portTag(n.ID, spec.ContainerID)) })
	}
	info := EndpointInfo{
		ContainerID: spec.ContainerID, Name: spec.Name, Network: n.ID, NetnsPath: spec.NetnsPath,
		HostVeth: ep.HostVeth, IfName: ep.IfName, Address: ep.Address, Gateway: gw, MAC: ep.MAC.String(),
		Aliases: append([]string(nil), spec.Aliases...), Ports: ports, DNS: spec.DNS,
	}
	if !n.Predefined {
		if err := m.startDNS(n, info); err != nil {
			return fail(err)
		}
		undo = append(undo, func() { m.stopDNS(n, spec.ContainerID) })
	}
	n.Endpoints[spec.ContainerID] = info
	if err := m.save(); err != nil {
		delete(n.Endpoints, spec.ContainerID)
		return fail(err)
	}
	m.ports[m.portTag(n.ID, spec.ContainerID)] = res
	return info, nil
}

// Rename gives a container's endpoints a new name (`docker rename`): the
// embedded DNS answers for the new name, no longer for the old one.
func (m *Manager) Rename(containerID, name string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	changed := false
	for _, n := range m.nets {
		ep, ok := n.Endpoints[containerID]
		if !ok {
			continue
		}
		ep.Name = name
		n.Endpoints[containerID] = ep
		changed = true
		if !n.Predefined {
			m.dns.Add(dnsRecord(n, ep))
		}
	}
	if !changed {
		return nil
	}
	return m.save()
}

func dnsRecord(n *NetworkInfo, ep EndpointInfo) dns.Record {
	names := []string{}
	if ep.Name != "" {
		names = append(names, ep.Name)
	}
	names = append(names, ep.Aliases...)
	if len(ep.ContainerID) >= 12 {
		names = append(names, ep.ContainerID[:12])
	}
	return dns.Record{Network: n.ID, ContainerID: ep.ContainerID, Names: names, IP: ep.Address.Addr()}
}

func (m *Manager) portTag(netID, containerID string) string { return containerID + "@" + netID[:12] }

func (m *Manager) startDNS(n *NetworkInfo, ep EndpointInfo) error {
	m.dns.Add(dnsRecord(n, ep))
	if len(ep.DNS) > 0 {
		var ups []string
		for _, s := range ep.DNS {
			if a, err := netip.ParseAddr(s); err == nil {
				ups = append(ups, netip.AddrPortFrom(a, 53).String())
			}
		}
		m.dns.SetContainerUpstreams(ep.ContainerID, ups)
	}
	if err := m.dns.Start(ep.ContainerID, ep.NetnsPath); err != nil {
		m.dns.Remove(n.ID, ep.ContainerID)
		return err
	}
	return nil
}

// stopDNS removes the records and, when the container is on no other user
// network, its listener.
func (m *Manager) stopDNS(n *NetworkInfo, containerID string) {
	m.dns.Remove(n.ID, containerID)
	for _, o := range m.nets {
		if o.ID == n.ID || o.Predefined {
			continue
		}
		if _, ok := o.Endpoints[containerID]; ok {
			return
		}
	}
	m.dns.Stop(containerID)
	m.dns.SetContainerUpstreams(containerID, nil)
}

func reservePorts(in []nat.PortMapping, ip netip.Addr) ([]nat.PortMapping, []*nat.Reservation, error) {
	var out []nat.PortMapping
	var res []*nat.Reservation
	for _, p := range in {
		r, err := nat.Reserve(p.Proto, p.HostIP, p.HostPort)
		if err != nil {
			closeAll(res)
			return nil, nil, err
		}
		res = append(res, r)
		p.HostPort = r.Port
		p.ContainerIP = ip
		out = append(out, p)
	}
	return out, res, nil
}

func closeAll(rs []*nat.Reservation) {
	for _, r := range rs {
		r.Close()
	}
}

// Disconnect removes a container from a network: DNS names, DNAT rules and
// port reservations, the veth pair, the address. A container not on the
// network is ErrNotFound.
func (m *Manager) Disconnect(ctx context.Context, network, containerID string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	n, err := m.find(network)
	if err != nil {
		return err
	}
	return m.disconnectLocked(ctx, n, containerID, true)
}

// disconnectLocked removes an endpoint; detach=false leaves its veth pair
// to the kernel, which deletes it with the namespace (see ReleaseAll).
func (m *Manager) disconnectLocked(ctx context.Context, n *NetworkInfo, containerID string, detach bool) error {
	ep, ok := n.Endpoints[containerID]
	if !ok {
		return fmt.Errorf("container %.12s is not connected to network %s: %w", containerID, n.Name, errdefs.ErrNotFound)
	}
	var errs []error
	if !n.Predefined {
		m.stopDNS(n, containerID)
	}
	tag := m.portTag(n.ID, containerID)
	if len(ep.Ports) > 0 {
		errs = append(errs, m.nat.Unpublish(tag))
	}
	closeAll(m.ports[tag])
	delete(m.ports, tag)
	if detach {
		errs = append(errs, Detach(ctx, n.ID, containerID))
	} else {
		m.detachLater(n.ID, containerID)
	}
	errs = append(errs, m.ipam.Release(n.ID, ep.Address.Addr()))
	delete(n.Endpoints, containerID)
	errs = append(errs, m.save())
	return errors.Join(errs...)
}

// DisconnectAll removes a container from every network (container stop or
// removal). It is idempotent.
func (m *Manager) DisconnectAll(ctx context.Context, containerID string) error {
	return m.disconnectAll(ctx, containerID, true)
}

// ReleaseAll is DisconnectAll for a container whose network namespace the
// caller deletes next (a container's exit): DNS, published ports and
// addresses go now, the veth pairs are deleted in the background. Deleting
// a veth waits for an RCU grace period (≈10–20 ms per endpoint, most of a
// container's networking cost), which the exit path no longer waits for.
// (The kernel would delete them with the namespace too, but its netns
// cleanup is one queue for the whole host and takes from milliseconds to a
// minute when other namespaces are being destroyed.)
func (m *Manager) ReleaseAll(ctx context.Context, containerID string) error {
	return m.disconnectAll(ctx, containerID, false)
}

// detachLater deletes a container's host-side veth on a goroutine. The link
// is found now and deleted by its index, so a veth of the same name made
// meanwhile (the container started again) is never the one deleted.
func (m *Manager) detachLater(network, containerID string) {
	l, err := netlink.LinkByName(HostVethName(containerID, network))
	if err != nil {
		return
	}
	m.detaching.Add(1)
	go func() {
		defer m.detaching.Done()
		_ = netlink.LinkDel(l) // gone already with its namespace: fine
	}()
}

func (m *Manager) disconnectAll(ctx context.Context, containerID string, detach bool) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	var errs []error
	for _, n := range m.sorted() {
		if _, ok := n.Endpoints[containerID]; ok {
			errs = append(errs, m.disconnectLocked(ctx, n, containerID, detach))
		}
	}
	return errors.Join(errs...)
}

// Restore is called once after Open with the containers still running
// (container ID → netns path). Their endpoints get their port reservations,
// DNAT rules and DNS back; endpoints of other containers are released;
// host-side veths on berth's bridges that nobody owns are deleted.
func (m *Manager) Restore(ctx context.Context, running map[string]string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	keep := map[string]bool{}
	var errs []error
	for _, n := range m.sorted() {
		for id, ep := range n.Endpoints {
			path, alive := running[id]
			if alive {
				if _, err := os.Stat(path); err != nil {
					alive = false
				}
			}
			if !alive {
				Detach(ctx, n.ID, id)
				m.ipam.Release(n.ID, ep.Address.Addr())
				delete(n.Endpoints, id)
				continue
			}
			ep.NetnsPath = path
			n.Endpoints[id] = ep
			keep[ep.HostVeth] = true
			if len(ep.Ports) > 0 {
				tag := m.portTag(n.ID, id)
				var res []*nat.Reservation
				for _, p := range ep.Ports {
					r, err := nat.Reserve(p.Proto, p.HostIP, p.HostPort)
					if err != nil {
						errs = append(errs, fmt.Errorf("restore %.12s: %w", id, err))
						continue
					}
					res = append(res, r)
				}
				m.ports[tag] = res
				errs = append(errs, m.nat.Publish(tag, ep.Ports))
			}
			if !n.Predefined {
				errs = append(errs, m.startDNS(n, ep))
			}
		}
	}
	var bridges []string
	for _, n := range m.nets {
		if n.Bridge != "" {
			bridges = append(bridges, n.Bridge)
		}
	}
	if _, err := RemoveStaleVeths(bridges, keep); err != nil {
		errs = append(errs, err)
	}
	errs = append(errs, m.save())
	return errors.Join(errs...)
}

// DNS exposes the embedded server (for tests and `SetUpstreams` on reload).
func (m *Manager) DNS() *dns.Server { return m.dns }

// Close stops the DNS listeners and releases port reservations; bridges,
// veths and rules stay (live restore). Re-Open and Restore take over.
func (m *Manager) Close() error {
	m.detaching.Wait()
	m.mu.Lock()
	defer m.mu.Unlock()
	m.dns.Close()
	for k, rs := range m.ports {
		closeAll(rs)
		delete(m.ports, k)
	}
	return nil
}

// Teardown removes everything berth made on the host: every endpoint, every
// bridge and the nftables table. The state files are kept but emptied of
// endpoints (networks are re-created on the next Open).
func (m *Manager) Teardown(ctx context.Context) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	var errs []error
	for _, n := range m.sorted() {
		for id := range n.Endpoints {
			errs = append(errs, m.disconnectLocked(ctx, n, id, true))
		}
		if n.Bridge != "" {
			errs = append(errs, DeleteBridge(n.Bridge))
		}
	}
	m.dns.Close()
	errs = append(errs, m.nat.Destroy())
	return errors.Join(errs...)
}

// HostGateway is the address "host-gateway" stands for in --add-host: the
// default bridge's gateway, as docker's.
func (m *Manager) HostGateway() netip.Addr {
	m.mu.Lock()
	defer m.mu.Unlock()
	if n := m.byName(BridgeNetwork); n != nil {
		return n.Gateway
	}
	return netip.Addr{}
}

// FilesOptions are a container's name-resolution settings.
type FilesOptions struct {
	Hostname   string
	Domainname string
	ExtraHosts []string // --add-host NAME:IP (IP may be host-gateway)
	DNS        []string // --dns
	DNSSearch  []string // --dns-search
	DNSOptions []string // --dns-option
}

// Files returns the /etc/hosts, /etc/hostname and /etc/resolv.conf of a
// container after its Connects: its addresses on every network go into
// /etc/hosts, and resolv.conf points at 127.0.0.11 if it is on a
// user-defined network (the host's resolvers otherwise). Bad --add-host or
// --dns values are ErrInvalidArgument. (For --network host/none/container:
// the engine copies the host's files or the other container's instead.)
func (m *Manager) Files(containerID string, o FilesOptions) (hosts, hostname, resolv []byte, err error) {
	var extra []HostEntry
	for _, s := range o.ExtraHosts {
		e, err := ParseExtraHost(s)
		if err != nil {
			return nil, nil, nil, err
		}
		if e.IP == "host-gateway" {
			gw := m.HostGateway()
			if !gw.IsValid() {
				return nil, nil, nil, fmt.Errorf("no host-gateway address: %w", errdefs.ErrFailedPrecondition)
			}
			e.IP = gw.String()
		}
		extra = append(extra, e)
	}
	m.mu.Lock()
	eps := m.endpointsLocked(containerID)
	embedded := false
	var ips []netip.Addr
	for _, ep := range eps {
		ips = append(ips, ep.Address.Addr())
		if n, ok := m.nets[ep.Network]; ok && !n.Predefined {
			embedded = true
		}
	}
	m.mu.Unlock()
	host, _ := os.ReadFile(m.cfg.HostResolvConf)
	resolv, _, err = ResolvConf(ResolvOptions{Host: host, Embedded: embedded, DNS: o.DNS, Search: o.DNSSearch, Options: o.DNSOptions})
	if err != nil {
		return nil, nil, nil, err
	}
	hosts = HostsFile(HostsOptions{Hostname: o.Hostname, Domainname: o.Domainname, IPs: ips, ExtraHosts: extra})
	return hosts, HostnameFile(o.Hostname), resolv, nil
}

// Purge removes, without opening a Manager, what a daemon with this state
// dir and nftables table left on the host: the veths on its bridges, the
// bridges and the table. It returns the veths it found (an orderly
// shutdown with every container gone leaves none). For tests and
// uninstalling; the state files stay.
func Purge(stateDir, table string) (veths []string, err error) {
	var st stateFile
	b, err := os.ReadFile(filepath.Join(stateDir, "networks.json"))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("network: %w", err)
	}
	if err == nil {
		if err := json.Unmarshal(b, &st); err != nil {
			return nil, fmt.Errorf("network: decode state: %w", err)
		}
	}
	var bridges []string
	for _, n := range st.Networks {
		if n.Bridge != "" {
			bridges = append(bridges, n.Bridge)
		}
	}
	var errs []error
	veths, err = RemoveStaleVeths(bridges, nil)
	errs = append(errs, err)
	for _, br := range bridges {
		errs = append(errs, DeleteBridge(br))
	}
	if table != "" {
		errs = append(errs, nat.DeleteTable(table))
	}
	return veths, errors.Join(errs...)
}
