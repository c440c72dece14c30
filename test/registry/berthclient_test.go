package registry_test

import (
	"context"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/berth-dev/berth/internal/distribution"
	"github.com/berth-dev/berth/internal/image/imagetest"
	"github.com/berth-dev/berth/internal/testutil"
)

// TestBerthClient pushes the multi-layer test image with berth's own
// distribution client, pulls it into an empty store (unpacking it), and
// pushes it to a second repository, which mounts every blob.
func TestBerthClient(t *testing.T) {
	testutil.RequireRoot(t)
	addr, _ := serve(t, filepath.Join(t.TempDir(), "root"))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	name := addr + "/berth/app:v1"

	src := imagetest.Open(t)
	imagetest.Create(t, src, name)
	pushed, err := distribution.New(src, distribution.Options{}).Push(ctx, name, distribution.PushOptions{})
	if err != nil {
		t.Fatalf("push: %v", err)
	}

	dst := imagetest.Open(t)
	c := distribution.New(dst, distribution.Options{})
	img, err := c.Pull(ctx, name, distribution.PullOptions{})
	if err != nil {
		t.Fatalf("pull: %v", err)
	}
	if img.Target.Digest != pushed.Digest {
		t.Fatalf("pulled %s, pushed %s", img.Target.Digest, pushed.Digest)
	}
	if _, err := c.Pull(ctx, addr+"/berth/app@"+pushed.Digest.String(), distribution.PullOptions{}); err != nil {
		t.Fatalf("pull by digest: %v", err)
	}
	if _, err := dst.Tag(ctx, name, addr+"/berth/other:v2"); err != nil {
		t.Fatal(err)
	}
	var mounted atomic.Int32
	_, err = c.Push(ctx, addr+"/berth/other:v2", distribution.PushOptions{Progress: func(p distribution.Progress) {
		if p.Status == distribution.StatusMounted {
			mounted.Add(1)
		}
	}})
	if err != nil {
		t.Fatalf("push to a second repository: %v", err)
	}
	if n := mounted.Load(); n != 3 {
		t.Errorf("%d layers mounted, want 3", n)
	}
}
