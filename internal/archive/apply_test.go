package archive

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/internal/archive/archivetest"
	"github.com/berth-dev/berth/internal/errdefs"
	"github.com/berth-dev/berth/internal/testutil"
)

type E = archivetest.Entry

func apply(t *testing.T, dir string, layer []byte, opts ApplyOptions) {
	t.Helper()
	opts.NoSync = true
	if _, err := Apply(context.Background(), dir, bytes.NewReader(layer), opts); err != nil {
		t.Fatalf("apply: %v", err)
	}
}

// everyKind is one layer with one entry of every kind Apply handles.
func everyKind(t testing.TB) []byte {
	return archivetest.Tar(t,
		E{Name: "./"},
		E{Name: "bin/"},
		E{Name: "bin/tool", Body: "#!/bin/sh\necho tool\n", Mode: 0o4755},
		E{Name: "bin/tool2", Type: tar.TypeLink, Link: "bin/tool"},
		E{Name: "etc/", Mode: 0o750, UID: 1000, GID: 1001},
		E{Name: "etc/owned", Body: "x", UID: 1000, GID: 1001, Mode: 0o2640},
		E{Name: "etc/cap", Body: "cap", Xattrs: map[string]string{"user.note": "hello", "trusted.overlay.opaque": "y"}},
		E{Name: "tmp/", Mode: 0o1777},
		E{Name: "lib", Type: tar.TypeSymlink, Link: "usr/lib", UID: 7, GID: 8},
		E{Name: "usr/lib/libx.so", Body: "elf"}, // parents implied
		E{Name: "dev/", Mode: 0o755},
		E{Name: "dev/null", Type: tar.TypeChar, Major: 1, Minor: 3, Mode: 0o666},
		E{Name: "dev/loop9", Type: tar.TypeBlock, Major: 7, Minor: 9, Mode: 0o660, GID: 6},
		E{Name: "run/", Mode: 0o755},
		E{Name: "run/fifo", Type: tar.TypeFifo, Mode: 0o620},
		E{Name: "big", Body: strings.Repeat("0123456789abcdef", 200_000)}, // > copy buffer
		E{Name: "old", Body: "stamp", ModTime: time.Date(1999, 1, 2, 3, 4, 5, 6000, time.UTC)},
	)
}

func TestApplyEveryKind(t *testing.T) {
	testutil.RequireRoot(t)
	dir := t.TempDir()
	size, err := Apply(context.Background(), dir, bytes.NewReader(everyKind(t)), ApplyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if want := int64(len("#!/bin/sh\necho tool\n") + 1 + 3 + 3 + 16*200_000 + 5); size != want {
		t.Errorf("size = %d, want %d", size, want)
	}
	tree := archivetest.Tree(t, dir)
	check := func(p, want string) {
		t.Helper()
		n, ok := tree[p]
		if !ok {
			t.Errorf("%s: missing", p)
			return
		}
		// Compare without the mtime suffix; times are checked below.
		got := n.String()
		got = got[:strings.Index(got, " mtime=")] + got[strings.Index(got, " mtime=")+len(" mtime=")+len(n.Mtime.UTC().Format(time.RFC3339Nano)):]
		if got != want {
			t.Errorf("%s:\n\tgot  %s\n\twant %s", p, got, want)
		}
	}
	check("bin/tool", "file 4755 0:0 size=20 sha=bf664cf84f00 nlink=2")
	check("bin/tool2", "file 4755 0:0 size=20 sha=bf664cf84f00 nlink=2")
	check("etc", "dir 0750 1000:1001")
	check("etc/owned", "file 2640 1000:1001 size=1 sha=2d711642b726 nlink=1")
	check("etc/cap", `file 0644 0:0 size=3 sha=45e84635bc48 nlink=1 user.note="hello"`)
	check("tmp", "dir 1777 0:0")
	check("lib", "symlink 0000 7:8 -> usr/lib")
	check("usr", "dir 0755 0:0")
	check("usr/lib/libx.so", "file 0644 0:0 size=3 sha=780d84b20d7a nlink=1")
	check("dev/null", "char 0666 0:0 1:3")
	check("dev/loop9", "block 0660 0:6 7:9")
	check("run/fifo", "fifo 0620 0:0")
	if len(tree) != 18 {
		t.Errorf("tree has %d paths, want 18: %v", len(tree), tree)
	}
	for _, p := range []string{"bin/tool", "etc", "tmp", "lib", "dev/null", "run/fifo", "big"} {
		if !tree[p].Mtime.Equal(archivetest.Epoch) {
			t.Errorf("%s: mtime %v, want %v", p, tree[p].Mtime, archivetest.Epoch)
		}
	}
	if want := time.Date(1999, 1, 2, 3, 4, 5, 6000, time.UTC); !tree["old"].Mtime.Equal(want) {
		t.Errorf("old: mtime %v, want %v (sub-second kept)", tree["old"].Mtime, want)
	}
	if st, err := os.Stat(dir); err != nil || st.Mode().Perm() != 0o700 && st.Mode().Perm() != 0o755 {
		t.Errorf("root mode changed: %v %v", st.Mode(), err)
	}
}

func TestApplyIDMap(t *testing.T) {
	testutil.RequireRoot(t)
	dir := t.TempDir()
	layer := archivetest.Tar(t, E{Name: "a", Body: "a", UID: 5, GID: 6}, E{Name: "l", Type: tar.TypeSymlink, Link: "a", UID: 1})
	m := []IDMap{{ContainerID: 0, HostID: 100000, Size: 65536}}
	apply(t, dir, layer, ApplyOptions{UIDMap: m, GIDMap: m})
	tree := archivetest.Tree(t, dir)
	if n := tree["a"]; n.UID != 100005 || n.GID != 100006 {
		t.Errorf("a owned %d:%d", n.UID, n.GID)
	}
	if n := tree["l"]; n.UID != 100001 || n.GID != 100000 {
		t.Errorf("l owned %d:%d", n.UID, n.GID)
	}
	_, err := Apply(context.Background(), t.TempDir(), bytes.NewReader(archivetest.Tar(t, E{Name: "b", UID: 70000})),
		ApplyOptions{UIDMap: m, GIDMap: m, NoSync: true})
	if !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), `"b"`) {
		t.Errorf("unmapped uid: %v", err)
	}
}

// TestApplyFlatten applies two layers into one plain directory: whiteouts
// delete, an opaque directory keeps only what its own layer wrote.
func TestApplyFlatten(t *testing.T) {
	testutil.RequireRoot(t)
	dir := t.TempDir()
	apply(t, dir, archivetest.Tar(t,
		E{Name: "a/"}, E{Name: "a/keep"}, E{Name: "a/gone", Body: "x"},
		E{Name: "d/"}, E{Name: "d/old1"}, E{Name: "d/sub/"}, E{Name: "d/sub/old2"},
		E{Name: "x/"}, E{Name: "x/y/"}, E{Name: "x/y/z"},
	), ApplyOptions{})
	apply(t, dir, archivetest.Tar(t,
		E{Name: "a/"}, E{Name: "a/.wh.gone"}, E{Name: "a/.wh.never-existed"},
		E{Name: "d/"}, E{Name: "d/sub/"}, E{Name: "d/sub/new"}, E{Name: "d/.wh..wh..opq"}, E{Name: "d/new"},
		E{Name: ".wh.x"},
		E{Name: "n", Body: "same layer"}, E{Name: ".wh.n"}, // a whiteout never hides its own layer
		E{Name: ".wh..wh.plnk/"},
	), ApplyOptions{})
	var got []string
	for p := range archivetest.Tree(t, dir) {
		got = append(got, p)
	}
	slices.Sort(got)
	want := []string{"a", "a/keep", "d", "d/new", "d/sub", "d/sub/new", "n"}
	if !slices.Equal(got, want) {
		t.Errorf("tree = %v, want %v", got, want)
	}
}

// TestApplyOverlayWhiteouts checks the overlayfs form of whiteouts.
func TestApplyOverlayWhiteouts(t *testing.T) {
	testutil.RequireRoot(t)
	dir := t.TempDir()
	apply(t, dir, archivetest.Tar(t,
		E{Name: "a/"}, E{Name: "a/.wh.gone"},
		E{Name: "d/"}, E{Name: "d/.wh..wh..opq"}, E{Name: "d/new"},
		E{Name: "e/.wh..wh..opq"}, // directory implied by the marker
		E{Name: "n", Body: "same layer"}, E{Name: ".wh.n"},
	), ApplyOptions{OverlayWhiteouts: true})
	var st unix.Stat_t
	if err := unix.Lstat(filepath.Join(dir, "a/gone"), &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFCHR || st.Rdev != 0 {
		t.Errorf("a/gone: want 0/0 char device, got mode %o rdev %d err %v", st.Mode, st.Rdev, err)
	}
	for _, d := range []string{"d", "e"} {
		v := make([]byte, 8)
		n, err := unix.Lgetxattr(filepath.Join(dir, d), overlayOpaque, v)
		if err != nil || string(v[:n]) != "y" {
			t.Errorf("%s: opaque xattr = %q, %v", d, v[:n], err)
		}
	}
	if b, err := os.ReadFile(filepath.Join(dir, "n")); err != nil || string(b) != "same layer" {
		t.Errorf("n: %q %v", b, err)
	}
}

// TestApplyReplace covers entries that replace earlier ones of other kinds,
// in particular a file over a symlink, which must not write through it.
func TestApplyReplace(t *testing.T) {
	testutil.RequireRoot(t)
	outside := t.TempDir()
	victim := filepath.Join(outside, "victim")
	if err := os.WriteFile(victim, []byte("untouched"), 0o644); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	apply(t, dir, archivetest.Tar(t,
		E{Name: "s", Type: tar.TypeSymlink, Link: victim},
		E{Name: "s", Body: "replaced"},
		E{Name: "d/"}, E{Name: "d/x"},
		E{Name: "d", Body: "file over dir"},
		E{Name: "f", Body: "file"},
		E{Name: "f/"},
		E{Name: "f/inside"},
	), ApplyOptions{})
	if b, _ := os.ReadFile(victim); string(b) != "untouched" {
		t.Errorf("wrote through a symlink: victim = %q", b)
	}
	tree := archivetest.Tree(t, dir)
	if tree["s"].Type != "file" || tree["d"].Type != "file" || tree["f"].Type != "dir" || tree["f/inside"].Type != "file" {
		t.Errorf("tree: %v", tree)
	}
}

func TestApplyRefusesEscapes(t *testing.T) {
	testutil.RequireRoot(t)
	for _, fallback := range []bool{false, true} {
		name := "openat2"
		if fallback {
			name = "walk"
		}
		t.Run(name, func(t *testing.T) { testEscapes(t, fallback) })
	}
}

func testEscapes(t *testing.T, fallback bool) {
	passwd, err := os.ReadFile("/etc/passwd")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		entries []E
		bad     string // the entry the error must name
	}{
		{"dotdot", []E{{Name: "../etc/passwd", Body: "pwned"}}, "../etc/passwd"},
		{"dotdot-deep", []E{{Name: "a/../../etc/passwd", Body: "pwned"}}, "a/../../etc/passwd"},
		{"absolute", []E{{Name: "/etc/passwd", Body: "pwned"}}, "/etc/passwd"},
		{"symlink-abs", []E{{Name: "link", Type: tar.TypeSymlink, Link: "/etc"}, {Name: "link/passwd", Body: "pwned"}}, "link/passwd"},
		{"symlink-rel", []E{{Name: "link", Type: tar.TypeSymlink, Link: "../../../../../../../etc"}, {Name: "link/passwd", Body: "pwned"}}, "link/passwd"},
		{"symlink-chain", []E{
			{Name: "a", Type: tar.TypeSymlink, Link: "b/.."}, {Name: "b/"},
			{Name: "c", Type: tar.TypeSymlink, Link: "a/../etc"}, {Name: "c/passwd", Body: "pwned"},
		}, "c/passwd"},
		{"hardlink-dotdot", []E{{Name: "hl", Type: tar.TypeLink, Link: "../outside"}}, "hl"},
		{"hardlink-abs", []E{{Name: "hl", Type: tar.TypeLink, Link: "/etc/passwd"}}, "hl"},
		{"hardlink-symlink", []E{{Name: "link", Type: tar.TypeSymlink, Link: "/etc"}, {Name: "hl", Type: tar.TypeLink, Link: "link/passwd"}}, "hl"},
		{"whiteout-symlink", []E{{Name: "link", Type: tar.TypeSymlink, Link: "/etc"}, {Name: "link/.wh.passwd"}}, "link/.wh.passwd"},
		{"opaque-symlink", []E{{Name: "link", Type: tar.TypeSymlink, Link: "/etc"}, {Name: "link/.wh..wh..opq"}}, "link/.wh..wh..opq"},
	} {
		for _, overlay := range []bool{false, true} {
			mode := "/plain"
			if overlay {
				mode = "/overlay"
			}
			t.Run(tc.name+mode, func(t *testing.T) {
				top := t.TempDir()
				root := filepath.Join(top, "root")
				if err := os.Mkdir(root, 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(filepath.Join(top, "outside"), []byte("outside"), 0o644); err != nil {
					t.Fatal(err)
				}
				a, err := newApplier(root, ApplyOptions{OverlayWhiteouts: overlay, NoSync: true})
				if err != nil {
					t.Fatal(err)
				}
				a.ctx = context.Background()
				a.root.noOpenat2 = fallback
				_, err = a.apply(context.Background(), bytes.NewReader(archivetest.Tar(t, tc.entries...)))
				a.close()
				if err == nil {
					t.Fatal("applied; want an error")
				}
				if !errdefs.IsInvalidArgument(err) {
					t.Errorf("error %v is not InvalidArgument", err)
				}
				if !strings.Contains(err.Error(), `"`+tc.bad+`"`) {
					t.Errorf("error %q does not name entry %q", err, tc.bad)
				}
				ents, _ := os.ReadDir(top)
				if len(ents) != 2 {
					t.Errorf("something was written beside root: %v", ents)
				}
				if b, _ := os.ReadFile(filepath.Join(top, "outside")); string(b) != "outside" {
					t.Errorf("outside file changed: %q", b)
				}
				if b, _ := os.ReadFile("/etc/passwd"); !bytes.Equal(b, passwd) {
					t.Fatalf("/etc/passwd changed!")
				}
			})
		}
	}
}

// TestApplyHardlinkCopyUp: a layer on top of parents hardlinks to a file
// only a lower layer has; the upper gets a copy that the link shares.
func TestApplyHardlinkCopyUp(t *testing.T) {
	testutil.RequireRoot(t)
	lower, upper := t.TempDir(), t.TempDir()
	apply(t, lower, archivetest.Tar(t,
		E{Name: "usr/", Mode: 0o711, UID: 3},
		E{Name: "usr/bin/", Mode: 0o751},
		E{Name: "usr/bin/tool", Body: "tool", Mode: 0o4750, GID: 9, Xattrs: map[string]string{"user.k": "v"}},
		E{Name: "escape", Type: tar.TypeSymlink, Link: "/etc"},
	), ApplyOptions{})
	apply(t, upper, archivetest.Tar(t, E{Name: "tool-link", Type: tar.TypeLink, Link: "usr/bin/tool"}),
		ApplyOptions{OverlayWhiteouts: true, Parents: []string{lower}})
	tree := archivetest.Tree(t, upper)
	lt := archivetest.Tree(t, lower)
	want := lt["usr/bin/tool"]
	want.Nlink = 2
	for _, p := range []string{"usr/bin/tool", "tool-link"} {
		if got := tree[p]; got.String() != want.String() {
			t.Errorf("%s: got %v, want %v", p, got, want)
		}
	}
	for _, p := range []string{"usr", "usr/bin"} {
		if got, want := tree[p], lt[p]; got.String() != want.String() {
			t.Errorf("implied dir %s: got %v, want %v", p, got, want)
		}
	}
	// A copy-up never follows a lower symlink out of the lower layer.
	_, err := Apply(context.Background(), t.TempDir(),
		bytes.NewReader(archivetest.Tar(t, E{Name: "shadow", Type: tar.TypeLink, Link: "escape/passwd"})),
		ApplyOptions{OverlayWhiteouts: true, Parents: []string{lower}, NoSync: true})
	if !errdefs.IsInvalidArgument(err) {
		t.Errorf("copy-up through a lower symlink: %v", err)
	}
	_, err = Apply(context.Background(), t.TempDir(),
		bytes.NewReader(archivetest.Tar(t, E{Name: "x", Type: tar.TypeLink, Link: "missing"})), ApplyOptions{NoSync: true})
	if !errdefs.IsNotFound(err) || !strings.Contains(err.Error(), `"x"`) {
		t.Errorf("missing hardlink target: %v", err)
	}
}

func TestApplyDrainsStream(t *testing.T) {
	testutil.RequireRoot(t)
	layer := append(archivetest.Tar(t, E{Name: "a"}), make([]byte, 10240)...)
	r := bytes.NewReader(layer)
	if _, err := Apply(context.Background(), t.TempDir(), r, ApplyOptions{NoSync: true}); err != nil {
		t.Fatal(err)
	}
	if r.Len() != 0 {
		t.Errorf("%d bytes left unread", r.Len())
	}
}

func TestApplyTruncated(t *testing.T) {
	testutil.RequireRoot(t)
	layer := archivetest.Tar(t, E{Name: "a", Body: strings.Repeat("x", 5000)})
	_, err := Apply(context.Background(), t.TempDir(), bytes.NewReader(layer[:2000]), ApplyOptions{NoSync: true})
	if err == nil || !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("truncated layer: %v", err)
	}
}

func TestApplyCanceled(t *testing.T) {
	testutil.RequireRoot(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := Apply(ctx, t.TempDir(), bytes.NewReader(archivetest.Tar(t, E{Name: "a"})), ApplyOptions{NoSync: true})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v", err)
	}
}

// TestApplyXattrRefused: xattrs the kernel refuses as such are skipped
// (user.* on a symlink is never allowed on Linux); the entry is kept.
func TestApplyXattrRefused(t *testing.T) {
	testutil.RequireRoot(t)
	dir := t.TempDir()
	apply(t, dir, archivetest.Tar(t,
		E{Name: "l", Type: tar.TypeSymlink, Link: "x", Xattrs: map[string]string{"user.k": "v"}},
		E{Name: "f", Body: "f", Xattrs: map[string]string{"security.selinux": "system_u:object_r:bin_t:s0", "user.k": "v"}},
	), ApplyOptions{})
	tree := archivetest.Tree(t, dir)
	if tree["l"].Type != "symlink" || tree["f"].Xattrs["user.k"] != "v" {
		t.Errorf("tree: %v", tree)
	}
}

// TestApplyWhiteoutThenRecreate: a layer that deletes a lower directory and
// recreates it without an opaque marker still hides the lower content.
func TestApplyWhiteoutThenRecreate(t *testing.T) {
	testutil.RequireRoot(t)
	dir := t.TempDir()
	layer := archivetest.Tar(t,
		E{Name: ".wh.foo"}, E{Name: "foo/"}, E{Name: "foo/bar"}, // listed
		E{Name: ".wh.baz"}, E{Name: "baz/x"}, // implied
	)
	apply(t, dir, layer, ApplyOptions{OverlayWhiteouts: true})
	for _, d := range []string{"foo", "baz"} {
		v := make([]byte, 8)
		n, err := unix.Lgetxattr(filepath.Join(dir, d), overlayOpaque, v)
		if err != nil || string(v[:n]) != "y" {
			t.Errorf("%s: opaque = %q, %v", d, v[:n], err)
		}
	}
	tree := archivetest.Tree(t, dir)
	if tree["foo/bar"].Type != "file" || tree["baz/x"].Type != "file" {
		t.Errorf("tree: %v", tree)
	}
	_, err := Apply(context.Background(), t.TempDir(), bytes.NewReader(archivetest.Tar(t, E{Name: "f", Body: "file"}, E{Name: "f/g"})), ApplyOptions{NoSync: true})
	if err == nil || !strings.Contains(err.Error(), `"f/g"`) || !errors.Is(err, unix.ENOTDIR) {
		t.Errorf("entry through a file: %v", err)
	}
}

// TestApplyParentsNotReady applies an upper layer while its lower is still
// being written (ParentsReady), and checks the result equals applying them
// one after the other: implied directories take their lower attributes at
// the end unless listed, and a hardlink to a lower file waits for it.
func TestApplyParentsNotReady(t *testing.T) {
	testutil.RequireRoot(t)
	lowerTar := archivetest.Tar(t,
		E{Name: "usr/", Mode: 0o711, UID: 3},
		E{Name: "usr/bin/", Mode: 0o751, ModTime: time.Date(2001, 1, 1, 0, 0, 0, 0, time.UTC)},
		E{Name: "usr/bin/tool", Body: "tool", Mode: 0o4750, GID: 9},
		E{Name: "etc/", Mode: 0o700, UID: 5},
		E{Name: "srv/", Mode: 0o705},
	)
	upperTar := archivetest.Tar(t,
		E{Name: "usr/bin/new", Body: "new"},                       // implies usr/ and usr/bin/
		E{Name: "etc/conf", Body: "c"},                            // implies etc/ ...
		E{Name: "etc/", Mode: 0o755, UID: 6},                      // ... then lists it: its own attributes win
		E{Name: "srv/x/y", Body: "y"},                             // implies srv/ (lower) and srv/x (no lower)
		E{Name: "link", Type: tar.TypeLink, Link: "usr/bin/tool"}, // waits for the lower
	)
	seqLower, seqUpper := t.TempDir(), t.TempDir()
	apply(t, seqLower, lowerTar, ApplyOptions{})
	apply(t, seqUpper, upperTar, ApplyOptions{OverlayWhiteouts: true, Parents: []string{seqLower}})

	lower, upper := t.TempDir(), t.TempDir()
	ready := make(chan struct{})
	waited := make(chan struct{})
	errc := make(chan error, 1)
	go func() {
		_, err := Apply(context.Background(), upper, bytes.NewReader(upperTar), ApplyOptions{
			OverlayWhiteouts: true, Parents: []string{lower}, NoSync: true,
			ParentsReady: func() error { close(waited); <-ready; return nil },
		})
		errc <- err
	}()
	<-waited // the upper got as far as it can without the lower
	apply(t, lower, lowerTar, ApplyOptions{})
	close(ready)
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	// srv/x has neither a lower nor an entry: its mtime is when it was made.
	noTime := func(p string, n *archivetest.Node) {
		if p == "srv/x" {
			n.Mtime = time.Time{}
		}
	}
	if diff := archivetest.Compare(archivetest.Tree(t, seqUpper), archivetest.Tree(t, upper), noTime); len(diff) > 0 {
		t.Errorf("upper applied before its lower differs:\n%s", strings.Join(diff, "\n"))
	}

	// A failing lower fails the upper.
	_, err := Apply(context.Background(), t.TempDir(), bytes.NewReader(upperTar), ApplyOptions{
		OverlayWhiteouts: true, Parents: []string{t.TempDir()}, NoSync: true,
		ParentsReady: func() error { return errors.New("lower broke") },
	})
	if err == nil || !strings.Contains(err.Error(), "lower broke") {
		t.Errorf("failed lower: %v", err)
	}
}

// TestApplyDirectWrites: files from directMin bytes up are written with
// O_DIRECT (whole blocks direct, the tail buffered); their content, mode,
// owner and times come out as with buffered writes, on a filesystem with
// direct I/O (the test's temp dir) and on one without (ramfs, where the
// open with O_DIRECT fails and Apply falls back).
func TestApplyDirectWrites(t *testing.T) {
	testutil.RequireRoot(t)
	sizes := []int{directMin - 1, directMin, directMin + 1, copyBufSize, copyBufSize + directAlign - 1, 3*copyBufSize + 7}
	var entries []E
	want := map[string]string{}
	for i, n := range sizes {
		b := make([]byte, n)
		for j := range b {
			b[j] = byte(j*7 + i)
		}
		name := "f" + string(rune('a'+i))
		entries = append(entries, E{Name: name, Body: string(b), Mode: 0o4751, UID: 1000, GID: 1001})
		want[name] = string(b)
	}
	layer := archivetest.Tar(t, entries...)
	ramfs := t.TempDir()
	if err := unix.Mount("ramfs", ramfs, "ramfs", 0, ""); err != nil {
		t.Fatalf("mount ramfs: %v", err)
	}
	t.Cleanup(func() { unix.Unmount(ramfs, unix.MNT_DETACH) })
	for _, dir := range []string{t.TempDir(), ramfs} {
		apply(t, dir, layer, ApplyOptions{})
		for name, body := range want {
			got, err := os.ReadFile(filepath.Join(dir, name))
			if err != nil || string(got) != body {
				t.Errorf("%s/%s: %d bytes (%v), want %d, equal %v", dir, name, len(got), err, len(body), string(got) == body)
			}
			var st unix.Stat_t
			if err := unix.Lstat(filepath.Join(dir, name), &st); err != nil {
				t.Fatal(err)
			}
			if st.Mode&0o7777 != 0o4751 || st.Uid != 1000 || st.Gid != 1001 || st.Mtim.Sec != archivetest.Epoch.Unix() {
				t.Errorf("%s/%s: mode %o owner %d:%d mtime %d", dir, name, st.Mode&0o7777, st.Uid, st.Gid, st.Mtim.Sec)
			}
		}
	}
}
