package supervisor

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/berth-dev/berth/internal/errdefs"
	"github.com/berth-dev/berth/internal/runtime/cgroup"
)

// Client talks to the supervisor of one exec-root.
type Client struct {
	socket string
}

// NewClient returns a client for the supervisor of execRoot.
func NewClient(execRoot string) *Client {
	return &Client{socket: filepath.Join(execRoot, SocketName)}
}

func (c *Client) dial(ctx context.Context) (net.Conn, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", c.socket)
	if err != nil {
		return nil, fmt.Errorf("supervisor: %v: %w", err, errdefs.ErrUnavailable)
	}
	return conn, nil
}

func (c *Client) call(ctx context.Context, req Request) (Response, error) {
	conn, err := c.dial(ctx)
	if err != nil {
		return Response{}, err
	}
	defer conn.Close()
	if d, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(d)
	}
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	if err := json.NewEncoder(conn).Encode(req); err != nil {
		return Response{}, fmt.Errorf("supervisor %s: %v: %w", req.Method, err, errdefs.ErrUnavailable)
	}
	var resp Response
	if err := json.NewDecoder(conn).Decode(&resp); err != nil {
		if ctx.Err() != nil {
			return Response{}, ctx.Err()
		}
		return Response{}, fmt.Errorf("supervisor %s: %v: %w", req.Method, err, errdefs.ErrUnavailable)
	}
	return resp, resp.err()
}

// Ping checks that the supervisor answers.
func (c *Client) Ping(ctx context.Context) error {
	_, err := c.call(ctx, Request{Method: MethodPing})
	return err
}

// Create creates container id from a bundle, its init waiting for Start,
// and returns the init's pid.
func (c *Client) Create(ctx context.Context, id string, req CreateRequest) (int, error) {
	resp, err := c.call(ctx, Request{Method: MethodCreate, ID: id, Create: &req})
	return resp.Pid, err
}

// Start lets a created container's process run.
func (c *Client) Start(ctx context.Context, id string) error {
	_, err := c.call(ctx, Request{Method: MethodStart, ID: id})
	return err
}

// Kill signals the container's init, or every process in it with all.
func (c *Client) Kill(ctx context.Context, id string, sig syscall.Signal, all bool) error {
	_, err := c.call(ctx, Request{Method: MethodKill, ID: id, Signal: int(sig), All: all})
	return err
}

// KillExec signals the process of running exec execID of container id.
func (c *Client) KillExec(ctx context.Context, id, execID string, sig syscall.Signal) error {
	_, err := c.call(ctx, Request{Method: MethodKill, ID: id, ExecID: execID, Signal: int(sig)})
	return err
}

// Delete kills the container if it runs and returns once its exit is
// recorded and its runtime state is gone.
func (c *Client) Delete(ctx context.Context, id string) error {
	_, err := c.call(ctx, Request{Method: MethodDelete, ID: id})
	return err
}

// List returns the containers the supervisor holds.
func (c *Client) List(ctx context.Context) ([]Container, error) {
	resp, err := c.call(ctx, Request{Method: MethodList})
	return resp.Containers, err
}

// Pause freezes the container's processes; Resume thaws them.
func (c *Client) Pause(ctx context.Context, id string) error {
	_, err := c.call(ctx, Request{Method: MethodPause, ID: id})
	return err
}

// Resume thaws a paused container.
func (c *Client) Resume(ctx context.Context, id string) error {
	_, err := c.call(ctx, Request{Method: MethodResume, ID: id})
	return err
}

// Pids lists the host pids of the container's processes.
func (c *Client) Pids(ctx context.Context, id string) ([]int, error) {
	resp, err := c.call(ctx, Request{Method: MethodPids, ID: id})
	return resp.Pids, err
}

// Stats samples the container's cgroup.
func (c *Client) Stats(ctx context.Context, id string) (*cgroup.Stats, error) {
	resp, err := c.call(ctx, Request{Method: MethodStats, ID: id})
	return resp.Stats, err
}

// Update writes new resource limits to the container's cgroup.
func (c *Client) Update(ctx context.Context, id string, res *specs.LinuxResources) error {
	_, err := c.call(ctx, Request{Method: MethodUpdate, ID: id, Resources: res})
	return err
}

// Resize sets the terminal size of a Tty container.
func (c *Client) Resize(ctx context.Context, id string, width, height int) error {
	_, err := c.call(ctx, Request{Method: MethodResize, ID: id, Width: width, Height: height})
	return err
}

// Exec starts a process in container id and returns the connection that
// carries it: ReadFrame gives its output and, last, its exit status;
// writes go to its stdin (CloseWrite ends it).
func (c *Client) Exec(ctx context.Context, id string, req ExecRequest) (*net.UnixConn, io.Reader, error) {
	conn, err := c.dial(ctx)
	if err != nil {
		return nil, nil, err
	}
	if err := json.NewEncoder(conn).Encode(Request{Method: MethodExec, ID: id, Exec: &req}); err != nil {
		conn.Close()
		return nil, nil, fmt.Errorf("exec: %v: %w", err, errdefs.ErrUnavailable)
	}
	dec := json.NewDecoder(conn)
	var resp Response
	if err := dec.Decode(&resp); err != nil {
		conn.Close()
		return nil, nil, fmt.Errorf("exec: %v: %w", err, errdefs.ErrUnavailable)
	}
	if err := resp.err(); err != nil {
		conn.Close()
		return nil, nil, err
	}
	// Frames follow the response's newline; the decoder may have read
	// some of them.
	frames := io.MultiReader(dec.Buffered(), conn)
	var nl [1]byte
	if _, err := io.ReadFull(frames, nl[:]); err != nil || nl[0] != '\n' {
		conn.Close()
		return nil, nil, fmt.Errorf("exec: bad stream after the response: %w", errdefs.ErrUnavailable)
	}
	return conn.(*net.UnixConn), frames, nil
}

// ResizeExec sets the terminal size of an exec.
func (c *Client) ResizeExec(ctx context.Context, id, execID string, width, height int) error {
	_, err := c.call(ctx, Request{Method: MethodResize, ID: id, ExecID: execID, Width: width, Height: height})
	return err
}

// AttachStdin returns a connection whose writes go to the container's
// stdin; closing it (or CloseWrite) ends the stream, which closes stdin
// of a StdinOnce container.
func (c *Client) AttachStdin(ctx context.Context, id string) (*net.UnixConn, error) {
	conn, err := c.dial(ctx)
	if err != nil {
		return nil, err
	}
	if err := json.NewEncoder(conn).Encode(Request{Method: MethodAttach, ID: id}); err != nil {
		conn.Close()
		return nil, fmt.Errorf("attach: %v: %w", err, errdefs.ErrUnavailable)
	}
	// The decoder may read ahead: harmless, the supervisor sends nothing
	// after the response on this connection.
	var resp Response
	if err := json.NewDecoder(conn).Decode(&resp); err != nil {
		conn.Close()
		return nil, fmt.Errorf("attach: %v: %w", err, errdefs.ErrUnavailable)
	}
	if err := resp.err(); err != nil {
		conn.Close()
		return nil, err
	}
	return conn.(*net.UnixConn), nil
}

// Subscribe streams exit events until ctx ends or the connection breaks;
// the channel is closed then. Events are sent only after the subscription
// is confirmed, so a caller that lists after Subscribe returns misses none.
func (c *Client) Subscribe(ctx context.Context) (<-chan Event, error) {
	conn, err := c.dial(ctx)
	if err != nil {
		return nil, err
	}
	if err := json.NewEncoder(conn).Encode(Request{Method: MethodSubscribe}); err != nil {
		conn.Close()
		return nil, fmt.Errorf("subscribe: %v: %w", err, errdefs.ErrUnavailable)
	}
	dec := json.NewDecoder(bufio.NewReader(conn))
	var ack Response
	if err := dec.Decode(&ack); err != nil {
		conn.Close()
		return nil, fmt.Errorf("subscribe: %v: %w", err, errdefs.ErrUnavailable)
	}
	ch := make(chan Event, 64)
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	go func() {
		defer close(ch)
		defer stop()
		defer conn.Close()
		for {
			var ev Event
			if err := dec.Decode(&ev); err != nil {
				return
			}
			ch <- ev
		}
	}()
	return ch, nil
}

// Ensure returns once a supervisor answers for execRoot, starting one
// (`exe supervise --exec-root execRoot`) if none does. The new process is in
// its own session, with stdio on <exec-root>/supervisor.log, so it outlives
// the caller and any terminal.
func Ensure(ctx context.Context, exe, execRoot string, extraArgs ...string) (*Client, error) {
	c := NewClient(execRoot)
	if c.Ping(ctx) == nil {
		return c, nil
	}
	logf, err := os.OpenFile(filepath.Join(execRoot, "supervisor.log"), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("supervisor log: %w", err)
	}
	defer logf.Close()
	args := append([]string{"supervise", "--exec-root", execRoot}, extraArgs...)
	cmd := exec.Command(exe, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start supervisor: %w", err)
	}
	exited := make(chan error, 1)
	// Reap it if it dies while we live; once we are gone, init does.
	go func() { exited <- cmd.Wait() }()
	for {
		if c.Ping(ctx) == nil {
			return c, nil
		}
		select {
		case err := <-exited:
			// Lost a race with another supervisor starting: use it.
			if c.Ping(ctx) == nil {
				return c, nil
			}
			return nil, fmt.Errorf("supervisor exited: %v (see %s): %w", err,
				filepath.Join(execRoot, "supervisor.log"), errdefs.ErrUnavailable)
		case <-ctx.Done():
			return nil, errors.Join(ctx.Err(), cmd.Process.Kill())
		case <-time.After(5 * time.Millisecond):
		}
	}
}
