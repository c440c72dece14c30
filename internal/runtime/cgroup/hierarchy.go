package cgroup

import (
	"fmt"
	"path/filepath"
	"strings"

	"github.com/moby/sys/mountinfo"
	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/internal/errdefs"
)

const (
	// defaultRoot is where every distribution mounts the cgroup filesystems.
	defaultRoot = "/sys/fs/cgroup"
	// hybridMount is where systemd mounts cgroup2 next to the v1 hierarchies.
	// opencontainers/cgroups' v1 manager joins the cgroup2 tree only at this
	// exact place, so berth recognises hybrid mode only there too.
	hybridMount = "/sys/fs/cgroup/unified"
	// systemdHierarchy is the named v1 hierarchy systemd tracks services in.
	systemdHierarchy = "name=systemd"
)

// isV1Subsystem reports whether name is a v1 controller (or the one named
// hierarchy) berth knows. The names are the keys opencontainers/cgroups' fs
// manager uses in its path map.
func isV1Subsystem(name string) bool {
	switch name {
	case "cpu", "cpuacct", "cpuset", "memory", "devices", "freezer", "blkio", "pids",
		"hugetlb", "net_cls", "net_prio", "perf_event", "rdma", "misc", systemdHierarchy:
		return true
	}
	return false
}

// hierarchy says where the cgroup filesystems are mounted. It is read once
// per Manager by detectHierarchy and kept in the Manager, never in a package
// variable: a runtime process builds one Manager, and tests build managers
// over other mounts.
type hierarchy struct {
	// unified is the cgroup2 mount point when the host runs cgroup v2 only.
	unified string
	// v1 maps a v1 subsystem name ("cpu", "memory", "name=systemd") to the
	// mount point of its hierarchy.
	v1 map[string]string
	// hybrid is the cgroup2 mount point next to the v1 hierarchies, or "".
	hybrid string
}

func (h hierarchy) isV2() bool { return h.unified != "" }

// detectHierarchy finds the cgroup mounts. On a cgroup v2 host one statfs
// answers; only v1 and hybrid hosts pay for reading mountinfo.
func detectHierarchy() (hierarchy, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(defaultRoot, &st); err == nil && st.Type == unix.CGROUP2_SUPER_MAGIC {
		return hierarchy{unified: defaultRoot}, nil
	}
	mounts, err := mountinfo.GetMounts(mountinfo.FSTypeFilter("cgroup", "cgroup2"))
	if err != nil {
		return hierarchy{}, fmt.Errorf("read cgroup mounts: %w", err)
	}
	return hierarchyFromMounts(mounts)
}

// hierarchyFromMounts turns the cgroup entries of mountinfo into a
// hierarchy. The first mount of each subsystem wins, as with runc.
func hierarchyFromMounts(mounts []*mountinfo.Info) (hierarchy, error) {
	h := hierarchy{v1: map[string]string{}}
	var cgroup2 string
	sawHybrid := false
	for _, m := range mounts {
		switch m.FSType {
		case "cgroup2":
			if cgroup2 == "" {
				cgroup2 = m.Mountpoint
			}
			sawHybrid = sawHybrid || m.Mountpoint == hybridMount
		case "cgroup":
			for opt := range strings.SplitSeq(m.VFSOptions, ",") {
				if !isV1Subsystem(opt) {
					continue
				}
				if _, seen := h.v1[opt]; !seen {
					h.v1[opt] = m.Mountpoint
				}
			}
		}
	}
	switch {
	case len(h.v1) > 0:
		if sawHybrid {
			h.hybrid = hybridMount
		}
		return h, nil
	case cgroup2 != "":
		return hierarchy{unified: cgroup2}, nil
	default:
		return hierarchy{}, fmt.Errorf("no cgroup filesystem is mounted: %w", errdefs.ErrFailedPrecondition)
	}
}

// innerPath turns the OCI linux.cgroupsPath into the cgroup's path inside
// each hierarchy. Relative paths are taken from the root of the hierarchy,
// the same as absolute ones. runc's cgroupfs driver nests relative paths
// under its own cgroup instead; berth does not, because the runtime is
// started from shims and daemons whose own cgroup is not a stable place.
func innerPath(cgroupsPath, id string) (string, error) {
	if cgroupsPath == "" {
		if id == "" || strings.ContainsAny(id, "/\x00") || id == "." || id == ".." {
			return "", fmt.Errorf("container id %q cannot name a cgroup: %w", id, errdefs.ErrInvalidArgument)
		}
		return "/berth/" + id, nil
	}
	if strings.ContainsRune(cgroupsPath, 0) {
		return "", fmt.Errorf("cgroupsPath %q contains a NUL byte: %w", cgroupsPath, errdefs.ErrInvalidArgument)
	}
	if !strings.HasPrefix(cgroupsPath, "/") && strings.Count(cgroupsPath, ":") == 2 {
		return "", fmt.Errorf("cgroupsPath %q is in systemd's slice:prefix:name form, which needs the systemd cgroup driver; berth only has the cgroupfs driver: %w",
			cgroupsPath, errdefs.ErrNotImplemented)
	}
	// Cleaning from "/" keeps ".." from climbing out of the hierarchy.
	p := filepath.Clean("/" + cgroupsPath)
	if p == "/" {
		return "", fmt.Errorf("cgroupsPath %q names the root cgroup, which a container cannot own: %w", cgroupsPath, errdefs.ErrInvalidArgument)
	}
	return p, nil
}
