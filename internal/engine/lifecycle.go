package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/moby/moby/api/types/container"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/internal/errdefs"
	"github.com/berth-dev/berth/internal/snapshot"
	"github.com/berth-dev/berth/internal/spec"
	"github.com/berth-dev/berth/internal/supervisor"
)

// ErrNotModified marks a request that had nothing to do (starting a
// running container, stopping a stopped one): docker answers 304.
var ErrNotModified = errors.New("not modified")

// Start runs a created or exited container: the user's start, which
// resets the restart count and cancels a pending restart.
func (e *Engine) Start(ctx context.Context, ref string) error {
	return e.start(ctx, ref, true)
}

func (e *Engine) start(ctx context.Context, ref string, manual bool) error {
	e.mu.Lock()
	c, err := e.lookup(ref)
	if err != nil {
		e.mu.Unlock()
		return err
	}
	// The last exit's teardown (rootfs, network namespace) must be over
	// before a new start makes them again.
	for c.releasing != nil {
		ch := c.releasing
		e.mu.Unlock()
		<-ch
		e.mu.Lock()
	}
	if manual {
		cancelRestart(c)
		c.RestartCount, c.ManuallyStopped = 0, false
	}
	if err := e.waitFS(ctx, c); err != nil {
		e.mu.Unlock()
		return err
	}
	switch c.State.Status {
	case StatusRunning:
		e.mu.Unlock()
		return fmt.Errorf("container %s is already running: %w", c.ID, ErrNotModified)
	case StatusRemoving, StatusDead:
		e.mu.Unlock()
		return fmt.Errorf("container %s is marked for removal and cannot be started: %w", c.ID, errdefs.ErrConflict)
	}
	if c.starting != nil {
		e.mu.Unlock()
		return fmt.Errorf("container %s is already starting: %w", c.ID, errdefs.ErrConflict)
	}
	id := c.ID
	// "starting" is not a docker status; the pid stays 0 until it runs,
	// and the status flips under the lock before the process can exit.
	// c.starting keeps a removal (say, rm -f racing a restart policy)
	// from deleting the directory the start is writing.
	starting := make(chan struct{})
	c.starting = starting
	cfg, hc := c.Config, c.HostConfig
	e.mu.Unlock()
	defer func() {
		e.mu.Lock()
		c.starting = nil
		close(starting)
		e.mu.Unlock()
	}()

	sup, err := e.supervisor(ctx)
	if err != nil {
		return err
	}
	e.dropExecs(id)
	cgroupsPath, err := e.prepareStart(ctx, id, cfg, hc)
	if err != nil {
		_ = snapshot.UnmountAll(e.rootfsPath(id))
		return e.startFailed(id, err)
	}
	finishNetwork, err := e.beginNetwork(ctx, id)
	if err != nil {
		_ = snapshot.UnmountAll(e.rootfsPath(id))
		return e.startFailed(id, err)
	}
	// The runtime creates the container while the network is plugged in:
	// both take milliseconds, and only the start needs both done.
	netDone := make(chan error, 1)
	if finishNetwork == nil {
		netDone <- nil
	} else {
		go func() { netDone <- finishNetwork() }()
	}
	maxSize, maxFiles := e.opts.LogMaxSize, e.opts.LogMaxFiles
	if lo, err := logOptions(hc.LogConfig.Config, maxSize, maxFiles); err == nil {
		maxSize, maxFiles = lo.maxSize, lo.maxFiles
	}
	_ = os.Remove(e.exitPath(id))
	pid, err := sup.Create(ctx, id, supervisor.CreateRequest{
		Bundle: e.bundlePath(id), LogPath: e.LogPath(id), LogMaxSize: maxSize, LogMaxFiles: maxFiles,
		ExitPath: e.exitPath(id), CgroupsPath: cgroupsPath, Tty: cfg.Tty, OpenStdin: cfg.OpenStdin, StdinOnce: cfg.StdinOnce,
	})
	// A failed finish tore the network down, which may also be why the
	// create failed: the network's error is the one to report.
	switch netErr := <-netDone; {
	case netErr != nil:
		if err == nil {
			_ = sup.Delete(context.WithoutCancel(ctx), id)
		}
		err = netErr
	case err != nil:
		e.teardownNetwork(context.WithoutCancel(ctx), id)
	}
	if err != nil {
		_ = snapshot.UnmountAll(e.rootfsPath(id))
		return e.startFailed(id, err)
	}
	if e.needsLoopback(hc) {
		if err := loopbackUp(pid); err != nil {
			_ = sup.Delete(context.WithoutCancel(ctx), id)
			e.teardownNetwork(context.WithoutCancel(ctx), id)
			return e.startFailed(id, err)
		}
	}
	e.mu.Lock()
	if c.exited == nil || isClosed(c.exited) {
		c.exited = make(chan struct{})
	}
	c.State = State{Status: StatusRunning, Pid: pid, StartedAt: time.Now().UTC()}
	saveErr := e.save(c)
	e.mu.Unlock()
	if saveErr != nil {
		_ = sup.Delete(context.WithoutCancel(ctx), id)
		e.teardownNetwork(context.WithoutCancel(ctx), id)
		return saveErr
	}
	if err := sup.Start(ctx, id); err != nil {
		// The supervisor records the init's end and reports it; make sure
		// it ends, then keep the reason.
		_ = sup.Delete(context.WithoutCancel(ctx), id)
		if st, rerr := readExit(e.exitPath(id)); rerr == nil {
			e.handleExit(id, st)
		}
		return e.startFailed(id, err)
	}
	e.mu.Lock()
	e.emitContainer(c, "start", nil)
	c.State.Health = nil
	if args := probeArgs(c.Config.Healthcheck); args != nil && c.State.Status == StatusRunning {
		c.State.Health = &container.Health{Status: container.Starting}
		_ = e.save(c)
		go e.monitorHealth(id, *c.Config.Healthcheck, args, c.State.StartedAt, c.exited)
	}
	e.mu.Unlock()
	return nil
}

// thaw resumes a paused container after a signal was sent to it, as
// docker does: frozen processes do not act on signals (with cgroup v1's
// freezer not even on SIGKILL) until thawed.
func (e *Engine) thaw(ctx context.Context, sup Supervisor, id string) {
	e.mu.Lock()
	c, ok := e.byID[id]
	paused := ok && c.State.Paused
	e.mu.Unlock()
	if !paused {
		return
	}
	if err := sup.Resume(ctx, id); err != nil && !errdefs.IsNotFound(err) {
		e.log.Warn("thaw", "id", id, "err", err)
		return
	}
	e.mu.Lock()
	if c.State.Paused {
		c.State.Paused = false
		_ = e.save(c)
	}
	e.mu.Unlock()
}

// waitStarting waits, with e.mu held (released meanwhile), until no start
// of c is in flight: stop, kill and remove act on what it started rather
// than race it (a restart policy starts containers behind the user's back).
func (e *Engine) waitStarting(ctx context.Context, c *Container) error {
	return e.waitNil(ctx, func() chan struct{} { return c.starting })
}

// waitNil waits, with e.mu held (released meanwhile), until field (read
// under e.mu) is nil; its channel is closed when it is cleared.
func (e *Engine) waitNil(ctx context.Context, field func() chan struct{}) error {
	for field() != nil {
		ch := field()
		e.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			e.mu.Lock()
			return ctx.Err()
		}
		e.mu.Lock()
	}
	return nil
}

func isClosed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// startFailed records err on the container as docker does (exit code 128
// for a start that never ran the process) and returns it.
func (e *Engine) startFailed(id string, err error) error {
	e.unmountVolumes(id)
	e.mu.Lock()
	autoRemove := false
	if c, ok := e.byID[id]; ok && c.State.Status != StatusRunning {
		c.State.Error = err.Error()
		if c.State.Status != StatusCreated {
			c.State.ExitCode = 128
		}
		_ = e.save(c)
		autoRemove = c.HostConfig.AutoRemove
	}
	e.mu.Unlock()
	if autoRemove {
		// As docker: a --rm container whose start failed is removed, or a
		// client waiting for "removed" (docker run --rm) waits forever.
		go func() {
			if err := e.Remove(context.Background(), id, RemoveOptions{Force: true, RemoveVolumes: true}); err != nil && !errdefs.IsNotFound(err) && !errdefs.IsConflict(err) {
				e.log.Warn("auto-remove after a failed start", "id", id, "err", err)
			}
		}()
	}
	return err
}

// prepareStart mounts the rootfs and writes the bundle. It returns the
// spec's cgroups path (--cgroup-parent may have moved it), which the
// supervisor needs and should not have to read back from config.json.
func (e *Engine) prepareStart(ctx context.Context, id string, cfg *container.Config, hc *container.HostConfig) (string, error) {
	mounts, err := e.images.Snapshots().Mounts(ctx, id)
	if err != nil {
		return "", fmt.Errorf("rootfs of %s: %w", id, err)
	}
	rootfs := e.rootfsPath(id)
	// A leftover mount (a daemon killed mid-way) is replaced, not stacked.
	_ = snapshot.UnmountAll(rootfs)
	if err := snapshot.MountAll(mounts, rootfs); err != nil {
		return "", fmt.Errorf("mount rootfs of %s: %w", id, err)
	}
	opts, err := e.specOptions(id, cfg, hc)
	if err != nil {
		return "", err
	}
	vms, err := e.mountVolumes(ctx, id)
	if err != nil {
		return "", err
	}
	opts.Mounts = append(vms, opts.Mounts...)
	s, err := spec.Build(opts)
	if err != nil {
		return "", err
	}
	bundle := e.bundlePath(id)
	if err := os.MkdirAll(bundle, 0o700); err != nil {
		return "", fmt.Errorf("bundle: %w", err)
	}
	if err := writeSpec(bundle, s); err != nil {
		return "", err
	}
	return s.Linux.CgroupsPath, nil
}

// writeSpec writes s as the bundle's config.json.
func writeSpec(bundle string, s *specs.Spec) error {
	data, err := json.Marshal(s)
	if err != nil {
		return fmt.Errorf("encode spec: %w", err)
	}
	if err := os.WriteFile(filepath.Join(bundle, "config.json"), data, 0o600); err != nil {
		return fmt.Errorf("write spec: %w", err)
	}
	return nil
}

func (e *Engine) specOptions(id string, cfg *container.Config, hc *container.HostConfig) (spec.Options, error) {
	dir := e.containerDir(id)
	o := spec.Options{
		Rootfs:         e.rootfsPath(id),
		Hostname:       cfg.Hostname,
		Args:           append(append([]string(nil), cfg.Entrypoint...), cfg.Cmd...),
		Env:            cfg.Env,
		Cwd:            cfg.WorkingDir,
		User:           cfg.User,
		GroupAdd:       hc.GroupAdd,
		OpenStdin:      cfg.OpenStdin,
		Privileged:     hc.Privileged,
		ReadonlyRootfs: hc.ReadonlyRootfs,
		CapAdd:         hc.CapAdd,
		CapDrop:        hc.CapDrop,
		Memory:         hc.Memory,
		MemorySwap:     hc.MemorySwap,
		NanoCPUs:       hc.NanoCPUs,
		CPUShares:      hc.CPUShares,
		ShmSize:        hc.ShmSize,
		CgroupsPath:    filepath.Join(e.opts.CgroupParent, id),
		HostsPath:      filepath.Join(dir, "hosts"),
		HostnamePath:   filepath.Join(dir, "hostname"),
		ResolvConfPath: filepath.Join(dir, "resolv.conf"),
		Tmpfs:          hc.Tmpfs,
	}
	o.Tty = cfg.Tty
	mode, netns, hostname, err := e.netnsSpec(id, hc)
	if err != nil {
		return o, err
	}
	o.NetworkMode, o.NetnsPath = mode, netns
	if hostname != "" {
		o.Hostname = hostname
	}
	if hc.PidsLimit != nil {
		o.PidsLimit = *hc.PidsLimit
	}
	if err := hostOptions(&o, hc); err != nil {
		return o, err
	}
	for _, so := range hc.SecurityOpt {
		switch so {
		case "seccomp=unconfined", "seccomp:unconfined":
			o.SeccompUnconfined = true
		case "no-new-privileges", "no-new-privileges=true", "no-new-privileges:true":
			o.NoNewPrivileges = true
		}
	}
	if hc.Init != nil && *hc.Init {
		if e.opts.InitBinary == "" {
			return o, fmt.Errorf("--init: the daemon has no init binary: %w", errdefs.ErrFailedPrecondition)
		}
		o.Mounts = append(o.Mounts, specs.Mount{Destination: supervisor.InitPath, Type: "bind", Source: e.opts.InitBinary,
			Options: []string{"bind", "ro"}})
		o.Args = append(slices.Clone(supervisor.InitArgs), o.Args...)
	}
	return o, nil
}

// needsLoopback: a namespace the runtime made (--network none, or no
// network manager) has lo down; bridge namespaces get it up when attached.
func (e *Engine) needsLoopback(hc *container.HostConfig) bool {
	switch parseNetworkMode(hc.NetworkMode).kind {
	case modeNone:
		return true
	case modeBridge:
		return e.net == nil
	}
	return false
}

// handleExit records a container's exit, once: later reports of the same
// exit (an event after a reconcile read the file) find it not running.
func (e *Engine) handleExit(id string, st supervisor.ExitStatus) {
	e.mu.Lock()
	c, ok := e.byID[id]
	// Pid is set exactly while the process runs; a container being
	// removed keeps its status.
	if !ok || c.State.Pid == 0 {
		e.mu.Unlock()
		return
	}
	if c.State.Status == StatusRunning {
		c.State.Status = StatusExited
	}
	c.State.Pid = 0
	c.State.Paused = false
	c.State.ExitCode = st.ExitCode
	c.State.OOMKilled = st.OOMKilled
	c.State.FinishedAt = st.FinishedAt
	// An auto-removed container's record is deleted right after: saving
	// the exit would only cost a write and a rename. Should the daemon die
	// before the removal, its next start finds the process gone and
	// removes the container then.
	if !c.HostConfig.AutoRemove {
		if err := e.save(c); err != nil {
			e.log.Error("record exit", "id", id, "err", err)
		}
	}
	// c.exited closes after the teardown below: whoever waits for the
	// exit (stop, wait, rm) finds the network and rootfs released.
	exited := c.exited
	if st.OOMKilled {
		e.emitContainer(c, "oom", nil)
	}
	e.emitContainer(c, "die", map[string]string{"exitCode": strconv.Itoa(st.ExitCode)})
	autoRemove := c.HostConfig.AutoRemove
	restart := c.State.Status == StatusExited && shouldRestart(c, st.ExitCode, false)
	releasing := make(chan struct{})
	c.releasing = releasing
	e.mu.Unlock()
	if err := snapshot.UnmountAll(e.rootfsPath(id)); err != nil {
		e.log.Warn("unmount rootfs", "id", id, "err", err)
	}
	e.unmountVolumes(id)
	e.teardownNetwork(context.Background(), id)
	_ = os.RemoveAll(e.bundlePath(id))
	e.mu.Lock()
	close(exited)
	if c.releasing == releasing {
		c.releasing = nil
	}
	close(releasing)
	e.mu.Unlock()
	if restart {
		e.mu.Lock()
		if c.State.Status == StatusExited { // not removed or started meanwhile
			e.scheduleRestart(c)
		}
		e.mu.Unlock()
	}
	if autoRemove {
		go func() {
			if err := e.Remove(context.Background(), id, RemoveOptions{Force: true, RemoveVolumes: true}); err != nil && !errdefs.IsNotFound(err) && !errdefs.IsConflict(err) {
				e.log.Warn("auto-remove", "id", id, "err", err)
			}
		}()
	}
}

func readExit(path string) (supervisor.ExitStatus, error) {
	var st supervisor.ExitStatus
	data, err := os.ReadFile(path)
	if err != nil {
		return st, err
	}
	err = json.Unmarshal(data, &st)
	return st, err
}

// Stop sends the stop signal, waits up to timeout (nil: the container's
// StopTimeout or 10 s; negative: forever) and then kills.
func (e *Engine) Stop(ctx context.Context, ref string, sigName string, timeout *int) error {
	e.mu.Lock()
	c, err := e.lookup(ref)
	if err != nil {
		e.mu.Unlock()
		return err
	}
	if err := e.waitStarting(ctx, c); err != nil {
		e.mu.Unlock()
		return err
	}
	if c.State.Status != StatusRunning {
		stopped := c.State.Restarting
		cancelRestart(c) // stopping a restarting container ends its restarts
		c.ManuallyStopped = true
		_ = e.save(c)
		e.mu.Unlock()
		if stopped {
			return nil
		}
		return fmt.Errorf("container %s is not running: %w", c.ID, ErrNotModified)
	}
	c.ManuallyStopped = true
	_ = e.save(c)
	id, exited := c.ID, c.exited
	defer func() {
		if isClosed(exited) {
			e.mu.Lock()
			e.emitContainer(c, "stop", nil)
			e.mu.Unlock()
		}
	}()
	if sigName == "" {
		sigName = c.Config.StopSignal
	}
	wait := 10
	if c.Config.StopTimeout != nil {
		wait = *c.Config.StopTimeout
	}
	e.mu.Unlock()
	if timeout != nil {
		wait = *timeout
	}
	sig := unix.SIGTERM
	if sigName != "" {
		if sig, err = ParseSignal(sigName); err != nil {
			return err
		}
	}
	sup, err := e.supervisor(ctx)
	if err != nil {
		return err
	}
	if err := sup.Kill(ctx, id, sig, false); err != nil && !errdefs.IsNotFound(err) {
		e.log.Warn("stop signal", "id", id, "err", err)
	}
	e.thaw(ctx, sup, id)
	if wait >= 0 {
		select {
		case <-exited:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Duration(wait) * time.Second):
		}
		if err := sup.Kill(ctx, id, unix.SIGKILL, true); err != nil && !errdefs.IsNotFound(err) {
			e.log.Warn("kill after stop timeout", "id", id, "err", err)
		}
	}
	select {
	case <-exited:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Kill sends a signal (default SIGKILL) to the container's init.
func (e *Engine) Kill(ctx context.Context, ref, sigName string) error {
	sig := unix.SIGKILL
	if sigName != "" {
		var err error
		if sig, err = ParseSignal(sigName); err != nil {
			return err
		}
	}
	e.mu.Lock()
	c, err := e.lookup(ref)
	if err != nil {
		e.mu.Unlock()
		return err
	}
	if c.State.Status != StatusRunning {
		e.mu.Unlock()
		return fmt.Errorf("cannot kill container: %s: container %s is not running: %w", ref, c.ID, errdefs.ErrConflict)
	}
	id, exited := c.ID, c.exited
	if sig == unix.SIGKILL {
		c.ManuallyStopped = true
		_ = e.save(c)
	}
	e.emitContainer(c, "kill", map[string]string{"signal": strconv.Itoa(int(sig))})
	e.mu.Unlock()
	sup, err := e.supervisor(ctx)
	if err != nil {
		return err
	}
	if err := sup.Kill(ctx, id, sig, false); err != nil {
		return err
	}
	e.thaw(ctx, sup, id)
	if sig == unix.SIGKILL {
		// docker returns once a killed container is gone.
		select {
		case <-exited:
		case <-ctx.Done():
		case <-time.After(5 * time.Second):
		}
	}
	return nil
}

// ParseSignal accepts "KILL", "SIGKILL", "kill" or "9".
func ParseSignal(s string) (syscall.Signal, error) {
	if n, err := strconv.Atoi(s); err == nil {
		if n <= 0 || n > 64 {
			return 0, fmt.Errorf("invalid signal: %s: %w", s, errdefs.ErrInvalidArgument)
		}
		return syscall.Signal(n), nil
	}
	name := strings.ToUpper(s)
	if !strings.HasPrefix(name, "SIG") {
		name = "SIG" + name
	}
	if sig := unix.SignalNum(name); sig != 0 {
		return sig, nil
	}
	return 0, fmt.Errorf("invalid signal: %s: %w", s, errdefs.ErrInvalidArgument)
}

// Wait conditions, docker's.
const (
	WaitNotRunning = "not-running"
	WaitNextExit   = "next-exit"
	WaitRemoved    = "removed"
)

// WaitResult is the outcome of Wait.
type WaitResult struct {
	ExitCode int
	Error    error
}

// Wait returns a channel that yields one result when the condition holds.
// Errors finding the container come back at once, so the API can still
// answer 404 before sending its headers.
func (e *Engine) Wait(ctx context.Context, ref, condition string) (<-chan WaitResult, error) {
	switch condition {
	case "", WaitNotRunning, WaitNextExit, WaitRemoved:
	default:
		return nil, fmt.Errorf("invalid condition: %q: %w", condition, errdefs.ErrInvalidArgument)
	}
	e.mu.Lock()
	c, err := e.lookup(ref)
	if err != nil {
		e.mu.Unlock()
		return nil, err
	}
	exited, removed := c.exited, c.removed
	running := c.State.Status == StatusRunning
	// docker run --rm waits for removal before it starts the container:
	// the code to report is that of the run to come.
	created := c.State.Status == StatusCreated
	code := c.State.ExitCode
	e.mu.Unlock()
	out := make(chan WaitResult, 1)
	// From the record itself, not the table: an auto-removal may have
	// taken it out of the table before this runs (run --rm then got 0).
	exitCode := func() int {
		e.mu.Lock()
		defer e.mu.Unlock()
		return c.State.ExitCode
	}
	switch {
	case (condition == "" || condition == WaitNotRunning) && !running:
		out <- WaitResult{ExitCode: code}
		return out, nil
	}
	go func() {
		if running || condition == WaitNextExit || (condition == WaitRemoved && created) {
			var gone <-chan struct{} // a created container may be removed unrun
			if condition == WaitRemoved {
				gone = removed
			}
			select {
			case <-exited:
				code = exitCode()
			case <-gone:
			case <-ctx.Done():
				out <- WaitResult{ExitCode: -1, Error: ctx.Err()}
				return
			}
		}
		if condition == WaitRemoved {
			select {
			case <-removed:
			case <-ctx.Done():
				out <- WaitResult{ExitCode: -1, Error: ctx.Err()}
				return
			}
		}
		out <- WaitResult{ExitCode: code}
	}()
	return out, nil
}

// RemoveOptions tune Remove.
type RemoveOptions struct {
	Force bool
	// RemoveVolumes removes the container's anonymous volumes (rm -v).
	RemoveVolumes bool
}

// Remove deletes a container: its process (with Force), rootfs mount,
// writable snapshot, logs and record.
func (e *Engine) Remove(ctx context.Context, ref string, opts RemoveOptions) error {
	// Let a start or a copy in flight finish, then remove what it started.
	c, err := e.lookupSettled(ctx, ref)
	if err != nil {
		return err
	}
	switch c.State.Status {
	case StatusRunning:
		if !opts.Force {
			e.mu.Unlock()
			return fmt.Errorf("cannot remove container %q: container is running: stop the container before removing or force remove: %w", c.Name, errdefs.ErrConflict)
		}
	case StatusRemoving:
		e.mu.Unlock()
		return fmt.Errorf("removal of container %s is already in progress: %w", c.ID, errdefs.ErrConflict)
	}
	cancelRestart(c)
	prev := c.State.Status
	c.State.Status = StatusRemoving
	id, exited := c.ID, c.exited
	if !c.HostConfig.AutoRemove { // see handleExit
		_ = e.save(c)
	}
	e.mu.Unlock()

	restore := func(err error) error {
		e.mu.Lock()
		c.State.Status = prev
		_ = e.save(c)
		e.mu.Unlock()
		return err
	}
	if prev == StatusRunning {
		sup, err := e.supervisor(ctx)
		if err != nil {
			return restore(err)
		}
		e.thaw(ctx, sup, id) // a frozen process cannot die (cgroup v1 freezer)
		if err := sup.Delete(ctx, id); err != nil {
			return restore(err)
		}
		// The exit event may race the Delete answer, or the event stream
		// may be down: the exit file is written by now, record it from there.
		if st, err := readExit(e.exitPath(id)); err == nil {
			e.handleExit(id, st)
		}
		<-exited
	}
	e.teardownNetwork(context.WithoutCancel(ctx), id)
	if err := snapshot.UnmountAll(e.rootfsPath(id)); err != nil {
		return restore(fmt.Errorf("unmount rootfs of %s: %w", id, err))
	}
	if err := e.images.RemoveMounts(ctx, id); err != nil && !errdefs.IsNotFound(err) {
		return restore(fmt.Errorf("remove snapshot of %s: %w", id, err))
	}
	_ = os.RemoveAll(e.bundlePath(id))
	if err := os.RemoveAll(e.containerDir(id)); err != nil {
		return restore(fmt.Errorf("remove %s: %w", id, err))
	}
	// Before "removed" is signalled: a client waiting for it (run --rm)
	// may remove the volumes next.
	e.releaseVolumes(c, opts.RemoveVolumes)
	e.mu.Lock()
	delete(e.byID, id)
	if e.names[c.Name] == id {
		delete(e.names, c.Name)
	}
	close(c.removed)
	e.emitContainer(c, "destroy", nil)
	e.mu.Unlock()
	e.dropExecs(id)
	return nil
}

// Rename gives a container a new name.
func (e *Engine) Rename(ref, newName string) error {
	name, err := checkName(newName)
	if err != nil {
		return err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	c, err := e.lookup(ref)
	if err != nil {
		return err
	}
	if c.Name == name {
		return fmt.Errorf("Renaming a container with the same name as its current name: %w", errdefs.ErrInvalidArgument)
	}
	if other, ok := e.names[name]; ok {
		return fmt.Errorf("Conflict. The container name %q is already in use by container %q. You have to remove (or rename) that container to be able to reuse that name: %w",
			name, other, errdefs.ErrConflict)
	}
	old := c.Name
	c.Name = name
	if err := e.save(c); err != nil {
		c.Name = old
		return err
	}
	delete(e.names, old)
	e.names[name] = c.ID
	if e.net != nil && c.State.Status == StatusRunning {
		// The embedded DNS answers for the new name (the manager has its
		// own lock; e.mu is never taken under it).
		if err := e.net.Rename(c.ID, trimSlash(name)); err != nil {
			e.log.Warn("rename network endpoints", "id", c.ID, "err", err)
		}
	}
	e.emitContainer(c, "rename", map[string]string{"oldName": old})
	return nil
}

// Prune removes the containers that do not run (nor wait for a restart)
// and for which keep returns false; it returns their IDs.
func (e *Engine) Prune(ctx context.Context, keep func(Container) bool) ([]string, error) {
	var victims []string
	for _, c := range e.List() {
		if c.State.Status == StatusRunning || c.State.Restarting || c.State.Status == StatusRemoving {
			continue
		}
		if keep != nil && keep(c) {
			continue
		}
		victims = append(victims, c.ID)
	}
	var removed []string
	for _, id := range victims {
		if err := e.Remove(ctx, id, RemoveOptions{}); err != nil {
			if errdefs.IsNotFound(err) || errdefs.IsConflict(err) {
				continue // started or removed meanwhile
			}
			return removed, err
		}
		removed = append(removed, id)
	}
	e.Emit("container", "prune", "", map[string]string{"reclaimed": "0"})
	return removed, nil
}
