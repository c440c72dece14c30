package registry

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// Bad input must give an error, never a panic.

func FuzzParseManifest(f *testing.F) {
	f.Add("application/vnd.oci.image.manifest.v1+json", `{"schemaVersion":2,"config":{"digest":"sha256:`+strings.Repeat("a", 64)+`","size":1},"layers":[{}]}`)
	f.Add("", `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"digest":"x"}]}`)
	f.Add("text/plain; charset=\"", `[]`)
	f.Add("application/vnd.docker.distribution.manifest.v2+json", `{"schemaVersion":2,"config":null,"subject":{"digest":""}}`)
	f.Fuzz(func(t *testing.T, ct, body string) {
		p, err := parseManifest(ct, []byte(body))
		if err == nil {
			p.refs()
		}
	})
}

func FuzzRouting(f *testing.F) {
	for _, s := range []string{"/v2/", "/v2/a/b/blobs/uploads/", "/v2/blobs/blobs/uploads/x", "/v2//manifests/", "/v2/a/referrers/sha256:", "/v2/_catalog"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, path string) {
		parseRoute(path)
		parseContentRange(path)
		parseDigest(path)
	})
}

// FuzzServe sends arbitrary methods, paths and headers to a live server.
func FuzzServe(f *testing.F) {
	ts := newTestServer(f, Options{DeleteEnabled: true})
	f.Add("PATCH", "/v2/a/blobs/uploads/zzz", "0-", "x")
	f.Add("PUT", "/v2/a/manifests/latest", "", `{"schemaVersion":2}`)
	f.Add("GET", "/v2/a/blobs/sha256:"+strings.Repeat("0", 64), "bytes=5-1", "")
	f.Add("POST", "/v2/a/blobs/uploads/?mount=sha256:x&from=../b", "", "")
	f.Fuzz(func(t *testing.T, method, path, hdr, body string) {
		req, err := http.NewRequest(method, "http://x"+path, strings.NewReader(body))
		if err != nil {
			return
		}
		req.Header.Set("Content-Range", hdr)
		req.Header.Set("Range", hdr)
		req.Header.Set("Content-Type", hdr)
		w := httptest.NewRecorder()
		ts.srv.Handler().ServeHTTP(w, req)
	})
}
