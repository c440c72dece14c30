package snapshot

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/internal/errdefs"
)

// Mount describes one mount, containerd-style: the snapshotter returns
// these and whoever runs the container performs them (MountAll, or the
// runtime inside the container's mount namespace).
type Mount struct {
	Type    string   `json:"type"`             // "overlay" or "bind"
	Source  string   `json:"source"`           // "overlay", or the bound directory
	Target  string   `json:"target,omitempty"` // relative to the mount point; "" for the point itself
	Options []string `json:"options,omitempty"`
}

// flagOptions are the options that are mount(2) flags rather than data.
var flagOptions = map[string]struct {
	clear bool
	flag  uintptr
}{
	"ro":          {false, unix.MS_RDONLY},
	"rw":          {true, unix.MS_RDONLY},
	"bind":        {false, unix.MS_BIND},
	"rbind":       {false, unix.MS_BIND | unix.MS_REC},
	"nosuid":      {false, unix.MS_NOSUID},
	"suid":        {true, unix.MS_NOSUID},
	"nodev":       {false, unix.MS_NODEV},
	"dev":         {true, unix.MS_NODEV},
	"noexec":      {false, unix.MS_NOEXEC},
	"exec":        {true, unix.MS_NOEXEC},
	"noatime":     {false, unix.MS_NOATIME},
	"relatime":    {false, unix.MS_RELATIME},
	"strictatime": {false, unix.MS_STRICTATIME},
	"sync":        {false, unix.MS_SYNCHRONOUS},
}

func (m Mount) flagsAndData() (uintptr, string) {
	var flags uintptr
	var data []string
	for _, o := range m.Options {
		if f, ok := flagOptions[o]; ok {
			if f.clear {
				flags &^= f.flag
			} else {
				flags |= f.flag
			}
			continue
		}
		data = append(data, o)
	}
	return flags, strings.Join(data, ",")
}

// MountAll mounts mounts, in order, at target (each at its own Target
// below target, if set). On error it unmounts what it mounted.
//
// Overlay mount data longer than a page (the kernel copies one page of
// options) happens with long layer chains; MountAll then rewrites the layer
// paths relative to their common directory and mounts from a thread whose
// working directory is that directory. The snapshotter keeps the paths
// short (<root>/<n>/fs) so that the relative form fits hundreds of layers.
func MountAll(mounts []Mount, target string) (err error) {
	target, err = filepath.Abs(target)
	if err != nil {
		return fmt.Errorf("mount: %w", err)
	}
	for i, m := range mounts {
		t := target
		if m.Target != "" {
			if !filepath.IsLocal(m.Target) {
				return fmt.Errorf("mount target %q leaves %s: %w", m.Target, target, errdefs.ErrInvalidArgument)
			}
			t = filepath.Join(target, m.Target)
		}
		if err := mountOne(m, t); err != nil {
			for j := i - 1; j >= 0; j-- {
				tj := target
				if mounts[j].Target != "" {
					tj = filepath.Join(target, mounts[j].Target)
				}
				unix.Unmount(tj, unix.MNT_DETACH)
			}
			return fmt.Errorf("mount %s at %s: %w", m.Type, t, err)
		}
	}
	return nil
}

func mountOne(m Mount, target string) error {
	flags, data := m.flagsAndData()
	if flags&unix.MS_BIND != 0 {
		// A bind mount ignores MS_RDONLY and friends on creation; they take
		// a remount.
		if err := unix.Mount(m.Source, target, "", flags&(unix.MS_BIND|unix.MS_REC), ""); err != nil {
			return err
		}
		if rest := flags &^ (unix.MS_BIND | unix.MS_REC); rest != 0 {
			if err := unix.Mount("", target, "", unix.MS_REMOUNT|unix.MS_BIND|rest, ""); err != nil {
				unix.Unmount(target, unix.MNT_DETACH)
				return err
			}
		}
		return nil
	}
	if m.Type == "overlay" && len(data) >= unix.Getpagesize() {
		dir, rel, err := relativeOverlayData(data)
		if err != nil {
			return err
		}
		if len(rel) >= unix.Getpagesize() {
			return fmt.Errorf("overlay options are %d bytes even relative to %s: too many layers: %w", len(rel), dir, errdefs.ErrInvalidArgument)
		}
		return mountInDir(dir, m.Source, target, m.Type, flags, rel)
	}
	return unix.Mount(m.Source, target, m.Type, flags, data)
}

// relativeOverlayData rewrites the lowerdir, upperdir and workdir paths of
// overlay options relative to their longest common directory.
func relativeOverlayData(data string) (string, string, error) {
	opts := strings.Split(data, ",")
	var paths []string
	for _, o := range opts {
		k, v, _ := strings.Cut(o, "=")
		switch k {
		case "lowerdir":
			paths = append(paths, strings.Split(v, ":")...)
		case "upperdir", "workdir":
			paths = append(paths, v)
		}
	}
	if len(paths) == 0 {
		return "", "", fmt.Errorf("overlay options without layer paths: %w", errdefs.ErrInvalidArgument)
	}
	common := filepath.Dir(paths[0])
	for _, p := range paths[1:] {
		for common != "/" && !strings.HasPrefix(p, common+"/") {
			common = filepath.Dir(common)
		}
	}
	rel := func(p string) string {
		if common == "/" {
			return strings.TrimPrefix(p, "/")
		}
		return strings.TrimPrefix(p, common+"/")
	}
	for i, o := range opts {
		k, v, _ := strings.Cut(o, "=")
		switch k {
		case "lowerdir":
			ls := strings.Split(v, ":")
			for j := range ls {
				ls[j] = rel(ls[j])
			}
			opts[i] = k + "=" + strings.Join(ls, ":")
		case "upperdir", "workdir":
			opts[i] = k + "=" + rel(v)
		}
	}
	return common, strings.Join(opts, ","), nil
}

// mountInDir runs mount(2) with dir as the working directory, on a thread
// of its own: unshare(CLONE_FS) gives that thread a private cwd, so the
// chdir never affects the rest of the process. The thread is never
// unlocked, so Go retires it when the goroutine ends.
func mountInDir(dir, source, target, fstype string, flags uintptr, data string) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		if err := unix.Unshare(unix.CLONE_FS); err != nil {
			errc <- fmt.Errorf("unshare CLONE_FS: %w", err)
			return
		}
		if err := unix.Chdir(dir); err != nil {
			errc <- err
			return
		}
		errc <- unix.Mount(source, target, fstype, flags, data)
	}()
	return <-errc
}

// UnmountAll unmounts everything mounted at target, innermost first, until
// target is no longer a mount point. A missing target is not an error.
func UnmountAll(target string) error {
	for range 64 {
		err := unix.Unmount(target, unix.UMOUNT_NOFOLLOW)
		switch {
		case err == nil:
			continue
		case errors.Is(err, unix.EINVAL), errors.Is(err, unix.ENOENT):
			return nil // not (or no longer) a mount point
		case errors.Is(err, unix.EBUSY):
			// Still in use (a process's cwd, say): detach so it goes
			// away when released, and carry on.
			if err := unix.Unmount(target, unix.MNT_DETACH|unix.UMOUNT_NOFOLLOW); err != nil {
				return fmt.Errorf("unmount %s: %w", target, err)
			}
		default:
			return fmt.Errorf("unmount %s: %w", target, err)
		}
	}
	return fmt.Errorf("unmount %s: still mounted after 64 unmounts: %w", target, errdefs.ErrFailedPrecondition)
}

// WithTempMount mounts mounts on a fresh temporary directory, calls fn with
// it and unmounts, whatever fn returns. It is for short looks at a
// snapshot's content (reading an image's /etc/passwd, say), not for
// containers. Mount read-only snapshots (View) for looks that must not
// change anything.
func WithTempMount(ctx context.Context, mounts []Mount, fn func(root string) error) (err error) {
	if err := ctx.Err(); err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "berth-mount-")
	if err != nil {
		return fmt.Errorf("mount: %w", err)
	}
	defer func() {
		if uerr := UnmountAll(dir); uerr != nil {
			err = errors.Join(err, uerr)
			return // leave the directory rather than remove a mounted tree
		}
		os.Remove(dir)
	}()
	if err := MountAll(mounts, dir); err != nil {
		return err
	}
	return fn(dir)
}

// LayerDirs returns the directory to unpack a layer into (or to diff) for
// the mounts of an active snapshot, and the lower directories under it, top
// first. With no lowers, unpack with archive.ApplyOptions.OverlayWhiteouts
// false (nothing below to hide); otherwise true, with the lowers as Parents.
func LayerDirs(mounts []Mount) (upper string, lowers []string, err error) {
	if len(mounts) != 1 {
		return "", nil, fmt.Errorf("layer dirs of %d mounts: %w", len(mounts), errdefs.ErrInvalidArgument)
	}
	m := mounts[0]
	switch m.Type {
	case "bind":
		for _, o := range m.Options {
			if o == "ro" {
				return "", nil, fmt.Errorf("layer dirs of a read-only snapshot: %w", errdefs.ErrFailedPrecondition)
			}
		}
		return m.Source, nil, nil
	case "overlay":
		for _, o := range m.Options {
			k, v, _ := strings.Cut(o, "=")
			switch k {
			case "upperdir":
				upper = v
			case "lowerdir":
				lowers = strings.Split(v, ":")
			}
		}
		if upper == "" {
			return "", nil, fmt.Errorf("layer dirs of a read-only snapshot: %w", errdefs.ErrFailedPrecondition)
		}
		return upper, lowers, nil
	}
	return "", nil, fmt.Errorf("layer dirs of a %q mount: %w", m.Type, errdefs.ErrInvalidArgument)
}
