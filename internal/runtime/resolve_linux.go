package runtime

import (
	"errors"
	"fmt"
	"github.com/berth-dev/berth/internal/fsroot"
	"os"
	"path/filepath"
	"strings"

	securejoin "github.com/cyphar/filepath-securejoin"
	"golang.org/x/sys/unix"
)

// Paths inside the rootfs are resolved with openat2(RESOLVE_IN_ROOT): the
// kernel treats the rootfs as "/" for every component, so neither ".." nor a
// symlink (absolute or relative) can lead out of it, with no race between
// check and use. One system call per lookup keeps container start fast. On
// kernels without openat2 (before 5.6) securejoin resolves in user space.

const resolveFlags = fsroot.Resolve

// openIn returns an O_PATH handle of path inside root.
func openIn(root *os.File, path string) (*os.File, error) {
	return fsroot.Open(root, path, unix.O_PATH)
}

// mkdirAllIn creates path (and its parents) inside root and returns an
// O_PATH handle of it.
func mkdirAllIn(root *os.File, path string, mode uint32) (*os.File, error) {
	if f, err := openIn(root, path); err == nil || !errors.Is(err, unix.ENOENT) {
		return f, err
	}
	// Follow the symlinks of the part that exists, inside root, so that a
	// dangling link (say /evil -> /tmp/x) gets its target made inside the
	// rootfs, as runc does; the part left to create has no links.
	if base, err := os.Readlink(fdPath(root)); err == nil {
		if resolved, err := securejoin.SecureJoin(base, path); err == nil {
			if rel, err := filepath.Rel(base, resolved); err == nil && !strings.HasPrefix(rel, "..") {
				path = rel
			}
		}
	}
	parts := strings.Split(strings.TrimLeft(filepath.Clean("/"+path), "/"), "/")
	parent, err := openIn(root, "/")
	if err != nil {
		return nil, err
	}
	for i, name := range parts {
		cur := "/" + strings.Join(parts[:i+1], "/")
		f, err := openIn(root, cur)
		if errors.Is(err, unix.ENOENT) {
			// Created relative to a handle that was itself resolved in root.
			if err := unix.Mkdirat(int(parent.Fd()), name, mode); err != nil && !errors.Is(err, unix.EEXIST) {
				parent.Close()
				return nil, fmt.Errorf("mkdir %s in rootfs: %w", cur, err)
			}
			f, err = openIn(root, cur)
		}
		parent.Close()
		if err != nil {
			return nil, err
		}
		parent = f
	}
	return parent, nil
}
