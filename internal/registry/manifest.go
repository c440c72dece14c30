package registry

import (
	"encoding/json"
	"fmt"
	"mime"
	"strings"

	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
)

// Manifest media types the registry understands. Docker's schema1 is not
// among them: it is deprecated and signed with keys nobody manages.
const (
	mtOCIManifest    = v1.MediaTypeImageManifest
	mtOCIIndex       = v1.MediaTypeImageIndex
	mtDockerManifest = "application/vnd.docker.distribution.manifest.v2+json"
	mtDockerList     = "application/vnd.docker.distribution.manifest.list.v2+json"
	mtDockerForeign  = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"
)

// maxManifestSize is the spec's recommended minimum limit (4 MiB); larger
// manifests are refused before they are read to the end.
const maxManifestSize = 4 << 20

// parsedManifest is what validation needs from a manifest.
type parsedManifest struct {
	mediaType    string
	artifactType string
	annotations  map[string]string
	subject      *v1.Descriptor
	// blobs must be linked into the repository, manifests must be in it.
	blobs     []v1.Descriptor
	manifests []v1.Descriptor
}

// manifestFields is the union of the image manifest and index fields that
// matter here; unknown fields are allowed and kept verbatim in the stored
// bytes.
type manifestFields struct {
	SchemaVersion *int              `json:"schemaVersion"`
	MediaType     string            `json:"mediaType"`
	ArtifactType  string            `json:"artifactType"`
	Config        *v1.Descriptor    `json:"config"`
	Layers        []v1.Descriptor   `json:"layers"`
	Manifests     []v1.Descriptor   `json:"manifests"`
	Subject       *v1.Descriptor    `json:"subject"`
	Annotations   map[string]string `json:"annotations"`
}

// parseManifest checks a manifest body against its declared type and lists
// what it refers to. contentType is the request's Content-Type header.
func parseManifest(contentType string, body []byte) (*parsedManifest, error) {
	var f manifestFields
	if err := json.Unmarshal(body, &f); err != nil {
		return nil, fmt.Errorf("manifest is not valid JSON: %v", err)
	}
	mt := ""
	if contentType != "" {
		parsed, _, err := mime.ParseMediaType(contentType)
		if err != nil {
			return nil, fmt.Errorf("content type %q: %v", contentType, err)
		}
		mt = parsed
	}
	switch {
	case mt == "" || mt == "application/octet-stream" || mt == "application/json":
		mt = f.MediaType
	case f.MediaType != "" && f.MediaType != mt:
		return nil, fmt.Errorf("content type %s differs from the manifest's mediaType %s", mt, f.MediaType)
	}
	if mt == "" {
		return nil, fmt.Errorf("manifest has no media type (neither Content-Type nor mediaType)")
	}
	if f.SchemaVersion == nil || *f.SchemaVersion != 2 {
		return nil, fmt.Errorf("unsupported schemaVersion (want 2)")
	}
	p := &parsedManifest{mediaType: mt, artifactType: f.ArtifactType, annotations: f.Annotations, subject: f.Subject}
	switch mt {
	case mtOCIManifest, mtDockerManifest:
		if f.Config == nil {
			return nil, fmt.Errorf("image manifest has no config")
		}
		if f.Manifests != nil {
			return nil, fmt.Errorf("image manifest has a manifests field")
		}
		if err := checkDescriptor("config", *f.Config); err != nil {
			return nil, err
		}
		p.blobs = append(p.blobs, *f.Config)
		for i, l := range f.Layers {
			if err := checkDescriptor(fmt.Sprintf("layer %d", i), l); err != nil {
				return nil, err
			}
			if nonDistributable(l.MediaType) {
				continue
			}
			p.blobs = append(p.blobs, l)
		}
		if p.artifactType == "" && mt == mtOCIManifest {
			// The referrers API reports the config type when a manifest
			// has no artifactType of its own.
			p.artifactType = f.Config.MediaType
		}
	case mtOCIIndex, mtDockerList:
		if f.Config != nil || f.Layers != nil {
			return nil, fmt.Errorf("index has image manifest fields")
		}
		for i, m := range f.Manifests {
			if err := checkDescriptor(fmt.Sprintf("manifest %d", i), m); err != nil {
				return nil, err
			}
			p.manifests = append(p.manifests, m)
		}
	default:
		return nil, fmt.Errorf("unsupported manifest media type %s", mt)
	}
	if p.subject != nil {
		if err := checkDescriptor("subject", *p.subject); err != nil {
			return nil, err
		}
	}
	return p, nil
}

func checkDescriptor(what string, d v1.Descriptor) error {
	if err := d.Digest.Validate(); err != nil {
		return fmt.Errorf("%s: digest %q: %v", what, d.Digest, err)
	}
	if d.Size < 0 {
		return fmt.Errorf("%s: negative size", what)
	}
	return nil
}

// nonDistributable layers live elsewhere (their urls) and are never pushed,
// so a manifest may name them without the registry having them.
func nonDistributable(mediaType string) bool {
	return mediaType == mtDockerForeign ||
		strings.HasPrefix(mediaType, "application/vnd.oci.image.layer.nondistributable.")
}

// refs lists what the manifest keeps alive, for garbage collection.
func (p *parsedManifest) refs() []digest.Digest {
	out := make([]digest.Digest, 0, len(p.blobs)+len(p.manifests))
	for _, d := range p.blobs {
		out = append(out, d.Digest)
	}
	for _, d := range p.manifests {
		out = append(out, d.Digest)
	}
	return out
}
