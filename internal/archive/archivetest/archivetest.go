// Package archivetest builds layer tars and describes directory trees for
// the tests of archive, snapshot and their users.
package archivetest

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Epoch is the default mtime of entries: a fixed, whole-second time so
// round trips through Diff (which truncates to seconds) compare equal.
var Epoch = time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)

// Entry is one tar entry. Zero fields get defaults: type regular file
// (directory when Name ends in "/"), mode 0644 (0755 for directories),
// mtime Epoch.
type Entry struct {
	Name         string
	Type         byte
	Body         string
	Mode         int64
	UID, GID     int
	Link         string // symlink or hardlink target
	Major, Minor int64
	Xattrs       map[string]string
	ModTime      time.Time
}

// Tar returns the tar stream of entries, in order.
func Tar(t testing.TB, entries ...Entry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		if err := tw.WriteHeader(e.header()); err != nil {
			t.Fatalf("tar header %s: %v", e.Name, err)
		}
		if e.Body != "" {
			if _, err := io.WriteString(tw, e.Body); err != nil {
				t.Fatalf("tar body %s: %v", e.Name, err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func (e Entry) header() *tar.Header {
	h := &tar.Header{
		Name: e.Name, Typeflag: e.Type, Mode: e.Mode, Uid: e.UID, Gid: e.GID,
		Linkname: e.Link, Devmajor: e.Major, Devminor: e.Minor, ModTime: e.ModTime,
	}
	if h.Typeflag == 0 {
		h.Typeflag = tar.TypeReg
		if strings.HasSuffix(e.Name, "/") {
			h.Typeflag = tar.TypeDir
		}
	}
	if h.Mode == 0 {
		h.Mode = 0o644
		if h.Typeflag == tar.TypeDir {
			h.Mode = 0o755
		}
	}
	if h.ModTime.IsZero() {
		h.ModTime = Epoch
	}
	if h.ModTime.Nanosecond() != 0 {
		h.Format = tar.FormatPAX // USTAR would round to seconds
	}
	if h.Typeflag == tar.TypeReg {
		h.Size = int64(len(e.Body))
	}
	for k, v := range e.Xattrs {
		if h.PAXRecords == nil {
			h.PAXRecords = map[string]string{}
		}
		h.PAXRecords["SCHILY.xattr."+k] = v
	}
	return h
}

// Node describes one path of a tree.
type Node struct {
	Type     string // file, dir, symlink, char, block, fifo, socket
	Mode     uint32 // permission, setuid, setgid and sticky bits
	UID, GID uint32
	Size     int64
	SHA256   string // of a file's content
	Link     string // symlink target
	Nlink    uint64
	Rdev     uint64
	Mtime    time.Time
	Xattrs   map[string]string // without trusted.overlay.*
}

func (n Node) String() string {
	s := fmt.Sprintf("%s %04o %d:%d", n.Type, n.Mode, n.UID, n.GID)
	switch n.Type {
	case "file":
		s += fmt.Sprintf(" size=%d sha=%.12s nlink=%d", n.Size, n.SHA256, n.Nlink)
	case "symlink":
		s += " -> " + n.Link
	case "char", "block":
		s += fmt.Sprintf(" %d:%d", unix.Major(n.Rdev), unix.Minor(n.Rdev))
	}
	s += " mtime=" + n.Mtime.UTC().Format(time.RFC3339Nano)
	if len(n.Xattrs) > 0 {
		keys := make([]string, 0, len(n.Xattrs))
		for k := range n.Xattrs {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			s += fmt.Sprintf(" %s=%q", k, n.Xattrs[k])
		}
	}
	return s
}

// Tree describes every path below dir (not dir itself), keyed by slash
// path relative to dir. Symlinks are not followed.
func Tree(t testing.TB, dir string) map[string]Node {
	t.Helper()
	out := map[string]Node{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == dir {
			return nil
		}
		rel, _ := filepath.Rel(dir, p)
		n, err := Stat(p)
		if err != nil {
			return err
		}
		out[filepath.ToSlash(rel)] = n
		return nil
	})
	if err != nil {
		t.Fatalf("walk %s: %v", dir, err)
	}
	return out
}

// Stat describes path p (not following a final symlink).
func Stat(p string) (Node, error) {
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		return Node{}, err
	}
	n := Node{
		Mode: st.Mode & 0o7777, UID: st.Uid, GID: st.Gid, Nlink: uint64(st.Nlink),
		Mtime: time.Unix(st.Mtim.Sec, st.Mtim.Nsec),
	}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFREG:
		n.Type, n.Size = "file", st.Size
		b, err := os.ReadFile(p)
		if err != nil {
			return n, err
		}
		sum := sha256.Sum256(b)
		n.SHA256 = hex.EncodeToString(sum[:])
	case unix.S_IFDIR:
		n.Type, n.Nlink = "dir", 0 // a dir's link count is its subdir count: noise
	case unix.S_IFLNK:
		n.Type, n.Mode = "symlink", 0
		l, err := os.Readlink(p)
		if err != nil {
			return n, err
		}
		n.Link = l
	case unix.S_IFCHR:
		n.Type, n.Rdev = "char", uint64(st.Rdev)
	case unix.S_IFBLK:
		n.Type, n.Rdev = "block", uint64(st.Rdev)
	case unix.S_IFIFO:
		n.Type = "fifo"
	case unix.S_IFSOCK:
		n.Type = "socket"
	}
	x, err := xattrs(p)
	n.Xattrs = x
	return n, err
}

func xattrs(p string) (map[string]string, error) {
	sz, err := unix.Llistxattr(p, nil)
	if err != nil || sz == 0 {
		return nil, nil
	}
	buf := make([]byte, sz)
	sz, err = unix.Llistxattr(p, buf)
	if err != nil {
		return nil, err
	}
	var out map[string]string
	for _, k := range strings.Split(string(buf[:sz]), "\x00") {
		if k == "" || strings.HasPrefix(k, "trusted.overlay.") {
			continue
		}
		vs, err := unix.Lgetxattr(p, k, nil)
		if err != nil {
			return nil, err
		}
		v := make([]byte, vs)
		vs, err = unix.Lgetxattr(p, k, v)
		if err != nil {
			return nil, err
		}
		if out == nil {
			out = map[string]string{}
		}
		out[k] = string(v[:vs])
	}
	return out, nil
}

// Compare lists the differences between two trees, one line per path,
// sorted. ignore (may be nil) zeroes fields that may legitimately differ.
func Compare(want, got map[string]Node, ignore func(path string, n *Node)) []string {
	var diffs []string
	for p, w := range want {
		g, ok := got[p]
		if !ok {
			diffs = append(diffs, fmt.Sprintf("%s: missing (want %v)", p, w))
			continue
		}
		if ignore != nil {
			ignore(p, &w)
			ignore(p, &g)
		}
		if ws, gs := w.String(), g.String(); ws != gs {
			diffs = append(diffs, fmt.Sprintf("%s:\n\twant %s\n\tgot  %s", p, ws, gs))
		}
	}
	for p, g := range got {
		if _, ok := want[p]; !ok {
			diffs = append(diffs, fmt.Sprintf("%s: unexpected %v", p, g))
		}
	}
	sort.Strings(diffs)
	return diffs
}

// List returns "name type [-> link]" for every entry of a tar stream, in
// stream order, for asserting what a Diff emitted.
func List(t testing.TB, b []byte) []string {
	t.Helper()
	var out []string
	tr := tar.NewReader(bytes.NewReader(b))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatalf("read tar: %v", err)
		}
		s := h.Name + " " + typeName(h.Typeflag)
		if h.Linkname != "" {
			s += " -> " + h.Linkname
		}
		out = append(out, s)
	}
}

func typeName(t byte) string {
	switch t {
	case tar.TypeReg:
		return "file"
	case tar.TypeDir:
		return "dir"
	case tar.TypeSymlink:
		return "symlink"
	case tar.TypeLink:
		return "link"
	case tar.TypeChar:
		return "char"
	case tar.TypeBlock:
		return "block"
	case tar.TypeFifo:
		return "fifo"
	}
	return string(t)
}
