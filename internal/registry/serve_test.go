package registry

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
)

// TestGracefulShutdown: a chunk still arriving when shutdown starts is
// received and acknowledged, and the upload then completes after restart.
func TestGracefulShutdown(t *testing.T) {
	root := t.TempDir()
	srv, err := Open(context.Background(), Options{Root: root, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	ready := make(chan string, 1)
	go func() {
		done <- Serve(ctx, srv, ServeConfig{Addr: "127.0.0.1:0", ShutdownTimeout: 20 * time.Second,
			Ready: func(a net.Addr) { ready <- a.String() }})
	}()
	base := "http://" + <-ready
	resp, err := http.Post(base+"/v2/app/blobs/uploads/", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc := resp.Header.Get("Location")

	data := []byte(strings.Repeat("in flight ", 100000))
	pr, pw := io.Pipe()
	req, _ := http.NewRequest("PATCH", base+loc, pr)
	req.ContentLength = int64(len(data))
	result := make(chan *http.Response, 1)
	go func() {
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Errorf("patch: %v", err)
			result <- nil
			return
		}
		result <- resp
	}()
	half := len(data) / 2
	if _, err := pw.Write(data[:half]); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool {
		var b strings.Builder
		srv.metrics.WriteTo(&b)
		return strings.Contains(b.String(), "berth_registry_uploads_in_flight 1")
	})
	cancel() // shutdown begins with the chunk half sent
	time.Sleep(100 * time.Millisecond)
	select {
	case err := <-done:
		t.Fatalf("Serve returned before the upload finished: %v", err)
	default:
	}
	// New connections are refused while the old one finishes.
	if _, err := net.DialTimeout("tcp", strings.TrimPrefix(base, "http://"), time.Second); err == nil {
		t.Error("still accepting connections during shutdown")
	}
	pw.Write(data[half:])
	pw.Close()
	r := <-result
	if r == nil || r.StatusCode != http.StatusAccepted {
		t.Fatalf("in-flight chunk: %v", r)
	}
	r.Body.Close()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	srv.Close()

	ts := newTestServer(t, Options{Root: root})
	ts.expect(ts.do("PUT", loc+"?digest="+digest.FromBytes(data).String(), nil, nil), http.StatusCreated, "")
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for i := 0; i < 500; i++ {
		if cond() {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatal("condition not met in 5s")
}

// selfSigned writes a certificate and key for 127.0.0.1.
func selfSigned(t *testing.T, dir string) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "berth-test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage:    x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, _ := x509.MarshalECPrivateKey(key)
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600)
	cert, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}

func TestServeTLS(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile, pool := selfSigned(t, dir)
	srv, err := Open(context.Background(), Options{Root: filepath.Join(dir, "root"), Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	ready := make(chan string, 1)
	go func() {
		done <- Serve(ctx, srv, ServeConfig{Addr: "127.0.0.1:0", TLSCert: certFile, TLSKey: keyFile,
			Ready: func(a net.Addr) { ready <- a.String() }})
	}()
	addr := <-ready
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	resp, err := c.Get("https://" + addr + "/v2/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.TLS == nil {
		t.Fatalf("TLS ping: %d", resp.StatusCode)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestDiscoveryPagination(t *testing.T) {
	ts := newTestServer(t, Options{})
	mdig, _ := ts.pushImage("app", "a", []byte("layer"))
	mb := ts.do("GET", "/v2/app/manifests/a", nil, nil).body
	for _, tag := range []string{"c", "b", "d", "e"} {
		ts.expect(ts.putManifest("app", tag, mb), http.StatusCreated, "")
	}
	for _, repo := range []string{"zeta", "alpha/one", "alpha/two"} {
		ts.pushBlob(repo, []byte("x"), v1.MediaTypeImageLayer)
	}
	list := func(path string) ([]string, string) {
		r := ts.do("GET", path, nil, nil)
		ts.expect(r, http.StatusOK, "")
		var v struct {
			Tags         []string `json:"tags"`
			Repositories []string `json:"repositories"`
		}
		if err := json.Unmarshal(r.body, &v); err != nil {
			t.Fatal(err)
		}
		return append(v.Tags, v.Repositories...), r.header.Get("Link")
	}
	got, link := list("/v2/app/tags/list?n=2")
	if strings.Join(got, ",") != "a,b" || link != `</v2/app/tags/list?last=b&n=2>; rel="next"` {
		t.Fatalf("page 1: %v %q", got, link)
	}
	got, link = list("/v2/app/tags/list?n=2&last=b")
	if strings.Join(got, ",") != "c,d" || link == "" {
		t.Fatalf("page 2: %v %q", got, link)
	}
	got, link = list("/v2/app/tags/list?n=2&last=d")
	if strings.Join(got, ",") != "e" || link != "" {
		t.Fatalf("page 3: %v %q", got, link)
	}
	got, _ = list("/v2/app/tags/list?n=0")
	if len(got) != 0 {
		t.Fatalf("n=0: %v", got)
	}
	got, _ = list("/v2/app/tags/list?last=bb")
	if strings.Join(got, ",") != "c,d,e" {
		t.Fatalf("last between tags: %v", got)
	}
	ts.expect(ts.do("GET", "/v2/app/tags/list?n=-1", nil, nil), http.StatusBadRequest, "")
	ts.expect(ts.do("GET", "/v2/nothere/tags/list", nil, nil), http.StatusNotFound, codeNameUnknown)
	got, _ = list("/v2/_catalog")
	if strings.Join(got, ",") != "alpha/one,alpha/two,app,zeta" {
		t.Fatalf("catalog: %v", got)
	}
	got, link = list("/v2/_catalog?n=3")
	if strings.Join(got, ",") != "alpha/one,alpha/two,app" || !strings.Contains(link, "last=app") {
		t.Fatalf("catalog page: %v %q", got, link)
	}

	// Referrers with artifactType filtering and the OCI-Subject header.
	cfg := ts.pushBlob("app", []byte("{}"), "application/vnd.oci.empty.v1+json")
	for i, at := range []string{"application/vnd.example.sig", "application/vnd.example.sbom"} {
		m := fmt.Sprintf(`{"schemaVersion":2,"mediaType":%q,"artifactType":%q,"config":{"mediaType":%q,"digest":%q,"size":2},"layers":[],"subject":{"mediaType":%q,"digest":%q,"size":%d},"annotations":{"n":"%d"}}`,
			v1.MediaTypeImageManifest, at, cfg.MediaType, cfg.Digest, v1.MediaTypeImageManifest, mdig, len(mb), i)
		r := ts.putManifest("app", digest.FromString(m).String(), []byte(m))
		ts.expect(r, http.StatusCreated, "")
		if r.header.Get("OCI-Subject") != mdig.String() {
			t.Fatalf("OCI-Subject %q", r.header.Get("OCI-Subject"))
		}
	}
	idx := func(q string) (v1.Index, http.Header) {
		r := ts.do("GET", "/v2/app/referrers/"+mdig.String()+q, nil, nil)
		ts.expect(r, http.StatusOK, "")
		var ix v1.Index
		json.Unmarshal(r.body, &ix)
		return ix, r.header
	}
	ix, h := idx("")
	if len(ix.Manifests) != 2 || h.Get("Content-Type") != v1.MediaTypeImageIndex || h.Get("OCI-Filters-Applied") != "" {
		t.Fatalf("referrers: %+v %v", ix, h)
	}
	ix, h = idx("?artifactType=application/vnd.example.sbom")
	if len(ix.Manifests) != 1 || ix.Manifests[0].ArtifactType != "application/vnd.example.sbom" ||
		ix.Manifests[0].Annotations["n"] != "1" || h.Get("OCI-Filters-Applied") != "artifactType" {
		t.Fatalf("filtered: %+v %v", ix, h)
	}
}
