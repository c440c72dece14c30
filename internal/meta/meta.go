// Package meta is berth's metadata database: one bbolt file at
// <root>/meta.db holding image records, refs, snapshot records and leases,
// with a schema version so a newer layout is never misread by an older berth.
//
// All access goes through View and Update, whose Tx offers typed accessors;
// values are JSON so records can grow fields without a migration.
package meta

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"

	"github.com/berth-dev/berth/internal/errdefs"
)

// SchemaVersion is the layout this berth writes. Raise it together with a
// new entry in migrations.
const SchemaVersion = 1

// DefaultLockTimeout bounds the wait for the file lock: long enough to ride
// out a restarting daemon releasing it, short enough that a second daemon on
// the same root fails at once instead of hanging.
const DefaultLockTimeout = time.Second

var (
	bucketSchema    = []byte("schema")
	keySchema       = []byte("version")
	bucketImages    = []byte("images")
	bucketRefs      = []byte("refs")
	bucketSnapshots = []byte("snapshots")
	bucketLeases    = []byte("leases")
)

// migration upgrades the database by one version, inside the same write
// transaction that records the new version, so an upgrade is all or nothing.
type migration func(tx *bolt.Tx) error

// migrations[i] upgrades version i to i+1; version 0 is an empty file.
var migrations = []migration{
	func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketImages, bucketRefs, bucketSnapshots, bucketLeases} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return fmt.Errorf("create bucket %s: %w", b, err)
			}
		}
		return nil
	},
}

// Options tune Open. The zero value is usable.
type Options struct {
	// LockTimeout is how long Open waits for another process to release the
	// database; zero means DefaultLockTimeout.
	LockTimeout time.Duration
}

// DB is an open metadata database. It is safe for concurrent use: bbolt
// runs many View transactions at once and one Update at a time.
type DB struct {
	bolt *bolt.DB
	path string
}

// Open opens or creates the database at path and brings its schema up to
// SchemaVersion. It fails with an ErrUnavailable-class error when another
// process holds the database, and with an ErrFailedPrecondition-class error
// when the file was written by a newer berth.
func Open(ctx context.Context, path string, opts Options) (*DB, error) {
	return open(ctx, path, opts, migrations)
}

func open(ctx context.Context, path string, opts Options, migs []migration) (*DB, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if opts.LockTimeout <= 0 {
		opts.LockTimeout = DefaultLockTimeout
	}
	b, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: opts.LockTimeout})
	if errors.Is(err, bolterrors.ErrTimeout) {
		return nil, fmt.Errorf("open %s: database is locked by another berth process (waited %s): %w",
			path, opts.LockTimeout, errdefs.ErrUnavailable)
	}
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	db := &DB{bolt: b, path: path}
	if err := db.migrate(migs); err != nil {
		b.Close()
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	return db, nil
}

// migrate reads the version in a read transaction first, so opening an
// up-to-date database never pays for a write and its fsync.
func (db *DB) migrate(migs []migration) error {
	var cur int
	err := db.bolt.View(func(tx *bolt.Tx) (err error) {
		cur, err = schemaVersion(tx)
		return err
	})
	if err != nil {
		return err
	}
	want := len(migs)
	if cur > want {
		return fmt.Errorf("schema version %d is newer than this berth supports (%d); upgrade berth or use another root: %w",
			cur, want, errdefs.ErrFailedPrecondition)
	}
	if cur == want {
		return nil
	}
	return db.bolt.Update(func(tx *bolt.Tx) error {
		for v := cur; v < want; v++ {
			if err := migs[v](tx); err != nil {
				return fmt.Errorf("migrate schema %d to %d: %w", v, v+1, err)
			}
		}
		b, err := tx.CreateBucketIfNotExists(bucketSchema)
		if err != nil {
			return err
		}
		return b.Put(keySchema, []byte(strconv.Itoa(want)))
	})
}

func schemaVersion(tx *bolt.Tx) (int, error) {
	b := tx.Bucket(bucketSchema)
	if b == nil {
		return 0, nil
	}
	raw := b.Get(keySchema)
	if raw == nil {
		return 0, nil
	}
	v, err := strconv.Atoi(string(raw))
	if err != nil || v < 0 {
		return 0, fmt.Errorf("schema version %q is unreadable: %w", raw, errdefs.ErrFailedPrecondition)
	}
	return v, nil
}

// Path returns the database file.
func (db *DB) Path() string { return db.path }

// Close releases the database and its file lock.
func (db *DB) Close() error {
	if err := db.bolt.Close(); err != nil {
		return fmt.Errorf("close %s: %w", db.path, err)
	}
	return nil
}

// View runs fn in a read-only transaction. Records read inside stay valid
// after it returns; the Tx does not.
func (db *DB) View(ctx context.Context, fn func(*Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return db.bolt.View(func(tx *bolt.Tx) error { return fn(&Tx{tx: tx}) })
}

// Update runs fn in a read-write transaction, committed when fn returns nil
// and rolled back otherwise.
func (db *DB) Update(ctx context.Context, fn func(*Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return db.bolt.Update(func(tx *bolt.Tx) error { return fn(&Tx{tx: tx}) })
}

// Tx is one transaction; see View and Update.
type Tx struct {
	tx *bolt.Tx
}
