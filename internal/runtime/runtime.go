// Package runtime is berth's OCI runtime (runtime-spec 1.2): the parent side
// that creates, starts, signals and deletes containers from a bundle, and the
// init side that runs inside the new namespaces and ends by exec'ing the
// container's process.
//
// Stages, in order (see create_linux.go and init_linux.go):
//
//	parent: validate spec → state dir → spawn init with clone flags → cgroup
//	init:   read config → cgroup ns → mounts → [hooks] → pivot_root →
//	        masked/ro paths → console → ready → wait for start → finalize → exec
//
// Keeping the init a Go program means the namespaces that need a
// single-threaded caller are entered by the kernel at clone time, or joined
// on the parent's locked thread before the clone (see nsenter_linux.go).
package runtime

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/berth-dev/berth/internal/errdefs"
)

// Runtime manages containers whose state lives under Root.
type Runtime struct {
	Root string
	Log  *slog.Logger
	// Exe is the berth binary that is re-executed as the container's init;
	// empty means the running executable.
	Exe string
}

// New returns a runtime keeping state under root.
func New(root string, log *slog.Logger) (*Runtime, error) {
	if root == "" {
		return nil, fmt.Errorf("state root must not be empty: %w", errdefs.ErrInvalidArgument)
	}
	abs, err := filepath.Abs(root)
	if err != nil {
		return nil, fmt.Errorf("state root %s: %w", root, err)
	}
	if err := os.MkdirAll(abs, 0o711); err != nil {
		return nil, fmt.Errorf("create state root %s: %w", abs, err)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Runtime{Root: abs, Log: log}, nil
}

// State returns the runtime-spec state of container id.
func (r *Runtime) State(ctx context.Context, id string) (*specs.State, error) {
	rec, err := r.load(id)
	if err != nil {
		return nil, err
	}
	return r.ociState(rec), nil
}

// ContainerInfo is one row of List.
type ContainerInfo struct {
	specs.State
	Created string `json:"created"`
	Owner   string `json:"owner"`
}

// List returns the state of every container, sorted by ID.
func (r *Runtime) List(ctx context.Context) ([]ContainerInfo, error) {
	entries, err := os.ReadDir(r.Root)
	if err != nil {
		if os.IsNotExist(err) {
			return nil, nil
		}
		return nil, fmt.Errorf("list %s: %w", r.Root, err)
	}
	var out []ContainerInfo
	for _, e := range entries {
		if !e.IsDir() || ValidateID(e.Name()) != nil {
			continue
		}
		rec, err := r.load(e.Name())
		if err != nil {
			continue // a container being created or deleted right now
		}
		out = append(out, ContainerInfo{
			State:   *r.ociState(rec),
			Created: rec.Created.Format("2006-01-02T15:04:05.999999999Z07:00"),
			Owner:   rec.Owner,
		})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}
