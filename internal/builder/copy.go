package builder

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	securejoin "github.com/cyphar/filepath-securejoin"
	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/patternmatcher"
	"github.com/opencontainers/go-digest"
	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/internal/archive"
	"github.com/berth-dev/berth/internal/builder/buildcontext"
	"github.com/berth-dev/berth/internal/errdefs"
	"github.com/berth-dev/berth/internal/snapshot"
	"github.com/berth-dev/berth/internal/spec"
)

// copySpec is what COPY and ADD share.
type copySpec struct {
	cmd          instructions.Command
	src          instructions.SourcesAndDest
	from         string
	chown, chmod string
	name         string // COPY or ADD
	add          bool
	checksum     string // ADD --checksum, for URLs
	// excludes (COPY --exclude) drop paths, matched relative to each
	// source; parents (COPY --parents) keeps a source's path under dest.
	excludes []string
	parents  bool
}

// source is one resolved source: a path on the host (inside the context
// or a mounted stage/image), with the name it has in the instruction.
type source struct {
	path    string // host path, symlinks resolved within its root
	base    string // the name a file gets in a directory destination
	rel     string // its path as named, relative to its root (--parents)
	isDir   bool
	archive bool // ADD: a local tar to unpack
	data    []byte
	mode    os.FileMode
	mtime   time.Time
	fromURL bool
}

func (cs copySpec) fail(format string, args ...any) error {
	return fmt.Errorf(cs.name+" failed: "+format, args...)
}

// copyStep runs COPY or ADD.
func (bd *build) copyStep(ctx context.Context, s *stage, cs copySpec) (err error) {
	if len(cs.src.SourcePaths) == 0 && len(cs.src.SourceContents) == 0 {
		return fmt.Errorf("%s requires at least two arguments: %w", cs.name, errdefs.ErrInvalidArgument)
	}
	root := bd.ctxDir
	keyBase := "context"
	preserveOwner := false
	if cs.from != "" {
		root, keyBase, err = bd.fromRoot(ctx, s, cs.from)
		if err != nil {
			return err
		}
		preserveOwner = true
	}
	var srcs []source
	for _, sc := range cs.src.SourceContents {
		srcs = append(srcs, source{base: path.Base(sc.Path), data: []byte(sc.Data), mode: 0o644, mtime: bd.now()})
	}
	for _, p := range cs.src.SourcePaths {
		if cs.add && isURL(p) {
			src, err := bd.download(ctx, p)
			if err != nil {
				return cs.fail("%v", err)
			}
			if cs.checksum != "" {
				want, err := digest.Parse(cs.checksum)
				if err != nil {
					return fmt.Errorf("invalid checksum %q: %w: %w", cs.checksum, err, errdefs.ErrInvalidArgument)
				}
				if got := want.Algorithm().FromBytes(src.data); got != want {
					return cs.fail("digest mismatch %s: %s", got, want)
				}
			}
			srcs = append(srcs, src)
			continue
		}
		found, err := resolveSources(root, p, cs)
		if err != nil {
			return err
		}
		srcs = append(srcs, found...)
	}
	var exclude *patternmatcher.PatternMatcher
	if len(cs.excludes) > 0 {
		if exclude, err = patternmatcher.New(cs.excludes); err != nil {
			return fmt.Errorf("invalid --exclude: %w: %w", err, errdefs.ErrInvalidArgument)
		}
		srcs = slices.DeleteFunc(srcs, func(src source) bool { return excluded(exclude, src.base) })
		if len(srcs) == 0 {
			return cs.fail("no source files were specified")
		}
	}
	dest := resolveDest(s.st.cfg.Config.WorkingDir, cs.src.DestPath)
	if (len(srcs) > 1 || cs.parents) && !strings.HasSuffix(dest, "/") {
		return fmt.Errorf("When using %s with more than one source file, the destination must be a directory and end with a /: %w", cs.name, errdefs.ErrInvalidArgument)
	}
	var chmod os.FileMode
	if cs.chmod != "" {
		m, err := strconv.ParseUint(cs.chmod, 8, 32)
		if err != nil || m > 0o7777 {
			return fmt.Errorf("invalid chmod parameter %q: %w", cs.chmod, errdefs.ErrInvalidArgument)
		}
		chmod = os.FileMode(m) | 1<<31 // a set marker: 0 is a valid mode
	}
	// The key: every source's content, where it goes and how.
	h := sha256.New()
	for _, src := range srcs {
		fmt.Fprintf(h, "%s\x00", src.base)
		if err := hashSource(h, src, preserveOwner, exclude); err != nil {
			return cs.fail("%v", err)
		}
	}
	key := nextKey(s.st.key, cs.name, keyBase, hex.EncodeToString(h.Sum(nil)), dest, cs.chown, cs.chmod,
		strings.Join(cs.excludes, "\x00"), strconv.FormatBool(cs.parents))
	if hit, err := bd.cached(ctx, s, key); hit || err != nil {
		return err
	}
	st, err := s.st.clone()
	if err != nil {
		return err
	}
	st.key = key
	st, _, err = bd.layerStep(ctx, st, func(rootfs string) error {
		uid, gid := -1, -1
		if cs.chown != "" {
			if uid, gid, err = resolveChown(rootfs, cs.chown); err != nil {
				return err
			}
		} else if !preserveOwner {
			uid, gid = 0, 0
		}
		c := copier{rootfs: rootfs, uid: uid, gid: gid, chmod: chmod, buf: make([]byte, 128<<10), exclude: exclude}
		for _, src := range srcs {
			d := dest
			if cs.parents && src.rel != "" {
				// The source's own path under the destination.
				if src.isDir {
					d = path.Join(dest, src.rel) + "/"
				} else {
					d = path.Join(dest, path.Dir(src.rel)) + "/"
				}
			}
			if err := c.copySource(ctx, src, d); err != nil {
				return cs.fail("%v", err)
			}
		}
		return nil
	}, false, nil)
	if err != nil {
		return err
	}
	// docker's wording: file:/dir: for one source, multi: for several,
	// the destination as written, --chown glued to the hash.
	kind := "multi:"
	if len(srcs) == 1 {
		kind = "file:"
		if srcs[0].isDir {
			kind = "dir:"
		}
	}
	chownComment := ""
	if cs.chown != "" {
		chownComment = "--chown=" + cs.chown
	}
	comment := fmt.Sprintf("%s %s%s%s in %s ", cs.name, chownComment, kind, hex.EncodeToString(h.Sum(nil)), cs.src.DestPath)
	return bd.commit(s, st, layerComment(st, comment), false, cs.cmd.(fmt.Stringer).String())
}

// fromRoot mounts, read-only, the root filesystem COPY --from reads: an
// earlier stage's result or an image (pulled if missing).
func (bd *build) fromRoot(ctx context.Context, s *stage, from string) (string, string, error) {
	var st state
	var keyBase string
	if dep, ok := bd.stageRef(from, s.index); ok {
		if dep.index >= s.index || !dep.done {
			return "", "", fmt.Errorf("invalid from flag value %s: refers to current or later build stage: %w", from, errdefs.ErrInvalidArgument)
		}
		st, keyBase = dep.st, "stage:"+dep.st.key.String()
	} else {
		var err error
		if st, err = bd.imageState(ctx, s, from); err != nil {
			return "", "", fmt.Errorf("invalid from flag value %s: %w", from, err)
		}
		keyBase = "image:" + st.id.String()
	}
	dir, err := bd.tempDir("from")
	if err != nil {
		return "", "", err
	}
	if st.chain == "" {
		return dir, keyBase, nil
	}
	snaps := bd.b.images.Snapshots()
	key := snapshotPrefix + "view-" + randomHex(8)
	if err := bd.op.Add(ctx, nil, []string{key}); err != nil {
		return "", "", err
	}
	mounts, err := snaps.View(ctx, key, st.chain.String())
	if err != nil {
		return "", "", fmt.Errorf("mount %s: %w", from, err)
	}
	if err := snapshot.MountAll(mounts, dir); err != nil {
		_ = snaps.Remove(ctx, key)
		return "", "", fmt.Errorf("mount %s: %w", from, err)
	}
	bd.addCleanup(func() {
		if err := snapshot.UnmountAll(dir); err == nil {
			_ = snaps.Remove(context.WithoutCancel(ctx), key)
		}
	})
	return dir, keyBase, nil
}

func isURL(s string) bool {
	return strings.HasPrefix(s, "http://") || strings.HasPrefix(s, "https://")
}

// resolveSources expands one source path (a glob, maybe) inside root.
func resolveSources(root, p string, cs copySpec) ([]source, error) {
	clean := path.Clean("/" + filepath.ToSlash(p))
	if rel := path.Clean(filepath.ToSlash(p)); rel == ".." || strings.HasPrefix(rel, "../") {
		return nil, cs.fail("forbidden path outside the build context: %s ()", p)
	}
	var matches []string
	if strings.ContainsAny(clean, "*?[") {
		m, err := filepath.Glob(filepath.Join(root, filepath.FromSlash(clean)))
		if err != nil {
			return nil, cs.fail("%v", err)
		}
		for _, x := range m {
			rel, _ := filepath.Rel(root, x)
			matches = append(matches, "/"+filepath.ToSlash(rel))
		}
		if len(matches) == 0 {
			return nil, cs.fail("no source files were specified")
		}
	} else {
		matches = []string{clean}
	}
	var out []source
	for _, m := range matches {
		real, err := securejoin.SecureJoin(root, m)
		if err != nil {
			return nil, cs.fail("%v", err)
		}
		fi, err := os.Stat(real)
		if err != nil {
			if cs.from != "" {
				return nil, cs.fail("stat %s: file does not exist", strings.TrimPrefix(m, "/"))
			}
			return nil, cs.fail("file not found in build context or excluded by .dockerignore: stat %s: file does not exist", strings.TrimPrefix(m, "/"))
		}
		src := source{path: real, base: path.Base(m), rel: strings.TrimPrefix(m, "/"), isDir: fi.IsDir(), mode: fi.Mode(), mtime: fi.ModTime()}
		if cs.add && fi.Mode().IsRegular() {
			src.archive = isArchive(real)
		}
		out = append(out, src)
	}
	return out, nil
}

// isArchive reports a (maybe compressed) tar, which ADD unpacks.
func isArchive(p string) bool {
	f, err := os.Open(p)
	if err != nil {
		return false
	}
	defer f.Close()
	dr, err := archive.DecompressStream(bufio.NewReader(f))
	if err != nil {
		return false
	}
	defer dr.Close()
	head := make([]byte, 512)
	if _, err := io.ReadFull(dr, head); err != nil {
		return false
	}
	return bytes.Equal(head[257:262], []byte("ustar"))
}

// hashSource feeds what a source is into h: names, modes, link targets
// and contents, walking directories in order.
func hashSource(h io.Writer, src source, withOwner bool, exclude *patternmatcher.PatternMatcher) error {
	if src.path == "" {
		fmt.Fprintf(h, "data %o %d\x00", src.mode, len(src.data))
		h.Write(src.data)
		return nil
	}
	return filepath.WalkDir(src.path, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src.path, p)
		if rel == "." && fi.IsDir() {
			return nil // the source directory itself is not copied
		}
		if excluded(exclude, filepath.ToSlash(rel)) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		// Like docker's content hash: no mtimes (a touched file stays
		// cached), owners only where COPY keeps them (--from).
		fmt.Fprintf(h, "%s %o\x00", rel, fi.Mode())
		if st, ok := fi.Sys().(*unix.Stat_t); ok && withOwner {
			fmt.Fprintf(h, "%d:%d\x00", st.Uid, st.Gid)
		}
		switch {
		case fi.Mode()&fs.ModeSymlink != 0:
			t, err := os.Readlink(p)
			if err != nil {
				return err
			}
			fmt.Fprintf(h, "-> %s\x00", t)
		case fi.Mode().IsRegular():
			f, err := os.Open(p)
			if err != nil {
				return err
			}
			_, err = io.Copy(h, f)
			f.Close()
			return err
		}
		return nil
	})
}

// download fetches an ADD URL: the file is named after the URL's last
// path element, mode 0600, mtime from Last-Modified, as docker does.
func (bd *build) download(ctx context.Context, raw string) (source, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return source{}, fmt.Errorf("invalid URL %s: %w", raw, errdefs.ErrInvalidArgument)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, raw, nil)
	if err != nil {
		return source{}, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return source{}, err
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 400 {
		return source{}, fmt.Errorf("failed to GET %s with status %s", raw, resp.Status)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, 1<<30))
	if err != nil {
		return source{}, err
	}
	base := path.Base(u.Path)
	if base == "/" || base == "." || base == "" {
		return source{}, fmt.Errorf("cannot determine filename from url: %s", raw)
	}
	mtime := bd.now()
	if lm, err := http.ParseTime(resp.Header.Get("Last-Modified")); err == nil {
		mtime = lm
	}
	return source{base: base, data: data, mode: 0o600, mtime: mtime, fromURL: true}, nil
}

// resolveChown reads --chown user[:group] against the image's passwd and
// group files; a user alone gives its uid as the gid too, as docker does.
func resolveChown(rootfs, chown string) (int, int, error) {
	u, _, err := spec.ResolveUser(rootfs, chown, nil)
	if err != nil {
		// docker's words for the part it could not find.
		usr, grp, _ := strings.Cut(chown, ":")
		why := fmt.Sprintf("can't find uid for user %s: no such user: %s", usr, usr)
		if strings.Contains(err.Error(), "group") {
			why = fmt.Sprintf("can't find gid for group %s: no such group: %s", grp, grp)
		}
		return 0, 0, fmt.Errorf("unable to convert uid/gid chown string to host mapping: %s: %w", why, errdefs.ErrInvalidArgument)
	}
	gid := int(u.GID)
	if !strings.Contains(chown, ":") {
		gid = int(u.UID)
	}
	return int(u.UID), gid, nil
}

// copier writes sources into a mounted root filesystem.
type copier struct {
	rootfs   string
	uid, gid int // -1: keep the source's
	chmod    os.FileMode
	buf      []byte
	exclude  *patternmatcher.PatternMatcher
	srcRoot  string // the directory source being copied, for exclude
}

// excluded matches rel (slash-separated, relative to a source) against
// COPY --exclude's patterns.
func excluded(m *patternmatcher.PatternMatcher, rel string) bool {
	if m == nil {
		return false
	}
	ok, err := m.MatchesOrParentMatches(rel)
	return err == nil && ok
}

// copySource copies one source to dest (a directory when it ends in /).
func (c *copier) copySource(ctx context.Context, src source, dest string) error {
	destDir := strings.HasSuffix(dest, "/")
	dest = strings.TrimSuffix(dest, "/")
	if dest == "" {
		dest = "/"
	}
	if !destDir && !src.isDir && !src.archive {
		// An existing directory is a directory destination too.
		if real, err := securejoin.SecureJoin(c.rootfs, dest); err == nil {
			if fi, err := os.Stat(real); err == nil && fi.IsDir() {
				destDir = true
			}
		}
	}
	switch {
	case src.archive:
		if err := mkdirIn(c.rootfs, dest, 0, 0); err != nil {
			return err
		}
		real, err := securejoin.SecureJoin(c.rootfs, dest)
		if err != nil {
			return err
		}
		f, err := os.Open(src.path)
		if err != nil {
			return err
		}
		defer f.Close()
		dr, err := archive.DecompressStream(bufio.NewReader(f))
		if err != nil {
			return err
		}
		defer dr.Close()
		return buildcontext.Extract(ctx, dr, real, true)
	case src.isDir:
		if err := mkdirIn(c.rootfs, dest, 0, 0); err != nil {
			return err
		}
		c.srcRoot = src.path
		return c.copyTree(src.path, dest)
	}
	target := dest
	if destDir {
		target = path.Join(dest, src.base)
	}
	if err := mkdirIn(c.rootfs, path.Dir(target), 0, 0); err != nil {
		return err
	}
	if src.path == "" {
		return c.writeFile(target, bytes.NewReader(src.data), src.mode, src.mtime, 0, 0)
	}
	return c.copyEntry(src.path, target)
}

// copyTree copies the contents of directory dir to dest.
func (c *copier) copyTree(dir, dest string) error {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range ents {
		p := filepath.Join(dir, e.Name())
		if rel, err := filepath.Rel(c.srcRoot, p); err == nil && excluded(c.exclude, filepath.ToSlash(rel)) {
			continue
		}
		if err := c.copyEntry(p, path.Join(dest, e.Name())); err != nil {
			return err
		}
	}
	return nil
}

// copyEntry copies one file, link or directory (recursively) to target.
func (c *copier) copyEntry(p, target string) error {
	fi, err := os.Lstat(p)
	if err != nil {
		return err
	}
	uid, gid := owner(fi)
	switch {
	case fi.IsDir():
		real, err := securejoin.SecureJoin(c.rootfs, target)
		if err != nil {
			return err
		}
		if st, err := os.Lstat(real); err != nil || !st.IsDir() {
			_ = os.RemoveAll(real)
			if err := os.Mkdir(real, 0o755); err != nil {
				return err
			}
		}
		if err := c.copyTree(p, target); err != nil {
			return err
		}
		// After its entries, whose creation changed its mtime.
		return c.attrs(p, target)
	case fi.Mode()&fs.ModeSymlink != 0:
		link, err := os.Readlink(p)
		if err != nil {
			return err
		}
		real, err := c.parentJoin(target)
		if err != nil {
			return err
		}
		_ = os.RemoveAll(real)
		if err := os.Symlink(link, real); err != nil {
			return err
		}
		u, g := c.ids(uid, gid)
		_ = os.Lchown(real, u, g)
		return setMtime(real, fi.ModTime())
	case fi.Mode().IsRegular():
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := c.writeFile(target, f, fi.Mode(), fi.ModTime(), uid, gid); err != nil {
			return err
		}
		// After the chown, which drops security.capability.
		real, err := c.parentJoin(target)
		if err != nil {
			return err
		}
		if err := archive.CopyXattrs(p, real); err != nil && !errors.Is(err, unix.ENOTSUP) {
			return fmt.Errorf("copy xattrs of %s: %w", target, err)
		}
		return nil
	}
	return nil // devices, sockets, fifos are not copied
}

// parentJoin resolves target's directory within rootfs (its last element
// is not followed: it is what gets replaced).
func (c *copier) parentJoin(target string) (string, error) {
	dir, err := securejoin.SecureJoin(c.rootfs, path.Dir(target))
	if err != nil {
		return "", err
	}
	return filepath.Join(dir, path.Base(target)), nil
}

func (c *copier) ids(uid, gid int) (int, int) {
	if c.uid >= 0 {
		return c.uid, c.gid
	}
	return uid, gid
}

func (c *copier) writeFile(target string, r io.Reader, mode os.FileMode, mtime time.Time, uid, gid int) error {
	real, err := c.parentJoin(target)
	if err != nil {
		return err
	}
	if fi, err := os.Lstat(real); err == nil && (fi.IsDir() || fi.Mode()&fs.ModeSymlink != 0) {
		if fi.IsDir() {
			return fmt.Errorf("cannot copy to %s: is a directory", target)
		}
		_ = os.Remove(real)
	}
	f, err := os.OpenFile(real, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	_, err = io.CopyBuffer(f, r, c.buf)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", target, err)
	}
	u, g := c.ids(uid, gid)
	if err := os.Lchown(real, u, g); err != nil {
		return err
	}
	perm := mode & (os.ModePerm | os.ModeSetuid | os.ModeSetgid | os.ModeSticky)
	if c.chmod != 0 {
		perm = c.chmod &^ (1 << 31)
	}
	if err := os.Chmod(real, perm); err != nil {
		return err
	}
	return setMtime(real, mtime)
}

// attrs gives the copied directory target the owner, mode and mtime of src.
func (c *copier) attrs(src, target string) error {
	fi, err := os.Lstat(src)
	if err != nil {
		return err
	}
	real, err := securejoin.SecureJoin(c.rootfs, target)
	if err != nil {
		return err
	}
	uid, gid := owner(fi)
	u, g := c.ids(uid, gid)
	if err := os.Lchown(real, u, g); err != nil {
		return err
	}
	perm := fi.Mode() & os.ModePerm
	if c.chmod != 0 {
		perm = c.chmod &^ (1 << 31)
	}
	if err := os.Chmod(real, perm); err != nil {
		return err
	}
	return setMtime(real, fi.ModTime())
}

func owner(fi os.FileInfo) (int, int) {
	if st, ok := fi.Sys().(*unix.Stat_t); ok {
		return int(st.Uid), int(st.Gid)
	}
	return 0, 0
}

func setMtime(p string, t time.Time) error {
	ts := unix.NsecToTimespec(t.UnixNano())
	err := unix.UtimesNanoAt(unix.AT_FDCWD, p, []unix.Timespec{ts, ts}, unix.AT_SYMLINK_NOFOLLOW)
	if errors.Is(err, unix.ENOENT) {
		return nil
	}
	return err
}
