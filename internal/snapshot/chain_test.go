package snapshot

import (
	"archive/tar"
	"bytes"
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/internal/archive"
	"github.com/berth-dev/berth/internal/archive/archivetest"
	"github.com/berth-dev/berth/internal/testutil"
)

type E = archivetest.Entry

func chainLayers(t *testing.T) [][]byte {
	l1 := archivetest.Tar(t,
		E{Name: "bin/"},
		E{Name: "bin/busybox", Body: "BUSYBOX", Mode: 0o755},
		E{Name: "bin/sh", Type: tar.TypeLink, Link: "bin/busybox"},
		E{Name: "bin/ls", Type: tar.TypeLink, Link: "bin/busybox"},
		E{Name: "dev/"},
		E{Name: "dev/null", Type: tar.TypeChar, Major: 1, Minor: 3, Mode: 0o666},
		E{Name: "etc/"},
		E{Name: "etc/hostname", Body: "box\n"},
		E{Name: "etc/old.conf", Body: "old\n"},
		E{Name: "etc/passwd", Body: "root:x:0:0::/root:/bin/sh\n"},
		E{Name: "home/"},
		E{Name: "home/user/", Mode: 0o700, UID: 1000, GID: 1000},
		E{Name: "home/user/.profile", Body: "PS1=$\n", Mode: 0o600, UID: 1000, GID: 1000, Xattrs: map[string]string{"user.mark": "1"}},
		E{Name: "lib", Type: tar.TypeSymlink, Link: "usr/lib"},
		E{Name: "run/"},
		E{Name: "run/fifo", Type: tar.TypeFifo, Mode: 0o620},
		E{Name: "sbin/"},
		E{Name: "sbin/su", Body: "SU", Mode: 0o4755},
		E{Name: "tmp/", Mode: 0o1777},
		E{Name: "usr/"},
		E{Name: "usr/lib/"},
		E{Name: "usr/lib/libc.so", Body: "LIBC"},
		E{Name: "usr/share/"},
		E{Name: "usr/share/doc/"},
		E{Name: "usr/share/doc/README", Body: "readme"},
		E{Name: "usr/share/doc/sub/"},
		E{Name: "usr/share/doc/sub/x", Body: "x"},
	)
	l2 := archivetest.Tar(t,
		E{Name: "bin/"},
		E{Name: "bin/busybox2", Type: tar.TypeLink, Link: "bin/busybox"}, // target in layer 1
		E{Name: "etc/"},
		E{Name: "etc/.wh.old.conf"},
		E{Name: "etc/passwd", Body: "root:x:0:0::/root:/bin/sh\nuser:x:1000:1000::/home/user:/bin/sh\n"},
		E{Name: "opt/"},
		E{Name: "opt/app/"},
		E{Name: "opt/app/data", Body: "data", Mode: 0o640, UID: 33, GID: 33},
		E{Name: "opt/app/link", Type: tar.TypeLink, Link: "opt/app/data"},
		E{Name: "usr/"},
		E{Name: "usr/share/"},
		E{Name: "usr/share/doc/"},
		E{Name: "usr/share/doc/.wh..wh..opq"},
		E{Name: "usr/share/doc/NEW", Body: "new doc"},
	)
	l3 := archivetest.Tar(t,
		E{Name: "etc/"},
		E{Name: "etc/hostname", Body: "newbox\n", ModTime: archivetest.Epoch.Add(time.Hour)},
		E{Name: "home/"},
		E{Name: "home/.wh.user"},
		E{Name: "var/"},
		E{Name: "var/log/"},
		E{Name: "var/log/app.log", Body: "log", Xattrs: map[string]string{"user.k": "v"}},
	)
	return [][]byte{l1, l2, l3}
}

// unpack applies layer on top of parent as the committed snapshot name.
func unpack(t *testing.T, s *Snapshotter, name, parent string, layer []byte) {
	t.Helper()
	ctx := context.Background()
	key := "unpack-" + name
	ms, err := s.Prepare(ctx, key, parent)
	if err != nil {
		t.Fatal(err)
	}
	up, lowers, err := LayerDirs(ms)
	if err != nil {
		t.Fatal(err)
	}
	opts := archive.ApplyOptions{OverlayWhiteouts: len(lowers) > 0, Parents: lowers}
	if _, err := archive.Apply(ctx, up, bytes.NewReader(layer), opts); err != nil {
		t.Fatalf("apply %s: %v", name, err)
	}
	if err := s.Commit(ctx, name, key); err != nil {
		t.Fatal(err)
	}
}

// TestChain unpacks a 3-layer image into snapshots, checks the merged view
// of a container on top (against the same layers flattened into a plain
// directory, and file by file), writes in the container, and checks that
// Diff of its upper lists exactly the changes and reproduces its view.
func TestChain(t *testing.T) {
	testutil.RequireRoot(t)
	ctx := context.Background()
	s := open(t, t.TempDir())
	layers := chainLayers(t)
	parent := ""
	for i, l := range layers {
		name := "chain" + string(rune('1'+i))
		unpack(t, s, name, parent, l)
		parent = name
	}

	flat := t.TempDir()
	for _, l := range layers {
		if _, err := archive.Apply(ctx, flat, bytes.NewReader(l), archive.ApplyOptions{NoSync: true}); err != nil {
			t.Fatal(err)
		}
	}

	ms, err := s.Prepare(ctx, "ctr", parent)
	if err != nil {
		t.Fatal(err)
	}
	merged := mountAt(t, ms)
	view := archivetest.Tree(t, merged)

	// Overlay cannot share an inode across layers: bin/busybox2 (layer 2)
	// links to a copy of busybox, while sh and ls keep layer 1's inode.
	nlinkBin := func(p string, n *archivetest.Node) {
		if strings.HasPrefix(p, "bin/") {
			n.Nlink = 0
		}
	}
	if d := archivetest.Compare(archivetest.Tree(t, flat), view, nlinkBin); len(d) > 0 {
		t.Errorf("merged view differs from the flattened layers:\n%s", strings.Join(d, "\n"))
	}

	check := func(p, want string) {
		t.Helper()
		n, ok := view[p]
		if !ok {
			t.Errorf("%s: missing from the merged view", p)
			return
		}
		if !strings.Contains(want, "mtime=") {
			n.Mtime = time.Time{}
		}
		got := strings.Replace(n.String(), " mtime=0001-01-01T00:00:00Z", "", 1)
		if got != want {
			t.Errorf("%s:\n\tgot  %s\n\twant %s", p, got, want)
		}
	}
	check("bin/busybox", "file 0755 0:0 size=7 sha=b55709743468 nlink=2")
	check("bin/busybox2", "file 0755 0:0 size=7 sha=b55709743468 nlink=2")
	check("bin/sh", "file 0755 0:0 size=7 sha=b55709743468 nlink=3")
	check("dev/null", "char 0666 0:0 1:3")
	check("etc/hostname", "file 0644 0:0 size=7 sha=aea45db10a3c nlink=1 mtime=2024-05-06T08:08:09Z")
	check("etc/passwd", "file 0644 0:0 size=63 sha=fcf1b8672b68 nlink=1")
	check("lib", "symlink 0000 0:0 -> usr/lib")
	check("opt/app/data", "file 0640 33:33 size=4 sha=3a6eb0790f39 nlink=2")
	check("run/fifo", "fifo 0620 0:0")
	check("sbin/su", "file 4755 0:0 size=2 sha=14ce1aee45e9 nlink=1")
	check("tmp", "dir 1777 0:0")
	check("usr/lib/libc.so", "file 0644 0:0 size=4 sha=0bd4bcdc0f8b nlink=1")
	check("var/log/app.log", `file 0644 0:0 size=3 sha=836ff184e7b4 nlink=1 user.k="v"`)
	for _, gone := range []string{"etc/old.conf", "home/user", "home/user/.profile", "usr/share/doc/README", "usr/share/doc/sub"} {
		if n, ok := view[gone]; ok {
			t.Errorf("%s: still visible (%v)", gone, n)
		}
	}
	if ents, _ := os.ReadDir(filepath.Join(merged, "usr/share/doc")); len(ents) != 1 || ents[0].Name() != "NEW" {
		t.Errorf("opaque usr/share/doc holds %v, want only NEW", ents)
	}
	for p, n := range view {
		if !strings.HasPrefix(p, "etc/hostname") && !n.Mtime.Equal(archivetest.Epoch) {
			t.Errorf("%s: mtime %v, want %v", p, n.Mtime, archivetest.Epoch)
		}
	}

	// The container writes.
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.WriteFile(filepath.Join(merged, "newfile"), []byte("new"), 0o644))
	must(os.Link(filepath.Join(merged, "newfile"), filepath.Join(merged, "newlink")))
	must(os.WriteFile(filepath.Join(merged, "etc/hostname"), []byte("ctr\n"), 0o644))
	must(os.Remove(filepath.Join(merged, "etc/passwd")))
	must(os.RemoveAll(filepath.Join(merged, "usr/share/doc")))
	must(os.Mkdir(filepath.Join(merged, "usr/share/doc"), 0o755))
	must(os.WriteFile(filepath.Join(merged, "usr/share/doc/again"), []byte("again"), 0o644))
	must(os.Chmod(filepath.Join(merged, "bin/sh"), 0o700))
	must(unix.Setxattr(filepath.Join(merged, "newfile"), "user.ctr", []byte("yes"), 0))
	written := archivetest.Tree(t, merged)
	must(UnmountAll(merged))

	up, lowers, err := LayerDirs(ms)
	must(err)
	var diff bytes.Buffer
	must(archive.Diff(ctx, lowers, up, &diff, archive.DiffOptions{}))
	want := []string{
		"bin/ dir",
		"bin/sh file",
		"etc/ dir",
		"etc/.wh.passwd file",
		"etc/hostname file",
		"newfile file",
		"newlink link -> newfile",
		"usr/ dir",
		"usr/share/ dir",
		"usr/share/doc/ dir",
		"usr/share/doc/.wh..wh..opq file",
		"usr/share/doc/again file",
	}
	if got := archivetest.List(t, diff.Bytes()); !slices.Equal(got, want) {
		t.Errorf("diff of the container:\n got %q\nwant %q", got, want)
	}

	// The diff, unpacked as a fourth layer, reproduces the container's view
	// (to the second: tar keeps whole seconds).
	unpack(t, s, "chain4", parent, diff.Bytes())
	vs, err := s.View(ctx, "check", "chain4")
	must(err)
	again := archivetest.Tree(t, mountAt(t, vs))
	ignore := func(p string, n *archivetest.Node) {
		nlinkBin(p, n)
		n.Mtime = n.Mtime.Truncate(time.Second)
	}
	if d := archivetest.Compare(written, again, ignore); len(d) > 0 {
		t.Errorf("diff applied on the chain differs from the container's view:\n%s", strings.Join(d, "\n"))
	}

	// Usage counts a layer alone.
	u, err := s.Usage(ctx, "chain3")
	must(err)
	if u.Inodes != 8 { // fs, etc, etc/hostname, home, home/user (whiteout), var, var/log, app.log
		t.Errorf("usage of layer 3: %+v", u)
	}
	if err := s.Remove(ctx, "chain3"); err == nil {
		t.Error("removed a layer with children")
	}
}
