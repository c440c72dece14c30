package runtime

import (
	"encoding/json"
	"errors"
	"fmt"
	"golang.org/x/sys/unix"
	"os"
	"path/filepath"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/berth-dev/berth/internal/errdefs"
)

// DefaultSpec is what `berth runtime spec` writes: the same starting point as
// `runc spec`, a busybox-friendly `sh` with a terminal.
func DefaultSpec() *specs.Spec {
	caps := []string{"CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"}
	return &specs.Spec{
		Version: specs.Version,
		Root:    &specs.Root{Path: "rootfs", Readonly: true},
		Process: &specs.Process{
			Terminal: true,
			User:     specs.User{UID: 0, GID: 0},
			Args:     []string{"sh"},
			Env:      []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "TERM=xterm"},
			Cwd:      "/",
			Capabilities: &specs.LinuxCapabilities{
				Bounding: caps, Effective: caps, Permitted: caps,
			},
			Rlimits:         []specs.POSIXRlimit{{Type: "RLIMIT_NOFILE", Hard: 1024, Soft: 1024}},
			NoNewPrivileges: true,
		},
		Hostname: "berth",
		Mounts: []specs.Mount{
			{Destination: "/proc", Type: "proc", Source: "proc"},
			{Destination: "/dev", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "strictatime", "mode=755", "size=65536k"}},
			{Destination: "/dev/pts", Type: "devpts", Source: "devpts", Options: []string{"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"}},
			{Destination: "/dev/shm", Type: "tmpfs", Source: "shm", Options: []string{"nosuid", "noexec", "nodev", "mode=1777", "size=65536k"}},
			{Destination: "/dev/mqueue", Type: "mqueue", Source: "mqueue", Options: []string{"nosuid", "noexec", "nodev"}},
			{Destination: "/sys", Type: "sysfs", Source: "sysfs", Options: []string{"nosuid", "noexec", "nodev", "ro"}},
			{Destination: "/sys/fs/cgroup", Type: "cgroup", Source: "cgroup", Options: []string{"nosuid", "noexec", "nodev", "relatime", "ro"}},
		},
		Linux: &specs.Linux{
			Resources: &specs.LinuxResources{
				Devices: []specs.LinuxDeviceCgroup{{Allow: false, Access: "rwm"}},
			},
			Namespaces: []specs.LinuxNamespace{
				{Type: specs.PIDNamespace}, {Type: specs.NetworkNamespace}, {Type: specs.IPCNamespace},
				{Type: specs.UTSNamespace}, {Type: specs.MountNamespace}, {Type: specs.CgroupNamespace},
			},
			MaskedPaths: []string{
				"/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
				"/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware",
				"/proc/scsi", "/sys/devices/virtual/powercap",
			},
			ReadonlyPaths: []string{
				"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger",
			},
		},
	}
}

// readSpec reads <bundle>/config.json; parseSpec decodes and validates it.
func readSpec(bundle string) ([]byte, error) {
	path := filepath.Join(bundle, "config.json")
	data, err := os.ReadFile(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("bundle %s has no config.json: %w", bundle, errdefs.ErrInvalidArgument)
		}
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	return data, nil
}

// specPeek is the little of config.json needed to spawn the init. Decoding
// it costs a third of decoding the whole spec in a fresh process (where
// encoding/json builds its reflection caches), so the init is spawned from
// it while the full spec is decoded and checked on another goroutine.
type specPeek struct {
	Process *struct {
		Terminal bool `json:"terminal"`
	} `json:"process"`
	Linux *struct {
		Namespaces  []specs.LinuxNamespace `json:"namespaces"`
		UIDMappings []specs.LinuxIDMapping `json:"uidMappings"`
		GIDMappings []specs.LinuxIDMapping `json:"gidMappings"`
		CgroupsPath string                 `json:"cgroupsPath"`
	} `json:"linux"`
	Hooks *struct {
		Prestart        []json.RawMessage `json:"prestart"`
		CreateRuntime   []json.RawMessage `json:"createRuntime"`
		CreateContainer []json.RawMessage `json:"createContainer"`
		StartContainer  []json.RawMessage `json:"startContainer"`
	} `json:"hooks"`
}

// peekSpec returns the peek, or nil when the document is not well-formed
// enough for one (the full parse then reports what is wrong).
func peekSpec(data []byte) *specPeek {
	var p specPeek
	if json.Unmarshal(data, &p) != nil || p.Process == nil || p.Linux == nil {
		return nil
	}
	for _, ns := range p.Linux.Namespaces {
		if !knownNamespaces[ns.Type] || (ns.Path != "" && checkNamespacePath(ns) != nil) {
			return nil
		}
	}
	return &p
}

func parseSpec(data []byte, bundle string) (*specs.Spec, error) {
	path := filepath.Join(bundle, "config.json")
	var spec specs.Spec
	if err := json.Unmarshal(data, &spec); err != nil {
		return nil, fmt.Errorf("parse %s: %v: %w", path, err, errdefs.ErrInvalidArgument)
	}
	if err := validateSpec(&spec, bundle); err != nil {
		return nil, fmt.Errorf("invalid %s: %w", path, err)
	}
	return &spec, nil
}

var knownNamespaces = map[specs.LinuxNamespaceType]bool{
	specs.PIDNamespace: true, specs.NetworkNamespace: true, specs.MountNamespace: true,
	specs.IPCNamespace: true, specs.UTSNamespace: true, specs.UserNamespace: true,
	specs.CgroupNamespace: true, specs.TimeNamespace: true,
}

func invalid(format string, a ...any) error {
	return fmt.Errorf(format+": %w", append(a, errdefs.ErrInvalidArgument)...)
}

// validateSpec checks what the runtime relies on, so that errors name the
// field at fault instead of surfacing as a failed syscall inside the init.
func validateSpec(s *specs.Spec, bundle string) error {
	if s.Version == "" {
		return invalid("ociVersion is missing")
	}
	if !strings.HasPrefix(s.Version, "1.") {
		return invalid("ociVersion %q is not supported (want 1.x)", s.Version)
	}
	if s.Root == nil || s.Root.Path == "" {
		return invalid("root.path is missing")
	}
	rootfs := s.Root.Path
	if !filepath.IsAbs(rootfs) {
		rootfs = filepath.Join(bundle, rootfs)
	}
	fi, err := os.Stat(rootfs)
	if err != nil {
		return invalid("root.path %s does not exist", rootfs)
	}
	if !fi.IsDir() {
		return invalid("root.path %s is not a directory", rootfs)
	}
	if s.Process == nil {
		return invalid("process is missing")
	}
	if err := validateProcess(s.Process); err != nil {
		return err
	}
	if s.Linux == nil {
		return invalid("linux section is missing")
	}
	seen := map[specs.LinuxNamespaceType]bool{}
	for _, ns := range s.Linux.Namespaces {
		if !knownNamespaces[ns.Type] {
			return invalid("unknown namespace type %q", ns.Type)
		}
		if seen[ns.Type] {
			return invalid("namespace %q is listed twice", ns.Type)
		}
		seen[ns.Type] = true
		if ns.Path != "" {
			if err := checkNamespacePath(ns); err != nil {
				return err
			}
		}
	}
	if seen[specs.UserNamespace] {
		if len(s.Linux.UIDMappings) == 0 || len(s.Linux.GIDMappings) == 0 {
			if pathOf(s, specs.UserNamespace) == "" {
				return invalid("a new user namespace needs linux.uidMappings and linux.gidMappings")
			}
		}
	} else if len(s.Linux.UIDMappings) > 0 || len(s.Linux.GIDMappings) > 0 {
		return invalid("uid/gid mappings are set but there is no user namespace")
	}
	if s.Hostname != "" && !seen[specs.UTSNamespace] {
		return invalid("hostname is set but there is no new uts namespace")
	}
	for _, m := range s.Mounts {
		if m.Destination == "" {
			return invalid("a mount has no destination")
		}
		if m.Type == "" && !isBind(&m) {
			return invalid("mount %s has no type", m.Destination)
		}
		if m.Type != "" && m.Type != "bind" && !knownFSType(m.Type) && m.Type != "cgroup" && m.Type != "cgroup2" {
			return invalid("mount %s: unknown mount type %q", m.Destination, m.Type)
		}
	}
	if s.Hooks != nil {
		for _, list := range [][]specs.Hook{s.Hooks.Prestart, s.Hooks.CreateRuntime, s.Hooks.CreateContainer,
			s.Hooks.StartContainer, s.Hooks.Poststart, s.Hooks.Poststop} {
			for _, h := range list {
				if !filepath.IsAbs(h.Path) {
					return invalid("hook path %q is not absolute", h.Path)
				}
				if h.Timeout != nil && *h.Timeout <= 0 {
					return invalid("hook %s: timeout must be positive", h.Path)
				}
			}
		}
	}
	return nil
}

func validateProcess(p *specs.Process) error {
	if len(p.Args) == 0 {
		return invalid("process.args is empty")
	}
	if p.Cwd == "" {
		p.Cwd = "/"
	}
	if !filepath.IsAbs(p.Cwd) {
		return invalid("process.cwd %q is not absolute", p.Cwd)
	}
	for _, rl := range p.Rlimits {
		if _, ok := rlimitTypes[rl.Type]; !ok {
			return invalid("unknown rlimit %q", rl.Type)
		}
		if rl.Soft > rl.Hard {
			return invalid("rlimit %s: soft %d above hard %d", rl.Type, rl.Soft, rl.Hard)
		}
	}
	if p.Capabilities != nil {
		for _, set := range [][]string{p.Capabilities.Bounding, p.Capabilities.Effective, p.Capabilities.Inheritable,
			p.Capabilities.Permitted, p.Capabilities.Ambient} {
			for _, c := range set {
				if _, ok := capByName(c); !ok || !strings.HasPrefix(c, "CAP_") {
					return invalid("unknown capability %q", c)
				}
			}
		}
	}
	return nil
}

// pathOf returns the path of namespace typ in the spec, "" for a new one.
func pathOf(s *specs.Spec, typ specs.LinuxNamespaceType) string {
	for _, ns := range s.Linux.Namespaces {
		if ns.Type == typ {
			return ns.Path
		}
	}
	return ""
}

func hasNamespace(s *specs.Spec, typ specs.LinuxNamespaceType) bool {
	for _, ns := range s.Linux.Namespaces {
		if ns.Type == typ {
			return true
		}
	}
	return false
}

// checkNamespacePath makes sure a namespace path exists and is a namespace
// of the declared type (joining a uts namespace "as" a user namespace would
// otherwise succeed in the kernel's eyes, with setns given no type).
func checkNamespacePath(ns specs.LinuxNamespace) error {
	fd, err := unix.Open(ns.Path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return invalid("namespace %s path %s does not exist", ns.Type, ns.Path)
	}
	defer unix.Close(fd)
	got, err := unix.IoctlRetInt(fd, unix.NS_GET_NSTYPE)
	if err != nil {
		return invalid("namespace %s path %s is not a namespace", ns.Type, ns.Path)
	}
	if want := nsSetnsFlags[ns.Type]; want != 0 && got != want {
		return invalid("namespace %s path %s is a namespace of another type", ns.Type, ns.Path)
	}
	return nil
}
