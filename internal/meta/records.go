package meta

import (
	"bytes"
	"encoding/json"
	"fmt"
	"time"

	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
	bolt "go.etcd.io/bbolt"

	"github.com/berth-dev/berth/internal/errdefs"
)

// maxKeyLen keeps keys well below bbolt's limit and refuses absurd names
// with a clear error.
const maxKeyLen = 4096

// Image is one named image: a reference such as
// docker.io/library/busybox:1.36 pointing at a manifest or index.
type Image struct {
	Name      string            `json:"name"`
	Target    v1.Descriptor     `json:"target"`
	CreatedAt time.Time         `json:"createdAt"`
	UpdatedAt time.Time         `json:"updatedAt"`
	Labels    map[string]string `json:"labels,omitempty"`
}

// Ref maps a name:tag or name@digest reference to a manifest digest.
type Ref struct {
	Name   string        `json:"-"`
	Digest digest.Digest `json:"digest"`
}

// SnapshotKind is the state of a snapshot.
type SnapshotKind string

// Snapshot kinds.
const (
	KindActive    SnapshotKind = "active"    // writable, not yet committed
	KindCommitted SnapshotKind = "committed" // read-only, may be a parent
	KindView      SnapshotKind = "view"      // read-only, never a parent
)

// Usage is the disk a snapshot uses on its own, parents excluded.
type Usage struct {
	Size   int64 `json:"size"`
	Inodes int64 `json:"inodes"`
}

// Snapshot is one snapshot's record; the snapshotter keeps its files.
type Snapshot struct {
	Key string `json:"key"`
	// ID names the snapshot's directory. It is assigned on creation unless
	// given, so a commit can move an active snapshot's directory to its
	// committed key, and it never changes afterwards.
	ID        uint64            `json:"id"`
	Parent    string            `json:"parent,omitempty"`
	Kind      SnapshotKind      `json:"kind"`
	CreatedAt time.Time         `json:"createdAt"`
	UpdatedAt time.Time         `json:"updatedAt"`
	Labels    map[string]string `json:"labels,omitempty"`
	Usage     Usage             `json:"usage"`
}

// Lease protects content and snapshots from garbage collection while an
// operation (a pull, a build) has not yet tied them to an image.
type Lease struct {
	ID        string    `json:"id"`
	CreatedAt time.Time `json:"createdAt"`
	// ExpiresAt ends the protection, so a crashed operation cannot pin
	// resources forever; zero means never.
	ExpiresAt time.Time         `json:"expiresAt,omitzero"`
	Labels    map[string]string `json:"labels,omitempty"`
	Content   []digest.Digest   `json:"content,omitempty"`
	Snapshots []string          `json:"snapshots,omitempty"`
}

// Expired reports whether the lease no longer protects anything at now.
func (l Lease) Expired(now time.Time) bool {
	return !l.ExpiresAt.IsZero() && !now.Before(l.ExpiresAt)
}

// --- images ---

// PutImage creates or replaces an image record and returns it as stored:
// CreatedAt is kept from an existing record (or set to now for a new one
// that has none), UpdatedAt is now.
func (t *Tx) PutImage(img Image) (Image, error) {
	if err := checkKey("image", img.Name); err != nil {
		return Image{}, err
	}
	if err := checkDescriptor(img.Target); err != nil {
		return Image{}, fmt.Errorf("image %q: %w", img.Name, err)
	}
	if _, _, err := GCRefs(img.Labels); err != nil {
		return Image{}, fmt.Errorf("image %q: %w", img.Name, err)
	}
	old, err := t.GetImage(img.Name)
	if err != nil && !errdefs.IsNotFound(err) {
		return Image{}, err
	}
	img.CreatedAt, img.UpdatedAt = stamps(old.CreatedAt, img.CreatedAt)
	return img, putRecord(t, bucketImages, "image", img.Name, img)
}

// GetImage returns an ErrNotFound-class error for an unknown name.
func (t *Tx) GetImage(name string) (Image, error) {
	return getRecord[Image](t, bucketImages, "image", name)
}

// DeleteImage returns an ErrNotFound-class error for an unknown name.
func (t *Tx) DeleteImage(name string) error {
	return deleteRecord(t, bucketImages, "image", name)
}

// ListImages returns all image records ordered by name.
func (t *Tx) ListImages() ([]Image, error) {
	var out []Image
	err := forEachRecord(t, bucketImages, "image", "", func(_ string, img Image) error {
		out = append(out, img)
		return nil
	})
	return out, err
}

// --- refs ---

// PutRef points ref at a manifest digest.
func (t *Tx) PutRef(ref string, dgst digest.Digest) error {
	if err := checkKey("ref", ref); err != nil {
		return err
	}
	if err := dgst.Validate(); err != nil {
		return fmt.Errorf("ref %q: digest %q: %v: %w", ref, dgst, err, errdefs.ErrInvalidArgument)
	}
	return putRecord(t, bucketRefs, "ref", ref, Ref{Digest: dgst})
}

// GetRef returns the digest ref points at, or an ErrNotFound-class error.
func (t *Tx) GetRef(ref string) (digest.Digest, error) {
	r, err := getRecord[Ref](t, bucketRefs, "ref", ref)
	if err != nil {
		return "", err
	}
	if err := r.Digest.Validate(); err != nil {
		return "", corrupt("ref", ref, err)
	}
	return r.Digest, nil
}

// DeleteRef returns an ErrNotFound-class error for an unknown ref.
func (t *Tx) DeleteRef(ref string) error {
	return deleteRecord(t, bucketRefs, "ref", ref)
}

// ListRefs returns the refs starting with prefix (all for ""), in order;
// e.g. "docker.io/library/busybox@" lists one repository's digests.
func (t *Tx) ListRefs(prefix string) ([]Ref, error) {
	var out []Ref
	err := forEachRecord(t, bucketRefs, "ref", prefix, func(name string, r Ref) error {
		if err := r.Digest.Validate(); err != nil {
			return corrupt("ref", name, err)
		}
		out = append(out, r)
		return nil
	})
	return out, err
}

// --- snapshots ---

// PutSnapshot creates or replaces a snapshot record and returns it as
// stored. The parent must exist and be committed. ID and CreatedAt of an
// existing record are kept.
func (t *Tx) PutSnapshot(s Snapshot) (Snapshot, error) {
	if err := checkKey("snapshot", s.Key); err != nil {
		return Snapshot{}, err
	}
	switch s.Kind {
	case KindActive, KindCommitted, KindView:
	default:
		return Snapshot{}, fmt.Errorf("snapshot %q: unknown kind %q: %w", s.Key, s.Kind, errdefs.ErrInvalidArgument)
	}
	if _, _, err := GCRefs(s.Labels); err != nil {
		return Snapshot{}, fmt.Errorf("snapshot %q: %w", s.Key, err)
	}
	if s.Parent != "" {
		if s.Parent == s.Key {
			return Snapshot{}, fmt.Errorf("snapshot %q: is its own parent: %w", s.Key, errdefs.ErrInvalidArgument)
		}
		p, err := t.GetSnapshot(s.Parent)
		if err != nil {
			return Snapshot{}, fmt.Errorf("snapshot %q: parent: %w", s.Key, err)
		}
		if p.Kind != KindCommitted {
			return Snapshot{}, fmt.Errorf("snapshot %q: parent %q is %s, not committed: %w",
				s.Key, s.Parent, p.Kind, errdefs.ErrFailedPrecondition)
		}
	}
	old, err := t.GetSnapshot(s.Key)
	switch {
	case err == nil:
		s.ID = old.ID
	case !errdefs.IsNotFound(err):
		return Snapshot{}, err
	case s.ID == 0:
		b, err := t.bucket(bucketSnapshots)
		if err != nil {
			return Snapshot{}, err
		}
		if s.ID, err = b.NextSequence(); err != nil {
			return Snapshot{}, fmt.Errorf("snapshot %q: assign id: %w", s.Key, err)
		}
	}
	s.CreatedAt, s.UpdatedAt = stamps(old.CreatedAt, s.CreatedAt)
	return s, putRecord(t, bucketSnapshots, "snapshot", s.Key, s)
}

// GetSnapshot returns an ErrNotFound-class error for an unknown key.
func (t *Tx) GetSnapshot(key string) (Snapshot, error) {
	return getRecord[Snapshot](t, bucketSnapshots, "snapshot", key)
}

// DeleteSnapshot removes a snapshot record. It refuses, with an
// ErrFailedPrecondition-class error, a snapshot that is another's parent.
func (t *Tx) DeleteSnapshot(key string) error {
	if _, err := t.GetSnapshot(key); err != nil {
		return err
	}
	err := forEachRecord(t, bucketSnapshots, "snapshot", "", func(_ string, s Snapshot) error {
		if s.Parent == key {
			return fmt.Errorf("snapshot %q: is the parent of %q: %w", key, s.Key, errdefs.ErrFailedPrecondition)
		}
		return nil
	})
	if err != nil {
		return err
	}
	return deleteRecord(t, bucketSnapshots, "snapshot", key)
}

// ListSnapshots returns all snapshot records ordered by key.
func (t *Tx) ListSnapshots() ([]Snapshot, error) {
	var out []Snapshot
	err := forEachRecord(t, bucketSnapshots, "snapshot", "", func(_ string, s Snapshot) error {
		out = append(out, s)
		return nil
	})
	return out, err
}

// --- leases ---

// PutLease creates or replaces a lease and returns it as stored; CreatedAt
// is kept from an existing lease.
func (t *Tx) PutLease(l Lease) (Lease, error) {
	if err := checkKey("lease", l.ID); err != nil {
		return Lease{}, err
	}
	for _, d := range l.Content {
		if err := d.Validate(); err != nil {
			return Lease{}, fmt.Errorf("lease %q: content %q: %v: %w", l.ID, d, err, errdefs.ErrInvalidArgument)
		}
	}
	for _, k := range l.Snapshots {
		if k == "" {
			return Lease{}, fmt.Errorf("lease %q: empty snapshot key: %w", l.ID, errdefs.ErrInvalidArgument)
		}
	}
	if _, _, err := GCRefs(l.Labels); err != nil {
		return Lease{}, fmt.Errorf("lease %q: %w", l.ID, err)
	}
	old, err := t.GetLease(l.ID)
	if err != nil && !errdefs.IsNotFound(err) {
		return Lease{}, err
	}
	l.CreatedAt, _ = stamps(old.CreatedAt, l.CreatedAt)
	return l, putRecord(t, bucketLeases, "lease", l.ID, l)
}

// GetLease returns an ErrNotFound-class error for an unknown id.
func (t *Tx) GetLease(id string) (Lease, error) {
	return getRecord[Lease](t, bucketLeases, "lease", id)
}

// DeleteLease returns an ErrNotFound-class error for an unknown id.
func (t *Tx) DeleteLease(id string) error {
	return deleteRecord(t, bucketLeases, "lease", id)
}

// ListLeases returns all leases, expired ones included, ordered by id.
func (t *Tx) ListLeases() ([]Lease, error) {
	var out []Lease
	err := forEachRecord(t, bucketLeases, "lease", "", func(_ string, l Lease) error {
		out = append(out, l)
		return nil
	})
	return out, err
}

// --- plumbing ---

// stamps returns CreatedAt and UpdatedAt for a record being written: an
// existing record's creation time wins, then the caller's (an image loaded
// from a tarball keeps its date), then now.
func stamps(existing, given time.Time) (created, updated time.Time) {
	now := time.Now().UTC()
	switch {
	case !existing.IsZero():
		return existing, now
	case !given.IsZero():
		return given, now
	default:
		return now, now
	}
}

func checkKey(kind, key string) error {
	if key == "" {
		return fmt.Errorf("%s: empty name: %w", kind, errdefs.ErrInvalidArgument)
	}
	if len(key) > maxKeyLen {
		return fmt.Errorf("%s %.64q...: name longer than %d bytes: %w", kind, key, maxKeyLen, errdefs.ErrInvalidArgument)
	}
	return nil
}

func checkDescriptor(d v1.Descriptor) error {
	if err := d.Digest.Validate(); err != nil {
		return fmt.Errorf("target digest %q: %v: %w", d.Digest, err, errdefs.ErrInvalidArgument)
	}
	if d.MediaType == "" || d.Size < 0 {
		return fmt.Errorf("target %s: needs a media type and a size: %w", d.Digest, errdefs.ErrInvalidArgument)
	}
	return nil
}

func corrupt(kind, key string, err error) error {
	return fmt.Errorf("%s %q: corrupt record: %v: %w", kind, key, err, errdefs.ErrFailedPrecondition)
}

func (t *Tx) bucket(name []byte) (*bolt.Bucket, error) {
	b := t.tx.Bucket(name)
	if b == nil {
		return nil, fmt.Errorf("bucket %s missing: %w", name, errdefs.ErrFailedPrecondition)
	}
	return b, nil
}

func putRecord(t *Tx, bucket []byte, kind, key string, v any) error {
	b, err := t.bucket(bucket)
	if err != nil {
		return err
	}
	raw, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("%s %q: encode: %w", kind, key, err)
	}
	if err := b.Put([]byte(key), raw); err != nil {
		return fmt.Errorf("%s %q: %w", kind, key, err)
	}
	return nil
}

func getRecord[T any](t *Tx, bucket []byte, kind, key string) (T, error) {
	var v T
	b, err := t.bucket(bucket)
	if err != nil {
		return v, err
	}
	raw := b.Get([]byte(key))
	if raw == nil {
		return v, fmt.Errorf("%s %q: %w", kind, key, errdefs.ErrNotFound)
	}
	if err := json.Unmarshal(raw, &v); err != nil {
		return v, corrupt(kind, key, err)
	}
	setKey(&v, key)
	return v, nil
}

// setKey makes the bucket key authoritative over the copy inside the value.
func setKey(v any, key string) {
	if k, ok := v.(interface{ setKey(string) }); ok {
		k.setKey(key)
	}
}

func (i *Image) setKey(k string)    { i.Name = k }
func (r *Ref) setKey(k string)      { r.Name = k }
func (s *Snapshot) setKey(k string) { s.Key = k }
func (l *Lease) setKey(k string)    { l.ID = k }

func deleteRecord(t *Tx, bucket []byte, kind, key string) error {
	b, err := t.bucket(bucket)
	if err != nil {
		return err
	}
	if b.Get([]byte(key)) == nil {
		return fmt.Errorf("%s %q: %w", kind, key, errdefs.ErrNotFound)
	}
	if err := b.Delete([]byte(key)); err != nil {
		return fmt.Errorf("%s %q: %w", kind, key, err)
	}
	return nil
}

// forEachRecord decodes every record whose key starts with prefix; a record
// that does not decode stops the walk with an error rather than being
// skipped, because a list that silently omits one can make GC delete what
// it protects.
func forEachRecord[T any](t *Tx, bucket []byte, kind, prefix string, fn func(key string, v T) error) error {
	b, err := t.bucket(bucket)
	if err != nil {
		return err
	}
	c := b.Cursor()
	p := []byte(prefix)
	for k, raw := c.Seek(p); k != nil && bytes.HasPrefix(k, p); k, raw = c.Next() {
		var v T
		if err := json.Unmarshal(raw, &v); err != nil {
			return corrupt(kind, string(k), err)
		}
		setKey(&v, string(k))
		if err := fn(string(k), v); err != nil {
			return err
		}
	}
	return nil
}
