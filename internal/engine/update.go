package engine

import (
	"context"
	"fmt"

	"github.com/moby/moby/api/types/container"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/berth-dev/berth/internal/errdefs"
	"github.com/berth-dev/berth/internal/spec"
)

// minMemory is docker's floor for a memory limit.
const minMemory = 6 * 1024 * 1024

// Update changes a container's resource limits and restart policy
// (docker update): written to the running container's cgroup first (so a
// limit the kernel refuses changes nothing), then kept in its HostConfig
// for the next starts.
func (e *Engine) Update(ctx context.Context, ref string, u container.UpdateConfig) ([]string, error) {
	e.mu.Lock()
	c, err := e.lookup(ref)
	if err != nil {
		e.mu.Unlock()
		return nil, err
	}
	if c.State.Status == StatusRemoving || c.State.Status == StatusDead {
		e.mu.Unlock()
		return nil, fmt.Errorf("Container is marked for removal and cannot be \"update\": %w", errdefs.ErrConflict)
	}
	hc, err := updatedHostConfig(c.HostConfig, u)
	if err != nil {
		e.mu.Unlock()
		return nil, err
	}
	id, running := c.ID, c.State.Running()
	e.mu.Unlock()

	if running {
		sup, err := e.supervisor(ctx)
		if err != nil {
			return nil, err
		}
		if err := sup.Update(ctx, id, updateResources(hc, u.Resources)); err != nil {
			return nil, fmt.Errorf("Cannot update container %s: %w", id, err)
		}
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	c, ok := e.byID[id]
	if !ok {
		return nil, notFound(ref)
	}
	c.HostConfig = hc
	if err := e.save(c); err != nil {
		return nil, err
	}
	e.emitContainer(c, "update", nil)
	return []string{}, nil
}

// updatedHostConfig applies the fields u sets (docker: zero means "leave
// as it is") to a copy of old, with docker's checks.
func updatedHostConfig(old *container.HostConfig, u container.UpdateConfig) (*container.HostConfig, error) {
	hc := cloneHostConfig(old)
	r := u.Resources
	// Limits berth does not set at start either: refused rather than
	// kept in HostConfig without effect.
	for _, f := range []struct {
		set  bool
		name string
	}{
		{r.CPUPeriod != 0, "cpu-period"}, {r.CPUQuota != 0, "cpu-quota"}, {r.CpusetCpus != "", "cpuset-cpus"},
		{r.CpusetMems != "", "cpuset-mems"}, {r.BlkioWeight != 0, "blkio-weight"},
		{r.CPURealtimePeriod != 0, "cpu-rt-period"}, {r.CPURealtimeRuntime != 0, "cpu-rt-runtime"},
	} {
		if f.set {
			return nil, fmt.Errorf("updating --%s is not supported by berth: %w", f.name, errdefs.ErrNotImplemented)
		}
	}
	if r.Memory != 0 {
		if r.Memory > 0 && r.Memory < minMemory {
			return nil, fmt.Errorf("Minimum memory limit allowed is 6MB: %w", errdefs.ErrInvalidArgument)
		}
		// docker stores twice the memory as the swap limit at create and
		// keeps it across updates; berth stores 0 for that, so it is
		// made explicit here before the memory changes.
		swap := old.MemorySwap
		if swap == 0 && old.Memory > 0 {
			swap = 2 * old.Memory
		}
		if r.Memory > swap && r.MemorySwap == 0 {
			return nil, fmt.Errorf("Memory limit should be smaller than already set memoryswap limit, update the memoryswap at the same time: %w", errdefs.ErrConflict)
		}
		hc.Memory, hc.MemorySwap = r.Memory, swap
	}
	if r.MemorySwap != 0 {
		hc.MemorySwap = r.MemorySwap
	}
	if hc.Memory > 0 && hc.MemorySwap > 0 && hc.MemorySwap < hc.Memory {
		return nil, fmt.Errorf("Minimum memoryswap limit should be larger than memory limit, see usage: %w", errdefs.ErrInvalidArgument)
	}
	if r.MemoryReservation != 0 {
		hc.MemoryReservation = r.MemoryReservation
	}
	if r.NanoCPUs != 0 {
		if r.NanoCPUs < 0 {
			return nil, fmt.Errorf("range of CPUs is from 0.01 to the number of CPUs available: %w", errdefs.ErrInvalidArgument)
		}
		hc.NanoCPUs = r.NanoCPUs
	}
	if r.CPUShares != 0 {
		hc.CPUShares = r.CPUShares
	}
	if r.PidsLimit != nil {
		v := *r.PidsLimit
		hc.PidsLimit = &v
	}
	if u.RestartPolicy.Name != "" {
		if hc.AutoRemove && u.RestartPolicy.Name != container.RestartPolicyDisabled {
			return nil, fmt.Errorf("Restart policy cannot be updated because AutoRemove is enabled for the container: %w", errdefs.ErrInvalidArgument)
		}
		if err := container.ValidateRestartPolicy(u.RestartPolicy); err != nil {
			return nil, fmt.Errorf("%v: %w", err, errdefs.ErrInvalidArgument)
		}
		hc.RestartPolicy = u.RestartPolicy
	}
	return hc, nil
}

// updateResources is what to write to the cgroup: the limits as a start
// would set them, plus "unlimited" for a pids limit the update removes.
func updateResources(hc *container.HostConfig, r container.Resources) *specs.LinuxResources {
	o := spec.Options{Memory: hc.Memory, MemorySwap: hc.MemorySwap, NanoCPUs: hc.NanoCPUs, CPUShares: hc.CPUShares}
	if hc.PidsLimit != nil {
		o.PidsLimit = *hc.PidsLimit
	}
	res := spec.Resources(o)
	if r.PidsLimit != nil && *r.PidsLimit <= 0 {
		unlimited := int64(-1)
		res.Pids = &specs.LinuxPids{Limit: &unlimited}
	}
	return res
}
