package snapshot

import (
	"context"
	"time"
)

// Record is what the snapshotter keeps about one snapshot, under its key.
type Record struct {
	ID      uint64    `json:"id"` // names the directory <root>/<ID>
	Kind    Kind      `json:"kind"`
	Parent  string    `json:"parent,omitempty"`
	Created time.Time `json:"created"`
	// Size and Inodes are measured once at commit (committed snapshots
	// never change).
	Size   int64 `json:"size,omitempty"`
	Inodes int64 `json:"inodes,omitempty"`
}

// Store keeps snapshot records. It is the only thing the snapshotter needs
// from a database, so it can live in its own bbolt file (NewBoltStore) or,
// later, in berth's shared metadata database.
type Store interface {
	// View runs fn in a read-only transaction.
	View(ctx context.Context, fn func(Tx) error) error
	// Update runs fn in a read-write transaction, committed when fn
	// returns nil and durable when Update returns nil.
	Update(ctx context.Context, fn func(Tx) error) error
	Close() error
}

// Tx is one transaction of a Store.
type Tx interface {
	// Get returns the record of key or an error wrapping errdefs.ErrNotFound.
	Get(key string) (Record, error)
	Put(key string, r Record) error
	// Delete removes key; a missing key is not an error.
	Delete(key string) error
	// Walk calls fn for every record, in key order.
	Walk(fn func(key string, r Record) error) error
	// NextID returns a new id, never returned before by a committed
	// transaction. (Ids of a rolled-back transaction may come again.)
	NextID() (uint64, error)
}
