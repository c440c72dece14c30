package runtime

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/internal/errdefs"
	"github.com/berth-dev/berth/internal/runtime/cgroup"
)

// Start runs the user process of a created container.
func (r *Runtime) Start(ctx context.Context, id string) error {
	rec, err := r.load(id)
	if err != nil {
		return err
	}
	switch st := r.status(rec); st {
	case specs.StateCreated:
	case specs.StateStopped:
		return fmt.Errorf("cannot start a container that has stopped: %w", errdefs.ErrFailedPrecondition)
	default:
		return fmt.Errorf("cannot start a container in the %s state: %w", st, errdefs.ErrFailedPrecondition)
	}
	fifo := filepath.Join(r.dir(id), fifoFile)
	// Non-blocking: with the init gone there is no reader and open fails
	// with ENXIO instead of hanging.
	fd, err := unix.Open(fifo, unix.O_WRONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		if errors.Is(err, unix.ENXIO) {
			return fmt.Errorf("container %s: init process is gone: %w", id, errdefs.ErrFailedPrecondition)
		}
		return fmt.Errorf("open exec fifo: %w", err)
	}
	defer unix.Close(fd)
	if _, err := unix.Write(fd, []byte{0}); err != nil {
		return fmt.Errorf("signal start: %w", err)
	}
	// Wait until the init has taken the byte, so poststart runs after the
	// process has been let go.
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); {
		n, err := unix.IoctlGetInt(fd, unix.TIOCINQ)
		if err != nil || n == 0 || !rec.alive() {
			break
		}
		time.Sleep(100 * time.Microsecond)
	}
	if err := os.Remove(fifo); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove exec fifo: %w", err)
	}
	if h := rec.hooks(); h != nil {
		if err := runHooks(ctx, "poststart", h.Poststart, stateJSON(r.ociState(rec))); err != nil {
			r.Log.Warn("poststart hook failed", "id", id, "err", err)
		}
	}
	return nil
}

// Kill sends sig to the container's init, or with all to every process in
// its cgroup.
func (r *Runtime) Kill(ctx context.Context, id string, sig unix.Signal, all bool) error {
	rec, err := r.load(id)
	if err != nil {
		return err
	}
	if all {
		cg, err := cgroup.Load(rec.CgroupPaths)
		if err != nil {
			return fmt.Errorf("load cgroup of %s: %w", id, err)
		}
		return cg.KillAll(sig)
	}
	if r.status(rec) == specs.StateStopped {
		return fmt.Errorf("container %s is not running: %w", id, errdefs.ErrFailedPrecondition)
	}
	if err := unix.Kill(rec.Pid, sig); err != nil {
		return fmt.Errorf("signal %s: %w", id, err)
	}
	return nil
}

// Delete removes a stopped (or, with force, any) container: its processes,
// cgroup and state, then runs the poststop hooks.
func (r *Runtime) Delete(ctx context.Context, id string, force bool) error {
	rec, err := r.load(id)
	if err != nil {
		if errdefs.IsNotFound(err) && !force {
			return err
		}
		if errdefs.IsNotFound(err) {
			return nil
		}
		// A corrupt or half-written state: nothing to signal, just remove it.
		if ValidateID(id) == nil {
			return os.RemoveAll(r.dir(id))
		}
		return err
	}
	st := r.status(rec)
	if (st == specs.StateRunning || st == StatePaused) && !force {
		return fmt.Errorf("cannot delete container %s that is not stopped: %s: %w", id, st, errdefs.ErrFailedPrecondition)
	}
	var cg *cgroup.Manager
	if len(rec.CgroupPaths) > 0 {
		cg, _ = cgroup.Load(rec.CgroupPaths)
	}
	if st != specs.StateStopped {
		if cg != nil {
			_ = cg.KillAll(unix.SIGKILL)
		}
		_ = unix.Kill(rec.Pid, unix.SIGKILL)
		if st == StatePaused && cg != nil {
			_ = cg.Thaw() // a frozen process cannot act on SIGKILL
		}
		r.waitGone(rec, 5*time.Second)
	}
	return r.destroy(ctx, rec, cg)
}

// destroy removes what a stopped container leaves: its cgroup, the mounts
// it made in the host's namespace, its state; poststop hooks run.
func (r *Runtime) destroy(ctx context.Context, rec *record, cg *cgroup.Manager) error {
	id := rec.ID
	if cg != nil {
		if err := cg.Destroy(); err != nil {
			return fmt.Errorf("remove cgroup of %s: %w", id, err)
		}
	}
	if rec.HostMountNS && rec.Rootfs != "" {
		// It mounted into the host's namespace: those mounts are ours to remove.
		if err := unmountUnder(rec.Rootfs); err != nil {
			return fmt.Errorf("remove mounts of %s: %w", id, err)
		}
	}
	if h := rec.hooks(); h != nil {
		state := r.ociState(rec)
		state.Status = specs.StateStopped
		if err := runHooks(ctx, "poststop", h.Poststop, stateJSON(state)); err != nil {
			r.Log.Warn("poststop hook failed", "id", id, "err", err)
		}
	}
	if err := os.RemoveAll(r.dir(id)); err != nil {
		return fmt.Errorf("remove state of %s: %w", id, err)
	}
	return nil
}

func (r *Runtime) waitGone(rec *record, timeout time.Duration) {
	for deadline := time.Now().Add(timeout); time.Now().Before(deadline) && rec.alive(); {
		time.Sleep(time.Millisecond)
	}
}

// Ps returns the host pids of every process in the container's cgroup.
func (r *Runtime) Ps(ctx context.Context, id string) ([]int, error) {
	rec, err := r.load(id)
	if err != nil {
		return nil, err
	}
	cg, err := cgroup.Load(rec.CgroupPaths)
	if err != nil {
		return nil, fmt.Errorf("load cgroup of %s: %w", id, err)
	}
	return cg.Pids()
}

// Run creates and starts a container, waits for its process and deletes it,
// returning the process's exit code (128+N when killed by signal N).
// Signals sent to the caller are forwarded to the container.
func (r *Runtime) Run(ctx context.Context, id string, opts CreateOptions) (int, error) {
	var console *consoleRelay
	if opts.ConsoleSocket == "" {
		// Only process.terminal matters here: the peek, not a second full
		// decode of the spec (create decodes it, and the cold decode is
		// a millisecond of every start).
		data, err := readSpec(opts.Bundle)
		if p := peekSpec(data); err == nil && p != nil && p.Process.Terminal {
			console, err = newConsoleRelay(filepath.Join(r.Root, "."+id+".console.sock"))
			if err != nil {
				return -1, err
			}
			defer console.Close()
			opts.ConsoleSocket = console.path
		}
	}
	tr := newPhaseTracer(os.Getenv(TraceEnv) == "1")
	// Installing handlers for every signal takes a while; do it while the
	// container is being created. Until then a signal acts on berth as usual.
	sigc := make(chan os.Signal, 16)
	notified := make(chan struct{})
	go func() {
		signal.Notify(sigc)
		close(notified)
	}()
	// Stopping waits, yielding in a loop, until the signal machinery is
	// idle: milliseconds at the end of every run when done in line, and a
	// caller about to exit does not need it done.
	defer func() {
		go func() {
			<-notified
			signal.Stop(sigc)
		}()
	}()
	l, err := r.create(ctx, id, opts, "run")
	if err != nil {
		return -1, err
	}
	tr.mark("parent", "created")
	if console != nil {
		if err := console.accept(); err != nil {
			_ = r.Delete(ctx, id, true)
			return -1, err
		}
	}
	if err := l.conn.send(msgStart, nil); err != nil {
		_ = r.Delete(ctx, id, true)
		return -1, fmt.Errorf("start: %w", err)
	}
	tr.mark("parent", "start sent")
	m, err := l.conn.recv()
	l.conn.f.Close()
	tr.mark("parent", "exec'd")
	if err == nil && m.Type == msgError {
		_ = r.Delete(ctx, id, true)
		return -1, errors.New(string(m.Payload))
	}
	if err != nil && !errors.Is(err, io.EOF) {
		_ = r.Delete(ctx, id, true)
		return -1, fmt.Errorf("start: %w", err)
	}
	if l.rec.decoded.Hooks != nil {
		if err := runHooks(ctx, "poststart", l.rec.decoded.Hooks.Poststart, stateJSON(r.ociState(l.rec))); err != nil {
			r.Log.Warn("poststart hook failed", "id", id, "err", err)
		}
	}
	if console != nil {
		go console.relay()
	}
	<-notified
	code := waitForwarding(l.pid, sigc, console)
	l.region.release() // the init is reaped
	tr.mark("parent", "exited")
	// The init is reaped and its record and cgroup at hand: no need for
	// Delete's look-up.
	if err := r.destroy(ctx, l.rec, l.cg); err != nil {
		return code, err
	}
	tr.mark("parent", "deleted")
	return code, nil
}

func waitForwarding(pid int, sigc chan os.Signal, console *consoleRelay) int {
	waitc := make(chan unix.WaitStatus, 1)
	go func() {
		var ws unix.WaitStatus
		for {
			_, err := unix.Wait4(pid, &ws, 0, nil)
			if err != unix.EINTR {
				break
			}
		}
		waitc <- ws
	}()
	for {
		select {
		case s := <-sigc:
			sig := s.(syscall.Signal)
			if sig == unix.SIGCHLD || sig == unix.SIGURG || sig == unix.SIGPIPE {
				continue
			}
			if sig == unix.SIGWINCH && console != nil {
				console.resize()
				continue
			}
			_ = unix.Kill(pid, sig)
		case ws := <-waitc:
			if ws.Signaled() {
				return 128 + int(ws.Signal())
			}
			return ws.ExitStatus()
		}
	}
}
