// Package fsroot opens paths inside a directory tree as if it were "/": a
// container's rootfs, seen from the host. Every component, ".." and
// symlinks (absolute or relative) included, resolves inside the tree, with
// no window between check and use: openat2(RESOLVE_IN_ROOT), one system
// call per lookup; before Linux 5.6, securejoin in user space.
package fsroot

import (
	"errors"
	"os"
	"path"
	"strconv"
	"strings"

	securejoin "github.com/cyphar/filepath-securejoin"
	"golang.org/x/sys/unix"
)

// Resolve are the openat2 resolve flags used: inside the root, and no
// /proc magic links (which would lead anywhere).
const Resolve = unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS

// Rel is p as a path relative to the root ("." for the root itself).
func Rel(p string) string {
	rel := strings.TrimLeft(path.Clean("/"+p), "/")
	if rel == "" {
		return "."
	}
	return rel
}

// Open opens p, a path inside the tree whose root directory is root, with
// flags (O_CLOEXEC is added).
func Open(root *os.File, p string, flags int) (*os.File, error) {
	rel := Rel(p)
	fd, err := unix.Openat2(int(root.Fd()), rel, &unix.OpenHow{Flags: uint64(flags | unix.O_CLOEXEC), Resolve: Resolve})
	if errors.Is(err, unix.ENOSYS) {
		base, err := os.Readlink("/proc/self/fd/" + strconv.Itoa(int(root.Fd())))
		if err != nil {
			return nil, err
		}
		full, err := securejoin.SecureJoin(base, rel)
		if err != nil {
			return nil, err
		}
		return os.OpenFile(full, flags|unix.O_CLOEXEC, 0)
	}
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: p, Err: err}
	}
	return os.NewFile(uintptr(fd), p), nil
}
