package engine

import (
	"context"
	"fmt"
	"io"
	"os"
	"path"
	"slices"
	"strings"

	"github.com/moby/moby/api/types/container"
	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/internal/archive"
	"github.com/berth-dev/berth/internal/snapshot"
	"github.com/berth-dev/berth/internal/volume"
)

// docker diff, export and the container sizes, read from the container's
// writable snapshot: its overlay upper directory holds exactly what the
// container changed (whiteouts for deletions, opaque directories for
// directories replaced), the image's layers are the lowers.

// runtimeMountPoints are where the runtime mounts over the rootfs at every
// start; it creates them in the upper when the image lacks them, which is
// not a change of the container's (docker hides them in its init layer).
var runtimeMountPoints = []string{
	"/proc", "/sys", "/dev", "/etc/hosts", "/etc/hostname", "/etc/resolv.conf", "/sbin/docker-init",
}

// layerDirs returns the container's upper directory and its image layers,
// top first.
func (e *Engine) layerDirs(ctx context.Context, id string) (string, []string, error) {
	mounts, err := e.images.Snapshots().Mounts(ctx, id)
	if err != nil {
		return "", nil, fmt.Errorf("rootfs of %s: %w", id, err)
	}
	return snapshot.LayerDirs(mounts)
}

// Changes lists what container ref changed in its filesystem, docker's
// kinds: 0 modified, 1 added, 2 deleted; sorted by path, a changed
// directory before what changed in it.
func (e *Engine) Changes(ctx context.Context, ref string) ([]container.FilesystemChange, error) {
	c, err := e.Get(ref)
	if err != nil {
		return nil, err
	}
	upper, lowers, err := e.layerDirs(ctx, c.ID)
	if err != nil {
		return nil, err
	}
	// The container's own mount points (binds, volumes, tmpfs) made in the
	// upper are shown, as docker shows them.
	w := &changeWalker{ctx: ctx, skip: runtimeMountPoints}
	for _, l := range lowers {
		fd, err := unix.Open(l, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			w.close()
			return nil, fmt.Errorf("layer %s: %w", l, err)
		}
		w.lowers = append(w.lowers, fd)
	}
	defer w.close()
	fd, err := unix.Open(upper, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("upper of %s: %w", c.ID, err)
	}
	defer unix.Close(fd)
	if _, err := w.walk(fd, "/"); err != nil {
		return nil, fmt.Errorf("changes of %s: %w", c.ID, err)
	}
	if w.out == nil {
		w.out = []container.FilesystemChange{}
	}
	return w.out, nil
}

type changeWalker struct {
	ctx    context.Context
	lowers []int // O_PATH fds of the image layers, top first
	skip   []string
	out    []container.FilesystemChange
}

func (w *changeWalker) close() {
	for _, fd := range w.lowers {
		unix.Close(fd)
	}
}

// walk records the changes below directory fd (path dir in the container)
// and reports whether it recorded any.
func (w *changeWalker) walk(fd int, dir string) (bool, error) {
	if err := w.ctx.Err(); err != nil {
		return false, err
	}
	f, err := unix.Openat(fd, ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return false, err
	}
	names, err := readNames(f)
	if err != nil {
		return false, err
	}
	slices.Sort(names)
	any := false
	for _, n := range names {
		p := path.Join(dir, n)
		var st unix.Stat_t
		if err := unix.Fstatat(fd, n, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return any, err
		}
		lst, inLower := w.lowerStat(p)
		if st.Mode&unix.S_IFMT == unix.S_IFCHR && st.Rdev == 0 {
			if inLower {
				w.out = append(w.out, container.FilesystemChange{Path: p, Kind: container.ChangeDelete})
				any = true
			}
			continue
		}
		if st.Mode&unix.S_IFMT != unix.S_IFDIR {
			if (!inLower && w.skipped(p)) || (inLower && sameMeta(&st, &lst, false)) {
				continue
			}
			w.out = append(w.out, container.FilesystemChange{Path: p, Kind: kind(inLower)})
			any = true
			continue
		}
		// A directory: added, or changed when something in it changed (an
		// upper directory that only holds a mount point is no change).
		if !inLower && w.skipped(p) {
			continue
		}
		at := len(w.out)
		w.out = append(w.out, container.FilesystemChange{Path: p, Kind: kind(inLower)})
		sub, err := unix.Openat(fd, n, unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			return any, err
		}
		changed, err := w.walk(sub, p)
		if err == nil && inLower && opaque(fd, n) {
			changed = w.deleteLower(sub, p) || changed
		}
		unix.Close(sub)
		if err != nil {
			return any, err
		}
		if inLower && !changed && sameMeta(&st, &lst, true) {
			w.out = slices.Delete(w.out, at, at+1)
			continue
		}
		any = true
	}
	return any, nil
}

func kind(inLower bool) container.ChangeType {
	if inLower {
		return container.ChangeModify
	}
	return container.ChangeAdd
}

// skipped reports a runtime mount point or something only there for one.
func (w *changeWalker) skipped(p string) bool {
	for _, s := range w.skip {
		if p == s || strings.HasPrefix(s, p+"/") || strings.HasPrefix(p, s+"/") {
			return true
		}
	}
	return false
}

func opaque(dirfd int, name string) bool {
	var b [1]byte
	n, err := unix.Lgetxattr(fmt.Sprintf("/proc/self/fd/%d/%s", dirfd, name), "trusted.overlay.opaque", b[:])
	return err == nil && n == 1 && b[0] == 'y'
}

// deleteLower records as deleted what the image has in directory p that
// the opaque upper directory sub no longer shows.
func (w *changeWalker) deleteLower(sub int, p string) bool {
	seen := map[string]bool{}
	var gone []string
	for _, l := range w.lowers {
		fd, err := openBeneath(l, p)
		if err != nil {
			continue
		}
		f, err := unix.Openat(fd, ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		unix.Close(fd)
		if err != nil {
			continue
		}
		names, _ := readNames(f)
		for _, n := range names {
			if seen[n] || strings.HasPrefix(n, ".wh.") {
				continue
			}
			seen[n] = true
			var st unix.Stat_t
			if unix.Fstatat(sub, n, &st, unix.AT_SYMLINK_NOFOLLOW) == nil || !w.inLower(path.Join(p, n)) {
				continue
			}
			gone = append(gone, path.Join(p, n))
		}
	}
	slices.Sort(gone)
	for _, g := range gone {
		w.out = append(w.out, container.FilesystemChange{Path: g, Kind: container.ChangeDelete})
	}
	return len(gone) > 0
}

// lowerStat returns the image's (the layers under the container) entry at
// p: the topmost layer that has it or a whiteout of it decides. Lookups
// never follow a symlink of a layer (RESOLVE_NO_SYMLINKS).
func (w *changeWalker) lowerStat(p string) (unix.Stat_t, bool) {
	dir, base := path.Split(p)
	for _, l := range w.lowers {
		fd, err := openBeneath(l, dir)
		if err != nil {
			continue
		}
		var st unix.Stat_t
		err = unix.Fstatat(fd, base, &st, unix.AT_SYMLINK_NOFOLLOW)
		unix.Close(fd)
		if err != nil {
			continue
		}
		return st, !(st.Mode&unix.S_IFMT == unix.S_IFCHR && st.Rdev == 0)
	}
	return unix.Stat_t{}, false
}

func (w *changeWalker) inLower(p string) bool {
	_, ok := w.lowerStat(p)
	return ok
}

// sameMeta compares what docker compares to call a file unchanged: type
// and mode, owner, device, size and mtime. A copy-up without a change (a
// hardlink made to an image file, say) keeps them all.
func sameMeta(a, b *unix.Stat_t, dir bool) bool {
	same := a.Mode == b.Mode && a.Uid == b.Uid && a.Gid == b.Gid && a.Rdev == b.Rdev
	if dir {
		return same
	}
	return same && a.Size == b.Size && a.Mtim.Sec == b.Mtim.Sec && (a.Mtim.Nsec == b.Mtim.Nsec || a.Mtim.Nsec == 0 || b.Mtim.Nsec == 0)
}

func openBeneath(root int, p string) (int, error) {
	rel := strings.Trim(p, "/")
	if rel == "" {
		rel = "."
	}
	return unix.Openat2(root, rel, &unix.OpenHow{
		Flags:   unix.O_PATH | unix.O_DIRECTORY | unix.O_CLOEXEC,
		Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS,
	})
}

// readNames lists directory fd (opened for reading; closed here).
func readNames(fd int) ([]string, error) {
	f := os.NewFile(uintptr(fd), "dir")
	defer f.Close()
	return f.Readdirnames(-1)
}

// Export writes container ref's whole filesystem (without its volumes) as
// a tar stream to the writer header returns, called once the rootfs is
// ready so that errors before it can still be reported.
func (e *Engine) Export(ctx context.Context, ref string, header func() io.Writer) error {
	return e.withContainerFS(ctx, ref, false, func(v *ctrFS) error {
		w := header()
		e.mu.Lock()
		if cc, ok := e.byID[v.c.ID]; ok {
			e.emitContainer(cc, "export", nil)
		}
		e.mu.Unlock()
		return archive.Tar(ctx, v.rootfs, w)
	})
}

// SizeRw is the size of the files container id changed or added (its
// upper directory, each inode once), docker's SizeRw.
func (e *Engine) SizeRw(ctx context.Context, id string) (int64, error) {
	upper, _, err := e.layerDirs(ctx, id)
	if err != nil {
		return 0, err
	}
	return volume.DirSize(upper), nil
}
