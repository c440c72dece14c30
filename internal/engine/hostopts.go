package engine

import (
	"fmt"
	"path/filepath"
	"strings"

	"github.com/moby/moby/api/types/container"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/berth-dev/berth/internal/errdefs"
	"github.com/berth-dev/berth/internal/spec"
)

// rlimitNames maps docker's --ulimit names to OCI rlimit types.
var rlimitNames = map[string]string{
	"as": "RLIMIT_AS", "core": "RLIMIT_CORE", "cpu": "RLIMIT_CPU", "data": "RLIMIT_DATA",
	"fsize": "RLIMIT_FSIZE", "locks": "RLIMIT_LOCKS", "memlock": "RLIMIT_MEMLOCK",
	"msgqueue": "RLIMIT_MSGQUEUE", "nice": "RLIMIT_NICE", "nofile": "RLIMIT_NOFILE",
	"nproc": "RLIMIT_NPROC", "rss": "RLIMIT_RSS", "rtprio": "RLIMIT_RTPRIO",
	"rttime": "RLIMIT_RTTIME", "sigpending": "RLIMIT_SIGPENDING", "stack": "RLIMIT_STACK",
}

// validateHostOptions checks the resource and namespace fields of hc that
// hostOptions turns into the spec, at create, so a bad value fails there.
func validateHostOptions(hc *container.HostConfig) error {
	if _, err := rlimits(hc.Ulimits); err != nil {
		return err
	}
	for _, m := range []struct{ name, v string }{{"pid", string(hc.PidMode)}, {"ipc", string(hc.IpcMode)}, {"uts", string(hc.UTSMode)}} {
		switch m.v {
		case "", "host", "private", "shareable":
		default:
			return fmt.Errorf("invalid %s mode %q: berth supports \"host\" and the default: %w", m.name, m.v, errdefs.ErrInvalidArgument)
		}
	}
	for k := range hc.Sysctls {
		if err := spec.ValidateSysctl(k, hc.IpcMode.IsHost(), hc.NetworkMode.IsHost()); err != nil {
			return err
		}
	}
	if _, _, err := devices(hc); err != nil {
		return err
	}
	if _, err := blockIO(hc); err != nil {
		return err
	}
	switch hc.CgroupnsMode {
	case "", "host", "private":
	default:
		return fmt.Errorf("invalid cgroup namespace mode: %s: %w", hc.CgroupnsMode, errdefs.ErrInvalidArgument)
	}
	if u := hc.UsernsMode; u != "" && u != "host" {
		return fmt.Errorf("invalid userns mode %q: berth runs containers in the host's user namespace (\"host\"): %w", u, errdefs.ErrInvalidArgument)
	}
	if len(hc.StorageOpt) > 0 {
		return fmt.Errorf("--storage-opt is supported only for overlay over xfs with 'pquota' mount option: %w", errdefs.ErrInvalidArgument)
	}
	for _, r := range hc.DeviceRequests {
		return fmt.Errorf("could not select device driver %q with capabilities: %v: %w", r.Driver, r.Capabilities, errdefs.ErrInvalidArgument)
	}
	if s := hc.MemorySwappiness; s != nil && *s != -1 && (*s < 0 || *s > 100) {
		return fmt.Errorf("invalid value: %v, valid memory swappiness range is 0-100: %w", *s, errdefs.ErrInvalidArgument)
	}
	if hc.OomScoreAdj < -1000 || hc.OomScoreAdj > 1000 {
		return fmt.Errorf("invalid value %d, range for oom score adj is [-1000, 1000]: %w", hc.OomScoreAdj, errdefs.ErrInvalidArgument)
	}
	if hc.CPUPeriod != 0 && (hc.CPUPeriod < 1000 || hc.CPUPeriod > 1000000) {
		return fmt.Errorf("CPU cfs period can not be less than 1ms (i.e. 1000) or larger than 1s (i.e. 1000000): %w", errdefs.ErrInvalidArgument)
	}
	if hc.CPUQuota != 0 && hc.CPUQuota < 1000 {
		return fmt.Errorf("CPU cfs quota can not be less than 1ms (i.e. 1000): %w", errdefs.ErrInvalidArgument)
	}
	if hc.NanoCPUs > 0 && (hc.CPUQuota > 0 || hc.CPUPeriod > 0) {
		return fmt.Errorf("conflicting options: Nano CPUs and CPU Period cannot both be set: %w", errdefs.ErrInvalidArgument)
	}
	if hc.Memory > 0 && hc.MemoryReservation > hc.Memory {
		return fmt.Errorf("minimum memory limit can not be less than memory reservation limit, see usage: %w", errdefs.ErrInvalidArgument)
	}
	return nil
}

// hostOptions copies hc's resource, limit and namespace settings into o.
func hostOptions(o *spec.Options, hc *container.HostConfig) error {
	rls, err := rlimits(hc.Ulimits)
	if err != nil {
		return err
	}
	o.Rlimits = rls
	if o.BlockIO, err = blockIO(hc); err != nil {
		return err
	}
	if s := hc.MemorySwappiness; s != nil && *s >= 0 {
		v := uint64(*s)
		o.Swappiness = &v
	}
	o.CgroupnsHost = hc.CgroupnsMode == "host"
	o.Annotations = hc.Annotations
	if hc.CgroupParent != "" {
		o.CgroupsPath = filepath.Join("/", hc.CgroupParent, filepath.Base(o.CgroupsPath))
	}
	if o.Devices, o.DeviceRules, err = devices(hc); err != nil {
		return err
	}
	o.Sysctls = hc.Sysctls
	if hc.OomScoreAdj != 0 {
		v := hc.OomScoreAdj
		o.OomScoreAdj = &v
	}
	o.CpusetCpus, o.CpusetMems = hc.CpusetCpus, hc.CpusetMems
	o.CPUQuota, o.CPUPeriod = hc.CPUQuota, hc.CPUPeriod
	o.MemoryReservation = hc.MemoryReservation
	o.OomKillDisable = hc.OomKillDisable != nil && *hc.OomKillDisable
	o.PidHost, o.IpcHost, o.UTSHost = hc.PidMode.IsHost(), hc.IpcMode.IsHost(), hc.UTSMode.IsHost()
	if o.UTSHost {
		o.Hostname = "" // the host's own name; docker refuses --hostname with --uts host
	}
	return nil
}

func rlimits(in []*container.Ulimit) ([]specs.POSIXRlimit, error) {
	var out []specs.POSIXRlimit
	for _, u := range in {
		if u == nil {
			continue
		}
		typ, ok := rlimitNames[strings.ToLower(u.Name)]
		if !ok {
			return nil, fmt.Errorf("invalid ulimit type: %s: %w", u.Name, errdefs.ErrInvalidArgument)
		}
		if u.Soft > u.Hard {
			return nil, fmt.Errorf("ulimit soft limit must be less than or equal to hard limit: %d > %d: %w", u.Soft, u.Hard, errdefs.ErrInvalidArgument)
		}
		out = append(out, specs.POSIXRlimit{Type: typ, Soft: uint64(u.Soft), Hard: uint64(u.Hard)})
	}
	return out, nil
}
