package registry

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/crypto/bcrypt"

	"github.com/berth-dev/berth/internal/content"
	"github.com/berth-dev/berth/internal/registry/auth"
)

// storeHas reports whether the shared content store holds the blob.
func (ts *testServer) storeHas(d digest.Digest) bool {
	ts.t.Helper()
	ok, err := content.Exists(context.Background(), ts.srv.store, d)
	if err != nil {
		ts.t.Fatal(err)
	}
	return ok
}

func TestManifestMissingBlobs(t *testing.T) {
	ts := newTestServer(t, Options{})
	cfg := ts.pushBlob("app", []byte(`{}`), v1.MediaTypeImageConfig)
	layer := []byte("never pushed")
	missing := v1.Descriptor{MediaType: v1.MediaTypeImageLayer, Digest: digest.FromBytes(layer), Size: int64(len(layer))}
	mb := imageManifest(cfg, missing)
	r := ts.putManifest("app", "v1", mb)
	ts.expect(r, http.StatusBadRequest, codeManifestBlobUnknown)
	ts.expect(ts.do("GET", "/v2/app/manifests/v1", nil, nil), http.StatusNotFound, codeManifestUnknown)
	if ts.storeHas(digest.FromBytes(mb)) {
		t.Fatal("refused manifest was stored")
	}

	// A blob pushed to another repository does not count for this one.
	other := ts.pushBlob("other", layer, v1.MediaTypeImageLayer)
	ts.expect(ts.putManifest("app", "v1", imageManifest(cfg, other)), http.StatusBadRequest, codeManifestBlobUnknown)

	// An index naming a manifest the repository lacks.
	idx := fmt.Sprintf(`{"schemaVersion":2,"mediaType":%q,"manifests":[{"mediaType":%q,"digest":%q,"size":12}]}`,
		v1.MediaTypeImageIndex, v1.MediaTypeImageManifest, digest.FromString("nope"))
	r = ts.do("PUT", "/v2/app/manifests/idx", map[string]string{"Content-Type": v1.MediaTypeImageIndex}, []byte(idx))
	ts.expect(r, http.StatusBadRequest, codeManifestBlobUnknown)

	// A descriptor whose size lies about the blob.
	l := ts.pushBlob("app", layer, v1.MediaTypeImageLayer)
	l.Size++
	ts.expect(ts.putManifest("app", "v1", imageManifest(cfg, l)), http.StatusBadRequest, codeManifestInvalid)

	// Content-Type and mediaType disagreeing.
	r = ts.do("PUT", "/v2/app/manifests/v1", map[string]string{"Content-Type": v1.MediaTypeImageIndex}, imageManifest(cfg))
	ts.expect(r, http.StatusBadRequest, codeManifestInvalid)
	ts.expect(ts.do("GET", "/v2/app/tags/list", nil, nil), http.StatusOK, "")
}

func TestUploadDigestMismatch(t *testing.T) {
	ts := newTestServer(t, Options{})
	body := []byte("the real bytes")
	wrong := digest.FromString("other bytes")

	// Monolithic POST.
	r := ts.do("POST", "/v2/app/blobs/uploads/?digest="+wrong.String(), nil, body)
	ts.expect(r, http.StatusBadRequest, codeDigestInvalid)

	// POST then PUT.
	r = ts.do("POST", "/v2/app/blobs/uploads/", nil, nil)
	ts.expect(r, http.StatusAccepted, "")
	loc := r.header.Get("Location")
	r = ts.do("PUT", loc+"?digest="+wrong.String(), nil, body)
	ts.expect(r, http.StatusBadRequest, codeDigestInvalid)
	// The failed upload is over.
	ts.expect(ts.do("GET", loc, nil, nil), http.StatusNotFound, codeBlobUploadUnknown)

	// A blob that already exists cannot be claimed with other bytes.
	real := ts.pushBlob("first", body, v1.MediaTypeImageLayer)
	r = ts.do("POST", "/v2/app/blobs/uploads/?digest="+real.Digest.String(), nil, []byte("impostor"))
	ts.expect(r, http.StatusBadRequest, codeDigestInvalid)

	for _, d := range []digest.Digest{wrong, digest.FromBytes(body)} {
		ts.expect(ts.do("HEAD", "/v2/app/blobs/"+d.String(), nil, nil), http.StatusNotFound, "")
	}
	if ts.storeHas(wrong) {
		t.Fatal("blob stored under a digest it does not have")
	}
	// Nothing is left in the store's ingest area either.
	st, err := ts.srv.store.ListStatuses(context.Background())
	if err != nil || len(st) != 0 {
		t.Fatalf("ingests left: %v %v", st, err)
	}
}

func TestChunkedContentRange(t *testing.T) {
	ts := newTestServer(t, Options{})
	data := []byte(strings.Repeat("0123456789", 10))
	r := ts.do("POST", "/v2/app/blobs/uploads/", nil, nil)
	ts.expect(r, http.StatusAccepted, "")
	loc := r.header.Get("Location")
	chunk := func(from, to int, rng string) response {
		return ts.do("PATCH", loc, map[string]string{"Content-Range": rng, "Content-Type": "application/octet-stream"}, data[from:to])
	}
	ts.expect(chunk(0, 40, "0-39"), http.StatusAccepted, "")

	// Out of order: 416 and the upload is unchanged.
	r = chunk(50, 60, "50-59")
	ts.expect(r, http.StatusRequestedRangeNotSatisfiable, "")
	if got := r.header.Get("Range"); got != "0-39" {
		t.Fatalf("Range after 416 = %q, want 0-39", got)
	}
	// Malformed.
	ts.expect(chunk(40, 50, "forty-fifty"), http.StatusBadRequest, codeBlobUploadInvalid)
	// Range longer than the body: refused, partial bytes dropped.
	ts.expect(chunk(40, 50, "40-59"), http.StatusBadRequest, codeSizeInvalid)
	r = ts.do("GET", loc, nil, nil)
	ts.expect(r, http.StatusNoContent, "")
	if got := r.header.Get("Range"); got != "0-39" {
		t.Fatalf("status Range = %q, want 0-39", got)
	}
	ts.expect(chunk(40, 100, "40-99"), http.StatusAccepted, "")
	d := digest.FromBytes(data)
	r = ts.do("PUT", loc+"?digest="+d.String(), nil, nil)
	ts.expect(r, http.StatusCreated, "")
	r = ts.do("GET", "/v2/app/blobs/"+d.String(), nil, nil)
	ts.expect(r, http.StatusOK, "")
	if string(r.body) != string(data) {
		t.Fatal("blob differs")
	}
}

// TestUploadResumesAfterRestart: a chunked upload survives the server
// going away, and carries on from where the status says.
func TestUploadResumesAfterRestart(t *testing.T) {
	root := t.TempDir()
	ts := newTestServer(t, Options{Root: root})
	data := []byte(strings.Repeat("resume me ", 1000))
	r := ts.do("POST", "/v2/app/blobs/uploads/", nil, nil)
	loc := r.header.Get("Location")
	ts.expect(ts.do("PATCH", loc, map[string]string{"Content-Range": "0-4999"}, data[:5000]), http.StatusAccepted, "")
	ts.http.Close()
	if err := ts.srv.Close(); err != nil {
		t.Fatal(err)
	}

	ts2 := newTestServer(t, Options{Root: root})
	r = ts2.do("GET", loc, nil, nil)
	ts2.expect(r, http.StatusNoContent, "")
	if got := r.header.Get("Range"); got != "0-4999" {
		t.Fatalf("Range after restart = %q", got)
	}
	ts2.expect(ts2.do("PATCH", loc, map[string]string{"Content-Range": fmt.Sprintf("5000-%d", len(data)-1)}, data[5000:]), http.StatusAccepted, "")
	ts2.expect(ts2.do("PUT", loc+"?digest="+digest.FromBytes(data).String(), nil, nil), http.StatusCreated, "")

	// Cancel: DELETE ends a session and drops its bytes.
	r = ts2.do("POST", "/v2/app/blobs/uploads/", nil, nil)
	loc = r.header.Get("Location")
	ts2.expect(ts2.do("PATCH", loc, nil, []byte("abc")), http.StatusAccepted, "")
	ts2.expect(ts2.do("DELETE", loc, nil, nil), http.StatusNoContent, "")
	ts2.expect(ts2.do("GET", loc, nil, nil), http.StatusNotFound, codeBlobUploadUnknown)
}

// rawRequest sends a request line as given, so the client library cannot
// clean the path.
func rawRequest(t *testing.T, base, method, path string) (int, string) {
	t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "%s %s HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n", method, path)
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestBadNames(t *testing.T) {
	ts := newTestServer(t, Options{})
	for _, p := range []string{
		"/v2/app/../etc/manifests/latest",
		"/v2/../manifests/latest",
		"/v2/app/..%2f../blobs/uploads/",
		"/v2/UPPER/tags/list",
		"/v2/a//b/manifests/x",
		"/v2/" + strings.Repeat("a", 300) + "/manifests/x",
	} {
		for _, m := range []string{"GET", "PUT", "POST"} {
			status, body := rawRequest(t, ts.url, m, p)
			if status != http.StatusBadRequest || !strings.Contains(body, codeNameInvalid) {
				t.Errorf("%s %s: %d %s, want 400 NAME_INVALID", m, p, status, body)
			}
		}
	}
	repos, _, _ := ts.srv.db.Repositories(context.Background(), "", -1)
	if len(repos) != 0 {
		t.Fatalf("repositories created: %v", repos)
	}
	ts.expect(ts.do("GET", "/v2/app/manifests/bad:tag:x", nil, nil), http.StatusBadRequest, codeDigestInvalid)
	ts.expect(ts.do("GET", "/v2/app/manifests/-bad", nil, nil), http.StatusBadRequest, codeManifestInvalid)
	ts.expect(ts.do("GET", "/v2/app/blobs/sha256:short", nil, nil), http.StatusBadRequest, codeDigestInvalid)
}

func TestOversizedManifest(t *testing.T) {
	ts := newTestServer(t, Options{})
	cfg := ts.pushBlob("app", []byte(`{}`), v1.MediaTypeImageConfig)
	big := fmt.Sprintf(`{"schemaVersion":2,"mediaType":%q,"config":{"mediaType":%q,"digest":%q,"size":%d},"layers":[],"annotations":{"x":%q}}`,
		v1.MediaTypeImageManifest, cfg.MediaType, cfg.Digest, cfg.Size, strings.Repeat("A", maxManifestSize))
	r := ts.putManifest("app", "big", []byte(big))
	ts.expect(r, http.StatusRequestEntityTooLarge, codeSizeInvalid)
	ts.expect(ts.do("GET", "/v2/app/manifests/big", nil, nil), http.StatusNotFound, codeManifestUnknown)
	if ts.storeHas(digest.FromString(big)) {
		t.Fatal("oversized manifest stored")
	}
}

func writeHtpasswd(t *testing.T, user, pass string) *auth.Htpasswd {
	t.Helper()
	h, err := bcrypt.GenerateFromPassword([]byte(pass), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "htpasswd")
	if err := os.WriteFile(p, []byte(user+":"+string(h)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	users, err := auth.LoadHtpasswd(p)
	if err != nil {
		t.Fatal(err)
	}
	return users
}

func TestUnauthenticatedWrites(t *testing.T) {
	users := writeHtpasswd(t, "alice", "s3cret")
	ts := newTestServer(t, Options{Auth: &auth.Basic{Realm: "test", Users: users, AnonymousPull: true}, DeleteEnabled: true})
	body := []byte("layer")
	d := digest.FromBytes(body)

	r := ts.do("POST", "/v2/app/blobs/uploads/?digest="+d.String(), nil, body)
	ts.expect(r, http.StatusUnauthorized, codeUnauthorized)
	if !strings.HasPrefix(r.header.Get("WWW-Authenticate"), "Basic ") {
		t.Fatalf("challenge %q", r.header.Get("WWW-Authenticate"))
	}
	ts.expect(ts.do("POST", "/v2/app/blobs/uploads/", nil, nil), http.StatusUnauthorized, codeUnauthorized)
	ts.expect(ts.putManifest("app", "v1", []byte("{}")), http.StatusUnauthorized, codeUnauthorized)
	ts.expect(ts.do("DELETE", "/v2/app/manifests/v1", nil, nil), http.StatusUnauthorized, codeUnauthorized)
	ts.expect(ts.do("GET", "/v2/_catalog", nil, nil), http.StatusUnauthorized, codeUnauthorized)
	// Wrong password is as good as none.
	ts.user, ts.pass = "alice", "wrong"
	ts.expect(ts.do("POST", "/v2/app/blobs/uploads/?digest="+d.String(), nil, body), http.StatusUnauthorized, codeUnauthorized)
	if ts.storeHas(d) {
		t.Fatal("unauthenticated upload stored")
	}
	ts.user, ts.pass = "alice", "s3cret"
	r = ts.do("GET", "/v2/_catalog", nil, nil)
	ts.expect(r, http.StatusOK, "")
	if strings.Contains(string(r.body), "app") {
		t.Fatalf("catalog after refused writes: %s", r.body)
	}
	mdig, _ := ts.pushImage("app", "v1", body)
	// Anonymous pull was allowed for this server.
	ts.user = ""
	ts.expect(ts.do("GET", "/v2/app/manifests/"+mdig.String(), nil, nil), http.StatusOK, "")
}

func TestTokenAuth(t *testing.T) {
	users := writeHtpasswd(t, "bob", "pw")
	tok := &auth.Token{Service: "test", Users: users, Key: []byte("0123456789abcdef0123456789abcdef")}
	ts := newTestServer(t, Options{Auth: tok, TokenPath: "/token", TokenHandler: tok})
	tok.Realm = ts.url + "/token"

	r := ts.do("POST", "/v2/app/blobs/uploads/", nil, nil)
	ts.expect(r, http.StatusUnauthorized, codeUnauthorized)
	ch := r.header.Get("WWW-Authenticate")
	if !strings.Contains(ch, `realm="`+tok.Realm+`"`) || !strings.Contains(ch, `scope="repository:app:push"`) {
		t.Fatalf("challenge %q", ch)
	}
	get := func(user, pass, scope string) response {
		req, _ := http.NewRequest("GET", ts.url+"/token?service=test&scope="+scope, nil)
		if user != "" {
			req.SetBasicAuth(user, pass)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return response{status: resp.StatusCode, body: b, header: resp.Header}
	}
	ts.expect(get("bob", "nope", "repository:app:push"), http.StatusUnauthorized, "")
	token := func(r response) string {
		var tr tokenResponseForTest
		if err := jsonUnmarshal(r.body, &tr); err != nil || tr.Token == "" {
			t.Fatalf("token response %s: %v", r.body, err)
		}
		return tr.Token
	}
	anon := token(get("", "", "repository:app:push,pull"))
	r = ts.do("POST", "/v2/app/blobs/uploads/", map[string]string{"Authorization": "Bearer " + anon}, nil)
	ts.expect(r, http.StatusUnauthorized, codeUnauthorized)

	pullOnly := token(get("bob", "pw", "repository:app:pull"))
	r = ts.do("POST", "/v2/app/blobs/uploads/", map[string]string{"Authorization": "Bearer " + pullOnly}, nil)
	ts.expect(r, http.StatusUnauthorized, codeUnauthorized)
	if !strings.Contains(r.header.Get("WWW-Authenticate"), `error="insufficient_scope"`) {
		t.Fatalf("challenge %q", r.header.Get("WWW-Authenticate"))
	}
	other := token(get("bob", "pw", "repository:other:push"))
	ts.expect(ts.do("POST", "/v2/app/blobs/uploads/", map[string]string{"Authorization": "Bearer " + other}, nil), http.StatusUnauthorized, codeUnauthorized)

	push := token(get("bob", "pw", "repository:app:push,pull"))
	r = ts.do("POST", "/v2/app/blobs/uploads/", map[string]string{"Authorization": "Bearer " + push}, nil)
	ts.expect(r, http.StatusAccepted, "")
	// A tampered token is refused.
	ts.expect(ts.do("GET", "/v2/app/tags/list", map[string]string{"Authorization": "Bearer " + push[:len(push)-2] + "xx"}, nil), http.StatusUnauthorized, codeUnauthorized)
	// An expired one too.
	tok.Now = func() time.Time { return time.Now().Add(time.Hour) }
	ts.expect(ts.do("GET", "/v2/", map[string]string{"Authorization": "Bearer " + push}, nil), http.StatusUnauthorized, codeUnauthorized)
}

func TestModes(t *testing.T) {
	root := t.TempDir()
	ts := newTestServer(t, Options{Root: root})
	mdig, layer := ts.pushImage("app", "v1", []byte("layer"))
	ts.expect(ts.do("DELETE", "/v2/app/manifests/"+mdig.String(), nil, nil), http.StatusMethodNotAllowed, codeUnsupported)
	ts.expect(ts.do("DELETE", "/v2/app/blobs/"+layer.Digest.String(), nil, nil), http.StatusMethodNotAllowed, codeUnsupported)
	ts.http.Close()
	ts.srv.Close()

	ro := newTestServer(t, Options{Root: root, ReadOnly: true, Metrics: true})
	ro.expect(ro.do("POST", "/v2/app/blobs/uploads/", nil, []byte("x")), http.StatusMethodNotAllowed, codeUnsupported)
	ro.expect(ro.putManifest("app", "v2", []byte("{}")), http.StatusMethodNotAllowed, codeUnsupported)
	r := ro.do("GET", "/v2/app/manifests/v1", nil, nil)
	ro.expect(r, http.StatusOK, "")
	if r.header.Get("Docker-Content-Digest") != mdig.String() || r.header.Get("Content-Type") != v1.MediaTypeImageManifest {
		t.Fatalf("headers %v", r.header)
	}
	r = ro.do("GET", "/v2/app/blobs/"+layer.Digest.String(), map[string]string{"Range": "bytes=1-3"}, nil)
	ro.expect(r, http.StatusPartialContent, "")
	if string(r.body) != "aye" || r.header.Get("Content-Range") != "bytes 1-3/5" {
		t.Fatalf("range: %q %v", r.body, r.header)
	}
	r = ro.do("GET", "/metrics", nil, nil)
	for _, want := range []string{
		`berth_registry_http_requests_total{route="manifest",method="GET",code="200"} 1`,
		`berth_registry_http_requests_total{route="upload",method="POST",code="405"} 1`,
		`berth_registry_http_request_duration_seconds_count{route="blob"} 1`,
		`berth_registry_http_response_bytes_total{route="blob"} 3`,
	} {
		if !strings.Contains(string(r.body), want) {
			t.Errorf("metrics lack %q:\n%s", want, r.body)
		}
	}
}
