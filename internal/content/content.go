// Package content is berth's content-addressed blob store: blobs are named by
// the digest of their bytes, written through a verifying ingest and never
// visible under a digest they do not have.
//
// The package exposes small role interfaces so callers take only what they
// use: a puller needs an Ingester and an InfoProvider, an unpacker a Provider,
// the garbage collector a Manager. Store is the one on-disk implementation.
package content

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/berth-dev/berth/internal/errdefs"
)

// Info describes one committed blob.
type Info struct {
	Digest digest.Digest
	Size   int64
	// CreatedAt is when the blob was committed (its file's modification time).
	CreatedAt time.Time
}

// Status describes one ingest that has not been committed yet.
type Status struct {
	Ref      string
	Offset   int64         // bytes written so far; a resumed Writer continues here
	Total    int64         // expected size, 0 if unknown
	Expected digest.Digest // expected digest, empty if unknown
	// StartedAt is when the ingest began, UpdatedAt when bytes last arrived.
	StartedAt time.Time
	UpdatedAt time.Time
	// Active reports whether a Writer currently holds the ingest.
	Active bool
}

// ReaderAt reads one blob at random offsets. Close releases it.
type ReaderAt interface {
	io.ReaderAt
	io.Closer
	Size() int64
}

// InfoProvider answers whether a blob exists and how large it is.
type InfoProvider interface {
	// Info returns an ErrNotFound-class error when the blob is absent.
	Info(ctx context.Context, dgst digest.Digest) (Info, error)
}

// Provider reads committed blobs.
type Provider interface {
	InfoProvider
	// ReaderAt opens a blob; an ErrNotFound-class error when it is absent.
	ReaderAt(ctx context.Context, dgst digest.Digest) (ReaderAt, error)
}

// Writer streams one blob into the store, hashing as it goes. Until Commit
// the bytes live in a private ingest; Close without Commit keeps them so a
// later Writer with the same ref resumes at Offset.
type Writer interface {
	io.WriteCloser
	// Offset is the number of bytes the ingest holds, resumed ones included.
	Offset() int64
	// Digest is the digest of the bytes written so far.
	Digest() digest.Digest
	// Truncate drops the bytes past size, e.g. to restart a download whose
	// source cannot seek (Truncate(0)).
	Truncate(size int64) error
	// Commit checks size (unless 0) and digest (unless empty; both default to
	// the descriptor the Writer was opened with), makes the blob durable and
	// visible under its digest, and ends the Writer. A mismatch returns an
	// ErrInvalidArgument-class error and discards the ingest. Committing bytes
	// that another writer already committed succeeds.
	Commit(ctx context.Context, size int64, expected digest.Digest) error
}

// Ingester opens Writers.
type Ingester interface {
	// Writer opens the ingest named ref (the descriptor's digest when ref is
	// empty) for the blob desc describes; desc.Digest and desc.Size may be
	// unknown (empty, 0). When desc.Digest is already committed it returns an
	// ErrAlreadyExists-class error; while another Writer ingests the same ref
	// or digest it waits for it to finish, then checks again.
	Writer(ctx context.Context, ref string, desc v1.Descriptor) (Writer, error)
}

// WalkFunc is called once per blob by Manager.Walk; an error stops the walk
// and is returned by it.
type WalkFunc func(Info) error

// Manager lists and removes committed blobs.
type Manager interface {
	Walk(ctx context.Context, fn WalkFunc) error
	// Delete removes a blob; an ErrNotFound-class error when it is absent.
	Delete(ctx context.Context, dgst digest.Digest) error
}

// IngestManager inspects and drops unfinished ingests.
type IngestManager interface {
	// Status returns an ErrNotFound-class error when no ingest has that ref.
	Status(ctx context.Context, ref string) (Status, error)
	ListStatuses(ctx context.Context) ([]Status, error)
	// Abort drops an ingest and its bytes. It refuses an ingest held by an
	// active Writer with an ErrConflict-class error.
	Abort(ctx context.Context, ref string) error
}

// copyBufferSize is large so that a local copy costs one syscall per MiB and
// the time goes to sha256 and the disk, not to call overhead.
const copyBufferSize = 1 << 20

// Exists reports whether the blob is committed.
func Exists(ctx context.Context, p InfoProvider, dgst digest.Digest) (bool, error) {
	_, err := p.Info(ctx, dgst)
	switch {
	case err == nil:
		return true, nil
	case errdefs.IsNotFound(err):
		return false, nil
	default:
		return false, err
	}
}

// WriteBlob ingests r as the blob desc describes (desc.Digest is required)
// and commits it. A blob already present is not read again, which is how
// concurrent pulls of the same layer download it once. When an earlier
// attempt left a partial ingest, WriteBlob resumes it if r can seek and
// restarts it otherwise.
func WriteBlob(ctx context.Context, ing Ingester, desc v1.Descriptor, r io.Reader) error {
	if desc.Digest == "" {
		return fmt.Errorf("write blob: descriptor has no digest: %w", errdefs.ErrInvalidArgument)
	}
	w, err := ing.Writer(ctx, "", desc)
	if errdefs.IsAlreadyExists(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("write blob %s: %w", desc.Digest, err)
	}
	// After Commit, Close is a no-op; on failure it keeps the partial bytes.
	defer w.Close()

	if off := w.Offset(); off > 0 {
		s, ok := r.(io.Seeker)
		if ok {
			_, err = s.Seek(off, io.SeekStart)
		}
		if !ok || err != nil {
			if err := w.Truncate(0); err != nil {
				return fmt.Errorf("write blob %s: restart ingest: %w", desc.Digest, err)
			}
		}
	}
	if _, err := copyContext(ctx, w, r, make([]byte, copyBufferSize)); err != nil {
		return fmt.Errorf("write blob %s: %w", desc.Digest, err)
	}
	if err := w.Commit(ctx, desc.Size, desc.Digest); err != nil {
		return fmt.Errorf("write blob %s: %w", desc.Digest, err)
	}
	return nil
}

// ReadBlob reads a whole blob into memory; meant for manifests, indexes and
// configs. When desc.Size is set the blob must have that size, so a
// descriptor cannot make the caller read an unexpectedly large blob.
func ReadBlob(ctx context.Context, p Provider, desc v1.Descriptor) ([]byte, error) {
	ra, err := p.ReaderAt(ctx, desc.Digest)
	if err != nil {
		return nil, err
	}
	defer ra.Close()
	size := ra.Size()
	if desc.Size > 0 && size != desc.Size {
		return nil, fmt.Errorf("read blob %s: size is %d, descriptor says %d: %w",
			desc.Digest, size, desc.Size, errdefs.ErrInvalidArgument)
	}
	b := make([]byte, size)
	// ReaderAt may report io.EOF together with the last bytes; only a short
	// read is an error.
	if n, err := ra.ReadAt(b, 0); n != len(b) {
		return nil, fmt.Errorf("read blob %s: %w", desc.Digest, err)
	}
	return b, nil
}

// NewReader returns a sequential reader over ra.
func NewReader(ra ReaderAt) io.Reader {
	return io.NewSectionReader(ra, 0, ra.Size())
}

// copyContext is io.CopyBuffer that stops between reads once ctx is done, so
// a cancelled pull does not keep draining a slow network body.
func copyContext(ctx context.Context, dst io.Writer, src io.Reader, buf []byte) (int64, error) {
	var n int64
	for {
		if err := ctx.Err(); err != nil {
			return n, err
		}
		nr, rerr := src.Read(buf)
		if nr > 0 {
			nw, werr := dst.Write(buf[:nr])
			n += int64(nw)
			if werr != nil {
				return n, werr
			}
			if nw != nr {
				return n, io.ErrShortWrite
			}
		}
		if rerr == io.EOF {
			return n, nil
		}
		if rerr != nil {
			return n, rerr
		}
	}
}
