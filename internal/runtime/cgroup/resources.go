package cgroup

import (
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"

	"github.com/opencontainers/cgroups"
	devconfig "github.com/opencontainers/cgroups/devices/config"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/berth-dev/berth/internal/errdefs"
)

// Kernel bounds for the CFS bandwidth controller, in microseconds.
const (
	minCPUPeriod = 1000
	maxCPUPeriod = 1000000
	minCPUQuota  = 1000
)

// defaultDeviceRules is what runc appends after a spec's own device rules,
// so a bundle whose only rule is "deny all" still has a working /dev:
// mknod of anything, the null/zero/full/random/urandom/tty character
// devices, ptys, and /dev/net/tun. It is a function, not a variable, so
// nobody can change the list for everyone.
func defaultDeviceRules() []*devconfig.Rule {
	c := func(major, minor int64, perms devconfig.Permissions) *devconfig.Rule {
		return &devconfig.Rule{Type: devconfig.CharDevice, Major: major, Minor: minor, Permissions: perms, Allow: true}
	}
	return []*devconfig.Rule{
		c(devconfig.Wildcard, devconfig.Wildcard, "m"),
		{Type: devconfig.BlockDevice, Major: devconfig.Wildcard, Minor: devconfig.Wildcard, Permissions: "m", Allow: true},
		c(1, 3, "rwm"),                    // /dev/null
		c(1, 8, "rwm"),                    // /dev/random
		c(1, 7, "rwm"),                    // /dev/full
		c(5, 0, "rwm"),                    // /dev/tty
		c(1, 5, "rwm"),                    // /dev/zero
		c(1, 9, "rwm"),                    // /dev/urandom
		c(136, devconfig.Wildcard, "rwm"), // /dev/pts/*
		c(5, 2, "rwm"),                    // /dev/ptmx
		c(10, 200, "rwm"),                 // /dev/net/tun
	}
}

// convertResources turns OCI resources into opencontainers/cgroups'
// Resources for a v1 or v2 hierarchy, checking every value it can check
// without touching the cgroup filesystem. All problems are reported at once,
// wrapped in errdefs.ErrInvalidArgument. Settings a cgroup version cannot
// honour but that runc quietly drops are dropped with a warning to log.
func convertResources(spec *specs.LinuxResources, v2 bool, log *slog.Logger) (*cgroups.Resources, error) {
	r := &cgroups.Resources{}
	if spec == nil {
		return r, nil
	}
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	ignored := func(setting, why string) { log.Warn("cgroup setting ignored", "setting", setting, "reason", why) }

	if m := spec.Memory; m != nil {
		r.Memory = limitValue(m.Limit, "memory.limit", bad)
		r.MemoryReservation = limitValue(m.Reservation, "memory.reservation", bad)
		r.MemorySwap = limitValue(m.Swap, "memory.swap", bad)
		if r.MemorySwap > 0 && r.Memory == 0 {
			bad("memory.swap %d (memory+swap) needs memory.limit too", r.MemorySwap)
		}
		if r.MemorySwap > 0 && r.Memory > 0 && r.MemorySwap < r.Memory {
			bad("memory.swap %d (memory+swap) is below memory.limit %d", r.MemorySwap, r.Memory)
		}
		if m.Kernel != nil || m.KernelTCP != nil {
			// runc ignores them too: v2 has no such limits and the
			// kernel dropped v1 kernel-memory limits in 5.4.
			ignored("memory.kernel/kernelTCP", "kernel memory limits are obsolete")
		}
		if m.Swappiness != nil {
			switch sw := *m.Swappiness; {
			case int64(sw) == -1: // "use the default", as Docker sends it
			case sw > 100:
				bad("memory.swappiness %d is outside 0-100", sw)
			case v2:
				ignored("memory.swappiness", "cgroup v2 has no per-cgroup swappiness")
			default:
				r.MemorySwappiness = m.Swappiness
			}
		}
		if m.DisableOOMKiller != nil && *m.DisableOOMKiller {
			if v2 {
				ignored("memory.disableOOMKiller", "cgroup v2 cannot disable the OOM killer")
			} else {
				r.OomKillDisable = true
			}
		}
		if m.CheckBeforeUpdate != nil {
			r.MemoryCheckBeforeUpdate = *m.CheckBeforeUpdate
		}
	}

	if c := spec.CPU; c != nil {
		if c.Shares != nil {
			r.CpuShares = *c.Shares
			if v2 {
				// fs2 writes cpu.weight only; the conversion is the caller's
				// job, and this is the formula runc uses.
				r.CpuWeight = cgroups.ConvertCPUSharesToCgroupV2Value(*c.Shares)
			}
		}
		if c.Quota != nil {
			switch q := *c.Quota; {
			case q == -1 || q == 0:
				r.CpuQuota = q
			case q < 0:
				bad("cpu.quota %d: use -1 for no limit", q)
			case q < minCPUQuota:
				bad("cpu.quota %dus is below the kernel's minimum of %dus", q, minCPUQuota)
			default:
				r.CpuQuota = q
			}
		}
		if c.Period != nil && *c.Period != 0 {
			if p := *c.Period; p < minCPUPeriod || p > maxCPUPeriod {
				bad("cpu.period %dus is outside the kernel's %d-%dus", p, minCPUPeriod, maxCPUPeriod)
			}
			r.CpuPeriod = *c.Period
		}
		r.CpuBurst = c.Burst
		r.CPUIdle = c.Idle
		if c.RealtimeRuntime != nil || c.RealtimePeriod != nil {
			if v2 {
				bad("cpu.realtimeRuntime/realtimePeriod: cgroup v2 has no realtime CPU bandwidth controller")
			}
			if c.RealtimeRuntime != nil {
				r.CpuRtRuntime = *c.RealtimeRuntime
			}
			if c.RealtimePeriod != nil {
				r.CpuRtPeriod = *c.RealtimePeriod
			}
		}
		if c.Cpus != "" {
			if _, err := parseList(c.Cpus); err != nil {
				bad("cpu.cpus %q: %v", c.Cpus, err)
			}
			r.CpusetCpus = c.Cpus
		}
		if c.Mems != "" {
			if _, err := parseList(c.Mems); err != nil {
				bad("cpu.mems %q: %v", c.Mems, err)
			}
			r.CpusetMems = c.Mems
		}
	}

	if p := spec.Pids; p != nil && p.Limit != nil {
		// The spec: -1 is "max", 0 is a real (if useless) limit.
		if *p.Limit < -1 {
			bad("pids.limit %d: use -1 for no limit", *p.Limit)
		}
		limit := *p.Limit
		r.PidsLimit = &limit
	}

	if b := spec.BlockIO; b != nil {
		r.BlkioWeight = blkioWeight(b.Weight, "blockIO.weight", bad)
		r.BlkioLeafWeight = blkioWeight(b.LeafWeight, "blockIO.leafWeight", bad)
		for _, wd := range b.WeightDevice {
			name := fmt.Sprintf("blockIO.weightDevice %d:%d", wd.Major, wd.Minor)
			w := blkioWeight(wd.Weight, name+" weight", bad)
			lw := blkioWeight(wd.LeafWeight, name+" leafWeight", bad)
			r.BlkioWeightDevice = append(r.BlkioWeightDevice, cgroups.NewWeightDevice(wd.Major, wd.Minor, w, lw))
		}
		r.BlkioThrottleReadBpsDevice = throttleDevices(b.ThrottleReadBpsDevice)
		r.BlkioThrottleWriteBpsDevice = throttleDevices(b.ThrottleWriteBpsDevice)
		r.BlkioThrottleReadIOPSDevice = throttleDevices(b.ThrottleReadIOPSDevice)
		r.BlkioThrottleWriteIOPSDevice = throttleDevices(b.ThrottleWriteIOPSDevice)
	}

	if len(spec.HugepageLimits) > 0 {
		sizes := cgroups.HugePageSizes()
		for _, h := range spec.HugepageLimits {
			if !slices.Contains(sizes, h.Pagesize) {
				bad("hugepageLimits: page size %q is not one this kernel offers (%s)", h.Pagesize, strings.Join(sizes, ", "))
			}
			r.HugetlbLimit = append(r.HugetlbLimit, &cgroups.HugepageLimit{Pagesize: h.Pagesize, Limit: h.Limit})
		}
	}

	if n := spec.Network; n != nil && (n.ClassID != nil || len(n.Priorities) > 0) {
		if v2 {
			ignored("network.classID/priorities", "cgroup v2 has no net_cls or net_prio controller")
		} else {
			if n.ClassID != nil {
				r.NetClsClassid = *n.ClassID
			}
			for _, p := range n.Priorities {
				r.NetPrioIfpriomap = append(r.NetPrioIfpriomap, &cgroups.IfPrioMap{Interface: p.Name, Priority: int64(p.Priority)})
			}
		}
	}

	if len(spec.Rdma) > 0 {
		r.Rdma = make(map[string]cgroups.LinuxRdma, len(spec.Rdma))
		for dev, l := range spec.Rdma {
			r.Rdma[dev] = cgroups.LinuxRdma{HcaHandles: l.HcaHandles, HcaObjects: l.HcaObjects}
		}
	}

	if len(spec.Unified) > 0 {
		if !v2 {
			bad("unified: these are cgroup v2 settings and this host runs cgroup v1")
		}
		for k := range spec.Unified {
			if k == "" || strings.ContainsAny(k, "/\x00") || k == "." || k == ".." {
				bad("unified: %q is not a cgroup file name", k)
			}
		}
		r.Unified = spec.Unified
	}

	for i, d := range spec.Devices {
		rule, err := deviceRule(d)
		if err != nil {
			bad("devices[%d]: %v", i, err)
			continue
		}
		r.Devices = append(r.Devices, rule)
	}

	if len(errs) > 0 {
		return nil, fmt.Errorf("invalid linux.resources: %w: %w", errors.Join(errs...), errdefs.ErrInvalidArgument)
	}
	return r, nil
}

// limitValue reads an OCI byte limit where nil and 0 mean "leave as is"
// and -1 means "no limit".
func limitValue(v *int64, name string, bad func(string, ...any)) int64 {
	if v == nil {
		return 0
	}
	if *v < -1 {
		bad("%s %d: use -1 for no limit", name, *v)
		return 0
	}
	return *v
}

func blkioWeight(w *uint16, name string, bad func(string, ...any)) uint16 {
	if w == nil || *w == 0 {
		return 0
	}
	if *w < 10 || *w > 1000 {
		bad("%s %d is outside 10-1000", name, *w)
	}
	return *w
}

func throttleDevices(in []specs.LinuxThrottleDevice) []*cgroups.ThrottleDevice {
	out := make([]*cgroups.ThrottleDevice, 0, len(in))
	for _, td := range in {
		out = append(out, cgroups.NewThrottleDevice(td.Major, td.Minor, td.Rate))
	}
	return out
}

// deviceRule converts one OCI device cgroup rule. An empty type means all
// devices and an empty access means "rwm", the readings runc gives them.
func deviceRule(d specs.LinuxDeviceCgroup) (*devconfig.Rule, error) {
	rule := &devconfig.Rule{Allow: d.Allow, Major: devconfig.Wildcard, Minor: devconfig.Wildcard}
	switch d.Type {
	case "", "a":
		rule.Type = devconfig.WildcardDevice
	case "b":
		rule.Type = devconfig.BlockDevice
	case "c":
		rule.Type = devconfig.CharDevice
	default:
		return nil, fmt.Errorf("type %q is not a, b or c", d.Type)
	}
	if d.Major != nil {
		if *d.Major < 0 {
			return nil, fmt.Errorf("major %d is negative", *d.Major)
		}
		rule.Major = *d.Major
	}
	if d.Minor != nil {
		if *d.Minor < 0 {
			return nil, fmt.Errorf("minor %d is negative", *d.Minor)
		}
		rule.Minor = *d.Minor
	}
	access := d.Access
	if access == "" {
		access = "rwm"
	}
	if strings.Trim(access, "rwm") != "" {
		return nil, fmt.Errorf("access %q may only combine r, w and m", d.Access)
	}
	// Union puts the letters in the canonical order the emulator expects.
	rule.Permissions = devconfig.Permissions("").Union(devconfig.Permissions(access))
	return rule, nil
}
