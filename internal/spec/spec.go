// Package spec turns a container's run options (already merged with its
// image's config by the engine) into an OCI runtime spec with Docker's
// defaults: the default capability set, masked and read-only /proc and /sys
// paths, the default device allow list, Docker's default seccomp profile,
// /dev/shm of 64 MiB, and /etc/hosts, /etc/hostname and /etc/resolv.conf
// bound from the container's directory.
//
// It knows nothing of images, the API or the engine's records: callers fill
// Options, so the translation from docker's HostConfig lives in one place
// (the engine) and this package stays testable on its own.
package spec

import (
	"fmt"
	"maps"
	"path"
	"slices"
	"strings"

	"github.com/moby/profiles/seccomp"
	"github.com/moby/sys/capability"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/berth-dev/berth/internal/errdefs"
)

// Network modes Build understands; bridge and container: modes reach it as
// a NetnsPath made or found by the engine.
const (
	// NetworkPrivate is a fresh network namespace with only a loopback
	// interface (docker's --network none). The engine brings lo up.
	NetworkPrivate = ""
	// NetworkHost shares the host's network namespace.
	NetworkHost = "host"
)

// DefaultShmSize is docker's /dev/shm size.
const DefaultShmSize = 64 << 20

// Options are a container's run options after the engine merged its image's
// config (entrypoint+cmd into Args, image env into Env, and so on).
type Options struct {
	Rootfs   string // absolute path of the mounted root filesystem
	Hostname string
	Args     []string
	Env      []string
	Cwd      string // "" means "/"
	// User is docker's --user: name|uid[:group|gid], resolved against the
	// rootfs's /etc/passwd and /etc/group.
	User     string
	GroupAdd []string
	Tty      bool
	// OpenStdin keeps stdin open (docker's -i); without it the process gets
	// /dev/null from its supervisor.
	OpenStdin bool

	Privileged     bool
	ReadonlyRootfs bool
	CapAdd         []string
	CapDrop        []string
	// SeccompUnconfined turns the default profile off (security-opt
	// seccomp=unconfined); a privileged container never has one.
	SeccompUnconfined bool
	NoNewPrivileges   bool

	Memory     int64 // bytes; 0 = unlimited
	MemorySwap int64 // bytes incl. memory; 0 = twice Memory, -1 = unlimited
	NanoCPUs   int64
	CPUShares  int64
	PidsLimit  int64 // <= 0 = unlimited
	ShmSize    int64 // 0 = DefaultShmSize
	// MemoryReservation is the soft limit (bytes); 0 = none.
	MemoryReservation int64
	OomKillDisable    bool
	// CPUQuota/CPUPeriod are --cpu-quota/--cpu-period (microseconds); a
	// quota wins over NanoCPUs' derived one, as in docker.
	CPUQuota, CPUPeriod    int64
	CpusetCpus, CpusetMems string
	// OomScoreAdj is --oom-score-adj; nil leaves the runtime's.
	OomScoreAdj *int
	// Rlimits are --ulimit values, already in OCI form.
	Rlimits []specs.POSIXRlimit
	// Sysctls are --sysctl values (namespaced sysctls only: ValidateSysctl).
	Sysctls map[string]string
	// PidHost, IpcHost, UTSHost share the host's namespace (--pid/--ipc/--uts host).
	PidHost, IpcHost, UTSHost bool
	// Devices are --device nodes; DeviceRules the cgroup rules allowing
	// them and --device-cgroup-rule's.
	Devices     []specs.LinuxDevice
	DeviceRules []specs.LinuxDeviceCgroup
	// BlockIO are --blkio-weight* and --device-*-bps/iops.
	BlockIO *specs.LinuxBlockIO
	// Swappiness is --memory-swappiness (cgroup v1 only); nil leaves it.
	Swappiness *uint64
	// CgroupnsHost keeps the host's cgroup namespace (--cgroupns host).
	CgroupnsHost bool
	// Annotations are --annotation, passed to the runtime.
	Annotations map[string]string

	NetworkMode string
	// NetnsPath joins an existing network namespace (a bridge endpoint's
	// namespace made by the engine, or another container's); it wins over
	// NetworkMode.
	NetnsPath   string
	CgroupsPath string

	// Files the engine wrote in the container's directory, bound over the
	// image's copies; "" leaves the image's.
	HostsPath, HostnamePath, ResolvConfPath string

	// Mounts are extra mounts (binds, volumes) in docker's order, already
	// validated: absolute destinations, existing sources.
	Mounts []specs.Mount
	// Tmpfs maps a destination to docker's --tmpfs options ("size=64m,noexec").
	Tmpfs map[string]string
}

// DefaultCapabilities is docker's default capability set.
var DefaultCapabilities = []string{
	"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD",
	"CAP_NET_RAW", "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP",
	"CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
}

// MaskedPaths and ReadonlyPaths are docker's (moby oci/defaults.go).
var (
	MaskedPaths = []string{
		"/proc/asound", "/proc/acpi", "/proc/interrupts", "/proc/kcore", "/proc/keys",
		"/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug",
		"/proc/scsi", "/sys/firmware", "/sys/devices/virtual/powercap",
	}
	ReadonlyPaths = []string{
		"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger",
	}
)

// Build returns the OCI spec for opts.
func Build(opts Options) (*specs.Spec, error) {
	if !path.IsAbs(opts.Rootfs) {
		return nil, fmt.Errorf("rootfs %q is not absolute: %w", opts.Rootfs, errdefs.ErrInvalidArgument)
	}
	if len(opts.Args) == 0 {
		return nil, fmt.Errorf("no command specified: %w", errdefs.ErrInvalidArgument)
	}
	cwd := opts.Cwd
	if cwd == "" {
		cwd = "/"
	}
	if !path.IsAbs(cwd) {
		return nil, fmt.Errorf("the working directory '%s' is invalid, it needs to be an absolute path: %w", cwd, errdefs.ErrInvalidArgument)
	}
	usr, err := resolveUser(opts.Rootfs, opts.User, opts.GroupAdd)
	if err != nil {
		return nil, err
	}
	caps, err := capabilities(opts)
	if err != nil {
		return nil, err
	}
	env := withDefaultEnv(opts.Env, opts.Hostname, opts.Tty, usr.home)
	s := &specs.Spec{
		Version: specs.Version,
		Root:    &specs.Root{Path: opts.Rootfs, Readonly: opts.ReadonlyRootfs},
		Process: &specs.Process{
			Terminal:        opts.Tty,
			Args:            opts.Args,
			Env:             env,
			Cwd:             cwd,
			User:            usr.user,
			Capabilities:    &specs.LinuxCapabilities{Bounding: caps, Effective: caps, Permitted: caps},
			NoNewPrivileges: opts.NoNewPrivileges,
			OOMScoreAdj:     opts.OomScoreAdj,
			Rlimits:         opts.Rlimits,
		},
		Hostname: opts.Hostname,
		Mounts:   defaultMounts(opts),
		Linux: &specs.Linux{
			CgroupsPath: opts.CgroupsPath,
			Namespaces:  namespaces(opts),
			Resources:   resources(opts),
		},
	}
	s.Linux.Devices = opts.Devices
	s.Annotations = opts.Annotations
	s.Linux.Resources.BlockIO = opts.BlockIO
	if opts.Swappiness != nil {
		if s.Linux.Resources.Memory == nil {
			s.Linux.Resources.Memory = &specs.LinuxMemory{}
		}
		s.Linux.Resources.Memory.Swappiness = opts.Swappiness
	}
	if !opts.Privileged {
		s.Linux.Resources.Devices = append(s.Linux.Resources.Devices, opts.DeviceRules...)
	}
	if len(opts.Sysctls) > 0 {
		for k := range opts.Sysctls {
			if err := ValidateSysctl(k, opts.IpcHost, opts.NetworkMode == NetworkHost && opts.NetnsPath == ""); err != nil {
				return nil, err
			}
		}
		s.Linux.Sysctl = opts.Sysctls
	}
	switch {
	case opts.NetnsPath != "":
		s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{Type: specs.NetworkNamespace, Path: opts.NetnsPath})
	case opts.NetworkMode == NetworkHost:
	default:
		// A fresh namespace with loopback only (--network none, and any
		// mode the engine did not give a namespace path).
		s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{Type: specs.NetworkNamespace})
	}
	if !opts.Privileged {
		s.Linux.MaskedPaths = slices.Clone(MaskedPaths)
		s.Linux.ReadonlyPaths = slices.Clone(ReadonlyPaths)
		if !opts.SeccompUnconfined {
			// The profile allows syscalls by the capabilities the process
			// has, so it is computed after them.
			sc, err := seccomp.GetDefaultProfile(s)
			if err != nil {
				return nil, fmt.Errorf("docker default seccomp profile: %w", err)
			}
			s.Linux.Seccomp = sc
		}
	}
	// The container's own mounts: --tmpfs, the /etc files, then the
	// binds and volumes (a later one at the same place wins).
	var user []specs.Mount
	for _, dst := range slices.Sorted(maps.Keys(opts.Tmpfs)) {
		m, err := tmpfsMount(dst, opts.Tmpfs[dst])
		if err != nil {
			return nil, err
		}
		user = replaceMount(user, m)
	}
	for _, f := range []struct{ src, dst string }{
		{opts.ResolvConfPath, "/etc/resolv.conf"},
		{opts.HostnamePath, "/etc/hostname"},
		{opts.HostsPath, "/etc/hosts"},
	} {
		if f.src != "" {
			user = replaceMount(user, specs.Mount{
				Destination: f.dst, Type: "bind", Source: f.src,
				Options: []string{"rbind", "rprivate"},
			})
		}
	}
	for _, m := range opts.Mounts {
		if !path.IsAbs(m.Destination) {
			return nil, fmt.Errorf("invalid mount config: mount path %q must be absolute: %w", m.Destination, errdefs.ErrInvalidArgument)
		}
		user = replaceMount(user, m)
	}
	// They replace the defaults at their places (a bind over /dev/shm) and
	// come after them, parents before children as docker sorts them: the
	// /etc files over a volume at /etc, a tmpfs at /a/b over a bind at /a.
	for _, m := range user {
		dst := path.Clean(m.Destination)
		s.Mounts = slices.DeleteFunc(s.Mounts, func(x specs.Mount) bool { return path.Clean(x.Destination) == dst })
	}
	slices.SortStableFunc(user, func(a, b specs.Mount) int { return mountDepth(a) - mountDepth(b) })
	s.Mounts = append(s.Mounts, user...)
	return s, nil
}

func mountDepth(m specs.Mount) int { return strings.Count(path.Clean(m.Destination), "/") }

// namespaces are docker's: new mount, cgroup (and net, added by Build)
// namespaces; uts, pid and ipc new unless the host's are asked for.
func namespaces(opts Options) []specs.LinuxNamespace {
	ns := []specs.LinuxNamespace{{Type: specs.MountNamespace}}
	if !opts.UTSHost {
		ns = append(ns, specs.LinuxNamespace{Type: specs.UTSNamespace})
	}
	if !opts.PidHost {
		ns = append(ns, specs.LinuxNamespace{Type: specs.PIDNamespace})
	}
	if !opts.IpcHost {
		ns = append(ns, specs.LinuxNamespace{Type: specs.IPCNamespace})
	}
	if opts.CgroupnsHost {
		return ns
	}
	return append(ns, specs.LinuxNamespace{Type: specs.CgroupNamespace})
}

// ValidateSysctl accepts the sysctls a container may set: those of the
// namespaces it has of its own (docker's rule): ipc (kernel.msg*, kernel.sem,
// kernel.shm*, fs.mqueue.*) unless --ipc host, net.* unless --network host.
func ValidateSysctl(name string, ipcHost, netHost bool) error {
	ipc := strings.HasPrefix(name, "fs.mqueue.") || strings.HasPrefix(name, "kernel.msg") ||
		strings.HasPrefix(name, "kernel.shm") || name == "kernel.sem"
	switch {
	case ipc && !ipcHost, strings.HasPrefix(name, "net.") && !netHost:
		return nil
	case ipc, strings.HasPrefix(name, "net."):
		return fmt.Errorf("sysctl %q is not allowed when the container shares the host's namespace: %w", name, errdefs.ErrInvalidArgument)
	}
	return fmt.Errorf("sysctl %q is not in a separate kernel namespace: %w", name, errdefs.ErrInvalidArgument)
}

// replaceMount adds m, dropping an earlier mount at the same destination:
// docker lets a user mount (a bind over /dev/shm, say) replace a default.
func replaceMount(ms []specs.Mount, m specs.Mount) []specs.Mount {
	dst := path.Clean(m.Destination)
	ms = slices.DeleteFunc(ms, func(x specs.Mount) bool { return path.Clean(x.Destination) == dst })
	return append(ms, m)
}

func defaultMounts(opts Options) []specs.Mount {
	shm := opts.ShmSize
	if shm <= 0 {
		shm = DefaultShmSize
	}
	sysOpts := []string{"nosuid", "noexec", "nodev", "ro"}
	cgOpts := []string{"ro", "nosuid", "noexec", "nodev"}
	if opts.Privileged {
		sysOpts = sysOpts[:3]
		cgOpts = []string{"rw", "nosuid", "noexec", "nodev"}
	}
	return []specs.Mount{
		{Destination: "/proc", Type: "proc", Source: "proc", Options: []string{"nosuid", "noexec", "nodev"}},
		{Destination: "/dev", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "strictatime", "mode=755", "size=65536k"}},
		{Destination: "/dev/pts", Type: "devpts", Source: "devpts", Options: []string{"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"}},
		{Destination: "/sys", Type: "sysfs", Source: "sysfs", Options: sysOpts},
		{Destination: "/sys/fs/cgroup", Type: "cgroup", Source: "cgroup", Options: cgOpts},
		{Destination: "/dev/mqueue", Type: "mqueue", Source: "mqueue", Options: []string{"nosuid", "noexec", "nodev"}},
		{Destination: "/dev/shm", Type: "tmpfs", Source: "shm", Options: []string{"nosuid", "noexec", "nodev", "mode=1777", fmt.Sprintf("size=%d", shm)}},
	}
}

// tmpfsMount is docker's --tmpfs: nosuid,nodev,noexec by default, options
// after the colon appended (later ones win in the kernel).
func tmpfsMount(dst, data string) (specs.Mount, error) {
	if !path.IsAbs(dst) {
		return specs.Mount{}, fmt.Errorf("invalid tmpfs mount %q: destination must be absolute: %w", dst, errdefs.ErrInvalidArgument)
	}
	o := []string{"nosuid", "nodev", "noexec"}
	if data != "" {
		o = append(o, strings.Split(data, ",")...)
	}
	return specs.Mount{Destination: dst, Type: "tmpfs", Source: "tmpfs", Options: o}, nil
}

func resources(opts Options) *specs.LinuxResources {
	r := &specs.LinuxResources{Devices: defaultDevices(opts.Privileged)}
	if opts.Memory > 0 {
		limit := opts.Memory
		swap := opts.MemorySwap
		if swap == 0 {
			swap = 2 * limit // docker's default: as much swap as memory
		}
		r.Memory = &specs.LinuxMemory{Limit: &limit, Swap: &swap}
	}
	if opts.MemoryReservation > 0 || opts.OomKillDisable {
		if r.Memory == nil {
			r.Memory = &specs.LinuxMemory{}
		}
		if opts.MemoryReservation > 0 {
			v := opts.MemoryReservation
			r.Memory.Reservation = &v
		}
		if opts.OomKillDisable {
			v := true
			r.Memory.DisableOOMKiller = &v
		}
	}
	if opts.NanoCPUs > 0 || opts.CPUShares > 0 || opts.CPUQuota > 0 || opts.CPUPeriod > 0 || opts.CpusetCpus != "" || opts.CpusetMems != "" {
		r.CPU = &specs.LinuxCPU{Cpus: opts.CpusetCpus, Mems: opts.CpusetMems}
		if opts.NanoCPUs > 0 {
			period := uint64(100000)
			quota := opts.NanoCPUs * int64(period) / 1e9
			r.CPU.Period, r.CPU.Quota = &period, &quota
		}
		if opts.CPUPeriod > 0 {
			period := uint64(opts.CPUPeriod)
			r.CPU.Period = &period
		}
		if opts.CPUQuota > 0 {
			quota := opts.CPUQuota
			r.CPU.Quota = &quota
		}
		if opts.CPUShares > 0 {
			shares := uint64(opts.CPUShares)
			r.CPU.Shares = &shares
		}
	}
	if opts.PidsLimit > 0 {
		limit := opts.PidsLimit
		r.Pids = &specs.LinuxPids{Limit: &limit}
	}
	return r
}

func defaultDevices(privileged bool) []specs.LinuxDeviceCgroup {
	if privileged {
		return []specs.LinuxDeviceCgroup{{Allow: true, Access: "rwm"}}
	}
	dev := func(typ string, major, minor int64, access string) specs.LinuxDeviceCgroup {
		d := specs.LinuxDeviceCgroup{Allow: true, Type: typ, Access: access}
		if major >= 0 {
			d.Major = &major
		}
		if minor >= 0 {
			d.Minor = &minor
		}
		return d
	}
	// Docker's list: mknod of anything, the standard nodes, ptys and tun.
	return []specs.LinuxDeviceCgroup{
		{Allow: false, Access: "rwm"},
		dev("c", -1, -1, "m"), dev("b", -1, -1, "m"),
		dev("c", 1, 3, "rwm"), dev("c", 1, 8, "rwm"), dev("c", 1, 7, "rwm"),
		dev("c", 5, 0, "rwm"), dev("c", 1, 5, "rwm"), dev("c", 1, 9, "rwm"),
		dev("c", 5, 1, "rwm"), dev("c", 136, -1, "rwm"), dev("c", 5, 2, "rwm"),
		dev("c", 10, 200, "rwm"),
	}
}

// capabilities applies docker's rules: privileged gets every capability;
// otherwise the default set, minus CapDrop, plus CapAdd, where "ALL" in
// either list stands for every capability and names may omit "CAP_".
func capabilities(opts Options) ([]string, error) {
	all := allCapabilities()
	if opts.Privileged {
		return all, nil
	}
	add, err := normalizeCaps(opts.CapAdd, all)
	if err != nil {
		return nil, err
	}
	drop, err := normalizeCaps(opts.CapDrop, all)
	if err != nil {
		return nil, err
	}
	var caps []string
	switch {
	case slices.Contains(add, "ALL"):
		caps = slices.Clone(all)
	case slices.Contains(drop, "ALL"):
	default:
		caps = slices.Clone(DefaultCapabilities)
	}
	if !slices.Contains(drop, "ALL") {
		caps = slices.DeleteFunc(caps, func(c string) bool { return slices.Contains(drop, c) })
	}
	for _, c := range add {
		if c != "ALL" && !slices.Contains(caps, c) {
			caps = append(caps, c)
		}
	}
	return caps, nil
}

func allCapabilities() []string {
	var out []string
	for _, c := range capability.ListKnown() {
		out = append(out, "CAP_"+strings.ToUpper(c.String()))
	}
	return out
}

func normalizeCaps(in, known []string) ([]string, error) {
	var out []string
	for _, c := range in {
		c = strings.ToUpper(strings.TrimSpace(c))
		if c == "ALL" {
			out = append(out, c)
			continue
		}
		if !strings.HasPrefix(c, "CAP_") {
			c = "CAP_" + c
		}
		if !slices.Contains(known, c) {
			return nil, fmt.Errorf("unknown capability: %q: %w", c, errdefs.ErrInvalidArgument)
		}
		out = append(out, c)
	}
	return out, nil
}

// withDefaultEnv adds what docker adds: PATH when the image has none,
// HOSTNAME, HOME from the user's passwd entry, TERM for a terminal.
func withDefaultEnv(env []string, hostname string, tty bool, home string) []string {
	out := slices.Clone(env)
	has := func(k string) bool {
		return slices.ContainsFunc(out, func(e string) bool { return strings.HasPrefix(e, k+"=") })
	}
	if !has("PATH") {
		out = append(out, "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
	}
	if hostname != "" && !has("HOSTNAME") {
		out = append([]string{"HOSTNAME=" + hostname}, out...)
	}
	if tty && !has("TERM") {
		out = append(out, "TERM=xterm")
	}
	if home != "" && !has("HOME") {
		out = append(out, "HOME="+home)
	}
	return out
}
