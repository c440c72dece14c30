package cache

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/berth-dev/berth/internal/meta"
)

// TestCache stores entries as leases that keep their layers for GC, reads
// them back after the database is reopened, and prunes them.
func TestCache(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "meta.db")
	db, err := meta.Open(ctx, path, meta.Options{})
	if err != nil {
		t.Fatal(err)
	}
	c := New(db)
	layer := v1.Descriptor{MediaType: v1.MediaTypeImageLayerGzip, Digest: digest.FromString("layer"), Size: 5}
	e := Entry{Key: digest.FromString("key"), Config: []byte(`{"architecture":"amd64"}`), Layers: []v1.Descriptor{layer},
		Snapshot: digest.FromString("chain").String(), Step: "RUN true"}
	if err := c.Put(ctx, []Entry{e}); err != nil {
		t.Fatal(err)
	}
	roots := func() meta.Roots {
		var r meta.Roots
		if err := db.View(ctx, func(tx *meta.Tx) (err error) { r, err = tx.Roots(time.Now()); return }); err != nil {
			t.Fatal(err)
		}
		return r
	}
	if r := roots(); len(r.Content) != 1 || r.Content[0] != layer.Digest || len(r.Snapshots) != 1 || r.Snapshots[0] != e.Snapshot {
		t.Errorf("GC roots %+v do not keep the entry's layer and snapshot", r)
	}
	db.Close()
	if db, err = meta.Open(ctx, path, meta.Options{}); err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	c = New(db)
	got, ok, err := c.Get(ctx, e.Key)
	if err != nil || !ok || string(got.Config) != string(e.Config) || got.Snapshot != e.Snapshot || len(got.Layers) != 1 || got.Layers[0].Digest != layer.Digest {
		t.Fatalf("Get after reopening: %+v %v %v", got, ok, err)
	}
	if _, ok, _ := c.Get(ctx, digest.FromString("other")); ok {
		t.Errorf("an unknown key hit")
	}
	if keys, err := c.Prune(ctx, func(Entry) bool { return true }); err != nil || len(keys) != 0 {
		t.Errorf("Prune keeping all: %v %v", keys, err)
	}
	keys, err := c.Prune(ctx, nil)
	if err != nil || len(keys) != 1 || keys[0] != e.Key.Encoded() {
		t.Errorf("Prune: %v %v", keys, err)
	}
	if all, _ := c.List(ctx); len(all) != 0 {
		t.Errorf("entries after prune: %v", all)
	}
}
