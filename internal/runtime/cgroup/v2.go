package cgroup

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/opencontainers/cgroups"

	"github.com/berth-dev/berth/internal/errdefs"
)

// makeV2Dir creates dir and its missing parents below the cgroup2 mount
// root, enabling in root and every parent the controllers each offers, so
// dir gets them all. opencontainers/cgroups' own CreateCgroupPath cannot be
// used: it only works under /sys/fs/cgroup and reads the controller list
// there, which on a hybrid host is a tmpfs.
func makeV2Dir(root, dir string, log *slog.Logger) error {
	rel, err := filepath.Rel(root, dir)
	if err != nil || rel == "." || rel == ".." || strings.HasPrefix(rel, "../") {
		return fmt.Errorf("cgroup %s is not below the cgroup2 mount %s: %w", dir, root, errdefs.ErrInvalidArgument)
	}
	cur := root
	for part := range strings.SplitSeq(rel, "/") {
		if err := enableControllers(cur, log); err != nil {
			return err
		}
		cur = filepath.Join(cur, part)
		if err := os.Mkdir(cur, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("create cgroup %s: %w", cur, err)
		}
	}
	return nil
}

// enableControllers turns on, for dir's children, every controller dir
// has. It reads before writing because a write to cgroup.subtree_control
// takes the kernel's global cgroup lock even when nothing changes, and the
// shared parents are usually set up already. A controller the kernel
// refuses here (dir has processes of its own, or is threaded) is only
// logged: Set names it if a limit needs it.
func enableControllers(dir string, log *slog.Logger) error {
	offered, err := cgroups.ReadFile(dir, "cgroup.controllers")
	if err != nil {
		return fmt.Errorf("read controllers of cgroup %s: %w", dir, err)
	}
	want := strings.Fields(offered)
	if len(want) == 0 {
		return nil
	}
	if enabled, err := cgroups.ReadFile(dir, "cgroup.subtree_control"); err == nil {
		have := strings.Fields(enabled)
		want = slices.DeleteFunc(want, func(c string) bool { return slices.Contains(have, c) })
		if len(want) == 0 {
			return nil
		}
	}
	if err := cgroups.WriteFile(dir, "cgroup.subtree_control", "+"+strings.Join(want, " +")); err == nil {
		return nil
	}
	for _, c := range want {
		if err := cgroups.WriteFile(dir, "cgroup.subtree_control", "+"+c); err != nil {
			log.Debug("cannot enable cgroup controller for children", "dir", dir, "controller", c, "err", err)
		}
	}
	return nil
}

// v2ControllersNeeded lists the v2 controllers the settings in r write to.
func v2ControllersNeeded(r *cgroups.Resources) []string {
	var need []string
	add := func(c string, set bool) {
		if set && !slices.Contains(need, c) {
			need = append(need, c)
		}
	}
	add("memory", r.Memory != 0 || r.MemorySwap != 0 || r.MemoryReservation != 0)
	add("cpu", r.CpuWeight != 0 || r.CpuQuota != 0 || r.CpuPeriod != 0 || r.CPUIdle != nil || r.CpuBurst != nil)
	add("pids", r.PidsLimit != nil)
	add("io", r.BlkioWeight != 0 || len(r.BlkioWeightDevice) > 0 ||
		len(r.BlkioThrottleReadBpsDevice) > 0 || len(r.BlkioThrottleWriteBpsDevice) > 0 ||
		len(r.BlkioThrottleReadIOPSDevice) > 0 || len(r.BlkioThrottleWriteIOPSDevice) > 0)
	add("cpuset", r.CpusetCpus != "" || r.CpusetMems != "")
	add("hugetlb", len(r.HugetlbLimit) > 0)
	add("rdma", len(r.Rdma) > 0)
	for _, k := range slices.Sorted(maps.Keys(r.Unified)) {
		if c, _, ok := strings.Cut(k, "."); ok && c != "cgroup" {
			add(c, true)
		}
	}
	return need
}
