package engine

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"strings"
	"time"

	"github.com/moby/moby/api/types/container"
	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/internal/archive"
	"github.com/berth-dev/berth/internal/errdefs"
	"github.com/berth-dev/berth/internal/spec"
)

// docker cp: GET/HEAD/PUT /containers/{id}/archive. Paths are absolute in
// the container and resolved inside its rootfs (ctrfs.go), with docker's
// rules: the directory part follows symlinks, the last element does not
// (unless the path ends in "/" or "/."), a symlink's target is reported
// fully resolved inside the container.

// errExtractPointNotDirectory is docker's refusal of a PUT to a file.
var errExtractPointNotDirectory = fmt.Errorf("extraction point is not a directory: %w", errdefs.ErrInvalidArgument)

// absPath makes p absolute and clean, keeping a trailing "/" or "/." that
// the user wrote (they change what is meant, as in docker).
func absPath(p string) string {
	abs := path.Join("/", p)
	switch {
	case abs == "/":
	case strings.HasSuffix(p, "/."):
		abs += "/."
	case strings.HasSuffix(p, "/"):
		abs += "/"
	}
	return abs
}

func fileNotFound(p, ref string) error {
	return fmt.Errorf("Could not find the file %s in container %s: %w", p, ref, errdefs.ErrNotFound)
}

// statIn is docker's StatPath on a view: it returns the stat of p and a
// handle of the directory holding it with the name in there ("" when p
// itself was opened, as for "/" or a trailing slash).
func (v *ctrFS) statIn(p string) (container.PathStat, *os.File, string, error) {
	abs := absPath(p)
	dir, base := path.Split(abs)
	var st unix.Stat_t
	var d *os.File
	var err error
	if base == "" || base == "." {
		// A trailing "/" or "/." means a directory (docker: lstat's
		// ENOTDIR, worded without the host path).
		d, err = v.open(abs, unix.O_PATH|unix.O_DIRECTORY)
		if err == nil {
			err = unix.Fstat(int(d.Fd()), &st)
		} else if errors.Is(err, unix.ENOTDIR) && abs != "/" {
			if f, ferr := v.open(path.Dir(abs), unix.O_PATH); ferr == nil {
				f.Close()
				return container.PathStat{}, nil, "", fmt.Errorf("lstat %s: not a directory: %w", abs, errdefs.ErrInvalidArgument)
			}
		}
		base = ""
	} else {
		d, err = v.open(dir, unix.O_PATH|unix.O_DIRECTORY)
		if err == nil {
			err = unix.Fstatat(int(d.Fd()), base, &st, unix.AT_SYMLINK_NOFOLLOW)
		}
	}
	if err != nil {
		if d != nil {
			d.Close()
		}
		return container.PathStat{}, nil, "", err
	}
	ps := container.PathStat{
		Name:  path.Base(abs),
		Size:  st.Size,
		Mode:  fileMode(st.Mode),
		Mtime: time.Unix(st.Mtim.Sec, st.Mtim.Nsec),
	}
	if ps.Mode&fs.ModeSymlink != 0 {
		if ps.LinkTarget, err = v.resolve(abs); err != nil {
			d.Close()
			return container.PathStat{}, nil, "", err
		}
	}
	return ps, d, base, nil
}

// fileMode converts a stat mode to Go's, as os.Lstat does.
func fileMode(m uint32) fs.FileMode {
	mode := fs.FileMode(m & 0o777)
	switch m & unix.S_IFMT {
	case unix.S_IFBLK:
		mode |= fs.ModeDevice
	case unix.S_IFCHR:
		mode |= fs.ModeDevice | fs.ModeCharDevice
	case unix.S_IFDIR:
		mode |= fs.ModeDir
	case unix.S_IFIFO:
		mode |= fs.ModeNamedPipe
	case unix.S_IFLNK:
		mode |= fs.ModeSymlink
	case unix.S_IFSOCK:
		mode |= fs.ModeSocket
	}
	if m&unix.S_ISGID != 0 {
		mode |= fs.ModeSetgid
	}
	if m&unix.S_ISUID != 0 {
		mode |= fs.ModeSetuid
	}
	if m&unix.S_ISVTX != 0 {
		mode |= fs.ModeSticky
	}
	return mode
}

func notExist(err error) bool {
	return errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENOTDIR)
}

// StatPath is HEAD /containers/{id}/archive.
func (e *Engine) StatPath(ctx context.Context, ref, p string) (container.PathStat, error) {
	var ps container.PathStat
	err := e.withContainerFS(ctx, ref, true, func(v *ctrFS) error {
		st, d, _, err := v.statIn(p)
		if err != nil {
			if notExist(err) {
				return fileNotFound(p, ref)
			}
			return err
		}
		d.Close()
		ps = st
		return nil
	})
	return ps, err
}

// ArchivePath is GET /containers/{id}/archive: p as a tar stream. header is
// called with p's stat before the first byte is written (the API sends it
// as a header); an error before that is the caller's to report.
func (e *Engine) ArchivePath(ctx context.Context, ref, p string, header func(container.PathStat) io.Writer) error {
	return e.withContainerFS(ctx, ref, true, func(v *ctrFS) error {
		st, d, base, err := v.statIn(p)
		if err != nil {
			if notExist(err) {
				return fileNotFound(p, ref)
			}
			return err
		}
		defer d.Close()
		dirfd := int(d.Fd())
		if base == "" {
			// p itself is open (a directory through a trailing slash, or
			// "/"): tar it from its own handle.
			base = "."
		}
		name := st.Name
		w := header(st)
		e.mu.Lock()
		if c, ok := e.byID[v.c.ID]; ok {
			e.emitContainer(c, "archive-path", map[string]string{"path": p})
		}
		e.mu.Unlock()
		return archive.TarEntry(ctx, dirfd, base, name, w)
	})
}

// ExtractOptions are PUT /containers/{id}/archive's parameters.
type ExtractOptions struct {
	NoOverwriteDirNonDir bool
	CopyUIDGID           bool // own everything by the container's user
}

// ExtractToDir is PUT /containers/{id}/archive: unpacks the tar r into the
// directory p of the container (p's last element followed if a symlink).
func (e *Engine) ExtractToDir(ctx context.Context, ref, p string, r io.Reader, opts ExtractOptions) error {
	return e.withContainerFS(ctx, ref, true, func(v *ctrFS) error {
		abs := absPath(p)
		d, err := v.open(abs, unix.O_PATH)
		if err != nil {
			if notExist(err) {
				return fileNotFound(p, ref)
			}
			return err
		}
		defer d.Close()
		var st unix.Stat_t
		if err := unix.Fstat(int(d.Fd()), &st); err != nil {
			return err
		}
		if st.Mode&unix.S_IFMT != unix.S_IFDIR {
			return errExtractPointNotDirectory
		}
		resolved, err := v.resolve(abs)
		if err != nil {
			return err
		}
		if b, ok := v.inBind(resolved); ok {
			if b.ro {
				return fmt.Errorf("mounted volume is marked read-only: %w", errdefs.ErrInvalidArgument)
			}
		} else if v.c.HostConfig.ReadonlyRootfs {
			return fmt.Errorf("container rootfs is marked read-only: %w", errdefs.ErrInvalidArgument)
		}
		// As docker's chrooted untar: the container is "/", symlinks met
		// on the way resolve inside it.
		ao := archive.ApplyOptions{NoSync: true, Literal: true, NoOverwriteDirNonDir: opts.NoOverwriteDirNonDir, Logger: e.log,
			InRoot: true, Dir: resolved}
		if opts.CopyUIDGID && v.c.Config.User != "" {
			u, _, err := spec.ResolveUser(v.rootfs, v.c.Config.User, nil)
			if err != nil {
				return fmt.Errorf("copy uid/gid: %w", err)
			}
			ao.Owner = &archive.IDPair{UID: int(u.UID), GID: int(u.GID)}
		}
		if _, err := archive.Apply(ctx, fmt.Sprintf("/proc/self/fd/%d", v.root.Fd()), r, ao); err != nil {
			return err
		}
		e.mu.Lock()
		if c, ok := e.byID[v.c.ID]; ok {
			e.emitContainer(c, "extract-to-dir", map[string]string{"path": p})
		}
		e.mu.Unlock()
		return nil
	})
}
