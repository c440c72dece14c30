package registry

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/berth-dev/berth/internal/content"
)

func TestGC(t *testing.T) {
	ctx := context.Background()
	ts := newTestServer(t, Options{DeleteEnabled: true})
	keptManifest, keptLayer := ts.pushImage("app", "v1", []byte("kept layer"))
	orphan := ts.pushBlob("app", []byte("orphan layer"), v1.MediaTypeImageLayer)
	// A blob a daemon put in the shared store before anyone pushed it.
	daemonBlob := []byte("daemon layer")
	dd := digest.FromBytes(daemonBlob)
	if err := content.WriteBlob(ctx, ts.srv.store, v1.Descriptor{Digest: dd, Size: int64(len(daemonBlob))}, bytesReader(daemonBlob)); err != nil {
		t.Fatal(err)
	}
	ts.pushBlob("app", daemonBlob, v1.MediaTypeImageLayer)
	// A deleted manifest frees its blobs.
	goneManifest, goneLayer := ts.pushImage("gone", "v1", []byte("gone layer"))
	ts.expect(ts.do("DELETE", "/v2/gone/manifests/"+goneManifest.String(), nil, nil), http.StatusAccepted, "")

	// Within the grace period nothing goes.
	res, err := ts.srv.GC(ctx, GCOptions{Grace: time.Hour})
	if err != nil || len(res.Deleted) != 0 {
		t.Fatalf("gc within grace: %v %v", res, err)
	}
	res, err = ts.srv.GC(ctx, GCOptions{Grace: 0, DryRun: true})
	if err != nil || len(res.Deleted) != 3 {
		t.Fatalf("dry run: %v %v", res.Deleted, err)
	}
	if !ts.storeHas(orphan.Digest) {
		t.Fatal("dry run deleted")
	}
	res, err = ts.srv.GC(ctx, GCOptions{Grace: 0})
	if err != nil {
		t.Fatal(err)
	}
	gone := map[digest.Digest]bool{}
	for _, d := range res.Deleted {
		gone[d] = true
	}
	for _, d := range []digest.Digest{orphan.Digest, goneManifest, goneLayer.Digest} {
		if !gone[d] || ts.storeHas(d) {
			t.Errorf("%s not collected", d)
		}
	}
	for _, d := range []digest.Digest{keptManifest, keptLayer.Digest, dd} {
		if gone[d] || !ts.storeHas(d) {
			t.Errorf("%s collected", d)
		}
	}
	ts.expect(ts.do("HEAD", "/v2/app/blobs/"+orphan.Digest.String(), nil, nil), http.StatusNotFound, "")
	ts.expect(ts.do("GET", "/v2/app/manifests/v1", nil, nil), http.StatusOK, "")
	// Pushing the collected blob again works.
	ts.pushBlob("app", []byte("orphan layer"), v1.MediaTypeImageLayer)
	ts.expect(ts.do("HEAD", "/v2/app/blobs/"+orphan.Digest.String(), nil, nil), http.StatusOK, "")
}

// TestGCWhileServing drives gc through the package-level entry point while
// a server holds the database, which must go through the admin socket.
func TestGCWhileServing(t *testing.T) {
	root := t.TempDir()
	srv, err := Open(context.Background(), Options{Root: root, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	ready := make(chan string, 1)
	go func() {
		done <- Serve(ctx, srv, ServeConfig{Addr: "127.0.0.1:0", Ready: func(a netAddr) { ready <- a.String() }})
	}()
	addr := <-ready
	ts := &testServer{t: t, srv: srv, url: "http://" + addr}
	orphan := ts.pushBlob("app", []byte("orphan"), v1.MediaTypeImageLayer)
	res, err := GC(context.Background(), root, GCOptions{}, quietLogger())
	if err != nil || len(res.Deleted) != 1 || res.Deleted[0] != orphan.Digest {
		t.Fatalf("remote gc: %v %v", res, err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	srv.Close()
	// Offline, it opens the state itself.
	if _, err := GC(context.Background(), root, GCOptions{Grace: time.Hour}, quietLogger()); err != nil {
		t.Fatal(err)
	}
}
