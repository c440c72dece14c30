// Package repodb keeps the registry's per-repository state in one bbolt file:
// which blobs each repository may serve, its manifests, tags and referrers,
// the upload sessions in flight, and which blobs the registry itself brought
// into the shared content store (only those may its garbage collector delete).
//
// Blob bytes are not here: they live in the content store, shared with a
// daemon on the same host. A blob exists for a repository only once it was
// pushed or mounted there, which is what the links in this database record.
//
// Layout (bucket names are short on purpose; they repeat in every page):
//
//	schema                 version
//	repos/<name>/b         digest -> blobLink      blobs linked into the repo
//	repos/<name>/m         digest -> Manifest      manifests in the repo
//	repos/<name>/t         tag    -> digest
//	repos/<name>/r/<subj>  referrer digest -> ""   referrers of subject
//	uploads                id -> Upload
//	owned                  digest -> ownedBlob     blobs the registry created
package repodb

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/opencontainers/go-digest"
	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"

	"github.com/berth-dev/berth/internal/errdefs"
)

const schemaVersion = 1

var (
	bucketSchema  = []byte("schema")
	keyVersion    = []byte("version")
	bucketRepos   = []byte("repos")
	bucketUploads = []byte("uploads")
	bucketOwned   = []byte("owned")

	subBlobs     = []byte("b")
	subManifests = []byte("m")
	subTags      = []byte("t")
	subReferrers = []byte("r")
)

// Manifest is what the registry remembers about one manifest in one
// repository; its bytes are a blob in the content store.
type Manifest struct {
	Digest       digest.Digest     `json:"digest"`
	MediaType    string            `json:"mediaType"`
	Size         int64             `json:"size"`
	ArtifactType string            `json:"artifactType,omitempty"`
	Annotations  map[string]string `json:"annotations,omitempty"`
	// Subject is the manifest this one refers to (referrers API).
	Subject digest.Digest `json:"subject,omitempty"`
	// Refs are the blobs and child manifests the manifest keeps alive.
	Refs      []digest.Digest `json:"refs,omitempty"`
	CreatedAt time.Time       `json:"createdAt"`
}

// Upload is one blob upload session.
type Upload struct {
	ID        string    `json:"id"`
	Repo      string    `json:"repo"`
	StartedAt time.Time `json:"startedAt"`
}

type blobLink struct {
	Size     int64     `json:"size"`
	LinkedAt time.Time `json:"linkedAt"`
}

type ownedBlob struct {
	// TouchedAt is when the blob was last committed or linked; GC spares
	// blobs touched within its grace period, so a push whose manifest has not
	// arrived yet keeps its layers.
	TouchedAt time.Time `json:"touchedAt"`
}

// DB is the open database. It is safe for concurrent use.
type DB struct {
	bolt *bolt.DB
	path string
}

// Open opens or creates the database at path. A second process on the same
// file gets an ErrUnavailable-class error after timeout.
func Open(ctx context.Context, path string, timeout time.Duration) (*DB, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	b, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: timeout, FreelistType: bolt.FreelistMapType})
	if errors.Is(err, bolterrors.ErrTimeout) {
		return nil, fmt.Errorf("open %s: locked by another process (a running registry?): %w", path, errdefs.ErrUnavailable)
	}
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	err = b.Update(func(tx *bolt.Tx) error {
		s, err := tx.CreateBucketIfNotExists(bucketSchema)
		if err != nil {
			return err
		}
		if v := s.Get(keyVersion); v != nil {
			n, err := strconv.Atoi(string(v))
			if err != nil || n > schemaVersion {
				return fmt.Errorf("schema version %q is newer than this berth supports (%d): %w",
					v, schemaVersion, errdefs.ErrFailedPrecondition)
			}
		}
		for _, name := range [][]byte{bucketRepos, bucketUploads, bucketOwned} {
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				return err
			}
		}
		return s.Put(keyVersion, []byte(strconv.Itoa(schemaVersion)))
	})
	if err != nil {
		b.Close()
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	return &DB{bolt: b, path: path}, nil
}

// Close releases the file and its lock.
func (db *DB) Close() error { return db.bolt.Close() }

func (db *DB) view(ctx context.Context, fn func(*bolt.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return db.bolt.View(fn)
}

func (db *DB) update(ctx context.Context, fn func(*bolt.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return db.bolt.Update(fn)
}

// repoBucket returns the repository's bucket, or nil when the repository
// does not exist.
func repoBucket(tx *bolt.Tx, repo string) *bolt.Bucket {
	return tx.Bucket(bucketRepos).Bucket([]byte(repo))
}

func repoSub(tx *bolt.Tx, repo string, sub []byte) *bolt.Bucket {
	rb := repoBucket(tx, repo)
	if rb == nil {
		return nil
	}
	return rb.Bucket(sub)
}

// createRepo makes the repository's buckets on first write.
func createRepo(tx *bolt.Tx, repo string) (*bolt.Bucket, error) {
	rb, err := tx.Bucket(bucketRepos).CreateBucketIfNotExists([]byte(repo))
	if err != nil {
		return nil, fmt.Errorf("create repository %s: %w", repo, err)
	}
	for _, s := range [][]byte{subBlobs, subManifests, subTags, subReferrers} {
		if _, err := rb.CreateBucketIfNotExists(s); err != nil {
			return nil, fmt.Errorf("create repository %s: %w", repo, err)
		}
	}
	return rb, nil
}

func putJSON(b *bolt.Bucket, key []byte, v any) error {
	raw, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return b.Put(key, raw)
}

func getJSON(b *bolt.Bucket, key []byte, v any) (bool, error) {
	if b == nil {
		return false, nil
	}
	raw := b.Get(key)
	if raw == nil {
		return false, nil
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return false, fmt.Errorf("record %q is corrupt: %w", key, err)
	}
	return true, nil
}

// RepoExists reports whether anything was ever pushed to repo.
func (db *DB) RepoExists(ctx context.Context, repo string) (bool, error) {
	var ok bool
	err := db.view(ctx, func(tx *bolt.Tx) error {
		ok = repoBucket(tx, repo) != nil
		return nil
	})
	return ok, err
}

// LinkBlob makes the blob servable from repo. owned records that the
// registry created the blob in the content store (see Sweep).
func (db *DB) LinkBlob(ctx context.Context, repo string, dgst digest.Digest, size int64, owned bool) error {
	now := time.Now().UTC()
	err := db.update(ctx, func(tx *bolt.Tx) error {
		rb, err := createRepo(tx, repo)
		if err != nil {
			return err
		}
		if err := putJSON(rb.Bucket(subBlobs), []byte(dgst), blobLink{Size: size, LinkedAt: now}); err != nil {
			return err
		}
		return touchOwned(tx, dgst, owned, now)
	})
	if err != nil {
		return fmt.Errorf("link blob %s into %s: %w", dgst, repo, err)
	}
	return nil
}

// touchOwned refreshes an owned blob's grace period, and records ownership
// when the registry just created the blob.
func touchOwned(tx *bolt.Tx, dgst digest.Digest, created bool, now time.Time) error {
	ob := tx.Bucket(bucketOwned)
	if !created && ob.Get([]byte(dgst)) == nil {
		return nil
	}
	return putJSON(ob, []byte(dgst), ownedBlob{TouchedAt: now})
}

// BlobSize returns the size of a blob linked into repo, or an
// ErrNotFound-class error.
func (db *DB) BlobSize(ctx context.Context, repo string, dgst digest.Digest) (int64, error) {
	var l blobLink
	var ok bool
	err := db.view(ctx, func(tx *bolt.Tx) (err error) {
		ok, err = getJSON(repoSub(tx, repo, subBlobs), []byte(dgst), &l)
		return err
	})
	if err != nil {
		return 0, err
	}
	if !ok {
		return 0, fmt.Errorf("blob %s in %s: %w", dgst, repo, errdefs.ErrNotFound)
	}
	return l.Size, nil
}

// UnlinkBlob removes the blob from repo; its bytes stay until GC.
func (db *DB) UnlinkBlob(ctx context.Context, repo string, dgst digest.Digest) error {
	return db.update(ctx, func(tx *bolt.Tx) error {
		b := repoSub(tx, repo, subBlobs)
		if b == nil || b.Get([]byte(dgst)) == nil {
			return fmt.Errorf("blob %s in %s: %w", dgst, repo, errdefs.ErrNotFound)
		}
		return b.Delete([]byte(dgst))
	})
}

// Missing returns which of blobs are not linked into repo and which of
// manifests are not in it, in one consistent read.
func (db *DB) Missing(ctx context.Context, repo string, blobs, manifests []digest.Digest) ([]digest.Digest, error) {
	var missing []digest.Digest
	err := db.view(ctx, func(tx *bolt.Tx) error {
		bb, mb := repoSub(tx, repo, subBlobs), repoSub(tx, repo, subManifests)
		for _, d := range blobs {
			if bb == nil || bb.Get([]byte(d)) == nil {
				missing = append(missing, d)
			}
		}
		for _, d := range manifests {
			if mb == nil || mb.Get([]byte(d)) == nil {
				missing = append(missing, d)
			}
		}
		return nil
	})
	return missing, err
}

// PutManifest records m in repo, points tags at it and files it as a
// referrer of its subject, all in one transaction.
func (db *DB) PutManifest(ctx context.Context, repo string, m Manifest, created bool, tags ...string) error {
	now := time.Now().UTC()
	if m.CreatedAt.IsZero() {
		m.CreatedAt = now
	}
	err := db.update(ctx, func(tx *bolt.Tx) error {
		rb, err := createRepo(tx, repo)
		if err != nil {
			return err
		}
		if err := putJSON(rb.Bucket(subManifests), []byte(m.Digest), m); err != nil {
			return err
		}
		for _, t := range tags {
			if err := rb.Bucket(subTags).Put([]byte(t), []byte(m.Digest)); err != nil {
				return err
			}
		}
		if m.Subject != "" {
			sb, err := rb.Bucket(subReferrers).CreateBucketIfNotExists([]byte(m.Subject))
			if err != nil {
				return err
			}
			if err := sb.Put([]byte(m.Digest), nil); err != nil {
				return err
			}
		}
		return touchOwned(tx, m.Digest, created, now)
	})
	if err != nil {
		return fmt.Errorf("put manifest %s in %s: %w", m.Digest, repo, err)
	}
	return nil
}

// Manifest returns a manifest of repo, or an ErrNotFound-class error.
func (db *DB) Manifest(ctx context.Context, repo string, dgst digest.Digest) (Manifest, error) {
	var m Manifest
	var ok bool
	err := db.view(ctx, func(tx *bolt.Tx) (err error) {
		ok, err = getJSON(repoSub(tx, repo, subManifests), []byte(dgst), &m)
		return err
	})
	if err != nil {
		return m, err
	}
	if !ok {
		return m, fmt.Errorf("manifest %s in %s: %w", dgst, repo, errdefs.ErrNotFound)
	}
	return m, nil
}

// ResolveTag returns the manifest a tag points at.
func (db *DB) ResolveTag(ctx context.Context, repo, tag string) (Manifest, error) {
	var m Manifest
	var ok bool
	err := db.view(ctx, func(tx *bolt.Tx) error {
		tb := repoSub(tx, repo, subTags)
		if tb == nil {
			return nil
		}
		d := tb.Get([]byte(tag))
		if d == nil {
			return nil
		}
		var err error
		ok, err = getJSON(repoSub(tx, repo, subManifests), d, &m)
		return err
	})
	if err != nil {
		return m, err
	}
	if !ok {
		return m, fmt.Errorf("tag %s in %s: %w", tag, repo, errdefs.ErrNotFound)
	}
	return m, nil
}

// DeleteTag removes one tag, leaving its manifest.
func (db *DB) DeleteTag(ctx context.Context, repo, tag string) error {
	return db.update(ctx, func(tx *bolt.Tx) error {
		tb := repoSub(tx, repo, subTags)
		if tb == nil || tb.Get([]byte(tag)) == nil {
			return fmt.Errorf("tag %s in %s: %w", tag, repo, errdefs.ErrNotFound)
		}
		return tb.Delete([]byte(tag))
	})
}

// DeleteManifest removes a manifest from repo together with the tags that
// point at it and its entry in the referrers of its subject.
func (db *DB) DeleteManifest(ctx context.Context, repo string, dgst digest.Digest) error {
	return db.update(ctx, func(tx *bolt.Tx) error {
		rb := repoBucket(tx, repo)
		var m Manifest
		ok, err := getJSON(repoSub(tx, repo, subManifests), []byte(dgst), &m)
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("manifest %s in %s: %w", dgst, repo, errdefs.ErrNotFound)
		}
		if err := rb.Bucket(subManifests).Delete([]byte(dgst)); err != nil {
			return err
		}
		var stale [][]byte
		tb := rb.Bucket(subTags)
		err = tb.ForEach(func(k, v []byte) error {
			if string(v) == string(dgst) {
				stale = append(stale, append([]byte(nil), k...))
			}
			return nil
		})
		if err != nil {
			return err
		}
		for _, k := range stale {
			if err := tb.Delete(k); err != nil {
				return err
			}
		}
		if m.Subject != "" {
			if sb := rb.Bucket(subReferrers).Bucket([]byte(m.Subject)); sb != nil {
				if err := sb.Delete([]byte(dgst)); err != nil {
					return err
				}
			}
		}
		return nil
	})
}

// Tags lists repo's tags in lexical order after last, at most n of them
// (n < 0: all). more reports whether tags remain after the page. A missing
// repository is an ErrNotFound-class error.
func (db *DB) Tags(ctx context.Context, repo, last string, n int) (tags []string, more bool, err error) {
	err = db.view(ctx, func(tx *bolt.Tx) error {
		tb := repoSub(tx, repo, subTags)
		if tb == nil {
			return fmt.Errorf("repository %s: %w", repo, errdefs.ErrNotFound)
		}
		tags, more = page(tb.Cursor(), last, n)
		return nil
	})
	return tags, more, err
}

// Repositories lists repository names in lexical order after last, at most
// n (n < 0: all).
func (db *DB) Repositories(ctx context.Context, last string, n int) (repos []string, more bool, err error) {
	err = db.view(ctx, func(tx *bolt.Tx) error {
		repos, more = page(tx.Bucket(bucketRepos).Cursor(), last, n)
		return nil
	})
	return repos, more, err
}

func page(c *bolt.Cursor, last string, n int) ([]string, bool) {
	out := []string{}
	var k []byte
	if last == "" {
		k, _ = c.First()
	} else {
		k, _ = c.Seek([]byte(last))
		if k != nil && string(k) == last {
			k, _ = c.Next()
		}
	}
	for ; k != nil; k, _ = c.Next() {
		if n >= 0 && len(out) == n {
			return out, true
		}
		out = append(out, string(k))
	}
	return out, false
}

// Referrers returns the manifests in repo whose subject is subject.
func (db *DB) Referrers(ctx context.Context, repo string, subject digest.Digest) ([]Manifest, error) {
	var out []Manifest
	err := db.view(ctx, func(tx *bolt.Tx) error {
		rb := repoBucket(tx, repo)
		if rb == nil {
			return nil
		}
		sb := rb.Bucket(subReferrers).Bucket([]byte(subject))
		if sb == nil {
			return nil
		}
		mb := rb.Bucket(subManifests)
		return sb.ForEach(func(k, _ []byte) error {
			var m Manifest
			ok, err := getJSON(mb, k, &m)
			if err != nil {
				return err
			}
			if ok {
				out = append(out, m)
			}
			return nil
		})
	})
	return out, err
}

// PutUpload records an upload session.
func (db *DB) PutUpload(ctx context.Context, u Upload) error {
	return db.update(ctx, func(tx *bolt.Tx) error {
		return putJSON(tx.Bucket(bucketUploads), []byte(u.ID), u)
	})
}

// Upload returns a session, or an ErrNotFound-class error.
func (db *DB) Upload(ctx context.Context, id string) (Upload, error) {
	var u Upload
	var ok bool
	err := db.view(ctx, func(tx *bolt.Tx) (err error) {
		ok, err = getJSON(tx.Bucket(bucketUploads), []byte(id), &u)
		return err
	})
	if err == nil && !ok {
		err = fmt.Errorf("upload %s: %w", id, errdefs.ErrNotFound)
	}
	return u, err
}

// DeleteUpload forgets a session; a missing one is not an error.
func (db *DB) DeleteUpload(ctx context.Context, id string) error {
	return db.update(ctx, func(tx *bolt.Tx) error {
		return tx.Bucket(bucketUploads).Delete([]byte(id))
	})
}

// Uploads lists all sessions.
func (db *DB) Uploads(ctx context.Context) ([]Upload, error) {
	var out []Upload
	err := db.view(ctx, func(tx *bolt.Tx) error {
		return tx.Bucket(bucketUploads).ForEach(func(k, v []byte) error {
			var u Upload
			if err := json.Unmarshal(v, &u); err != nil {
				return fmt.Errorf("upload %q is corrupt: %w", k, err)
			}
			out = append(out, u)
			return nil
		})
	})
	return out, err
}

// FindBlob returns the size of a blob linked into any repository, or an
// ErrNotFound-class error.
func (db *DB) FindBlob(ctx context.Context, dgst digest.Digest) (int64, error) {
	var size int64
	found := false
	err := db.view(ctx, func(tx *bolt.Tx) error {
		repos := tx.Bucket(bucketRepos)
		return repos.ForEachBucket(func(name []byte) error {
			if found {
				return nil
			}
			var l blobLink
			ok, err := getJSON(repos.Bucket(name).Bucket(subBlobs), []byte(dgst), &l)
			if ok {
				size, found = l.Size, true
			}
			return err
		})
	})
	if err == nil && !found {
		err = fmt.Errorf("blob %s: %w", dgst, errdefs.ErrNotFound)
	}
	return size, err
}

// Own records that the registry created a blob that no repository links
// yet (see Sweep).
func (db *DB) Own(ctx context.Context, dgst digest.Digest) error {
	return db.update(ctx, func(tx *bolt.Tx) error {
		return touchOwned(tx, dgst, true, time.Now().UTC())
	})
}
