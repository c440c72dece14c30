package snapshot

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"

	"github.com/berth-dev/berth/internal/errdefs"
)

// bucketV1 holds the records, JSON-encoded, keyed by snapshot key. The
// version is in the name: a new layout gets a new bucket and a migration.
var bucketV1 = []byte("snapshots.v1")

// BoltStore is a Store in a bbolt file of its own.
type BoltStore struct {
	db *bolt.DB
}

// NewBoltStore opens (creating it if needed) the bbolt file at path. It
// fails with ErrUnavailable when another process holds the file.
func NewBoltStore(path string) (*BoltStore, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if errors.Is(err, bolterrors.ErrTimeout) {
		return nil, fmt.Errorf("snapshot: open %s: in use by another process: %w", path, errdefs.ErrUnavailable)
	}
	if err != nil {
		return nil, fmt.Errorf("snapshot: open %s: %w", path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		_, err := tx.CreateBucketIfNotExists(bucketV1)
		return err
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("snapshot: init %s: %w", path, err)
	}
	return &BoltStore{db: db}, nil
}

// View implements Store.
func (s *BoltStore) View(ctx context.Context, fn func(Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return s.db.View(func(tx *bolt.Tx) error { return fn(boltTx{tx.Bucket(bucketV1)}) })
}

// Update implements Store.
func (s *BoltStore) Update(ctx context.Context, fn func(Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return s.db.Update(func(tx *bolt.Tx) error { return fn(boltTx{tx.Bucket(bucketV1)}) })
}

// Close implements Store.
func (s *BoltStore) Close() error { return s.db.Close() }

type boltTx struct{ b *bolt.Bucket }

func (t boltTx) Get(key string) (Record, error) {
	var r Record
	v := t.b.Get([]byte(key))
	if v == nil {
		return r, fmt.Errorf("snapshot %q: %w", key, errdefs.ErrNotFound)
	}
	if err := json.Unmarshal(v, &r); err != nil {
		return r, fmt.Errorf("snapshot %q: decode record: %w", key, err)
	}
	return r, nil
}

func (t boltTx) Put(key string, r Record) error {
	v, err := json.Marshal(r)
	if err != nil {
		return err
	}
	return t.b.Put([]byte(key), v)
}

func (t boltTx) Delete(key string) error { return t.b.Delete([]byte(key)) }

func (t boltTx) Walk(fn func(string, Record) error) error {
	return t.b.ForEach(func(k, v []byte) error {
		var r Record
		if err := json.Unmarshal(v, &r); err != nil {
			return fmt.Errorf("snapshot %q: decode record: %w", k, err)
		}
		return fn(string(k), r)
	})
}

func (t boltTx) NextID() (uint64, error) { return t.b.NextSequence() }
