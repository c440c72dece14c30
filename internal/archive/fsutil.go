package archive

import (
	"errors"
	"os"
	"strings"

	"golang.org/x/sys/unix"
)

// readDirNames lists directory fd (which may be O_PATH), unsorted.
func readDirNames(fd int) ([]string, error) {
	dfd, err := unix.Openat(fd, ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	f := os.NewFile(uintptr(dfd), ".")
	defer f.Close()
	return f.Readdirnames(-1)
}

// removeAllAt removes name in directory dirfd and everything below it,
// never following symlinks. A missing name is not an error.
func removeAllAt(dirfd int, name string) error {
	err := unix.Unlinkat(dirfd, name, 0)
	if err == nil || errors.Is(err, unix.ENOENT) {
		return nil
	}
	if !errors.Is(err, unix.EISDIR) {
		return err
	}
	fd, err := unix.Openat(dirfd, name, unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	names, err := readDirNames(fd)
	for _, n := range names {
		if err == nil {
			err = removeAllAt(fd, n)
		}
	}
	unix.Close(fd)
	if err != nil {
		return err
	}
	return unix.Unlinkat(dirfd, name, unix.AT_REMOVEDIR)
}

// xattrBuf is a growable scratch buffer for the xattr calls.
type xattrBuf []byte

// list returns the xattr names of path (not following a final symlink).
func (b *xattrBuf) list(path string) ([]string, error) {
	for {
		n, err := unix.Llistxattr(path, *b)
		if errors.Is(err, unix.ERANGE) {
			if n, err = unix.Llistxattr(path, nil); err != nil {
				return nil, err
			}
			*b = make([]byte, n+256)
			continue
		}
		if errors.Is(err, unix.ENOTSUP) || errors.Is(err, unix.EOPNOTSUPP) {
			return nil, nil
		}
		if err != nil || n == 0 {
			return nil, err
		}
		if n > len(*b) { // asked with an empty buffer: n is the size needed
			*b = make([]byte, n+256)
			continue
		}
		var names []string
		for _, s := range strings.Split(string((*b)[:n-1]), "\x00") {
			if s != "" {
				names = append(names, s)
			}
		}
		return names, nil
	}
}

// get returns the value of xattr name of path; it is valid until the next call.
func (b *xattrBuf) get(path, name string) ([]byte, error) {
	for {
		n, err := unix.Lgetxattr(path, name, *b)
		if errors.Is(err, unix.ERANGE) {
			if n, err = unix.Lgetxattr(path, name, nil); err != nil {
				return nil, err
			}
			*b = make([]byte, n+256)
			continue
		}
		if err != nil {
			return nil, err
		}
		if n > len(*b) {
			*b = make([]byte, n+256)
			continue
		}
		return (*b)[:n], nil
	}
}

// copyXattrs copies the xattrs of src to dst (both paths, final symlinks
// not followed), except overlayfs's own.
func copyXattrs(src, dst string) error {
	b := make(xattrBuf, 1024)
	names, err := b.list(src)
	if err != nil {
		return err
	}
	for _, n := range names {
		if strings.HasPrefix(n, overlayXattrPrefix) {
			continue
		}
		v, err := b.get(src, n)
		if err != nil {
			return err
		}
		if err := unix.Lsetxattr(dst, n, v, 0); err != nil {
			return err
		}
	}
	return nil
}
