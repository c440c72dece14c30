package image

import (
	"context"
	"fmt"
	"io"
	"slices"
	"time"

	dockerspec "github.com/moby/docker-image-spec/specs-go/v1"
	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
)

// AppendLayer makes an image of base's layers (none when base is "") plus
// the uncompressed layer tar read from layer, and records it as name (""
// for none). full is the new image's config (with docker's extensions,
// such as a healthcheck): its RootFS and History are
// base's with the new layer's added (hist describes it); created and the
// platform default to now and base's. The manifest keeps base's flavour
// (Docker schema2 or OCI) so registries see one consistent set of media
// types. This is docker commit's image; the new layer is unpacked when the
// image is first run.
func (s *Service) AppendLayer(ctx context.Context, name, base string, full dockerspec.DockerOCIImage, hist v1.History, layer io.Reader) (img Image, err error) {
	cfg := &full.Image
	var r Resolved
	if base != "" {
		if _, r, err = s.getResolved(ctx, base); err != nil {
			return Image{}, err
		}
	}
	op, err := s.Begin(ctx, "commit "+name)
	if err != nil {
		return Image{}, err
	}
	defer func() { op.End(ctx, err) }()
	// The base's blobs are the new image's too: keep them from a GC that
	// runs before the new image is recorded.
	blobs := []digest.Digest{r.Manifest.Digest, r.Config.Digest}
	for _, l := range r.Layers {
		blobs = append(blobs, l.Digest)
	}
	if base != "" {
		if err := op.Add(ctx, blobs, nil); err != nil {
			return Image{}, err
		}
	}
	docker := r.Manifest.MediaType == MediaTypeDockerManifest
	desc, diffID, err := s.compressLayer(ctx, op, layer)
	if err != nil {
		return Image{}, fmt.Errorf("image: commit layer: %w", err)
	}
	if docker {
		desc.MediaType = MediaTypeDockerLayer
	}
	cfg.RootFS = v1.RootFS{Type: "layers", DiffIDs: append(slices.Clone(r.Image.RootFS.DiffIDs), diffID)}
	if cfg.Created == nil {
		now := time.Now().UTC()
		cfg.Created = &now
	}
	if hist.Created == nil {
		hist.Created = cfg.Created
	}
	cfg.History = append(PadHistory(slices.Clone(r.Image.History), len(r.Layers), r.Image.Created), hist)
	if cfg.OS == "" {
		p := s.platform
		if base != "" {
			p = Platform{OS: r.Image.OS, Architecture: r.Image.Architecture, Variant: r.Image.Variant}
		}
		cfg.OS, cfg.Architecture, cfg.Variant = p.OS, p.Architecture, p.Variant
	}
	m := v1.Manifest{MediaType: v1.MediaTypeImageManifest, Layers: append(slices.Clone(r.Layers), desc)}
	m.SchemaVersion = 2
	configType := v1.MediaTypeImageConfig
	if docker {
		m.MediaType, configType = MediaTypeDockerManifest, MediaTypeDockerConfig
	}
	// docker keeps a commit's message in the config too ("comment"),
	// where image inspect reads it.
	withComment := struct {
		dockerspec.DockerOCIImage
		Comment string `json:"comment,omitempty"`
	}{full, hist.Comment}
	if m.Config, _, err = s.WriteJSON(ctx, op, configType, withComment); err != nil {
		return Image{}, err
	}
	target, _, err := s.WriteJSON(ctx, op, m.MediaType, m)
	if err != nil {
		return Image{}, err
	}
	return s.Create(ctx, name, target)
}

// PadHistory returns h with placeholder entries in front when it has
// fewer non-empty entries than the image has layers (an imported or
// hand-made image): history and layers stay in step once layers are
// added on top (docker history, podman and others pair them in order).
func PadHistory(h []v1.History, layers int, created *time.Time) []v1.History {
	nonEmpty := 0
	for _, e := range h {
		if !e.EmptyLayer {
			nonEmpty++
		}
	}
	missing := layers - nonEmpty
	if missing <= 0 {
		return h
	}
	pad := make([]v1.History, missing, missing+len(h))
	for i := range pad {
		pad[i] = v1.History{Created: created, Comment: "base layer without history"}
	}
	return append(pad, h...)
}
