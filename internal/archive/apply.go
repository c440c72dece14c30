package archive

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path"
	"strings"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/internal/errdefs"
)

// Names with a meaning in layer tars (OCI image-spec, layer.md).
const (
	whiteoutPrefix = ".wh."
	whiteoutMeta   = ".wh..wh." // aufs bookkeeping (.wh..wh.plnk, ...): ignored
	whiteoutOpaque = ".wh..wh..opq"

	paxXattr = "SCHILY.xattr."

	overlayXattrPrefix = "trusted.overlay."
	overlayOpaque      = "trusted.overlay.opaque"
)

// copyBufSize is the one buffer Apply and Diff copy file data through.
const copyBufSize = 1 << 20

// Regular files of at least directMin bytes are written with O_DIRECT, in
// blocks of directAlign bytes from a buffer aligned to that (see fill).
// Layer content is written once and read back rarely soon after, and going
// through the page cache costs a memory copy and fresh page-cache pages;
// on this VM touching memory the host has reclaimed costs ~2 ms per MB,
// which made the copy into the page cache as expensive as gunzip itself.
// Small files stay buffered: their tail block goes through the page cache
// anyway and a direct write waits for the disk.
const (
	directMin   = 128 << 10
	directAlign = 4096
)

// ApplyOptions tunes Apply.
type ApplyOptions struct {
	// OverlayWhiteouts turns whiteouts into overlayfs ones: ".wh.name"
	// becomes a 0/0 character device at name and ".wh..wh..opq" the xattr
	// trusted.overlay.opaque=y on its directory. Use it when root is an
	// overlay upper (a snapshot on top of parents). When false, root is a
	// plain directory holding the lower layers' content too (flattening):
	// whiteouts delete the lower paths instead.
	OverlayWhiteouts bool

	// Parents are the lower layer directories, top first, when root is an
	// overlay upper. Apply reads them, confined like root, to copy up a
	// hardlink target that lives in a lower layer and to give directories
	// the layer implies (but does not list) their lower owner and mode.
	Parents []string

	// ParentsReady, when set, says the Parents may still be being written
	// (a pull unpacking several layers at once): Apply calls it, once,
	// before it first reads them and gives up if it fails. Until then it
	// works without them: the directories the layer implies are created
	// root-owned 0755 and take their lower owner, mode and times at the end
	// (unless the layer lists them itself), and a hardlink to a file only a
	// parent has waits for the parents. The result is the same as with
	// ready parents; a layer that lists its directories (as docker's diffs
	// do) never waits until its end.
	ParentsReady func() error

	// UIDMap and GIDMap remap ownership (user namespaces). Empty means
	// identity; otherwise an id outside every range is an error.
	UIDMap, GIDMap []IDMap

	// NoSync skips the final syncfs. See Apply.
	NoSync bool

	// Logger receives skipped-xattr notes; nil means slog.Default().
	Logger *slog.Logger

	// Literal treats every name as a plain file name: ".wh." entries are
	// files, not whiteouts (docker cp extracts archives, not layers).
	Literal bool

	// NoOverwriteDirNonDir refuses to replace an existing directory with a
	// non-directory or the other way round (docker cp's default).
	NoOverwriteDirNonDir bool

	// Owner, when set, owns every entry instead of the tar's uid/gid
	// (docker cp --archive chowns to the container's user).
	Owner *IDPair

	// InRoot makes root a filesystem root, as a chroot would: symlinks
	// (absolute ones too) and ".." resolve inside it instead of being
	// refused, and Dir (a directory below root) is where the entries go.
	// This is docker cp's extraction into a container.
	InRoot bool
	Dir    string
}

// IDPair is a uid and a gid.
type IDPair struct{ UID, GID int }

// IDMap maps Size ids starting at ContainerID to ids starting at HostID.
type IDMap struct {
	ContainerID, HostID, Size uint32
}

// Apply unpacks the layer tar read from r (already decompressed: see
// DecompressStream) into directory root and returns the bytes of regular
// file content written (Docker's notion of a layer's size).
//
// Every entry is confined to root: names that are absolute or climb out with
// "..", parents that resolve through a symlink leaving root, and hardlinks to
// targets outside root are refused with an error naming the entry, before
// anything is written for that entry. The error is classed
// errdefs.ErrInvalidArgument. On error, root holds a partial layer and should
// be discarded.
//
// Apply reads r to its end (past the tar trailer) so a digest computed over
// r by the caller covers the whole stream.
//
// Durability: files are not fsynced one by one. Unless NoSync is set, Apply
// ends with one syncfs(2) of root's filesystem, which flushes every file
// written here in a single pass; callers record the layer as committed only
// after Apply returns, so a crash never leaves a record of a layer whose
// data was lost.
//
// xattrs: "trusted.overlay.*" records in the tar are ignored, since they
// would let a layer forge overlayfs state (opaque dirs, redirects). An
// xattr the kernel refuses as such (EPERM or ENOTSUP: an SELinux label with
// no policy loaded, a filesystem without that namespace, "user.*" on a
// symlink, which Linux never allows) is skipped with a warning (once per
// Apply, then at debug level) instead of failing the pull, as docker does;
// the file is still usable, minus e.g. a file capability. Any other xattr
// failure (ENOSPC, E2BIG...) fails the entry.
//
// The entry for root itself ("./") is skipped: root's owner and mode belong
// to the snapshotter.
func Apply(ctx context.Context, root string, r io.Reader, opts ApplyOptions) (int64, error) {
	a, err := newApplier(root, opts)
	if err != nil {
		return 0, err
	}
	defer a.close()
	a.ctx = ctx
	return a.apply(ctx, r)
}

type applier struct {
	ctx     context.Context
	opts    ApplyOptions
	log     *slog.Logger
	root    *dirRoot
	parents []*dirRoot
	buf     []byte

	dirs []dirTimes // directory times, set at the end
	// implied are directories mkdirAll made while the parents were not
	// ready; listed are the directories the layer's own entries set (these
	// keep their attributes). Only used with ParentsReady.
	implied      []string
	listed       map[string]struct{}
	parentsWait  bool                // ParentsReady has been called
	parentsError error               // what it returned
	written      map[string]struct{} // paths this layer wrote; plain mode only
	size         int64

	warnedXattr bool
	noDirect    bool // the filesystem refused O_DIRECT: write buffered
}

// alignedBuf returns size bytes starting at a multiple of align (a power
// of two), as O_DIRECT wants of the memory it transfers.
func alignedBuf(size, align int) []byte {
	b := make([]byte, size+align)
	off := 0
	if r := int(uintptr(unsafe.Pointer(&b[0])) & uintptr(align-1)); r != 0 {
		off = align - r
	}
	return b[off : off+size : off+size]
}

type dirTimes struct {
	name string
	ts   [2]unix.Timespec
}

func newApplier(root string, opts ApplyOptions) (*applier, error) {
	rt, err := openDirRoot(root)
	if err != nil {
		return nil, fmt.Errorf("archive: apply: %w", err)
	}
	rt.inRoot = opts.InRoot
	a := &applier{opts: opts, log: opts.Logger, root: rt, buf: alignedBuf(copyBufSize, directAlign)}
	if a.log == nil {
		a.log = slog.Default()
	}
	if !opts.OverlayWhiteouts {
		a.written = make(map[string]struct{})
	}
	if opts.ParentsReady != nil {
		a.listed = make(map[string]struct{})
	}
	for _, p := range opts.Parents {
		pr, err := openDirRoot(p)
		if err != nil {
			a.close()
			return nil, fmt.Errorf("archive: apply: parent layer: %w", err)
		}
		a.parents = append(a.parents, pr)
	}
	return a, nil
}

func (a *applier) close() {
	a.root.close()
	for _, p := range a.parents {
		p.close()
	}
}

func (a *applier) apply(ctx context.Context, r io.Reader) (int64, error) {
	tr := tar.NewReader(r)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return a.size, fmt.Errorf("archive: read layer: %w", err)
		}
		if err := ctx.Err(); err != nil {
			return a.size, err
		}
		if err := a.entry(hdr, tr); err != nil {
			return a.size, fmt.Errorf("archive: entry %q: %w", hdr.Name, err)
		}
	}
	// Drain the zero blocks after the trailer so the caller's digest sees
	// the whole stream.
	if _, err := io.CopyBuffer(io.Discard, r, a.buf); err != nil {
		return a.size, fmt.Errorf("archive: read layer trailer: %w", err)
	}
	if err := a.finishImplied(); err != nil {
		return a.size, fmt.Errorf("archive: %w", err)
	}
	// Directory times last: creating children changed them. Reverse order
	// is not needed (a directory's times do not change its parent's).
	for _, d := range a.dirs {
		if err := a.setTimes(d.name, d.ts); err != nil && !errors.Is(err, unix.ENOENT) {
			return a.size, fmt.Errorf("archive: entry %q: set times: %w", d.name, err)
		}
	}
	if !a.opts.NoSync {
		fd, err := unix.Open(a.root.path, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			return a.size, fmt.Errorf("archive: sync %s: %w", a.root.path, err)
		}
		err = unix.Syncfs(fd)
		unix.Close(fd)
		if err != nil {
			return a.size, fmt.Errorf("archive: syncfs %s: %w", a.root.path, err)
		}
	}
	return a.size, nil
}

func (a *applier) entry(hdr *tar.Header, tr io.Reader) error {
	name, err := cleanName(hdr.Name)
	if err != nil {
		return err
	}
	if name == "." {
		return nil
	}
	name = a.below(name)
	dir, base := split(name)
	if strings.HasPrefix(base, whiteoutPrefix) && !a.opts.Literal {
		switch {
		case base == whiteoutOpaque:
			return a.opaque(dir)
		case strings.HasPrefix(base, whiteoutMeta):
			return nil
		}
		target := base[len(whiteoutPrefix):]
		if target == "" || target == "." || target == ".." {
			return fmt.Errorf("bad whiteout name: %w", errdefs.ErrInvalidArgument)
		}
		return a.whiteout(dir, target)
	}

	uid, gid, err := a.mapIDs(hdr.Uid, hdr.Gid)
	if err != nil {
		return err
	}
	mode := uint32(hdr.Mode) & 0o7777
	switch hdr.Typeflag {
	case tar.TypeReg, tar.TypeGNUSparse, tar.TypeCont:
		err = a.regular(dir, base, hdr, tr, uid, gid, mode)
	case tar.TypeDir:
		err = a.dir(dir, base, hdr, uid, gid, mode)
	case tar.TypeSymlink:
		err = a.symlink(dir, base, hdr, uid, gid)
	case tar.TypeLink:
		err = a.hardlink(dir, base, hdr)
	case tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
		err = a.node(dir, base, hdr, uid, gid, mode)
	case tar.TypeXGlobalHeader:
		return nil
	default:
		return fmt.Errorf("unsupported tar entry type %q: %w", hdr.Typeflag, errdefs.ErrInvalidArgument)
	}
	if err != nil {
		return err
	}
	a.markWritten(name)
	return nil
}

// below places an entry's cleaned name under opts.Dir.
func (a *applier) below(name string) string {
	if a.opts.Dir == "" {
		return name
	}
	d := strings.Trim(path.Clean("/"+a.opts.Dir), "/")
	if d == "" {
		return name
	}
	return d + "/" + name
}

// markWritten records, in plain mode, that this layer wrote name, and so
// that every ancestor holds something of this layer (an opaque marker must
// keep those directories and clear only their lower content).
func (a *applier) markWritten(name string) {
	if a.written == nil {
		return
	}
	for name != "." {
		if _, ok := a.written[name]; ok {
			return
		}
		a.written[name] = struct{}{}
		name, _ = split(name)
	}
}

// parent returns the directory an entry goes in, creating the directories
// the layer implies but does not list.
func (a *applier) parent(dir string) (int, error) {
	fd, err := a.root.dirFD(dir)
	if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENOTDIR) {
		if err = a.mkdirAll(dir); err == nil {
			fd, err = a.root.dirFD(dir)
		}
	}
	if err != nil {
		return -1, fmt.Errorf("parent directory %q: %w", dir, classify(err))
	}
	return fd, nil
}

// mkdirAll creates dir and its missing ancestors. In an overlay upper they
// take owner, mode and times from the lower directory they shadow (as
// overlayfs's own copy-up does), else root-owned 0755. A whiteout this layer
// put in the way is replaced by an opaque directory (see create).
func (a *applier) mkdirAll(dir string) error {
	if dir == "." {
		return nil
	}
	fd, err := a.root.openDir(dir)
	if err == nil {
		unix.Close(fd)
		return nil
	}
	if !errors.Is(err, unix.ENOENT) && !errors.Is(err, unix.ENOTDIR) {
		return err
	}
	pdir, base := split(dir)
	if err := a.mkdirAll(pdir); err != nil {
		return err
	}
	pfd, err := a.root.openDir(pdir)
	if err != nil {
		return err
	}
	defer unix.Close(pfd)
	// Only a directory or this layer's whiteout may be in the way; through
	// anything else (a file, a symlink to a file) the path is not a
	// directory, as in docker.
	var st unix.Stat_t
	if err := unix.Fstatat(pfd, base, &st, unix.AT_SYMLINK_NOFOLLOW); err == nil {
		isWhiteout := st.Mode&unix.S_IFMT == unix.S_IFCHR && st.Rdev == 0 && a.opts.OverlayWhiteouts
		if st.Mode&unix.S_IFMT != unix.S_IFDIR && !isWhiteout {
			return unix.ENOTDIR
		}
	}
	res, err := a.create(pfd, base, true, func() error { return unix.Mkdirat(pfd, base, 0o755) })
	if err != nil || res == keptDir {
		return err
	}
	a.markWritten(dir)
	if res == replacedWhiteout {
		return setOpaque(pfd, base)
	}
	if a.opts.ParentsReady != nil && !a.parentsWait {
		a.implied = append(a.implied, dir)
		return nil
	}
	return a.lowerAttrs(pfd, base, dir)
}

// lowerAttrs gives directory name (base in pfd), which this layer implies,
// the owner, mode and times of the lower directory it shadows, if any.
func (a *applier) lowerAttrs(pfd int, base, name string) error {
	if st, ok := a.lowerStat(name); ok && st.Mode&unix.S_IFMT == unix.S_IFDIR {
		if err := unix.Fchownat(pfd, base, int(st.Uid), int(st.Gid), unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return err
		}
		if err := unix.Fchmodat(pfd, base, st.Mode&0o7777, 0); err != nil {
			return err
		}
		// Set at the end, after the layer's entries below it changed them.
		a.dirs = append(a.dirs, dirTimes{name: name, ts: [2]unix.Timespec{st.Atim, st.Mtim}})
	}
	return nil
}

// waitParents calls ParentsReady once; after it, the parents are complete.
func (a *applier) waitParents() error {
	if a.opts.ParentsReady == nil {
		return nil
	}
	if !a.parentsWait {
		a.parentsWait = true
		a.parentsError = a.opts.ParentsReady()
	}
	if a.parentsError != nil {
		return fmt.Errorf("parent layers: %w", a.parentsError)
	}
	return nil
}

// finishImplied waits for the parents, then does what mkdirAll deferred
// for the implied directories still there that no later entry listed:
// exactly what it would have done with the parents ready, since entries
// only change a directory's attributes by listing it.
func (a *applier) finishImplied() error {
	if err := a.waitParents(); err != nil {
		return err
	}
	for _, dir := range a.implied {
		if _, ok := a.listed[dir]; ok {
			continue
		}
		pdir, base := split(dir)
		pfd, err := a.root.dirFD(pdir)
		if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENOTDIR) {
			continue // removed again by a later entry
		}
		if err != nil {
			return fmt.Errorf("entry %q: %w", dir, classify(err))
		}
		var st unix.Stat_t
		if err := unix.Fstatat(pfd, base, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil || st.Mode&unix.S_IFMT != unix.S_IFDIR {
			continue
		}
		if err := a.lowerAttrs(pfd, base, dir); err != nil {
			return fmt.Errorf("entry %q: %w", dir, classify(err))
		}
	}
	a.implied = nil
	return nil
}

// lowerStat stats name in the topmost parent layer that has it.
func (a *applier) lowerStat(name string) (unix.Stat_t, bool) {
	var st unix.Stat_t
	dir, base := split(name)
	for _, p := range a.parents {
		fd, err := p.dirFD(dir)
		if err != nil {
			continue
		}
		if unix.Fstatat(fd, base, &st, unix.AT_SYMLINK_NOFOLLOW) == nil {
			return st, true
		}
	}
	return st, false
}

// createResult says what create found in the way.
type createResult int

const (
	created          createResult = iota // nothing was there
	replaced                             // something was, and was removed
	replacedWhiteout                     // an overlay whiteout was, and was removed
	keptDir                              // a directory was, and was kept
)

// create runs mk, and when name exists, clears the way and runs it again.
// An existing directory is kept when keepDir is set (a directory entry over
// a directory merges with it).
//
// In an overlay upper, a directory replacing a whiteout of this same layer
// must be opaque: the layer said "delete the lower one, then create this",
// without the opaque marker docker would have written. Callers making
// directories check for replacedWhiteout.
func (a *applier) create(pfd int, base string, keepDir bool, mk func() error) (createResult, error) {
	err := mk()
	if !errors.Is(err, unix.EEXIST) {
		return created, err
	}
	var st unix.Stat_t
	if err := unix.Fstatat(pfd, base, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return created, err
	}
	res := replaced
	if isDir := st.Mode&unix.S_IFMT == unix.S_IFDIR; a.opts.NoOverwriteDirNonDir && isDir != keepDir {
		if isDir {
			return created, fmt.Errorf("cannot overwrite directory %q with non-directory: %w", base, errdefs.ErrInvalidArgument)
		}
		return created, fmt.Errorf("cannot overwrite non-directory %q with directory: %w", base, errdefs.ErrInvalidArgument)
	}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFDIR:
		if keepDir {
			return keptDir, nil
		}
		if err := removeAllAt(pfd, base); err != nil {
			return created, err
		}
	case unix.S_IFCHR:
		if a.opts.OverlayWhiteouts && st.Rdev == 0 {
			res = replacedWhiteout
		}
		fallthrough
	default:
		if err := unix.Unlinkat(pfd, base, 0); err != nil {
			return created, err
		}
	}
	a.root.invalidate()
	return res, mk()
}

func (a *applier) regular(dir, base string, hdr *tar.Header, r io.Reader, uid, gid int, mode uint32) error {
	pfd, err := a.parent(dir)
	if err != nil {
		return err
	}
	fd := -1
	direct := hdr.Size >= directMin && !a.noDirect
	_, err = a.create(pfd, base, false, func() error {
		var err error
		flags := unix.O_WRONLY | unix.O_CREAT | unix.O_EXCL | unix.O_NOFOLLOW | unix.O_CLOEXEC
		if direct {
			fd, err = unix.Openat(pfd, base, flags|unix.O_DIRECT, 0o600)
			if !errors.Is(err, unix.EINVAL) {
				return err
			}
			// The filesystem has no direct I/O: buffered from now on. The
			// kernel refuses O_DIRECT after creating the file, so the name
			// is ours now (it was free: no EEXIST).
			a.noDirect, direct = true, false
			flags = flags&^unix.O_EXCL | unix.O_TRUNC
		}
		fd, err = unix.Openat(pfd, base, flags, 0o600)
		return err
	})
	if err != nil {
		return fmt.Errorf("create: %w", classify(err))
	}
	err = a.fill(fd, r, hdr.Size, direct)
	if err == nil {
		// Owner before mode (chown clears setuid/setgid) and xattrs last
		// (chown and writes clear security.capability).
		err = a.attrs(fd, uid, gid, mode, hdr)
	}
	if cerr := unix.Close(fd); err == nil && cerr != nil {
		err = fmt.Errorf("close: %w", cerr)
	}
	if err != nil {
		return err
	}
	a.size += hdr.Size
	ts := times(hdr)
	return unix.UtimesNanoAt(pfd, base, ts[:], unix.AT_SYMLINK_NOFOLLOW)
}

// fill copies size bytes from r to fd through the shared buffer, filling it
// before each write so big files take few syscalls.
//
// When direct is set, fd was opened with O_DIRECT: the whole blocks go
// from the buffer to the disk without passing through the page cache, and
// the last partial block, which direct I/O cannot write, goes through the
// page cache after O_DIRECT is cleared. A filesystem refusing the direct
// write (EINVAL) gets the data buffered, and no more direct opens.
func (a *applier) fill(fd int, r io.Reader, size int64, direct bool) error {
	for size > 0 {
		n := int64(len(a.buf))
		if size < n {
			n = size
		}
		m, err := io.ReadFull(r, a.buf[:n])
		if err != nil {
			return fmt.Errorf("read content: %w", err)
		}
		b := a.buf[:m]
		if direct {
			w, err := writeAllN(fd, b[:len(b)&^(directAlign-1)])
			b = b[w:]
			if err == nil && len(b) == 0 {
				size -= int64(m)
				continue
			}
			if err != nil && !errors.Is(err, unix.EINVAL) {
				return fmt.Errorf("write: %w", err)
			}
			if err != nil {
				a.noDirect = true
			}
			// The tail (or, after EINVAL, everything not yet written) goes
			// buffered. F_SETFL only changes the status flags, and this fd
			// has no other one set.
			if _, err := unix.FcntlInt(uintptr(fd), unix.F_SETFL, 0); err != nil {
				return fmt.Errorf("clear O_DIRECT: %w", err)
			}
			direct = false
		}
		if err := writeAll(fd, b); err != nil {
			return fmt.Errorf("write: %w", err)
		}
		size -= int64(m)
	}
	return nil
}

func writeAll(fd int, b []byte) error {
	_, err := writeAllN(fd, b)
	return err
}

// writeAllN writes b to fd and returns how much of it was written.
func writeAllN(fd int, b []byte) (int, error) {
	done := 0
	for done < len(b) {
		n, err := unix.Write(fd, b[done:])
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return done, err
		}
		done += n
	}
	return done, nil
}

// attrs sets owner, mode and xattrs through an open descriptor.
func (a *applier) attrs(fd, uid, gid int, mode uint32, hdr *tar.Header) error {
	if err := unix.Fchown(fd, uid, gid); err != nil {
		return fmt.Errorf("chown: %w", classify(err))
	}
	if err := unix.Fchmod(fd, mode); err != nil {
		return fmt.Errorf("chmod: %w", classify(err))
	}
	return a.xattrs(hdr, func(k string, v []byte) error { return unix.Fsetxattr(fd, k, v, 0) })
}

func (a *applier) xattrs(hdr *tar.Header, set func(k string, v []byte) error) error {
	for k, v := range hdr.PAXRecords {
		name, ok := strings.CutPrefix(k, paxXattr)
		if !ok {
			continue
		}
		if strings.HasPrefix(name, overlayXattrPrefix) {
			a.log.Debug("archive: ignoring overlay xattr in layer", "entry", hdr.Name, "xattr", name)
			continue
		}
		err := set(name, []byte(v))
		if err == nil {
			continue
		}
		if errors.Is(err, unix.EPERM) || errors.Is(err, unix.ENOTSUP) || errors.Is(err, unix.EOPNOTSUPP) {
			lvl := slog.LevelDebug
			if !a.warnedXattr {
				lvl, a.warnedXattr = slog.LevelWarn, true
			}
			a.log.Log(a.ctx, lvl, "archive: skipping xattr the kernel refuses", "entry", hdr.Name, "xattr", name, "err", err)
			continue
		}
		return fmt.Errorf("set xattr %s: %w", name, classify(err))
	}
	return nil
}

func (a *applier) dir(dir, base string, hdr *tar.Header, uid, gid int, mode uint32) error {
	pfd, err := a.parent(dir)
	if err != nil {
		return err
	}
	res, err := a.create(pfd, base, true, func() error { return unix.Mkdirat(pfd, base, 0o700) })
	if err != nil {
		return fmt.Errorf("mkdir: %w", classify(err))
	}
	fd, err := unix.Openat(pfd, base, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open dir: %w", classify(err))
	}
	err = a.attrs(fd, uid, gid, mode, hdr)
	if err == nil && res == replacedWhiteout {
		err = unix.Fsetxattr(fd, overlayOpaque, []byte("y"), 0)
	}
	unix.Close(fd)
	if err != nil {
		return err
	}
	a.dirs = append(a.dirs, dirTimes{name: join(dir, base), ts: times(hdr)})
	if a.listed != nil {
		a.listed[join(dir, base)] = struct{}{}
	}
	return nil
}

func (a *applier) symlink(dir, base string, hdr *tar.Header, uid, gid int) error {
	pfd, err := a.parent(dir)
	if err != nil {
		return err
	}
	// Any target is fine: it is only followed through dirRoot, which refuses
	// targets leaving root, or inside the container.
	if _, err := a.create(pfd, base, false, func() error { return unix.Symlinkat(hdr.Linkname, pfd, base) }); err != nil {
		return fmt.Errorf("symlink: %w", classify(err))
	}
	return a.pathAttrs(pfd, base, uid, gid, 0, false, hdr)
}

func (a *applier) node(dir, base string, hdr *tar.Header, uid, gid int, mode uint32) error {
	pfd, err := a.parent(dir)
	if err != nil {
		return err
	}
	typ := uint32(unix.S_IFIFO)
	switch hdr.Typeflag {
	case tar.TypeChar:
		typ = unix.S_IFCHR
	case tar.TypeBlock:
		typ = unix.S_IFBLK
	}
	dev := int(unix.Mkdev(uint32(hdr.Devmajor), uint32(hdr.Devminor)))
	if _, err := a.create(pfd, base, false, func() error { return unix.Mknodat(pfd, base, typ|0o600, dev) }); err != nil {
		return fmt.Errorf("mknod: %w", classify(err))
	}
	return a.pathAttrs(pfd, base, uid, gid, mode, true, hdr)
}

// pathAttrs sets owner, mode, xattrs and times of a node that cannot be
// opened for the purpose (symlink, device, fifo).
func (a *applier) pathAttrs(pfd int, base string, uid, gid int, mode uint32, chmod bool, hdr *tar.Header) error {
	if err := unix.Fchownat(pfd, base, uid, gid, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("chown: %w", classify(err))
	}
	if chmod {
		// Not a symlink, so following is moot; the node was just created
		// by mknod and nothing else writes below root during Apply.
		if err := unix.Fchmodat(pfd, base, mode, 0); err != nil {
			return fmt.Errorf("chmod: %w", classify(err))
		}
	}
	if len(hdr.PAXRecords) > 0 {
		p := procPath(pfd, base)
		if err := a.xattrs(hdr, func(k string, v []byte) error { return unix.Lsetxattr(p, k, v, 0) }); err != nil {
			return err
		}
	}
	ts := times(hdr)
	return unix.UtimesNanoAt(pfd, base, ts[:], unix.AT_SYMLINK_NOFOLLOW)
}

func (a *applier) hardlink(dir, base string, hdr *tar.Header) error {
	target, err := cleanName(hdr.Linkname)
	if err != nil {
		return fmt.Errorf("hardlink target %q: %w", hdr.Linkname, err)
	}
	if target == "." {
		return fmt.Errorf("hardlink to the root: %w", errdefs.ErrInvalidArgument)
	}
	target = a.below(target)
	if target == join(dir, base) {
		return nil // a link to itself: nothing to do
	}
	_, tbase := split(target)
	tfd, err := a.linkTarget(target)
	if err != nil {
		return fmt.Errorf("hardlink target %q: %w", hdr.Linkname, classify(err))
	}
	defer unix.Close(tfd)
	pfd, err := a.parent(dir)
	if err != nil {
		return err
	}
	// linkat without AT_SYMLINK_FOLLOW links a symlink target itself, which
	// is what a tar hardlink to a symlink means.
	if _, err := a.create(pfd, base, false, func() error { return unix.Linkat(tfd, tbase, pfd, base, 0) }); err != nil {
		return fmt.Errorf("link to %q: %w", hdr.Linkname, classify(err))
	}
	return nil
}

// linkTarget returns a descriptor of the directory holding target in root,
// copying target up from a parent layer when only a parent has it.
func (a *applier) linkTarget(target string) (int, error) {
	tdir, tbase := split(target)
	tfd, err := a.root.openDir(tdir)
	if err == nil {
		var st unix.Stat_t
		err = unix.Fstatat(tfd, tbase, &st, unix.AT_SYMLINK_NOFOLLOW)
		if err == nil && st.Mode&unix.S_IFMT == unix.S_IFDIR {
			err = unix.EISDIR
		}
		if err == nil {
			return tfd, nil
		}
		unix.Close(tfd)
	}
	if errors.Is(err, unix.ENOENT) && len(a.parents) > 0 {
		if err := a.waitParents(); err != nil {
			return -1, err
		}
		return a.copyUp(target)
	}
	return -1, err
}

// copyUp copies target (a path a hardlink names) from the topmost parent
// layer that has it into root, as overlayfs would on first write, and
// returns a descriptor of its directory in root. A layer may hardlink to a
// lower file; overlay cannot share an inode across layers, so the upper gets
// an identical copy that the new link then shares.
func (a *applier) copyUp(target string) (int, error) {
	dir, base := split(target)
	for _, p := range a.parents {
		lfd, err := p.openDir(dir)
		if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENOTDIR) {
			continue
		}
		if err != nil {
			return -1, err
		}
		var st unix.Stat_t
		err = unix.Fstatat(lfd, base, &st, unix.AT_SYMLINK_NOFOLLOW)
		if errors.Is(err, unix.ENOENT) {
			unix.Close(lfd)
			continue
		}
		if err == nil {
			err = a.copyNode(lfd, base, &st, target)
		}
		unix.Close(lfd)
		if err != nil {
			return -1, err
		}
		return a.root.openDir(dir)
	}
	return -1, unix.ENOENT
}

// copyNode copies the node base in lower directory lfd to name in root,
// with owner, mode, xattrs and times.
func (a *applier) copyNode(lfd int, base string, st *unix.Stat_t, name string) error {
	dir, nbase := split(name)
	pfd, err := a.parent(dir)
	if err != nil {
		return err
	}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFREG:
		src, err := unix.Openat(lfd, base, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			return err
		}
		defer unix.Close(src)
		dst, err := unix.Openat(pfd, nbase, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
		if err != nil {
			return err
		}
		err = copyFd(dst, src, st.Size, a.buf)
		if err == nil {
			err = unix.Fchown(dst, int(st.Uid), int(st.Gid))
		}
		if err == nil {
			err = unix.Fchmod(dst, st.Mode&0o7777)
		}
		unix.Close(dst)
		if err != nil {
			return err
		}
	case unix.S_IFLNK:
		n, err := unix.Readlinkat(lfd, base, a.buf)
		if err != nil {
			return err
		}
		if err := unix.Symlinkat(string(a.buf[:n]), pfd, nbase); err != nil {
			return err
		}
		if err := unix.Fchownat(pfd, nbase, int(st.Uid), int(st.Gid), unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return err
		}
	case unix.S_IFDIR:
		return unix.EISDIR
	default:
		if err := unix.Mknodat(pfd, nbase, st.Mode, int(st.Rdev)); err != nil {
			return err
		}
		if err := unix.Fchownat(pfd, nbase, int(st.Uid), int(st.Gid), unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return err
		}
		if err := unix.Fchmodat(pfd, nbase, st.Mode&0o7777, 0); err != nil {
			return err
		}
	}
	if err := copyXattrs(procPath(lfd, base), procPath(pfd, nbase)); err != nil {
		return err
	}
	ts := [2]unix.Timespec{st.Atim, st.Mtim}
	return unix.UtimesNanoAt(pfd, nbase, ts[:], unix.AT_SYMLINK_NOFOLLOW)
}

// copyFd copies size bytes from src to dst, in the kernel when it can.
func copyFd(dst, src int, size int64, buf []byte) error {
	for size > 0 {
		n, err := unix.CopyFileRange(src, nil, dst, nil, int(min(size, 1<<30)), 0)
		if err != nil || n == 0 {
			break // EXDEV, EINVAL, ...: fall back to read/write
		}
		size -= int64(n)
	}
	for size > 0 {
		n, err := unix.Read(src, buf[:min(int64(len(buf)), size)])
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return err
		}
		if n == 0 {
			return io.ErrUnexpectedEOF
		}
		if err := writeAll(dst, buf[:n]); err != nil {
			return err
		}
		size -= int64(n)
	}
	return nil
}

// whiteout hides name (in dir) of the lower layers.
func (a *applier) whiteout(dir, name string) error {
	full := join(dir, name)
	if !a.opts.OverlayWhiteouts {
		// Plain directory: delete the lower path. Per the image spec a
		// whiteout never hides what its own layer added.
		if _, ok := a.written[full]; ok {
			return nil
		}
		pfd, err := a.root.dirFD(dir)
		if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENOTDIR) {
			return nil // nothing below to hide
		}
		if err != nil {
			return fmt.Errorf("whiteout parent %q: %w", dir, classify(err))
		}
		if err := removeAllAt(pfd, name); err != nil && !errors.Is(err, unix.ENOENT) {
			return fmt.Errorf("whiteout: %w", classify(err))
		}
		a.root.invalidate()
		return nil
	}
	pfd, err := a.parent(dir)
	if err != nil {
		return err
	}
	// The upper starts empty, so anything already at name was added by this
	// layer, which the whiteout must not hide; it also hides the lower path
	// by itself.
	var st unix.Stat_t
	if err := unix.Fstatat(pfd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err == nil {
		return nil
	}
	if err := unix.Mknodat(pfd, name, unix.S_IFCHR, 0); err != nil {
		return fmt.Errorf("whiteout: %w", classify(err))
	}
	return nil
}

// opaque hides every lower entry of dir.
func (a *applier) opaque(dir string) error {
	if a.opts.OverlayWhiteouts {
		if err := a.mkdirAll(dir); err != nil {
			return fmt.Errorf("opaque directory: %w", classify(err))
		}
		pdir, base := split(dir)
		pfd, err := a.parent(pdir)
		if err != nil {
			return err
		}
		return setOpaque(pfd, base)
	}
	fd, err := a.root.openDir(dir)
	if errors.Is(err, unix.ENOENT) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("opaque directory: %w", classify(err))
	}
	defer unix.Close(fd)
	if err := a.clearLower(fd, dir); err != nil {
		return fmt.Errorf("opaque directory: %w", classify(err))
	}
	a.root.invalidate()
	return nil
}

// setOpaque marks directory base (in pfd) opaque for overlayfs.
func setOpaque(pfd int, base string) error {
	fd, err := unix.Openat(pfd, base, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("opaque directory: %w", classify(err))
	}
	defer unix.Close(fd)
	if err := unix.Fsetxattr(fd, overlayOpaque, []byte("y"), 0); err != nil {
		return fmt.Errorf("set %s: %w", overlayOpaque, classify(err))
	}
	return nil
}

// clearLower removes, below directory fd (named dir), everything this layer
// did not write: an opaque directory in a plain tree. fd may be O_PATH.
func (a *applier) clearLower(fd int, dir string) error {
	names, err := readDirNames(fd)
	if err != nil {
		return err
	}
	for _, n := range names {
		full := join(dir, n)
		if _, ok := a.written[full]; !ok {
			if err := removeAllAt(fd, n); err != nil {
				return err
			}
			continue
		}
		sub, err := unix.Openat(fd, n, unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if errors.Is(err, unix.ENOTDIR) || errors.Is(err, unix.ELOOP) {
			continue
		}
		if err != nil {
			return err
		}
		err = a.clearLower(sub, full)
		unix.Close(sub)
		if err != nil {
			return err
		}
	}
	return nil
}

func (a *applier) setTimes(name string, ts [2]unix.Timespec) error {
	dir, base := split(name)
	pfd, err := a.root.dirFD(dir)
	if err != nil {
		return err
	}
	return unix.UtimesNanoAt(pfd, base, ts[:], unix.AT_SYMLINK_NOFOLLOW)
}

func (a *applier) mapIDs(uid, gid int) (int, int, error) {
	if o := a.opts.Owner; o != nil {
		return o.UID, o.GID, nil
	}
	u, ok := mapID(uid, a.opts.UIDMap)
	if !ok {
		return 0, 0, fmt.Errorf("uid %d has no mapping: %w", uid, errdefs.ErrInvalidArgument)
	}
	g, ok := mapID(gid, a.opts.GIDMap)
	if !ok {
		return 0, 0, fmt.Errorf("gid %d has no mapping: %w", gid, errdefs.ErrInvalidArgument)
	}
	return u, g, nil
}

func mapID(id int, m []IDMap) (int, bool) {
	if len(m) == 0 {
		return id, true
	}
	for _, r := range m {
		if id >= int(r.ContainerID) && id-int(r.ContainerID) < int(r.Size) {
			return int(r.HostID) + id - int(r.ContainerID), true
		}
	}
	return 0, false
}

// times returns the atime and mtime of an entry; a tar without atime (the
// usual case) gets its mtime for both, like docker.
func times(hdr *tar.Header) [2]unix.Timespec {
	m := hdr.ModTime
	at := hdr.AccessTime
	if at.IsZero() {
		at = m
	}
	return [2]unix.Timespec{timespec(at), timespec(m)}
}

func timespec(t time.Time) unix.Timespec {
	if t.IsZero() {
		return unix.Timespec{}
	}
	return unix.Timespec{Sec: t.Unix(), Nsec: int64(t.Nanosecond())}
}
