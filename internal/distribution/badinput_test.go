package distribution_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/berth-dev/berth/internal/archive/archivetest"
	"github.com/berth-dev/berth/internal/content"
	"github.com/berth-dev/berth/internal/distribution"
	"github.com/berth-dev/berth/internal/errdefs"
	"github.com/berth-dev/berth/internal/image"
	"github.com/berth-dev/berth/internal/image/imagetest"
	"github.com/berth-dev/berth/internal/snapshot"
	"github.com/berth-dev/berth/internal/testutil"
)

type E = archivetest.Entry

// fixture is an image as a registry serves it.
type fixture struct {
	manifest []byte
	mt       string
	blobs    map[digest.Digest][]byte
	layers   []v1.Descriptor
}

func (f fixture) digest() digest.Digest { return digest.FromBytes(f.manifest) }

// makeFixture builds an image of uncompressed layer tars; edit may change
// the manifest before it is encoded.
func makeFixture(t *testing.T, edit func(*v1.Manifest), layers ...[]byte) fixture {
	t.Helper()
	f := fixture{mt: v1.MediaTypeImageManifest, blobs: map[digest.Digest][]byte{}}
	cfg := v1.Image{Platform: v1.Platform{OS: "linux", Architecture: "amd64"}, RootFS: v1.RootFS{Type: "layers"}}
	m := v1.Manifest{MediaType: v1.MediaTypeImageManifest}
	m.SchemaVersion = 2
	for _, l := range layers {
		var buf bytes.Buffer
		zw := gzip.NewWriter(&buf)
		zw.Write(l)
		zw.Close()
		d := v1.Descriptor{MediaType: v1.MediaTypeImageLayerGzip, Digest: digest.FromBytes(buf.Bytes()), Size: int64(buf.Len())}
		f.blobs[d.Digest] = buf.Bytes()
		m.Layers = append(m.Layers, d)
		cfg.RootFS.DiffIDs = append(cfg.RootFS.DiffIDs, digest.FromBytes(l))
	}
	cb, _ := json.Marshal(cfg)
	m.Config = v1.Descriptor{MediaType: v1.MediaTypeImageConfig, Digest: digest.FromBytes(cb), Size: int64(len(cb))}
	f.blobs[m.Config.Digest] = cb
	if edit != nil {
		edit(&m)
	}
	f.layers = m.Layers
	f.manifest, _ = json.Marshal(m)
	return f
}

// noise is n incompressible bytes, the same every run.
func noise(n int) string {
	b := make([]byte, n)
	x := uint64(88172645463325252)
	for i := range b {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		b[i] = byte(x)
	}
	return string(b)
}

func is(class error) func(error) bool {
	return func(err error) bool { return errors.Is(err, class) }
}

func goodLayers(t *testing.T) [][]byte {
	return [][]byte{
		archivetest.Tar(t, E{Name: "etc/"}, E{Name: "etc/noise", Body: noise(64 << 10)}),
		archivetest.Tar(t, E{Name: "srv/"}, E{Name: "srv/msg", Body: "hi\n"}),
	}
}

// fakeRegistry speaks just enough of the distribution API to serve one
// repository of fixtures, and to lie on request.
type fakeRegistry struct {
	mu     sync.Mutex
	tags   map[string]fixture
	status int // nonzero: answer every repository request with it
	// blob, when set, serves blobs instead of the honest handler; it
	// returns false to fall back to it.
	blob       func(w http.ResponseWriter, r *http.Request, data []byte) bool
	user, pass string // non-empty: bearer auth with a token for these
	ranges     []string
	blobGets   int
	srv        *httptest.Server
	anyRef     bool // serve the first fixture for any manifest reference
}

const fakeToken = "tok-123"

func newFake(t *testing.T, tags map[string]fixture) *fakeRegistry {
	f := &fakeRegistry{tags: tags}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeRegistry) addr() string { return strings.TrimPrefix(f.srv.URL, "http://") }

func (f *fakeRegistry) serve(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if r.URL.Path == "/token" {
		if u, p, ok := r.BasicAuth(); !ok || u != f.user || p != f.pass {
			http.Error(w, `{"errors":[{"code":"UNAUTHORIZED","message":"bad credentials"}]}`, http.StatusUnauthorized)
			return
		}
		json.NewEncoder(w).Encode(map[string]string{"token": fakeToken})
		return
	}
	if f.user != "" && r.Header.Get("Authorization") != "Bearer "+fakeToken {
		w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Bearer realm="%s/token",service="fake",scope="repository:app:pull"`, f.srv.URL))
		w.WriteHeader(http.StatusUnauthorized)
		w.Write([]byte(`{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}`))
		return
	}
	if r.URL.Path == "/v2/" {
		w.WriteHeader(http.StatusOK)
		return
	}
	if f.status != 0 {
		w.WriteHeader(f.status)
		fmt.Fprintf(w, `{"errors":[{"code":"UNKNOWN","message":"status %d on purpose"}]}`, f.status)
		return
	}
	rest := strings.TrimPrefix(r.URL.Path, "/v2/")
	if i := strings.Index(rest, "/manifests/"); i >= 0 {
		ref := rest[i+len("/manifests/"):]
		for tag, fx := range f.tags {
			if tag == ref || fx.digest().String() == ref || f.anyRef {
				w.Header().Set("Content-Type", fx.mt)
				w.Header().Set("Docker-Content-Digest", fx.digest().String())
				w.Write(fx.manifest)
				return
			}
		}
		w.WriteHeader(http.StatusNotFound)
		w.Write([]byte(`{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}`))
		return
	}
	if i := strings.Index(rest, "/blobs/"); i >= 0 {
		d := digest.Digest(rest[i+len("/blobs/"):])
		var data []byte
		for _, fx := range f.tags {
			if b, ok := fx.blobs[d]; ok {
				data = b
			}
		}
		if data == nil {
			w.WriteHeader(http.StatusNotFound)
			w.Write([]byte(`{"errors":[{"code":"BLOB_UNKNOWN","message":"blob unknown to registry"}]}`))
			return
		}
		f.blobGets++
		if rg := r.Header.Get("Range"); rg != "" {
			f.ranges = append(f.ranges, rg)
		}
		if f.blob != nil && f.blob(w, r, data) {
			return
		}
		if rg := r.Header.Get("Range"); strings.HasPrefix(rg, "bytes=") {
			off, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimPrefix(rg, "bytes="), "-"))
			w.Header().Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", off, len(data)-1, len(data)))
			w.WriteHeader(http.StatusPartialContent)
			w.Write(data[off:])
			return
		}
		w.Write(data)
		return
	}
	http.NotFound(w, r)
}

// requireEmpty checks that the store holds no image, blob or snapshot.
func requireEmpty(t *testing.T, s *image.Service, blobsOK bool) {
	t.Helper()
	ctx := context.Background()
	sums, err := s.List(ctx)
	if err != nil || len(sums) != 0 {
		t.Errorf("images after a failed pull: %+v %v", sums, err)
	}
	var blobs, snaps []string
	s.Content().Walk(ctx, func(i content.Info) error { blobs = append(blobs, i.Digest.String()); return nil })
	s.Snapshots().Walk(ctx, func(_ context.Context, i snapshot.Info) error { snaps = append(snaps, i.Key); return nil })
	if len(snaps) != 0 || (len(blobs) != 0 && !blobsOK) {
		t.Errorf("left behind: blobs %v, snapshots %v", blobs, snaps)
	}
}

func TestPullBadInput(t *testing.T) {
	testutil.RequireRoot(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	good := makeFixture(t, nil, goodLayers(t)...)
	evil := archivetest.Tar(t, E{Name: "etc/"}, E{Name: "../etc/passwd", Body: "root::0:0::/:/bin/sh\n"})
	for _, c := range []struct {
		name    string
		fx      fixture
		setup   func(f *fakeRegistry)
		ref     string
		class   func(error) bool
		msg     string
		blobsOK bool // a transient failure keeps what it fetched, for a retry
	}{
		{name: "wrong-bytes", fx: good, class: errdefs.IsInvalidArgument, msg: "digest mismatch",
			setup: func(f *fakeRegistry) {
				f.blob = func(w http.ResponseWriter, r *http.Request, data []byte) bool {
					if len(data) < 1000 {
						return false
					}
					bad := bytes.Clone(data)
					bad[len(bad)/2] ^= 0xff
					w.Write(bad)
					return true
				}
			}},
		{name: "truncated", fx: good, class: image.Transient, msg: "unexpected EOF", blobsOK: true,
			setup: func(f *fakeRegistry) {
				f.blob = func(w http.ResponseWriter, r *http.Request, data []byte) bool {
					if len(data) < 1000 || r.Header.Get("Range") != "" {
						return false
					}
					w.Header().Set("Content-Length", strconv.Itoa(len(data)))
					w.Write(data[:len(data)/2])
					w.(http.Flusher).Flush()
					panic(http.ErrAbortHandler)
				}
			}},
		{name: "missing-blob", fx: makeFixture(t, func(m *v1.Manifest) {
			m.Layers[1].Digest = digest.FromString("not there")
		}, goodLayers(t)...), class: errdefs.IsNotFound, msg: "blob unknown"},
		{name: "path-traversal", fx: makeFixture(t, nil, goodLayers(t)[0], evil), class: errdefs.IsInvalidArgument, msg: "../etc/passwd"},
		{name: "unknown-media-type", fx: makeFixture(t, func(m *v1.Manifest) {
			m.Layers[0].MediaType = "application/vnd.example.mystery"
		}, goodLayers(t)...), class: errdefs.IsInvalidArgument, msg: "unknown media type"},
		{name: "unknown-manifest-type", fx: func() fixture { f := good; f.mt = "application/vnd.example.thing+json"; return f }(),
			class: errdefs.IsInvalidArgument, msg: "unknown media type"},
		{name: "401", fx: good, class: is(errdefs.ErrPermissionDenied), msg: "authentication required",
			setup: func(f *fakeRegistry) { f.user, f.pass = "alice", "secret" }},
		{name: "404", fx: good, ref: "nosuchtag", class: errdefs.IsNotFound, msg: "manifest unknown"},
		{name: "500", fx: good, class: is(errdefs.ErrUnavailable), msg: "500",
			setup: func(f *fakeRegistry) { f.status = http.StatusInternalServerError }},
		{name: "manifest-digest", fx: good, ref: "@" + digest.FromString("other").String(), class: errdefs.IsInvalidArgument, msg: "hashes to",
			setup: func(f *fakeRegistry) { f.anyRef = true }},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Setenv("DOCKER_CONFIG", t.TempDir())
			s := imagetest.Open(t)
			f := newFake(t, map[string]fixture{"v1": c.fx})
			if c.setup != nil {
				c.setup(f)
			}
			ref := f.addr() + "/app:v1"
			if c.ref != "" {
				ref = f.addr() + "/app" + map[bool]string{true: "", false: ":"}[strings.HasPrefix(c.ref, "@")] + c.ref
			}
			cl := distribution.New(s, distribution.Options{})
			_, err := cl.Pull(ctx, ref, distribution.PullOptions{})
			if err == nil || !c.class(err) || !strings.Contains(err.Error(), c.msg) {
				t.Fatalf("pull: got %v; want a %q error of the right class", err, c.msg)
			}
			t.Logf("error: %v", err)
			requireEmpty(t, s, c.blobsOK)

			// The store still works: an honest registry's pull succeeds and
			// resumes what the failed one left.
			f.mu.Lock()
			f.tags, f.blob, f.status, f.user, f.anyRef = map[string]fixture{"v1": good}, nil, 0, "", false
			f.mu.Unlock()
			img, err := cl.Pull(ctx, f.addr()+"/app:v1", distribution.PullOptions{})
			if err != nil {
				t.Fatalf("good pull after bad: %v", err)
			}
			if c.name == "truncated" {
				if len(f.ranges) == 0 {
					t.Errorf("the retry did not resume with a Range request")
				}
				t.Logf("resumed with %v", f.ranges)
			}
			m, err := s.View(ctx, img.Name, "check")
			if err != nil {
				t.Fatal(err)
			}
			snapshot.WithTempMount(ctx, m, func(root string) error {
				if b, err := os.ReadFile(filepath.Join(root, "srv/msg")); err != nil || string(b) != "hi\n" {
					t.Errorf("srv/msg: %q %v", b, err)
				}
				return nil
			})
		})
	}
}

func TestPullBearerAuthFromDockerConfig(t *testing.T) {
	testutil.RequireRoot(t)
	ctx := context.Background()
	f := newFake(t, map[string]fixture{"v1": makeFixture(t, nil, goodLayers(t)...)})
	f.user, f.pass = "alice", "secret"
	cfgDir := t.TempDir()
	auth := base64.StdEncoding.EncodeToString([]byte("alice:secret"))
	cfg := fmt.Sprintf(`{"auths":{%q:{"auth":%q}}}`, f.addr(), auth)
	if err := os.WriteFile(filepath.Join(cfgDir, "config.json"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("DOCKER_CONFIG", cfgDir)
	s := imagetest.Open(t)
	if _, err := distribution.New(s, distribution.Options{}).Pull(ctx, f.addr()+"/app:v1", distribution.PullOptions{}); err != nil {
		t.Fatal(err)
	}
}

func TestPullThroughMirror(t *testing.T) {
	testutil.RequireRoot(t)
	ctx := context.Background()
	t.Setenv("DOCKER_CONFIG", t.TempDir())
	f := newFake(t, map[string]fixture{"mirrored": makeFixture(t, nil, goodLayers(t)...)})
	s := imagetest.Open(t)
	c := distribution.New(s, distribution.Options{Mirrors: map[string][]string{"docker.io": {"http://" + f.addr()}}})
	img, err := c.Pull(ctx, "busybox:mirrored", distribution.PullOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if img.Name != "docker.io/library/busybox:mirrored" {
		t.Errorf("recorded as %s", img.Name)
	}
}

func TestLoopbackOnlyRefusesOutsideRegistries(t *testing.T) {
	testutil.RequireRoot(t)
	t.Setenv(distribution.LoopbackOnlyEnv, "1")
	t.Setenv("DOCKER_CONFIG", t.TempDir())
	s := imagetest.Open(t)
	c := distribution.New(s, distribution.Options{})
	_, err := c.Pull(context.Background(), "registry.invalid/x:1", distribution.PullOptions{})
	if err == nil || !strings.Contains(err.Error(), "refusing to contact registry.invalid") {
		t.Fatalf("pull from a non-loopback registry: %v", err)
	}
}
