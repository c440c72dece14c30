// Package cgroup is the cgroup side of berth's OCI runtime: it creates a
// container's cgroups, moves processes in, writes resource limits, and
// later freezes, signals, samples and removes them. It runs on cgroup v2
// (unified), v1 (legacy) and hybrid hosts, with the cgroupfs driver only.
//
// The file writing is done by opencontainers/cgroups: its fs manager on v1
// and hybrid hosts, its fs2 manager on v2, and its devices package for the
// device allowlist (devices.allow/deny on v1, an eBPF program on v2, both
// in pure Go). This package adds what berth needs around them: mount
// discovery kept in the Manager, OCI-to-cgroup conversion with checks that
// name the bad value, v2 directory creation that works on any cgroup2
// mount, a persistent path map, and kill-all.
//
// What gets created. On v2, one directory, with every controller its
// parents offer enabled in their cgroup.subtree_control (as runc does), so
// that stats work and later updates can add limits. On v1, one directory
// in each of cpu, cpuacct, cpuset, memory, devices, freezer, blkio, pids,
// perf_event and name=systemd that is mounted (plus the cgroup2 tree of a
// hybrid host), whether or not a limit is set there: stats, pause and kill
// --all need them, and systemd tracks processes in name=systemd. Unlike
// runc, the hugetlb, net_cls, net_prio and rdma hierarchies are joined only
// when the container sets something there, and misc never: each skipped
// hierarchy saves a mkdir, a cgroup.procs write and an rmdir per container.
// Parent directories (such as /berth) are shared between containers and
// left in place by Destroy.
//
// Starting fast. The mounts are read once per Manager (one statfs on a v2
// host, mountinfo otherwise), never cached in package state. Most of
// Apply's time is the kernel's: the first cgroup.procs write of a
// migration waits for an RCU grace period, and a v1 host pays a mkdir and
// a write per hierarchy. On v2 the runtime can skip the migration: create
// with Apply(-1), Set, then start init inside the cgroup with OpenDir.
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
	_ "github.com/opencontainers/cgroups/devices" // lets both managers write device rules
	libfs "github.com/opencontainers/cgroups/fs"
	"github.com/opencontainers/cgroups/fs2"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/internal/errdefs"
)

// Manager owns one container's cgroup. Build it with New in the process
// that creates the container, or with Load (from Paths) in any later one.
// A Manager is not safe for concurrent use: the runtime serialises the
// operations on one container.
type Manager struct {
	log *slog.Logger
	v2  bool
	// v2Root is the cgroup2 mount point; empty in a loaded v2 manager,
	// which can join processes but not create the cgroup.
	v2Root string
	// dir is the v2 cgroup directory.
	dir string
	// paths maps a v1 subsystem name to its directory, "" to the v2 (or
	// hybrid) directory: the format runc keeps in its state.json.
	paths map[string]string
	lib   cgroups.Manager
	// ownsDevices says that Set writes the device policy even when the
	// resources list no device rules. A manager from New owns it; one from
	// Load (a runtime update) leaves the rules alone unless it is given some.
	ownsDevices bool
	// cpusetChecked is the cpus and mems New already checked, so that the
	// Set that follows with the same resources does not read sysfs again.
	cpusetChecked [2]string
}

// New prepares the cgroup for container id at path, the OCI
// linux.cgroupsPath: "" means /berth/<id>; a relative path is taken from
// the hierarchy root like an absolute one; systemd's slice:prefix:name form
// is refused. res may be nil. New reads where the cgroup filesystems are
// mounted and checks res, but creates nothing until Apply.
func New(path, id string, res *specs.LinuxResources) (*Manager, error) {
	m, err := DetectMounts()
	if err != nil {
		return nil, err
	}
	return m.New(path, id, res)
}

// Mounts is where the host's cgroup filesystems are, read once by
// DetectMounts for the operations of one container create (New,
// MakeHybridDir) that would otherwise each read mountinfo.
type Mounts struct{ h hierarchy }

// DetectMounts finds the cgroup mounts.
func DetectMounts() (Mounts, error) {
	h, err := detectHierarchy()
	return Mounts{h}, err
}

// New is the package's New over these mounts.
func (m Mounts) New(path, id string, res *specs.LinuxResources) (*Manager, error) {
	return newManager(path, id, res, m.h)
}

func newManager(path, id string, res *specs.LinuxResources, h hierarchy) (*Manager, error) {
	inner, err := innerPath(path, id)
	if err != nil {
		return nil, err
	}
	log := slog.Default().With("cgroup", inner)
	// Set converts res again and warns about dropped settings then; once
	// is enough.
	r, err := convertResources(res, h.isV2(), slog.New(slog.DiscardHandler))
	if err != nil {
		return nil, err
	}
	if err := checkCpuset(r); err != nil {
		return nil, err
	}
	config := &cgroups.Cgroup{Path: inner, Resources: r}
	m := &Manager{log: log, v2: h.isV2(), ownsDevices: true, cpusetChecked: [2]string{r.CpusetCpus, r.CpusetMems}}
	if h.isV2() {
		m.v2Root = h.unified
		m.dir = filepath.Join(h.unified, inner)
		m.paths = map[string]string{"": m.dir}
		if m.lib, err = fs2.NewManager(config, m.dir); err != nil {
			return nil, fmt.Errorf("cgroup %s: %w", m.dir, err)
		}
		return m, nil
	}
	if _, ok := h.v1["devices"]; !ok {
		return nil, fmt.Errorf("the v1 devices controller is not mounted, and berth does not run containers without device isolation: %w",
			errdefs.ErrFailedPrecondition)
	}
	m.paths = map[string]string{}
	for name, mnt := range h.v1 {
		if joinV1(name, r) {
			m.paths[name] = filepath.Join(mnt, inner)
		}
	}
	if h.hybrid != "" {
		m.paths[""] = filepath.Join(h.hybrid, inner)
	}
	// The library gets its own copy: its Destroy empties the map it holds.
	if m.lib, err = libfs.NewManager(config, maps.Clone(m.paths)); err != nil {
		return nil, fmt.Errorf("cgroup %s: %w", inner, err)
	}
	return m, nil
}

// joinV1 says whether a container gets a directory in v1 hierarchy name.
// The hierarchies whose only use is a limit are joined when it is set.
func joinV1(name string, r *cgroups.Resources) bool {
	switch name {
	case "hugetlb":
		return len(r.HugetlbLimit) > 0
	case "net_cls":
		return r.NetClsClassid != 0
	case "net_prio":
		return len(r.NetPrioIfpriomap) > 0
	case "rdma":
		return len(r.Rdma) > 0
	case "misc":
		return false
	}
	return true
}

// Load rebuilds a Manager from the map Paths returned, in another process:
// for kill, delete, ps, exec, pause and update. It touches nothing.
func Load(paths map[string]string) (*Manager, error) {
	if len(paths) == 0 {
		return nil, fmt.Errorf("load cgroup: no paths: %w", errdefs.ErrInvalidArgument)
	}
	for name, p := range paths {
		if name != "" && !isV1Subsystem(name) {
			return nil, fmt.Errorf("load cgroup: unknown subsystem %q: %w", name, errdefs.ErrInvalidArgument)
		}
		if !filepath.IsAbs(p) || filepath.Clean(p) != p || p == "/" {
			return nil, fmt.Errorf("load cgroup: %q path %q is not a clean absolute cgroup directory: %w", name, p, errdefs.ErrInvalidArgument)
		}
	}
	config := &cgroups.Cgroup{Resources: &cgroups.Resources{}}
	m := &Manager{paths: maps.Clone(paths)}
	var err error
	if dir, ok := paths[""]; ok && len(paths) == 1 {
		m.v2, m.dir = true, dir
		m.log = slog.Default().With("cgroup", dir)
		m.lib, err = fs2.NewManager(config, dir)
	} else {
		m.log = slog.Default().With("cgroup", m.procsDir())
		m.lib, err = libfs.NewManager(config, maps.Clone(paths))
	}
	if err != nil {
		return nil, fmt.Errorf("load cgroup: %w", err)
	}
	return m, nil
}

// Paths returns the cgroup directories, keyed by v1 subsystem name, or by
// "" for the v2 directory. Persist it in the runtime state for Load.
func (m *Manager) Paths() map[string]string { return maps.Clone(m.paths) }

// Apply creates the cgroup directories and moves pid into them. On v2 it
// first enables, in each parent's cgroup.subtree_control, the controllers
// that parent offers. A pid of -1 only creates. On error the caller is
// expected to end the process and call Destroy, as runc's callers do.
func (m *Manager) Apply(pid int) error {
	if !m.v2 {
		if err := m.lib.Apply(pid); err != nil {
			return fmt.Errorf("cgroup %s: apply pid %d: %w", m.procsDir(), pid, err)
		}
		return nil
	}
	if m.v2Root == "" {
		return fmt.Errorf("cgroup %s: a loaded manager cannot create the cgroup; use Join: %w", m.dir, errdefs.ErrFailedPrecondition)
	}
	if err := makeV2Dir(m.v2Root, m.dir, m.log); err != nil {
		return err
	}
	if err := cgroups.WriteCgroupProc(m.dir, pid); err != nil {
		return fmt.Errorf("cgroup %s: apply pid %d: %w", m.dir, pid, err)
	}
	return nil
}

// OpenDir opens the v2 cgroup directory so that the container's init can
// start inside it: clone3 with CLONE_INTO_CGROUP, in Go
// syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: int(f.Fd())}. That
// skips the migration Apply(pid) does, whose first cgroup.procs write waits
// for an RCU grace period: it saved about 1 ms per start on the CI machine.
// Create the directory first with Apply(-1) and write limits with Set. v1
// has no such clone flag, so there it fails with ErrNotImplemented.
func (m *Manager) OpenDir() (*os.File, error) {
	if !m.v2 {
		return nil, fmt.Errorf("cgroup v1 cannot start a process inside a cgroup; use Apply: %w", errdefs.ErrNotImplemented)
	}
	fd, err := unix.Open(m.dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, m.classify(&fs.PathError{Op: "open cgroup", Path: m.dir, Err: err})
	}
	return os.NewFile(uintptr(fd), m.dir), nil
}

// TaskFiles opens, for writing, the tasks file of every v1 hierarchy the
// container has (not the cgroup2 directory of a hybrid host): a
// single-threaded process moves itself in by writing "0" to each. The
// kernel moves a thread that moves itself without taking the global lock
// that writing a pid to cgroup.procs (Join) takes for writing, and so
// without waiting for an RCU grace period: up to tens of milliseconds on
// an idle host, the largest part of a container start on v1. On v2 it
// returns nothing: start the process inside with OpenDir.
func (m *Manager) TaskFiles() ([]*os.File, error) {
	if m.v2 {
		return nil, nil
	}
	var files []*os.File
	seen := map[string]bool{}
	for _, name := range slices.Sorted(maps.Keys(m.paths)) {
		dir := m.paths[name]
		if name == "" || seen[dir] {
			continue
		}
		seen[dir] = true
		f, err := os.OpenFile(filepath.Join(dir, "tasks"), os.O_WRONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			for _, f := range files {
				f.Close()
			}
			return nil, m.classify(fmt.Errorf("cgroup %s: %w", dir, err))
		}
		files = append(files, f)
	}
	return files, nil
}

// MakeHybridDir creates, on a hybrid host, the container's directory in
// the cgroup2 tree (the one New and Apply would make) and opens it, so that
// its init can be born there (CLONE_INTO_CGROUP) instead of being moved in
// by pid; it does nothing elsewhere (nil file). path and id are New's.
func (m Mounts) MakeHybridDir(path, id string) (*os.File, error) {
	h := m.h
	if h.isV2() || h.hybrid == "" {
		return nil, nil
	}
	inner, err := innerPath(path, id)
	if err != nil {
		return nil, err
	}
	dir := filepath.Join(h.hybrid, inner)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("cgroup %s: %w", dir, err)
	}
	f, err := os.OpenFile(dir, os.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		_ = os.Remove(dir)
		return nil, fmt.Errorf("cgroup %s: %w", dir, err)
	}
	return f, nil
}

// Join moves one more process, such as an exec'd one, into the existing
// cgroup (every hierarchy on v1).
func (m *Manager) Join(pid int) error {
	if err := m.lib.AddPid("", pid); err != nil {
		return m.classify(fmt.Errorf("cgroup %s: join pid %d: %w", m.procsDir(), pid, err))
	}
	return nil
}

// Set writes the limits in res; values res leaves out are left as they
// are, and res may be nil. On v2, cpu shares become cpu.weight with runc's
// formula, quota and period become cpu.max, memory.swap (memory+swap in
// OCI) becomes memory.swap.max = swap - limit; v1-only settings that runc
// drops on v2 are dropped with a warning. A manager from New always writes
// the device policy: res's rules followed by runc's default allowlist (see
// defaultDeviceRules), so no rules at all means "only the defaults". A
// manager from Load writes it only when res has rules, so that an update of
// limits keeps the devices the container was created with.
func (m *Manager) Set(res *specs.LinuxResources) error {
	r, err := convertResources(res, m.v2, m.log)
	if err != nil {
		return err
	}
	if m.cpusetChecked != [2]string{r.CpusetCpus, r.CpusetMems} {
		if err := checkCpuset(r); err != nil {
			return err
		}
		m.cpusetChecked = [2]string{r.CpusetCpus, r.CpusetMems}
	}
	if err := m.checkSubsystems(r); err != nil {
		return err
	}
	if m.ownsDevices || len(r.Devices) > 0 {
		r.Devices = append(r.Devices, defaultDeviceRules()...)
	} else {
		r.SkipDevices = true
	}
	if err := m.lib.Set(r); err != nil {
		return m.explainSetError(r, err)
	}
	return nil
}

// Pids lists every process in the cgroup and its sub-cgroups.
func (m *Manager) Pids() ([]int, error) {
	dir := m.procsDir()
	pids, err := cgroups.GetAllPids(dir)
	if err != nil {
		return nil, m.classify(fmt.Errorf("cgroup %s: list processes: %w", dir, err))
	}
	return pids, nil
}

// Freeze stops every process in the cgroup (v1 freezer, v2 cgroup.freeze)
// and returns once the kernel reports them frozen.
func (m *Manager) Freeze() error { return m.setFrozen(cgroups.Frozen) }

// Thaw lets a frozen cgroup run again.
func (m *Manager) Thaw() error { return m.setFrozen(cgroups.Thawed) }

func (m *Manager) setFrozen(state cgroups.FreezerState) error {
	if !m.v2 && m.paths["freezer"] == "" {
		return fmt.Errorf("cgroup: no v1 freezer hierarchy, cannot %s: %w", verb(state), errdefs.ErrFailedPrecondition)
	}
	if err := m.lib.Freeze(state); err != nil {
		return m.classify(fmt.Errorf("cgroup %s: %s: %w", m.procsDir(), verb(state), err))
	}
	return nil
}

func verb(state cgroups.FreezerState) string {
	if state == cgroups.Frozen {
		return "freeze"
	}
	return "thaw"
}

// Frozen reports whether the cgroup itself is frozen (a paused container).
func (m *Manager) Frozen() (bool, error) {
	state, err := m.lib.GetFreezerState()
	if err != nil {
		return false, m.classify(fmt.Errorf("cgroup %s: read freezer state: %w", m.procsDir(), err))
	}
	return state == cgroups.Frozen, nil
}

// KillAll sends sig to every process in the cgroup. SIGKILL on v2 uses
// cgroup.kill (Linux 5.14+), which cannot miss a forking process;
// otherwise, as runc's kill --all does, it freezes the cgroup so nothing
// forks meanwhile, signals each process and thaws. Without a freezer it
// signals anyway and logs a warning.
func (m *Manager) KillAll(sig unix.Signal) error {
	if m.v2 && sig == unix.SIGKILL {
		err := cgroups.WriteFile(m.dir, "cgroup.kill", "1")
		if err == nil {
			return nil
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return m.classify(fmt.Errorf("cgroup %s: kill: %w", m.dir, err))
		}
		// An older kernel, or the cgroup is gone: Pids below tells which.
	}
	frozen := false
	switch err := m.Freeze(); {
	case err == nil:
		frozen = true
	case errdefs.IsNotFound(err):
		return err
	default:
		m.log.Warn("signalling a cgroup that could not be frozen; a process forking meanwhile may escape", "signal", sig, "err", err)
	}
	pids, err := m.Pids()
	var errs []error
	if err != nil {
		errs = append(errs, err)
	}
	for _, pid := range pids {
		if err := unix.Kill(pid, sig); err != nil && !errors.Is(err, unix.ESRCH) {
			errs = append(errs, fmt.Errorf("signal %d to pid %d: %w", sig, pid, err))
		}
	}
	if frozen {
		if err := m.Thaw(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Stats samples CPU, memory, pids and block I/O counters.
func (m *Manager) Stats() (*Stats, error) {
	s, err := m.lib.Stats(&cgroups.StatsOptions{Controllers: statsControllers})
	if err != nil {
		return nil, m.classify(fmt.Errorf("cgroup %s: stats: %w", m.procsDir(), err))
	}
	return statsFrom(s, m.v2), nil
}

// OOMKillCount is how many processes the kernel's OOM killer has killed in
// the cgroup: oom_kill in memory.oom_control (v1) or memory.events (v2).
func (m *Manager) OOMKillCount() (uint64, error) {
	n, err := m.lib.OOMKillCount()
	if err != nil {
		return 0, m.classify(fmt.Errorf("cgroup %s: read OOM kill count: %w", m.procsDir(), err))
	}
	return n, nil
}

// Destroy removes every cgroup directory the container has, sub-cgroups
// first. rmdir fails while processes are still exiting, so each one is
// retried for about a second. A directory already gone is not an error, so
// Destroy can be called again; one with processes left gives an error that
// lists them.
func (m *Manager) Destroy() error {
	var errs []error
	seen := map[string]bool{}
	for _, name := range slices.Sorted(maps.Keys(m.paths)) {
		dir := m.paths[name]
		if seen[dir] { // co-mounted hierarchies such as cpu,cpuacct
			continue
		}
		seen[dir] = true
		if err := cgroups.RemovePath(dir); err != nil {
			if pids, perr := cgroups.GetAllPids(dir); perr == nil && len(pids) > 0 {
				err = fmt.Errorf("%w (processes still inside: %v): %w", err, pids, errdefs.ErrFailedPrecondition)
			}
			errs = append(errs, fmt.Errorf("remove cgroup %s: %w", dir, err))
		}
	}
	return errors.Join(errs...)
}

// procsDir is the directory whose cgroup.procs lists the container's
// processes: the v2 directory, or on v1 the hierarchy runc reads them from.
func (m *Manager) procsDir() string {
	if m.v2 {
		return m.dir
	}
	for _, name := range []string{"devices", "freezer", "pids", "memory", "cpu"} {
		if p := m.paths[name]; p != "" {
			return p
		}
	}
	for _, name := range slices.Sorted(maps.Keys(m.paths)) {
		return m.paths[name]
	}
	return ""
}

// classify adds errdefs.ErrNotFound to err when the cgroup directory no
// longer exists, so callers can tell "already gone" from a failure.
func (m *Manager) classify(err error) error {
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, unix.ENODEV) {
		if dir := m.procsDir(); dir != "" && !cgroups.PathExists(dir) {
			return fmt.Errorf("%w: %w", err, errdefs.ErrNotFound)
		}
	}
	return err
}

// checkSubsystems refuses, before anything is written, settings this
// container has no cgroup for or this kernel has no file for.
func (m *Manager) checkSubsystems(r *cgroups.Resources) error {
	if m.v2 {
		return nil
	}
	needs := []struct {
		subsystem, setting string
		set                bool
	}{
		{"hugetlb", "hugepageLimits", len(r.HugetlbLimit) > 0},
		{"net_cls", "network.classID", r.NetClsClassid != 0},
		{"net_prio", "network.priorities", len(r.NetPrioIfpriomap) > 0},
		{"rdma", "rdma", len(r.Rdma) > 0},
		{"memory", "memory", r.Memory != 0 || r.MemorySwap != 0 || r.MemoryReservation != 0 || r.OomKillDisable || r.MemorySwappiness != nil},
		{"pids", "pids.limit", r.PidsLimit != nil},
		{"cpuset", "cpu.cpus/mems", r.CpusetCpus != "" || r.CpusetMems != ""},
		{"blkio", "blockIO", r.BlkioWeight != 0 || r.BlkioLeafWeight != 0 || len(r.BlkioWeightDevice) > 0 ||
			len(r.BlkioThrottleReadBpsDevice) > 0 || len(r.BlkioThrottleWriteBpsDevice) > 0 ||
			len(r.BlkioThrottleReadIOPSDevice) > 0 || len(r.BlkioThrottleWriteIOPSDevice) > 0},
	}
	for _, n := range needs {
		if n.set && m.paths[n.subsystem] == "" {
			return fmt.Errorf("%s: this container has no v1 %s cgroup (the controller is not mounted, or the container was created without such limits): %w",
				n.setting, n.subsystem, errdefs.ErrFailedPrecondition)
		}
	}
	if blkio := m.paths["blkio"]; blkio != "" && (r.BlkioWeight != 0 || len(r.BlkioWeightDevice) > 0) {
		if !cgroups.PathExists(filepath.Join(blkio, "blkio.weight")) && !cgroups.PathExists(filepath.Join(blkio, "blkio.bfq.weight")) {
			return fmt.Errorf("blockIO.weight: this kernel's blkio controller has no weight files (no CFQ or BFQ I/O scheduler); Docker drops the weight in that case: %w",
				errdefs.ErrFailedPrecondition)
		}
	}
	return nil
}

// explainSetError turns a v2 "no such file" into the controller that is
// missing, the usual reason: a parent that does not delegate it.
func (m *Manager) explainSetError(r *cgroups.Resources, err error) error {
	err = fmt.Errorf("cgroup %s: set resources: %w", m.procsDir(), err)
	if !m.v2 || !errors.Is(err, fs.ErrNotExist) {
		return m.classify(err)
	}
	have, rerr := cgroups.ReadFile(m.dir, "cgroup.controllers")
	if rerr != nil {
		return m.classify(err)
	}
	var missing []string
	for _, c := range v2ControllersNeeded(r) {
		if !slices.Contains(strings.Fields(have), c) {
			missing = append(missing, c)
		}
	}
	if len(missing) == 0 {
		return err
	}
	return fmt.Errorf("%w: controller(s) %s not available in %s (its parent's cgroup.subtree_control does not enable them): %w",
		err, strings.Join(missing, ", "), m.dir, errdefs.ErrFailedPrecondition)
}

// checkCpuset names the CPUs or memory nodes that do not exist.
func checkCpuset(r *cgroups.Resources) error {
	if r.CpusetCpus != "" {
		if err := checkCPUList("cpu.cpus", r.CpusetCpus, onlineCPUsFile, ""); err != nil {
			return err
		}
	}
	if r.CpusetMems != "" {
		// Kernels without NUMA have no node directory and one node, 0.
		if err := checkCPUList("cpu.mems", r.CpusetMems, onlineNodesFile, "0"); err != nil {
			return err
		}
	}
	return nil
}
