package runtime

import (
	"context"
	"fmt"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/berth-dev/berth/internal/errdefs"
	"github.com/berth-dev/berth/internal/runtime/cgroup"
)

// StatePaused is the status runc reports for a frozen container; the OCI
// spec has no word for it, but its callers (containerd, docker) expect it.
const StatePaused specs.ContainerState = "paused"

func (r *Runtime) cgroupOf(rec *record) (*cgroup.Manager, error) {
	if len(rec.CgroupPaths) == 0 {
		return nil, fmt.Errorf("container %s has no cgroup: %w", rec.ID, errdefs.ErrFailedPrecondition)
	}
	cg, err := cgroup.Load(rec.CgroupPaths)
	if err != nil {
		return nil, fmt.Errorf("load cgroup of %s: %w", rec.ID, err)
	}
	return cg, nil
}

// Pause freezes every process of a running container.
func (r *Runtime) Pause(ctx context.Context, id string) error {
	rec, err := r.load(id)
	if err != nil {
		return err
	}
	if st := r.status(rec); st != specs.StateRunning && st != specs.StateCreated {
		return fmt.Errorf("container %s is %s, not running: %w", id, st, errdefs.ErrFailedPrecondition)
	}
	cg, err := r.cgroupOf(rec)
	if err != nil {
		return err
	}
	return cg.Freeze()
}

// Resume thaws a paused container.
func (r *Runtime) Resume(ctx context.Context, id string) error {
	rec, err := r.load(id)
	if err != nil {
		return err
	}
	if r.status(rec) != StatePaused {
		return fmt.Errorf("container %s is not paused: %w", id, errdefs.ErrFailedPrecondition)
	}
	cg, err := r.cgroupOf(rec)
	if err != nil {
		return err
	}
	return cg.Thaw()
}

// Update writes new resource limits to a container's cgroup.
func (r *Runtime) Update(ctx context.Context, id string, res *specs.LinuxResources) error {
	rec, err := r.load(id)
	if err != nil {
		return err
	}
	if r.status(rec) == specs.StateStopped {
		return fmt.Errorf("container %s is stopped: %w", id, errdefs.ErrFailedPrecondition)
	}
	cg, err := r.cgroupOf(rec)
	if err != nil {
		return err
	}
	if err := cg.Set(res); err != nil {
		return fmt.Errorf("update %s: %w", id, err)
	}
	return nil
}

// Stats samples the container's cgroup counters.
func (r *Runtime) Stats(ctx context.Context, id string) (*cgroup.Stats, error) {
	rec, err := r.load(id)
	if err != nil {
		return nil, err
	}
	cg, err := r.cgroupOf(rec)
	if err != nil {
		return nil, err
	}
	return cg.Stats()
}
