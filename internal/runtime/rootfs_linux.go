package runtime

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// rootfsSetup prepares the container's mount namespace. It runs in the init,
// inside the new mount namespace, before pivot_root.
type rootfsSetup struct {
	cfg         *initConfig
	rootfs      string // absolute host path of the rootfs (visible until pivot_root)
	root        *os.File
	userns      bool // the container has its own user namespace: no mknod, locked flags
	cgroupPaths map[string]string
	newCgroupNS bool
	// hostNS: the container has no mount namespace of its own. Mounts land
	// in the host's namespace under the rootfs (delete removes them, see
	// unmountUnder), the host's propagation is left alone, and chroot
	// stands in for pivot_root, which would move the host's root.
	hostNS bool
	// waitCgroupDirs blocks until the parent has made the cgroup
	// directories that the cgroup mount binds; the cgroup mounts are done
	// last so the other mounts overlap that work.
	waitCgroupDirs func() error
	// procMount, when set, attaches a proc mount at target instead of
	// mount(2): the direct init's set-up runs outside the container's pid
	// namespace, and proc takes the pid namespace of its creator.
	procMount func(m *specs.Mount, opts mountOpts, target *os.File) error
}

func fdPath(f *os.File) string { return "/proc/self/fd/" + strconv.Itoa(int(f.Fd())) }

// prepare mounts everything the spec asks for under the rootfs.
func (s *rootfsSetup) prepare() error {
	if p := s.cfg.RootfsPropagation; p != "" {
		if _, ok := propagationTable[p]; !ok {
			return fmt.Errorf("unknown rootfsPropagation %q", p)
		}
	}
	// rslave first: the bind and pivot_root below need a parent that is
	// neither shared nor unbindable; the configured propagation is applied
	// to the new root after pivot_root.
	if !s.hostNS {
		if err := unix.Mount("", "/", "", unix.MS_SLAVE|unix.MS_REC, ""); err != nil {
			return fmt.Errorf("make / rslave: %w", err)
		}
	}
	// The rootfs must be a mount point of its own for pivot_root.
	if err := unix.Mount(s.rootfs, s.rootfs, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		return fmt.Errorf("bind rootfs %s: %w", s.rootfs, err)
	}
	root, err := os.OpenFile(s.rootfs, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open rootfs: %w", err)
	}
	s.root = root

	devIsBound := false
	var cgroupMounts []*specs.Mount
	for i := range s.cfg.Mounts {
		m := &s.cfg.Mounts[i]
		if filepath.Clean(m.Destination) == "/dev" && isBind(m) {
			devIsBound = true
		}
		if (m.Type == "cgroup" || m.Type == "cgroup2") && !isBind(m) {
			cgroupMounts = append(cgroupMounts, m)
			continue
		}
		if err := s.mount(m); err != nil {
			return fmt.Errorf("mount %s on %s (type %s): %w", m.Source, m.Destination, m.Type, err)
		}
	}
	if len(cgroupMounts) > 0 && s.waitCgroupDirs != nil {
		if err := s.waitCgroupDirs(); err != nil {
			return err
		}
	}
	for _, m := range cgroupMounts {
		if err := s.mount(m); err != nil {
			return fmt.Errorf("mount %s on %s (type %s): %w", m.Source, m.Destination, m.Type, err)
		}
	}
	if !devIsBound {
		if err := s.createDevices(); err != nil {
			return err
		}
		if err := s.devSymlinks(); err != nil {
			return err
		}
	}
	return nil
}

func isBind(m *specs.Mount) bool {
	if m.Type == "bind" {
		return true
	}
	for _, o := range m.Options {
		if o == "bind" || o == "rbind" {
			return true
		}
	}
	return false
}

// target resolves dest inside the rootfs without following symlinks out of
// it, creates it (a directory, or a file when file is true) and returns an
// O_PATH handle to it: mounting on /proc/self/fd/N of that handle cannot be
// redirected by a symlink swapped in after the check.
func (s *rootfsSetup) target(dest string, file bool) (*os.File, error) {
	if !filepath.IsAbs(dest) {
		dest = "/" + dest
	}
	if file {
		dir, err := mkdirAllIn(s.root, filepath.Dir(dest), 0o755)
		if err != nil {
			return nil, err
		}
		defer dir.Close()
		name := filepath.Base(dest)
		fd, err := unix.Openat(int(dir.Fd()), name, unix.O_CREAT|unix.O_NOFOLLOW|unix.O_CLOEXEC|unix.O_RDONLY, 0o644)
		if err != nil && !errors.Is(err, unix.EISDIR) && !errors.Is(err, unix.ELOOP) {
			return nil, fmt.Errorf("create mount point %s: %w", dest, err)
		}
		if err == nil {
			unix.Close(fd)
		}
		return openIn(s.root, dest)
	}
	return mkdirAllIn(s.root, dest, 0o755)
}

func (s *rootfsSetup) mount(m *specs.Mount) error {
	opts := parseMountOptions(m.Options)
	typ := m.Type
	bind := isBind(m)
	if bind {
		typ = ""
		opts.flags |= unix.MS_BIND
	}
	switch {
	case bind:
		return s.mountBind(m, opts)
	case typ == "cgroup" || typ == "cgroup2":
		return s.mountCgroup(m, opts)
	case typ == "":
		return fmt.Errorf("mount type is empty and options name no bind")
	}
	if !knownFSType(typ) {
		return fmt.Errorf("unknown or unsupported mount type %q", typ)
	}
	t, err := s.target(m.Destination, false)
	if err != nil {
		return err
	}
	defer t.Close()
	data := opts.dataString()
	flags := opts.flags &^ unix.MS_REMOUNT
	if typ == "proc" && s.procMount != nil {
		err = s.procMount(m, opts, t)
	} else {
		err = unix.Mount(m.Source, fdPath(t), typ, flags, data)
	}
	if err != nil && typ == "sysfs" && errors.Is(err, unix.EPERM) && s.userns {
		// A user namespace that does not own the network namespace may not
		// mount sysfs; bind the host's read-only instead, as runc does.
		err = unix.Mount("/sys", fdPath(t), "", unix.MS_BIND|unix.MS_REC, "")
		if err == nil {
			err = s.onMounted(m.Destination, func(p string) error { return remountBind(p, flags|unix.MS_RDONLY) })
		}
	}
	if err != nil && typ == "mqueue" && errors.Is(err, unix.EPERM) && s.userns {
		err = unix.Mount("/dev/mqueue", fdPath(t), "", unix.MS_BIND, "")
	}
	if err != nil {
		return err
	}
	if len(opts.propagation) == 0 {
		return nil
	}
	return s.onMounted(m.Destination, func(p string) error { return applyPropagation(p, opts.propagation) })
}

// onMounted runs fn on a fresh handle of dest. A handle opened before a mount
// refers to the directory underneath it, so remounts and propagation changes
// need one opened afterwards.
func (s *rootfsSetup) onMounted(dest string, fn func(path string) error) error {
	h, err := openIn(s.root, dest)
	if err != nil {
		return fmt.Errorf("reopen %s: %w", dest, err)
	}
	defer h.Close()
	return fn(fdPath(h))
}

// commonFSTypes need no look-up in /proc/filesystems.
var commonFSTypes = map[string]bool{
	"proc": true, "sysfs": true, "tmpfs": true, "devpts": true, "mqueue": true,
	"cgroup": true, "cgroup2": true, "overlay": true, "bind": true,
}

func knownFSType(t string) bool {
	if commonFSTypes[t] {
		return true
	}
	if strings.ContainsAny(t, "/ ") {
		return false
	}
	data, err := os.ReadFile("/proc/filesystems")
	if err != nil {
		return true // let mount(2) decide
	}
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) > 0 && f[len(f)-1] == t {
			return true
		}
	}
	return false
}

func (s *rootfsSetup) mountBind(m *specs.Mount, opts mountOpts) error {
	src := m.Source // made absolute by the parent
	fi, err := os.Stat(src)
	if err != nil {
		return fmt.Errorf("bind source: %w", err)
	}
	t, err := s.target(m.Destination, !fi.IsDir())
	if err != nil {
		return err
	}
	defer t.Close()
	target := fdPath(t)
	if err := unix.Mount(src, target, "", opts.flags&(unix.MS_BIND|unix.MS_REC), ""); err != nil {
		return err
	}
	// Per-mount flags on a bind only take effect on a remount. Flags the
	// kernel locked on the source (nosuid/nodev/noexec in a user namespace)
	// must be carried over or the remount is refused.
	extra := opts.flags &^ (unix.MS_BIND | unix.MS_REC | unix.MS_REMOUNT)
	return s.onMounted(m.Destination, func(target string) error {
		if extra != 0 || opts.clear != 0 {
			if err := remountBind(target, extra); err != nil {
				return err
			}
		}
		if opts.recursiveRO {
			attr := unix.MountAttr{Attr_set: unix.MOUNT_ATTR_RDONLY}
			if err := unix.MountSetattr(-1, target, unix.AT_RECURSIVE, &attr); err != nil {
				return fmt.Errorf("make read-only recursively: %w", err)
			}
		}
		return applyPropagation(target, opts.propagation)
	})
}

// remountBind changes the per-mount flags of a bind mount at target, keeping
// the flags the kernel would refuse to drop.
func remountBind(target string, flags uintptr) error {
	var st unix.Statfs_t
	if err := unix.Statfs(target, &st); err == nil {
		locked := uintptr(st.Flags) & (unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC | unix.MS_RDONLY)
		if flags&unix.MS_RDONLY == 0 {
			locked &^= unix.MS_RDONLY
		}
		flags |= locked
	}
	if err := unix.Mount("", target, "", unix.MS_REMOUNT|unix.MS_BIND|flags, ""); err != nil {
		return fmt.Errorf("remount with flags %#x: %w", flags, err)
	}
	return nil
}

func applyPropagation(target string, props []uintptr) error {
	for _, p := range props {
		if err := unix.Mount("", target, "", p, ""); err != nil {
			return fmt.Errorf("set propagation %#x: %w", p, err)
		}
	}
	return nil
}

// mountCgroup gives the container its cgroup view. On cgroup v2 this is a
// cgroup2 mount (its root is the container's cgroup when it has a cgroup
// namespace); on v1 a tmpfs with one directory per hierarchy, each a bind of
// the container's own cgroup so that it sees its limits and nothing above.
func (s *rootfsSetup) mountCgroup(m *specs.Mount, opts mountOpts) error {
	t, err := s.target(m.Destination, false)
	if err != nil {
		return err
	}
	defer t.Close()
	target := fdPath(t)
	flags := opts.flags &^ (unix.MS_REMOUNT | unix.MS_BIND)
	if isCgroup2Root("/sys/fs/cgroup") {
		if s.newCgroupNS {
			return unix.Mount("cgroup2", target, "cgroup2", flags, "")
		}
		src := "/sys/fs/cgroup"
		if p, ok := s.cgroupPaths[""]; ok {
			src = p
		}
		if err := unix.Mount(src, target, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
			return err
		}
		return s.onMounted(m.Destination, func(p string) error { return remountBind(p, flags) })
	}
	if err := unix.Mount("tmpfs", target, "tmpfs", flags&^unix.MS_RDONLY, "mode=755"); err != nil {
		return err
	}
	tmp, err := openIn(s.root, m.Destination) // the new tmpfs, not the dir below it
	if err != nil {
		return err
	}
	defer tmp.Close()
	names := make([]string, 0, len(s.cgroupPaths))
	for name := range s.cgroupPaths {
		if name != "" && !strings.Contains(name, "/") {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	for _, name := range names {
		if err := bindInto(int(tmp.Fd()), name, s.cgroupPaths[name]); err != nil {
			return fmt.Errorf("cgroup %s: %w", name, err)
		}
	}
	// One mount_setattr makes the tmpfs and every bind below it nosuid,
	// nodev, noexec (and read-only as asked) instead of a remount each.
	attr := unix.MountAttr{Attr_set: unix.MOUNT_ATTR_NOSUID | unix.MOUNT_ATTR_NODEV | unix.MOUNT_ATTR_NOEXEC}
	if flags&unix.MS_RDONLY != 0 {
		attr.Attr_set |= unix.MOUNT_ATTR_RDONLY
	}
	err = unix.MountSetattr(int(tmp.Fd()), "", unix.AT_EMPTY_PATH|unix.AT_RECURSIVE, &attr)
	if !errors.Is(err, unix.ENOSYS) {
		return err
	}
	// Before Linux 5.12: remount one by one.
	for _, name := range names {
		dir := filepath.Join(m.Destination, name)
		if err := s.onMounted(dir, func(p string) error {
			return remountBind(p, flags|unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC)
		}); err != nil {
			return fmt.Errorf("cgroup %s: %w", name, err)
		}
	}
	if flags&unix.MS_RDONLY != 0 {
		// The tmpfs itself: a plain remount (not a bind remount) of it.
		return s.onMounted(m.Destination, func(p string) error {
			return unix.Mount("", p, "", unix.MS_REMOUNT|flags, "mode=755")
		})
	}
	return nil
}

func isCgroup2Root(path string) bool {
	var st unix.Statfs_t
	return unix.Statfs(path, &st) == nil && st.Type == unix.CGROUP2_SUPER_MAGIC
}

type devNode struct {
	path         string
	typ          uint32
	major, minor uint32
	mode         uint32
}

var defaultDevices = []devNode{
	{"/dev/null", unix.S_IFCHR, 1, 3, 0o666},
	{"/dev/zero", unix.S_IFCHR, 1, 5, 0o666},
	{"/dev/full", unix.S_IFCHR, 1, 7, 0o666},
	{"/dev/random", unix.S_IFCHR, 1, 8, 0o666},
	{"/dev/urandom", unix.S_IFCHR, 1, 9, 0o666},
	{"/dev/tty", unix.S_IFCHR, 5, 0, 0o666},
}

func (s *rootfsSetup) createDevices() error {
	devs := make([]devNode, 0, len(defaultDevices)+len(s.cfg.Devices))
	devs = append(devs, defaultDevices...)
	type owner struct{ uid, gid int }
	owners := map[string]owner{}
	for _, d := range s.cfg.Devices {
		var typ uint32
		switch d.Type {
		case "c", "u":
			typ = unix.S_IFCHR
		case "b":
			typ = unix.S_IFBLK
		case "p":
			typ = unix.S_IFIFO
		default:
			return fmt.Errorf("device %s: unknown type %q", d.Path, d.Type)
		}
		mode := uint32(0o666)
		if d.FileMode != nil {
			mode = uint32(*d.FileMode) & 0o7777
		}
		devs = append(devs, devNode{d.Path, typ, uint32(d.Major), uint32(d.Minor), mode})
		o := owner{-1, -1}
		if d.UID != nil {
			o.uid = int(*d.UID)
		}
		if d.GID != nil {
			o.gid = int(*d.GID)
		}
		owners[d.Path] = o
	}
	old := unix.Umask(0)
	defer unix.Umask(old)
	for _, d := range devs {
		if err := s.createDevice(d); err != nil {
			return fmt.Errorf("create device %s: %w", d.path, err)
		}
		if o, ok := owners[d.path]; ok && (o.uid >= 0 || o.gid >= 0) {
			p, err := openIn(s.root, d.path)
			if err == nil {
				err = unix.Fchownat(int(p.Fd()), "", o.uid, o.gid, unix.AT_EMPTY_PATH)
				p.Close()
			}
			if err != nil {
				return fmt.Errorf("chown device %s: %w", d.path, err)
			}
		}
	}
	return nil
}

func (s *rootfsSetup) createDevice(d devNode) error {
	dir, err := mkdirAllIn(s.root, filepath.Dir(d.path), 0o755)
	if err != nil {
		return err
	}
	defer dir.Close()
	name := filepath.Base(d.path)
	if s.userns {
		// mknod is not allowed in a user namespace: bind the host's node.
		fd, err := unix.Openat(int(dir.Fd()), name, unix.O_CREAT|unix.O_NOFOLLOW|unix.O_CLOEXEC|unix.O_RDONLY, 0o644)
		if err != nil && !errors.Is(err, unix.EEXIST) {
			return err
		}
		if err == nil {
			unix.Close(fd)
		}
		t, err := openIn(s.root, d.path)
		if err != nil {
			return err
		}
		defer t.Close()
		return unix.Mount(d.path, fdPath(t), "", unix.MS_BIND, "")
	}
	_ = unix.Unlinkat(int(dir.Fd()), name, 0)
	return unix.Mknodat(int(dir.Fd()), name, d.typ|d.mode, int(unix.Mkdev(d.major, d.minor)))
}

func (s *rootfsSetup) devSymlinks() error {
	links := [][2]string{
		{"/proc/self/fd", "/dev/fd"},
		{"/proc/self/fd/0", "/dev/stdin"},
		{"/proc/self/fd/1", "/dev/stdout"},
		{"/proc/self/fd/2", "/dev/stderr"},
	}
	if _, err := os.Stat("/proc/kcore"); err == nil {
		links = append(links, [2]string{"/proc/kcore", "/dev/core"})
	}
	// With a devpts mounted at /dev/pts the container's ptmx is pts/ptmx.
	for _, m := range s.cfg.Mounts {
		if filepath.Clean(m.Destination) == "/dev/pts" && m.Type == "devpts" {
			links = append(links, [2]string{"pts/ptmx", "/dev/ptmx"})
		}
	}
	dev, err := mkdirAllIn(s.root, "/dev", 0o755)
	if err != nil {
		return err
	}
	defer dev.Close()
	for _, l := range links {
		name := filepath.Base(l[1])
		if name == "ptmx" {
			_ = unix.Unlinkat(int(dev.Fd()), name, 0)
		}
		if err := unix.Symlinkat(l[0], int(dev.Fd()), name); err != nil && !errors.Is(err, unix.EEXIST) {
			return fmt.Errorf("symlink %s: %w", l[1], err)
		}
	}
	return nil
}

// pivot makes the rootfs the root: pivot_root(".", ".") stacks the old root
// on top of the new one, from where it is detached without a temp dir.
func (s *rootfsSetup) pivot() error {
	if err := unix.Fchdir(int(s.root.Fd())); err != nil {
		return fmt.Errorf("chdir to rootfs: %w", err)
	}
	if s.hostNS {
		if err := unix.Chroot("."); err != nil {
			return fmt.Errorf("chroot: %w", err)
		}
		if err := unix.Chdir("/"); err != nil {
			return fmt.Errorf("chdir /: %w", err)
		}
		s.root.Close()
		s.root = nil
		return nil
	}
	if err := unix.PivotRoot(".", "."); err != nil {
		return fmt.Errorf("pivot_root: %w", err)
	}
	// Keep unmount events of the old root from reaching the host.
	if err := unix.Mount("", ".", "", unix.MS_SLAVE|unix.MS_REC, ""); err != nil {
		return fmt.Errorf("make old root slave: %w", err)
	}
	if err := unix.Unmount(".", unix.MNT_DETACH); err != nil {
		return fmt.Errorf("detach old root: %w", err)
	}
	if err := unix.Chdir("/"); err != nil {
		return fmt.Errorf("chdir /: %w", err)
	}
	s.root.Close()
	s.root = nil
	if p := s.cfg.RootfsPropagation; p != "" {
		if err := unix.Mount("", "/", "", propagationTable[p], ""); err != nil {
			return fmt.Errorf("make / %s: %w", p, err)
		}
	}
	return nil
}

// finish applies what must happen after pivot_root: masked and read-only
// paths, a read-only root.
func (s *rootfsSetup) finish() error {
	for _, p := range s.cfg.ReadonlyPaths {
		if err := readonlyPath(p); err != nil {
			return fmt.Errorf("readonly path %s: %w", p, err)
		}
	}
	for _, p := range s.cfg.MaskedPaths {
		if err := maskPath(p); err != nil {
			return fmt.Errorf("mask path %s: %w", p, err)
		}
	}
	if s.cfg.ReadonlyRoot {
		if err := remountBind("/", unix.MS_RDONLY); err != nil {
			return fmt.Errorf("make root read-only: %w", err)
		}
	}
	return nil
}

func readonlyPath(p string) error {
	if err := unix.Mount(p, p, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		if errors.Is(err, unix.ENOENT) {
			return nil
		}
		return err
	}
	return remountBind(p, unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC)
}

func maskPath(p string) error {
	err := unix.Mount("/dev/null", p, "", unix.MS_BIND, "")
	if errors.Is(err, unix.ENOTDIR) {
		err = unix.Mount("tmpfs", p, "tmpfs", unix.MS_RDONLY, "size=0k")
	}
	if err != nil && !errors.Is(err, unix.ENOENT) {
		return err
	}
	return nil
}

// unmountUnder detaches every mount at or below dir, deepest first: the
// clean-up of a container that mounted into the host's namespace.
func unmountUnder(dir string) error {
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return err
	}
	var points []string
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) < 5 {
			continue
		}
		mp := unescapeMountinfo(f[4])
		if mp == dir || strings.HasPrefix(mp, dir+"/") {
			points = append(points, mp)
		}
	}
	sort.Slice(points, func(i, j int) bool { return len(points[i]) > len(points[j]) })
	var first error
	for _, p := range points {
		if err := unix.Unmount(p, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) && first == nil {
			first = fmt.Errorf("unmount %s: %w", p, err)
		}
	}
	return first
}

// unescapeMountinfo undoes the octal escapes (\040 for a space) of mountinfo.
func unescapeMountinfo(s string) string {
	if !strings.Contains(s, "\\") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// bindInto makes directory name under the directory dirfd and bind-mounts
// src on it.
func bindInto(dirfd int, name, src string) error {
	if err := unix.Mkdirat(dirfd, name, 0o755); err != nil && !errors.Is(err, unix.EEXIST) {
		return err
	}
	fd, err := unix.Openat(dirfd, name, unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	return unix.Mount(src, "/proc/self/fd/"+strconv.Itoa(fd), "", unix.MS_BIND, "")
}
