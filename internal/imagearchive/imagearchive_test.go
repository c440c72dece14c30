package imagearchive_test

import (
	"archive/tar"
	"bytes"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"

	v1 "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/berth-dev/berth/internal/archive"
	"github.com/berth-dev/berth/internal/content"
	"github.com/berth-dev/berth/internal/distribution"
	"github.com/berth-dev/berth/internal/distribution/registrytest"
	"github.com/berth-dev/berth/internal/errdefs"
	"github.com/berth-dev/berth/internal/image"
	"github.com/berth-dev/berth/internal/image/imagetest"
	"github.com/berth-dev/berth/internal/imagearchive"
	"github.com/berth-dev/berth/internal/testutil"
)

// checkTree checks the image ref of s unpacks to the test image's tree.
func checkTree(t *testing.T, s *image.Service, ref, want string) {
	t.Helper()
	dir := t.TempDir()
	if err := s.Flatten(context.Background(), ref, dir); err != nil {
		t.Fatal(err)
	}
	imagetest.Compare(t, want, dir)
	det, err := s.Inspect(context.Background(), ref)
	if err != nil || !det.Unpacked {
		t.Errorf("inspect %s: unpacked %v, %v", ref, det.Unpacked, err)
	}
}

func tarNames(t *testing.T, b []byte) []string {
	var names []string
	tr := tar.NewReader(bytes.NewReader(b))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return names
		}
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, h.Name)
	}
}

func TestSaveLoad(t *testing.T) {
	testutil.RequireRoot(t)
	ctx := context.Background()
	_, want := imagetest.Layers(t)
	src := imagetest.Open(t)
	img := imagetest.Create(t, src, "busybox:saved")
	if _, err := src.Tag(ctx, "busybox:saved", "example.com/x/y:2"); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := imagearchive.New(src).Save(ctx, &buf, "busybox:saved", "example.com/x/y:2"); err != nil {
		t.Fatal(err)
	}
	names := tarNames(t, buf.Bytes())
	for _, n := range []string{"manifest.json", "index.json", "oci-layout", "blobs/sha256/" + img.ID.Encoded()} {
		if !slices.Contains(names, n) {
			t.Errorf("saved tar lacks %s: %v", n, names)
		}
	}
	dst := imagetest.Open(t)
	imgs, err := imagearchive.New(dst).Load(ctx, bytes.NewReader(buf.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	if len(imgs) != 2 || imgs[0].ID != img.ID {
		t.Fatalf("loaded %+v", imgs)
	}
	sums, _ := dst.List(ctx)
	if len(sums) != 1 || !slices.Equal(sums[0].RepoTags, []string{"busybox:saved", "example.com/x/y:2"}) {
		t.Errorf("after load: %+v", sums)
	}
	checkTree(t, dst, "busybox:saved", want)

	// Bad input: a blob whose bytes lie about their digest (the config,
	// stored uncompressed), and a truncated archive. Neither leaves anything.
	bad := bytes.Replace(buf.Bytes(), []byte(`"type":"layers"`), []byte(`"type":"layerz"`), 1)
	if bytes.Equal(bad, buf.Bytes()) {
		t.Fatal("config not found in the archive")
	}
	empty := imagetest.Open(t)
	if _, err := imagearchive.New(empty).Load(ctx, bytes.NewReader(bad)); !errdefs.IsInvalidArgument(err) {
		t.Errorf("load of a lying blob: %v; want an invalid-argument error", err)
	} else {
		t.Logf("lying blob: %v", err)
	}
	if _, err := imagearchive.New(empty).Load(ctx, bytes.NewReader(buf.Bytes()[:len(buf.Bytes())/2])); err == nil {
		t.Error("a truncated archive loaded")
	}
	if sums, _ := empty.List(ctx); len(sums) != 0 {
		t.Errorf("a failed load left %+v", sums)
	}
	if _, err := empty.GC(ctx); err != nil {
		t.Fatal(err)
	}
	n := 0
	empty.Content().Walk(ctx, func(content.Info) error { n++; return nil })
	if n != 0 {
		t.Errorf("failed loads left %d blobs", n)
	}
}

func TestImport(t *testing.T) {
	testutil.RequireRoot(t)
	ctx := context.Background()
	dir := t.TempDir()
	testutil.BusyboxRootfs(t, dir)
	var tb bytes.Buffer
	if err := archive.Tar(ctx, dir, &tb); err != nil {
		t.Fatal(err)
	}
	s := imagetest.Open(t)
	img, err := imagearchive.New(s).Import(ctx, &tb, "imported:1", imagearchive.ImportOptions{Config: v1.ImageConfig{Cmd: []string{"sh"}}})
	if err != nil {
		t.Fatal(err)
	}
	det, err := s.Inspect(ctx, "imported:1")
	if err != nil || len(det.Layers) != 1 || det.ID != img.ID || det.Image.Config.Cmd[0] != "sh" {
		t.Fatalf("inspect: %+v %v", det, err)
	}
	out := t.TempDir()
	if err := s.Flatten(ctx, "imported:1", out); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(out, "etc/passwd")); err != nil || !bytes.HasPrefix(b, []byte("root:")) {
		t.Errorf("etc/passwd: %q %v", b, err)
	}
}

// TestSkopeoInterop: skopeo reads what berth pushes and saves, and berth
// pulls and loads what skopeo writes (docker-archive:, oci-archive:, and a
// Docker schema2 push).
func TestSkopeoInterop(t *testing.T) {
	testutil.RequireRoot(t)
	skopeo, err := exec.LookPath("skopeo")
	if err != nil {
		t.Skip("needs skopeo (apt-get install skopeo)")
	}
	reg := registrytest.Start(t)
	t.Setenv("DOCKER_CONFIG", t.TempDir())
	ctx := context.Background()
	_, want := imagetest.Layers(t)
	src := imagetest.Open(t)
	name := reg.Addr + "/test/app:v1"
	imagetest.Create(t, src, name)
	if _, err := distribution.New(src, distribution.Options{}).Push(ctx, name, distribution.PushOptions{}); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	run := func(args ...string) {
		t.Helper()
		out, err := exec.Command(skopeo, append([]string{"--insecure-policy"}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("skopeo %v: %v\n%s", args, err, out)
		}
	}
	// skopeo pulls what berth pushed, into both archive formats.
	dockerTar := filepath.Join(dir, "docker.tar")
	ociTar := filepath.Join(dir, "oci.tar")
	run("copy", "--src-tls-verify=false", "docker://"+name, "docker-archive:"+dockerTar+":skopeo/docker:1")
	run("copy", "--src-tls-verify=false", "docker://"+name, "oci-archive:"+ociTar+":skopeo/oci:1")
	for _, c := range []struct{ file, ref string }{{dockerTar, "skopeo/docker:1"}, {ociTar, "skopeo/oci:1"}} {
		f, err := os.Open(c.file)
		if err != nil {
			t.Fatal(err)
		}
		s := imagetest.Open(t)
		if _, err := imagearchive.New(s).Load(ctx, f); err != nil {
			t.Fatalf("load %s: %v", c.file, err)
		}
		f.Close()
		checkTree(t, s, c.ref, want)
	}
	// skopeo reads berth's save as both formats, and pushes it converted to
	// Docker schema2, which berth pulls.
	saved := filepath.Join(dir, "saved.tar")
	f, err := os.Create(saved)
	if err != nil {
		t.Fatal(err)
	}
	if err := imagearchive.New(src).Save(ctx, f, name); err != nil {
		t.Fatal(err)
	}
	f.Close()
	run("inspect", "oci-archive:"+saved)
	converted := reg.Addr + "/test/converted:v2s2"
	run("copy", "--format", "v2s2", "--dest-tls-verify=false", "docker-archive:"+saved, "docker://"+converted)
	dst := imagetest.Open(t)
	img, err := distribution.New(dst, distribution.Options{}).Pull(ctx, converted, distribution.PullOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if img.Target.MediaType != image.MediaTypeDockerManifest {
		t.Errorf("skopeo pushed a %s, want Docker schema2", img.Target.MediaType)
	}
	checkTree(t, dst, converted, want)
}
