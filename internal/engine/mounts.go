package engine

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"

	securejoin "github.com/cyphar/filepath-securejoin"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/mount"
	"github.com/moby/sys/mountinfo"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/internal/errdefs"
	"github.com/berth-dev/berth/internal/snapshot"
	"github.com/berth-dev/berth/internal/volume"
)

// MountPoint is one of a container's mounts (binds, volumes, images, and
// tmpfs from HostConfig.Mounts; --tmpfs stays with internal/spec), fixed at create and kept in the container's record:
// the volume references it holds survive a daemon restart with it. The
// exported fields are docker's inspect "Mounts" entry.
type MountPoint struct {
	Type        mount.Type
	Name        string `json:",omitempty"`
	Source      string `json:",omitempty"`
	Destination string
	Driver      string `json:",omitempty"`
	Mode        string `json:",omitempty"`
	RW          bool
	Propagation mount.Propagation `json:",omitempty"`

	// Named: the user named the volume (docker's spec source), so rm -v
	// keeps it; anonymous volumes go with their container.
	Named bool `json:",omitempty"`
	// CopyData: fill the volume from the image's content at Destination
	// on first use, if the volume is empty.
	CopyData bool `json:",omitempty"`
	// CreateSource: a -v bind whose missing source directory is made at
	// start, as docker does (--mount refuses a missing source).
	CreateSource bool `json:",omitempty"`
	// TmpfsData is a tmpfs mount's options (size=…,mode=…).
	TmpfsData string `json:",omitempty"`
	// Subpath is --mount volume-subpath (or image-subpath): the directory
	// of the volume (image) mounted instead of its root; it must exist.
	Subpath string `json:",omitempty"`
	// ImageID and SnapshotKey: an image mount's image and the read-only
	// view of it made at create (removed with the container).
	ImageID     string `json:",omitempty"`
	SnapshotKey string `json:",omitempty"`
	// NonRecursive: bind-recursive=disabled, the submounts of the source
	// are not bound.
	NonRecursive bool `json:",omitempty"`
	// ReadOnlyTopOnly: bind-recursive=writable, read-only but the
	// submounts keep their own flags (docker before 25). Otherwise a
	// read-only bind or volume is read-only through all its submounts.
	ReadOnlyTopOnly bool `json:",omitempty"`
}

// API returns the inspect form.
func (m MountPoint) API() container.MountPoint {
	return container.MountPoint{
		Type: m.Type, Name: m.Name, Source: m.Source, Destination: m.Destination,
		Driver: m.Driver, Mode: m.Mode, RW: m.RW, Propagation: m.Propagation,
	}
}

func invalidSpec(raw string) error { return specErr(raw, errdefs.ErrInvalidArgument) }

// specErr prefixes a -v parse error with the spec, docker's shape.
func specErr(raw string, err error) error {
	return fmt.Errorf("invalid volume specification: '%s': %w", raw, err)
}

type mountConfigError struct {
	typ mount.Type
	msg string
}

func (e *mountConfigError) Error() string {
	return fmt.Sprintf("invalid mount config for type %q: %s", e.typ, e.msg)
}
func (e *mountConfigError) Unwrap() error { return errdefs.ErrInvalidArgument }

func mountErr(t mount.Type, format string, args ...any) error {
	return &mountConfigError{typ: t, msg: fmt.Sprintf(format, args...)}
}

var propagations = map[string]bool{
	"private": true, "rprivate": true, "shared": true, "rshared": true, "slave": true, "rslave": true,
}

// validMode is docker's check of a -v mode list: known words, at most one
// of each kind.
func validMode(mode string) bool {
	if mode == "" {
		return true
	}
	counts := map[string]int{}
	for _, o := range strings.Split(mode, ",") {
		var kind string
		switch {
		case o == "ro" || o == "rw":
			kind = "rw"
		case o == "z" || o == "Z":
			kind = "label"
		case propagations[o]:
			kind = "propagation"
		case o == "nocopy":
			kind = "copy"
		case o == "consistent" || o == "cached" || o == "delegated":
			kind = "consistency"
		default:
			return false
		}
		counts[kind]++
		if counts[kind] > 1 {
			return false
		}
	}
	return true
}

func modeHas(mode, word string) bool { return slices.Contains(strings.Split(mode, ","), word) }

func modePropagation(mode string) mount.Propagation {
	for _, o := range strings.Split(mode, ",") {
		if propagations[o] {
			return mount.Propagation(o)
		}
	}
	return ""
}

func checkTarget(t mount.Type, target string) error {
	if target == "" {
		return mountErr(t, "field Target must not be empty")
	}
	if path.Clean(target) == "/" {
		return mountErr(t, "invalid specification: destination can't be '/'")
	}
	if !path.IsAbs(target) {
		return mountErr(t, "invalid mount path: '%s' mount path must be absolute", target)
	}
	return nil
}

// parseVolumeSpec parses docker's -v (HostConfig.Binds) syntax:
// [SOURCE:]TARGET[:MODE], a source that is an absolute path being a bind
// and anything else a volume name.
func parseVolumeSpec(raw string) (MountPoint, error) {
	arr := strings.SplitN(raw, ":", 4)
	if arr[0] == "" {
		return MountPoint{}, invalidSpec(raw)
	}
	var src, dst, mode string
	switch len(arr) {
	case 1:
		dst = arr[0]
	case 2:
		if validMode(arr[1]) {
			return MountPoint{}, invalidSpec(raw) // a target and a mode, no source
		}
		src, dst = arr[0], arr[1]
	case 3:
		src, dst, mode = arr[0], arr[1], arr[2]
	default:
		return MountPoint{}, invalidSpec(raw)
	}
	if !validMode(mode) {
		return MountPoint{}, fmt.Errorf("invalid mode: %s: %w", mode, errdefs.ErrInvalidArgument)
	}
	mp := MountPoint{Type: mount.TypeVolume, Destination: dst, Mode: mode, RW: !modeHas(mode, "ro")}
	if path.IsAbs(src) {
		mp.Type = mount.TypeBind
	}
	if err := checkTarget(mp.Type, dst); err != nil {
		return MountPoint{}, specErr(raw, err)
	}
	mp.Destination = path.Clean(dst)
	switch mp.Type {
	case mount.TypeBind:
		mp.Source = filepath.Clean(src)
		mp.Propagation = modePropagation(mode)
		if mp.Propagation == "" {
			mp.Propagation = mount.PropagationRPrivate
		}
		mp.CreateSource = true
	case mount.TypeVolume:
		if modePropagation(mode) != "" {
			return MountPoint{}, specErr(raw, mountErr(mount.TypeVolume, "field BindOptions must not be specified"))
		}
		mp.Name, mp.Named = src, src != ""
		mp.CopyData = !modeHas(mode, "nocopy")
		if mp.Mode == "" && mp.Named {
			mp.Mode = "z" // docker's default label mode for local volumes
		}
	}
	return mp, nil
}

// tmpfsData is docker's conversion of tmpfs options to mount data.
func tmpfsData(o *mount.TmpfsOptions, ro bool) (string, error) {
	var out []string
	if ro {
		out = append(out, "ro")
	}
	if o == nil {
		return strings.Join(out, ","), nil
	}
	if o.Mode != 0 {
		out = append(out, fmt.Sprintf("mode=%o", o.Mode))
	}
	if size := o.SizeBytes; size != 0 {
		suffix := ""
		for _, u := range []struct {
			s string
			n int64
		}{{"g", 1 << 30}, {"m", 1 << 20}, {"k", 1 << 10}} {
			if size%u.n == 0 {
				size, suffix = size/u.n, u.s
				break
			}
		}
		out = append(out, fmt.Sprintf("size=%d%s", size, suffix))
	}
	for _, opt := range o.Options {
		if len(opt) < 1 || len(opt) > 2 {
			return "", errors.New("invalid option array length")
		}
		if opt[0] != "exec" && opt[0] != "noexec" {
			return "", errors.New("invalid option: " + opt[0])
		}
		out = append(out, strings.Join(opt, "="))
	}
	return strings.Join(out, ","), nil
}

// parseMount checks one HostConfig.Mounts entry (--mount) as docker does.
func parseMount(m mount.Mount) (MountPoint, error) {
	t := m.Type
	switch t {
	case mount.TypeBind, mount.TypeVolume, mount.TypeTmpfs, mount.TypeImage:
	case mount.TypeNamedPipe, mount.TypeCluster:
		return MountPoint{}, fmt.Errorf("mount type %q is not supported: %w", t, errdefs.ErrNotImplemented)
	default:
		return MountPoint{}, mountErr(t, "mount type unknown")
	}
	if err := checkTarget(t, m.Target); err != nil {
		return MountPoint{}, err
	}
	for _, x := range []struct {
		field string
		set   bool
	}{
		{"BindOptions", t != mount.TypeBind && m.BindOptions != nil},
		{"VolumeOptions", t != mount.TypeVolume && m.VolumeOptions != nil},
		{"ImageOptions", t != mount.TypeImage && m.ImageOptions != nil},
		{"TmpfsOptions", t != mount.TypeTmpfs && m.TmpfsOptions != nil},
	} {
		if x.set {
			return MountPoint{}, mountErr(t, "field %s must not be specified", x.field)
		}
	}
	mp := MountPoint{Type: t, Destination: path.Clean(m.Target), RW: !m.ReadOnly}
	switch t {
	case mount.TypeBind:
		if m.Source == "" {
			return MountPoint{}, mountErr(t, "field Source must not be empty")
		}
		if !path.IsAbs(m.Source) {
			return MountPoint{}, mountErr(t, "invalid mount path: '%s' mount path must be absolute", m.Source)
		}
		mp.Source = filepath.Clean(m.Source)
		mp.Propagation = mount.PropagationRPrivate
		if bo := m.BindOptions; bo != nil {
			if bo.Propagation != "" {
				if !propagations[string(bo.Propagation)] {
					return MountPoint{}, mountErr(t, "invalid propagation mode: %s", bo.Propagation)
				}
				mp.Propagation = bo.Propagation
			}
			mp.CreateSource = bo.CreateMountpoint
			mp.NonRecursive = bo.NonRecursive
			mp.ReadOnlyTopOnly = bo.ReadOnlyNonRecursive
			if bo.ReadOnlyForceRecursive && bo.Propagation != "" && bo.Propagation != mount.PropagationRPrivate {
				return MountPoint{}, mountErr(t, "BindOptions.ReadOnlyForceRecursive requires BindOptions.Propagation to be 'rprivate'")
			}
		}
		if _, err := os.Stat(mp.Source); err != nil && !mp.CreateSource {
			if errors.Is(err, os.ErrNotExist) {
				return MountPoint{}, mountErr(t, "bind source path does not exist: %s", mp.Source)
			}
			return MountPoint{}, mountErr(t, "%v", err)
		}
	case mount.TypeVolume:
		mp.Name, mp.Named = m.Source, m.Source != ""
		mp.CopyData = true
		mp.Mode = "z"
		if vo := m.VolumeOptions; vo != nil {
			if vo.Subpath != "" {
				if m.Source == "" {
					return MountPoint{}, mountErr(t, "must not set Subpath when using anonymous volumes")
				}
				if !filepath.IsLocal(vo.Subpath) {
					return MountPoint{}, mountErr(t, "subpath must be a relative path within the volume")
				}
				mp.Subpath = filepath.Clean(vo.Subpath)
			}
			mp.CopyData = !vo.NoCopy
			if dc := vo.DriverConfig; dc != nil && dc.Name != "" && dc.Name != volume.DefaultDriver {
				return MountPoint{}, fmt.Errorf("error looking up volume plugin %s: plugin %q not found: %w", dc.Name, dc.Name, errdefs.ErrInvalidArgument)
			}
		}
	case mount.TypeImage:
		if m.Source == "" {
			return MountPoint{}, mountErr(t, "field Source must not be empty")
		}
		mp.Source, mp.RW = m.Source, false // an image is mounted read-only
		mp.Propagation = mount.PropagationRPrivate
		if io := m.ImageOptions; io != nil && io.Subpath != "" {
			if !filepath.IsLocal(io.Subpath) {
				return MountPoint{}, mountErr(t, "subpath must be a relative path within the volume")
			}
			mp.Subpath = filepath.Clean(io.Subpath)
		}
	case mount.TypeTmpfs:
		if m.Source != "" {
			return MountPoint{}, mountErr(t, "field Source must not be specified")
		}
		data, err := tmpfsData(m.TmpfsOptions, m.ReadOnly)
		if err != nil {
			return MountPoint{}, mountErr(t, "%v", err)
		}
		mp.TmpfsData = data
	}
	return mp, nil
}

// parseVolumesFrom is docker's CONTAINER[:ro|rw] of --volumes-from.
func parseVolumesFrom(spec string) (string, string, error) {
	if spec == "" {
		return "", "", fmt.Errorf("volumes-from specification cannot be an empty string: %w", errdefs.ErrInvalidArgument)
	}
	id, mode, _ := strings.Cut(spec, ":")
	if mode == "" {
		return id, "rw", nil
	}
	if !validMode(mode) || modePropagation(mode) != "" || modeHas(mode, "nocopy") {
		return "", "", fmt.Errorf("invalid mode: %s: %w", mode, errdefs.ErrInvalidArgument)
	}
	return id, mode, nil
}

func duplicate(dst string) error {
	return fmt.Errorf("Duplicate mount point: %s: %w", dst, errdefs.ErrInvalidArgument)
}

// checkMounts validates the mount options of a create request without
// changing anything, so a bad one is refused before any work is done.
func checkMounts(hc *container.HostConfig) error {
	_, err := parseMountOptions(hc)
	return err
}

func parseMountOptions(hc *container.HostConfig) (map[string]MountPoint, error) {
	byDst := map[string]MountPoint{}
	parsers := make([]func() (MountPoint, error), 0, len(hc.Binds)+len(hc.Mounts))
	for _, b := range hc.Binds {
		parsers = append(parsers, func() (MountPoint, error) { return parseVolumeSpec(b) })
	}
	for _, m := range hc.Mounts {
		parsers = append(parsers, func() (MountPoint, error) { return parseMount(m) })
	}
	for _, parse := range parsers {
		mp, err := parse()
		if err != nil {
			return nil, err
		}
		if _, ok := byDst[mp.Destination]; ok {
			return nil, duplicate(mp.Destination)
		}
		byDst[mp.Destination] = mp
	}
	for dst := range hc.Tmpfs {
		if !path.IsAbs(dst) {
			return nil, fmt.Errorf("invalid mount path: '%s' mount path must be absolute: %w", dst, errdefs.ErrInvalidArgument)
		}
		if _, ok := byDst[path.Clean(dst)]; ok {
			return nil, duplicate(path.Clean(dst))
		}
	}
	for _, v := range hc.VolumesFrom {
		if _, _, err := parseVolumesFrom(v); err != nil {
			return nil, err
		}
	}
	return byDst, nil
}

// registerMounts turns a new container's mount options into its mount
// points, docker's order: --volumes-from first, -v and --mount over them,
// then an anonymous volume for each image VOLUME (or -v /path) nothing
// else covers. Volumes are created as needed and referenced by id. On
// error everything done is undone; on success undo is for a later failure
// of the create.
func (e *Engine) registerMounts(ctx context.Context, id string, cfg *container.Config, hc *container.HostConfig) (mps []MountPoint, undo func(), err error) {
	own, err := parseMountOptions(hc)
	if err != nil {
		return nil, nil, err
	}
	byDst := map[string]MountPoint{}
	for _, spec := range hc.VolumesFrom {
		ref, mode, _ := parseVolumesFrom(spec)
		e.mu.Lock()
		src, err := e.lookup(ref)
		var from []MountPoint
		if err == nil {
			from = slices.Clone(src.MountPoints)
		}
		e.mu.Unlock()
		if err != nil {
			// Not a 404: clients take that for a missing image and pull.
			return nil, nil, fmt.Errorf("No such container: %s: %w", ref, errdefs.ErrInvalidArgument)
		}
		for _, m := range from {
			m.RW = m.RW && !modeHas(mode, "ro")
			m.Mode, m.CopyData, m.CreateSource = "", false, false
			m.ImageID, m.SnapshotKey = "", "" // an image mount gets a view of its own
			byDst[m.Destination] = m
		}
	}
	for dst, mp := range own {
		byDst[dst] = mp
	}
	var anon []string
	for v := range cfg.Volumes {
		anon = append(anon, v)
	}
	sort.Strings(anon)
	for _, v := range anon {
		dst := path.Clean(v)
		if err := checkTarget(mount.TypeVolume, v); err != nil {
			return nil, nil, err
		}
		if _, ok := byDst[dst]; ok {
			continue
		}
		if _, ok := hc.Tmpfs[dst]; ok {
			continue
		}
		byDst[dst] = MountPoint{Type: mount.TypeVolume, Destination: dst, RW: true, CopyData: true}
	}
	for _, mp := range byDst {
		mps = append(mps, mp)
	}
	sort.Slice(mps, func(i, j int) bool { return mps[i].Destination < mps[j].Destination })

	var created, refd, views []string
	rollback := func() {
		for _, k := range views {
			_ = e.images.RemoveMounts(context.WithoutCancel(ctx), k)
		}
		for _, n := range refd {
			e.volumes.Release(n, id)
		}
		for _, n := range created {
			if err := e.volumes.Remove(n, true); err != nil {
				e.log.Warn("remove volume of a failed create", "name", n, "err", err)
			}
		}
	}
	defer func() {
		if err != nil {
			rollback()
		}
	}()
	for i := range mps {
		mp := &mps[i]
		if mp.Type == mount.TypeImage && mp.SnapshotKey == "" {
			img, err := e.images.Get(ctx, mp.Source)
			if err != nil {
				if errdefs.IsNotFound(err) {
					// Not a 404: the docker CLI would pull the container's image.
					return nil, nil, fmt.Errorf("No such image: %s: %w", mp.Source, errdefs.ErrInvalidArgument)
				}
				return nil, nil, err
			}
			mp.ImageID, mp.SnapshotKey = img.ID.String(), fmt.Sprintf("imagemount-%s-%d", id, i)
			if _, err := e.images.View(ctx, mp.ImageID, mp.SnapshotKey); err != nil {
				return nil, nil, fmt.Errorf("image mount of %s: %w", mp.Source, err)
			}
			views = append(views, mp.SnapshotKey)
			continue
		}
		if mp.Type != mount.TypeVolume {
			continue
		}
		if mp.Source == "" { // not from --volumes-from: find or make the volume
			opts := volumeOptions(hc, mp.Destination)
			opts.Ref, opts.Anonymous = id, mp.Name == ""
			_, getErr := e.volumes.Get(mp.Name)
			v, err := e.volumes.Create(mp.Name, opts)
			if errdefs.IsNotFound(err) {
				// An unknown driver: a 404 from create would send the
				// docker CLI pulling the image.
				return nil, nil, fmt.Errorf("%s: %w", strings.TrimSuffix(err.Error(), ": "+errdefs.ErrNotFound.Error()), errdefs.ErrInvalidArgument)
			}
			if err != nil {
				return nil, nil, err
			}
			refd = append(refd, v.Name)
			if mp.Name == "" || getErr != nil {
				created = append(created, v.Name)
			}
			// docker reports "create" for an existing volume too.
			e.Emit("volume", "create", v.Name, map[string]string{"driver": v.Driver})
			mp.Name, mp.Source, mp.Driver = v.Name, v.Mountpoint, v.Driver
			continue
		}
		// --volumes-from: the source container's reference keeps it.
		if err := e.volumes.Ref(mp.Name, id); err != nil {
			return nil, nil, err
		}
		refd = append(refd, mp.Name)
	}
	return mps, rollback, nil
}

// volumeOptions returns the --mount volume options (labels, driver
// options) for the volume at dst, used when the create makes the volume.
func volumeOptions(hc *container.HostConfig, dst string) volume.CreateOptions {
	for _, m := range hc.Mounts {
		if m.Type != mount.TypeVolume || path.Clean(m.Target) != dst || m.VolumeOptions == nil {
			continue
		}
		o := volume.CreateOptions{Labels: m.VolumeOptions.Labels}
		if dc := m.VolumeOptions.DriverConfig; dc != nil {
			o.Driver, o.Options = dc.Name, dc.Options
		}
		return o
	}
	return volume.CreateOptions{Driver: hc.VolumeDriver}
}

// mountVolumes prepares a starting container's mounts: volumes are
// mounted (device-backed ones on first use) and filled from the image on
// first use, bind sources made where docker makes them. It returns the
// runtime mounts, parents before children. The container's rootfs must be
// mounted.
func (e *Engine) mountVolumes(ctx context.Context, id string) (ms []specs.Mount, err error) {
	e.mu.Lock()
	c, ok := e.byID[id]
	var mps []MountPoint
	if ok {
		mps = slices.Clone(c.MountPoints)
	}
	e.mu.Unlock()
	defer func() {
		if err != nil {
			e.unmountVolumes(id)
		}
	}()
	copied := false
	for i := range mps {
		mp := &mps[i]
		src := mp.Source
		switch mp.Type {
		case mount.TypeBind:
			if _, err := os.Stat(src); err != nil {
				if !mp.CreateSource {
					return nil, mountErr(mp.Type, "bind source path does not exist: %s", src)
				}
				if err := os.MkdirAll(src, 0o755); err != nil {
					return nil, fmt.Errorf("error while creating mount source path '%s': %w", src, err)
				}
			}
			if err := checkPropagation(src, mp.Propagation); err != nil {
				return nil, err
			}
		case mount.TypeVolume:
			if src, err = e.volumes.Mount(mp.Name, id); err != nil {
				return nil, err
			}
			e.Emit("volume", "mount", mp.Name, map[string]string{
				"container": id, "destination": mp.Destination, "driver": mp.Driver,
				"propagation": string(mp.Propagation), "read/write": strconv.FormatBool(mp.RW),
			})
			if mp.CopyData && mp.Subpath == "" {
				img, err := securejoin.SecureJoin(e.rootfsPath(id), mp.Destination)
				if err != nil {
					return nil, err
				}
				if _, err := e.volumes.Populate(ctx, mp.Name, img); err != nil {
					return nil, err
				}
				mp.CopyData, copied = false, true
			}
		case mount.TypeImage:
			if src, err = e.mountImage(ctx, *mp); err != nil {
				return nil, err
			}
		case mount.TypeTmpfs:
			o := []string{"nosuid", "nodev", "noexec"}
			if mp.TmpfsData != "" {
				o = append(o, strings.Split(mp.TmpfsData, ",")...)
			}
			if !mp.RW && !slices.Contains(o, "ro") {
				o = append(o, "ro") // --volumes-from :ro
			}
			ms = append(ms, specs.Mount{Destination: mp.Destination, Type: "tmpfs", Source: "tmpfs", Options: o})
			continue
		}
		if mp.Subpath != "" {
			// Resolved inside the volume or image: no symlink leads out.
			sub, err := securejoin.SecureJoin(src, mp.Subpath)
			if err != nil {
				return nil, err
			}
			if _, err := os.Stat(sub); err != nil {
				return nil, fmt.Errorf("error while mounting %s with subpath %s: cannot access path %s: %w", mp.Type, mp.Subpath, sub, errdefs.ErrInvalidArgument)
			}
			src = sub
		}
		ms = append(ms, bindSpec(*mp, src, e.recursiveRO))
	}
	if copied {
		// First use is over: a volume emptied later stays empty.
		e.mu.Lock()
		if c, ok := e.byID[id]; ok {
			for i := range c.MountPoints {
				c.MountPoints[i].CopyData = false
			}
			_ = e.save(c)
		}
		e.mu.Unlock()
	}
	// Parents before children: /a must be mounted before /a/b.
	sort.SliceStable(ms, func(i, j int) bool {
		return strings.Count(ms[i].Destination, "/") < strings.Count(ms[j].Destination, "/")
	})
	return ms, nil
}

// imageMountDir is where an image mount's view is mounted on the host
// while its container runs.
func (e *Engine) imageMountDir(key string) string {
	return filepath.Join(e.execRoot, "imagemounts", key)
}

// mountImage mounts the read-only view of an image mount's image and
// returns where.
func (e *Engine) mountImage(ctx context.Context, mp MountPoint) (string, error) {
	ms, err := e.images.Snapshots().Mounts(ctx, mp.SnapshotKey)
	if err != nil {
		return "", fmt.Errorf("image mount of %s: %w", mp.Source, err)
	}
	dir := e.imageMountDir(mp.SnapshotKey)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("image mount of %s: %w", mp.Source, err)
	}
	_ = snapshot.UnmountAll(dir) // a daemon killed mid-way: replace, not stack
	if err := snapshot.MountAll(ms, dir); err != nil {
		return "", fmt.Errorf("image mount of %s: %w", mp.Source, err)
	}
	return dir, nil
}

func (e *Engine) unmountImage(mp MountPoint) {
	dir := e.imageMountDir(mp.SnapshotKey)
	if err := snapshot.UnmountAll(dir); err != nil {
		e.log.Warn("unmount image mount", "dir", dir, "err", err)
		return
	}
	_ = os.Remove(dir)
}

// kernelHasMountSetattr reports whether mount_setattr(2) exists (Linux
// 5.12+), which recursively read-only mounts need: probed with a call
// that cannot succeed, ENOSYS meaning the syscall is missing.
func kernelHasMountSetattr() bool {
	err := unix.MountSetattr(-1, "", unix.AT_EMPTY_PATH, &unix.MountAttr{})
	return !errors.Is(err, unix.ENOSYS)
}

// checkPropagation refuses, as docker does, a shared or slave bind whose
// source lies on a mount that cannot propagate that way (the kernel would
// quietly make it private).
func checkPropagation(src string, p mount.Propagation) error {
	var need string
	switch p {
	case mount.PropagationShared, mount.PropagationRShared:
		need = "shared"
	case mount.PropagationSlave, mount.PropagationRSlave:
		need = "shared or slave"
	default:
		return nil
	}
	if real, err := filepath.EvalSymlinks(src); err == nil {
		src = real
	}
	infos, err := mountinfo.GetMounts(mountinfo.ParentsFilter(src))
	if err != nil {
		return fmt.Errorf("propagation of %s: %w", src, err)
	}
	var parent *mountinfo.Info
	for _, i := range infos {
		if parent == nil || len(i.Mountpoint) >= len(parent.Mountpoint) {
			parent = i
		}
	}
	if parent == nil {
		return nil
	}
	opt := strings.Fields(parent.Optional)
	has := func(tag string) bool {
		return slices.ContainsFunc(opt, func(o string) bool { return strings.HasPrefix(o, tag+":") })
	}
	if has("shared") || (need != "shared" && has("master")) {
		return nil
	}
	return fmt.Errorf("path %s is mounted on %s but it is not a %s mount: %w", src, parent.Mountpoint, need, errdefs.ErrInvalidArgument)
}

// bindSpec is the runtime mount of a bind or volume mount point whose host
// path is src.
func bindSpec(mp MountPoint, src string, recursiveRO bool) specs.Mount {
	prop := string(mp.Propagation)
	if prop == "" {
		prop = string(mount.PropagationRPrivate)
	}
	o := []string{"rbind", prop}
	if mp.NonRecursive {
		o[0] = "bind"
	}
	if !mp.RW {
		o = append(o, "ro")
		if recursiveRO && !mp.ReadOnlyTopOnly && !mp.NonRecursive {
			// docker 25+: read-only all the way down where the kernel
			// can (mount_setattr, Linux 5.12+), top-only before.
			o = append(o, "rro")
		}
	}
	return specs.Mount{Destination: mp.Destination, Type: "bind", Source: src, Options: o}
}

// hostMounts returns c's binds and volumes as runtime bind mounts, without
// preparing anything: docker cp's view of them.
func hostMounts(c Container) []specs.Mount {
	var ms []specs.Mount
	for _, mp := range c.MountPoints {
		if mp.Type != mount.TypeBind && mp.Type != mount.TypeVolume {
			continue
		}
		src := mp.Source
		if mp.Subpath != "" {
			sub, err := securejoin.SecureJoin(src, mp.Subpath)
			if err != nil {
				continue
			}
			src = sub
		}
		ms = append(ms, bindSpec(mp, src, false))
	}
	return ms
}

// unmountVolumes ends a container's use of its volumes (at exit or after a
// failed start); idempotent.
func (e *Engine) unmountVolumes(id string) {
	e.mu.Lock()
	c, ok := e.byID[id]
	var mps []MountPoint
	if ok {
		mps = slices.Clone(c.MountPoints)
	}
	e.mu.Unlock()
	for _, mp := range mps {
		if mp.Type == mount.TypeImage {
			e.unmountImage(mp)
			continue
		}
		if mp.Type != mount.TypeVolume {
			continue
		}
		used, err := e.volumes.Unmount(mp.Name, id)
		if err != nil {
			e.log.Warn("unmount volume", "name", mp.Name, "container", id, "err", err)
		}
		if used {
			e.Emit("volume", "unmount", mp.Name, map[string]string{"container": id, "driver": mp.Driver})
		}
	}
}

// releaseVolumes drops a removed container's references; with rm, its
// anonymous volumes go too (unless another container uses them, as
// docker: --volumes-from shares them).
func (e *Engine) releaseVolumes(c *Container, rm bool) {
	for _, mp := range c.MountPoints {
		if mp.Type == mount.TypeImage {
			e.unmountImage(mp)
			if err := e.images.RemoveMounts(context.Background(), mp.SnapshotKey); err != nil && !errdefs.IsNotFound(err) {
				e.log.Warn("remove image mount", "key", mp.SnapshotKey, "err", err)
			}
			continue
		}
		if mp.Type != mount.TypeVolume {
			continue
		}
		_, _ = e.volumes.Unmount(mp.Name, c.ID)
		e.volumes.Release(mp.Name, c.ID)
		if !rm || mp.Named {
			continue
		}
		if err := e.volumes.Remove(mp.Name, true); err != nil {
			if !errdefs.IsConflict(err) {
				e.log.Warn("remove anonymous volume", "name", mp.Name, "err", err)
			}
			continue
		}
		e.Emit("volume", "destroy", mp.Name, map[string]string{"driver": volume.DefaultDriver})
	}
}

// restoreVolumes rebuilds the volume store's counts from the container
// records at daemon start: every container references its volumes, and a
// running one uses them (a device-backed volume stays mounted for it).
func (e *Engine) restoreVolumes() {
	for _, c := range e.byID {
		if c.MountPoints == nil && len(c.HostConfig.Binds) > 0 {
			// A record from before mount points were kept: its -v binds
			// (host paths only, then) become mount points.
			for _, b := range c.HostConfig.Binds {
				if mp, err := parseVolumeSpec(b); err == nil && mp.Type == mount.TypeBind {
					c.MountPoints = append(c.MountPoints, mp)
				}
			}
		}
		for _, mp := range c.MountPoints {
			if mp.Type == mount.TypeImage && c.State.Status != StatusRunning {
				e.unmountImage(mp) // left mounted by a daemon killed mid-way
			}
			if mp.Type != mount.TypeVolume {
				continue
			}
			if err := e.volumes.Ref(mp.Name, c.ID); err != nil {
				e.log.Warn("container references a missing volume", "container", c.ID, "volume", mp.Name)
				continue
			}
			if c.State.Status == StatusRunning {
				if _, err := e.volumes.Mount(mp.Name, c.ID); err != nil {
					e.log.Warn("volume of a running container", "container", c.ID, "volume", mp.Name, "err", err)
				}
			}
		}
	}
}
