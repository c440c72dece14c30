package engine

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"

	"github.com/moby/moby/api/types/blkiodev"
	"github.com/moby/moby/api/types/container"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/internal/errdefs"
)

// deviceRule is docker's --device-cgroup-rule syntax: "c 1:3 rwm", with *
// for any major or minor.
var deviceRule = sync.OnceValue(func() *regexp.Regexp {
	return regexp.MustCompile(`^([acb]) ([0-9]+|\*):([0-9]+|\*) ([rwm]{1,3})$`)
})

// devices resolves --device mappings (a device node, or a directory of
// them, mapped recursively as docker does) into the spec's device nodes
// and the cgroup rules that allow them, plus --device-cgroup-rule.
func devices(hc *container.HostConfig) ([]specs.LinuxDevice, []specs.LinuxDeviceCgroup, error) {
	var devs []specs.LinuxDevice
	var rules []specs.LinuxDeviceCgroup
	for _, m := range hc.Devices {
		perms := m.CgroupPermissions
		if perms == "" {
			perms = "rwm"
		}
		if strings.Trim(perms, "rwm") != "" {
			return nil, nil, fmt.Errorf("invalid device permissions %q for %s: %w", perms, m.PathOnHost, errdefs.ErrInvalidArgument)
		}
		dst := m.PathInContainer
		if dst == "" {
			dst = m.PathOnHost
		}
		add := func(host, inCtr string) error {
			d, err := deviceFromPath(host, inCtr)
			if err != nil {
				return err
			}
			devs = append(devs, d)
			major, minor := d.Major, d.Minor
			rules = append(rules, specs.LinuxDeviceCgroup{Allow: true, Type: d.Type, Major: &major, Minor: &minor, Access: perms})
			return nil
		}
		fi, err := os.Stat(m.PathOnHost)
		if err != nil {
			return nil, nil, fmt.Errorf("error gathering device information while adding custom device %q: %v: %w", m.PathOnHost, err, errdefs.ErrInvalidArgument)
		}
		if !fi.IsDir() {
			if err := add(m.PathOnHost, dst); err != nil {
				return nil, nil, err
			}
			continue
		}
		err = filepath.WalkDir(m.PathOnHost, func(p string, e fs.DirEntry, err error) error {
			if err != nil || e.IsDir() || e.Type()&(fs.ModeDevice|fs.ModeCharDevice) == 0 {
				return nil
			}
			return add(p, filepath.Join(dst, strings.TrimPrefix(p, m.PathOnHost)))
		})
		if err != nil {
			return nil, nil, err
		}
	}
	for _, r := range hc.DeviceCgroupRules {
		g := deviceRule().FindStringSubmatch(r)
		if g == nil {
			return nil, nil, fmt.Errorf("invalid device cgroup format '%s': %w", r, errdefs.ErrInvalidArgument)
		}
		rule := specs.LinuxDeviceCgroup{Allow: true, Type: g[1], Access: g[4]}
		if g[2] != "*" {
			v, _ := strconv.ParseInt(g[2], 10, 64)
			rule.Major = &v
		}
		if g[3] != "*" {
			v, _ := strconv.ParseInt(g[3], 10, 64)
			rule.Minor = &v
		}
		rules = append(rules, rule)
	}
	return devs, rules, nil
}

func deviceFromPath(host, inCtr string) (specs.LinuxDevice, error) {
	var st unix.Stat_t
	if err := unix.Stat(host, &st); err != nil {
		return specs.LinuxDevice{}, fmt.Errorf("error gathering device information while adding custom device %q: %v: %w", host, err, errdefs.ErrInvalidArgument)
	}
	var typ string
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFCHR:
		typ = "c"
	case unix.S_IFBLK:
		typ = "b"
	default:
		return specs.LinuxDevice{}, fmt.Errorf("error gathering device information while adding custom device %q: not a device node: %w", host, errdefs.ErrInvalidArgument)
	}
	mode := fs.FileMode(st.Mode & 0o777)
	uid, gid := st.Uid, st.Gid
	return specs.LinuxDevice{Path: inCtr, Type: typ, Major: int64(unix.Major(uint64(st.Rdev))), Minor: int64(unix.Minor(uint64(st.Rdev))),
		FileMode: &mode, UID: &uid, GID: &gid}, nil
}

// blockIO turns hc's block I/O weights and throttles into the spec's,
// naming devices by their numbers as the cgroup files do.
func blockIO(hc *container.HostConfig) (*specs.LinuxBlockIO, error) {
	if hc.BlkioWeight == 0 && len(hc.BlkioWeightDevice)+len(hc.BlkioDeviceReadBps)+len(hc.BlkioDeviceWriteBps)+
		len(hc.BlkioDeviceReadIOps)+len(hc.BlkioDeviceWriteIOps) == 0 {
		return nil, nil
	}
	b := &specs.LinuxBlockIO{}
	if hc.BlkioWeight != 0 {
		w := hc.BlkioWeight
		b.Weight = &w
	}
	for _, d := range hc.BlkioWeightDevice {
		major, minor, err := blockDevice(d.Path)
		if err != nil {
			return nil, err
		}
		w := d.Weight
		wd := specs.LinuxWeightDevice{Weight: &w}
		wd.Major, wd.Minor = major, minor
		b.WeightDevice = append(b.WeightDevice, wd)
	}
	for _, t := range []struct {
		in  []*blkiodev.ThrottleDevice
		out *[]specs.LinuxThrottleDevice
	}{
		{hc.BlkioDeviceReadBps, &b.ThrottleReadBpsDevice}, {hc.BlkioDeviceWriteBps, &b.ThrottleWriteBpsDevice},
		{hc.BlkioDeviceReadIOps, &b.ThrottleReadIOPSDevice}, {hc.BlkioDeviceWriteIOps, &b.ThrottleWriteIOPSDevice},
	} {
		for _, d := range t.in {
			major, minor, err := blockDevice(d.Path)
			if err != nil {
				return nil, err
			}
			td := specs.LinuxThrottleDevice{Rate: d.Rate}
			td.Major, td.Minor = major, minor
			*t.out = append(*t.out, td)
		}
	}
	return b, nil
}

func blockDevice(path string) (int64, int64, error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFBLK {
		return 0, 0, fmt.Errorf("%s is not a block device: %w", path, errdefs.ErrInvalidArgument)
	}
	return int64(unix.Major(uint64(st.Rdev))), int64(unix.Minor(uint64(st.Rdev))), nil
}
