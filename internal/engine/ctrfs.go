package engine

import (
	"context"
	"errors"
	"fmt"
	"github.com/berth-dev/berth/internal/fsroot"
	"os"
	"path"
	"path/filepath"
	goruntime "runtime"
	"slices"
	"strings"

	securejoin "github.com/cyphar/filepath-securejoin"
	"github.com/moby/moby/api/types/mount"
	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/internal/errdefs"
	"github.com/berth-dev/berth/internal/snapshot"
)

// A container's files as docker cp sees them: its root filesystem with its
// bind mounts (and volumes) on top, but none of what the runtime mounts
// inside (proc, sys, dev, tmpfs). Docker mounts the volumes onto the
// rootfs in its own namespace for the copy; berth does it in a private
// mount namespace of a throw-away thread, so nothing of it is ever visible
// on the host or in the container, and it all goes away with the thread
// even if the daemon dies half-way.

// ctrFS is the view handed to an operation. Every path is resolved inside
// root (chroot semantics): no symlink or ".." leads out of the container.
type ctrFS struct {
	c      Container
	root   *os.File // O_PATH handle of the rootfs, in the private namespace
	rootfs string   // its path there (for securejoin's userspace resolution)
	binds  []ctrBind
}

type ctrBind struct {
	dest string // cleaned, absolute in the container
	ro   bool
}

// claimRootfs finds container ref for a look at its files. A running
// container's rootfs is mounted at its usual place; for a stopped one it
// returns the snapshot's mounts to mount privately, and marks the
// container busy (a start waits: the same overlay upper must not be
// mounted twice) until release is called.
func (e *Engine) claimRootfs(ctx context.Context, ref string) (c Container, mounts []snapshot.Mount, release func(), err error) {
	rec, err := e.lookupSettled(ctx, ref)
	if err != nil {
		return c, nil, nil, err
	}
	if rec.State.Status == StatusRemoving || rec.State.Status == StatusDead {
		e.mu.Unlock()
		return c, nil, nil, fmt.Errorf("container %s is marked for removal: %w", rec.ID, errdefs.ErrConflict)
	}
	c = rec.snapshot()
	if c.State.Running() {
		e.mu.Unlock()
		return c, nil, func() {}, nil
	}
	busy := make(chan struct{})
	rec.fsBusy = busy
	e.mu.Unlock()
	release = func() {
		e.mu.Lock()
		rec.fsBusy = nil
		close(busy)
		e.mu.Unlock()
	}
	if mounts, err = e.images.Snapshots().Mounts(ctx, c.ID); err != nil {
		release()
		return c, nil, nil, fmt.Errorf("rootfs of %s: %w", c.ID, err)
	}
	return c, mounts, release, nil
}

// lookupSettled finds ref and waits until no start, copy or exit
// teardown of it is in flight. It returns with e.mu held, or with an error and e.mu released.
func (e *Engine) lookupSettled(ctx context.Context, ref string) (*Container, error) {
	e.mu.Lock()
	c, err := e.lookup(ref)
	if err == nil {
		err = e.waitStarting(ctx, c)
	}
	if err == nil {
		err = e.waitFS(ctx, c)
	}
	if err == nil {
		// An exit's teardown still holding the rootfs mounted.
		err = e.waitNil(ctx, func() chan struct{} { return c.releasing })
	}
	if err != nil {
		e.mu.Unlock()
		return nil, err
	}
	return c, nil
}

// waitFS waits, with e.mu held (released meanwhile), until no filesystem
// operation holds the stopped container's rootfs mounted: a start mounts
// it itself, and the same overlay upper must not be mounted twice.
func (e *Engine) waitFS(ctx context.Context, c *Container) error {
	return e.waitNil(ctx, func() chan struct{} { return c.fsBusy })
}

// withContainerFS runs fn on a thread of its own in a private mount
// namespace holding the container's rootfs: as it is while the container
// runs, else its snapshot mounted there (and only there) for fn. With
// binds, the container's binds and volumes and the files the engine writes
// for it (hostname, hosts, resolv.conf) are mounted on top, as the
// container sees them. fn runs on that thread (it may use paths); the
// thread, and every mount made for fn, end with it.
func (e *Engine) withContainerFS(ctx context.Context, ref string, withBinds bool, fn func(v *ctrFS) error) error {
	c, mounts, release, err := e.claimRootfs(ctx, ref)
	if err != nil {
		return err
	}
	defer release()
	v := &ctrFS{c: c, rootfs: e.rootfsPath(c.ID)}
	if mounts != nil {
		// A fresh mount point: the usual one may still be being unmounted
		// after the container's exit.
		if v.rootfs, err = os.MkdirTemp(e.execRoot, "fs-"); err != nil {
			return fmt.Errorf("rootfs of %s: %w", c.ID, err)
		}
		defer func() {
			// Nothing is mounted here on the host, unless MountAll had to
			// mount from a helper thread (overlay options over a page),
			// which is in the host's namespace.
			_ = snapshot.UnmountAll(v.rootfs)
			os.Remove(v.rootfs)
		}()
	}
	var binds []bindMount
	if withBinds {
		if mounts != nil {
			// A stopped container's device-backed volumes are mounted
			// for the look, as docker does.
			for _, mp := range c.MountPoints {
				if mp.Type != mount.TypeVolume {
					continue
				}
				if _, err := e.volumes.Mount(mp.Name, c.ID); err != nil {
					return err
				}
				defer func() {
					if _, err := e.volumes.Unmount(mp.Name, c.ID); err != nil {
						e.log.Warn("unmount volume", "name", mp.Name, "err", err)
					}
				}()
			}
		}
		for _, m := range hostMounts(c) {
			b := bindMount{source: m.Source, ctrBind: ctrBind{dest: path.Clean(m.Destination), ro: slices.Contains(m.Options, "ro")}}
			binds = append(binds, b)
			v.binds = append(v.binds, b.ctrBind)
		}
		for _, name := range []string{"hostname", "hosts", "resolv.conf"} {
			src := filepath.Join(e.containerDir(c.ID), name)
			if _, err := os.Stat(src); err == nil {
				binds = append(binds, bindMount{source: src, ctrBind: ctrBind{dest: "/etc/" + name}})
			}
		}
		// Parents first, as the runtime mounts them.
		slices.SortStableFunc(binds, func(a, b bindMount) int { return strings.Count(a.dest, "/") - strings.Count(b.dest, "/") })
	}
	errc := make(chan error, 1)
	go func() {
		goruntime.LockOSThread() // never unlocked: the thread dies with the goroutine
		errc <- func() error {
			if err := unix.Unshare(unix.CLONE_NEWNS); err != nil {
				return fmt.Errorf("unshare mount namespace: %w", err)
			}
			if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
				return fmt.Errorf("make mounts private: %w", err)
			}
			if mounts != nil {
				if err := snapshot.MountAll(mounts, v.rootfs); err != nil {
					return fmt.Errorf("mount rootfs of %s: %w", c.ID, err)
				}
				// Unmounted here, so the mount point can go at once.
				defer snapshot.UnmountAll(v.rootfs)
			}
			root, err := os.OpenFile(v.rootfs, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
			if err != nil {
				return fmt.Errorf("open rootfs: %w", err)
			}
			defer root.Close()
			v.root = root
			for _, b := range binds {
				if err := v.bind(b); err != nil {
					return fmt.Errorf("mount %s at %s: %w", b.source, b.dest, err)
				}
			}
			return fn(v)
		}()
	}()
	return <-errc
}

type bindMount struct {
	source string
	ctrBind
}

// bind mounts b.source at b.dest inside the rootfs, creating the mount
// point (as the runtime would at start) inside the rootfs only.
func (v *ctrFS) bind(b bindMount) error {
	st, err := os.Stat(b.source)
	if err != nil {
		return err
	}
	target, err := v.open(b.dest, unix.O_PATH)
	if errors.Is(err, unix.ENOENT) {
		target, err = v.create(b.dest, st.IsDir())
	}
	if err != nil {
		return err
	}
	defer target.Close()
	tp := fmt.Sprintf("/proc/self/fd/%d", target.Fd())
	if err := unix.Mount(b.source, tp, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		return err
	}
	if !b.ro {
		return nil
	}
	// The handle still names the directory under the new mount: the
	// remount needs the mount itself, found by resolving the path again.
	top, err := v.open(b.dest, unix.O_PATH)
	if err != nil {
		return err
	}
	defer top.Close()
	return unix.Mount("", fmt.Sprintf("/proc/self/fd/%d", top.Fd()), "", unix.MS_REMOUNT|unix.MS_BIND|unix.MS_RDONLY, "")
}

// open resolves p (absolute in the container) inside the rootfs,
// following every symlink there, and opens it with flags.
func (v *ctrFS) open(p string, flags int) (*os.File, error) {
	return fsroot.Open(v.root, p, flags)
}

// resolve returns p with every symlink followed inside the rootfs, as an
// absolute path in the container (for reporting: opens use open).
func (v *ctrFS) resolve(p string) (string, error) {
	full, err := securejoin.SecureJoin(v.rootfs, p)
	if err != nil {
		return "", err
	}
	rel, err := filepath.Rel(v.rootfs, full)
	if err != nil {
		return "", err
	}
	return path.Join("/", filepath.ToSlash(rel)), nil
}

// create makes p (a directory, or an empty file) and its missing parents
// inside the rootfs, and returns an O_PATH handle of it.
func (v *ctrFS) create(p string, dir bool) (*os.File, error) {
	resolved, err := v.resolve(p) // a dangling link's target is made inside
	if err != nil {
		return nil, err
	}
	parent := v.root
	cur := "/"
	parts := strings.Split(strings.TrimPrefix(resolved, "/"), "/")
	for i, name := range parts {
		if name == "" {
			continue
		}
		cur = path.Join(cur, name)
		f, err := v.open(cur, unix.O_PATH)
		if errors.Is(err, unix.ENOENT) {
			if i == len(parts)-1 && !dir {
				fd, cerr := unix.Openat(int(parent.Fd()), name, unix.O_CREAT|unix.O_EXCL|unix.O_WRONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o644)
				if cerr == nil {
					unix.Close(fd)
				}
				err = cerr
			} else {
				err = unix.Mkdirat(int(parent.Fd()), name, 0o755)
			}
			if err != nil && !errors.Is(err, unix.EEXIST) {
				if parent != v.root {
					parent.Close()
				}
				return nil, err
			}
			f, err = v.open(cur, unix.O_PATH)
		}
		if parent != v.root {
			parent.Close()
		}
		if err != nil {
			return nil, err
		}
		parent = f
	}
	if parent == v.root {
		return v.open("/", unix.O_PATH)
	}
	return parent, nil
}

// inBind returns the bind mount holding p (a resolved absolute path), the
// deepest one, if any.
func (v *ctrFS) inBind(p string) (ctrBind, bool) {
	var best ctrBind
	found := false
	for _, b := range v.binds {
		if p == b.dest || strings.HasPrefix(p, strings.TrimSuffix(b.dest, "/")+"/") {
			if !found || len(b.dest) > len(best.dest) {
				best, found = b, true
			}
		}
	}
	return best, found
}
