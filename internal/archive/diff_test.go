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

	kgzip "github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/internal/archive/archivetest"
	"github.com/berth-dev/berth/internal/errdefs"
	"github.com/berth-dev/berth/internal/testutil"
)

// TestTarRoundTrip: Apply, Tar, Apply again gives the same tree.
func TestTarRoundTrip(t *testing.T) {
	testutil.RequireRoot(t)
	a, b := t.TempDir(), t.TempDir()
	apply(t, a, everyKind(t), ApplyOptions{})
	var buf bytes.Buffer
	if err := Tar(context.Background(), a, &buf); err != nil {
		t.Fatal(err)
	}
	apply(t, b, buf.Bytes(), ApplyOptions{})
	// Tar keeps whole seconds; directories implied by the first layer
	// carry the time of the first Apply.
	ignore := func(p string, n *Node) { n.Mtime = n.Mtime.Truncate(time.Second) }
	if d := archivetest.Compare(archivetest.Tree(t, a), archivetest.Tree(t, b), ignore); len(d) > 0 {
		t.Errorf("round trip differs:\n%s", strings.Join(d, "\n"))
	}
	list := archivetest.List(t, buf.Bytes())
	if !slices.IsSortedFunc(list, func(x, y string) int { return strings.Compare(x, y) }) {
		t.Errorf("tar not in sorted order: %v", list)
	}
	if !slices.Contains(list, "bin/tool2 link -> bin/tool") {
		t.Errorf("hardlink not kept as a link: %v", list)
	}
}

type Node = archivetest.Node

// upperFixture builds by hand what overlayfs leaves in an upper dir.
func upperFixture(t *testing.T) string {
	t.Helper()
	up := t.TempDir()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(up, "etc"), 0o755))
	must(os.WriteFile(filepath.Join(up, "etc/passwd"), []byte("root:x:0:0::/root:/bin/sh\n"), 0o644))
	must(unix.Mknod(filepath.Join(up, "etc/hostname"), unix.S_IFCHR, 0))
	must(os.MkdirAll(filepath.Join(up, "usr/share/doc"), 0o755))
	must(unix.Setxattr(filepath.Join(up, "usr/share/doc"), overlayOpaque, []byte("y"), 0))
	must(os.WriteFile(filepath.Join(up, "usr/share/doc/x"), []byte("x"), 0o600))
	must(unix.Setxattr(filepath.Join(up, "usr/share/doc/x"), "user.a", []byte("1"), 0))
	must(unix.Setxattr(filepath.Join(up, "usr/share/doc/x"), "trusted.overlay.origin", []byte("junk"), 0))
	must(os.WriteFile(filepath.Join(up, "new.txt"), []byte("new"), 0o644))
	must(os.Link(filepath.Join(up, "new.txt"), filepath.Join(up, "new2.txt")))
	must(os.Symlink("new.txt", filepath.Join(up, "sym")))
	must(unix.Mkfifo(filepath.Join(up, "fifo"), 0o600))
	for _, p := range []string{"etc/passwd", "etc/hostname", "etc", "usr/share/doc/x", "usr/share/doc", "usr/share", "usr", "new.txt", "fifo"} {
		must(os.Chtimes(filepath.Join(up, p), archivetest.Epoch, archivetest.Epoch.Add(time.Duration(len(p))*time.Hour)))
	}
	return up
}

func TestDiffUpper(t *testing.T) {
	testutil.RequireRoot(t)
	up := upperFixture(t)
	var buf bytes.Buffer
	if err := Diff(context.Background(), nil, up, &buf, DiffOptions{}); err != nil {
		t.Fatal(err)
	}
	want := []string{
		"etc/ dir",
		"etc/.wh.hostname file",
		"etc/passwd file",
		"fifo fifo",
		"new.txt file",
		"new2.txt link -> new.txt",
		"sym symlink -> new.txt",
		"usr/ dir",
		"usr/share/ dir",
		"usr/share/doc/ dir",
		"usr/share/doc/.wh..wh..opq file",
		"usr/share/doc/x file",
	}
	if got := archivetest.List(t, buf.Bytes()); !slices.Equal(got, want) {
		t.Errorf("diff entries:\n got %q\nwant %q", got, want)
	}
	tr := tar.NewReader(bytes.NewReader(buf.Bytes()))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if h.Name == "usr/share/doc/x" {
			if h.PAXRecords["SCHILY.xattr.user.a"] != "1" || len(h.PAXRecords) != 1 {
				t.Errorf("xattrs of x: %v", h.PAXRecords)
			}
		}
		if h.ModTime.Nanosecond() != 0 || !h.AccessTime.IsZero() || !h.ChangeTime.IsZero() {
			t.Errorf("%s: times not normalised: %v %v %v", h.Name, h.ModTime, h.AccessTime, h.ChangeTime)
		}
	}

	// Same tree, same bytes; an epoch clamps later mtimes only.
	var again bytes.Buffer
	if err := Diff(context.Background(), nil, up, &again, DiffOptions{}); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(buf.Bytes(), again.Bytes()) {
		t.Error("Diff is not deterministic")
	}
	epoch := archivetest.Epoch.Add(5 * time.Hour)
	var clamped bytes.Buffer
	if err := Diff(context.Background(), nil, up, &clamped, DiffOptions{SourceDateEpoch: epoch}); err != nil {
		t.Fatal(err)
	}
	tr = tar.NewReader(&clamped)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if h.ModTime.After(epoch) {
			t.Errorf("%s: mtime %v after epoch %v", h.Name, h.ModTime, epoch)
		}
		if h.Name == "etc/" && !h.ModTime.Equal(archivetest.Epoch.Add(3*time.Hour)) {
			t.Errorf("etc/: mtime %v, earlier than the epoch so kept", h.ModTime)
		}
	}
}

func TestDiffRefusesRedirect(t *testing.T) {
	testutil.RequireRoot(t)
	up := t.TempDir()
	if err := os.Mkdir(filepath.Join(up, "moved"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Setxattr(filepath.Join(up, "moved"), overlayRedirect, []byte("/orig"), 0); err != nil {
		t.Fatal(err)
	}
	err := Diff(context.Background(), nil, up, io.Discard, DiffOptions{})
	if !errors.Is(err, errdefs.ErrNotImplemented) {
		t.Errorf("redirect dir: %v", err)
	}
}

func TestDecompressStream(t *testing.T) {
	payload := bytes.Repeat([]byte("layer bytes "), 300_000)
	var gz, zs bytes.Buffer
	zw := kgzip.NewWriter(&gz)
	zw.Write(payload)
	zw.Close()
	ze, _ := zstd.NewWriter(&zs)
	ze.Write(payload)
	ze.Close()
	for _, tc := range []struct {
		name string
		in   []byte
	}{{"gzip", gz.Bytes()}, {"zstd", zs.Bytes()}, {"plain", payload}, {"empty", nil}} {
		t.Run(tc.name, func(t *testing.T) {
			rc, err := DecompressStream(bytes.NewReader(tc.in))
			if err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(rc)
			if err != nil {
				t.Fatal(err)
			}
			rc.Close()
			want := payload
			if tc.in == nil {
				want = nil
			}
			if !bytes.Equal(got, want) {
				t.Errorf("got %d bytes, want %d", len(got), len(want))
			}
		})
	}
	t.Run("corrupt", func(t *testing.T) {
		bad := slices.Clone(gz.Bytes())
		bad[len(bad)/2] ^= 0xff
		rc, err := DecompressStream(bytes.NewReader(bad))
		if err == nil {
			_, err = io.Copy(io.Discard, rc)
			rc.Close()
		}
		if err == nil {
			t.Error("corrupt gzip read without error")
		}
	})
	t.Run("truncated", func(t *testing.T) {
		rc, err := DecompressStream(bytes.NewReader(gz.Bytes()[:gz.Len()/2]))
		if err == nil {
			_, err = io.Copy(io.Discard, rc)
			rc.Close()
		}
		if err == nil {
			t.Error("truncated gzip read without error")
		}
	})
	t.Run("close-early", func(t *testing.T) {
		rc, err := DecompressStream(bytes.NewReader(gz.Bytes()))
		if err != nil {
			t.Fatal(err)
		}
		io.CopyN(io.Discard, rc, 1000)
		rc.Close()
		if _, err := rc.Read(make([]byte, 10)); err == nil {
			t.Error("read after close succeeded")
		}
	})
}
