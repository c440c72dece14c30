package meta

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
	bolt "go.etcd.io/bbolt"

	"github.com/berth-dev/berth/internal/errdefs"
)

func openDB(t *testing.T, path string) *DB {
	t.Helper()
	db, err := Open(context.Background(), path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func update(t *testing.T, db *DB, fn func(*Tx) error) {
	t.Helper()
	if err := db.Update(context.Background(), fn); err != nil {
		t.Fatal(err)
	}
}

func view(t *testing.T, db *DB, fn func(*Tx) error) {
	t.Helper()
	if err := db.View(context.Background(), fn); err != nil {
		t.Fatal(err)
	}
}

func target(s string) v1.Descriptor {
	return v1.Descriptor{MediaType: v1.MediaTypeImageIndex, Digest: digest.FromString(s), Size: int64(len(s))}
}

func TestImages(t *testing.T) {
	db := openDB(t, filepath.Join(t.TempDir(), "meta.db"))
	ctx := context.Background()
	name := "docker.io/library/busybox:1.36"
	var first Image
	update(t, db, func(tx *Tx) (err error) {
		first, err = tx.PutImage(Image{Name: name, Target: target("a"), Labels: map[string]string{"x": "y"}})
		return err
	})
	if first.CreatedAt.IsZero() || first.UpdatedAt.IsZero() {
		t.Fatalf("timestamps not set: %+v", first)
	}
	time.Sleep(2 * time.Millisecond)
	update(t, db, func(tx *Tx) error {
		_, err := tx.PutImage(Image{Name: "docker.io/library/alpine:3", Target: target("b")})
		if err != nil {
			return err
		}
		again, err := tx.PutImage(Image{Name: name, Target: target("c")})
		if err != nil {
			return err
		}
		if !again.CreatedAt.Equal(first.CreatedAt) || !again.UpdatedAt.After(first.UpdatedAt) {
			t.Errorf("re-put: created %v updated %v, first %+v", again.CreatedAt, again.UpdatedAt, first)
		}
		return nil
	})
	view(t, db, func(tx *Tx) error {
		img, err := tx.GetImage(name)
		if err != nil {
			return err
		}
		if img.Target.Digest != digest.FromString("c") || img.Name != name || len(img.Labels) != 0 {
			t.Errorf("get = %+v", img)
		}
		list, err := tx.ListImages()
		if err != nil {
			return err
		}
		if len(list) != 2 || list[0].Name != "docker.io/library/alpine:3" || list[1].Name != name {
			t.Errorf("list = %+v", list)
		}
		if err := tx.DeleteImage(name); err == nil {
			t.Error("delete in a read-only transaction succeeded")
		}
		return nil
	})
	update(t, db, func(tx *Tx) error {
		if err := tx.DeleteImage(name); err != nil {
			return err
		}
		if err := tx.DeleteImage(name); !errdefs.IsNotFound(err) {
			t.Errorf("second delete: %v", err)
		}
		if _, err := tx.GetImage(name); !errdefs.IsNotFound(err) {
			t.Errorf("get after delete: %v", err)
		}
		for _, bad := range []Image{
			{Name: "", Target: target("a")},
			{Name: "x", Target: v1.Descriptor{MediaType: "m", Digest: "sha256:nope"}},
			{Name: "x", Target: v1.Descriptor{Digest: digest.FromString("a")}},
			{Name: "x", Target: target("a"), Labels: map[string]string{LabelGCRefContent + ".l0": "garbage"}},
			{Name: strings.Repeat("n", maxKeyLen+1), Target: target("a")},
		} {
			if _, err := tx.PutImage(bad); !errdefs.IsInvalidArgument(err) {
				t.Errorf("PutImage(%.40q): %v, want InvalidArgument", bad.Name, err)
			}
		}
		return nil
	})
	// A failing Update rolls back.
	boom := errors.New("boom")
	err := db.Update(ctx, func(tx *Tx) error {
		if _, err := tx.PutImage(Image{Name: "rolled-back", Target: target("r")}); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("update: %v", err)
	}
	view(t, db, func(tx *Tx) error {
		if _, err := tx.GetImage("rolled-back"); !errdefs.IsNotFound(err) {
			t.Errorf("rolled-back image visible: %v", err)
		}
		return nil
	})
}

func TestRefs(t *testing.T) {
	db := openDB(t, filepath.Join(t.TempDir(), "meta.db"))
	d1, d2 := digest.FromString("m1"), digest.FromString("m2")
	update(t, db, func(tx *Tx) error {
		for ref, d := range map[string]digest.Digest{
			"docker.io/library/busybox:1.36":           d1,
			"docker.io/library/busybox@" + d1.String(): d1,
			"docker.io/library/busybox:latest":         d2,
			"localhost:5000/app:v1":                    d2,
		} {
			if err := tx.PutRef(ref, d); err != nil {
				return err
			}
		}
		if err := tx.PutRef("x:y", "sha256:bad"); !errdefs.IsInvalidArgument(err) {
			t.Errorf("bad digest: %v", err)
		}
		return nil
	})
	view(t, db, func(tx *Tx) error {
		got, err := tx.GetRef("docker.io/library/busybox:latest")
		if err != nil || got != d2 {
			t.Errorf("get = %s, %v", got, err)
		}
		if _, err := tx.GetRef("nope:1"); !errdefs.IsNotFound(err) {
			t.Errorf("unknown ref: %v", err)
		}
		refs, err := tx.ListRefs("docker.io/library/busybox")
		if err != nil {
			return err
		}
		if len(refs) != 3 || refs[0].Name != "docker.io/library/busybox:1.36" || refs[0].Digest != d1 {
			t.Errorf("prefix list = %+v", refs)
		}
		all, _ := tx.ListRefs("")
		if len(all) != 4 {
			t.Errorf("list all = %d refs", len(all))
		}
		return nil
	})
	update(t, db, func(tx *Tx) error {
		if err := tx.DeleteRef("localhost:5000/app:v1"); err != nil {
			return err
		}
		if err := tx.DeleteRef("localhost:5000/app:v1"); !errdefs.IsNotFound(err) {
			t.Errorf("second delete: %v", err)
		}
		return nil
	})
}

func TestSnapshots(t *testing.T) {
	db := openDB(t, filepath.Join(t.TempDir(), "meta.db"))
	update(t, db, func(tx *Tx) error {
		base, err := tx.PutSnapshot(Snapshot{Key: "sha256:base", Kind: KindCommitted, Usage: Usage{Size: 100, Inodes: 3}})
		if err != nil {
			return err
		}
		active, err := tx.PutSnapshot(Snapshot{Key: "extract-1", Parent: "sha256:base", Kind: KindActive})
		if err != nil {
			return err
		}
		if base.ID == 0 || active.ID == 0 || base.ID == active.ID {
			t.Errorf("ids: base %d active %d", base.ID, active.ID)
		}
		// Commit: the active snapshot's directory moves to the committed key.
		committed, err := tx.PutSnapshot(Snapshot{Key: "sha256:layer2", ID: active.ID, Parent: "sha256:base", Kind: KindCommitted})
		if err != nil {
			return err
		}
		if committed.ID != active.ID {
			t.Errorf("given id not kept: %d", committed.ID)
		}
		if err := tx.DeleteSnapshot("extract-1"); err != nil {
			return err
		}
		// Updating keeps ID and CreatedAt.
		upd, err := tx.PutSnapshot(Snapshot{Key: "sha256:base", ID: 999, Kind: KindCommitted, Usage: Usage{Size: 200}})
		if err != nil {
			return err
		}
		if upd.ID != base.ID || !upd.CreatedAt.Equal(base.CreatedAt) || upd.Usage.Size != 200 {
			t.Errorf("update = %+v, base %+v", upd, base)
		}

		for _, tc := range []struct {
			s    Snapshot
			want func(error) bool
		}{
			{Snapshot{Key: "", Kind: KindActive}, errdefs.IsInvalidArgument},
			{Snapshot{Key: "k", Kind: "weird"}, errdefs.IsInvalidArgument},
			{Snapshot{Key: "k", Kind: KindActive, Parent: "k"}, errdefs.IsInvalidArgument},
			{Snapshot{Key: "k", Kind: KindActive, Parent: "missing"}, errdefs.IsNotFound},
			{Snapshot{Key: "v", Kind: KindView, Parent: "sha256:layer2"}, func(err error) bool { return err == nil }},
			{Snapshot{Key: "k", Kind: KindActive, Parent: "v"}, errdefs.IsFailedPrecondition},
		} {
			if _, err := tx.PutSnapshot(tc.s); !tc.want(err) {
				t.Errorf("PutSnapshot(%+v): %v", tc.s, err)
			}
		}
		if err := tx.DeleteSnapshot("sha256:base"); !errdefs.IsFailedPrecondition(err) {
			t.Errorf("delete of a parent: %v, want FailedPrecondition", err)
		}
		if err := tx.DeleteSnapshot("nope"); !errdefs.IsNotFound(err) {
			t.Errorf("delete of unknown: %v", err)
		}
		return nil
	})
	view(t, db, func(tx *Tx) error {
		list, err := tx.ListSnapshots()
		if err != nil {
			return err
		}
		var keys []string
		for _, s := range list {
			keys = append(keys, s.Key+"/"+string(s.Kind))
		}
		if got := strings.Join(keys, " "); got != "sha256:base/committed sha256:layer2/committed v/view" {
			t.Errorf("list = %s", got)
		}
		s, err := tx.GetSnapshot("sha256:layer2")
		if err != nil || s.Parent != "sha256:base" {
			t.Errorf("get = %+v, %v", s, err)
		}
		return nil
	})
}

func TestLeases(t *testing.T) {
	db := openDB(t, filepath.Join(t.TempDir(), "meta.db"))
	now := time.Now()
	update(t, db, func(tx *Tx) error {
		l, err := tx.PutLease(Lease{ID: "pull-1", ExpiresAt: now.Add(time.Hour), Content: []digest.Digest{digest.FromString("l1")}})
		if err != nil {
			return err
		}
		if l.CreatedAt.IsZero() {
			t.Error("CreatedAt not set")
		}
		// Grow the lease as a pull proceeds: get, add, put.
		l.Snapshots = append(l.Snapshots, "extract-1")
		if _, err := tx.PutLease(l); err != nil {
			return err
		}
		if _, err := tx.PutLease(Lease{ID: "forever"}); err != nil {
			return err
		}
		if _, err := tx.PutLease(Lease{ID: "bad", Content: []digest.Digest{"nope"}}); !errdefs.IsInvalidArgument(err) {
			t.Errorf("bad content digest: %v", err)
		}
		if _, err := tx.PutLease(Lease{ID: "bad", Snapshots: []string{""}}); !errdefs.IsInvalidArgument(err) {
			t.Errorf("empty snapshot key: %v", err)
		}
		return nil
	})
	view(t, db, func(tx *Tx) error {
		l, err := tx.GetLease("pull-1")
		if err != nil {
			return err
		}
		if len(l.Content) != 1 || len(l.Snapshots) != 1 || l.Expired(now) || !l.Expired(now.Add(2*time.Hour)) {
			t.Errorf("lease = %+v", l)
		}
		f, _ := tx.GetLease("forever")
		if f.Expired(now.Add(1000 * time.Hour)) {
			t.Error("lease without expiry expired")
		}
		list, err := tx.ListLeases()
		if err != nil || len(list) != 2 {
			t.Errorf("list = %+v, %v", list, err)
		}
		return nil
	})
	update(t, db, func(tx *Tx) error {
		if err := tx.DeleteLease("pull-1"); err != nil {
			return err
		}
		if _, err := tx.GetLease("pull-1"); !errdefs.IsNotFound(err) {
			t.Errorf("get after delete: %v", err)
		}
		return nil
	})
}

func TestRoots(t *testing.T) {
	db := openDB(t, filepath.Join(t.TempDir(), "meta.db"))
	now := time.Now()
	d := func(s string) digest.Digest { return digest.FromString(s) }
	update(t, db, func(tx *Tx) error {
		steps := []func() error{
			func() error {
				_, err := tx.PutImage(Image{Name: "busybox:1", Target: target("index"), Labels: map[string]string{
					LabelGCRefContent + ".config": d("config").String(),
					LabelGCRefSnapshot:            "sha256:chain",
					"unrelated":                   "x",
					LabelGCRefContent + "foo":     "not a ref label",
				}})
				return err
			},
			func() error { return tx.PutRef("busybox@"+d("manifest").String(), d("manifest")) },
			func() error { return tx.PutRef("busybox:1", d("index")) },
			func() error {
				_, err := tx.PutSnapshot(Snapshot{Key: "sha256:chain", Kind: KindCommitted})
				return err
			},
			func() error {
				_, err := tx.PutSnapshot(Snapshot{Key: "ctr-rw", Parent: "sha256:chain", Kind: KindActive,
					Labels: map[string]string{LabelGCRoot: ""}})
				return err
			},
			func() error {
				_, err := tx.PutSnapshot(Snapshot{Key: "orphan", Kind: KindActive})
				return err
			},
			func() error {
				_, err := tx.PutLease(Lease{ID: "live", ExpiresAt: now.Add(time.Minute),
					Content: []digest.Digest{d("layer")}, Snapshots: []string{"extract-9"}})
				return err
			},
			func() error {
				_, err := tx.PutLease(Lease{ID: "dead", ExpiresAt: now.Add(-time.Minute),
					Content: []digest.Digest{d("expired")}, Snapshots: []string{"extract-0"}})
				return err
			},
		}
		for _, s := range steps {
			if err := s(); err != nil {
				return err
			}
		}
		return nil
	})
	var r Roots
	view(t, db, func(tx *Tx) (err error) { r, err = tx.Roots(now); return err })

	want := []digest.Digest{d("config"), d("index"), d("layer"), d("manifest")}
	if len(r.Content) != len(want) {
		t.Fatalf("content roots = %v", r.Content)
	}
	has := map[digest.Digest]bool{}
	for _, c := range r.Content {
		has[c] = true
	}
	for _, w := range want {
		if !has[w] {
			t.Errorf("content root %s missing from %v", w, r.Content)
		}
	}
	if got := strings.Join(r.Snapshots, " "); got != "ctr-rw extract-9 sha256:chain" {
		t.Errorf("snapshot roots = %s", got)
	}
}

func TestSecondOpenFailsFast(t *testing.T) {
	path := filepath.Join(t.TempDir(), "meta.db")
	openDB(t, path)
	start := time.Now()
	_, err := Open(context.Background(), path, Options{LockTimeout: 200 * time.Millisecond})
	if err == nil {
		t.Fatal("second open succeeded")
	}
	if !errors.Is(err, errdefs.ErrUnavailable) || !strings.Contains(err.Error(), "locked by another berth process") {
		t.Fatalf("second open: %v", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("second open took %s", d)
	}
}

func TestSchemaVersion(t *testing.T) {
	if SchemaVersion != len(migrations) {
		t.Fatalf("SchemaVersion %d but %d migrations", SchemaVersion, len(migrations))
	}
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "meta.db")
	db := openDB(t, path)
	update(t, db, func(tx *Tx) error {
		_, err := tx.PutImage(Image{Name: "keep", Target: target("k")})
		return err
	})
	db.Close()

	// A hook for version 2 runs once, in order, and sees the old data.
	ran := 0
	v2 := append(append([]migration(nil), migrations...), func(tx *bolt.Tx) error {
		ran++
		if tx.Bucket(bucketImages).Get([]byte("keep")) == nil {
			t.Error("migration does not see existing records")
		}
		_, err := tx.CreateBucketIfNotExists([]byte("new-in-v2"))
		return err
	})
	for range 2 {
		db, err := open(ctx, path, Options{}, v2)
		if err != nil {
			t.Fatal(err)
		}
		db.Close()
	}
	if ran != 1 {
		t.Fatalf("migration ran %d times, want 1", ran)
	}

	// This berth only knows version 1: it refuses the file now at version 2.
	_, err := Open(ctx, path, Options{})
	if !errdefs.IsFailedPrecondition(err) || !strings.Contains(err.Error(), "newer than this berth supports") {
		t.Fatalf("open of a newer schema: %v", err)
	}

	// A failing migration leaves the file at its old version.
	path2 := filepath.Join(t.TempDir(), "meta.db")
	openDB(t, path2).Close()
	boom := errors.New("boom")
	bad := append(append([]migration(nil), migrations...), func(*bolt.Tx) error { return boom })
	if _, err := open(ctx, path2, Options{}, bad); !errors.Is(err, boom) {
		t.Fatalf("failing migration: %v", err)
	}
	db2 := openDB(t, path2)
	db2.bolt.View(func(tx *bolt.Tx) error {
		if v, _ := schemaVersion(tx); v != 1 {
			t.Errorf("version after failed migration = %d", v)
		}
		return nil
	})
}

// TestCorruptRecords: garbage in any bucket is an error from every
// accessor that reads it, never a panic, and never silently skipped.
func TestCorruptRecords(t *testing.T) {
	for _, raw := range [][]byte{
		[]byte(`{`), []byte(`null`), []byte(`[]`), []byte(`"str"`), {0xff, 0x00},
		[]byte(`{"target":{"digest":"nope","mediaType":"m","size":1}}`),
		[]byte(`{"digest":"sha256:zz"}`),
		[]byte(`{"labels":{"berth.gc.ref.content":"bad"},"target":{"digest":"sha256:0000000000000000000000000000000000000000000000000000000000000000","mediaType":"m","size":1}}`),
		[]byte(`{"content":["x"],"kind":7}`),
	} {
		db := openDB(t, filepath.Join(t.TempDir(), "meta.db"))
		err := db.bolt.Update(func(tx *bolt.Tx) error {
			for _, b := range [][]byte{bucketImages, bucketRefs, bucketSnapshots, bucketLeases} {
				if err := tx.Bucket(b).Put([]byte("k"), raw); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		// Some values decode fine for some record types (null is an empty
		// record); what matters is no panic, and that a decoding failure is
		// reported rather than skipped.
		db.View(context.Background(), func(tx *Tx) error {
			tx.GetImage("k")
			tx.GetRef("k")
			tx.GetSnapshot("k")
			tx.GetLease("k")
			tx.ListImages()
			tx.ListSnapshots()
			tx.ListLeases()
			if _, err := tx.ListRefs(""); err == nil {
				t.Errorf("%q: ListRefs accepted a ref without a valid digest", raw)
			}
			if _, err := tx.Roots(time.Now()); err == nil {
				t.Errorf("%q: Roots accepted a corrupt database", raw)
			}
			return nil
		})
		db.Close()
	}
}

// FuzzRecords feeds arbitrary bytes to every record decoder through the
// database; `go test` runs the seeds, `go test -fuzz` explores.
func FuzzRecords(f *testing.F) {
	for _, s := range []string{`{}`, `{"name":1}`, `{"labels":{"berth.gc.ref.snapshot":""}}`, `{"expiresAt":"x"}`, "\x00"} {
		f.Add([]byte(s))
	}
	path := filepath.Join(f.TempDir(), "meta.db")
	db, err := Open(context.Background(), path, Options{})
	if err != nil {
		f.Fatal(err)
	}
	defer db.Close()
	f.Fuzz(func(t *testing.T, raw []byte) {
		db.bolt.Update(func(tx *bolt.Tx) error {
			for _, b := range [][]byte{bucketImages, bucketRefs, bucketSnapshots, bucketLeases} {
				tx.Bucket(b).Put([]byte("k"), raw)
			}
			return nil
		})
		db.View(context.Background(), func(tx *Tx) error {
			tx.GetImage("k")
			tx.GetRef("k")
			tx.GetSnapshot("k")
			tx.GetLease("k")
			tx.ListRefs("")
			tx.Roots(time.Now())
			return nil
		})
	})
}

// BenchmarkOpen is the daemon's startup cost for an existing database.
func BenchmarkOpen(b *testing.B) {
	path := filepath.Join(b.TempDir(), "meta.db")
	db, err := Open(context.Background(), path, Options{})
	if err != nil {
		b.Fatal(err)
	}
	db.Update(context.Background(), func(tx *Tx) error {
		for i := range 1000 {
			name := "img" + strings.Repeat("x", i%7) + digest.FromString(string(rune(i))).Encoded()
			if _, err := tx.PutImage(Image{Name: name, Target: target(name)}); err != nil {
				return err
			}
		}
		return nil
	})
	db.Close()
	for b.Loop() {
		db, err := Open(context.Background(), path, Options{})
		if err != nil {
			b.Fatal(err)
		}
		db.Close()
	}
}
