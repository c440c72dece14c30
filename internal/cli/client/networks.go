package client

import (
	"context"
	"encoding/json"
	"net/url"

	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/api/types/volume"
)

// NetworkCreateOptions is POST /networks/create.
type NetworkCreateOptions struct {
	Driver     string
	Scope      string
	EnableIPv4 *bool
	EnableIPv6 *bool
	IPAM       *network.IPAM
	Internal   bool
	Attachable bool
	Ingress    bool
	ConfigOnly bool
	ConfigFrom string
	Options    map[string]string
	Labels     map[string]string
}

// NetworkCreateResult is the new network.
type NetworkCreateResult struct {
	ID      string
	Warning []string
}

// NetworkCreate creates a network.
func (c *Client) NetworkCreate(ctx context.Context, name string, o NetworkCreateOptions) (NetworkCreateResult, error) {
	req := network.CreateRequest{Name: name, Driver: o.Driver, Scope: o.Scope, EnableIPv4: o.EnableIPv4,
		EnableIPv6: o.EnableIPv6, IPAM: o.IPAM, Internal: o.Internal, Attachable: o.Attachable,
		Ingress: o.Ingress, ConfigOnly: o.ConfigOnly, Options: o.Options, Labels: o.Labels}
	if o.ConfigFrom != "" {
		req.ConfigFrom = &network.ConfigReference{Network: o.ConfigFrom}
	}
	var res network.CreateResponse
	if err := c.call(ctx, post("/networks/create", nil, req), &res); err != nil {
		return NetworkCreateResult{}, err
	}
	out := NetworkCreateResult{ID: res.ID}
	if res.Warning != "" {
		out.Warning = []string{res.Warning}
	}
	return out, nil
}

// NetworkInspectOptions is GET /networks/{id}.
type NetworkInspectOptions struct {
	Scope   string
	Verbose bool
}

// NetworkInspectResult is the network and the daemon's raw JSON.
type NetworkInspectResult struct {
	Network network.Inspect
	Raw     json.RawMessage
}

// NetworkInspect inspects a network.
func (c *Client) NetworkInspect(ctx context.Context, id string, o NetworkInspectOptions) (NetworkInspectResult, error) {
	id, err := checkID("network", id)
	if err != nil {
		return NetworkInspectResult{}, err
	}
	q := url.Values{}
	flag(q, o.Verbose, "verbose", "true")
	flag(q, o.Scope != "", "scope", o.Scope)
	var res NetworkInspectResult
	res.Raw, err = c.callRaw(ctx, get("/networks/"+id, q), &res.Network)
	return res, err
}

// NetworkListOptions is GET /networks.
type NetworkListOptions struct {
	Filters Filters
}

// NetworkListResult is the networks.
type NetworkListResult struct {
	Items []network.Summary
}

// NetworkList lists networks.
func (c *Client) NetworkList(ctx context.Context, o NetworkListOptions) (NetworkListResult, error) {
	q := url.Values{}
	o.Filters.set(q)
	var res NetworkListResult
	return res, c.call(ctx, get("/networks", q), &res.Items)
}

// NetworkRemoveOptions is DELETE /networks/{id}.
type NetworkRemoveOptions struct{}

// NetworkRemoveResult is empty.
type NetworkRemoveResult struct{}

// NetworkRemove removes a network.
func (c *Client) NetworkRemove(ctx context.Context, id string, _ NetworkRemoveOptions) (NetworkRemoveResult, error) {
	id, err := checkID("network", id)
	if err != nil {
		return NetworkRemoveResult{}, err
	}
	return NetworkRemoveResult{}, c.call(ctx, del("/networks/"+id, nil), nil)
}

// NetworkConnectOptions is POST /networks/{id}/connect.
type NetworkConnectOptions struct {
	Container      string
	EndpointConfig *network.EndpointSettings
}

// NetworkConnectResult is empty.
type NetworkConnectResult struct{}

// NetworkConnect connects a container to a network.
func (c *Client) NetworkConnect(ctx context.Context, id string, o NetworkConnectOptions) (NetworkConnectResult, error) {
	id, err := checkID("network", id)
	if err != nil {
		return NetworkConnectResult{}, err
	}
	ctr, err := checkID("container", o.Container)
	if err != nil {
		return NetworkConnectResult{}, err
	}
	return NetworkConnectResult{}, c.call(ctx, post("/networks/"+id+"/connect", nil,
		network.ConnectRequest{Container: ctr, EndpointConfig: o.EndpointConfig}), nil)
}

// NetworkDisconnectOptions is POST /networks/{id}/disconnect.
type NetworkDisconnectOptions struct {
	Container string
	Force     bool
}

// NetworkDisconnectResult is empty.
type NetworkDisconnectResult struct{}

// NetworkDisconnect disconnects a container from a network.
func (c *Client) NetworkDisconnect(ctx context.Context, id string, o NetworkDisconnectOptions) (NetworkDisconnectResult, error) {
	id, err := checkID("network", id)
	if err != nil {
		return NetworkDisconnectResult{}, err
	}
	ctr, err := checkID("container", o.Container)
	if err != nil {
		return NetworkDisconnectResult{}, err
	}
	return NetworkDisconnectResult{}, c.call(ctx, post("/networks/"+id+"/disconnect", nil,
		network.DisconnectRequest{Container: ctr, Force: o.Force}), nil)
}

// NetworkPruneOptions is POST /networks/prune.
type NetworkPruneOptions = PruneOptions

// NetworkPruneResult is the daemon's report.
type NetworkPruneResult struct {
	Report network.PruneReport
}

// NetworkPrune removes unused networks.
func (c *Client) NetworkPrune(ctx context.Context, o NetworkPruneOptions) (NetworkPruneResult, error) {
	var res NetworkPruneResult
	return res, c.prune(ctx, "/networks/prune", o.Filters, &res.Report)
}

// VolumeCreateOptions is POST /volumes/create.
type VolumeCreateOptions struct {
	Name       string
	Driver     string
	DriverOpts map[string]string
	Labels     map[string]string
}

// VolumeCreateResult is the new volume.
type VolumeCreateResult struct {
	Volume volume.Volume
}

// VolumeCreate creates a volume.
func (c *Client) VolumeCreate(ctx context.Context, o VolumeCreateOptions) (VolumeCreateResult, error) {
	var res VolumeCreateResult
	return res, c.call(ctx, post("/volumes/create", nil, volume.CreateRequest{Name: o.Name, Driver: o.Driver, DriverOpts: o.DriverOpts, Labels: o.Labels}), &res.Volume)
}

// VolumeInspectOptions is GET /volumes/{name}.
type VolumeInspectOptions struct{}

// VolumeInspectResult is the volume and the daemon's raw JSON.
type VolumeInspectResult struct {
	Volume volume.Volume
	Raw    json.RawMessage
}

// VolumeInspect inspects a volume.
func (c *Client) VolumeInspect(ctx context.Context, name string, _ VolumeInspectOptions) (VolumeInspectResult, error) {
	name, err := checkID("volume", name)
	if err != nil {
		return VolumeInspectResult{}, err
	}
	var res VolumeInspectResult
	res.Raw, err = c.callRaw(ctx, get("/volumes/"+name, nil), &res.Volume)
	return res, err
}

// VolumeListOptions is GET /volumes.
type VolumeListOptions struct {
	Filters Filters
}

// VolumeListResult is the volumes and the daemon's warnings.
type VolumeListResult struct {
	Items    []volume.Volume
	Warnings []string
}

// VolumeList lists volumes.
func (c *Client) VolumeList(ctx context.Context, o VolumeListOptions) (VolumeListResult, error) {
	q := url.Values{}
	o.Filters.set(q)
	var res volume.ListResponse
	err := c.call(ctx, get("/volumes", q), &res)
	return VolumeListResult{Items: res.Volumes, Warnings: res.Warnings}, err
}

// VolumeRemoveOptions is DELETE /volumes/{name}.
type VolumeRemoveOptions struct {
	Force bool
}

// VolumeRemoveResult is empty.
type VolumeRemoveResult struct{}

// VolumeRemove removes a volume.
func (c *Client) VolumeRemove(ctx context.Context, name string, o VolumeRemoveOptions) (VolumeRemoveResult, error) {
	name, err := checkID("volume", name)
	if err != nil {
		return VolumeRemoveResult{}, err
	}
	q := url.Values{}
	flag(q, o.Force, "force", "1")
	return VolumeRemoveResult{}, c.call(ctx, del("/volumes/"+name, q), nil)
}

// VolumePruneOptions is POST /volumes/prune.
type VolumePruneOptions struct {
	All     bool
	Filters Filters
}

// VolumePruneResult is the daemon's report.
type VolumePruneResult struct {
	Report volume.PruneReport
}

// VolumePrune removes unused volumes (anonymous ones only unless All).
func (c *Client) VolumePrune(ctx context.Context, o VolumePruneOptions) (VolumePruneResult, error) {
	f := o.Filters
	if o.All {
		if _, ok := f["all"]; ok {
			return VolumePruneResult{}, invalidArgument(`conflicting options: cannot specify both "all" and "all" filter`)
		}
		f = o.Filters.Clone().Add("all", "true")
	}
	var res VolumePruneResult
	return res, c.prune(ctx, "/volumes/prune", f, &res.Report)
}
