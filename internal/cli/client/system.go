package client

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"

	"github.com/moby/moby/api/types/build"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/events"
	imagetypes "github.com/moby/moby/api/types/image"
	"github.com/moby/moby/api/types/registry"
	"github.com/moby/moby/api/types/system"
	"github.com/moby/moby/api/types/volume"
)

// InfoOptions is GET /info.
type InfoOptions struct{}

// SystemInfoResult is the daemon's info.
type SystemInfoResult struct {
	Info system.Info
}

// Info asks for the daemon's system information.
func (c *Client) Info(ctx context.Context, _ InfoOptions) (SystemInfoResult, error) {
	var res SystemInfoResult
	return res, c.call(ctx, get("/info", nil), &res.Info)
}

// ServerVersionOptions is GET /version.
type ServerVersionOptions struct{}

// PlatformInfo names the server's product.
type PlatformInfo struct {
	Name string
}

// ServerVersionResult is the daemon's version.
type ServerVersionResult struct {
	Platform      PlatformInfo
	Version       string
	APIVersion    string
	MinAPIVersion string
	Os            string
	Arch          string
	Experimental  bool
	Components    []system.ComponentVersion
}

// ServerVersion asks for the daemon's version.
func (c *Client) ServerVersion(ctx context.Context, _ ServerVersionOptions) (ServerVersionResult, error) {
	var v system.VersionResponse
	if err := c.call(ctx, get("/version", nil), &v); err != nil {
		return ServerVersionResult{}, err
	}
	return ServerVersionResult{
		Platform: PlatformInfo{Name: v.Platform.Name}, Version: v.Version, APIVersion: v.APIVersion,
		MinAPIVersion: v.MinAPIVersion, Os: v.Os, Arch: v.Arch,
		Experimental: v.Experimental, //nolint:staticcheck // still sent by daemons
		Components:   v.Components,
	}, nil
}

// DiskUsageOptions is GET /system/df.
type DiskUsageOptions struct {
	Containers bool
	Images     bool
	BuildCache bool
	Volumes    bool
	Verbose    bool
}

// DiskUsage is one kind of object's usage; Items only when verbose.
type DiskUsage[T any] struct {
	ActiveCount int64
	TotalCount  int64
	Reclaimable int64
	TotalSize   int64
	Items       []T
}

// Per-kind usage, named as the CLI uses them.
type (
	ContainersDiskUsage = DiskUsage[container.Summary]
	ImagesDiskUsage     = DiskUsage[imagetypes.Summary]
	VolumesDiskUsage    = DiskUsage[volume.Volume]
	BuildCacheDiskUsage = DiskUsage[build.CacheRecord]
)

// DiskUsageResult is the daemon's disk usage by kind.
type DiskUsageResult struct {
	Containers ContainersDiskUsage
	Images     ImagesDiskUsage
	BuildCache BuildCacheDiskUsage
	Volumes    VolumesDiskUsage
}

// DiskUsage asks for the daemon's disk usage.
func (c *Client) DiskUsage(ctx context.Context, o DiskUsageOptions) (DiskUsageResult, error) {
	q := url.Values{}
	for _, k := range []struct {
		on   bool
		kind system.DiskUsageObject
	}{{o.Containers, system.ContainerObject}, {o.Images, system.ImageObject}, {o.Volumes, system.VolumeObject}, {o.BuildCache, system.BuildCacheObject}} {
		if k.on {
			q.Add("type", string(k.kind))
		}
	}
	flag(q, o.Verbose, "verbose", "1")
	resp, err := c.send(ctx, get("/system/df", q))
	if err != nil {
		return DiskUsageResult{}, err
	}
	defer drain(resp)
	var du system.DiskUsage
	if err := json.NewDecoder(resp.Body).Decode(&du); err != nil {
		return DiskUsageResult{}, fmt.Errorf("retrieving disk usage: %w", err)
	}
	var r DiskUsageResult
	if u := du.ContainerUsage; u != nil {
		r.Containers = usage(u.ActiveCount, u.TotalCount, u.Reclaimable, u.TotalSize, u.Items, o.Verbose)
	}
	if u := du.ImageUsage; u != nil {
		r.Images = usage(u.ActiveCount, u.TotalCount, u.Reclaimable, u.TotalSize, u.Items, o.Verbose)
	}
	if u := du.VolumeUsage; u != nil {
		r.Volumes = usage(u.ActiveCount, u.TotalCount, u.Reclaimable, u.TotalSize, u.Items, o.Verbose)
	}
	if u := du.BuildCacheUsage; u != nil {
		r.BuildCache = usage(u.ActiveCount, u.TotalCount, u.Reclaimable, u.TotalSize, u.Items, o.Verbose)
	}
	return r, nil
}

func usage[T any](active, total, reclaimable, size int64, items []T, verbose bool) DiskUsage[T] {
	u := DiskUsage[T]{ActiveCount: active, TotalCount: total, Reclaimable: reclaimable, TotalSize: size}
	if verbose {
		u.Items = items
	}
	return u
}

// EventsListOptions is GET /events.
type EventsListOptions struct {
	Since   string
	Until   string
	Filters Filters
}

// EventsResult delivers events until an error (io.EOF once --until is
// reached) arrives on Err.
type EventsResult struct {
	Messages <-chan events.Message
	Err      <-chan error
}

// Events streams the daemon's events.
func (c *Client) Events(ctx context.Context, o EventsListOptions) EventsResult {
	msgs := make(chan events.Message)
	errs := make(chan error, 1)
	res := EventsResult{Messages: msgs, Err: errs}
	q := url.Values{}
	if _, err := setTimes(q, o.Since, o.Until); err != nil {
		errs <- err
		return res
	}
	o.Filters.set(q)
	h := http.Header{"Accept": {"application/jsonl", "application/x-ndjson;q=0.9"}}
	resp, err := c.send(ctx, request{method: http.MethodGet, path: "/events", query: q, header: h})
	if err != nil {
		errs <- err
		return res
	}
	go func() {
		defer resp.Body.Close()
		body := newCtxBody(ctx, resp.Body)
		dec := json.NewDecoder(body)
		for {
			var m events.Message
			if err := dec.Decode(&m); err != nil {
				if ctx.Err() != nil {
					err = ctx.Err()
				}
				errs <- err
				return
			}
			select {
			case msgs <- m:
			case <-ctx.Done():
				errs <- ctx.Err()
				return
			}
		}
	}()
	return res
}

// RegistryLoginOptions is POST /auth.
type RegistryLoginOptions struct {
	Username      string
	Password      string
	ServerAddress string
	IdentityToken string
	RegistryToken string
}

// RegistryLoginResult is the daemon's answer.
type RegistryLoginResult struct {
	Auth registry.AuthResponse
}

// RegistryLogin has the daemon check credentials against a registry.
func (c *Client) RegistryLogin(ctx context.Context, o RegistryLoginOptions) (RegistryLoginResult, error) {
	var res RegistryLoginResult
	return res, c.call(ctx, post("/auth", nil, registry.AuthConfig{
		Username: o.Username, Password: o.Password, ServerAddress: o.ServerAddress,
		IdentityToken: o.IdentityToken, RegistryToken: o.RegistryToken,
	}), &res.Auth)
}
