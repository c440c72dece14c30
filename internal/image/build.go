package image

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/klauspost/compress/gzip"
	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/berth-dev/berth/internal/content"
	"github.com/berth-dev/berth/internal/errdefs"
)

// WriteBlob stores the bytes of r, whose digest is not known beforehand,
// protecting them with op, and returns their descriptor with mediaType.
func (s *Service) WriteBlob(ctx context.Context, op *Op, mediaType string, r io.Reader) (v1.Descriptor, error) {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return v1.Descriptor{}, err
	}
	ref := "write-" + hex.EncodeToString(b[:])
	w, err := s.content.Writer(ctx, ref, v1.Descriptor{})
	if err != nil {
		return v1.Descriptor{}, err
	}
	defer w.Close()
	if _, err := io.Copy(w, r); err != nil {
		w.Truncate(0)
		return v1.Descriptor{}, fmt.Errorf("write blob: %w", err)
	}
	desc := v1.Descriptor{MediaType: mediaType, Digest: w.Digest(), Size: w.Offset()}
	if err := op.Add(ctx, []digest.Digest{desc.Digest}, nil); err != nil {
		return desc, err
	}
	if err := w.Commit(ctx, desc.Size, desc.Digest); err != nil && !errdefs.IsAlreadyExists(err) {
		return desc, fmt.Errorf("write blob: %w", err)
	}
	return desc, nil
}

// WriteJSON stores v as a JSON blob of mediaType.
func (s *Service) WriteJSON(ctx context.Context, op *Op, mediaType string, v any) (v1.Descriptor, []byte, error) {
	data, err := json.Marshal(v)
	if err != nil {
		return v1.Descriptor{}, nil, err
	}
	return s.WriteJSONBytes(ctx, op, mediaType, data)
}

// WriteJSONBytes stores a small blob held in memory, protected by op.
func (s *Service) WriteJSONBytes(ctx context.Context, op *Op, mediaType string, data []byte) (v1.Descriptor, []byte, error) {
	desc := v1.Descriptor{MediaType: mediaType, Digest: digest.FromBytes(data), Size: int64(len(data))}
	if err := op.Add(ctx, []digest.Digest{desc.Digest}, nil); err != nil {
		return desc, nil, err
	}
	if err := content.WriteBlob(ctx, s.content, desc, bytes.NewReader(data)); err != nil {
		return desc, nil, err
	}
	return desc, data, nil
}

// compressLayer stores an uncompressed layer tar gzip-compressed and
// returns the blob's descriptor and the tar's diffID, hashing both as the
// bytes pass.
func (s *Service) compressLayer(ctx context.Context, op *Op, tarStream io.Reader) (v1.Descriptor, digest.Digest, error) {
	pr, pw := io.Pipe()
	h := sha256.New()
	go func() {
		zw := gzip.NewWriter(pw)
		_, err := io.Copy(zw, io.TeeReader(tarStream, h))
		if cerr := zw.Close(); err == nil {
			err = cerr
		}
		pw.CloseWithError(err)
	}()
	desc, err := s.WriteBlob(ctx, op, v1.MediaTypeImageLayerGzip, pr)
	pr.CloseWithError(io.ErrClosedPipe)
	if err != nil {
		return desc, "", err
	}
	return desc, digest.NewDigest(digest.SHA256, h), nil
}

// CreateFromLayers builds an image from uncompressed layer tars, bottom
// first: each is stored gzip-compressed, cfg gets their diff_ids (and a
// creation date and the service's platform if unset), and an OCI manifest
// ties them together. The image is recorded as name ("" for none); its
// layers are unpacked when first mounted. This is how Import and tests make
// images without a registry.
func (s *Service) CreateFromLayers(ctx context.Context, name string, cfg v1.Image, layers ...io.Reader) (img Image, err error) {
	op, err := s.Begin(ctx, "create "+name)
	if err != nil {
		return Image{}, err
	}
	defer func() { op.End(ctx, err) }()
	m := v1.Manifest{MediaType: v1.MediaTypeImageManifest}
	m.SchemaVersion = 2
	cfg.RootFS = v1.RootFS{Type: "layers"}
	for i, l := range layers {
		desc, diffID, err := s.compressLayer(ctx, op, l)
		if err != nil {
			return Image{}, fmt.Errorf("image: layer %d: %w", i, err)
		}
		m.Layers = append(m.Layers, desc)
		cfg.RootFS.DiffIDs = append(cfg.RootFS.DiffIDs, diffID)
	}
	if cfg.Created == nil {
		now := time.Now().UTC()
		cfg.Created = &now
	}
	if cfg.OS == "" {
		cfg.OS, cfg.Architecture, cfg.Variant = s.platform.OS, s.platform.Architecture, s.platform.Variant
	}
	if m.Config, _, err = s.WriteJSON(ctx, op, v1.MediaTypeImageConfig, cfg); err != nil {
		return Image{}, err
	}
	target, _, err := s.WriteJSON(ctx, op, v1.MediaTypeImageManifest, m)
	if err != nil {
		return Image{}, err
	}
	return s.Create(ctx, name, target)
}
