package image

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/berth-dev/berth/internal/content"
	"github.com/berth-dev/berth/internal/errdefs"
	"github.com/berth-dev/berth/internal/meta"
	"github.com/berth-dev/berth/internal/snapshot"
)

// unpackPrefix names the active snapshots layers are unpacked into before
// they are committed under their chainID. Unlike other active snapshots
// (containers' writable layers) they are not GC roots by themselves: a live
// unpack's Op lease protects its own, and a crashed one's are garbage.
const unpackPrefix = "unpack-"

// GCStats reports what a collection removed.
type GCStats struct {
	Blobs     int
	Snapshots int
	Bytes     int64 // blob bytes freed (snapshot usage is not counted)
}

// sweepSet restricts a sweep to the resources one Op created.
type sweepSet struct {
	content   []digest.Digest
	snapshots []string
}

// GC removes the blobs and snapshots nothing refers to. It marks from the
// metadata roots (image targets, refs, unexpired leases, labelled records),
// follows index and manifest children, configs' layer chains (chainIDs) and
// snapshot parents, keeps every active or view snapshot (containers'
// layers) except leftovers of crashed unpacks, and sweeps the rest. It
// waits for running Ops (pulls, loads) to end and blocks new ones while it
// runs.
func (s *Service) GC(ctx context.Context) (GCStats, error) {
	return s.collect(ctx, nil)
}

func (s *Service) collect(ctx context.Context, only *sweepSet) (GCStats, error) {
	s.gc.Lock()
	defer s.gc.Unlock()
	var st GCStats
	var roots meta.Roots
	err := s.meta.View(ctx, func(tx *meta.Tx) error {
		var err error
		roots, err = tx.Roots(time.Now())
		return err
	})
	if err != nil {
		return st, fmt.Errorf("image: gc: roots: %w", err)
	}

	// Mark content, breadth first from the roots.
	blobs := map[digest.Digest]bool{}
	snaps := map[string]bool{}
	for _, k := range roots.Snapshots {
		snaps[k] = true
	}
	queue := slices.Clone(roots.Content)
	for len(queue) > 0 {
		d := queue[0]
		queue = queue[1:]
		if blobs[d] {
			continue
		}
		blobs[d] = true
		data, err := s.readIfJSON(ctx, d)
		if err != nil {
			return st, fmt.Errorf("image: gc: mark %s: %w", d, err)
		}
		for _, c := range children(data) {
			queue = append(queue, c.Digest)
		}
		for _, c := range ChainIDs(configDiffIDs(data)) {
			snaps[c.String()] = true
		}
	}

	// Mark snapshots: containers' layers are roots, then parents.
	infos := map[string]snapshot.Info{}
	err = s.snaps.Walk(ctx, func(_ context.Context, i snapshot.Info) error {
		infos[i.Key] = i
		if i.Kind != snapshot.KindCommitted && !strings.HasPrefix(i.Key, unpackPrefix) {
			snaps[i.Key] = true
		}
		return nil
	})
	if err != nil {
		return st, fmt.Errorf("image: gc: %w", err)
	}
	for k := range snaps {
		for p := infos[k].Parent; p != "" && !snaps[p]; p = infos[p].Parent {
			snaps[p] = true
		}
	}

	// Sweep content.
	var dead []content.Info
	err = s.content.Walk(ctx, func(i content.Info) error {
		if !blobs[i.Digest] && (only == nil || slices.Contains(only.content, i.Digest)) {
			dead = append(dead, i)
		}
		return nil
	})
	if err != nil {
		return st, fmt.Errorf("image: gc: %w", err)
	}
	for _, i := range dead {
		if err := s.content.Delete(ctx, i.Digest); err != nil && !errdefs.IsNotFound(err) {
			return st, fmt.Errorf("image: gc: %w", err)
		}
		st.Blobs++
		st.Bytes += i.Size
	}

	// Sweep snapshots, children before parents.
	victims := map[string]bool{}
	for k := range infos {
		if !snaps[k] && (only == nil || slices.Contains(only.snapshots, k)) {
			victims[k] = true
		}
	}
	for len(victims) > 0 {
		progress := false
		for k := range victims {
			if hasChild(infos, k) {
				continue
			}
			if err := s.snaps.Remove(ctx, k); err != nil && !errdefs.IsNotFound(err) {
				return st, fmt.Errorf("image: gc: %w", err)
			}
			delete(victims, k)
			delete(infos, k)
			st.Snapshots++
			progress = true
		}
		if !progress {
			break // the rest have children GC keeps
		}
	}
	if st.Blobs+st.Snapshots > 0 {
		s.log.InfoContext(ctx, "image: garbage collected", "blobs", st.Blobs, "bytes", st.Bytes, "snapshots", st.Snapshots)
	}
	return st, nil
}

func hasChild(infos map[string]snapshot.Info, key string) bool {
	for _, i := range infos {
		if i.Parent == key {
			return true
		}
	}
	return false
}

// readIfJSON returns a blob's bytes when it may be a manifest, index or
// config (small and starting with '{'), nil otherwise or when absent.
func (s *Service) readIfJSON(ctx context.Context, d digest.Digest) ([]byte, error) {
	ra, err := s.content.ReaderAt(ctx, d)
	if errdefs.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer ra.Close()
	if ra.Size() == 0 || ra.Size() > MaxManifestSize {
		return nil, nil
	}
	var first [1]byte
	if _, err := ra.ReadAt(first[:], 0); err != nil || first[0] != '{' {
		return nil, nil
	}
	return content.ReadBlob(ctx, s.content, v1.Descriptor{Digest: d, Size: ra.Size()})
}
