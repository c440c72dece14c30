package archive

import (
	"archive/tar"
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/berth-dev/berth/internal/archive/archivetest"
	"github.com/berth-dev/berth/internal/testutil"
)

// TestApplyInRoot: docker cp's extraction treats root as "/": symlinks in
// the target tree (absolute ones too) and ".." resolve inside it, never
// outside; entries land below Dir; .wh. names are plain files; a file over
// a directory is refused with NoOverwriteDirNonDir.
func TestApplyInRoot(t *testing.T) {
	testutil.RequireRoot(t)
	for _, fallback := range []bool{false, true} {
		top := t.TempDir()
		root := filepath.Join(top, "root")
		for _, d := range []string{"root/real", "root/dest", "root/dest/sub"} {
			if err := os.MkdirAll(filepath.Join(top, d), 0o755); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.Symlink("/real", filepath.Join(root, "dest", "abs")); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink("../../../../../real", filepath.Join(root, "dest", "up")); err != nil {
			t.Fatal(err)
		}
		layer := archivetest.Tar(t,
			E{Name: "abs/a", Body: "a"}, E{Name: "up/b", Body: "b"}, E{Name: ".wh.c", Body: "c"}, E{Name: "new/d", Body: "d"},
			E{Name: "hl", Type: tar.TypeLink, Link: "new/d"},
		)
		a, err := newApplier(root, ApplyOptions{InRoot: true, Dir: "/dest", Literal: true, NoSync: true})
		if err != nil {
			t.Fatal(err)
		}
		a.root.noOpenat2 = fallback
		_, err = a.apply(context.Background(), bytes.NewReader(layer))
		a.close()
		if err != nil {
			t.Fatalf("fallback %v: %v", fallback, err)
		}
		for p, want := range map[string]string{"real/a": "a", "real/b": "b", "dest/.wh.c": "c", "dest/new/d": "d", "dest/hl": "d"} {
			if b, err := os.ReadFile(filepath.Join(root, p)); err != nil || string(b) != want {
				t.Errorf("fallback %v: %s: %q %v", fallback, p, b, err)
			}
		}
		if ents, _ := os.ReadDir(top); len(ents) != 1 {
			t.Errorf("fallback %v: something was written beside root: %v", fallback, ents)
		}
		// A file where a directory is.
		_, err = Apply(context.Background(), root, bytes.NewReader(archivetest.Tar(t, E{Name: "sub", Body: "x"})),
			ApplyOptions{InRoot: true, Dir: "dest", NoOverwriteDirNonDir: true, NoSync: true})
		if err == nil {
			t.Errorf("fallback %v: a file replaced a directory", fallback)
		}
	}
}
