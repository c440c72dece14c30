package client

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/berth-dev/berth/internal/image"
)

// ContainerCreateOptions is POST /containers/create.
type ContainerCreateOptions struct {
	Config           *container.Config
	HostConfig       *container.HostConfig
	NetworkingConfig *network.NetworkingConfig
	Platform         *ocispec.Platform
	Name             string
}

// ContainerCreateResult is the new container.
type ContainerCreateResult struct {
	ID       string
	Warnings []string
}

// ContainerCreate creates a container.
func (c *Client) ContainerCreate(ctx context.Context, o ContainerCreateOptions) (ContainerCreateResult, error) {
	cfg := o.Config
	if cfg == nil || cfg.Image == "" {
		return ContainerCreateResult{}, invalidArgument("config.Image or Image is required")
	}
	q := url.Values{}
	if p := o.Platform; p != nil && p.OS != "" {
		q.Set("platform", path.Join(p.OS, p.Architecture, p.Variant))
	}
	flag(q, o.Name != "", "name", o.Name)
	hc := o.HostConfig
	if hc != nil {
		// docker's client sends capabilities in canonical form.
		n := *hc
		n.CapAdd, n.CapDrop = canonicalCaps(hc.CapAdd), canonicalCaps(hc.CapDrop)
		hc = &n
	}
	var res container.CreateResponse
	err := c.call(ctx, post("/containers/create", q, container.CreateRequest{Config: cfg, HostConfig: hc, NetworkingConfig: o.NetworkingConfig}), &res)
	return ContainerCreateResult{ID: res.ID, Warnings: res.Warnings}, err
}

// canonicalCaps upper-cases, prefixes CAP_ (except ALL), sorts and dedups.
func canonicalCaps(caps []string) []string {
	if caps == nil {
		return nil
	}
	out := make([]string, len(caps))
	for i, s := range caps {
		s = strings.ToUpper(s)
		if s != "ALL" && !strings.HasPrefix(s, "CAP_") {
			s = "CAP_" + s
		}
		out[i] = s
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// ContainerStartOptions is POST /containers/{id}/start.
type ContainerStartOptions struct {
	CheckpointID  string
	CheckpointDir string
}

// ContainerStartResult is empty.
type ContainerStartResult struct{}

// ContainerStart starts a container.
func (c *Client) ContainerStart(ctx context.Context, id string, o ContainerStartOptions) (ContainerStartResult, error) {
	id, err := checkID("container", id)
	if err != nil {
		return ContainerStartResult{}, err
	}
	q := url.Values{}
	flag(q, o.CheckpointID != "", "checkpoint", o.CheckpointID)
	flag(q, o.CheckpointDir != "", "checkpoint-dir", o.CheckpointDir)
	return ContainerStartResult{}, c.call(ctx, post("/containers/"+id+"/start", q, nil), nil)
}

// ContainerWaitOptions is POST /containers/{id}/wait.
type ContainerWaitOptions struct {
	Condition container.WaitCondition
}

// ContainerWaitResult delivers the exit once: on Result, or a failure on
// Error.
type ContainerWaitResult struct {
	Result <-chan container.WaitResponse
	Error  <-chan error
}

// ContainerWait registers a wait with the daemon before it returns (so an
// exit right after cannot be missed), then waits in the background.
func (c *Client) ContainerWait(ctx context.Context, id string, o ContainerWaitOptions) ContainerWaitResult {
	results := make(chan container.WaitResponse)
	errs := make(chan error, 1)
	res := ContainerWaitResult{Result: results, Error: errs}
	id, err := checkID("container", id)
	if err != nil {
		errs <- err
		return res
	}
	q := url.Values{}
	flag(q, o.Condition != "", "condition", string(o.Condition))
	resp, err := c.send(ctx, post("/containers/"+id+"/wait", q, nil))
	if err != nil {
		errs <- err
		return res
	}
	go func() {
		defer drain(resp)
		body, err := io.ReadAll(io.LimitReader(resp.Body, 2048))
		if err != nil {
			errs <- err
			return
		}
		var w container.WaitResponse
		if err := json.Unmarshal(body, &w); err != nil {
			var se *json.SyntaxError
			if errors.As(err, &se) {
				err = errors.New(string(body)) // the daemon's words, whatever they are
			}
			errs <- err
			return
		}
		results <- w
	}()
	return res
}

// ContainerAttachOptions is POST /containers/{id}/attach.
type ContainerAttachOptions struct {
	Stream     bool
	Stdin      bool
	Stdout     bool
	Stderr     bool
	DetachKeys string
	Logs       bool
}

// ContainerAttachResult is the attached stream.
type ContainerAttachResult struct {
	HijackedResponse
}

// ContainerAttach attaches to a container's streams.
func (c *Client) ContainerAttach(ctx context.Context, id string, o ContainerAttachOptions) (ContainerAttachResult, error) {
	id, err := checkID("container", id)
	if err != nil {
		return ContainerAttachResult{}, err
	}
	q := url.Values{}
	flag(q, o.Stream, "stream", "1")
	flag(q, o.Stdin, "stdin", "1")
	flag(q, o.Stdout, "stdout", "1")
	flag(q, o.Stderr, "stderr", "1")
	flag(q, o.DetachKeys != "", "detachKeys", o.DetachKeys)
	flag(q, o.Logs, "logs", "1")
	h, err := c.hijack(ctx, request{method: http.MethodPost, path: "/containers/" + id + "/attach", query: q,
		header: http.Header{"Content-Type": {"text/plain"}}})
	return ContainerAttachResult{h}, err
}

// ConsoleSize is a terminal's size.
type ConsoleSize struct {
	Height, Width uint
}

// consoleSize is the API's [height, width], sent only with a terminal.
func consoleSize(tty bool, s ConsoleSize) (*[2]uint, error) {
	if s.Height == 0 && s.Width == 0 {
		return nil, nil
	}
	if !tty {
		return nil, invalidArgument("console size is only supported when TTY is enabled")
	}
	return &[2]uint{s.Height, s.Width}, nil
}

// ContainerResizeOptions is a terminal size.
type ContainerResizeOptions struct {
	Height uint
	Width  uint
}

// ContainerResizeResult is empty.
type ContainerResizeResult struct{}

// ContainerResize resizes a container's terminal.
func (c *Client) ContainerResize(ctx context.Context, id string, o ContainerResizeOptions) (ContainerResizeResult, error) {
	id, err := checkID("container", id)
	if err != nil {
		return ContainerResizeResult{}, err
	}
	return ContainerResizeResult{}, c.call(ctx, post("/containers/"+id+"/resize", sizeQuery(o.Height, o.Width), nil), nil)
}

func sizeQuery(h, w uint) url.Values {
	return url.Values{"h": {strconv.FormatUint(uint64(h), 10)}, "w": {strconv.FormatUint(uint64(w), 10)}}
}

// ContainerInspectOptions is GET /containers/{id}/json.
type ContainerInspectOptions struct {
	Size bool
}

// ContainerInspectResult is the container and the daemon's raw JSON.
type ContainerInspectResult struct {
	Container container.InspectResponse
	Raw       json.RawMessage
}

// ContainerInspect inspects a container.
func (c *Client) ContainerInspect(ctx context.Context, id string, o ContainerInspectOptions) (ContainerInspectResult, error) {
	id, err := checkID("container", id)
	if err != nil {
		return ContainerInspectResult{}, err
	}
	q := url.Values{}
	flag(q, o.Size, "size", "1")
	var res ContainerInspectResult
	res.Raw, err = c.callRaw(ctx, get("/containers/"+id+"/json", q), &res.Container)
	return res, err
}

// ContainerListOptions is GET /containers/json.
type ContainerListOptions struct {
	Size    bool
	All     bool
	Limit   int
	Filters Filters
}

// ContainerListResult is the containers.
type ContainerListResult struct {
	Items []container.Summary
}

// ContainerList lists containers.
func (c *Client) ContainerList(ctx context.Context, o ContainerListOptions) (ContainerListResult, error) {
	q := url.Values{}
	flag(q, o.All, "all", "1")
	flag(q, o.Limit > 0, "limit", strconv.Itoa(o.Limit))
	flag(q, o.Size, "size", "1")
	o.Filters.set(q)
	var res ContainerListResult
	return res, c.call(ctx, get("/containers/json", q), &res.Items)
}

// ContainerLogsOptions is GET /containers/{id}/logs.
type ContainerLogsOptions struct {
	ShowStdout bool
	ShowStderr bool
	Since      string
	Until      string
	Timestamps bool
	Follow     bool
	Tail       string
	Details    bool
}

// ContainerLogs streams a container's logs.
func (c *Client) ContainerLogs(ctx context.Context, id string, o ContainerLogsOptions) (io.ReadCloser, error) {
	id, err := checkID("container", id)
	if err != nil {
		return nil, err
	}
	q := url.Values{}
	flag(q, o.ShowStdout, "stdout", "1")
	flag(q, o.ShowStderr, "stderr", "1")
	if key, err := setTimes(q, o.Since, o.Until); err != nil {
		return nil, fmt.Errorf("invalid value for %q: %w", key, err)
	}
	flag(q, o.Timestamps, "timestamps", "1")
	flag(q, o.Details, "details", "1")
	flag(q, o.Follow, "follow", "1")
	flag(q, o.Tail != "" && o.Tail != "all", "tail", o.Tail)
	return c.stream(ctx, get("/containers/"+id+"/logs", q))
}

// ContainerStatsOptions is GET /containers/{id}/stats.
type ContainerStatsOptions struct {
	Stream                bool
	IncludePreviousSample bool
}

// ContainerStatsResult is the stats stream.
type ContainerStatsResult struct {
	Body io.ReadCloser
}

// ContainerStats asks for a container's resource usage.
func (c *Client) ContainerStats(ctx context.Context, id string, o ContainerStatsOptions) (ContainerStatsResult, error) {
	id, err := checkID("container", id)
	if err != nil {
		return ContainerStatsResult{}, err
	}
	q := url.Values{"stream": {strconv.FormatBool(o.Stream)}}
	flag(q, !o.Stream && !o.IncludePreviousSample, "one-shot", "true")
	body, err := c.stream(ctx, get("/containers/"+id+"/stats", q))
	return ContainerStatsResult{Body: body}, err
}

// ContainerTopOptions is GET /containers/{id}/top.
type ContainerTopOptions struct {
	Arguments []string
}

// ContainerTopResult is ps's table.
type ContainerTopResult struct {
	Processes [][]string
	Titles    []string
}

// ContainerTop lists a container's processes.
func (c *Client) ContainerTop(ctx context.Context, id string, o ContainerTopOptions) (ContainerTopResult, error) {
	id, err := checkID("container", id)
	if err != nil {
		return ContainerTopResult{}, err
	}
	q := url.Values{}
	flag(q, len(o.Arguments) > 0, "ps_args", strings.Join(o.Arguments, " "))
	var res container.TopResponse
	err = c.call(ctx, get("/containers/"+id+"/top", q), &res)
	return ContainerTopResult{Processes: res.Processes, Titles: res.Titles}, err
}

// ContainerStopOptions is POST /containers/{id}/stop.
type ContainerStopOptions struct {
	Signal  string
	Timeout *int
}

// ContainerStopResult is empty.
type ContainerStopResult struct{}

// ContainerStop stops a container.
func (c *Client) ContainerStop(ctx context.Context, id string, o ContainerStopOptions) (ContainerStopResult, error) {
	return ContainerStopResult{}, c.stopOrRestart(ctx, id, "stop", o.Signal, o.Timeout)
}

// ContainerRestartOptions is POST /containers/{id}/restart.
type ContainerRestartOptions struct {
	Signal  string
	Timeout *int
}

// ContainerRestartResult is empty.
type ContainerRestartResult struct{}

// ContainerRestart restarts a container.
func (c *Client) ContainerRestart(ctx context.Context, id string, o ContainerRestartOptions) (ContainerRestartResult, error) {
	return ContainerRestartResult{}, c.stopOrRestart(ctx, id, "restart", o.Signal, o.Timeout)
}

func (c *Client) stopOrRestart(ctx context.Context, id, verb, signal string, timeout *int) error {
	id, err := checkID("container", id)
	if err != nil {
		return err
	}
	q := url.Values{}
	if timeout != nil {
		q.Set("t", strconv.Itoa(*timeout))
	}
	flag(q, signal != "", "signal", signal)
	return c.call(ctx, post("/containers/"+id+"/"+verb, q, nil), nil)
}

// ContainerKillOptions is POST /containers/{id}/kill.
type ContainerKillOptions struct {
	Signal string
}

// ContainerKillResult is empty.
type ContainerKillResult struct{}

// ContainerKill signals a container.
func (c *Client) ContainerKill(ctx context.Context, id string, o ContainerKillOptions) (ContainerKillResult, error) {
	id, err := checkID("container", id)
	if err != nil {
		return ContainerKillResult{}, err
	}
	q := url.Values{}
	flag(q, o.Signal != "", "signal", o.Signal)
	return ContainerKillResult{}, c.call(ctx, post("/containers/"+id+"/kill", q, nil), nil)
}

// ContainerRemoveOptions is DELETE /containers/{id}.
type ContainerRemoveOptions struct {
	RemoveVolumes bool
	RemoveLinks   bool
	Force         bool
}

// ContainerRemoveResult is empty.
type ContainerRemoveResult struct{}

// ContainerRemove removes a container.
func (c *Client) ContainerRemove(ctx context.Context, id string, o ContainerRemoveOptions) (ContainerRemoveResult, error) {
	id, err := checkID("container", id)
	if err != nil {
		return ContainerRemoveResult{}, err
	}
	q := url.Values{}
	flag(q, o.RemoveVolumes, "v", "1")
	flag(q, o.RemoveLinks, "link", "1")
	flag(q, o.Force, "force", "1")
	return ContainerRemoveResult{}, c.call(ctx, del("/containers/"+id, q), nil)
}

// ContainerRenameOptions is POST /containers/{id}/rename.
type ContainerRenameOptions struct {
	NewName string
}

// ContainerRenameResult is empty.
type ContainerRenameResult struct{}

// ContainerRename renames a container.
func (c *Client) ContainerRename(ctx context.Context, id string, o ContainerRenameOptions) (ContainerRenameResult, error) {
	id, err := checkID("container", id)
	if err != nil {
		return ContainerRenameResult{}, err
	}
	return ContainerRenameResult{}, c.call(ctx, post("/containers/"+id+"/rename", url.Values{"name": {o.NewName}}, nil), nil)
}

// ContainerPauseOptions is POST /containers/{id}/pause.
type ContainerPauseOptions struct{}

// ContainerPauseResult is empty.
type ContainerPauseResult struct{}

// ContainerPause freezes a container.
func (c *Client) ContainerPause(ctx context.Context, id string, _ ContainerPauseOptions) (ContainerPauseResult, error) {
	return ContainerPauseResult{}, c.simplePost(ctx, id, "pause")
}

// ContainerUnpauseOptions is POST /containers/{id}/unpause.
type ContainerUnpauseOptions struct{}

// ContainerUnpauseResult is empty.
type ContainerUnpauseResult struct{}

// ContainerUnpause thaws a container.
func (c *Client) ContainerUnpause(ctx context.Context, id string, _ ContainerUnpauseOptions) (ContainerUnpauseResult, error) {
	return ContainerUnpauseResult{}, c.simplePost(ctx, id, "unpause")
}

func (c *Client) simplePost(ctx context.Context, id, verb string) error {
	id, err := checkID("container", id)
	if err != nil {
		return err
	}
	return c.call(ctx, post("/containers/"+id+"/"+verb, nil, nil), nil)
}

// ContainerUpdateOptions is POST /containers/{id}/update.
type ContainerUpdateOptions struct {
	Resources     *container.Resources
	RestartPolicy *container.RestartPolicy
}

// ContainerUpdateResult holds the daemon's warnings.
type ContainerUpdateResult struct {
	Warnings []string
}

// ContainerUpdate changes a container's resources and restart policy.
func (c *Client) ContainerUpdate(ctx context.Context, id string, o ContainerUpdateOptions) (ContainerUpdateResult, error) {
	id, err := checkID("container", id)
	if err != nil {
		return ContainerUpdateResult{}, err
	}
	var u container.UpdateConfig
	if o.Resources != nil {
		u.Resources = *o.Resources
	}
	if o.RestartPolicy != nil {
		u.RestartPolicy = *o.RestartPolicy
	}
	var res container.UpdateResponse
	err = c.call(ctx, post("/containers/"+id+"/update", nil, u), &res)
	return ContainerUpdateResult{Warnings: res.Warnings}, err
}

// ContainerCommitOptions is POST /commit.
type ContainerCommitOptions struct {
	Reference string
	Comment   string
	Author    string
	Changes   []string
	NoPause   bool
	Config    *container.Config
}

// ContainerCommitResult is the new image.
type ContainerCommitResult struct {
	ID string
}

// ContainerCommit makes an image of a container. The reference goes to the
// daemon as docker's repo and tag parameters; the daemon judges it.
func (c *Client) ContainerCommit(ctx context.Context, id string, o ContainerCommitOptions) (ContainerCommitResult, error) {
	id, err := checkID("container", id)
	if err != nil {
		return ContainerCommitResult{}, err
	}
	q := url.Values{"container": {id}}
	if o.Reference != "" {
		ref, err := image.ParseNamed(o.Reference)
		if err != nil {
			return ContainerCommitResult{}, err
		}
		if ref.Digest != "" {
			return ContainerCommitResult{}, errors.New("refusing to create a tag with a digest reference")
		}
		ref = ref.OrLatest()
		q.Set("repo", ref.Name())
		q.Set("tag", ref.Tag)
	}
	flag(q, o.Comment != "", "comment", o.Comment)
	flag(q, o.Author != "", "author", o.Author)
	for _, ch := range o.Changes {
		q.Add("changes", ch)
	}
	flag(q, o.NoPause, "pause", "0")
	var res container.CommitResponse
	err = c.call(ctx, post("/commit", q, o.Config), &res)
	return ContainerCommitResult{ID: res.ID}, err
}

// ContainerDiffOptions is GET /containers/{id}/changes.
type ContainerDiffOptions struct{}

// ContainerDiffResult is the changes.
type ContainerDiffResult struct {
	Changes []container.FilesystemChange
}

// ContainerDiff lists a container's filesystem changes.
func (c *Client) ContainerDiff(ctx context.Context, id string, _ ContainerDiffOptions) (ContainerDiffResult, error) {
	id, err := checkID("container", id)
	if err != nil {
		return ContainerDiffResult{}, err
	}
	var res ContainerDiffResult
	return res, c.call(ctx, get("/containers/"+id+"/changes", nil), &res.Changes)
}

// ContainerExportOptions is GET /containers/{id}/export.
type ContainerExportOptions struct{}

// ContainerExport streams a container's filesystem as a tar.
func (c *Client) ContainerExport(ctx context.Context, id string, _ ContainerExportOptions) (io.ReadCloser, error) {
	id, err := checkID("container", id)
	if err != nil {
		return nil, err
	}
	return c.stream(ctx, get("/containers/"+id+"/export", nil))
}

// PruneOptions are a prune endpoint's filters.
type PruneOptions struct {
	Filters Filters
}

// ContainerPruneOptions is POST /containers/prune.
type ContainerPruneOptions = PruneOptions

// ContainerPruneResult is the daemon's report.
type ContainerPruneResult struct {
	Report container.PruneReport
}

// ContainerPrune removes stopped containers.
func (c *Client) ContainerPrune(ctx context.Context, o ContainerPruneOptions) (ContainerPruneResult, error) {
	var res ContainerPruneResult
	return res, c.prune(ctx, "/containers/prune", o.Filters, &res.Report)
}

// ContainerStatPathOptions is HEAD /containers/{id}/archive.
type ContainerStatPathOptions struct {
	Path string
}

// ContainerStatPathResult is the path's stat.
type ContainerStatPathResult struct {
	Stat container.PathStat
}

// ContainerStatPath stats a path in a container.
func (c *Client) ContainerStatPath(ctx context.Context, id string, o ContainerStatPathOptions) (ContainerStatPathResult, error) {
	id, err := checkID("container", id)
	if err != nil {
		return ContainerStatPathResult{}, err
	}
	resp, err := c.send(ctx, request{method: http.MethodHead, path: "/containers/" + id + "/archive",
		query: url.Values{"path": {filepath.ToSlash(o.Path)}}})
	if err != nil {
		return ContainerStatPathResult{}, err
	}
	drain(resp)
	st, err := pathStat(resp.Header)
	return ContainerStatPathResult{Stat: st}, err
}

// pathStat decodes the X-Docker-Container-Path-Stat header.
func pathStat(h http.Header) (container.PathStat, error) {
	var st container.PathStat
	b, err := base64.StdEncoding.DecodeString(h.Get("X-Docker-Container-Path-Stat"))
	if err == nil {
		err = json.Unmarshal(b, &st)
	}
	if err != nil {
		return st, fmt.Errorf("unable to decode container path stat header: %s", err)
	}
	return st, nil
}

// CopyFromContainerOptions is GET /containers/{id}/archive.
type CopyFromContainerOptions struct {
	SourcePath string
}

// CopyFromContainerResult is the tar stream and the source's stat.
type CopyFromContainerResult struct {
	Content io.ReadCloser
	Stat    container.PathStat
}

// CopyFromContainer streams a path of a container as a tar.
func (c *Client) CopyFromContainer(ctx context.Context, id string, o CopyFromContainerOptions) (CopyFromContainerResult, error) {
	id, err := checkID("container", id)
	if err != nil {
		return CopyFromContainerResult{}, err
	}
	resp, err := c.send(ctx, get("/containers/"+id+"/archive", url.Values{"path": {filepath.ToSlash(o.SourcePath)}}))
	if err != nil {
		return CopyFromContainerResult{}, err
	}
	st, err := pathStat(resp.Header)
	if err != nil {
		drain(resp)
		return CopyFromContainerResult{Stat: st}, fmt.Errorf("unable to get resource stat from response: %s", err)
	}
	return CopyFromContainerResult{Content: resp.Body, Stat: st}, nil
}

// CopyToContainerOptions is PUT /containers/{id}/archive.
type CopyToContainerOptions struct {
	DestinationPath           string
	Content                   io.Reader
	AllowOverwriteDirWithFile bool
	CopyUIDGID                bool
}

// CopyToContainerResult is empty.
type CopyToContainerResult struct{}

// CopyToContainer extracts a tar stream into a container.
func (c *Client) CopyToContainer(ctx context.Context, id string, o CopyToContainerOptions) (CopyToContainerResult, error) {
	id, err := checkID("container", id)
	if err != nil {
		return CopyToContainerResult{}, err
	}
	q := url.Values{"path": {filepath.ToSlash(o.DestinationPath)}}
	flag(q, !o.AllowOverwriteDirWithFile, "noOverwriteDirNonDir", "true")
	flag(q, o.CopyUIDGID, "copyUIDGID", "true")
	body := o.Content
	if body == nil {
		body = bytes.NewReader(nil)
	}
	return CopyToContainerResult{}, c.call(ctx, request{method: http.MethodPut, path: "/containers/" + id + "/archive", query: q, body: body}, nil)
}
