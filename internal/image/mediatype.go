package image

import (
	"fmt"
	"runtime"
	"strings"

	v1 "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/berth-dev/berth/internal/errdefs"
)

// Docker's schema2 media types; the OCI ones are in image-spec's v1 package.
const (
	MediaTypeDockerManifest     = "application/vnd.docker.distribution.manifest.v2+json"
	MediaTypeDockerManifestList = "application/vnd.docker.distribution.manifest.list.v2+json"
	MediaTypeDockerConfig       = "application/vnd.docker.container.image.v1+json"
	MediaTypeDockerLayer        = "application/vnd.docker.image.rootfs.diff.tar.gzip"
	MediaTypeDockerForeignLayer = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"
	MediaTypeDockerLayerTar     = "application/vnd.docker.image.rootfs.diff.tar"
	// Schema 1 is signed, v1-ID based and gone from every current
	// registry; it is recognised only to refuse it clearly.
	mediaTypeDockerSchema1       = "application/vnd.docker.distribution.manifest.v1+json"
	mediaTypeDockerSchema1Signed = "application/vnd.docker.distribution.manifest.v1+prettyjws"
)

// IsIndex reports an OCI index or Docker manifest list.
func IsIndex(mt string) bool {
	return mt == v1.MediaTypeImageIndex || mt == MediaTypeDockerManifestList
}

// IsManifest reports an OCI or Docker schema2 image manifest.
func IsManifest(mt string) bool {
	return mt == v1.MediaTypeImageManifest || mt == MediaTypeDockerManifest
}

// IsConfig reports an image config media type.
func IsConfig(mt string) bool {
	return mt == v1.MediaTypeImageConfig || mt == MediaTypeDockerConfig
}

// IsLayer reports a layer media type berth can unpack: OCI tar, tar+gzip,
// tar+zstd (and their non-distributable variants), Docker's gzip and tar.
func IsLayer(mt string) bool {
	switch mt {
	case v1.MediaTypeImageLayer, v1.MediaTypeImageLayerGzip, v1.MediaTypeImageLayerZstd,
		v1.MediaTypeImageLayerNonDistributable, v1.MediaTypeImageLayerNonDistributableGzip, //nolint:staticcheck // still found in the wild
		v1.MediaTypeImageLayerNonDistributableZstd, //nolint:staticcheck
		MediaTypeDockerLayer, MediaTypeDockerForeignLayer, MediaTypeDockerLayerTar:
		return true
	}
	return false
}

// checkKnown refuses what berth cannot read with a message naming it.
func checkKnown(desc v1.Descriptor) error {
	mt := desc.MediaType
	switch {
	case IsIndex(mt), IsManifest(mt):
		return nil
	case mt == mediaTypeDockerSchema1 || mt == mediaTypeDockerSchema1Signed:
		return fmt.Errorf("manifest %s: Docker schema 1 (%s) is not supported; push the image again with a current client: %w",
			desc.Digest, mt, errdefs.ErrNotImplemented)
	}
	return fmt.Errorf("manifest %s: unknown media type %q: %w", desc.Digest, mt, errdefs.ErrInvalidArgument)
}

// Platform is an OS/architecture/variant triple, as in "linux/arm64/v8".
type Platform = v1.Platform

// DefaultPlatform is what berth runs: linux on this machine's architecture
// (linux/amd64 on berth's build hosts).
func DefaultPlatform() Platform {
	p := Platform{OS: "linux", Architecture: runtime.GOARCH}
	if p.Architecture == "arm64" {
		p.Variant = "v8"
	}
	return p
}

// ParsePlatform parses "os/arch[/variant]" (also "arch" alone, meaning linux).
func ParsePlatform(s string) (Platform, error) {
	parts := strings.Split(strings.ToLower(strings.TrimSpace(s)), "/")
	var p Platform
	switch len(parts) {
	case 1:
		p = Platform{OS: "linux", Architecture: parts[0]}
	case 2:
		p = Platform{OS: parts[0], Architecture: parts[1]}
	case 3:
		p = Platform{OS: parts[0], Architecture: parts[1], Variant: parts[2]}
	default:
		return p, fmt.Errorf("invalid platform %q: want os/arch[/variant]: %w", s, errdefs.ErrInvalidArgument)
	}
	for _, f := range []string{p.OS, p.Architecture} {
		if f == "" {
			return p, fmt.Errorf("invalid platform %q: empty field: %w", s, errdefs.ErrInvalidArgument)
		}
	}
	p = normalizePlatform(p)
	return p, nil
}

// FormatPlatform is the inverse of ParsePlatform.
func FormatPlatform(p Platform) string {
	s := p.OS + "/" + p.Architecture
	if p.Variant != "" {
		s += "/" + p.Variant
	}
	return s
}

// normalizePlatform maps the aliases registries use onto one spelling
// (x86_64 = amd64, aarch64 = arm64 whose default variant is v8, armhf = arm/v7).
func normalizePlatform(p Platform) Platform {
	switch p.Architecture {
	case "x86_64", "x86-64":
		p.Architecture = "amd64"
	case "aarch64":
		p.Architecture = "arm64"
	case "armhf":
		p.Architecture, p.Variant = "arm", "v7"
	case "armel":
		p.Architecture, p.Variant = "arm", "v6"
	case "i386", "i686":
		p.Architecture = "386"
	}
	if p.Architecture == "arm64" && p.Variant == "" {
		p.Variant = "v8"
	}
	if p.Architecture == "amd64" && p.Variant == "v1" {
		p.Variant = ""
	}
	return p
}

// platformMatch reports whether an image for have runs on want. A missing
// OS in have (old manifest lists) counts as linux.
func platformMatch(want, have Platform) bool {
	want, have = normalizePlatform(want), normalizePlatform(have)
	if have.OS == "" {
		have.OS = "linux"
	}
	return want.OS == have.OS && want.Architecture == have.Architecture &&
		(want.Variant == "" || have.Variant == "" || want.Variant == have.Variant)
}
