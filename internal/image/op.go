package image

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/berth-dev/berth/internal/meta"
)

// DefaultOpExpiry is how long the lease of an interrupted operation keeps
// what it fetched: the same day as the content store's partial ingests, so
// a retried pull finds both its finished layers and its partial one.
const DefaultOpExpiry = 24 * time.Hour

// Op is one operation that creates content and snapshots before an image
// record refers to them: a pull, a load, an import. Its lease protects them
// from garbage collection; Add must be called before a resource is
// created, so there is never a moment when it exists unprotected.
//
// End an Op with exactly one of Done (success: the image record now keeps
// what is needed), Keep (interrupted: keep it all until the lease expires,
// for a retry to resume) or Abort (bad input: remove what it created that
// nothing else uses, leaving the store as it was).
type Op struct {
	s    *Service
	id   string
	mu   sync.Mutex
	c    []digest.Digest
	sn   []string
	once sync.Once
}

// Begin starts an Op named for logs and lease listings by what (e.g.
// "pull docker.io/library/busybox:latest"). It holds off garbage collection
// until the Op ends.
func (s *Service) Begin(ctx context.Context, what string) (*Op, error) {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return nil, err
	}
	op := &Op{s: s, id: "op-" + hex.EncodeToString(b[:])}
	s.gc.RLock()
	err := s.meta.Update(ctx, func(tx *meta.Tx) error {
		_, err := tx.PutLease(meta.Lease{
			ID:        op.id,
			ExpiresAt: time.Now().Add(DefaultOpExpiry),
			Labels:    map[string]string{"berth.op": what},
		})
		return err
	})
	if err != nil {
		s.gc.RUnlock()
		return nil, fmt.Errorf("image: begin %s: %w", what, err)
	}
	return op, nil
}

// Add protects blobs and snapshot keys. Adding one twice is harmless.
func (o *Op) Add(ctx context.Context, blobs []digest.Digest, snapshots []string) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	n0, s0 := len(o.c), len(o.sn)
	for _, d := range blobs {
		if !slices.Contains(o.c, d) {
			o.c = append(o.c, d)
		}
	}
	for _, k := range snapshots {
		if !slices.Contains(o.sn, k) {
			o.sn = append(o.sn, k)
		}
	}
	if len(o.c) == n0 && len(o.sn) == s0 {
		return nil
	}
	return o.s.meta.Update(ctx, func(tx *meta.Tx) error {
		l, err := tx.GetLease(o.id)
		if err != nil {
			return fmt.Errorf("image: op lease: %w", err)
		}
		l.Content, l.Snapshots = slices.Clone(o.c), slices.Clone(o.sn)
		_, err = tx.PutLease(l)
		return err
	})
}

// Done ends a successful Op: its lease is dropped.
func (o *Op) Done(ctx context.Context) error {
	var err error
	o.once.Do(func() {
		defer o.s.gc.RUnlock()
		err = o.deleteLease(ctx)
	})
	return err
}

// Keep ends an interrupted Op, leaving its lease to expire on its own (an
// Op that protected nothing drops it at once).
func (o *Op) Keep(ctx context.Context) {
	o.once.Do(func() {
		defer o.s.gc.RUnlock()
		o.mu.Lock()
		empty := len(o.c) == 0 && len(o.sn) == 0
		o.mu.Unlock()
		if empty {
			o.deleteLease(ctx)
		}
	})
}

// End ends op according to err: Done on success, Keep when the failure may
// be transient (see Transient) so a retry resumes, Abort on bad input.
func (o *Op) End(ctx context.Context, err error) {
	switch {
	case err == nil:
		if derr := o.Done(ctx); derr != nil {
			o.s.log.WarnContext(ctx, "image: end op", "err", derr)
		}
	case Transient(err):
		o.Keep(ctx)
	default:
		if aerr := o.Abort(ctx); aerr != nil {
			o.s.log.WarnContext(ctx, "image: clean up failed op", "err", aerr)
		}
	}
}

// Abort ends a failed Op: its lease is dropped and whatever it protected
// that nothing else refers to is removed. It works on a fresh context so a
// cancelled operation still cleans up.
func (o *Op) Abort(ctx context.Context) error {
	var err error
	o.once.Do(func() {
		o.s.gc.RUnlock()
		ctx = context.WithoutCancel(ctx)
		if err = o.deleteLease(ctx); err != nil {
			return
		}
		o.mu.Lock()
		c, sn := slices.Clone(o.c), slices.Clone(o.sn)
		o.mu.Unlock()
		_, err = o.s.collect(ctx, &sweepSet{content: c, snapshots: sn})
	})
	return err
}

func (o *Op) deleteLease(ctx context.Context) error {
	return o.s.meta.Update(context.WithoutCancel(ctx), func(tx *meta.Tx) error {
		return tx.DeleteLease(o.id)
	})
}
