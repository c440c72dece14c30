// Package imagetest builds the multi-layer busybox test image that image,
// distribution and imagearchive tests push, pull, save and load, and the
// tree its layers must unpack to.
package imagetest

import (
	"archive/tar"
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	v1 "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/berth-dev/berth/internal/archive"
	"github.com/berth-dev/berth/internal/archive/archivetest"
	"github.com/berth-dev/berth/internal/image"
	"github.com/berth-dev/berth/internal/testutil"
)

type E = archivetest.Entry

// Message is the content of /srv/msg, written by the third layer.
const Message = "hello from layer 3\n"

// Layers returns the three uncompressed layer tars of the test image and a
// directory holding the tree they must unpack to:
//
//  1. a busybox rootfs (testutil) plus /etc/motd and /opt/old/{x,y};
//  2. /etc/motd deleted by a whiteout, /opt/old deleted and recreated by an
//     opaque whiteout, /usr/share/data with a hardlink beside it, and
//     /bin/sh-copy hardlinked to the lower layer's /bin/busybox;
//  3. /srv/msg and /opt/old/new2.
func Layers(t testing.TB) (layers [][]byte, want string) {
	t.Helper()
	testutil.RequireBusybox(t)
	dir := filepath.Join(t.TempDir(), "rootfs")
	testutil.BusyboxRootfs(t, dir)
	for name, body := range map[string]string{"etc/motd": "welcome\n", "opt/old/x": "x", "opt/old/y": "y"} {
		p := filepath.Join(dir, name)
		must(t, os.MkdirAll(filepath.Dir(p), 0o755))
		must(t, os.WriteFile(p, []byte(body), 0o644))
	}
	// A fixed mtime on every file: two calls of Layers (one building the
	// image, one giving the expected tree) must agree even when a second
	// boundary falls between them.
	must(t, filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if err != nil || info.IsDir() || info.Mode()&os.ModeSymlink != 0 {
			return err
		}
		return os.Chtimes(p, archivetest.Epoch, archivetest.Epoch)
	}))
	var l1 bytes.Buffer
	must(t, archive.Tar(context.Background(), dir, &l1))
	l2 := archivetest.Tar(t,
		E{Name: "bin/"},
		E{Name: "bin/sh-copy", Type: tar.TypeLink, Link: "bin/busybox"},
		E{Name: "etc/"},
		E{Name: "etc/.wh.motd"},
		E{Name: "opt/"},
		E{Name: "opt/old/"},
		E{Name: "opt/old/.wh..wh..opq"},
		E{Name: "opt/old/new", Body: "recreated\n"},
		E{Name: "usr/"},
		E{Name: "usr/share/"},
		E{Name: "usr/share/data", Body: "shared data\n", Mode: 0o640},
		E{Name: "usr/share/data-link", Type: tar.TypeLink, Link: "usr/share/data"},
	)
	l3 := archivetest.Tar(t,
		E{Name: "opt/"},
		E{Name: "opt/old/"},
		E{Name: "opt/old/new2", Body: "more\n"},
		E{Name: "srv/"},
		E{Name: "srv/msg", Body: Message},
	)

	// The expected tree: the same changes made by hand.
	must(t, os.Remove(filepath.Join(dir, "etc/motd")))
	must(t, os.RemoveAll(filepath.Join(dir, "opt/old")))
	must(t, os.MkdirAll(filepath.Join(dir, "opt/old"), 0o755))
	must(t, os.MkdirAll(filepath.Join(dir, "usr/share"), 0o755))
	must(t, os.MkdirAll(filepath.Join(dir, "srv"), 0o755))
	for name, f := range map[string]struct {
		body string
		mode os.FileMode
	}{"opt/old/new": {"recreated\n", 0o644}, "opt/old/new2": {"more\n", 0o644}, "usr/share/data": {"shared data\n", 0o640}, "srv/msg": {Message, 0o644}} {
		p := filepath.Join(dir, name)
		must(t, os.WriteFile(p, []byte(f.body), f.mode))
		must(t, os.Chmod(p, f.mode))
		must(t, os.Chtimes(p, archivetest.Epoch, archivetest.Epoch))
	}
	must(t, os.Link(filepath.Join(dir, "usr/share/data"), filepath.Join(dir, "usr/share/data-link")))
	must(t, os.Link(filepath.Join(dir, "bin/busybox"), filepath.Join(dir, "bin/sh-copy")))
	return [][]byte{l1.Bytes(), l2, l3}, dir
}

// Ignore drops what legitimately differs between the hand-made tree and an
// unpacked one: directory mtimes (the tars set them), sub-second mtimes,
// and link counts of
// busybox, whose hardlink to a lower layer is a copy-up in an overlay.
func Ignore(path string, n *archivetest.Node) {
	if n.Type == "dir" {
		n.Mtime = time.Time{}
	}
	// Layer tars keep whole seconds, as docker's do.
	n.Mtime = n.Mtime.Truncate(time.Second)
	if n.Type == "file" && n.Size > 100000 {
		n.Nlink = 0
	}
	if strings.HasPrefix(path, "usr/share/data") {
		n.Nlink = 0 // checked separately: the two names share an inode
	}
}

// Open opens an empty image store below a temporary directory.
func Open(t testing.TB) *image.Service {
	t.Helper()
	s, err := image.Open(context.Background(), filepath.Join(t.TempDir(), "root"), image.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// Create builds the test image in s under name.
func Create(t testing.TB, s *image.Service, name string) image.Image {
	t.Helper()
	layers, _ := Layers(t)
	img, err := s.CreateFromLayers(context.Background(), name, Config(), readers(layers)...)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// Config is the test image's config.
func Config() v1.Image {
	created := archivetest.Epoch
	return v1.Image{
		Created: &created,
		Config: v1.ImageConfig{
			Cmd: []string{"sh", "-c", "cat /srv/msg"},
			Env: []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"},
		},
	}
}

func readers(layers [][]byte) []io.Reader {
	out := make([]io.Reader, len(layers))
	for i, l := range layers {
		out[i] = bytes.NewReader(l)
	}
	return out
}

// Compare checks that the tree at got is want's, file by file.
func Compare(t testing.TB, want, got string) {
	t.Helper()
	diffs := archivetest.Compare(archivetest.Tree(t, want), archivetest.Tree(t, got), Ignore)
	for _, d := range diffs {
		t.Error(d)
	}
	a, err1 := os.Stat(filepath.Join(got, "usr/share/data"))
	b, err2 := os.Stat(filepath.Join(got, "usr/share/data-link"))
	if err1 != nil || err2 != nil || !os.SameFile(a, b) {
		t.Errorf("usr/share/data and data-link are not one inode: %v %v", err1, err2)
	}
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
