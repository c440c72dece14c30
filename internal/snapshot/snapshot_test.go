package snapshot

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/internal/errdefs"
	"github.com/berth-dev/berth/internal/testutil"
)

func open(t *testing.T, root string) *Snapshotter {
	t.Helper()
	s, err := Open(context.Background(), root, Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// mountAt mounts ms on a fresh directory, unmounted when the test ends
// (even when it fails).
func mountAt(t *testing.T, ms []Mount) string {
	t.Helper()
	dir := t.TempDir()
	if err := MountAll(ms, dir); err != nil {
		t.Fatalf("mount %+v: %v", ms, err)
	}
	t.Cleanup(func() {
		if err := UnmountAll(dir); err != nil {
			t.Errorf("unmount: %v", err)
		}
	})
	return dir
}

func upper(t *testing.T, ms []Mount) string {
	t.Helper()
	u, _, err := LayerDirs(ms)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func writeFile(t *testing.T, p, body string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestLifecycle(t *testing.T) {
	testutil.RequireRoot(t)
	ctx := context.Background()
	root := t.TempDir()
	s := open(t, root)

	ms, err := s.Prepare(ctx, "a", "")
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) != 1 || ms[0].Type != "bind" || !slices.Contains(ms[0].Options, "rw") {
		t.Fatalf("active without parent: %+v", ms)
	}
	writeFile(t, filepath.Join(upper(t, ms), "base"), "base")
	if _, err := s.Prepare(ctx, "a", ""); !errdefs.IsAlreadyExists(err) {
		t.Errorf("prepare twice: %v", err)
	}
	if _, err := s.Prepare(ctx, "b", "a"); !errdefs.IsFailedPrecondition(err) {
		t.Errorf("prepare on an active parent: %v", err)
	}
	if _, err := s.Prepare(ctx, "b", "nope"); !errdefs.IsNotFound(err) {
		t.Errorf("prepare on a missing parent: %v", err)
	}
	if err := s.Commit(ctx, "l1", "a"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Stat(ctx, "a"); !errdefs.IsNotFound(err) {
		t.Errorf("active key after commit: %v", err)
	}
	info, err := s.Stat(ctx, "l1")
	if err != nil || info.Kind != KindCommitted || info.Parent != "" {
		t.Errorf("stat l1: %+v %v", info, err)
	}
	if u, err := s.Usage(ctx, "l1"); err != nil || u.Inodes != 2 || u.Size <= 0 {
		t.Errorf("usage l1: %+v %v", u, err)
	}

	ms, err = s.Prepare(ctx, "b", "l1")
	if err != nil {
		t.Fatal(err)
	}
	up, lowers, err := LayerDirs(ms)
	if err != nil || ms[0].Type != "overlay" || len(lowers) != 1 || !strings.HasPrefix(up, root) {
		t.Fatalf("active with parent: %+v %v", ms, err)
	}
	writeFile(t, filepath.Join(up, "f1"), "one")
	writeFile(t, filepath.Join(up, "f2"), "two")
	if u, err := s.Usage(ctx, "b"); err != nil || u.Inodes != 3 {
		t.Errorf("usage b (fs dir + 2 files): %+v %v", u, err)
	}
	if err := s.Commit(ctx, "l1", "b"); !errdefs.IsAlreadyExists(err) {
		t.Errorf("commit onto an existing name: %v", err)
	}
	if err := s.Commit(ctx, "l2", "b"); err != nil {
		t.Fatal(err)
	}

	vs, err := s.View(ctx, "v1", "l1")
	if err != nil {
		t.Fatal(err)
	}
	if len(vs) != 1 || vs[0].Type != "bind" || !slices.Contains(vs[0].Options, "ro") {
		t.Errorf("one-layer view: %+v", vs)
	}
	if err := s.Commit(ctx, "x", "v1"); !errdefs.IsFailedPrecondition(err) {
		t.Errorf("commit a view: %v", err)
	}
	if _, _, err := LayerDirs(vs); !errdefs.IsFailedPrecondition(err) {
		t.Errorf("layer dirs of a view: %v", err)
	}
	vs2, err := s.View(ctx, "v2", "l2")
	if err != nil {
		t.Fatal(err)
	}
	if vs2[0].Type != "overlay" || !slices.Contains(vs2[0].Options, "ro") {
		t.Errorf("two-layer view: %+v", vs2)
	}
	// Read-only views are read-only, and show the whole chain.
	for _, v := range [][]Mount{vs, vs2} {
		dir := mountAt(t, v)
		if b, err := os.ReadFile(filepath.Join(dir, "base")); err != nil || string(b) != "base" {
			t.Errorf("view content: %q %v", b, err)
		}
		if err := os.WriteFile(filepath.Join(dir, "w"), nil, 0o644); !errors.Is(err, unix.EROFS) {
			t.Errorf("write in a view: %v", err)
		}
	}
	if cm, err := s.Mounts(ctx, "l2"); err != nil || cm[0].Type != "overlay" {
		t.Errorf("mounts of a committed snapshot: %+v %v", cm, err)
	}

	if err := s.Remove(ctx, "l1"); !errdefs.IsFailedPrecondition(err) {
		t.Errorf("remove with children: %v", err)
	}
	var keys []string
	s.Walk(ctx, func(_ context.Context, i Info) error { keys = append(keys, i.Key+":"+i.Kind.String()); return nil })
	if want := []string{"l1:committed", "l2:committed", "v1:view", "v2:view"}; !slices.Equal(keys, want) {
		t.Errorf("walk = %v, want %v", keys, want)
	}
	for _, k := range []string{"v1", "v2", "l2", "l1"} {
		if err := s.Remove(ctx, k); err != nil {
			t.Fatalf("remove %s: %v", k, err)
		}
	}
	if err := s.Remove(ctx, "l1"); !errdefs.IsNotFound(err) {
		t.Errorf("remove twice: %v", err)
	}
	ents, _ := os.ReadDir(root)
	if len(ents) != 1 || ents[0].Name() != metadataFile {
		t.Errorf("root after removing everything: %v", ents)
	}
}

func TestCrashLeftovers(t *testing.T) {
	testutil.RequireRoot(t)
	ctx := context.Background()
	root := t.TempDir()
	s, err := Open(ctx, root, Options{})
	if err != nil {
		t.Fatal(err)
	}
	ms, _ := s.Prepare(ctx, "a", "")
	writeFile(t, filepath.Join(upper(t, ms), "kept"), "kept")
	if err := s.Commit(ctx, "l1", "a"); err != nil {
		t.Fatal(err)
	}
	s.Close()

	// What crashes leave: a half-made snapshot under its temporary name,
	// a renamed directory whose record never committed, a directory whose
	// record was deleted before the crash. And something foreign.
	for _, d := range []string{"tmp-123/fs/x", "77/fs/y", "78/work/work"} {
		writeFile(t, filepath.Join(root, d), "junk")
	}
	writeFile(t, filepath.Join(root, "foreign/file"), "not ours")

	s = open(t, root)
	var names []string
	ents, _ := os.ReadDir(root)
	for _, e := range ents {
		names = append(names, e.Name())
	}
	if want := []string{"1", "foreign", metadataFile}; !slices.Equal(names, want) {
		t.Errorf("root after Open = %v, want %v", names, want)
	}
	vs, err := s.View(ctx, "v", "l1")
	if err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(vs[0].Source, "kept")); err != nil || string(b) != "kept" {
		t.Errorf("committed content after reopen: %q %v", b, err)
	}
	// New ids never reuse a recorded one.
	if info, _ := s.Stat(ctx, "v"); info.Kind != KindView {
		t.Errorf("stat v: %+v", info)
	}
}

// TestPrepareFailureLeavesNothing: a failed Prepare (here: duplicate key)
// leaves no directory behind.
func TestPrepareFailureLeavesNothing(t *testing.T) {
	testutil.RequireRoot(t)
	ctx := context.Background()
	root := t.TempDir()
	s := open(t, root)
	if _, err := s.Prepare(ctx, "a", ""); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make([]error, 8)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = s.Prepare(ctx, "same", "")
		}()
	}
	wg.Wait()
	ok := 0
	for _, err := range errs {
		if err == nil {
			ok++
		} else if !errdefs.IsAlreadyExists(err) {
			t.Errorf("concurrent prepare: %v", err)
		}
	}
	if ok != 1 {
		t.Errorf("%d concurrent prepares of one key succeeded", ok)
	}
	ents, _ := os.ReadDir(root)
	if len(ents) != 3 { // metadata.db, a, same
		t.Errorf("root = %v", ents)
	}
}

// TestLongChain: a chain whose lowerdir option exceeds a page still mounts.
func TestLongChain(t *testing.T) {
	testutil.RequireRoot(t)
	ctx := context.Background()
	root := filepath.Join(t.TempDir(), strings.Repeat("long-path-", 4))
	s := open(t, root)
	const n = 160
	parent := ""
	for i := range n {
		ms, err := s.Prepare(ctx, fmt.Sprintf("active-%d", i), parent)
		if err != nil {
			t.Fatal(err)
		}
		writeFile(t, filepath.Join(upper(t, ms), fmt.Sprintf("f%03d", i)), fmt.Sprint(i))
		writeFile(t, filepath.Join(upper(t, ms), "top"), fmt.Sprint(i))
		parent = fmt.Sprintf("layer-%d", i)
		if err := s.Commit(ctx, parent, fmt.Sprintf("active-%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	ms, err := s.Prepare(ctx, "ctr", parent)
	if err != nil {
		t.Fatal(err)
	}
	if l := len(strings.Join(ms[0].Options, ",")); l < unix.Getpagesize() {
		t.Fatalf("options only %d bytes: test does not exercise the long form", l)
	}
	dir := mountAt(t, ms)
	ents, err := os.ReadDir(dir)
	if err != nil || len(ents) != n+1 {
		t.Fatalf("merged view has %d entries, want %d (%v)", len(ents), n+1, err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "top")); string(b) != fmt.Sprint(n-1) {
		t.Errorf("top = %q, want the last layer's", b)
	}
	writeFile(t, filepath.Join(dir, "written"), "w")
	if _, err := os.Stat(filepath.Join(upper(t, ms), "written")); err != nil {
		t.Errorf("write did not reach the upper dir: %v", err)
	}
	// The process's own working directory is untouched by the mount trick.
	if wd, _ := os.Getwd(); strings.HasPrefix(wd, root) {
		t.Errorf("cwd changed to %s", wd)
	}
}

func TestRelativeOverlayData(t *testing.T) {
	dir, data, err := relativeOverlayData("lowerdir=/r/s/3/fs:/r/s/2/fs:/r/s/1/fs,upperdir=/r/s/4/fs,workdir=/r/s/4/work,index=off")
	if err != nil {
		t.Fatal(err)
	}
	if dir != "/r/s" || data != "lowerdir=3/fs:2/fs:1/fs,upperdir=4/fs,workdir=4/work,index=off" {
		t.Errorf("got %q %q", dir, data)
	}
	dir, data, _ = relativeOverlayData("lowerdir=/a/x:/b/y")
	if dir != "/" || data != "lowerdir=a/x:b/y" {
		t.Errorf("got %q %q", dir, data)
	}
}

func TestOpenLocked(t *testing.T) {
	testutil.RequireRoot(t)
	root := t.TempDir()
	open(t, root)
	// bbolt's flock is per open file description, so a second Open in the
	// same process is refused like one from another process.
	if _, err := Open(context.Background(), root, Options{}); !errors.Is(err, errdefs.ErrUnavailable) {
		t.Errorf("second open: %v", err)
	}
}

// TestCommitOnto unpacks two layers at once, each into a snapshot without
// a parent, and chains the upper one as it is committed.
func TestCommitOnto(t *testing.T) {
	testutil.RequireRoot(t)
	ctx := context.Background()
	s := open(t, t.TempDir())
	lo, err := s.Prepare(ctx, "lo", "")
	if err != nil {
		t.Fatal(err)
	}
	hi, err := s.Prepare(ctx, "hi", "")
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(upper(t, lo), "a"), "a")
	writeFile(t, filepath.Join(upper(t, hi), "b"), "b")
	if err := s.CommitOnto(ctx, "L2", "hi", "lo"); !errdefs.IsFailedPrecondition(err) {
		t.Errorf("commit onto an active parent: %v", err)
	}
	if err := s.Commit(ctx, "L1", "lo"); err != nil {
		t.Fatal(err)
	}
	if err := s.CommitOnto(ctx, "L2", "hi", "L1"); err != nil {
		t.Fatal(err)
	}
	if info, err := s.Stat(ctx, "L2"); err != nil || info.Parent != "L1" || info.Kind != KindCommitted {
		t.Fatalf("stat L2: %+v %v", info, err)
	}
	ms, err := s.View(ctx, "v", "L2")
	if err != nil {
		t.Fatal(err)
	}
	dir := mountAt(t, ms)
	for _, f := range []string{"a", "b"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Error(err)
		}
	}
	// A snapshot that has a parent keeps it.
	if _, err := s.Prepare(ctx, "c", "L2"); err != nil {
		t.Fatal(err)
	}
	if err := s.CommitOnto(ctx, "L3", "c", "L1"); !errdefs.IsFailedPrecondition(err) {
		t.Errorf("re-parent: %v", err)
	}
}

// TestCommitWithUsage: a usage measured before the commit (Usage of the
// active snapshot) is what the committed snapshot records.
func TestCommitWithUsage(t *testing.T) {
	testutil.RequireRoot(t)
	ctx := context.Background()
	s := open(t, t.TempDir())
	ms, err := s.Prepare(ctx, "a", "")
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(upper(t, ms), "f"), "data")
	u, err := s.Usage(ctx, "a")
	if err != nil || u.Inodes != 2 {
		t.Fatalf("usage of the active snapshot: %+v %v", u, err)
	}
	if err := s.CommitOnto(ctx, "A", "a", "", WithUsage(u)); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Usage(ctx, "A"); err != nil || got != u {
		t.Fatalf("usage after commit: %+v %v, want %+v", got, err, u)
	}
}
