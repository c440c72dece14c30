package archive

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"path"
	"slices"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/internal/errdefs"
)

const (
	overlayMetacopy = "trusted.overlay.metacopy"
	overlayRedirect = "trusted.overlay.redirect"
)

// DiffOptions tunes Diff.
type DiffOptions struct {
	// SourceDateEpoch, when not the zero time, clamps every mtime later
	// than it down to it (SOURCE_DATE_EPOCH, reproducible builds).
	SourceDateEpoch time.Time
}

// Diff writes the changes an overlay upper directory holds over its lower
// directories (top first) as an OCI layer tar:
//
//   - whiteouts (0/0 character devices) become ".wh.name" entries;
//   - opaque directories (trusted.overlay.opaque=y) are followed by a
//     ".wh..wh..opq" entry;
//   - files sharing an inode inside the upper become tar hardlinks to the
//     first name in walk order;
//   - xattrs are kept as PAX SCHILY.xattr records, except overlayfs's own.
//
// The order is deterministic: a depth-first walk, each directory followed
// by its opaque marker (if any) and then its entries sorted byte-wise by
// their names in the tar (so ".wh.x" sorts as written, not as "x"). mtimes are truncated to
// whole seconds and atimes/ctimes dropped, as docker does, so identical
// trees give identical bytes; set opts.SourceDateEpoch for clamping too.
//
// Only the upper is walked. Lower directories are read only for files
// overlayfs copied up metadata-only (metacopy), whose data stays below. A
// directory renamed with redirect_dir cannot be expressed from the upper
// alone and is refused (ErrNotImplemented); berth's snapshotter mounts with
// redirect_dir and metacopy off. The upper must not change during Diff
// (stop or pause the container).
func Diff(ctx context.Context, lowerDirs []string, upperDir string, w io.Writer, opts DiffOptions) error {
	t := &tarWalker{ctx: ctx, overlay: true, epoch: opts.SourceDateEpoch}
	for _, l := range lowerDirs {
		r, err := openDirRoot(l)
		if err != nil {
			t.close()
			return fmt.Errorf("archive: diff: lower: %w", err)
		}
		t.lowers = append(t.lowers, r)
	}
	defer t.close()
	if err := t.run(upperDir, w); err != nil {
		return fmt.Errorf("archive: diff %s: %w", upperDir, err)
	}
	return nil
}

// Tar writes the whole tree at dir as a tar stream, in Diff's order and
// format but with nothing translated: device nodes stay device nodes. It is
// what export and import use. The tree must not change during Tar.
func Tar(ctx context.Context, dir string, w io.Writer) error {
	t := &tarWalker{ctx: ctx}
	defer t.close()
	if err := t.run(dir, w); err != nil {
		return fmt.Errorf("archive: tar %s: %w", dir, err)
	}
	return nil
}

type tarWalker struct {
	ctx     context.Context
	overlay bool // translate overlayfs whiteouts and opaque dirs
	epoch   time.Time
	lowers  []*dirRoot

	tw    *tar.Writer
	buf   []byte
	xb    xattrBuf
	links map[devIno]string
}

type devIno struct{ dev, ino uint64 }

func (t *tarWalker) close() {
	for _, l := range t.lowers {
		l.close()
	}
}

func (t *tarWalker) run(dir string, w io.Writer) error {
	fd, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return classify(err)
	}
	defer unix.Close(fd)
	t.start(w)
	if err := t.walk(fd, ""); err != nil {
		return err
	}
	return t.tw.Close()
}

func (t *tarWalker) start(w io.Writer) {
	t.tw = tar.NewWriter(w)
	t.buf = make([]byte, copyBufSize)
	t.xb = make(xattrBuf, 4096)
	t.links = make(map[devIno]string)
}

// walk writes the entries below directory fd, whose path in the tar is rel
// ("" for the top).
func (t *tarWalker) walk(fd int, rel string) error {
	if err := t.ctx.Err(); err != nil {
		return err
	}
	names, err := readDirNames(fd)
	if err != nil {
		return fmt.Errorf("read dir %q: %w", rel, err)
	}
	// Sort by the names the entries get in the tar, which differ from the
	// directory's for whiteouts (".wh." prefix).
	ents := make([]dirEnt, len(names))
	for i, n := range names {
		e := &ents[i]
		e.base, e.name = n, n
		if rel != "" {
			e.name = strings.TrimSuffix(rel, "/") + "/" + n
		}
		if err := unix.Fstatat(fd, n, &e.st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return fmt.Errorf("%q: %w", e.name, classify(err))
		}
		e.key = n
		if t.isWhiteout(&e.st) {
			e.key = whiteoutPrefix + n
		}
	}
	slices.SortFunc(ents, func(a, b dirEnt) int { return strings.Compare(a.key, b.key) })
	for i := range ents {
		if err := t.entry(fd, &ents[i]); err != nil {
			return fmt.Errorf("%q: %w", ents[i].name, err)
		}
	}
	return nil
}

type dirEnt struct {
	base, name, key string
	st              unix.Stat_t
}

func (t *tarWalker) isWhiteout(st *unix.Stat_t) bool {
	return t.overlay && st.Mode&unix.S_IFMT == unix.S_IFCHR && st.Rdev == 0
}

func (t *tarWalker) entry(dirfd int, e *dirEnt) error {
	base, name, st := e.base, e.name, &e.st
	hdr := &tar.Header{
		Name:    name,
		Mode:    int64(st.Mode & 0o7777),
		Uid:     int(st.Uid),
		Gid:     int(st.Gid),
		ModTime: t.mtime(st.Mtim),
	}
	p := procPath(dirfd, base)
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFCHR:
		if t.isWhiteout(st) {
			dir, b := path.Split(name)
			hdr.Name = dir + whiteoutPrefix + b
			hdr.Typeflag = tar.TypeReg
			return t.tw.WriteHeader(hdr)
		}
		hdr.Typeflag = tar.TypeChar
		hdr.Devmajor, hdr.Devminor = int64(unix.Major(st.Rdev)), int64(unix.Minor(st.Rdev))
	case unix.S_IFBLK:
		hdr.Typeflag = tar.TypeBlock
		hdr.Devmajor, hdr.Devminor = int64(unix.Major(st.Rdev)), int64(unix.Minor(st.Rdev))
	case unix.S_IFIFO:
		hdr.Typeflag = tar.TypeFifo
	case unix.S_IFLNK:
		n, err := unix.Readlinkat(dirfd, base, t.buf)
		if err != nil {
			return err
		}
		hdr.Typeflag = tar.TypeSymlink
		hdr.Linkname = string(t.buf[:n])
	case unix.S_IFSOCK:
		return nil // sockets do not travel in tars (docker skips them too)
	case unix.S_IFDIR:
		hdr.Typeflag = tar.TypeDir
		if !strings.HasSuffix(hdr.Name, "/") { // "/" itself (TarEntry)
			hdr.Name += "/"
		}
	case unix.S_IFREG:
		if st.Nlink > 1 {
			key := devIno{uint64(st.Dev), st.Ino}
			if first, ok := t.links[key]; ok {
				hdr.Typeflag = tar.TypeLink
				hdr.Linkname = first
				return t.tw.WriteHeader(hdr)
			}
			t.links[key] = name
		}
		hdr.Typeflag = tar.TypeReg
		hdr.Size = st.Size
	}

	x, err := t.xattrs(p)
	if err != nil {
		return err
	}
	hdr.PAXRecords = x.pax

	switch hdr.Typeflag {
	case tar.TypeDir:
		if x.redirect {
			return fmt.Errorf("directory renamed by overlayfs redirect_dir: %w", errdefs.ErrNotImplemented)
		}
		if err := t.tw.WriteHeader(hdr); err != nil {
			return err
		}
		if x.opaque {
			if err := t.tw.WriteHeader(&tar.Header{
				Name: name + "/" + whiteoutOpaque, Typeflag: tar.TypeReg,
				Mode: hdr.Mode & 0o777, Uid: hdr.Uid, Gid: hdr.Gid, ModTime: hdr.ModTime,
			}); err != nil {
				return err
			}
		}
		sub, err := unix.Openat(dirfd, base, unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			return classify(err)
		}
		defer unix.Close(sub)
		return t.walk(sub, name)
	case tar.TypeReg:
		if err := t.tw.WriteHeader(hdr); err != nil {
			return err
		}
		if x.metacopy {
			return t.lowerData(name, x.redirectTo, hdr.Size)
		}
		fd, err := unix.Openat(dirfd, base, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			return classify(err)
		}
		defer unix.Close(fd)
		return t.data(fd, hdr.Size)
	}
	return t.tw.WriteHeader(hdr)
}

// mtime truncates to seconds and clamps to the epoch, if any.
func (t *tarWalker) mtime(ts unix.Timespec) time.Time {
	m := time.Unix(ts.Sec, 0)
	if !t.epoch.IsZero() && m.After(t.epoch) {
		m = t.epoch.Truncate(time.Second)
	}
	return m
}

type entryXattrs struct {
	pax        map[string]string
	opaque     bool
	metacopy   bool
	redirect   bool
	redirectTo string
}

func (t *tarWalker) xattrs(p string) (entryXattrs, error) {
	var x entryXattrs
	names, err := t.xb.list(p)
	if err != nil {
		return x, fmt.Errorf("list xattrs: %w", err)
	}
	for _, n := range names {
		v, err := t.xb.get(p, n)
		if errors.Is(err, unix.ENODATA) {
			continue
		}
		if err != nil {
			return x, fmt.Errorf("get xattr %s: %w", n, err)
		}
		if strings.HasPrefix(n, overlayXattrPrefix) {
			if !t.overlay {
				continue
			}
			switch n {
			case overlayOpaque:
				x.opaque = string(v) == "y"
			case overlayMetacopy:
				x.metacopy = true
			case overlayRedirect:
				x.redirect, x.redirectTo = true, string(v)
			}
			continue
		}
		if x.pax == nil {
			x.pax = make(map[string]string)
		}
		x.pax[paxXattr+n] = string(v)
	}
	return x, nil
}

// data copies exactly size bytes of fd into the tar.
func (t *tarWalker) data(fd int, size int64) error {
	for size > 0 {
		n, err := unix.Read(fd, t.buf[:min(int64(len(t.buf)), size)])
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return err
		}
		if n == 0 {
			return fmt.Errorf("file shrank while being read: %w", errdefs.ErrConflict)
		}
		if _, err := t.tw.Write(t.buf[:n]); err != nil {
			return err
		}
		size -= int64(n)
	}
	return nil
}

// lowerData copies the data of a metacopy file from the topmost lower layer
// that has it (at its redirect path, if overlayfs recorded one).
func (t *tarWalker) lowerData(name, redirect string, size int64) error {
	src := name
	if strings.HasPrefix(redirect, "/") {
		src = strings.TrimPrefix(path.Clean(redirect), "/")
	}
	dir, base := split(src)
	for _, l := range t.lowers {
		dfd, err := l.openDir(dir)
		if err != nil {
			continue
		}
		fd, err := unix.Openat(dfd, base, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		unix.Close(dfd)
		if err != nil {
			continue
		}
		err = t.data(fd, size)
		unix.Close(fd)
		return err
	}
	return fmt.Errorf("metacopy data not found in lower layers: %w", errdefs.ErrNotFound)
}
