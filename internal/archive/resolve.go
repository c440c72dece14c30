package archive

import (
	"errors"
	"fmt"
	"path"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/internal/errdefs"
)

// maxSymlinks bounds symlink expansion in the userspace resolver, like the
// kernel's own limit (40).
const maxSymlinks = 40

// errEscape marks a path that would leave the root. It is classed
// InvalidArgument: the layer, not the machine, is at fault.
var errEscape = fmt.Errorf("path leaves the layer root (absolute path, \"..\" or a symlink pointing outside): %w", errdefs.ErrInvalidArgument)

// dirRoot is an open directory under which every lookup is confined.
//
// Confinement has RESOLVE_BENEATH semantics, not chroot (RESOLVE_IN_ROOT)
// semantics: a path whose resolution would leave the root — through "..", an
// absolute symlink or a relative symlink climbing above the root — is refused
// with errEscape rather than reinterpreted inside the root. The issue asks for
// refusal ("link -> /etc" then "link/passwd" is an error naming the entry),
// and layer tars produced by a diff of real directories never route entries
// through symlinks, so real images are unaffected.
//
// Lookups use openat2(RESOLVE_BENEATH) when the kernel has it (one syscall,
// race-free) and otherwise walk the path component by component with
// O_NOFOLLOW, holding a file descriptor for every directory so a concurrent
// rename cannot redirect the walk.
type dirRoot struct {
	fd   int    // O_PATH descriptor of the root
	path string // for messages only; never used to resolve anything

	noOpenat2 bool // openat2 missing (ENOSYS) or refused by a filter, or forced by tests

	// inRoot: chroot semantics (RESOLVE_IN_ROOT) instead of refusal:
	// absolute symlinks start again at the root, ".." stops there.
	inRoot bool

	// A one-entry cache of the last directory looked up: tar streams list
	// the entries of one directory together, so this saves most lookups.
	cacheName string
	cacheFD   int
	stale     []int // invalidated cache fds, closed at the next lookup
}

func openDirRoot(p string) (*dirRoot, error) {
	fd, err := unix.Open(p, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", p, classify(err))
	}
	return &dirRoot{fd: fd, path: p, cacheFD: -1}, nil
}

func (r *dirRoot) close() {
	r.invalidate()
	r.closeStale()
	if r.fd >= 0 {
		unix.Close(r.fd)
		r.fd = -1
	}
}

// invalidate drops the cached directory. Called after anything is removed
// below the root, because a cached descriptor may then name a directory that
// is gone or that a path no longer leads to. The descriptor stays open until
// the next lookup: the caller may still be using it.
func (r *dirRoot) invalidate() {
	if r.cacheFD >= 0 {
		r.stale = append(r.stale, r.cacheFD)
	}
	r.cacheFD = -1
	r.cacheName = ""
}

func (r *dirRoot) closeStale() {
	for _, fd := range r.stale {
		unix.Close(fd)
	}
	r.stale = r.stale[:0]
}

// dirFD returns a descriptor of directory name (cleaned, relative, "." for
// the root). The descriptor belongs to r: do not close it, and do not hold it
// across another dirFD call.
func (r *dirRoot) dirFD(name string) (int, error) {
	r.closeStale()
	if name == "." {
		return r.fd, nil
	}
	if r.cacheFD >= 0 && r.cacheName == name {
		return r.cacheFD, nil
	}
	fd, err := r.openDir(name)
	if err != nil {
		return -1, err
	}
	r.invalidate()
	r.cacheFD, r.cacheName = fd, name
	return fd, nil
}

// openDir returns a new O_PATH descriptor of directory name, which the
// caller closes.
func (r *dirRoot) openDir(name string) (int, error) {
	if name == "." {
		return unix.Dup(r.fd)
	}
	if !r.noOpenat2 {
		fd, err := r.openat2(name)
		if !errors.Is(err, errNoOpenat2) {
			return fd, err
		}
		r.noOpenat2 = true
	}
	return r.walk(name)
}

var errNoOpenat2 = errors.New("openat2 unavailable")

func (r *dirRoot) openat2(name string) (int, error) {
	how := unix.OpenHow{
		Flags:   unix.O_PATH | unix.O_DIRECTORY | unix.O_CLOEXEC,
		Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_MAGICLINKS,
	}
	if r.inRoot {
		how.Resolve = unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS
	}
	for try := 0; ; try++ {
		fd, err := unix.Openat2(r.fd, name, &how)
		switch {
		case err == nil:
			return fd, nil
		case errors.Is(err, unix.EAGAIN) && try < 64:
			continue // a rename raced with ".." resolution: retry
		case errors.Is(err, unix.ENOSYS), errors.Is(err, unix.EPERM):
			// No openat2 (kernel < 5.6) or a seccomp filter refusing it.
			return -1, errNoOpenat2
		case errors.Is(err, unix.EXDEV):
			return -1, errEscape
		}
		return -1, err
	}
}

// walk resolves name below the root one component at a time, with the same
// semantics as openat2(RESOLVE_BENEATH): ".." never climbs above the root and
// absolute symlinks are refused (with inRoot, RESOLVE_IN_ROOT's: they
// start again at the root).
func (r *dirRoot) walk(name string) (int, error) {
	stack := []int{r.fd} // stack[0] is borrowed, the rest are owned
	defer func() {
		for _, fd := range stack[1:] {
			unix.Close(fd)
		}
	}()
	var linkBuf [unix.PathMax]byte
	rest := name
	links := 0
	for rest != "" {
		var comp string
		comp, rest, _ = strings.Cut(rest, "/")
		switch comp {
		case "", ".":
			continue
		case "..":
			if len(stack) == 1 {
				if r.inRoot {
					continue // ".." of "/" is "/"
				}
				return -1, errEscape
			}
			unix.Close(stack[len(stack)-1])
			stack = stack[:len(stack)-1]
			continue
		}
		fd, err := unix.Openat(stack[len(stack)-1], comp, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			return -1, err
		}
		var st unix.Stat_t
		if err := unix.Fstat(fd, &st); err != nil {
			unix.Close(fd)
			return -1, err
		}
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFDIR:
			stack = append(stack, fd)
		case unix.S_IFLNK:
			n, err := unix.Readlinkat(fd, "", linkBuf[:])
			unix.Close(fd)
			if err != nil {
				return -1, err
			}
			if links++; links > maxSymlinks {
				return -1, unix.ELOOP
			}
			target := string(linkBuf[:n])
			if path.IsAbs(target) {
				if !r.inRoot {
					return -1, errEscape
				}
				for _, fd := range stack[1:] {
					unix.Close(fd)
				}
				stack = stack[:1]
			}
			if rest != "" {
				target += "/" + rest
			}
			rest = target
		default:
			unix.Close(fd)
			return -1, unix.ENOTDIR
		}
	}
	if len(stack) == 1 {
		return unix.Dup(r.fd)
	}
	fd := stack[len(stack)-1]
	stack = stack[:len(stack)-1]
	return fd, nil
}

// cleanName turns a tar entry name into a cleaned path relative to the root,
// refusing absolute names and names that climb out of it.
func cleanName(name string) (string, error) {
	if strings.HasPrefix(name, "/") {
		return "", errEscape
	}
	c := path.Clean(name)
	if c == ".." || strings.HasPrefix(c, "../") {
		return "", errEscape
	}
	return c, nil
}

// split splits a cleaned relative path into its directory and base name.
func split(name string) (dir, base string) {
	i := strings.LastIndexByte(name, '/')
	if i < 0 {
		return ".", name
	}
	return name[:i], name[i+1:]
}

// join joins a cleaned relative directory and a base name.
func join(dir, base string) string {
	if dir == "." || dir == "" {
		return base
	}
	return dir + "/" + base
}

// procPath names base inside the directory open as dirfd, for the few calls
// that have no *at form (xattrs of symlinks and device nodes). The magic link
// pins the already-resolved directory, so nothing is looked up twice.
func procPath(dirfd int, base string) string {
	return "/proc/self/fd/" + strconv.Itoa(dirfd) + "/" + base
}

// classify wraps OS errors that have an errdefs class.
func classify(err error) error {
	switch {
	case errors.Is(err, unix.ENOENT):
		return fmt.Errorf("%w: %w", err, errdefs.ErrNotFound)
	case errors.Is(err, unix.EEXIST):
		return fmt.Errorf("%w: %w", err, errdefs.ErrAlreadyExists)
	case errors.Is(err, unix.EPERM), errors.Is(err, unix.EACCES):
		return fmt.Errorf("%w: %w", err, errdefs.ErrPermissionDenied)
	case errors.Is(err, unix.EXDEV), errors.Is(err, unix.ELOOP):
		return fmt.Errorf("%w: %w", err, errdefs.ErrInvalidArgument)
	}
	return err
}
