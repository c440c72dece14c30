package image

import (
	"context"
	"io"

	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/berth-dev/berth/internal/meta"
)

// WriteLayer stores an uncompressed layer tar gzip-compressed, protected by
// op, and returns the blob's descriptor and the tar's diffID: how the
// builder turns a step's changes into a layer.
func (s *Service) WriteLayer(ctx context.Context, op *Op, tarStream io.Reader) (v1.Descriptor, digest.Digest, error) {
	return s.compressLayer(ctx, op, tarStream)
}

// Meta returns the metadata database, for the builder's cache records
// (leases that keep cached layers alive).
func (s *Service) Meta() *meta.DB { return s.meta }
