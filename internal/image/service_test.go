package image_test

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/berth-dev/berth/internal/content"
	"github.com/berth-dev/berth/internal/errdefs"
	"github.com/berth-dev/berth/internal/image"
	"github.com/berth-dev/berth/internal/image/imagetest"
	"github.com/berth-dev/berth/internal/snapshot"
	"github.com/berth-dev/berth/internal/testutil"
)

type users map[string][]string

func (u users) ImageUsers(_ context.Context, id string) ([]string, error) { return u[id], nil }

func TestUnpackMountsFlatten(t *testing.T) {
	testutil.RequireRoot(t)
	ctx := context.Background()
	s := imagetest.Open(t)
	_, want := imagetest.Layers(t)
	img := imagetest.Create(t, s, "localhost:5000/test/app:1")

	// Flatten: a plain tree.
	flat := t.TempDir()
	if err := s.Flatten(ctx, "localhost:5000/test/app:1", flat); err != nil {
		t.Fatal(err)
	}
	imagetest.Compare(t, want, flat)

	// Mounts: a container's writable overlay; the view from a second image
	// sharing the layers unpacks nothing again.
	m, err := s.Mounts(ctx, img.ID.String(), "ctr1")
	if err != nil {
		t.Fatal(err)
	}
	err = snapshot.WithTempMount(ctx, m, func(root string) error {
		imagetest.Compare(t, want, root)
		return os.WriteFile(filepath.Join(root, "scratch"), []byte("x"), 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	det, err := s.Inspect(ctx, "localhost:5000/test/app:1")
	if err != nil {
		t.Fatal(err)
	}
	if !det.Unpacked || len(det.ChainIDs) != 3 || det.ID != img.ID {
		t.Fatalf("inspect: %+v", det)
	}

	// GC keeps the container's layer and the image's; after the
	// container goes and the image is removed, everything goes.
	if st, err := s.GC(ctx); err != nil || st.Blobs+st.Snapshots != 0 {
		t.Fatalf("gc removed %+v, %v; want nothing", st, err)
	}
	if err := s.RemoveMounts(ctx, "ctr1"); err != nil {
		t.Fatal(err)
	}
	res, err := s.Remove(ctx, "localhost:5000/test/app:1", image.RemoveOptions{})
	if err != nil || len(res) != 2 || res[1].Deleted != img.ID {
		t.Fatalf("remove: %+v %v", res, err)
	}
	if b, sn := count(t, s); b != 0 || sn != 0 {
		t.Fatalf("after remove: %d blobs, %d snapshots left", b, sn)
	}
}

func count(t *testing.T, s *image.Service) (blobs, snaps int) {
	t.Helper()
	ctx := context.Background()
	if err := s.Content().Walk(ctx, func(content.Info) error { blobs++; return nil }); err != nil {
		t.Fatal(err)
	}
	if err := s.Snapshots().Walk(ctx, func(context.Context, snapshot.Info) error { snaps++; return nil }); err != nil {
		t.Fatal(err)
	}
	return blobs, snaps
}

func TestTagRemovePrune(t *testing.T) {
	testutil.RequireRoot(t)
	ctx := context.Background()
	u := users{}
	s, err := image.Open(ctx, filepath.Join(t.TempDir(), "root"), image.Options{InUse: u})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	img := imagetest.Create(t, s, "busybox:test")
	if _, err := s.Tag(ctx, "busybox:test", "example.com/a/b:v1"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Tag(ctx, img.ID.Encoded()[:8], "busybox:other"); err != nil {
		t.Fatal(err)
	}
	sums, err := s.List(ctx)
	if err != nil || len(sums) != 1 {
		t.Fatalf("list: %+v %v", sums, err)
	}
	if want := []string{"busybox:other", "busybox:test", "example.com/a/b:v1"}; !slices.Equal(sums[0].RepoTags, want) {
		t.Fatalf("tags %v, want %v", sums[0].RepoTags, want)
	}
	if _, err := s.Get(ctx, "docker.io/library/busybox:test"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(ctx, "nosuch"); !errdefs.IsNotFound(err) {
		t.Fatalf("get nosuch: %v", err)
	}
	if _, err := s.Get(ctx, "Bad:Ref"); !errdefs.IsNotFound(err) {
		t.Fatalf("get bad: %v", err)
	}

	// Untag one name: only untagged.
	res, err := s.Remove(ctx, "busybox:other", image.RemoveOptions{})
	if err != nil || len(res) != 1 || res[0].Untagged != "busybox:other" {
		t.Fatalf("untag: %+v %v", res, err)
	}
	// By ID with two repositories: refused without force.
	if _, err := s.Remove(ctx, img.ID.String(), image.RemoveOptions{}); !errdefs.IsConflict(err) {
		t.Fatalf("remove by id: %v; want conflict", err)
	}
	// In use: refused, with force untagged but kept as dangling.
	u[img.ID.String()] = []string{"ctr1"}
	s.Remove(ctx, "example.com/a/b:v1", image.RemoveOptions{})
	if _, err := s.Remove(ctx, "busybox:test", image.RemoveOptions{}); !errdefs.IsConflict(err) {
		t.Fatalf("remove in use: %v; want conflict", err)
	}
	if res, err := s.Remove(ctx, "busybox:test", image.RemoveOptions{Force: true}); err != nil || len(res) != 1 {
		t.Fatalf("force remove in use: %+v %v", res, err)
	}
	sums, _ = s.List(ctx)
	if len(sums) != 1 || len(sums[0].RepoTags) != 0 {
		t.Fatalf("want one dangling image, have %+v", sums)
	}
	// Prune skips it while in use, removes it after.
	if rep, err := s.Prune(ctx, image.PruneOptions{}); err != nil || len(rep.Removed) != 0 {
		t.Fatalf("prune in use: %+v %v", rep, err)
	}
	delete(u, img.ID.String())
	rep, err := s.Prune(ctx, image.PruneOptions{})
	if err != nil || len(rep.Removed) != 1 || rep.Removed[0].Deleted != img.ID || rep.GC.Blobs != 5 {
		t.Fatalf("prune: %+v %v", rep, err)
	}
	if b, sn := count(t, s); b != 0 || sn != 0 {
		t.Fatalf("after prune: %d blobs, %d snapshots", b, sn)
	}

	// A tag moving to another image leaves the old one dangling.
	a := imagetest.Create(t, s, "app:1")
	if _, err := s.CreateFromLayers(ctx, "app:1", imagetest.Config()); err != nil {
		t.Fatal(err)
	}
	sums, _ = s.List(ctx)
	if len(sums) != 2 {
		t.Fatalf("list: %+v", sums)
	}
	if _, err := s.Get(ctx, a.ID.String()); err != nil {
		t.Fatalf("old image: %v", err)
	}
}
