// Package cache is the builder's layer cache. An entry maps a step's key
// (a hash of its parent's key, the instruction with its arguments expanded
// and the content of every file it reads) to the image state the step
// produced: its config and layers.
//
// Entries are leases in berth's metadata database that never expire: the
// lease lists the entry's layer blobs and its top snapshot, so garbage
// collection keeps exactly what the cache can still hand out, and the
// cache survives daemon restarts with no bucket or schema of its own.
// Prune drops the leases; the next GC frees what only they kept.
package cache

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/berth-dev/berth/internal/errdefs"
	"github.com/berth-dev/berth/internal/meta"
)

// leasePrefix names cache leases among the others (pulls' op-*).
const leasePrefix = "buildcache-"

const (
	labelConfig = "berth.build.config"
	labelLayers = "berth.build.layers"
	labelStep   = "berth.build.step"
	labelSize   = "berth.build.size"
)

// Entry is one cached step result.
type Entry struct {
	Key digest.Digest
	// Config is the image config JSON after the step; its digest is the
	// step's image ID.
	Config []byte
	Layers []v1.Descriptor
	// Snapshot is the committed chainID of the top layer ("" for none).
	Snapshot string
	// Step is the instruction, for listings.
	Step string
	// Size is the compressed size of the layer the step added (0: none).
	Size      int64
	CreatedAt time.Time
}

// Cache reads and writes entries in db.
type Cache struct {
	db *meta.DB
}

// New returns the cache kept in db.
func New(db *meta.DB) *Cache { return &Cache{db: db} }

// Get returns the entry of key; ok is false when there is none.
func (c *Cache) Get(ctx context.Context, key digest.Digest) (e Entry, ok bool, err error) {
	err = c.db.View(ctx, func(tx *meta.Tx) error {
		l, err := tx.GetLease(leasePrefix + key.Encoded())
		if errdefs.IsNotFound(err) {
			return nil
		}
		if err != nil {
			return err
		}
		e, err = fromLease(key, l)
		ok = err == nil
		return err
	})
	if err != nil {
		return Entry{}, false, fmt.Errorf("build cache: %w", err)
	}
	return e, ok, nil
}

func fromLease(key digest.Digest, l meta.Lease) (Entry, error) {
	e := Entry{Key: key, Config: []byte(l.Labels[labelConfig]), Step: l.Labels[labelStep], CreatedAt: l.CreatedAt}
	e.Size, _ = strconv.ParseInt(l.Labels[labelSize], 10, 64)
	if len(l.Snapshots) > 0 {
		e.Snapshot = l.Snapshots[0]
	}
	if err := json.Unmarshal([]byte(l.Labels[labelLayers]), &e.Layers); err != nil {
		return e, fmt.Errorf("entry %s: layers: %w", key, err)
	}
	return e, nil
}

// Put records entries in one transaction.
func (c *Cache) Put(ctx context.Context, entries []Entry) error {
	if len(entries) == 0 {
		return nil
	}
	err := c.db.Update(ctx, func(tx *meta.Tx) error {
		for _, e := range entries {
			layers, err := json.Marshal(e.Layers)
			if err != nil {
				return err
			}
			l := meta.Lease{
				ID: leasePrefix + e.Key.Encoded(),
				Labels: map[string]string{
					labelConfig: string(e.Config), labelLayers: string(layers), labelStep: e.Step,
					labelSize: strconv.FormatInt(e.Size, 10),
				},
			}
			for _, d := range e.Layers {
				l.Content = append(l.Content, d.Digest)
			}
			if e.Snapshot != "" {
				l.Snapshots = []string{e.Snapshot}
			}
			if _, err := tx.PutLease(l); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("build cache: record: %w", err)
	}
	return nil
}

// Prune removes the entries keep does not want (every one with a nil
// keep) and returns their keys. The caller runs GC afterwards to free
// what they kept.
func (c *Cache) Prune(ctx context.Context, keep func(Entry) bool) ([]string, error) {
	var keys []string
	err := c.db.Update(ctx, func(tx *meta.Tx) error {
		ls, err := tx.ListLeases()
		if err != nil {
			return err
		}
		for _, l := range ls {
			if enc, ok := strings.CutPrefix(l.ID, leasePrefix); ok {
				if keep != nil {
					e, err := fromLease(digest.NewDigestFromEncoded(digest.SHA256, enc), l)
					if err == nil && keep(e) {
						continue
					}
				}
				if err := tx.DeleteLease(l.ID); err != nil {
					return err
				}
				keys = append(keys, strings.TrimPrefix(l.ID, leasePrefix))
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("build cache: prune: %w", err)
	}
	return keys, nil
}

// List returns every entry, for `system df`-like listings and tests.
func (c *Cache) List(ctx context.Context) ([]Entry, error) {
	var out []Entry
	err := c.db.View(ctx, func(tx *meta.Tx) error {
		ls, err := tx.ListLeases()
		if err != nil {
			return err
		}
		for _, l := range ls {
			if enc, ok := strings.CutPrefix(l.ID, leasePrefix); ok {
				e, err := fromLease(digest.NewDigestFromEncoded(digest.SHA256, enc), l)
				if err != nil {
					return err
				}
				out = append(out, e)
			}
		}
		return nil
	})
	return out, err
}
