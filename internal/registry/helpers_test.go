package registry

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
)

// testServer is a registry on a loopback httptest server.
type testServer struct {
	t    testing.TB
	srv  *Server
	http *httptest.Server
	url  string
	// auth is added to every request when set.
	user, pass string
}

func quietLogger() *slog.Logger {
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

func newTestServer(t testing.TB, opts Options) *testServer {
	t.Helper()
	if opts.Root == "" {
		opts.Root = t.TempDir()
	}
	if opts.Logger == nil {
		opts.Logger = quietLogger()
	}
	srv, err := Open(context.Background(), opts)
	if err != nil {
		t.Fatalf("open registry: %v", err)
	}
	hs := httptest.NewServer(srv.Handler())
	ts := &testServer{t: t, srv: srv, http: hs, url: hs.URL}
	t.Cleanup(func() {
		hs.Close()
		srv.Close()
	})
	return ts
}

type response struct {
	status int
	header http.Header
	body   []byte
}

func (r response) errorCode() string {
	var eb errorBody
	if json.Unmarshal(r.body, &eb) != nil || len(eb.Errors) == 0 {
		return ""
	}
	return eb.Errors[0].Code
}

func (ts *testServer) do(method, path string, header map[string]string, body []byte) response {
	ts.t.Helper()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	u := path
	if !strings.HasPrefix(path, "http") {
		u = ts.url + path
	}
	req, err := http.NewRequest(method, u, rd)
	if err != nil {
		ts.t.Fatal(err)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	if ts.user != "" {
		req.SetBasicAuth(ts.user, ts.pass)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		ts.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return response{status: resp.StatusCode, header: resp.Header, body: b}
}

func (ts *testServer) expect(r response, status int, code string) {
	ts.t.Helper()
	if r.status != status {
		ts.t.Fatalf("status %d, want %d; body %s", r.status, status, r.body)
	}
	if code != "" && r.errorCode() != code {
		ts.t.Fatalf("error code %q, want %q; body %s", r.errorCode(), code, r.body)
	}
}

// pushBlob uploads b monolithically and returns its descriptor.
func (ts *testServer) pushBlob(repo string, b []byte, mediaType string) v1.Descriptor {
	ts.t.Helper()
	d := digest.FromBytes(b)
	r := ts.do("POST", "/v2/"+repo+"/blobs/uploads/?digest="+d.String(), nil, b)
	ts.expect(r, http.StatusCreated, "")
	return v1.Descriptor{MediaType: mediaType, Digest: d, Size: int64(len(b))}
}

// imageManifest builds an OCI image manifest over config and layers.
func imageManifest(config v1.Descriptor, layers ...v1.Descriptor) []byte {
	m := v1.Manifest{MediaType: v1.MediaTypeImageManifest, Config: config, Layers: layers}
	m.SchemaVersion = 2
	if m.Layers == nil {
		m.Layers = []v1.Descriptor{}
	}
	b, _ := json.Marshal(m)
	return b
}

func (ts *testServer) putManifest(repo, ref string, b []byte) response {
	ts.t.Helper()
	return ts.do("PUT", fmt.Sprintf("/v2/%s/manifests/%s", repo, ref),
		map[string]string{"Content-Type": v1.MediaTypeImageManifest}, b)
}

// pushImage pushes a config and one layer and tags a manifest over them.
func (ts *testServer) pushImage(repo, tag string, layer []byte) (digest.Digest, v1.Descriptor) {
	ts.t.Helper()
	cfg := ts.pushBlob(repo, []byte(`{"architecture":"amd64","os":"linux"}`), v1.MediaTypeImageConfig)
	l := ts.pushBlob(repo, layer, v1.MediaTypeImageLayer)
	mb := imageManifest(cfg, l)
	ts.expect(ts.putManifest(repo, tag, mb), http.StatusCreated, "")
	return digest.FromBytes(mb), l
}

type tokenResponseForTest struct {
	Token string `json:"token"`
}

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }

type netAddr = net.Addr

func bytesReader(b []byte) io.Reader { return bytes.NewReader(b) }
