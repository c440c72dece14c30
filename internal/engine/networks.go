package engine

// The /networks API: docker's network objects over network.Manager, and
// connect/disconnect of containers.

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sort"
	"strings"

	"github.com/moby/moby/api/types/network"

	"github.com/berth-dev/berth/internal/errdefs"
	bnet "github.com/berth-dev/berth/internal/network"
)

// bridgeNameOption is docker's option naming a network's bridge interface.
const bridgeNameOption = "com.docker.network.bridge.name"

func (e *Engine) requireNetworks() error {
	if e.net == nil {
		return fmt.Errorf("networking is not enabled in this daemon: %w", errdefs.ErrNotImplemented)
	}
	return nil
}

// networkObject is docker's view of one network.
func (e *Engine) networkObject(n bnet.NetworkInfo, withContainers bool) network.Inspect {
	out := network.Inspect{Network: network.Network{
		Name: n.Name, ID: n.ID, Created: n.Created, Scope: "local", Driver: n.Driver,
		EnableIPv4: n.Driver == "bridge", Internal: n.Internal,
		IPAM:    network.IPAM{Driver: "default", Options: map[string]string{}, Config: []network.IPAMConfig{}},
		Options: map[string]string{}, Labels: map[string]string{},
		ConfigFrom: network.ConfigReference{},
	}, Containers: map[string]network.EndpointResource{}}
	for k, v := range n.Labels {
		out.Labels[k] = v
	}
	if n.Driver == "bridge" {
		out.IPAM.Config = append(out.IPAM.Config, network.IPAMConfig{Subnet: n.Subnet, Gateway: n.Gateway, IPRange: n.IPRange})
		if n.Predefined {
			out.Options = map[string]string{
				"com.docker.network.bridge.default_bridge":       "true",
				"com.docker.network.bridge.enable_icc":           "true",
				"com.docker.network.bridge.enable_ip_masquerade": "true",
				bridgeNameOption: n.Bridge,
			}
		} else if !strings.HasPrefix(n.Bridge, "br-") {
			out.Options[bridgeNameOption] = n.Bridge
		}
	}
	if !withContainers {
		return out
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if n.Driver == "host" || n.Driver == "null" {
		// No endpoints of the manager's: the running containers in that mode.
		for id, c := range e.byID {
			if c.State.Status == StatusRunning && parseNetworkMode(c.HostConfig.NetworkMode).kind == n.Name {
				out.Containers[id] = network.EndpointResource{Name: trimSlash(c.Name), EndpointID: endpointID(id, n.ID)}
			}
		}
	}
	for id, ep := range n.Endpoints {
		name := ep.Name
		if c, ok := e.byID[id]; ok {
			name = trimSlash(c.Name)
		}
		res := network.EndpointResource{Name: name, EndpointID: endpointID(id, n.ID), IPv4Address: ep.Address}
		if mac, err := net.ParseMAC(ep.MAC); err == nil {
			res.MacAddress = network.HardwareAddr(mac)
		}
		out.Containers[id] = res
	}
	return out
}

// Networks lists the networks, docker's summaries.
func (e *Engine) Networks() []network.Inspect {
	if e.net == nil {
		return nil
	}
	var out []network.Inspect
	for _, n := range e.net.Networks() {
		out = append(out, e.networkObject(n, true))
	}
	return out
}

// Network inspects one network by name, ID or ID prefix.
func (e *Engine) Network(ref string) (network.Inspect, error) {
	if err := e.requireNetworks(); err != nil {
		return network.Inspect{}, err
	}
	n, err := e.net.Network(ref)
	if err != nil {
		return network.Inspect{}, err
	}
	return e.networkObject(n, true), nil
}

// CreateNetwork is `network create`.
func (e *Engine) CreateNetwork(ctx context.Context, req network.CreateRequest) (network.CreateResponse, error) {
	if err := e.requireNetworks(); err != nil {
		return network.CreateResponse{}, err
	}
	if req.Name == "" {
		return network.CreateResponse{}, fmt.Errorf("network name cannot be empty: %w", errdefs.ErrInvalidArgument)
	}
	switch req.Driver {
	case "", "bridge":
	default:
		return network.CreateResponse{}, fmt.Errorf("plugin %q not found: %w", req.Driver, errdefs.ErrNotFound)
	}
	if req.EnableIPv6 != nil && *req.EnableIPv6 {
		return network.CreateResponse{}, fmt.Errorf("IPv6 networks are not supported yet: %w", errdefs.ErrNotImplemented)
	}
	if req.ConfigOnly || req.ConfigFrom != nil || req.Ingress || (req.Scope != "" && req.Scope != "local") {
		return network.CreateResponse{}, fmt.Errorf("only local bridge networks are supported: %w", errdefs.ErrNotImplemented)
	}
	switch req.Name {
	case bnet.BridgeNetwork, bnet.HostNetwork, bnet.NoneNetwork:
		return network.CreateResponse{}, fmt.Errorf("%s is a pre-defined network and cannot be created: %w", req.Name, errdefs.ErrPermissionDenied)
	}
	spec := bnet.NetworkSpec{Name: req.Name, Driver: "bridge", Internal: req.Internal, Labels: req.Labels, BridgeName: req.Options[bridgeNameOption]}
	if req.IPAM != nil {
		if d := req.IPAM.Driver; d != "" && d != "default" {
			return network.CreateResponse{}, fmt.Errorf("plugin %q not found: %w", d, errdefs.ErrNotFound)
		}
		if len(req.IPAM.Config) > 1 {
			return network.CreateResponse{}, fmt.Errorf("only one IPv4 subnet per network is supported: %w", errdefs.ErrNotImplemented)
		}
		if len(req.IPAM.Config) == 1 {
			c := req.IPAM.Config[0]
			if c.Subnet.IsValid() {
				if !c.Subnet.Addr().Is4() {
					return network.CreateResponse{}, fmt.Errorf("IPv6 subnets are not supported yet: %w", errdefs.ErrNotImplemented)
				}
				spec.Subnet = c.Subnet.String()
			}
			if c.Gateway.IsValid() {
				spec.Gateway = c.Gateway.String()
			}
			if c.IPRange.IsValid() {
				spec.IPRange = c.IPRange.String()
			}
		}
	}
	n, err := e.net.CreateNetwork(ctx, spec)
	if err != nil {
		if errdefs.IsConflict(err) && strings.Contains(err.Error(), "already exists") {
			return network.CreateResponse{}, err
		}
		return network.CreateResponse{}, e.netErr(err)
	}
	e.Emit("network", "create", n.ID, map[string]string{"name": n.Name, "type": n.Driver})
	return network.CreateResponse{ID: n.ID}, nil
}

// RemoveNetwork is `network rm`; docker answers 403 for a network in use
// or a pre-defined one.
func (e *Engine) RemoveNetwork(ctx context.Context, ref string) error {
	if err := e.requireNetworks(); err != nil {
		return err
	}
	n, err := e.net.Network(ref)
	if err != nil {
		return err
	}
	if n.Predefined {
		return fmt.Errorf("%s is a pre-defined network and cannot be removed: %w", n.Name, errdefs.ErrPermissionDenied)
	}
	// Stopped containers configured on the network do not block docker's
	// rm either; they fail to start later.
	if err := e.net.RemoveNetwork(ctx, n.ID); err != nil {
		if errdefs.IsConflict(err) {
			return fmt.Errorf("error while removing network: network %s has active endpoints: %w", n.Name, errdefs.ErrPermissionDenied)
		}
		return err
	}
	e.Emit("network", "destroy", n.ID, map[string]string{"name": n.Name, "type": n.Driver})
	return nil
}

// PruneNetworks removes the unused user-defined networks for which keep
// returns false; it returns their names.
func (e *Engine) PruneNetworks(ctx context.Context, keep func(network.Inspect) bool) ([]string, error) {
	if err := e.requireNetworks(); err != nil {
		return nil, err
	}
	// A network some container is configured for (even stopped) is in use
	// for prune, as docker's.
	used := map[string]bool{}
	e.mu.Lock()
	for _, c := range e.byID {
		for _, es := range c.Networks {
			used[es.NetworkID] = true
		}
	}
	e.mu.Unlock()
	var removed []string
	for _, n := range e.net.Networks() {
		if n.Predefined || used[n.ID] || len(n.Endpoints) > 0 {
			continue
		}
		if keep != nil && keep(e.networkObject(n, false)) {
			continue
		}
		if err := e.net.RemoveNetwork(ctx, n.ID); err != nil {
			if errdefs.IsConflict(err) || errdefs.IsNotFound(err) {
				continue
			}
			return removed, err
		}
		e.Emit("network", "destroy", n.ID, map[string]string{"name": n.Name, "type": n.Driver})
		removed = append(removed, n.Name)
	}
	sort.Strings(removed)
	e.Emit("network", "prune", "", map[string]string{})
	return removed, nil
}

// ConnectNetwork is `network connect`: a running container gets its
// endpoint at once (and its hosts/resolv.conf rewritten), a stopped one at
// its next start.
func (e *Engine) ConnectNetwork(ctx context.Context, ref, containerRef string, es *network.EndpointSettings) error {
	if err := e.requireNetworks(); err != nil {
		return err
	}
	n, err := e.net.Network(ref)
	if err != nil {
		return err
	}
	if es == nil {
		es = &network.EndpointSettings{}
	}
	e.mu.Lock()
	c, err := e.lookup(containerRef)
	if err != nil {
		e.mu.Unlock()
		return err
	}
	mode := parseNetworkMode(c.HostConfig.NetworkMode)
	id, name, running := c.ID, trimSlash(c.Name), c.State.Status == StatusRunning
	_, already := c.Networks[n.Name]
	e.mu.Unlock()
	switch {
	case mode.kind == modeContainer:
		return fmt.Errorf("container sharing network namespace with another container or host cannot be connected to any other network: %w", errdefs.ErrPermissionDenied)
	case mode.kind == modeHost || n.Driver == "host":
		return fmt.Errorf("container cannot be disconnected from host network or connected to host network: %w", errdefs.ErrPermissionDenied)
	case mode.kind == modeNone || n.Driver == "null":
		return fmt.Errorf("container cannot be connected to multiple networks with one of the networks in private (none) mode: %w", errdefs.ErrPermissionDenied)
	case already:
		return fmt.Errorf("endpoint with name %s already exists in network %s: %w", name, n.Name, errdefs.ErrPermissionDenied)
	}
	if err := checkEndpoint(n, es); err != nil {
		return err
	}
	rec := &network.EndpointSettings{NetworkID: n.ID, Aliases: es.Aliases, IPAMConfig: es.IPAMConfig, MacAddress: es.MacAddress}
	if running {
		spec := bnet.EndpointSpec{ContainerID: id, Name: name, NetnsPath: e.netnsPath(id), Aliases: es.Aliases, MAC: net.HardwareAddr(es.MacAddress)}
		if es.IPAMConfig != nil {
			spec.IP = es.IPAMConfig.IPv4Address
		}
		e.mu.Lock()
		spec.DNS = dnsStrings(c.HostConfig)
		e.mu.Unlock()
		if _, err := e.net.Connect(ctx, n.ID, spec); err != nil {
			if errdefs.IsConflict(err) && strings.Contains(err.Error(), "already exists") {
				return fmt.Errorf("endpoint with name %s already exists in network %s: %w", name, n.Name, errdefs.ErrPermissionDenied)
			}
			return e.netErr(err)
		}
	}
	e.mu.Lock()
	nets := map[string]*network.EndpointSettings{}
	for k, v := range c.Networks {
		nets[k] = v
	}
	nets[n.Name] = rec
	c.Networks = nets
	err = e.save(c)
	cfg, hc := c.Config, c.HostConfig
	e.mu.Unlock()
	if err != nil {
		if running {
			_ = e.net.Disconnect(context.WithoutCancel(ctx), n.ID, id)
		}
		return err
	}
	if running {
		if err := e.writeNetFiles(id, cfg, hc); err != nil {
			e.log.Warn("rewrite network files", "id", id, "err", err)
		}
	}
	e.Emit("network", "connect", n.ID, map[string]string{"name": n.Name, "type": n.Driver, "container": id})
	return nil
}

// DisconnectNetwork is `network disconnect`.
func (e *Engine) DisconnectNetwork(ctx context.Context, ref, containerRef string, force bool) error {
	if err := e.requireNetworks(); err != nil {
		return err
	}
	n, err := e.net.Network(ref)
	if err != nil {
		return err
	}
	e.mu.Lock()
	c, err := e.lookup(containerRef)
	if err != nil {
		e.mu.Unlock()
		if force && errdefs.IsNotFound(err) {
			// docker's --force also removes the endpoint of a container it
			// no longer knows.
			for id := range n.Endpoints {
				if strings.HasPrefix(id, containerRef) {
					return e.net.Disconnect(ctx, n.ID, id)
				}
			}
		}
		return err
	}
	id, running := c.ID, c.State.Status == StatusRunning
	_, configured := c.Networks[n.Name]
	mode := parseNetworkMode(c.HostConfig.NetworkMode)
	e.mu.Unlock()
	if mode.kind == modeHost || n.Driver == "host" {
		return fmt.Errorf("container cannot be disconnected from host network or connected to host network: %w", errdefs.ErrPermissionDenied)
	}
	if !configured {
		return fmt.Errorf("container %s is not connected to network %s: %w", id, n.Name, errdefs.ErrPermissionDenied)
	}
	if running && n.Driver == "bridge" {
		if err := e.net.Disconnect(ctx, n.ID, id); err != nil && !errdefs.IsNotFound(err) {
			return err
		}
	}
	e.mu.Lock()
	nets := map[string]*network.EndpointSettings{}
	for k, v := range c.Networks {
		if k != n.Name {
			nets[k] = v
		}
	}
	c.Networks = nets
	err = e.save(c)
	cfg, hc := c.Config, c.HostConfig
	e.mu.Unlock()
	if err != nil {
		return err
	}
	if running {
		if err := e.writeNetFiles(id, cfg, hc); err != nil && !errors.Is(err, errdefs.ErrNotFound) {
			e.log.Warn("rewrite network files", "id", id, "err", err)
		}
	}
	e.Emit("network", "disconnect", n.ID, map[string]string{"name": n.Name, "type": n.Driver, "container": id})
	return nil
}
