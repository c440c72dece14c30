package engine

// Networking: the engine's side of internal/network.
//
// A container on a bridge network (the default "bridge" or a user-defined
// one) gets a network namespace made by the engine before the runtime runs
// (bind-mounted at <exec-root>/netns/<id>, passed in the spec as a
// namespace path), so veths, addresses, routes, published ports and DNS are
// in place before the process starts. The namespace and every endpoint go
// when the container exits (DisconnectAll, then the bind mount), and a
// restarted daemon hands the running containers' namespaces to
// network.Manager.Restore.
//
// The record keeps docker's NetworkSettings.Networks shape as configuration
// (network ID, aliases, requested address) in Container.Networks; the live
// fields (address, gateway, MAC, endpoint) come from the manager.

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"

	"github.com/berth-dev/berth/internal/errdefs"
	bnet "github.com/berth-dev/berth/internal/network"
	"github.com/berth-dev/berth/internal/network/nat"
)

// Network-mode kinds.
const (
	modeBridge    = "bridge" // the default bridge or a user-defined network
	modeHost      = "host"
	modeNone      = "none"
	modeContainer = "container"
)

type netMode struct {
	kind string
	name string // network (bridge kind) or container reference
}

func parseNetworkMode(m container.NetworkMode) netMode {
	s := string(m)
	switch {
	case s == "" || s == network.NetworkDefault:
		return netMode{kind: modeBridge, name: bnet.BridgeNetwork}
	case s == modeHost || s == modeNone:
		return netMode{kind: s, name: s}
	case strings.HasPrefix(s, "container:"):
		return netMode{kind: modeContainer, name: strings.TrimPrefix(s, "container:")}
	}
	return netMode{kind: modeBridge, name: s}
}

func (e *Engine) netnsPath(id string) string { return filepath.Join(e.execRoot, "netns", id) }

// prepareNetworking validates a new container's network settings, docker's
// checks and words, and returns its endpoint configurations by network name.
// hc.NetworkMode is normalized ("default" → "bridge").
func (e *Engine) prepareNetworking(cfg *container.Config, hc *container.HostConfig, nc *network.NetworkingConfig) (map[string]*network.EndpointSettings, error) {
	mode := parseNetworkMode(hc.NetworkMode)
	if mode.kind == modeBridge && mode.name == bnet.BridgeNetwork {
		hc.NetworkMode = bnet.BridgeNetwork
	}
	given := map[string]*network.EndpointSettings{}
	if nc != nil {
		for k, v := range nc.EndpointsConfig {
			if k == network.NetworkDefault || k == "" {
				k = bnet.BridgeNetwork // the docker CLI names the default network "default"
			}
			given[k] = v
		}
	}
	if err := validatePortBindings(hc); err != nil {
		return nil, err
	}
	for _, d := range hc.DNS {
		if !d.IsValid() {
			return nil, fmt.Errorf("invalid --dns address: %w", errdefs.ErrInvalidArgument)
		}
	}
	for _, h := range hc.ExtraHosts {
		if _, err := bnet.ParseExtraHost(h); err != nil {
			return nil, err
		}
	}
	out := map[string]*network.EndpointSettings{}
	switch mode.kind {
	case modeContainer:
		conflict := func(what string) error {
			return fmt.Errorf("conflicting options: %s and the network mode: %w", what, errdefs.ErrInvalidArgument)
		}
		switch {
		case cfg.Hostname != "":
			return nil, conflict("hostname")
		case len(hc.DNS) > 0:
			return nil, conflict("dns")
		case len(hc.ExtraHosts) > 0:
			return nil, conflict("custom host-to-IP mapping")
		case len(hc.PortBindings) > 0 || hc.PublishAllPorts:
			return nil, conflict("port publishing")
		}
		// The other container is looked up at start, as docker does: a 404
		// from create makes the docker CLI pull the image.
		return out, nil
	case modeHost, modeNone:
		if e.net != nil {
			n, err := e.net.Network(mode.name)
			if err != nil {
				return nil, err
			}
			out[n.Name] = &network.EndpointSettings{NetworkID: n.ID}
		}
		return out, nil
	}
	if e.net == nil {
		return out, nil
	}
	names := []string{mode.name}
	for name := range given {
		if name != mode.name {
			names = append(names, name)
		}
	}
	sort.Strings(names[1:])
	for _, name := range names {
		es := &network.EndpointSettings{}
		if g := given[name]; g != nil {
			es = g.Copy()
		}
		n, err := e.net.Network(name)
		if errdefs.IsNotFound(err) {
			// Checked again at start ("failed to set up container
			// networking: network X not found"), as docker does: a 404
			// from create would make the docker CLI pull the image.
			out[name] = &network.EndpointSettings{Aliases: es.Aliases, IPAMConfig: es.IPAMConfig, MacAddress: es.MacAddress}
			continue
		}
		if err != nil {
			return nil, err
		}
		if err := checkEndpoint(n, es); err != nil {
			return nil, err
		}
		out[n.Name] = &network.EndpointSettings{NetworkID: n.ID, Aliases: es.Aliases, IPAMConfig: es.IPAMConfig, MacAddress: es.MacAddress}
		if name == mode.name && n.Name != name {
			hc.NetworkMode = container.NetworkMode(n.Name) // an ID given: keep docker's name
		}
	}
	return out, nil
}

// networkWarnings are create's warnings about networking, docker's words.
func networkWarnings(hc *container.HostConfig) []string {
	out := []string{}
	if parseNetworkMode(hc.NetworkMode).kind == modeHost && (len(hc.PortBindings) > 0 || hc.PublishAllPorts) {
		out = append(out, "Published ports are discarded when using host network mode")
	}
	return out
}

// checkEndpoint is docker's validation of --ip and --network-alias.
func checkEndpoint(n bnet.NetworkInfo, es *network.EndpointSettings) error {
	var ip netip.Addr
	if es.IPAMConfig != nil {
		ip = es.IPAMConfig.IPv4Address
	}
	if mac := es.MacAddress; len(mac) > 0 && (len(mac) != 6 || mac[0]&1 == 1) {
		return fmt.Errorf("invalid MAC address %s: %w", net.HardwareAddr(mac), errdefs.ErrInvalidArgument)
	}
	if n.Driver != "bridge" {
		if ip.IsValid() || len(es.Aliases) > 0 {
			return fmt.Errorf("network-scoped alias is supported only for containers in user defined networks: %w", errdefs.ErrInvalidArgument)
		}
		return nil
	}
	if n.Predefined {
		if ip.IsValid() {
			return fmt.Errorf("user specified IP address is supported on user defined networks only: %w", errdefs.ErrInvalidArgument)
		}
		if len(es.Aliases) > 0 {
			return fmt.Errorf("network-scoped alias is supported only for containers in user defined networks: %w", errdefs.ErrInvalidArgument)
		}
	}
	if ip.IsValid() {
		r := n.Subnet
		if n.IPRange.IsValid() {
			r = n.IPRange
		}
		if !ip.Is4() || !r.Contains(ip) {
			return fmt.Errorf("invalid config for network %s: invalid endpoint settings:\nno configured subnet or ip-range contain the IP address %s: %w", n.Name, ip, errdefs.ErrInvalidArgument)
		}
	}
	return nil
}

func validatePortBindings(hc *container.HostConfig) error {
	for p, bs := range hc.PortBindings {
		if !p.IsValid() || (p.Proto() != network.TCP && p.Proto() != network.UDP) {
			return fmt.Errorf("invalid port specification: %q: %w", p.String(), errdefs.ErrInvalidArgument)
		}
		for _, b := range bs {
			if _, _, err := hostPortRange(b.HostPort); err != nil {
				return err
			}
		}
	}
	return nil
}

// hostPortRange reads a binding's HostPort: "", "8080" or "8000-8010".
func hostPortRange(s string) (lo, hi uint16, err error) {
	if s == "" {
		return 0, 0, nil
	}
	a, b, isRange := strings.Cut(s, "-")
	l, err1 := strconv.ParseUint(a, 10, 16)
	h := l
	var err2 error
	if isRange {
		h, err2 = strconv.ParseUint(b, 10, 16)
	}
	if err1 != nil || err2 != nil || h < l {
		return 0, 0, fmt.Errorf("invalid hostPort: %s: %w", s, errdefs.ErrInvalidArgument)
	}
	return uint16(l), uint16(h), nil
}

// portMappings are the container's -p and -P publications. A host range
// with one container port takes the first port of the range that is free
// now, as docker does (the reservation at connect is the real check).
func portMappings(cfg *container.Config, hc *container.HostConfig) ([]nat.PortMapping, error) {
	var out []nat.PortMapping
	seen := map[network.Port]bool{}
	ports := make([]network.Port, 0, len(hc.PortBindings))
	for p := range hc.PortBindings {
		ports = append(ports, p)
	}
	sort.Slice(ports, func(i, j int) bool { return ports[i].String() < ports[j].String() })
	for _, p := range ports {
		seen[p] = true
		bs := hc.PortBindings[p]
		if len(bs) == 0 {
			bs = []network.PortBinding{{}}
		}
		for _, b := range bs {
			if b.HostIP.IsValid() && !b.HostIP.Is4() {
				continue // IPv6 host addresses: berth's networks are IPv4 only
			}
			lo, hi, err := hostPortRange(b.HostPort)
			if err != nil {
				return nil, err
			}
			m := nat.PortMapping{Proto: string(p.Proto()), HostPort: lo, ContainerPort: p.Num()}
			if b.HostIP.IsValid() && !b.HostIP.IsUnspecified() {
				m.HostIP = b.HostIP
			}
			m.HostPort = firstFree(m.Proto, m.HostIP, lo, hi)
			out = append(out, m)
		}
	}
	if hc.PublishAllPorts {
		var exposed []network.Port
		for p := range cfg.ExposedPorts {
			if !seen[p] {
				exposed = append(exposed, p)
			}
		}
		sort.Slice(exposed, func(i, j int) bool { return exposed[i].String() < exposed[j].String() })
		for _, p := range exposed {
			out = append(out, nat.PortMapping{Proto: string(p.Proto()), ContainerPort: p.Num()})
		}
	}
	return out, nil
}

// firstFree is the first port of lo..hi nothing is bound to (lo if none).
func firstFree(proto string, ip netip.Addr, lo, hi uint16) uint16 {
	if lo == hi {
		return lo
	}
	host := "0.0.0.0"
	if ip.IsValid() {
		host = ip.String()
	}
	for p := int(lo); p <= int(hi); p++ {
		addr := net.JoinHostPort(host, strconv.Itoa(p))
		if proto == "udp" {
			if c, err := net.ListenPacket("udp4", addr); err == nil {
				c.Close()
				return uint16(p)
			}
		} else if l, err := net.Listen("tcp4", addr); err == nil {
			l.Close()
			return uint16(p)
		}
	}
	return lo
}

// netnsSpec says how the spec joins the network: a namespace path, host
// mode, or "" (a fresh namespace the runtime makes, --network none). For
// container:<id> it also gives that container's hostname, which the
// joiner shares as docker's does.
func (e *Engine) netnsSpec(id string, hc *container.HostConfig) (mode, path, hostname string, err error) {
	m := parseNetworkMode(hc.NetworkMode)
	switch m.kind {
	case modeHost:
		return modeHost, "", "", nil
	case modeNone:
		return "", "", "", nil
	case modeBridge:
		if e.net == nil {
			return "", "", "", nil
		}
		return "", e.netnsPath(id), "", nil
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	o, err := e.lookup(m.name)
	if err != nil {
		return "", "", "", err
	}
	if o.ID == id {
		return "", "", "", fmt.Errorf("cannot join own network namespace: %w", errdefs.ErrInvalidArgument)
	}
	if o.State.Status != StatusRunning || o.State.Pid == 0 {
		return "", "", "", fmt.Errorf("cannot join network namespace of a non running container: %s: %w", o.ID, errdefs.ErrConflict)
	}
	hostname = o.Config.Hostname
	om := parseNetworkMode(o.HostConfig.NetworkMode)
	switch {
	case om.kind == modeHost:
		return modeHost, "", hostname, nil
	case om.kind == modeBridge && e.net != nil:
		return "", e.netnsPath(o.ID), hostname, nil
	}
	return "", fmt.Sprintf("/proc/%d/ns/net", o.State.Pid), hostname, nil
}

// beginNetwork does the part of a container's network set-up that its
// creation needs: for a bridge network, the namespace and empty hosts,
// hostname and resolv.conf files, which the runtime binds into the rootfs
// and finish fills in place; every other mode is done here (nil finish).
// finish plugs the namespace into its networks (veth, address, routes; the
// first network gets the published ports) and writes the files: it may run
// while the runtime creates the container, and must be done before its
// process starts. On a failure of finish the network is torn down.
func (e *Engine) beginNetwork(ctx context.Context, id string) (finish func() error, err error) {
	e.mu.Lock()
	c, ok := e.byID[id]
	if !ok {
		e.mu.Unlock()
		return nil, notFound(id)
	}
	name, cfg, hc := trimSlash(c.Name), c.Config, c.HostConfig
	nets := map[string]*network.EndpointSettings{}
	for k, v := range c.Networks {
		nets[k] = v.Copy()
	}
	e.mu.Unlock()
	mode := parseNetworkMode(hc.NetworkMode)
	if e.net == nil {
		return nil, nil
	}
	switch mode.kind {
	case modeHost:
		return nil, e.writeHostFiles(id, cfg)
	case modeContainer:
		return nil, e.copyJoinedFiles(id, hc)
	case modeNone:
		return nil, e.writeNetFiles(id, cfg, hc)
	}
	ports, err := portMappings(cfg, hc)
	if err != nil {
		return nil, err
	}
	path := e.netnsPath(id)
	_ = bnet.DeleteNetns(path) // a leftover of a crash
	if err := bnet.CreateNetns(path); err != nil {
		return nil, err
	}
	if err := e.writeEtc(id, nil, nil, nil); err != nil {
		e.teardownNetwork(context.WithoutCancel(ctx), id)
		return nil, err
	}
	finish = func() (err error) {
		defer func() {
			if err != nil {
				e.teardownNetwork(context.WithoutCancel(ctx), id)
			}
		}()
		order := []string{mode.name}
		if _, ok := nets[mode.name]; !ok {
			// The primary network given by ID or renamed: find it by ID.
			if n, err := e.net.Network(mode.name); err == nil {
				order[0] = n.Name
			}
		}
		var rest []string
		for k := range nets {
			if k != order[0] {
				rest = append(rest, k)
			}
		}
		sort.Strings(rest)
		order = append(order, rest...)
		for i, netName := range order {
			es := nets[netName]
			ref := netName
			if es != nil && es.NetworkID != "" {
				ref = es.NetworkID
			}
			spec := bnet.EndpointSpec{ContainerID: id, Name: name, NetnsPath: path, DNS: dnsStrings(hc)}
			if es != nil {
				spec.Aliases = es.Aliases
				if es.IPAMConfig != nil {
					spec.IP = es.IPAMConfig.IPv4Address
				}
				if len(es.MacAddress) > 0 {
					spec.MAC = net.HardwareAddr(es.MacAddress)
				}
			}
			if i == 0 {
				spec.Ports = ports
			}
			if _, err := e.net.Connect(ctx, ref, spec); err != nil {
				return fmt.Errorf("failed to set up container networking: %w", e.netErr(err))
			}
		}
		return e.writeNetFiles(id, cfg, hc)
	}
	return finish, nil
}

// netErr rewords the network package's errors as docker's.
func (e *Engine) netErr(err error) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	if !strings.Contains(msg, "ipam: ") {
		return err
	}
	msg = strings.ReplaceAll(msg, "ipam: ", "")
	for _, class := range []error{errdefs.ErrInvalidArgument, errdefs.ErrConflict, errdefs.ErrNotFound, errdefs.ErrUnavailable, errdefs.ErrAlreadyExists} {
		if errors.Is(err, class) {
			return fmt.Errorf("%s: %w", strings.TrimSuffix(msg, ": "+class.Error()), class)
		}
	}
	return errors.New(msg)
}

// teardownNetwork removes a container's endpoints and namespace. Idempotent.
func (e *Engine) teardownNetwork(ctx context.Context, id string) {
	if e.net == nil {
		return
	}
	// The namespace goes next and the kernel deletes the veths with it,
	// unless a container:<id> joiner still runs in it: then the veths are
	// deleted now, or they would keep released addresses alive.
	release := e.net.ReleaseAll
	if e.hasJoiners(id) {
		release = e.net.DisconnectAll
	}
	if err := release(ctx, id); err != nil {
		e.log.Warn("disconnect networks", "id", id, "err", err)
	}
	if err := bnet.DeleteNetns(e.netnsPath(id)); err != nil {
		e.log.Warn("delete netns", "id", id, "err", err)
	}
}

func dnsStrings(hc *container.HostConfig) []string {
	var out []string
	for _, a := range hc.DNS {
		out = append(out, a.String())
	}
	return out
}

// hasJoiners reports a running container in id's network namespace
// (--network container:<id>).
func (e *Engine) hasJoiners(id string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, c := range e.byID {
		m := parseNetworkMode(c.HostConfig.NetworkMode)
		if m.kind != modeContainer || c.State.Status != StatusRunning {
			continue
		}
		if o, err := e.lookup(m.name); err == nil && o.ID == id {
			return true
		}
	}
	return false
}

func (e *Engine) etcPath(id, name string) string { return filepath.Join(e.containerDir(id), name) }

// writeEtc writes a container's hosts, hostname and resolv.conf. They are
// bind-mounted into a running container: os.WriteFile truncates and
// writes in place, keeping the inode the container sees (a rename would not).
func (e *Engine) writeEtc(id string, hosts, hostname, resolv []byte) error {
	for name, data := range map[string][]byte{"hosts": hosts, "hostname": hostname, "resolv.conf": resolv} {
		if err := os.WriteFile(e.etcPath(id, name), data, 0o644); err != nil {
			return fmt.Errorf("write %s: %w", name, err)
		}
	}
	return nil
}

func (e *Engine) writeNetFiles(id string, cfg *container.Config, hc *container.HostConfig) error {
	hosts, hostname, resolv, err := e.net.Files(id, bnet.FilesOptions{
		Hostname: cfg.Hostname, Domainname: cfg.Domainname, ExtraHosts: hc.ExtraHosts,
		DNS: dnsStrings(hc), DNSSearch: hc.DNSSearch, DNSOptions: hc.DNSOptions,
	})
	if err != nil {
		return err
	}
	return e.writeEtc(id, hosts, hostname, resolv)
}

// writeHostFiles: --network host sees the host's files, with --add-host
// lines appended (docker's behaviour).
func (e *Engine) writeHostFiles(id string, cfg *container.Config) error {
	hosts, _ := os.ReadFile("/etc/hosts")
	resolv, _ := os.ReadFile("/etc/resolv.conf")
	hostname := cfg.Hostname
	if hostname == "" {
		hostname, _ = os.Hostname()
	}
	return e.writeEtc(id, hosts, []byte(hostname+"\n"), resolv)
}

// copyJoinedFiles: container:<id> shares the other container's files.
func (e *Engine) copyJoinedFiles(id string, hc *container.HostConfig) error {
	m := parseNetworkMode(hc.NetworkMode)
	e.mu.Lock()
	o, err := e.lookup(m.name)
	e.mu.Unlock()
	if err != nil {
		return err
	}
	var files [3][]byte
	for i, name := range []string{"hosts", "hostname", "resolv.conf"} {
		if files[i], err = os.ReadFile(e.etcPath(o.ID, name)); err != nil {
			return fmt.Errorf("read %s of %.12s: %w", name, o.ID, err)
		}
	}
	return e.writeEtc(id, files[0], files[1], files[2])
}

// restoreNetwork gives the manager the namespaces of the containers that
// still run after a daemon restart; the rest of its endpoints are released.
func (e *Engine) restoreNetwork(ctx context.Context) {
	if e.net == nil {
		return
	}
	running := map[string]string{}
	e.mu.Lock()
	for id, c := range e.byID {
		if c.State.Status == StatusRunning && parseNetworkMode(c.HostConfig.NetworkMode).kind == modeBridge {
			running[id] = e.netnsPath(id)
		}
	}
	e.mu.Unlock()
	if err := e.net.Restore(ctx, running); err != nil {
		e.log.Warn("restore networks", "err", err)
	}
}

func endpointID(containerID, networkID string) string {
	h := sha256.Sum256([]byte(containerID + "/" + networkID))
	return hex.EncodeToString(h[:])
}

// NetworkSettings is a container's NetworkSettings as docker's inspect
// shows it: the configured networks, with addresses while it runs, and the
// exposed ports with their host bindings.
func (e *Engine) NetworkSettings(c Container) *container.NetworkSettings {
	ns := &container.NetworkSettings{Networks: map[string]*network.EndpointSettings{}, Ports: network.PortMap{}}
	var eps []bnet.EndpointInfo
	if e.net != nil && c.State.Status == StatusRunning {
		eps = e.net.Endpoints(c.ID)
		if len(eps) > 0 {
			ns.SandboxKey = e.netnsPath(c.ID)
		}
	}
	for name, es := range c.Networks {
		out := es.Copy()
		for _, ep := range eps {
			if ep.Network != es.NetworkID {
				continue
			}
			out.EndpointID = endpointID(c.ID, ep.Network)
			out.IPAddress = ep.Address.Addr()
			out.IPPrefixLen = ep.Address.Bits()
			if n, err := e.net.Network(ep.Network); err == nil {
				out.Gateway = n.Gateway
				if !n.Predefined {
					out.DNSNames = append([]string{trimSlash(c.Name)}, ep.Aliases...)
					out.DNSNames = append(out.DNSNames, c.ID[:12])
				}
			}
			if mac, err := net.ParseMAC(ep.MAC); err == nil {
				out.MacAddress = network.HardwareAddr(mac)
			}
			for _, p := range ep.Ports {
				port, ok := network.PortFrom(p.ContainerPort, network.IPProtocol(p.Proto))
				if !ok {
					continue
				}
				hip := netip.IPv4Unspecified()
				if p.HostIP.IsValid() {
					hip = p.HostIP
				}
				ns.Ports[port] = append(ns.Ports[port], network.PortBinding{HostIP: hip, HostPort: strconv.Itoa(int(p.HostPort))})
			}
		}
		ns.Networks[name] = out
	}
	if c.State.Status == StatusRunning {
		for p := range c.Config.ExposedPorts {
			if _, ok := ns.Ports[p]; !ok {
				ns.Ports[p] = nil
			}
		}
		for p := range c.HostConfig.PortBindings {
			if _, ok := ns.Ports[p]; !ok {
				ns.Ports[p] = nil
			}
		}
	}
	return ns
}

// PortSummary is ps's view of a container's ports (docker's Summary.Ports).
func (e *Engine) PortSummary(c Container) []container.PortSummary {
	out := []container.PortSummary{}
	ns := e.NetworkSettings(c)
	for p, bs := range ns.Ports {
		if len(bs) == 0 {
			out = append(out, container.PortSummary{PrivatePort: p.Num(), Type: string(p.Proto())})
			continue
		}
		for _, b := range bs {
			hp, _ := strconv.ParseUint(b.HostPort, 10, 16)
			out = append(out, container.PortSummary{IP: b.HostIP, PrivatePort: p.Num(), PublicPort: uint16(hp), Type: string(p.Proto())})
		}
	}
	slices.SortFunc(out, func(a, b container.PortSummary) int {
		if a.PrivatePort != b.PrivatePort {
			return int(a.PrivatePort) - int(b.PrivatePort)
		}
		return strings.Compare(a.Type, b.Type)
	})
	return out
}
