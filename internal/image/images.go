package image

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/berth-dev/berth/internal/errdefs"
	"github.com/berth-dev/berth/internal/meta"
)

// Labels on image records. They are GC ref labels, so they also keep the
// platform manifest and the config alive.
const (
	labelManifest = meta.LabelGCRefContent + ".manifest"
	labelConfig   = meta.LabelGCRefContent + ".config"
)

// Image is one image record: a name and what it points at.
type Image struct {
	// Name is the normalised reference (docker.io/library/busybox:latest,
	// localhost:5000/app@sha256:...), or the target digest for an image
	// that has no name (a dangling image).
	Name     string
	Target   v1.Descriptor // manifest or index
	Manifest digest.Digest // the platform manifest used
	ID       digest.Digest // the config digest: docker's image ID
	// CreatedAt is when the record was made (not the image's build date,
	// which is in its config).
	CreatedAt, UpdatedAt time.Time
}

// Reference parses Name; ok is false for a nameless image.
func (i Image) Reference() (Reference, bool) {
	if !strings.Contains(i.Name, "/") {
		return Reference{}, false
	}
	r, err := ParseReference(i.Name)
	return r, err == nil
}

// Dangling reports an image record that carries no tag.
func (i Image) Dangling() bool {
	r, ok := i.Reference()
	return !ok || !r.IsTagged()
}

func fromRecord(r meta.Image) Image {
	return Image{
		Name:      r.Name,
		Target:    r.Target,
		Manifest:  digest.Digest(r.Labels[labelManifest]),
		ID:        digest.Digest(r.Labels[labelConfig]),
		CreatedAt: r.CreatedAt,
		UpdatedAt: r.UpdatedAt,
	}
}

// Create records image name pointing at target, whose manifest (for the
// service's platform, when target is an index) and config must be in the
// content store. An empty name records a nameless image. A name that
// pointed at another image moves; that image, if nothing else names it,
// stays as a dangling image, as in docker. Layers are not unpacked here.
func (s *Service) Create(ctx context.Context, name string, target v1.Descriptor) (Image, error) {
	return s.create(ctx, name, target, s.platform)
}

// CreateForPlatform is Create choosing platform p from an index.
func (s *Service) CreateForPlatform(ctx context.Context, name string, target v1.Descriptor, p Platform) (Image, error) {
	return s.create(ctx, name, target, p)
}

func (s *Service) create(ctx context.Context, name string, target v1.Descriptor, p Platform) (Image, error) {
	key := target.Digest.String()
	if name != "" {
		ref, err := ParseReference(name)
		if err != nil {
			return Image{}, err
		}
		if ref.Digest != "" {
			ref.Tag = ""
		}
		key = ref.String()
	}
	r, err := Resolve(ctx, s.content, target, p)
	if err != nil {
		return Image{}, fmt.Errorf("image %s: %w", key, err)
	}
	rec := meta.Image{Name: key, Target: target, Labels: map[string]string{
		labelManifest: r.Manifest.Digest.String(),
		labelConfig:   r.Config.Digest.String(),
	}}
	s.names.Lock()
	defer s.names.Unlock()
	var out meta.Image
	err = s.meta.Update(ctx, func(tx *meta.Tx) error {
		all, err := tx.ListImages()
		if err != nil {
			return err
		}
		old, err := tx.GetImage(key)
		if err == nil && old.Labels[labelConfig] != rec.Labels[labelConfig] {
			// The name moves: keep the old image as dangling if this was its
			// last name.
			if countID(all, old.Labels[labelConfig]) == 1 && !strings.Contains(key, "@") {
				old.Name = old.Target.Digest.String()
				old.CreatedAt = time.Time{}
				if _, err := tx.PutImage(old); err != nil {
					return err
				}
			}
		} else if err != nil && !errdefs.IsNotFound(err) {
			return err
		}
		// A nameless record of this image is superseded by a name.
		if name != "" {
			for _, o := range all {
				if !strings.Contains(o.Name, "/") && o.Labels[labelConfig] == rec.Labels[labelConfig] {
					if err := tx.DeleteImage(o.Name); err != nil {
						return err
					}
				}
			}
		}
		out, err = tx.PutImage(rec)
		return err
	})
	if err != nil {
		return Image{}, fmt.Errorf("image %s: record: %w", key, err)
	}
	return fromRecord(out), nil
}

func countID(all []meta.Image, id string) int {
	n := 0
	for _, r := range all {
		if r.Labels[labelConfig] == id {
			n++
		}
	}
	return n
}

// SetRepoDigest records that repo served the manifest or index dgst, for
// docker's RepoDigests (repo@sha256:...). It is kept while an image of that
// repository points at dgst.
func (s *Service) SetRepoDigest(ctx context.Context, repo Reference, dgst digest.Digest) error {
	return s.meta.Update(ctx, func(tx *meta.Tx) error {
		return tx.PutRef(repo.Digested(dgst).String(), dgst)
	})
}

// records returns every image record.
func (s *Service) records(ctx context.Context) ([]Image, error) {
	var out []Image
	err := s.meta.View(ctx, func(tx *meta.Tx) error {
		all, err := tx.ListImages()
		for _, r := range all {
			out = append(out, fromRecord(r))
		}
		return err
	})
	return out, err
}

// Get finds an image by name (normalised: "busybox" finds
// docker.io/library/busybox:latest), by repo@digest (of its manifest or
// index), or by ID or a unique prefix of one ("sha256:" optional).
func (s *Service) Get(ctx context.Context, ref string) (Image, error) {
	img, _, err := s.lookup(ctx, ref)
	return img, err
}

// lookup returns the image and whether ref named that very record (rather
// than an ID or a digest of another name).
func (s *Service) lookup(ctx context.Context, ref string) (Image, bool, error) {
	all, err := s.records(ctx)
	if err != nil {
		return Image{}, false, err
	}
	if r, perr := ParseReference(ref); perr == nil {
		key := r.String()
		if r.Digest != "" {
			key = r.Digested(r.Digest).String()
		}
		for _, i := range all {
			if i.Name == key {
				return i, true, nil
			}
		}
		if r.Digest != "" {
			for _, i := range all {
				if n, ok := i.Reference(); ok && n.Name() == r.Name() && (i.Target.Digest == r.Digest || i.Manifest == r.Digest) {
					return i, false, nil
				}
			}
		}
	}
	if id := strings.TrimPrefix(ref, "sha256:"); id != "" && isHexPrefix(id) {
		var found []Image
		for _, i := range all {
			if strings.HasPrefix(i.ID.Encoded(), id) {
				found = append(found, i)
			}
		}
		ids := map[digest.Digest]bool{}
		for _, i := range found {
			ids[i.ID] = true
		}
		switch len(ids) {
		case 1:
			slices.SortFunc(found, func(a, b Image) int { return strings.Compare(a.Name, b.Name) })
			for _, i := range found {
				if !i.Dangling() {
					return i, false, nil
				}
			}
			return found[0], false, nil
		case 0:
		default:
			return Image{}, false, fmt.Errorf("image ID prefix %q is ambiguous (%d images): %w", ref, len(ids), errdefs.ErrInvalidArgument)
		}
	}
	return Image{}, false, fmt.Errorf("no such image: %s: %w", ref, errdefs.ErrNotFound)
}

func isHexPrefix(s string) bool {
	if len(s) > 64 {
		return false
	}
	for _, c := range s {
		if !(c >= '0' && c <= '9') && !(c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// getResolved is Get followed by resolveImage.
func (s *Service) getResolved(ctx context.Context, ref string) (Image, Resolved, error) {
	img, err := s.Get(ctx, ref)
	if err != nil {
		return img, Resolved{}, err
	}
	r, err := s.resolveImage(ctx, img)
	return img, r, err
}

func (s *Service) resolveImage(ctx context.Context, img Image) (Resolved, error) {
	r, err := Resolve(ctx, s.content, img.Target, s.platform)
	if err != nil && img.Manifest != "" && img.Manifest != img.Target.Digest {
		// The record was made for another platform: follow its manifest.
		var idx v1.Index
		if data, rerr := readSmall(ctx, s.content, img.Target); rerr == nil {
			if idx, rerr = ParseIndex(img.Target, data); rerr == nil {
				for _, m := range idx.Manifests {
					if m.Digest == img.Manifest {
						r2, err2 := Resolve(ctx, s.content, m, s.platform)
						r2.Target = img.Target
						return r2, err2
					}
				}
			}
		}
	}
	if err != nil {
		return r, fmt.Errorf("image %s: %w", img.Name, err)
	}
	return r, nil
}

// Summary is one image as `docker images` lists it: all the names of one ID.
type Summary struct {
	ID          digest.Digest
	RepoTags    []string // familiar form
	RepoDigests []string
	Created     time.Time // from the config
	Size        int64     // unpacked size when unpacked, else compressed
	Target      v1.Descriptor
	Layers      int
}

// List returns one Summary per image ID, newest first.
func (s *Service) List(ctx context.Context) ([]Summary, error) {
	all, err := s.records(ctx)
	if err != nil {
		return nil, err
	}
	var ids []digest.Digest
	byID := map[digest.Digest][]Image{}
	for _, i := range all {
		if _, ok := byID[i.ID]; !ok {
			ids = append(ids, i.ID)
		}
		byID[i.ID] = append(byID[i.ID], i)
	}
	var refs []meta.Ref
	if err := s.meta.View(ctx, func(tx *meta.Tx) (err error) { refs, err = tx.ListRefs(""); return }); err != nil {
		return nil, err
	}
	var out []Summary
	for _, id := range ids {
		sum, err := s.summary(ctx, byID[id], refs)
		if err != nil {
			return nil, err
		}
		out = append(out, sum)
	}
	slices.SortStableFunc(out, func(a, b Summary) int { return b.Created.Compare(a.Created) })
	return out, nil
}

func (s *Service) summary(ctx context.Context, recs []Image, refs []meta.Ref) (Summary, error) {
	sum := Summary{ID: recs[0].ID, Target: recs[0].Target}
	targets := map[digest.Digest]bool{}
	for _, i := range recs {
		targets[i.Target.Digest] = true
		if r, ok := i.Reference(); ok {
			if r.IsTagged() {
				sum.RepoTags = append(sum.RepoTags, r.Familiar())
				sum.Target = i.Target
			} else {
				sum.RepoDigests = append(sum.RepoDigests, r.Familiar())
			}
		}
	}
	for _, ref := range refs {
		if !targets[ref.Digest] {
			continue
		}
		r, err := ParseReference(ref.Name)
		if err != nil {
			continue
		}
		for _, i := range recs {
			if n, ok := i.Reference(); ok && n.Name() == r.Name() && !slices.Contains(sum.RepoDigests, r.Familiar()) {
				sum.RepoDigests = append(sum.RepoDigests, r.Familiar())
				break
			}
		}
	}
	slices.Sort(sum.RepoTags)
	slices.Sort(sum.RepoDigests)
	r, err := s.resolveImage(ctx, recs[0])
	if err != nil {
		return sum, err
	}
	if r.Image.Created != nil {
		sum.Created = *r.Image.Created
	}
	sum.Layers = len(r.Layers)
	var unpacked int64
	for _, c := range r.ChainIDs() {
		u, err := s.snaps.Usage(ctx, c.String())
		if err != nil {
			unpacked = -1
			break
		}
		unpacked += u.Size
	}
	if unpacked >= 0 && len(r.Layers) > 0 {
		sum.Size = unpacked
	} else {
		for _, l := range r.Layers {
			sum.Size += l.Size
		}
	}
	return sum, nil
}

// Details is what Inspect returns.
type Details struct {
	Summary
	Manifest v1.Descriptor
	Config   v1.Descriptor
	Image    v1.Image // the config's content
	Layers   []v1.Descriptor
	ChainIDs []digest.Digest
	Unpacked bool
}

// Inspect returns everything known about image ref.
func (s *Service) Inspect(ctx context.Context, ref string) (Details, error) {
	img, err := s.Get(ctx, ref)
	if err != nil {
		return Details{}, err
	}
	all, err := s.records(ctx)
	if err != nil {
		return Details{}, err
	}
	var recs []Image
	for _, i := range all {
		if i.ID == img.ID {
			recs = append(recs, i)
		}
	}
	var refs []meta.Ref
	if err := s.meta.View(ctx, func(tx *meta.Tx) (err error) { refs, err = tx.ListRefs(""); return }); err != nil {
		return Details{}, err
	}
	sum, err := s.summary(ctx, recs, refs)
	if err != nil {
		return Details{}, err
	}
	r, err := s.resolveImage(ctx, img)
	if err != nil {
		return Details{}, err
	}
	d := Details{Summary: sum, Manifest: r.Manifest, Config: r.Config, Image: r.Image, Layers: r.Layers, ChainIDs: r.ChainIDs(), Unpacked: true}
	if n := len(d.ChainIDs); n > 0 {
		d.Unpacked, err = s.HasLayer(ctx, d.ChainIDs[n-1])
	}
	return d, err
}

// Tag gives image src (any form Get accepts) the name dst.
func (s *Service) Tag(ctx context.Context, src, dst string) (Image, error) {
	img, err := s.Get(ctx, src)
	if err != nil {
		return Image{}, err
	}
	ref, err := ParseReference(dst)
	if err != nil {
		return Image{}, err
	}
	if ref.Digest != "" {
		return Image{}, fmt.Errorf("tag %s: a tag cannot name a digest: %w", dst, errdefs.ErrInvalidArgument)
	}
	r, err := s.resolveImage(ctx, img)
	if err != nil {
		return Image{}, err
	}
	// Tag the platform manifest the source uses, so the new name keeps
	// meaning that image whatever the index holds.
	return s.create(ctx, ref.String(), img.Target, platformOf(r, s.platform))
}

func platformOf(r Resolved, def Platform) Platform {
	if r.Image.OS != "" && r.Image.Architecture != "" {
		return Platform{OS: r.Image.OS, Architecture: r.Image.Architecture, Variant: r.Image.Variant}
	}
	return def
}

// RemoveOptions tune Remove.
type RemoveOptions struct {
	// Force removes an image referenced by several repositories, and
	// untags an image used by containers (which then stays, dangling).
	Force bool
	// NoPrune skips the garbage collection that frees the image's blobs
	// and layers.
	NoPrune bool
}

// RemoveResult is one line of `docker rmi` output: either Untagged or Deleted.
type RemoveResult struct {
	Untagged string        `json:"Untagged,omitempty"`
	Deleted  digest.Digest `json:"Deleted,omitempty"`
}

// Remove removes the name ref, and the image itself when that was its last
// name; given an ID, it removes the image and all its names. An image a
// container uses (UsageChecker) is not deleted: without Force that is an
// ErrConflict-class error, with Force its names go and it stays dangling.
func (s *Service) Remove(ctx context.Context, ref string, opts RemoveOptions) ([]RemoveResult, error) {
	out, err := s.remove(ctx, ref, opts)
	if err != nil {
		return out, err
	}
	if !opts.NoPrune && len(out) > 0 && out[len(out)-1].Deleted != "" {
		if _, err := s.GC(ctx); err != nil {
			return out, err
		}
	}
	return out, nil
}

func (s *Service) remove(ctx context.Context, ref string, opts RemoveOptions) ([]RemoveResult, error) {
	s.names.Lock()
	defer s.names.Unlock()
	img, byName, err := s.lookup(ctx, ref)
	if err != nil {
		return nil, err
	}
	all, err := s.records(ctx)
	if err != nil {
		return nil, err
	}
	var same []Image
	for _, i := range all {
		if i.ID == img.ID {
			same = append(same, i)
		}
	}
	var users []string
	if s.inUse != nil {
		if users, err = s.inUse.ImageUsers(ctx, img.ID.String()); err != nil {
			return nil, fmt.Errorf("image %s: check containers: %w", ref, err)
		}
	}
	victims := same
	if byName && img.Name != img.Target.Digest.String() {
		victims = []Image{img}
		if len(same) > 1 {
			return s.deleteRecords(ctx, victims, nil, false)
		}
	} else if !opts.Force {
		repos := map[string]bool{}
		for _, i := range same {
			if r, ok := i.Reference(); ok {
				repos[r.Name()] = true
			}
		}
		if len(repos) > 1 {
			return nil, fmt.Errorf("unable to delete %s (must be forced): image is referenced in multiple repositories: %w",
				shortID(img.ID), errdefs.ErrConflict)
		}
	}
	if len(users) > 0 {
		if !opts.Force {
			return nil, fmt.Errorf("unable to remove %s (must force): image %s is used by container(s) %s: %w",
				ref, shortID(img.ID), strings.Join(users, ", "), errdefs.ErrConflict)
		}
		// Untag, keep the image for its containers.
		return s.deleteRecords(ctx, victims, &img, false)
	}
	return s.deleteRecords(ctx, victims, nil, true)
}

// deleteRecords deletes image records; keep, if set, is re-recorded
// nameless; deleteImage also drops the repo digests of the image.
func (s *Service) deleteRecords(ctx context.Context, victims []Image, keep *Image, deleteImage bool) ([]RemoveResult, error) {
	var out []RemoveResult
	err := s.meta.Update(ctx, func(tx *meta.Tx) error {
		out = out[:0]
		for _, v := range victims {
			rec, err := tx.GetImage(v.Name)
			if err != nil {
				return err
			}
			if err := tx.DeleteImage(v.Name); err != nil {
				return err
			}
			if r, ok := v.Reference(); ok {
				out = append(out, RemoveResult{Untagged: r.Familiar()})
			}
			if keep != nil && v.Name == victims[len(victims)-1].Name {
				rec.Name = rec.Target.Digest.String()
				if _, err := tx.PutImage(rec); err != nil {
					return err
				}
			}
		}
		if !deleteImage {
			if keep == nil {
				return untagRepoDigests(tx, victims, &out)
			}
			return nil
		}
		if err := untagRepoDigests(tx, victims, &out); err != nil {
			return err
		}
		refs, err := tx.ListRefs("")
		if err != nil {
			return err
		}
		targets := map[digest.Digest]bool{}
		for _, v := range victims {
			targets[v.Target.Digest] = true
		}
		// Targets still named by other images keep their repo digests.
		rest, err := tx.ListImages()
		if err != nil {
			return err
		}
		for _, r := range rest {
			delete(targets, r.Target.Digest)
		}
		for _, r := range refs {
			if targets[r.Digest] {
				if err := tx.DeleteRef(r.Name); err != nil {
					return err
				}
			}
		}
		out = append(out, RemoveResult{Deleted: victims[0].ID})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("image: remove: %w", err)
	}
	return out, nil
}

// untagRepoDigests drops, as docker's rmi does, the repo digests
// (repo@sha256:…) of the untagged images' repositories once no tag of
// that repository names the image any more, and reports each as untagged.
func untagRepoDigests(tx *meta.Tx, untagged []Image, out *[]RemoveResult) error {
	rest, err := tx.ListImages()
	if err != nil {
		return err
	}
	refs, err := tx.ListRefs("")
	if err != nil {
		return err
	}
	for _, v := range untagged {
		gone, ok := v.Reference()
		if !ok {
			continue
		}
		tagged := slices.ContainsFunc(rest, func(r meta.Image) bool {
			other, ok := fromRecord(r).Reference()
			return ok && r.Target.Digest == v.Target.Digest && other.Name() == gone.Name()
		})
		if tagged {
			continue
		}
		for _, ref := range refs {
			r, err := ParseReference(ref.Name)
			if err != nil || ref.Digest != v.Target.Digest || r.IsTagged() || r.Name() != gone.Name() {
				continue
			}
			if err := tx.DeleteRef(ref.Name); err != nil {
				return err
			}
			*out = append(*out, RemoveResult{Untagged: r.Familiar()})
		}
	}
	return nil
}

func shortID(d digest.Digest) string {
	e := d.Encoded()
	if len(e) > 12 {
		e = e[:12]
	}
	return e
}

// PruneOptions tune Prune.
type PruneOptions struct {
	// All removes every image no container uses, not only dangling ones.
	All bool
}

// PruneReport is what Prune removed.
type PruneReport struct {
	Removed []RemoveResult
	GC      GCStats
}

// Prune removes dangling images (those without a tag), or with All every
// image no container uses, then collects garbage.
func (s *Service) Prune(ctx context.Context, opts PruneOptions) (PruneReport, error) {
	var rep PruneReport
	sums, err := s.List(ctx)
	if err != nil {
		return rep, err
	}
	for _, sum := range sums {
		if len(sum.RepoTags) > 0 && !opts.All {
			continue
		}
		if s.inUse != nil {
			users, err := s.inUse.ImageUsers(ctx, sum.ID.String())
			if err != nil {
				return rep, err
			}
			if len(users) > 0 {
				continue
			}
		}
		res, err := s.remove(ctx, sum.ID.String(), RemoveOptions{Force: true, NoPrune: true})
		if err != nil && !errdefs.IsNotFound(err) {
			return rep, err
		}
		rep.Removed = append(rep.Removed, res...)
	}
	rep.GC, err = s.GC(ctx)
	return rep, err
}
