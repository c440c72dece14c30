package imagearchive

import (
	"context"
	"fmt"
	"io"
	"time"

	v1 "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/berth-dev/berth/internal/archive"
	"github.com/berth-dev/berth/internal/image"
)

// ImportOptions tune Import.
type ImportOptions struct {
	// Config is the run configuration of the new image (Cmd, Env...), as
	// `docker import --change` sets it.
	Config v1.ImageConfig
	// Platform defaults to the store's.
	Platform *image.Platform
}

// Import makes a one-layer image of the root filesystem tar read from r
// (plain, gzip or zstd) and records it as ref ("" for a nameless image).
func (a *Archiver) Import(ctx context.Context, r io.Reader, ref string, opts ImportOptions) (image.Image, error) {
	dr, err := archive.DecompressStream(r)
	if err != nil {
		return image.Image{}, fmt.Errorf("import: %w", err)
	}
	defer dr.Close()
	p := a.images.Platform()
	if opts.Platform != nil {
		p = *opts.Platform
	}
	// One history entry for the layer, as docker import writes it (tools
	// that check history against layers, such as podman, need it).
	now := time.Now().UTC()
	cfg := v1.Image{Platform: p, Config: opts.Config, Created: &now,
		History: []v1.History{{Created: &now, Comment: "Imported from -"}}}
	img, err := a.images.CreateFromLayers(ctx, ref, cfg, dr)
	if err != nil {
		return image.Image{}, fmt.Errorf("import: %w", err)
	}
	return img, nil
}
