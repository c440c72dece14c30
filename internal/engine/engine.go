// Package engine is berth's container lifecycle: it keeps container records
// under <root>/containers, turns run options into OCI bundles (through
// internal/spec), mounts each container's writable image snapshot, and has
// the supervisor (internal/supervisor) create, start, signal and reap the
// containers, so that they outlive the daemon.
//
// State flows one way: the engine writes a container's record before asking
// the supervisor to act, and learns of exits from the supervisor's events
// (or, after a restart, from the exit files the supervisor wrote while no
// daemon listened). Restarting the daemon therefore loses nothing: records,
// logs and exit files are on disk, running containers are still the
// supervisor's (live restore).
//
// Rootfs: the engine mounts the image snapshot at <root>/containers/<id>/
// rootfs before the runtime creates the container (spec root.path points
// there), and unmounts it when the container exits or is removed, as docker
// does. The mount lives in the host's mount namespace, so it survives the
// daemon.
//
// Networking (network.go): bridge networks through internal/network, a
// namespace per container made before it starts; --network none is a
// private namespace with loopback up, --network host the host's.
package engine

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/berth-dev/berth/internal/errdefs"
	"github.com/berth-dev/berth/internal/image"
	"github.com/berth-dev/berth/internal/network"
	"github.com/berth-dev/berth/internal/runtime/cgroup"
	"github.com/berth-dev/berth/internal/snapshot"
	"github.com/berth-dev/berth/internal/supervisor"
	"github.com/berth-dev/berth/internal/volume"
)

// Supervisor is what the engine needs of the supervisor process.
type Supervisor interface {
	Create(ctx context.Context, id string, req supervisor.CreateRequest) (int, error)
	Start(ctx context.Context, id string) error
	Kill(ctx context.Context, id string, sig syscall.Signal, all bool) error
	Delete(ctx context.Context, id string) error
	List(ctx context.Context) ([]supervisor.Container, error)
	Subscribe(ctx context.Context) (<-chan supervisor.Event, error)
	Resize(ctx context.Context, id string, width, height int) error
	AttachStdin(ctx context.Context, id string) (*net.UnixConn, error)
	Exec(ctx context.Context, id string, req supervisor.ExecRequest) (*net.UnixConn, io.Reader, error)
	ResizeExec(ctx context.Context, id, execID string, width, height int) error
	KillExec(ctx context.Context, id, execID string, sig syscall.Signal) error
	Pause(ctx context.Context, id string) error
	Resume(ctx context.Context, id string) error
	Pids(ctx context.Context, id string) ([]int, error)
	Stats(ctx context.Context, id string) (*cgroup.Stats, error)
	Update(ctx context.Context, id string, res *specs.LinuxResources) error
}

// Options configure an Engine.
type Options struct {
	Root     string // --root
	ExecRoot string // --exec-root
	Images   *image.Service
	// Supervisor returns a client of a running supervisor, starting one if
	// needed; it is called again whenever the supervisor stops answering.
	Supervisor func(ctx context.Context) (Supervisor, error)
	Logger     *slog.Logger
	// LogMaxSize and LogMaxFiles are the json-file driver's defaults
	// (daemon.json log-opts max-size/max-file); a container's own
	// LogConfig wins.
	LogMaxSize  int64
	LogMaxFiles int
	// CgroupParent is where container cgroups go ("/berth").
	CgroupParent string
	// InitBinary is bind-mounted read-only as the container's init with
	// --init (berth itself: `supervise reap`, see supervisor.Reap).
	InitBinary string
	// Network is the daemon's network manager (bridges, IPAM, NAT, DNS);
	// nil gives every container a private namespace with loopback only.
	Network *network.Manager
}

// Engine manages containers.
type Engine struct {
	root, execRoot string
	images         *image.Service
	volumes        *volume.Store
	recursiveRO    bool // the kernel can make binds read-only recursively
	net            *network.Manager
	log            *slog.Logger
	opts           Options

	supMu sync.Mutex
	sup   Supervisor

	events *eventHub
	execs  execTable

	mu    sync.Mutex
	byID  map[string]*Container
	names map[string]string // "/name" → id
}

// New loads the container records under opts.Root, connects to the
// supervisor and reconciles: containers that exited while no daemon ran get
// their exit status from their exit files; running ones stay running.
func New(ctx context.Context, opts Options) (*Engine, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.CgroupParent == "" {
		opts.CgroupParent = "/berth"
	}
	e := &Engine{
		root: opts.Root, execRoot: opts.ExecRoot, images: opts.Images, net: opts.Network, log: opts.Logger, opts: opts,
		byID: map[string]*Container{}, names: map[string]string{}, events: newEventHub(),
		execs: execTable{m: map[string]*Exec{}},
	}
	for _, d := range []string{filepath.Join(e.root, "containers"), filepath.Join(e.execRoot, "bundles")} {
		if err := os.MkdirAll(d, 0o711); err != nil {
			return nil, fmt.Errorf("engine: %w", err)
		}
	}
	vols, err := volume.Open(filepath.Join(e.root, "volumes"), opts.Logger)
	if err != nil {
		return nil, fmt.Errorf("engine: %w", err)
	}
	e.volumes = vols
	e.recursiveRO = kernelHasMountSetattr()
	if err := e.load(); err != nil {
		return nil, err
	}
	e.restoreVolumes()
	e.volumes.UnmountIdle()
	return e, nil
}

// Run follows the supervisor's exit events until ctx ends, reconnecting
// (and restarting the supervisor) when the connection breaks. ready is
// closed after the first reconciliation, when the engine's view is current.
func (e *Engine) Run(ctx context.Context, ready chan<- struct{}) {
	for ctx.Err() == nil {
		sup, err := e.supervisor(ctx)
		var events <-chan supervisor.Event
		if err == nil {
			events, err = sup.Subscribe(ctx)
		}
		if err != nil {
			e.log.Warn("supervisor unavailable", "err", err)
			e.dropSupervisor()
			select {
			case <-ctx.Done():
			case <-time.After(200 * time.Millisecond):
			}
			continue
		}
		e.reconcile(ctx, sup)
		if ready != nil {
			e.restoreNetwork(ctx)
			close(ready)
			ready = nil
			go e.restartOnBoot(ctx)
		}
		for ev := range events {
			e.handleExit(ev.ID, ev.Exit)
		}
		e.dropSupervisor()
	}
}

func (e *Engine) supervisor(ctx context.Context) (Supervisor, error) {
	e.supMu.Lock()
	defer e.supMu.Unlock()
	if e.sup != nil {
		return e.sup, nil
	}
	s, err := e.opts.Supervisor(ctx)
	if err != nil {
		return nil, err
	}
	e.sup = s
	return s, nil
}

func (e *Engine) dropSupervisor() {
	e.supMu.Lock()
	e.sup = nil
	e.supMu.Unlock()
}

func (e *Engine) load() error {
	dir := filepath.Join(e.root, "containers")
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("engine: %w", err)
	}
	for _, ent := range entries {
		if !ent.IsDir() {
			continue
		}
		c, err := loadContainer(filepath.Join(dir, ent.Name()))
		if err != nil {
			e.log.Warn("skipping unreadable container", "dir", ent.Name(), "err", err)
			continue
		}
		c.exited, c.removed = make(chan struct{}), make(chan struct{})
		if c.State.Status == StatusRemoving {
			c.State.Status = StatusDead // a removal the daemon did not finish
		}
		e.byID[c.ID] = c
		e.names[c.Name] = c.ID
	}
	return nil
}

// reconcile matches the records against what the supervisor runs. Called
// after subscribing, so an exit is either in the list's absence (and its
// exit file) or in an event still to come; handleExit ignores duplicates.
func (e *Engine) reconcile(ctx context.Context, sup Supervisor) {
	list, err := sup.List(ctx)
	if err != nil {
		e.log.Warn("list supervised containers", "err", err)
		return
	}
	live := map[string]supervisor.Container{}
	for _, c := range list {
		live[c.ID] = c
	}
	e.mu.Lock()
	var gone []string
	for id, c := range e.byID {
		if c.State.Status != StatusRunning {
			continue
		}
		if sc, ok := live[id]; ok {
			c.State.Pid = sc.Pid
			continue
		}
		gone = append(gone, id)
	}
	e.mu.Unlock()
	for _, id := range gone {
		st, err := readExit(e.exitPath(id))
		if err != nil {
			e.log.Warn("container vanished without an exit status", "id", id, "err", err)
			st = supervisor.ExitStatus{ExitCode: supervisor.UnknownExitCode, FinishedAt: time.Now().UTC(), Unknown: true}
		}
		e.handleExit(id, st)
	}
	// Stopped containers have no business keeping their rootfs mounted.
	e.mu.Lock()
	var idle []string
	for id, c := range e.byID {
		if c.State.Status != StatusRunning {
			idle = append(idle, id)
		}
	}
	e.mu.Unlock()
	for _, id := range idle {
		_ = snapshot.UnmountAll(e.rootfsPath(id))
	}
}

// Get finds a container by full ID, name (with or without its slash), or a
// unique ID prefix, docker's order.
func (e *Engine) Get(ref string) (Container, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	c, err := e.lookup(ref)
	if err != nil {
		return Container{}, err
	}
	return c.snapshot(), nil
}

func (e *Engine) lookup(ref string) (*Container, error) {
	if ref == "" {
		return nil, notFound(ref)
	}
	if c, ok := e.byID[ref]; ok {
		return c, nil
	}
	name := ref
	if name[0] != '/' {
		name = "/" + name
	}
	if id, ok := e.names[name]; ok {
		return e.byID[id], nil
	}
	var found *Container
	for id, c := range e.byID {
		if strings.HasPrefix(id, ref) {
			if found != nil {
				return nil, fmt.Errorf("multiple IDs found with provided prefix: %s: %w", ref, errdefs.ErrInvalidArgument)
			}
			found = c
		}
	}
	if found == nil {
		return nil, notFound(ref)
	}
	return found, nil
}

func notFound(ref string) error {
	return fmt.Errorf("No such container: %s: %w", ref, errdefs.ErrNotFound)
}

// List returns the containers, newest first.
func (e *Engine) List() []Container {
	e.mu.Lock()
	out := make([]Container, 0, len(e.byID))
	for _, c := range e.byID {
		out = append(out, c.snapshot())
	}
	e.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].Created.After(out[j].Created) })
	return out
}

// ImageUsers implements image.UsageChecker.
func (e *Engine) ImageUsers(ctx context.Context, id string) ([]string, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []string
	for _, c := range e.byID {
		if c.ImageID == id || slices.ContainsFunc(c.MountPoints, func(m MountPoint) bool { return m.ImageID == id }) {
			out = append(out, c.ID)
		}
	}
	sort.Strings(out)
	return out, nil
}

// Counts returns how many containers are running, paused and stopped, for
// /info.
func (e *Engine) Counts() (running, paused, stopped int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, c := range e.byID {
		switch {
		case c.State.Paused:
			paused++
		case c.State.Status == StatusRunning:
			running++
		default:
			stopped++
		}
	}
	return
}
