package repodb

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/opencontainers/go-digest"
	bolt "go.etcd.io/bbolt"
)

// Sweep is the database half of garbage collection. In one write
// transaction it marks every manifest of every repository and what those
// manifests refer to, picks the blobs the registry owns that are unmarked and
// untouched for longer than grace, forgets them (ownership and the links in
// every repository) and returns them, so the caller deletes their bytes.
//
// Only owned blobs are candidates: a blob that was already in the content
// store when first pushed belongs to whoever put it there (a daemon sharing
// the store), and the registry must never delete it.
//
// The caller must stop new references to the returned blobs from appearing
// until their bytes are gone; the server does that with its GC lock. With
// dryRun the transaction is rolled back.
func (db *DB) Sweep(ctx context.Context, now time.Time, grace time.Duration, dryRun bool) ([]digest.Digest, error) {
	var out []digest.Digest
	errDry := fmt.Errorf("dry run")
	err := db.update(ctx, func(tx *bolt.Tx) error {
		marked, err := mark(tx)
		if err != nil {
			return err
		}
		ob := tx.Bucket(bucketOwned)
		err = ob.ForEach(func(k, v []byte) error {
			d := digest.Digest(k)
			if marked[d] {
				return nil
			}
			var o ownedBlob
			if err := json.Unmarshal(v, &o); err != nil {
				return fmt.Errorf("owned record %q is corrupt: %w", k, err)
			}
			if now.Sub(o.TouchedAt) < grace {
				return nil
			}
			out = append(out, d)
			return nil
		})
		if err != nil {
			return err
		}
		for _, d := range out {
			if err := ob.Delete([]byte(d)); err != nil {
				return err
			}
		}
		err = tx.Bucket(bucketRepos).ForEachBucket(func(name []byte) error {
			bb := tx.Bucket(bucketRepos).Bucket(name).Bucket(subBlobs)
			if bb == nil {
				return nil
			}
			for _, d := range out {
				if err := bb.Delete([]byte(d)); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
		if dryRun {
			return errDry
		}
		return nil
	})
	if err != nil && err != errDry {
		return nil, fmt.Errorf("sweep: %w", err)
	}
	return out, nil
}

// mark returns every manifest digest and every digest a manifest refers to.
func mark(tx *bolt.Tx) (map[digest.Digest]bool, error) {
	marked := map[digest.Digest]bool{}
	repos := tx.Bucket(bucketRepos)
	err := repos.ForEachBucket(func(name []byte) error {
		mb := repos.Bucket(name).Bucket(subManifests)
		if mb == nil {
			return nil
		}
		return mb.ForEach(func(k, v []byte) error {
			var m Manifest
			if err := json.Unmarshal(v, &m); err != nil {
				// A record we cannot read might protect anything: stop
				// rather than delete what it refers to.
				return fmt.Errorf("manifest %q in %s is corrupt: %w", k, name, err)
			}
			marked[m.Digest] = true
			for _, r := range m.Refs {
				marked[r] = true
			}
			return nil
		})
	})
	return marked, err
}
