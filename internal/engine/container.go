package engine

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"
)

// Status values, docker's words.
const (
	StatusCreated  = "created"
	StatusRunning  = "running"
	StatusExited   = "exited"
	StatusRemoving = "removing"
	StatusDead     = "dead"
)

// State is a container's lifecycle state.
type State struct {
	Status string
	Pid    int
	Paused bool `json:",omitempty"` // frozen; Status stays running, as in docker
	// Health is the last health check results; nil without a check.
	// Replaced, never modified in place (snapshots share the pointer).
	Health *container.Health `json:",omitempty"`
	// Restarting: exited, its restart policy's back-off running.
	Restarting bool `json:",omitempty"`
	ExitCode   int
	Error      string `json:",omitempty"`
	OOMKilled  bool
	StartedAt  time.Time
	FinishedAt time.Time
}

// Running reports a container whose process runs.
func (s State) Running() bool { return s.Status == StatusRunning }

// Container is the engine's record of one container, kept as
// <root>/containers/<id>/config.v2.json. Config and HostConfig are the
// Docker API's own types: they are what inspect returns, and docker's
// vocabulary for run options.
type Container struct {
	ID         string
	Name       string // with docker's leading slash
	Created    time.Time
	Image      string // as the user named it
	ImageID    string // the config digest
	Path       string
	Args       []string
	Config     *container.Config
	HostConfig *container.HostConfig
	// Networks are the container's endpoint configurations by network
	// name (NetworkID, Aliases, IPAMConfig), docker's NetworkSettings.Networks
	// without the live fields; replaced, never changed in place.
	Networks     map[string]*network.EndpointSettings `json:",omitempty"`
	State        State
	RestartCount int
	// ManuallyStopped: the user stopped or killed it; restart policies
	// other than "always" at daemon start leave it stopped.
	ManuallyStopped bool `json:",omitempty"`
	// MountPoints are the binds, volumes and tmpfs mounts fixed at create
	// (mounts.go); they hold the container's volume references.
	MountPoints []MountPoint `json:",omitempty"`

	// Not persisted.
	restartTimer *time.Timer   // a pending restart
	restartDelay time.Duration // the back-off's current step
	starting     chan struct{} // set while a start is in flight, closed at its end
	fsBusy       chan struct{} // set while a copy holds the stopped rootfs mounted (ctrfs.go)
	releasing    chan struct{} // set while an exit's rootfs/network teardown runs
	exited       chan struct{} // closed at the next exit; replaced on start
	removed      chan struct{} // closed when the container is gone
}

// snapshot returns a copy safe to hand out while the engine changes the
// original; Config and HostConfig are never mutated in place.
func (c *Container) snapshot() Container {
	cp := *c
	cp.Args = append([]string(nil), c.Args...)
	cp.MountPoints = append([]MountPoint(nil), c.MountPoints...)
	cp.exited, cp.removed, cp.starting, cp.fsBusy, cp.releasing = nil, nil, nil, nil, nil
	return cp
}

const recordFile = "config.v2.json"

func (e *Engine) containerDir(id string) string {
	return filepath.Join(e.root, "containers", id)
}

// LogPath is where a container's json-file log lives, docker's layout.
func (e *Engine) LogPath(id string) string {
	return filepath.Join(e.containerDir(id), id+"-json.log")
}

func (e *Engine) exitPath(id string) string { return filepath.Join(e.containerDir(id), "exit.json") }
func (e *Engine) rootfsPath(id string) string {
	return filepath.Join(e.containerDir(id), "rootfs")
}
func (e *Engine) bundlePath(id string) string {
	return filepath.Join(e.execRoot, "bundles", id)
}

// save writes the record atomically. Callers hold e.mu, so writes of one
// container never interleave.
func (e *Engine) save(c *Container) error {
	data, err := json.Marshal(c)
	if err != nil {
		return fmt.Errorf("encode container %s: %w", c.ID, err)
	}
	path := filepath.Join(e.containerDir(c.ID), recordFile)
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return fmt.Errorf("save container %s: %w", c.ID, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("save container %s: %w", c.ID, err)
	}
	return nil
}

func loadContainer(dir string) (*Container, error) {
	data, err := os.ReadFile(filepath.Join(dir, recordFile))
	if err != nil {
		return nil, err
	}
	var c Container
	if err := json.Unmarshal(data, &c); err != nil {
		return nil, fmt.Errorf("decode %s: %w", dir, err)
	}
	if c.Config == nil {
		c.Config = &container.Config{}
	}
	if c.HostConfig == nil {
		c.HostConfig = &container.HostConfig{}
	}
	return &c, nil
}
