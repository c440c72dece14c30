package content

import (
	"context"
	_ "crypto/sha256" // registers sha256 with go-digest
	_ "crypto/sha512" // registers sha384 and sha512 with go-digest
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/berth-dev/berth/internal/errdefs"
)

// DefaultIngestExpiry is how long an untouched partial ingest survives a
// restart: long enough to resume an interrupted pull, short enough that
// abandoned downloads do not fill the disk.
const DefaultIngestExpiry = 24 * time.Hour

// Options tune a Store. The zero value is usable.
type Options struct {
	// IngestExpiry: Open removes partial ingests not written to for longer.
	// Zero means DefaultIngestExpiry; a negative value keeps them all.
	IngestExpiry time.Duration
	// Logger defaults to slog.Default().
	Logger *slog.Logger
}

// Store keeps blobs under root:
//
//	<root>/blobs/<algorithm>/<hex>   committed blobs, mode 0444
//	<root>/ingest/<hash of ref>/     one unfinished ingest: data + ingest.json
//
// A blob enters blobs/ only by an atomic rename after its size and digest
// were checked and its bytes fsynced, so every file there is what its name
// says, whatever crashes in between.
//
// The in-memory locks that make concurrent ingests of one digest do the work
// once assume a single process owns root; berth's daemon ensures that with the
// lock on meta.db. Another writer would waste work, never corrupt a blob.
type Store struct {
	root  string
	log   *slog.Logger
	locks *keyedMutex
}

var (
	_ Provider      = (*Store)(nil)
	_ Ingester      = (*Store)(nil)
	_ Manager       = (*Store)(nil)
	_ IngestManager = (*Store)(nil)
)

// Open prepares a Store at root, creating its directories. It removes what a
// crash may have left in ingest/ that cannot be resumed (broken or expired
// ingests); blobs/ never holds anything partial, so it needs no recovery.
func Open(ctx context.Context, root string, opts Options) (*Store, error) {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.IngestExpiry == 0 {
		opts.IngestExpiry = DefaultIngestExpiry
	}
	s := &Store{root: root, log: opts.Logger.With("component", "content"), locks: newKeyedMutex()}
	if err := os.MkdirAll(filepath.Join(root, "blobs", digest.Canonical.String()), 0o755); err != nil {
		return nil, fmt.Errorf("open content store: %w", err)
	}
	if err := os.MkdirAll(s.ingestRoot(), 0o700); err != nil {
		return nil, fmt.Errorf("open content store: %w", err)
	}
	if err := s.cleanIngests(ctx, opts.IngestExpiry); err != nil {
		return nil, fmt.Errorf("open content store: %w", err)
	}
	return s, nil
}

// Root returns the directory the Store lives in.
func (s *Store) Root() string { return s.root }

// Info implements InfoProvider.
func (s *Store) Info(ctx context.Context, dgst digest.Digest) (Info, error) {
	p, err := s.blobPath(dgst)
	if err != nil {
		return Info{}, err
	}
	fi, err := os.Stat(p)
	if err != nil {
		return Info{}, blobError(dgst, err)
	}
	return Info{Digest: dgst, Size: fi.Size(), CreatedAt: fi.ModTime()}, nil
}

// ReaderAt implements Provider. Reads are not verified: the digest was
// checked when the blob was written (see Verify to check it again).
func (s *Store) ReaderAt(ctx context.Context, dgst digest.Digest) (ReaderAt, error) {
	p, err := s.blobPath(dgst)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(p)
	if err != nil {
		return nil, blobError(dgst, err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, blobError(dgst, err)
	}
	return &fileReaderAt{File: f, size: fi.Size()}, nil
}

type fileReaderAt struct {
	*os.File
	size int64
}

func (r *fileReaderAt) Size() int64 { return r.size }

// Walk implements Manager. Files in blobs/ whose names are not digests are
// skipped: they are not blobs, whoever put them there.
func (s *Store) Walk(ctx context.Context, fn WalkFunc) error {
	algs, err := os.ReadDir(filepath.Join(s.root, "blobs"))
	if err != nil {
		return fmt.Errorf("walk content: %w", err)
	}
	for _, a := range algs {
		alg := digest.Algorithm(a.Name())
		if !a.IsDir() || !alg.Available() {
			continue
		}
		dir := filepath.Join(s.root, "blobs", a.Name())
		entries, err := os.ReadDir(dir)
		if err != nil {
			return fmt.Errorf("walk content: %w", err)
		}
		for _, e := range entries {
			if err := ctx.Err(); err != nil {
				return err
			}
			dgst := digest.NewDigestFromEncoded(alg, e.Name())
			if !e.Type().IsRegular() || dgst.Validate() != nil {
				continue
			}
			fi, err := e.Info()
			if errors.Is(err, fs.ErrNotExist) {
				continue // deleted while we walked
			}
			if err != nil {
				return fmt.Errorf("walk content: %w", err)
			}
			if err := fn(Info{Digest: dgst, Size: fi.Size(), CreatedAt: fi.ModTime()}); err != nil {
				return err
			}
		}
	}
	return nil
}

// Delete implements Manager. Readers that already opened the blob keep
// reading it.
func (s *Store) Delete(ctx context.Context, dgst digest.Digest) error {
	p, err := s.blobPath(dgst)
	if err != nil {
		return err
	}
	if err := os.Remove(p); err != nil {
		return blobError(dgst, err)
	}
	return nil
}

// Verify hashes a committed blob again and returns an
// ErrFailedPrecondition-class error when its bytes no longer match its
// digest (disk corruption, or someone writing into the store). It leaves the
// blob in place; the caller decides whether to Delete and fetch it again.
func (s *Store) Verify(ctx context.Context, dgst digest.Digest) error {
	p, err := s.blobPath(dgst)
	if err != nil {
		return err
	}
	f, err := os.Open(p)
	if err != nil {
		return blobError(dgst, err)
	}
	defer f.Close()
	h := dgst.Algorithm().Hash()
	if _, err := copyContext(ctx, h, f, make([]byte, copyBufferSize)); err != nil {
		return fmt.Errorf("verify content %s: %w", dgst, err)
	}
	if got := digest.NewDigest(dgst.Algorithm(), h); got != dgst {
		return fmt.Errorf("verify content %s: corrupt on disk, its bytes hash to %s: %w",
			dgst, got, errdefs.ErrFailedPrecondition)
	}
	return nil
}

// blobPath validates dgst before it becomes a path, so a hostile digest
// string cannot name a file outside blobs/.
func (s *Store) blobPath(dgst digest.Digest) (string, error) {
	if err := dgst.Validate(); err != nil {
		return "", fmt.Errorf("content digest %q: %v: %w", dgst, err, errdefs.ErrInvalidArgument)
	}
	return filepath.Join(s.root, "blobs", dgst.Algorithm().String(), dgst.Encoded()), nil
}

func blobError(dgst digest.Digest, err error) error {
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("content %s: %w", dgst, errdefs.ErrNotFound)
	}
	return fmt.Errorf("content %s: %w", dgst, err)
}

// hashPrefix feeds the first size bytes of f into h, checking ctx between
// chunks.
func hashPrefix(ctx context.Context, h hash.Hash, f io.ReaderAt, size int64) error {
	n, err := copyContext(ctx, h, io.NewSectionReader(f, 0, size), make([]byte, copyBufferSize))
	if err == nil && n != size {
		err = io.ErrUnexpectedEOF
	}
	return err
}

// syncDir makes a rename or create in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
