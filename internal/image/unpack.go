package image

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"

	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/berth-dev/berth/internal/archive"
	"github.com/berth-dev/berth/internal/content"
	"github.com/berth-dev/berth/internal/errdefs"
	"github.com/berth-dev/berth/internal/snapshot"
)

// HasLayer reports whether the layer chain chainID is unpacked.
func (s *Service) HasLayer(ctx context.Context, chainID digest.Digest) (bool, error) {
	i, err := s.snaps.Stat(ctx, chainID.String())
	if errdefs.IsNotFound(err) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return i.Kind == snapshot.KindCommitted, nil
}

// ApplyLayer unpacks one layer, read from r (compressed or not), on top of
// the committed chain parent ("" for the first layer) and commits it under
// its chainID, which it returns. The uncompressed bytes must hash to diffID
// (the config's diff_id): the snapshot is shared by every image naming that
// chainID, so its content must be exactly what the chainID says. r is read
// to its end. A layer unpacked meanwhile by someone else is not an error.
// The snapshots it makes are added to op first.
func (s *Service) ApplyLayer(ctx context.Context, op *Op, parent digest.Digest, diffID digest.Digest, r io.Reader) (digest.Digest, error) {
	chainID := diffID
	if parent != "" {
		chainID = digest.FromString(parent.String() + " " + diffID.String())
	}
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	key := unpackPrefix + hex.EncodeToString(b[:])
	if err := op.Add(ctx, nil, []string{key, chainID.String()}); err != nil {
		return "", err
	}
	mounts, err := s.snaps.Prepare(ctx, key, parent.String())
	if err != nil {
		return "", fmt.Errorf("unpack layer %s: %w", diffID, err)
	}
	commit := false
	defer func() {
		if !commit {
			if err := s.snaps.Remove(context.WithoutCancel(ctx), key); err != nil {
				s.log.WarnContext(ctx, "image: remove failed unpack", "key", key, "err", err)
			}
		}
	}()
	upper, lowers, err := snapshot.LayerDirs(mounts)
	if err != nil {
		return "", fmt.Errorf("unpack layer %s: %w", diffID, err)
	}
	dr, err := archive.DecompressStream(r)
	if err != nil {
		return "", fmt.Errorf("unpack layer %s: %w", diffID, err)
	}
	h := sha256.New()
	_, err = archive.Apply(ctx, upper, io.TeeReader(dr, h), archive.ApplyOptions{
		OverlayWhiteouts: parent != "",
		Parents:          lowers,
		Logger:           s.log,
	})
	dr.Close()
	if err != nil {
		return "", fmt.Errorf("unpack layer %s: %w", diffID, err)
	}
	if got := digest.NewDigest(digest.SHA256, h); got != diffID {
		return "", fmt.Errorf("unpack layer: uncompressed content hashes to %s but the config says %s: %w",
			got, diffID, errdefs.ErrInvalidArgument)
	}
	err = s.snaps.Commit(ctx, chainID.String(), key)
	if errdefs.IsAlreadyExists(err) {
		return chainID, nil // unpacked meanwhile by another pull; ours goes
	}
	if err != nil {
		return "", fmt.Errorf("unpack layer %s: %w", diffID, err)
	}
	commit = true
	return chainID, nil
}

// unpack makes sure every layer of r is unpacked, reading layers from the
// content store; layers already unpacked are skipped.
func (s *Service) unpack(ctx context.Context, op *Op, r Resolved) error {
	chain := r.ChainIDs()
	// Find the topmost chain already there: everything below it is too.
	start := 0
	for i := len(chain) - 1; i >= 0; i-- {
		ok, err := s.HasLayer(ctx, chain[i])
		if err != nil {
			return err
		}
		if ok {
			start = i + 1
			break
		}
	}
	for i := start; i < len(chain); i++ {
		var parent digest.Digest
		if i > 0 {
			parent = chain[i-1]
		}
		if err := s.applyBlob(ctx, op, parent, r.Layers[i], r.Image.RootFS.DiffIDs[i]); err != nil {
			return err
		}
	}
	return nil
}

func (s *Service) applyBlob(ctx context.Context, op *Op, parent digest.Digest, layer v1.Descriptor, diffID digest.Digest) error {
	ra, err := s.content.ReaderAt(ctx, layer.Digest)
	if err != nil {
		return fmt.Errorf("layer %s: %w", layer.Digest, err)
	}
	defer ra.Close()
	_, err = s.ApplyLayer(ctx, op, parent, diffID, content.NewReader(ra))
	return err
}

// Unpack unpacks the layers of image ref (a name or ID) for the service's
// platform. Pull and Load unpack already; this is for images whose layers
// GC removed, or that came in through another path.
func (s *Service) Unpack(ctx context.Context, ref string) (err error) {
	img, r, err := s.getResolved(ctx, ref)
	if err != nil {
		return err
	}
	op, err := s.Begin(ctx, "unpack "+img.Name)
	if err != nil {
		return err
	}
	defer func() { op.End(ctx, err) }()
	return s.unpack(ctx, op, r)
}

// UnpackIn is Unpack within an Op the caller holds (a load, say), whose
// lease then protects the snapshots too.
func (s *Service) UnpackIn(ctx context.Context, op *Op, img Image) error {
	r, err := s.resolveImage(ctx, img)
	if err != nil {
		return err
	}
	return s.unpack(ctx, op, r)
}

// Transient reports errors after which a retry may succeed with what was
// fetched kept: cancellation, timeouts, unavailable peers, cut streams.
// Bad content (InvalidArgument, NotFound...) is not transient.
func Transient(err error) bool {
	return errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) ||
		errors.Is(err, errdefs.ErrUnavailable) || errors.Is(err, io.ErrUnexpectedEOF)
}

// Mounts prepares a writable snapshot named containerKey on top of image
// ref's layers (unpacking any that are missing) and returns its mounts; the
// engine mounts them as a container's root filesystem. The snapshot is a
// GC root until RemoveMounts.
func (s *Service) Mounts(ctx context.Context, ref, containerKey string) ([]snapshot.Mount, error) {
	return s.snapshotOf(ctx, ref, containerKey, s.snaps.Prepare)
}

// View is Mounts for a read-only snapshot (e.g. to read an image's
// /etc/passwd); remove it with RemoveMounts.
func (s *Service) View(ctx context.Context, ref, key string) ([]snapshot.Mount, error) {
	return s.snapshotOf(ctx, ref, key, s.snaps.View)
}

func (s *Service) snapshotOf(ctx context.Context, ref, key string,
	make func(ctx context.Context, key, parent string) ([]snapshot.Mount, error)) ([]snapshot.Mount, error) {
	top, err := s.topLayer(ctx, ref)
	if err != nil {
		return nil, err
	}
	m, err := make(ctx, key, top.String())
	if err != nil {
		return nil, fmt.Errorf("image: snapshot %q of %s: %w", key, ref, err)
	}
	return m, nil
}

// RemoveMounts removes a snapshot made by Mounts or View. Its image's
// layers stay until GC finds them unused.
func (s *Service) RemoveMounts(ctx context.Context, key string) error {
	return s.snaps.Remove(ctx, key)
}

func (s *Service) topLayer(ctx context.Context, ref string) (digest.Digest, error) {
	img, r, err := s.getResolved(ctx, ref)
	if err != nil {
		return "", err
	}
	chain := r.ChainIDs()
	if len(chain) == 0 {
		return "", nil
	}
	top := chain[len(chain)-1]
	ok, err := s.HasLayer(ctx, top)
	if err != nil || ok {
		return top, err
	}
	op, err := s.Begin(ctx, "unpack "+img.Name)
	if err != nil {
		return "", err
	}
	err = s.unpack(ctx, op, r)
	op.End(ctx, err)
	return top, err
}

// Flatten writes image ref's root filesystem into dir as one plain tree
// (whiteouts applied, not kept), straight from the layer blobs. It is for
// tools and tests that want a rootfs directory rather than overlay mounts.
func (s *Service) Flatten(ctx context.Context, ref, dir string) error {
	img, r, err := s.getResolved(ctx, ref)
	if err != nil {
		return err
	}
	for _, l := range r.Layers {
		if err := s.flattenLayer(ctx, l, dir); err != nil {
			return fmt.Errorf("image: flatten %s: %w", img.Name, err)
		}
	}
	return nil
}

func (s *Service) flattenLayer(ctx context.Context, l v1.Descriptor, dir string) error {
	ra, err := s.content.ReaderAt(ctx, l.Digest)
	if err != nil {
		return err
	}
	defer ra.Close()
	dr, err := archive.DecompressStream(content.NewReader(ra))
	if err != nil {
		return err
	}
	defer dr.Close()
	_, err = archive.Apply(ctx, dir, dr, archive.ApplyOptions{NoSync: true, Logger: s.log})
	return err
}
