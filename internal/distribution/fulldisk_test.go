package distribution_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/internal/distribution"
	"github.com/berth-dev/berth/internal/image"
	"github.com/berth-dev/berth/internal/testutil"
)

// TestPullFullDisk: a pull into a store whose filesystem fills up fails
// with the kernel's "no space left on device", leaves no image and no
// snapshot behind, and once there is room again the same store pulls the
// image whole.
func TestPullFullDisk(t *testing.T) {
	testutil.RequireRoot(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	t.Setenv("DOCKER_CONFIG", t.TempDir())
	dir := t.TempDir()
	// Room for the store's database and the blobs, not for the unpacked
	// layers as well.
	for _, size := range []string{"150k", "120k", "100k"} {
		if err := unix.Mount("tmpfs", dir, "tmpfs", 0, "size="+size); err != nil {
			t.Skipf("tmpfs: %v", err)
		}
		s, err := image.Open(ctx, filepath.Join(dir, "root"), image.Options{})
		if err != nil {
			unix.Unmount(dir, unix.MNT_DETACH)
			continue // too small even to open: try the next size
		}
		t.Cleanup(func() {
			s.Close()
			unix.Unmount(dir, unix.MNT_DETACH)
		})
		good := makeFixture(t, nil, goodLayers(t)...)
		f := newFake(t, map[string]fixture{"v1": good})
		cl := distribution.New(s, distribution.Options{})
		_, err = cl.Pull(ctx, f.addr()+"/app:v1", distribution.PullOptions{})
		if err == nil || !strings.Contains(err.Error(), "no space left on device") {
			t.Fatalf("pull on a full %s disk: %v; want no space left on device", size, err)
		}
		t.Logf("error: %v", err)
		requireEmpty(t, s, true)

		if err := unix.Mount("", dir, "", unix.MS_REMOUNT, "size=16m"); err != nil {
			t.Fatal(err)
		}
		img, err := cl.Pull(ctx, f.addr()+"/app:v1", distribution.PullOptions{})
		if err != nil {
			t.Fatalf("pull once there is room: %v", err)
		}
		requireNoise(t, s, img)
		return
	}
	t.Fatal("no tmpfs size fits the database but not the image: adjust the sizes")
}
