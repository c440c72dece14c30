// Package buildcontext moves a build context between the client and the
// builder: a directory tarred by the CLI with .dockerignore applied, and a
// tar stream (plain or compressed, or a lone Dockerfile) unpacked by the
// daemon into a private directory, again with .dockerignore applied, as
// dockerd's classic builder does.
package buildcontext

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"github.com/moby/patternmatcher"
	"github.com/moby/patternmatcher/ignorefile"
	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/internal/archive"
	"github.com/berth-dev/berth/internal/errdefs"
)

// DefaultDockerfile is the Dockerfile's name when none is given.
const DefaultDockerfile = "Dockerfile"

// IgnoreFile is the name of the context's exclusion list.
const IgnoreFile = ".dockerignore"

// ReadIgnore reads dir's .dockerignore; a missing file means no patterns.
func ReadIgnore(dir string) ([]string, error) {
	f, err := os.Open(filepath.Join(dir, IgnoreFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", IgnoreFile, err)
	}
	defer f.Close()
	p, err := ignorefile.ReadAll(f)
	if err != nil {
		return nil, fmt.Errorf("parse %s: %w: %w", IgnoreFile, err, errdefs.ErrInvalidArgument)
	}
	return p, nil
}

// Matcher decides which context paths .dockerignore excludes. The
// Dockerfile and .dockerignore themselves are always kept (docker sends
// them even when excluded; the builder needs them).
type Matcher struct {
	pm   *patternmatcher.PatternMatcher
	keep map[string]bool
}

// NewMatcher compiles patterns; keep names paths never excluded.
func NewMatcher(patterns []string, keep ...string) (*Matcher, error) {
	if len(patterns) == 0 {
		return &Matcher{}, nil
	}
	pm, err := patternmatcher.New(patterns)
	if err != nil {
		return nil, fmt.Errorf("%s: %w: %w", IgnoreFile, err, errdefs.ErrInvalidArgument)
	}
	m := &Matcher{pm: pm, keep: map[string]bool{IgnoreFile: true}}
	for _, k := range keep {
		m.keep[path.Clean(filepath.ToSlash(k))] = true
	}
	return m, nil
}

// walkState carries a parent directory's match result down, so each path
// is matched once (patternmatcher's MatchesUsingParentResults).
type walkState = patternmatcher.MatchInfo

// excluded reports whether rel (slash-separated, relative) is excluded,
// given its parent's match info.
func (m *Matcher) excluded(rel string, parent walkState) (bool, walkState, error) {
	if m.pm == nil {
		return false, walkState{}, nil
	}
	ok, info, err := m.pm.MatchesUsingParentResults(rel, parent)
	if err != nil {
		return false, info, err
	}
	if m.keep[rel] {
		return false, info, nil
	}
	return ok, info, nil
}

// canSkipDir reports whether excluded directory rel can be skipped whole:
// only when no exclusion pattern ("!x") could bring back something below,
// and no kept file (the Dockerfile) is below.
func (m *Matcher) canSkipDir(rel string) bool {
	for k := range m.keep {
		if strings.HasPrefix(k, rel+"/") {
			return false
		}
	}
	return m.pm == nil || !m.pm.Exclusions()
}

// hidden reports whether rel is kept although the patterns exclude it:
// docker sends such a Dockerfile or .dockerignore, reads it, and then
// keeps it from the instructions (COPY . does not copy it).
func (m *Matcher) hidden(rel string, parent walkState) bool {
	if m.pm == nil || !m.keep[rel] {
		return false
	}
	ok, _, err := m.pm.MatchesUsingParentResults(rel, parent)
	return err == nil && ok
}

// Tar writes dir as a tar stream, leaving out what m excludes, the way the
// docker CLI sends a context: paths relative to dir, uid/gid 0, mtimes
// kept. extra adds files (name → content) at the top, for a Dockerfile
// that lives outside the context or comes from stdin.
func Tar(ctx context.Context, dir string, m *Matcher, w io.Writer, extra map[string][]byte) error {
	tw := tar.NewWriter(w)
	buf := make([]byte, 32<<10)
	infos := map[string]walkState{".": {}}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		if rel == "." {
			return nil
		}
		rel = filepath.ToSlash(rel)
		skip, info, err := m.excluded(rel, infos[path.Dir(rel)])
		if err != nil {
			return err
		}
		if d.IsDir() {
			infos[rel] = info
		}
		if skip {
			if d.IsDir() && m.canSkipDir(rel) {
				return filepath.SkipDir
			}
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		link := ""
		if fi.Mode()&fs.ModeSymlink != 0 {
			if link, err = os.Readlink(p); err != nil {
				return err
			}
		}
		hdr, err := tar.FileInfoHeader(fi, link)
		if err != nil {
			return fmt.Errorf("tar %s: %w", rel, err)
		}
		hdr.Name = rel
		if d.IsDir() {
			hdr.Name += "/"
		}
		hdr.Uid, hdr.Gid, hdr.Uname, hdr.Gname = 0, 0, "", ""
		hdr.Format = tar.FormatPAX
		// File capabilities travel, as the docker CLI sends them.
		if capData := getCapability(p); capData != nil {
			hdr.PAXRecords = map[string]string{paxXattr + capabilityXattr: string(capData)}
		}
		hdr.AccessTime, hdr.ChangeTime = time.Time{}, time.Time{}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if hdr.Typeflag == tar.TypeReg {
			f, err := os.Open(p)
			if err != nil {
				return err
			}
			_, err = io.CopyBuffer(tw, io.LimitReader(f, hdr.Size), buf)
			f.Close()
			if err != nil {
				return fmt.Errorf("tar %s: %w", rel, err)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("build context: %w", err)
	}
	for name, data := range extra {
		hdr := &tar.Header{Name: name, Mode: 0o600, Size: int64(len(data)), Typeflag: tar.TypeReg, ModTime: time.Now()}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if _, err := tw.Write(data); err != nil {
			return err
		}
	}
	return tw.Close()
}

// Context is a build context unpacked on the daemon's side.
type Context struct {
	Dir string
	// DockerfileOnly: the body was a lone Dockerfile (docker build -),
	// written to Dir/Dockerfile; COPY has nothing to read.
	DockerfileOnly bool
	// Hidden are the Dockerfile and .dockerignore when .dockerignore
	// excludes them: the builder removes them once it read the Dockerfile.
	Hidden []string
}

// Unpack reads a build context from r into dir (which must exist and be
// empty): a tar stream, compressed or not, or a lone Dockerfile. The
// context's .dockerignore is then applied, keeping dockerfile.
func Unpack(ctx context.Context, r io.Reader, dir, dockerfile string) (Context, error) {
	c := Context{Dir: dir}
	dr, err := archive.DecompressStream(r)
	if err != nil {
		return c, fmt.Errorf("build context: %w: %w", err, errdefs.ErrInvalidArgument)
	}
	defer dr.Close()
	br := bufio.NewReaderSize(dr, 64<<10)
	head, _ := br.Peek(512)
	if !isTar(head) {
		data, err := io.ReadAll(io.LimitReader(br, 8<<20))
		if err != nil {
			return c, fmt.Errorf("build context: %w", err)
		}
		c.DockerfileOnly = true
		return c, os.WriteFile(filepath.Join(dir, DefaultDockerfile), data, 0o600)
	}
	if err := Extract(ctx, br, dir, false); err != nil {
		return c, err
	}
	patterns, err := ReadIgnore(dir)
	if err != nil || len(patterns) == 0 {
		return c, err
	}
	if dockerfile == "" {
		dockerfile = DefaultDockerfile
	}
	m, err := NewMatcher(patterns, dockerfile)
	if err != nil {
		return c, err
	}
	c.Hidden, err = prune(dir, m)
	return c, err
}

func isTar(head []byte) bool {
	if len(head) < 512 {
		// A tar holds at least one 512-byte header (an empty one two zero blocks).
		return len(head) == 0
	}
	if magic := head[257:262]; bytes.Equal(magic, []byte("ustar")) {
		return true // POSIX and GNU tars
	}
	_, err := tar.NewReader(bytes.NewReader(head)).Next()
	return err == nil || errors.Is(err, io.EOF) && bytes.Equal(head, make([]byte, 512))
}

// Extract unpacks a tar: regular files, directories, symlinks and hard
// links, kept inside dir (names with ".." and links that would redirect a
// later entry outside are refused); keepOwner applies the entries' uid/gid
// (ADD of a local archive), else files belong to the caller.
func Extract(ctx context.Context, r io.Reader, dir string, keepOwner bool) error {
	tr := tar.NewReader(r)
	type dirTime struct {
		path string
		t    time.Time
	}
	var dirs []dirTime
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("build context: read tar: %w: %w", err, errdefs.ErrInvalidArgument)
		}
		name := path.Clean("/" + filepath.ToSlash(hdr.Name))
		if name == "/" {
			continue
		}
		if strings.Contains(hdr.Name, "..") && !filepath.IsLocal(filepath.FromSlash(strings.TrimPrefix(hdr.Name, "/"))) {
			return fmt.Errorf("build context: tar entry %q leaves the context: %w", hdr.Name, errdefs.ErrInvalidArgument)
		}
		target := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
			return fmt.Errorf("build context: %w", err)
		}
		if err := noSymlinkParents(dir, filepath.Dir(target)); err != nil {
			return err
		}
		mode := os.FileMode(hdr.Mode & 0o7777)
		switch hdr.Typeflag {
		case tar.TypeDir:
			// What is there and not a directory (a symlink the tar made,
			// say) goes: the chmod below must not follow it.
			if fi, err := os.Lstat(target); err == nil && !fi.IsDir() {
				if err := os.Remove(target); err != nil {
					return fmt.Errorf("build context: %w", err)
				}
			}
			if err := os.Mkdir(target, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
				return fmt.Errorf("build context: %w", err)
			}
			_ = os.Chmod(target, mode|0o700)
			dirs = append(dirs, dirTime{target, hdr.ModTime})
			continue
		case tar.TypeReg, tar.TypeRegA:
			_ = os.RemoveAll(target)
			f, err := os.OpenFile(target, os.O_CREATE|os.O_EXCL|os.O_WRONLY, mode|0o600)
			if err != nil {
				return fmt.Errorf("build context: %w", err)
			}
			_, err = io.Copy(f, tr)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return fmt.Errorf("build context: %s: %w", name, err)
			}
			_ = os.Chmod(target, mode)
		case tar.TypeSymlink:
			_ = os.RemoveAll(target)
			if err := os.Symlink(hdr.Linkname, target); err != nil {
				return fmt.Errorf("build context: %w", err)
			}
		case tar.TypeLink:
			src := filepath.Join(dir, filepath.FromSlash(path.Clean("/"+hdr.Linkname)))
			// link(2) follows the source's directories: a symlink the tar
			// planted there would bring in a file from outside.
			if err := noSymlinkParents(dir, filepath.Dir(src)); err != nil {
				return err
			}
			_ = os.RemoveAll(target)
			if err := os.Link(src, target); err != nil {
				return fmt.Errorf("build context: %w", err)
			}
			continue
		default:
			continue // devices, fifos: nothing a build can use
		}
		if keepOwner {
			_ = os.Lchown(target, hdr.Uid, hdr.Gid)
		}
		// After the chown, which would drop security.capability.
		for k, v := range hdr.PAXRecords {
			if name, ok := strings.CutPrefix(k, paxXattr); ok {
				if err := unix.Lsetxattr(target, name, []byte(v), 0); err != nil && !errors.Is(err, unix.ENOTSUP) {
					return fmt.Errorf("build context: %s: xattr %s: %w", hdr.Name, name, err)
				}
			}
		}
		ts := []unix.Timespec{unix.NsecToTimespec(hdr.ModTime.UnixNano()), unix.NsecToTimespec(hdr.ModTime.UnixNano())}
		_ = unix.UtimesNanoAt(unix.AT_FDCWD, target, ts, unix.AT_SYMLINK_NOFOLLOW)
	}
	for i := len(dirs) - 1; i >= 0; i-- {
		// Not followed: a later entry may have made the directory a symlink.
		if dirs[i].t.IsZero() {
			continue
		}
		ts := unix.NsecToTimespec(dirs[i].t.UnixNano())
		_ = unix.UtimesNanoAt(unix.AT_FDCWD, dirs[i].path, []unix.Timespec{ts, ts}, unix.AT_SYMLINK_NOFOLLOW)
	}
	return nil
}

// noSymlinkParents refuses a path whose directories below root include a
// symlink: a tar could otherwise plant a link and then write through it.
func noSymlinkParents(root, p string) error {
	rel, err := filepath.Rel(root, p)
	if err != nil || rel == "." {
		return err
	}
	cur := root
	for _, part := range strings.Split(rel, string(filepath.Separator)) {
		cur = filepath.Join(cur, part)
		fi, err := os.Lstat(cur)
		if err != nil {
			return fmt.Errorf("build context: %w", err)
		}
		if fi.Mode()&fs.ModeSymlink != 0 {
			return fmt.Errorf("build context: %s is a symlink in a tar entry's path: %w", rel, errdefs.ErrInvalidArgument)
		}
	}
	return nil
}

// prune removes what m excludes from an unpacked context and returns the
// kept paths the patterns exclude (Context.Hidden).
func prune(dir string, m *Matcher) ([]string, error) {
	infos := map[string]walkState{".": {}}
	var victims, hidden []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil || rel == "." {
			return err
		}
		rel = filepath.ToSlash(rel)
		parent := infos[path.Dir(rel)]
		skip, info, err := m.excluded(rel, parent)
		if err != nil {
			return err
		}
		if d.IsDir() {
			infos[rel] = info
		}
		if m.hidden(rel, parent) {
			hidden = append(hidden, rel)
		}
		if skip {
			if d.IsDir() {
				if m.canSkipDir(rel) {
					victims = append(victims, p)
					return filepath.SkipDir
				}
				return nil // something below may be re-included; empty dirs stay
			}
			victims = append(victims, p)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("build context: %w", err)
	}
	for _, v := range victims {
		if err := os.RemoveAll(v); err != nil {
			return nil, fmt.Errorf("build context: %w", err)
		}
	}
	return hidden, nil
}

const (
	paxXattr        = "SCHILY.xattr."
	capabilityXattr = "security.capability"
)

// getCapability returns p's file capabilities, nil for none.
func getCapability(p string) []byte {
	buf := make([]byte, 128)
	n, err := unix.Lgetxattr(p, capabilityXattr, buf)
	if err != nil || n <= 0 {
		return nil
	}
	return buf[:n]
}
