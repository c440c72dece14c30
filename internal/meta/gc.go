package meta

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/berth-dev/berth/internal/errdefs"
)

// Labels through which records name what they keep alive. The value of a
// ref label is a digest or a snapshot key; several refs on one record use
// suffixes: "berth.gc.ref.content.config", "berth.gc.ref.content.l.0", ...
const (
	// LabelGCRefContent on a record keeps a blob.
	LabelGCRefContent = "berth.gc.ref.content"
	// LabelGCRefSnapshot on a record keeps a snapshot.
	LabelGCRefSnapshot = "berth.gc.ref.snapshot"
	// LabelGCRoot on a snapshot record makes it a root itself (e.g. a
	// container's writable layer); any value counts.
	LabelGCRoot = "berth.gc.root"
)

// Roots is what garbage collection must keep, before following parents and
// manifest children.
type Roots struct {
	Content   []digest.Digest // sorted, unique
	Snapshots []string        // sorted, unique
}

// GCRefs returns the blobs and snapshots labels refer to through
// LabelGCRefContent and LabelGCRefSnapshot. A ref label whose value is not a
// valid digest or is empty is an ErrInvalidArgument-class error: records are
// checked on write, so a bad one can never quietly stop protecting a blob.
func GCRefs(labels map[string]string) (content []digest.Digest, snapshots []string, err error) {
	for k, v := range labels {
		switch {
		case hasLabelPrefix(k, LabelGCRefContent):
			d := digest.Digest(v)
			if err := d.Validate(); err != nil {
				return nil, nil, fmt.Errorf("label %s=%q: %v: %w", k, v, err, errdefs.ErrInvalidArgument)
			}
			content = append(content, d)
		case hasLabelPrefix(k, LabelGCRefSnapshot):
			if v == "" {
				return nil, nil, fmt.Errorf("label %s: empty snapshot key: %w", k, errdefs.ErrInvalidArgument)
			}
			snapshots = append(snapshots, v)
		}
	}
	return content, snapshots, nil
}

// hasLabelPrefix matches the label itself or a dotted suffix of it, so
// "berth.gc.ref.contentfoo" is not mistaken for a ref.
func hasLabelPrefix(key, prefix string) bool {
	return key == prefix || strings.HasPrefix(key, prefix+".")
}

// Roots collects the garbage-collection roots at time now: every image
// target, every ref, every snapshot marked LabelGCRoot, the resources of
// every unexpired lease, and whatever the labels of those records refer to.
// A corrupt record fails the whole query, so GC stops instead of deleting
// what that record protected.
func (t *Tx) Roots(now time.Time) (Roots, error) {
	var r Roots
	addLabels := func(kind, key string, labels map[string]string) error {
		c, s, err := GCRefs(labels)
		if err != nil {
			return corrupt(kind, key, err)
		}
		r.Content = append(r.Content, c...)
		r.Snapshots = append(r.Snapshots, s...)
		return nil
	}

	err := forEachRecord(t, bucketImages, "image", "", func(name string, img Image) error {
		if err := img.Target.Digest.Validate(); err != nil {
			return corrupt("image", name, err)
		}
		r.Content = append(r.Content, img.Target.Digest)
		return addLabels("image", name, img.Labels)
	})
	if err != nil {
		return Roots{}, err
	}
	refs, err := t.ListRefs("")
	if err != nil {
		return Roots{}, err
	}
	for _, ref := range refs {
		r.Content = append(r.Content, ref.Digest)
	}
	err = forEachRecord(t, bucketSnapshots, "snapshot", "", func(key string, s Snapshot) error {
		if _, ok := s.Labels[LabelGCRoot]; !ok {
			return nil
		}
		r.Snapshots = append(r.Snapshots, key)
		return addLabels("snapshot", key, s.Labels)
	})
	if err != nil {
		return Roots{}, err
	}
	err = forEachRecord(t, bucketLeases, "lease", "", func(id string, l Lease) error {
		if l.Expired(now) {
			return nil
		}
		for _, d := range l.Content {
			if err := d.Validate(); err != nil {
				return corrupt("lease", id, err)
			}
		}
		r.Content = append(r.Content, l.Content...)
		r.Snapshots = append(r.Snapshots, l.Snapshots...)
		return addLabels("lease", id, l.Labels)
	})
	if err != nil {
		return Roots{}, err
	}
	slices.Sort(r.Content)
	r.Content = slices.Compact(r.Content)
	slices.Sort(r.Snapshots)
	r.Snapshots = slices.Compact(r.Snapshots)
	return r, nil
}
