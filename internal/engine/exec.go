package engine

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"github.com/moby/moby/api/types/container"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/berth-dev/berth/internal/errdefs"
	"github.com/berth-dev/berth/internal/spec"
	"github.com/berth-dev/berth/internal/supervisor"
)

// Exec is one exec instance, as /exec/{id}/json shows it. Execs live in
// the daemon's memory, as docker's do: a restarted daemon forgets them
// (their processes end with their helper).
type Exec struct {
	ID          string
	ContainerID string
	Config      container.ExecCreateRequest
	Running     bool
	ExitCode    *int
	Pid         int
	started     bool
}

// ExecStartOptions says where an exec's stdio goes.
type ExecStartOptions struct {
	Detach         bool
	Stdin          io.Reader // nil: no input
	Stdout, Stderr io.Writer // with a terminal everything goes to Stdout
	// ConsoleSize is the terminal's [height, width], set before the
	// process runs.
	ConsoleSize *[2]uint
}

type execTable struct {
	mu sync.Mutex
	m  map[string]*Exec
}

// ExecCreate registers a process to run in running container ref.
func (e *Engine) ExecCreate(ctx context.Context, ref string, cfg container.ExecCreateRequest) (string, error) {
	c, err := e.Get(ref)
	if err != nil {
		return "", err
	}
	if c.State.Status != StatusRunning {
		return "", fmt.Errorf("container %s is not running: %w", c.ID, errdefs.ErrConflict)
	}
	if c.State.Paused {
		return "", fmt.Errorf("Container %s is paused, unpause the container before exec: %w", c.ID, errdefs.ErrConflict)
	}
	if len(cfg.Cmd) == 0 {
		return "", fmt.Errorf("No exec command specified: %w", errdefs.ErrInvalidArgument)
	}
	x := &Exec{ID: newID(), ContainerID: c.ID, Config: cfg}
	e.execs.mu.Lock()
	e.execs.m[x.ID] = x
	e.execs.mu.Unlock()
	e.emitContainer(&c, "exec_create: "+strings.Join(cfg.Cmd, " "), map[string]string{"execID": x.ID})
	return x.ID, nil
}

// ExecInspect returns exec id's state.
func (e *Engine) ExecInspect(id string) (Exec, error) {
	e.execs.mu.Lock()
	defer e.execs.mu.Unlock()
	x, ok := e.execs.m[id]
	if !ok {
		return Exec{}, fmt.Errorf("No such exec instance: %s: %w", id, errdefs.ErrNotFound)
	}
	return *x, nil
}

// ExecStart runs exec id. Attached, it returns when the process has ended
// and its output is written; detached, once it runs.
func (e *Engine) ExecStart(ctx context.Context, id string, o ExecStartOptions) error {
	e.execs.mu.Lock()
	x, ok := e.execs.m[id]
	if !ok {
		e.execs.mu.Unlock()
		return fmt.Errorf("No such exec instance: %s: %w", id, errdefs.ErrNotFound)
	}
	if x.started {
		e.execs.mu.Unlock()
		return fmt.Errorf("Error: Exec command %s is already running: %w", id, errdefs.ErrConflict)
	}
	x.started = true
	cfg, ctrID := x.Config, x.ContainerID
	e.execs.mu.Unlock()

	// An exec that cannot start has ended for good: docker's code 126.
	fail := func(err error) error {
		code := 126
		e.execs.mu.Lock()
		x.ExitCode = &code
		e.execs.mu.Unlock()
		return err
	}
	c, err := e.Get(ctrID)
	if err != nil {
		return fail(err)
	}
	if c.State.Status != StatusRunning {
		return fail(fmt.Errorf("container %s is not running: %w", c.ID, errdefs.ErrConflict))
	}
	procPath := filepath.Join(e.bundlePath(c.ID), "exec-"+id+".json")
	if err := e.writeExecProcess(c, cfg, o.ConsoleSize, procPath); err != nil {
		return fail(err)
	}
	sup, err := e.supervisor(ctx)
	if err != nil {
		os.Remove(procPath)
		return fail(err)
	}
	conn, frames, err := sup.Exec(ctx, c.ID, supervisor.ExecRequest{
		ExecID: id, ProcessPath: procPath, Tty: cfg.Tty, OpenStdin: cfg.AttachStdin && o.Stdin != nil,
	})
	if err != nil {
		os.Remove(procPath)
		return fail(err)
	}
	e.execs.mu.Lock()
	x.Running = true
	e.execs.mu.Unlock()
	e.emitContainer(&c, "exec_start: "+strings.Join(cfg.Cmd, " "), map[string]string{"execID": id})
	if cfg.Tty && o.ConsoleSize != nil {
		_ = sup.ResizeExec(ctx, c.ID, id, int(o.ConsoleSize[1]), int(o.ConsoleSize[0]))
	}
	if o.Stdin != nil && cfg.AttachStdin {
		go func() {
			_, _ = io.Copy(conn, o.Stdin)
			_ = conn.CloseWrite()
		}()
	} else {
		_ = conn.CloseWrite()
	}
	run := func(stdout, stderr io.Writer) {
		defer conn.Close()
		defer os.Remove(procPath)
		code := supervisor.UnknownExitCode
		buf := make([]byte, 64<<10)
		for {
			stream, data, err := supervisor.ReadFrame(frames, buf)
			if err != nil {
				if err != io.EOF {
					e.log.Warn("exec output", "exec", id, "err", err)
				}
				break
			}
			switch stream {
			case supervisor.FrameStdout:
				_, _ = stdout.Write(data)
			case supervisor.FrameStderr:
				_, _ = stderr.Write(data)
			case supervisor.FrameExit:
				var st supervisor.ExitStatus
				if json.Unmarshal(data, &st) == nil {
					code = st.ExitCode
				}
			}
		}
		e.execs.mu.Lock()
		x.Running, x.ExitCode = false, &code
		e.execs.mu.Unlock()
		e.emitContainer(&c, "exec_die", map[string]string{"execID": id, "exitCode": fmt.Sprint(code)})
	}
	if o.Detach {
		go run(io.Discard, io.Discard)
		return nil
	}
	stdout, stderr := o.Stdout, o.Stderr
	if stdout == nil {
		stdout = io.Discard
	}
	if stderr == nil {
		stderr = io.Discard
	}
	run(stdout, stderr)
	return nil
}

// ExecResize sets the terminal size of a running exec.
func (e *Engine) ExecResize(ctx context.Context, id string, width, height int) error {
	x, err := e.ExecInspect(id)
	if err != nil {
		return err
	}
	if !x.Running {
		return fmt.Errorf("exec %s is not running: %w", id, errdefs.ErrConflict)
	}
	sup, err := e.supervisor(ctx)
	if err != nil {
		return err
	}
	return sup.ResizeExec(ctx, x.ContainerID, id, width, height)
}

// writeExecProcess derives the exec's process from the container's (its
// capabilities, rlimits, security settings) with the exec's command, env
// (the container's, overridden key by key), working directory and user
// resolved in the container's files, as docker does.
func (e *Engine) writeExecProcess(c Container, cfg container.ExecCreateRequest, size *[2]uint, path string) error {
	data, err := os.ReadFile(filepath.Join(e.bundlePath(c.ID), "config.json"))
	if err != nil {
		return fmt.Errorf("exec: container spec: %w", err)
	}
	var s specs.Spec
	if err := json.Unmarshal(data, &s); err != nil || s.Process == nil {
		return fmt.Errorf("exec: container spec: %v: %w", err, errdefs.ErrFailedPrecondition)
	}
	p := *s.Process
	p.Args = cfg.Cmd
	p.Terminal = cfg.Tty
	p.ConsoleSize = nil
	if cfg.Tty && size != nil && size[0] > 0 && size[1] > 0 {
		p.ConsoleSize = &specs.Box{Height: size[0], Width: size[1]}
	}
	if cfg.WorkingDir != "" {
		p.Cwd = cfg.WorkingDir
	}
	if cfg.User != "" {
		var groups []string
		if c.HostConfig != nil {
			groups = c.HostConfig.GroupAdd
		}
		u, home, err := spec.ResolveUser(e.rootfsPath(c.ID), cfg.User, groups)
		if err != nil {
			return err
		}
		p.User = u
		p.Env = setEnv(p.Env, "HOME="+home)
	}
	for _, kv := range cfg.Env {
		p.Env = setEnv(p.Env, kv)
	}
	if cfg.Tty {
		if !slices.ContainsFunc(p.Env, func(s string) bool { return strings.HasPrefix(s, "TERM=") }) {
			p.Env = append(p.Env, "TERM=xterm")
		}
	}
	out, err := json.Marshal(p)
	if err != nil {
		return err
	}
	return os.WriteFile(path, out, 0o600)
}

// setEnv sets KEY=value in env, replacing an earlier KEY.
func setEnv(env []string, kv string) []string {
	k, _, _ := strings.Cut(kv, "=")
	out := slices.DeleteFunc(slices.Clone(env), func(s string) bool {
		sk, _, _ := strings.Cut(s, "=")
		return sk == k
	})
	return append(out, kv)
}

// dropExecs forgets the execs of a container that is removed or starts
// again, as docker does; their processes ended with the previous run.
func (e *Engine) dropExecs(containerID string) {
	e.execs.mu.Lock()
	defer e.execs.mu.Unlock()
	for id, x := range e.execs.m {
		if x.ContainerID == containerID && !x.Running {
			delete(e.execs.m, id)
		}
	}
}

func (e *Engine) forgetExec(id string) {
	e.execs.mu.Lock()
	delete(e.execs.m, id)
	e.execs.mu.Unlock()
}
