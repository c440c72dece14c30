package client

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"path"
	"strconv"
	"strings"

	"github.com/moby/moby/api/types/build"
	imagetypes "github.com/moby/moby/api/types/image"
	"github.com/moby/moby/api/types/registry"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/berth-dev/berth/internal/image"
)

// ImagePullOptions is POST /images/create.
type ImagePullOptions struct {
	All          bool
	RegistryAuth string // base64 JSON credentials, sent as X-Registry-Auth
	Platforms    []ocispec.Platform
}

// ImagePull pulls an image and returns the daemon's progress stream
// (JSON messages).
func (c *Client) ImagePull(ctx context.Context, name string, o ImagePullOptions) (io.ReadCloser, error) {
	ref, err := image.ParseNamed(name)
	if err != nil {
		return nil, err
	}
	q := url.Values{"fromImage": {ref.Name()}}
	if !o.All {
		if ref.Digest != "" {
			q.Set("tag", ref.Digest.String())
		} else {
			q.Set("tag", ref.OrLatest().Tag)
		}
	}
	if len(o.Platforms) > 1 {
		return nil, invalidArgument("specifying multiple platforms is not yet supported")
	}
	if len(o.Platforms) == 1 {
		q.Set("platform", platformString(o.Platforms[0]))
	}
	return c.stream(ctx, request{method: http.MethodPost, path: "/images/create", query: q, header: authHeader(o.RegistryAuth)})
}

// ImagePushOptions is POST /images/{name}/push.
type ImagePushOptions struct {
	All          bool
	RegistryAuth string
}

// ImagePush pushes an image and returns the daemon's progress stream.
func (c *Client) ImagePush(ctx context.Context, name string, o ImagePushOptions) (io.ReadCloser, error) {
	ref, err := image.ParseNamed(name)
	if err != nil {
		return nil, err
	}
	if ref.Digest != "" {
		return nil, errors.New("cannot push a digest reference")
	}
	q := url.Values{}
	if !o.All {
		q.Set("tag", ref.OrLatest().Tag)
	}
	return c.stream(ctx, request{method: http.MethodPost, path: "/images/" + ref.Name() + "/push", query: q, header: authHeader(o.RegistryAuth)})
}

func authHeader(auth string) http.Header {
	h := http.Header{}
	if auth != "" {
		h.Set(registry.AuthHeader, auth)
	}
	return h
}

func platformString(p ocispec.Platform) string {
	if p.OS == "" {
		return "unknown"
	}
	return path.Join(p.OS, p.Architecture, p.Variant)
}

// ImageTagOptions is POST /images/{name}/tag.
type ImageTagOptions struct {
	Source string
	Target string
}

// ImageTagResult is empty.
type ImageTagResult struct{}

// ImageTag gives an image another name.
func (c *Client) ImageTag(ctx context.Context, o ImageTagOptions) (ImageTagResult, error) {
	// The source may be an ID or digest as well as a name.
	if !isImageID(o.Source) {
		if _, err := image.ParseNamed(o.Source); err != nil {
			return ImageTagResult{}, fmt.Errorf("error parsing reference: %q is not a valid repository/tag: %w", o.Source, err)
		}
	}
	ref, err := image.ParseNamed(o.Target)
	if err != nil {
		return ImageTagResult{}, fmt.Errorf("error parsing reference: %q is not a valid repository/tag: %w", o.Target, err)
	}
	if ref.Digest != "" {
		return ImageTagResult{}, errors.New("refusing to create a tag with a digest reference")
	}
	ref = ref.OrLatest()
	q := url.Values{"repo": {ref.Name()}, "tag": {ref.Tag}}
	return ImageTagResult{}, c.call(ctx, post("/images/"+o.Source+"/tag", q, nil), nil)
}

// isImageID reports a full ID, bare or with its algorithm.
func isImageID(s string) bool {
	s = strings.TrimPrefix(s, "sha256:")
	if len(s) != 64 {
		return false
	}
	for _, r := range s {
		if !(r >= '0' && r <= '9') && !(r >= 'a' && r <= 'f') {
			return false
		}
	}
	return true
}

// ImageRemoveOptions is DELETE /images/{name}.
type ImageRemoveOptions struct {
	Force         bool
	PruneChildren bool
}

// ImageRemoveResult is what was untagged and deleted.
type ImageRemoveResult struct {
	Items []imagetypes.DeleteResponse
}

// ImageRemove removes an image (or one of its names).
func (c *Client) ImageRemove(ctx context.Context, name string, o ImageRemoveOptions) (ImageRemoveResult, error) {
	q := url.Values{}
	flag(q, o.Force, "force", "1")
	flag(q, !o.PruneChildren, "noprune", "1")
	var res ImageRemoveResult
	return res, c.call(ctx, del("/images/"+name, q), &res.Items)
}

// ImageListOptions is GET /images/json.
type ImageListOptions struct {
	All        bool
	Filters    Filters
	SharedSize bool
}

// ImageListResult is the images.
type ImageListResult struct {
	Items []imagetypes.Summary
}

// ImageList lists images.
func (c *Client) ImageList(ctx context.Context, o ImageListOptions) (ImageListResult, error) {
	q := url.Values{}
	o.Filters.set(q)
	flag(q, o.All, "all", "1")
	flag(q, o.SharedSize, "shared-size", "1")
	var res ImageListResult
	return res, c.call(ctx, get("/images/json", q), &res.Items)
}

// ImageInspectResult is the image.
type ImageInspectResult struct {
	imagetypes.InspectResponse
}

// ImageInspect inspects an image.
func (c *Client) ImageInspect(ctx context.Context, name string) (ImageInspectResult, error) {
	if name == "" {
		return ImageInspectResult{}, &StatusError{Status: http.StatusNotFound, Message: "Error: No such image: ", raw: true}
	}
	var res ImageInspectResult
	return res, c.call(ctx, get("/images/"+name+"/json", nil), &res.InspectResponse)
}

// ImageHistoryResult is an image's layers' history.
type ImageHistoryResult struct {
	Items []imagetypes.HistoryResponseItem
}

// ImageHistory lists an image's history.
func (c *Client) ImageHistory(ctx context.Context, name string) (ImageHistoryResult, error) {
	var res ImageHistoryResult
	return res, c.call(ctx, get("/images/"+name+"/history", nil), &res.Items)
}

// ImageSave streams images as a tar.
func (c *Client) ImageSave(ctx context.Context, names []string) (io.ReadCloser, error) {
	return c.stream(ctx, get("/images/get", url.Values{"names": names}))
}

// ImageLoadOption sets an option of ImageLoad.
type ImageLoadOption func(*imageLoadOptions)

type imageLoadOptions struct{ quiet bool }

// ImageLoadWithQuiet asks the daemon for no progress lines.
func ImageLoadWithQuiet(quiet bool) ImageLoadOption {
	return func(o *imageLoadOptions) { o.quiet = quiet }
}

// ImageLoad sends a tar of images and returns the daemon's output stream.
func (c *Client) ImageLoad(ctx context.Context, in io.Reader, opts ...ImageLoadOption) (io.ReadCloser, error) {
	var o imageLoadOptions
	for _, f := range opts {
		f(&o)
	}
	q := url.Values{"quiet": {"0"}}
	flag(q, o.quiet, "quiet", "1")
	return c.stream(ctx, request{method: http.MethodPost, path: "/images/load", query: q,
		header: http.Header{"Content-Type": {"application/x-tar"}}, body: in})
}

// ImagePruneOptions is POST /images/prune.
type ImagePruneOptions = PruneOptions

// ImagePruneResult is the daemon's report.
type ImagePruneResult struct {
	Report imagetypes.PruneReport
}

// ImagePrune removes unused images.
func (c *Client) ImagePrune(ctx context.Context, o ImagePruneOptions) (ImagePruneResult, error) {
	var res ImagePruneResult
	return res, c.prune(ctx, "/images/prune", o.Filters, &res.Report)
}

// ImageBuildOptions is POST /build (the classic builder's parameters).
type ImageBuildOptions struct {
	Tags           []string
	SuppressOutput bool
	NoCache        bool
	Remove         bool
	ForceRemove    bool
	PullParent     bool
	CPUSetCPUs     string
	CPUSetMems     string
	CPUShares      int64
	CPUQuota       int64
	CPUPeriod      int64
	Memory         int64
	MemorySwap     int64
	NetworkMode    string
	ShmSize        int64
	Dockerfile     string
	BuildArgs      map[string]*string
	AuthConfigs    map[string]registry.AuthConfig
	Labels         map[string]string
	ExtraHosts     []string
	Target         string
	Platforms      []ocispec.Platform
}

// ImageBuildResult is the build's output stream.
type ImageBuildResult struct {
	Body io.ReadCloser
}

// ImageBuild sends a build context and returns the build's output stream.
func (c *Client) ImageBuild(ctx context.Context, buildContext io.Reader, o ImageBuildOptions) (ImageBuildResult, error) {
	q := url.Values{}
	if len(o.Tags) > 0 {
		q["t"] = o.Tags
	}
	if len(o.ExtraHosts) > 0 {
		q["extrahosts"] = o.ExtraHosts
	}
	flag(q, o.SuppressOutput, "q", "1")
	flag(q, o.NoCache, "nocache", "1")
	flag(q, !o.Remove, "rm", "0")
	flag(q, o.ForceRemove, "forcerm", "1")
	flag(q, o.PullParent, "pull", "1")
	flag(q, o.CPUSetCPUs != "", "cpusetcpus", o.CPUSetCPUs)
	flag(q, o.NetworkMode != "" && o.NetworkMode != "default", "networkmode", o.NetworkMode)
	flag(q, o.CPUSetMems != "", "cpusetmems", o.CPUSetMems)
	for _, n := range []struct {
		key string
		v   int64
	}{{"cpushares", o.CPUShares}, {"cpuquota", o.CPUQuota}, {"cpuperiod", o.CPUPeriod}, {"memory", o.Memory}, {"memswap", o.MemorySwap}, {"shmsize", o.ShmSize}} {
		flag(q, n.v != 0, n.key, strconv.FormatInt(n.v, 10))
	}
	flag(q, o.Dockerfile != "", "dockerfile", o.Dockerfile)
	flag(q, o.Target != "", "target", o.Target)
	for _, m := range []struct {
		key string
		v   any
		n   int
	}{{"buildargs", o.BuildArgs, len(o.BuildArgs)}, {"labels", o.Labels, len(o.Labels)}} {
		if m.n == 0 {
			continue
		}
		b, err := json.Marshal(m.v)
		if err != nil {
			return ImageBuildResult{}, err
		}
		q.Set(m.key, string(b))
	}
	if len(o.Platforms) > 1 {
		return ImageBuildResult{}, invalidArgument("specifying multiple platforms is not yet supported")
	}
	if len(o.Platforms) == 1 {
		q.Set("platform", platformString(o.Platforms[0]))
	}
	auths, err := json.Marshal(o.AuthConfigs)
	if err != nil {
		return ImageBuildResult{}, err
	}
	h := http.Header{"Content-Type": {"application/x-tar"}, "X-Registry-Config": {base64.URLEncoding.EncodeToString(auths)}}
	resp, err := c.send(ctx, request{method: http.MethodPost, path: "/build", query: q, header: h, body: buildContext})
	if err != nil {
		return ImageBuildResult{}, err
	}
	return ImageBuildResult{Body: resp.Body}, nil
}

// BuildCachePruneOptions is POST /build/prune.
type BuildCachePruneOptions struct {
	All     bool
	Filters Filters
}

// BuildCachePruneResult is the daemon's report.
type BuildCachePruneResult struct {
	Report build.CachePruneReport
}

// BuildCachePrune removes build cache.
func (c *Client) BuildCachePrune(ctx context.Context, o BuildCachePruneOptions) (BuildCachePruneResult, error) {
	q := url.Values{}
	flag(q, o.All, "all", "1")
	o.Filters.set(q)
	var res BuildCachePruneResult
	if err := c.call(ctx, post("/build/prune", q, nil), &res.Report); err != nil {
		return res, err
	}
	return res, nil
}
