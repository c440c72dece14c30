package registry

import (
	"context"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	ggcrv1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/berth-dev/berth/internal/registry/auth"
)

// serveLoopback runs the registry through Serve (the code path of
// `berth registry serve`) and returns host:port.
func serveLoopback(t *testing.T, opts Options, setup func(addr string)) string {
	t.Helper()
	if opts.Root == "" {
		opts.Root = t.TempDir()
	}
	opts.Logger = quietLogger()
	// Reserve the address first: a bearer realm must name it before the
	// server starts.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	if setup != nil {
		setup(addr)
	}
	srv, err := Open(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	ready := make(chan struct{})
	go func() {
		done <- Serve(ctx, srv, ServeConfig{Addr: addr, Ready: func(net.Addr) { close(ready) }})
	}()
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("serve: %v", err)
	}
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
		srv.Close()
	})
	return addr
}

// tokenRegistry serves with bearer tokens for user/pass.
func tokenRegistry(t *testing.T, user, pass string) string {
	users := writeHtpasswd(t, user, pass)
	tok := &auth.Token{Service: "berth-test", Users: users, Key: []byte("interop-key-interop-key-interop!")}
	return serveLoopback(t, Options{Auth: tok, TokenPath: "/token", TokenHandler: tok, DeleteEnabled: true},
		func(addr string) { tok.Realm = "http://" + addr + "/token" })
}

func TestGGCRClient(t *testing.T) {
	addr := tokenRegistry(t, "gg", "cr")
	kc := remote.WithAuth(&authn.Basic{Username: "gg", Password: "cr"})

	img, err := random.Image(64<<10, 3)
	if err != nil {
		t.Fatal(err)
	}
	ref, err := name.ParseReference(addr+"/ggcr/image:v1", name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref, img, kc); err != nil {
		t.Fatalf("push: %v", err)
	}
	got, err := remote.Image(ref, kc)
	if err != nil {
		t.Fatalf("pull: %v", err)
	}
	wantDigest, _ := img.Digest()
	gotDigest, _ := got.Digest()
	if wantDigest != gotDigest {
		t.Fatalf("digest %s, want %s", gotDigest, wantDigest)
	}
	layers, _ := got.Layers()
	for _, l := range layers {
		// Compressed() streams the blob and checks its digest at EOF.
		rc, err := l.Compressed()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(io.Discard, rc); err != nil {
			t.Fatalf("layer: %v", err)
		}
		rc.Close()
	}

	// A second repository mounts the layers instead of uploading them.
	ref2, _ := name.ParseReference(addr+"/ggcr/copy:v1", name.Insecure)
	if err := remote.Write(ref2, img, kc); err != nil {
		t.Fatalf("push copy: %v", err)
	}

	// A multi-platform index.
	idx, err := random.Index(16<<10, 2, 3)
	if err != nil {
		t.Fatal(err)
	}
	iref, _ := name.ParseReference(addr+"/ggcr/index:multi", name.Insecure)
	if err := remote.WriteIndex(iref, idx, kc); err != nil {
		t.Fatalf("push index: %v", err)
	}
	gidx, err := remote.Index(iref, kc)
	if err != nil {
		t.Fatal(err)
	}
	im, _ := gidx.IndexManifest()
	if len(im.Manifests) != 3 {
		t.Fatalf("index has %d manifests", len(im.Manifests))
	}

	tags, err := remote.List(ref.Context(), kc)
	if err != nil || len(tags) != 1 || tags[0] != "v1" {
		t.Fatalf("tags %v %v", tags, err)
	}
	repos, err := remote.Catalog(context.Background(), ref.Context().Registry, kc)
	if err != nil || strings.Join(repos, ",") != "ggcr/copy,ggcr/image,ggcr/index" {
		t.Fatalf("catalog %v %v", repos, err)
	}
	if err := remote.Delete(iref.Context().Digest(mustDigest(t, gidx)), kc); err != nil {
		t.Fatalf("delete: %v", err)
	}
	if _, err := remote.Index(iref, kc); err == nil {
		t.Fatal("deleted index still pulls")
	}
	// Wrong credentials are refused.
	bad := remote.WithAuth(&authn.Basic{Username: "gg", Password: "nope"})
	if err := remote.Write(ref, img, bad); err == nil {
		t.Fatal("push with a wrong password succeeded")
	}
}

func mustDigest(t *testing.T, idx ggcrv1.ImageIndex) string {
	d, err := idx.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d.String()
}

// ociImage is a random image with OCI media types (skopeo's oci: transport
// ignores docker ones).
func ociImage(t *testing.T, layers int, size int64) ggcrv1.Image {
	t.Helper()
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	for range layers {
		l, err := random.Layer(size, types.OCILayer)
		if err != nil {
			t.Fatal(err)
		}
		img, err = mutate.AppendLayers(img, l)
		if err != nil {
			t.Fatal(err)
		}
	}
	return img
}

func TestSkopeo(t *testing.T) {
	skopeo, err := exec.LookPath("skopeo")
	if err != nil {
		t.Skip("skopeo not installed (apt-get install skopeo)")
	}
	addr := tokenRegistry(t, "sk", "opeo")
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	img := ociImage(t, 4, 256<<10)
	p, err := layout.Write(src, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.AppendImage(img, layout.WithAnnotations(map[string]string{"org.opencontainers.image.ref.name": "v1"})); err != nil {
		t.Fatal(err)
	}
	run := func(args ...string) string {
		t.Helper()
		cmd := exec.Command(skopeo, args...)
		cmd.Env = append(os.Environ(), "HOME="+dir) // no user auth files
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("skopeo %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	creds := "sk:opeo"
	dst := "docker://" + addr + "/skopeo/image:v1"
	run("copy", "--dest-tls-verify=false", "--dest-creds", creds, "oci:"+src+":v1", dst)
	// Copy inside the registry: skopeo mounts blobs across repositories.
	run("copy", "--src-tls-verify=false", "--dest-tls-verify=false", "--src-creds", creds, "--dest-creds", creds,
		dst, "docker://"+addr+"/skopeo/other:v2")
	out := run("inspect", "--tls-verify=false", "--creds", creds, "--raw", "docker://"+addr+"/skopeo/other:v2")
	want, _ := img.RawManifest()
	if out != string(want) {
		t.Fatalf("manifest differs:\n%s\nwant\n%s", out, want)
	}
	back := filepath.Join(dir, "back")
	run("copy", "--src-tls-verify=false", "--src-creds", creds, "docker://"+addr+"/skopeo/other:v2", "oci:"+back+":v2")
	lp, err := layout.ImageIndexFromPath(back)
	if err != nil {
		t.Fatal(err)
	}
	im, _ := lp.IndexManifest()
	wantDigest, _ := img.Digest()
	if len(im.Manifests) != 1 || im.Manifests[0].Digest != wantDigest {
		t.Fatalf("pulled %v, want %s", im.Manifests, wantDigest)
	}
	// Docker schema2 conversion on the way in.
	run("copy", "--dest-tls-verify=false", "--dest-creds", creds, "--format", "v2s2", "oci:"+src+":v1", "docker://"+addr+"/skopeo/v2s2:latest")
	out = run("inspect", "--tls-verify=false", "--creds", creds, "--raw", "docker://"+addr+"/skopeo/v2s2:latest")
	if !strings.Contains(out, mtDockerManifest) {
		t.Fatalf("not schema2: %s", out)
	}
	tags := run("list-tags", "--tls-verify=false", "--creds", creds, "docker://"+addr+"/skopeo/image")
	if !strings.Contains(tags, `"v1"`) {
		t.Fatalf("list-tags: %s", tags)
	}
	// Without credentials nothing is written.
	cmd := exec.Command(skopeo, "copy", "--dest-tls-verify=false", "oci:"+src+":v1", "docker://"+addr+"/skopeo/anon:v1")
	cmd.Env = append(os.Environ(), "HOME="+dir)
	if out, err := cmd.CombinedOutput(); err == nil {
		t.Fatalf("anonymous push succeeded: %s", out)
	}
}
