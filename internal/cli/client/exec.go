package client

import (
	"context"
	"net/http"

	"github.com/moby/moby/api/types/container"
)

// ExecCreateOptions is POST /containers/{id}/exec.
type ExecCreateOptions struct {
	User         string
	Privileged   bool
	TTY          bool
	ConsoleSize  ConsoleSize
	AttachStdin  bool
	AttachStderr bool
	AttachStdout bool
	DetachKeys   string
	Env          []string
	WorkingDir   string
	Cmd          []string
}

// ExecCreateResult is the new exec's ID.
type ExecCreateResult struct {
	ID string
}

// ExecCreate sets up a command to run in a container.
func (c *Client) ExecCreate(ctx context.Context, id string, o ExecCreateOptions) (ExecCreateResult, error) {
	id, err := checkID("container", id)
	if err != nil {
		return ExecCreateResult{}, err
	}
	size, err := consoleSize(o.TTY, o.ConsoleSize)
	if err != nil {
		return ExecCreateResult{}, err
	}
	var res container.ExecCreateResponse
	err = c.call(ctx, post("/containers/"+id+"/exec", nil, container.ExecCreateRequest{
		User: o.User, Privileged: o.Privileged, Tty: o.TTY, ConsoleSize: size,
		AttachStdin: o.AttachStdin, AttachStderr: o.AttachStderr, AttachStdout: o.AttachStdout,
		DetachKeys: o.DetachKeys, Env: o.Env, WorkingDir: o.WorkingDir, Cmd: o.Cmd,
	}), &res)
	return ExecCreateResult{ID: res.ID}, err
}

// ExecStartOptions is POST /exec/{id}/start without a stream.
type ExecStartOptions struct {
	Detach      bool
	TTY         bool
	ConsoleSize ConsoleSize
}

// ExecStartResult is empty.
type ExecStartResult struct{}

// ExecStart starts an exec detached.
func (c *Client) ExecStart(ctx context.Context, id string, o ExecStartOptions) (ExecStartResult, error) {
	size, err := consoleSize(o.TTY, o.ConsoleSize)
	if err != nil {
		return ExecStartResult{}, err
	}
	return ExecStartResult{}, c.call(ctx, post("/exec/"+id+"/start", nil, container.ExecStartRequest{Detach: o.Detach, Tty: o.TTY, ConsoleSize: size}), nil)
}

// ExecAttachOptions is POST /exec/{id}/start with the stream.
type ExecAttachOptions struct {
	TTY         bool
	ConsoleSize ConsoleSize
}

// ExecAttachResult is the exec's stream.
type ExecAttachResult struct {
	HijackedResponse
}

// ExecAttach starts an exec and returns its stream.
func (c *Client) ExecAttach(ctx context.Context, id string, o ExecAttachOptions) (ExecAttachResult, error) {
	size, err := consoleSize(o.TTY, o.ConsoleSize)
	if err != nil {
		return ExecAttachResult{}, err
	}
	h, err := c.hijack(ctx, request{method: http.MethodPost, path: "/exec/" + id + "/start",
		jsonObj: container.ExecStartRequest{Tty: o.TTY, ConsoleSize: size}})
	return ExecAttachResult{h}, err
}

// ExecResizeOptions is a terminal size.
type ExecResizeOptions ContainerResizeOptions

// ExecResizeResult is empty.
type ExecResizeResult struct{}

// ExecResize resizes an exec's terminal.
func (c *Client) ExecResize(ctx context.Context, id string, o ExecResizeOptions) (ExecResizeResult, error) {
	id, err := checkID("exec", id)
	if err != nil {
		return ExecResizeResult{}, err
	}
	return ExecResizeResult{}, c.call(ctx, post("/exec/"+id+"/resize", sizeQuery(o.Height, o.Width), nil), nil)
}

// ExecInspectOptions is GET /exec/{id}/json.
type ExecInspectOptions struct{}

// ExecInspectResult is what the CLI needs of an exec.
type ExecInspectResult struct {
	ID          string
	ContainerID string
	Running     bool
	ExitCode    int
	PID         int
}

// ExecInspect inspects an exec.
func (c *Client) ExecInspect(ctx context.Context, id string, _ ExecInspectOptions) (ExecInspectResult, error) {
	var res container.ExecInspectResponse
	if err := c.call(ctx, get("/exec/"+id+"/json", nil), &res); err != nil {
		return ExecInspectResult{}, err
	}
	out := ExecInspectResult{ID: res.ID, ContainerID: res.ContainerID, Running: res.Running, PID: res.Pid}
	if res.ExitCode != nil {
		out.ExitCode = *res.ExitCode
	}
	return out, nil
}
