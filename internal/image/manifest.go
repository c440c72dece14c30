package image

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/berth-dev/berth/internal/content"
	"github.com/berth-dev/berth/internal/errdefs"
)

// MaxManifestSize bounds manifests, indexes and configs read into memory;
// registries refuse manifests over 4 MiB, configs of real images are far
// smaller than this.
const MaxManifestSize = 8 << 20

// Blob reads a small JSON blob (manifest, index, config) and checks it
// against desc's size. The content store verified its digest on ingest.
func readSmall(ctx context.Context, p content.Provider, desc v1.Descriptor) ([]byte, error) {
	if desc.Size > MaxManifestSize {
		return nil, fmt.Errorf("blob %s: %d bytes is too large for a %s: %w", desc.Digest, desc.Size, desc.MediaType, errdefs.ErrInvalidArgument)
	}
	b, err := content.ReadBlob(ctx, p, desc)
	if err != nil {
		return nil, err
	}
	if len(b) > MaxManifestSize {
		return nil, fmt.Errorf("blob %s: %d bytes is too large for a %s: %w", desc.Digest, len(b), desc.MediaType, errdefs.ErrInvalidArgument)
	}
	return b, nil
}

// sniffed holds the fields every manifest-like document may carry.
type sniffed struct {
	SchemaVersion int             `json:"schemaVersion"`
	MediaType     string          `json:"mediaType"`
	Config        *v1.Descriptor  `json:"config"`
	Layers        []v1.Descriptor `json:"layers"`
	Manifests     []v1.Descriptor `json:"manifests"`
	FSLayers      json.RawMessage `json:"fsLayers"`
}

// DetectMediaType guesses the media type of a manifest whose source did not
// say (a registry's Content-Type, an OCI layout's index entry).
func DetectMediaType(data []byte) (string, error) {
	var s sniffed
	if err := json.Unmarshal(data, &s); err != nil {
		return "", fmt.Errorf("manifest is not JSON: %v: %w", err, errdefs.ErrInvalidArgument)
	}
	switch {
	case s.MediaType != "":
		return s.MediaType, nil
	case s.FSLayers != nil:
		return mediaTypeDockerSchema1, nil
	case s.Manifests != nil:
		return v1.MediaTypeImageIndex, nil
	case s.Config != nil:
		return v1.MediaTypeImageManifest, nil
	}
	return "", fmt.Errorf("document is neither a manifest nor an index: %w", errdefs.ErrInvalidArgument)
}

// ParseManifest decodes an image manifest (OCI or Docker schema2) that desc
// describes and checks its shape: a config and layers of known media types.
func ParseManifest(desc v1.Descriptor, data []byte) (v1.Manifest, error) {
	var m v1.Manifest
	if !IsManifest(desc.MediaType) {
		if err := checkKnown(desc); err != nil {
			return m, err
		}
		return m, fmt.Errorf("blob %s is a %s, not a manifest: %w", desc.Digest, desc.MediaType, errdefs.ErrInvalidArgument)
	}
	if err := json.Unmarshal(data, &m); err != nil {
		return m, fmt.Errorf("manifest %s: %v: %w", desc.Digest, err, errdefs.ErrInvalidArgument)
	}
	if err := checkInnerMediaType(desc, m.MediaType); err != nil {
		return m, err
	}
	if m.SchemaVersion != 2 {
		return m, fmt.Errorf("manifest %s: schemaVersion %d, want 2: %w", desc.Digest, m.SchemaVersion, errdefs.ErrInvalidArgument)
	}
	if err := m.Config.Digest.Validate(); err != nil {
		return m, fmt.Errorf("manifest %s: config digest: %v: %w", desc.Digest, err, errdefs.ErrInvalidArgument)
	}
	if !IsConfig(m.Config.MediaType) {
		return m, fmt.Errorf("manifest %s: config has media type %q, which is not an image config (an artifact, not an image?): %w",
			desc.Digest, m.Config.MediaType, errdefs.ErrInvalidArgument)
	}
	for i, l := range m.Layers {
		if err := l.Digest.Validate(); err != nil {
			return m, fmt.Errorf("manifest %s: layer %d digest: %v: %w", desc.Digest, i, err, errdefs.ErrInvalidArgument)
		}
		if !IsLayer(l.MediaType) {
			return m, fmt.Errorf("manifest %s: layer %d (%s) has unknown media type %q: %w",
				desc.Digest, i, l.Digest, l.MediaType, errdefs.ErrInvalidArgument)
		}
		if l.Size < 0 {
			return m, fmt.Errorf("manifest %s: layer %d has negative size: %w", desc.Digest, i, errdefs.ErrInvalidArgument)
		}
	}
	return m, nil
}

// ParseIndex decodes an OCI index or Docker manifest list.
func ParseIndex(desc v1.Descriptor, data []byte) (v1.Index, error) {
	var idx v1.Index
	if !IsIndex(desc.MediaType) {
		return idx, fmt.Errorf("blob %s is a %s, not an index: %w", desc.Digest, desc.MediaType, errdefs.ErrInvalidArgument)
	}
	if err := json.Unmarshal(data, &idx); err != nil {
		return idx, fmt.Errorf("index %s: %v: %w", desc.Digest, err, errdefs.ErrInvalidArgument)
	}
	if err := checkInnerMediaType(desc, idx.MediaType); err != nil {
		return idx, err
	}
	for i, m := range idx.Manifests {
		if err := m.Digest.Validate(); err != nil {
			return idx, fmt.Errorf("index %s: entry %d digest: %v: %w", desc.Digest, i, err, errdefs.ErrInvalidArgument)
		}
	}
	return idx, nil
}

// checkInnerMediaType refuses a document whose own mediaType contradicts
// the descriptor it was fetched by: the digest covers the bytes, and a
// manifest read as an index (or the reverse) would mean two things.
func checkInnerMediaType(desc v1.Descriptor, inner string) error {
	if inner != "" && inner != desc.MediaType {
		return fmt.Errorf("blob %s: descriptor says %s but the document says %s: %w",
			desc.Digest, desc.MediaType, inner, errdefs.ErrInvalidArgument)
	}
	return nil
}

// SelectPlatform picks the manifest for want from an index: the first
// entry whose platform matches (variant-less entries match any variant),
// preferring an exact variant match. Attestation manifests ("unknown/unknown")
// never match.
func SelectPlatform(idx v1.Index, want Platform) (v1.Descriptor, error) {
	var best *v1.Descriptor
	var have []string
	for i := range idx.Manifests {
		d := &idx.Manifests[i]
		if !IsManifest(d.MediaType) && !IsIndex(d.MediaType) {
			continue
		}
		p := Platform{OS: "linux", Architecture: DefaultPlatform().Architecture}
		if d.Platform != nil {
			p = *d.Platform
		}
		have = append(have, FormatPlatform(p))
		if !platformMatch(want, p) {
			continue
		}
		if normalizePlatform(p).Variant == normalizePlatform(want).Variant {
			return *d, nil
		}
		if best == nil {
			best = d
		}
	}
	if best != nil {
		return *best, nil
	}
	return v1.Descriptor{}, fmt.Errorf("no manifest for platform %s (the image has %s): %w",
		FormatPlatform(want), strings.Join(have, ", "), errdefs.ErrNotFound)
}

// ParseConfig decodes an image config and checks its root filesystem.
func ParseConfig(desc v1.Descriptor, data []byte) (v1.Image, error) {
	var c v1.Image
	if err := json.Unmarshal(data, &c); err != nil {
		return c, fmt.Errorf("config %s: %v: %w", desc.Digest, err, errdefs.ErrInvalidArgument)
	}
	if c.RootFS.Type != "layers" {
		return c, fmt.Errorf("config %s: rootfs type %q, want \"layers\": %w", desc.Digest, c.RootFS.Type, errdefs.ErrInvalidArgument)
	}
	for i, d := range c.RootFS.DiffIDs {
		if err := d.Validate(); err != nil {
			return c, fmt.Errorf("config %s: diff_id %d: %v: %w", desc.Digest, i, err, errdefs.ErrInvalidArgument)
		}
	}
	return c, nil
}

// ChainIDs returns the chainID of every layer prefix (OCI image-spec
// config.md): the first layer's is its diffID, each next one is
// sha256(parent chainID + " " + diffID). Snapshots are keyed by them.
func ChainIDs(diffIDs []digest.Digest) []digest.Digest {
	out := make([]digest.Digest, len(diffIDs))
	var parent digest.Digest
	for i, d := range diffIDs {
		out[i] = ChainID(parent, d)
		parent = out[i]
	}
	return out
}

// ChainID returns the chainID of the layer diffID on top of the chain
// parent ("" for the first layer).
func ChainID(parent, diffID digest.Digest) digest.Digest {
	if parent == "" {
		return diffID
	}
	return digest.FromString(parent.String() + " " + diffID.String())
}

// Resolved is an image's target resolved to one platform.
type Resolved struct {
	Target   v1.Descriptor // what the name points at: manifest or index
	Manifest v1.Descriptor // the platform's manifest (= Target for a manifest)
	Config   v1.Descriptor
	Layers   []v1.Descriptor
	Image    v1.Image // the decoded config
}

// ChainIDs returns the snapshot keys of the image's layers, bottom first.
func (r Resolved) ChainIDs() []digest.Digest { return ChainIDs(r.Image.RootFS.DiffIDs) }

// Resolve reads target (following an index to want's manifest) and its
// config from p, and checks that the config and manifest agree on the
// number of layers.
func Resolve(ctx context.Context, p content.Provider, target v1.Descriptor, want Platform) (Resolved, error) {
	r := Resolved{Target: target, Manifest: target}
	if err := checkKnown(target); err != nil {
		return r, err
	}
	for depth := 0; IsIndex(r.Manifest.MediaType); depth++ {
		if depth > 4 {
			return r, fmt.Errorf("index %s: nested too deep: %w", target.Digest, errdefs.ErrInvalidArgument)
		}
		data, err := readSmall(ctx, p, r.Manifest)
		if err != nil {
			return r, fmt.Errorf("read index: %w", err)
		}
		idx, err := ParseIndex(r.Manifest, data)
		if err != nil {
			return r, err
		}
		if r.Manifest, err = SelectPlatform(idx, want); err != nil {
			return r, fmt.Errorf("index %s: %w", target.Digest, err)
		}
	}
	data, err := readSmall(ctx, p, r.Manifest)
	if err != nil {
		return r, fmt.Errorf("read manifest: %w", err)
	}
	m, err := ParseManifest(r.Manifest, data)
	if err != nil {
		return r, err
	}
	r.Config, r.Layers = m.Config, m.Layers
	data, err = readSmall(ctx, p, m.Config)
	if err != nil {
		return r, fmt.Errorf("read config: %w", err)
	}
	if r.Image, err = ParseConfig(m.Config, data); err != nil {
		return r, err
	}
	if err := CheckLayers(r.Manifest, m, r.Image); err != nil {
		return r, err
	}
	return r, nil
}

// CheckLayers checks that a manifest and its config describe the same
// number of layers.
func CheckLayers(desc v1.Descriptor, m v1.Manifest, c v1.Image) error {
	if len(m.Layers) != len(c.RootFS.DiffIDs) {
		return fmt.Errorf("manifest %s has %d layers but its config lists %d diff_ids: %w",
			desc.Digest, len(m.Layers), len(c.RootFS.DiffIDs), errdefs.ErrInvalidArgument)
	}
	return nil
}

// children returns the descriptors a manifest-like blob refers to, for
// garbage collection; anything else (layers, configs, foreign JSON) has none.
func children(data []byte) []v1.Descriptor {
	if len(data) == 0 || data[0] != '{' {
		return nil
	}
	var s sniffed
	if json.Unmarshal(data, &s) != nil {
		return nil
	}
	var all []v1.Descriptor
	if s.Config != nil {
		all = append(all, *s.Config)
	}
	all = append(append(all, s.Layers...), s.Manifests...)
	// An image config has a "config" object too; it is no descriptor.
	var out []v1.Descriptor
	for _, d := range all {
		if d.Digest.Validate() == nil {
			out = append(out, d)
		}
	}
	return out
}

// configDiffIDs returns the diff_ids of a config-like blob, or nil.
func configDiffIDs(data []byte) []digest.Digest {
	if !bytes.Contains(data, []byte(`"diff_ids"`)) {
		return nil
	}
	var c v1.Image
	if json.Unmarshal(data, &c) != nil {
		return nil
	}
	return c.RootFS.DiffIDs
}
