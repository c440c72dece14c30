// Package image is berth's image store: names and references, manifests,
// indexes and configs in the content store, layers unpacked into snapshots
// keyed by their chainID, reference counting, and garbage collection.
//
// It sits on three dumb backends: content (blobs by digest), meta (image
// records, refs, leases) and snapshot (overlay layers). An image is a meta
// record named by its normalised reference (docker.io/library/busybox:1.36,
// localhost:5000/app@sha256:...) or, for an image without a name, by its
// target digest ("sha256:..."); its target is the manifest or index the name
// resolved to, and labels name the platform manifest and the config it uses,
// which also keep them alive through GC. The image ID is the config digest,
// as docker's is.
//
// Layers are unpacked once: the committed snapshot of a layer is keyed by
// its chainID, so two images sharing a base share its snapshots, and a layer
// already present is never unpacked again.
//
// Concurrency: operations that create resources (pull, load, import) run
// under an InFlight guard that garbage collection waits for, and record what
// they create in a lease before creating it, so a crash leaves them
// protected until the lease expires and a retry resumes instead of
// starting over.
package image

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"

	"github.com/berth-dev/berth/internal/content"
	"github.com/berth-dev/berth/internal/meta"
	"github.com/berth-dev/berth/internal/snapshot"
)

// ContentStore is the part of the content store the image service uses.
type ContentStore interface {
	content.Provider
	content.Ingester
	content.Manager
}

// Snapshotter is the part of the snapshotter the image service uses.
type Snapshotter interface {
	Prepare(ctx context.Context, key, parent string) ([]snapshot.Mount, error)
	View(ctx context.Context, key, parent string) ([]snapshot.Mount, error)
	Mounts(ctx context.Context, key string) ([]snapshot.Mount, error)
	Commit(ctx context.Context, name, key string) error
	// CommitOnto is Commit giving a snapshot prepared without a parent
	// its parent (ApplyLayers unpacks layers before their parents commit).
	CommitOnto(ctx context.Context, name, key, parent string, opts ...snapshot.CommitOption) error
	Remove(ctx context.Context, key string) error
	Stat(ctx context.Context, key string) (snapshot.Info, error)
	Walk(ctx context.Context, fn func(context.Context, snapshot.Info) error) error
	Usage(ctx context.Context, key string) (snapshot.Usage, error)
}

// UsageChecker tells which containers use an image; the engine implements
// it so that removing an image a container runs from is refused.
type UsageChecker interface {
	// ImageUsers returns the containers (names or IDs) using image id
	// (a config digest); none means unused.
	ImageUsers(ctx context.Context, id string) ([]string, error)
}

// Options configure a Service.
type Options struct {
	Content   ContentStore
	Meta      *meta.DB
	Snapshots Snapshotter
	// Platform is chosen from indexes and manifest lists unless an
	// operation names another; zero means DefaultPlatform().
	Platform Platform
	// InUse guards removal; nil means no image is in use.
	InUse  UsageChecker
	Logger *slog.Logger
}

// Service is the image store. It is safe for concurrent use.
type Service struct {
	content  ContentStore
	meta     *meta.DB
	snaps    Snapshotter
	platform Platform
	inUse    UsageChecker
	log      *slog.Logger

	// gc is held exclusively by garbage collection and shared by every
	// operation that creates content or snapshots not yet referenced.
	gc sync.RWMutex
	// names serialises changes to image records, so reference counting
	// decisions (is this the last name of that image?) see a stable set.
	names sync.Mutex

	closers []func() error
}

// New returns a Service over the given stores.
func New(opts Options) (*Service, error) {
	if opts.Content == nil || opts.Meta == nil || opts.Snapshots == nil {
		return nil, fmt.Errorf("image: content, meta and snapshots are required")
	}
	s := &Service{
		content:  opts.Content,
		meta:     opts.Meta,
		snaps:    opts.Snapshots,
		platform: opts.Platform,
		inUse:    opts.InUse,
		log:      opts.Logger,
	}
	if s.platform.OS == "" {
		s.platform = DefaultPlatform()
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	return s, nil
}

// Open opens the stores below a daemon root as ARCHITECTURE.md lays them
// out (content/, snapshots/, meta.db) and returns a Service over them;
// Close closes them. Tests, benchmarks and the daemon share this layout.
func Open(ctx context.Context, root string, opts Options) (*Service, error) {
	if err := os.MkdirAll(root, 0o711); err != nil {
		return nil, fmt.Errorf("image: %w", err)
	}
	cs, err := content.Open(ctx, filepath.Join(root, "content"), content.Options{Logger: opts.Logger})
	if err != nil {
		return nil, err
	}
	db, err := meta.Open(ctx, filepath.Join(root, "meta.db"), meta.Options{})
	if err != nil {
		return nil, err
	}
	sn, err := snapshot.Open(ctx, filepath.Join(root, "snapshots"), snapshot.Options{Logger: opts.Logger})
	if err != nil {
		db.Close()
		return nil, err
	}
	opts.Content, opts.Meta, opts.Snapshots = cs, db, sn
	s, err := New(opts)
	if err != nil {
		sn.Close()
		db.Close()
		return nil, err
	}
	s.closers = []func() error{sn.Close, db.Close}
	return s, nil
}

// Close closes the stores Open opened; a Service made by New has none.
func (s *Service) Close() error {
	var first error
	for _, c := range s.closers {
		if err := c(); err != nil && first == nil {
			first = err
		}
	}
	s.closers = nil
	return first
}

// Content returns the content store, for the packages that move blobs
// (distribution, imagearchive).
func (s *Service) Content() ContentStore { return s.content }

// Snapshots returns the snapshotter.
func (s *Service) Snapshots() Snapshotter { return s.snaps }

// Platform returns the platform chosen when an operation names none.
func (s *Service) Platform() Platform { return s.platform }

// Logger returns the service's logger.
func (s *Service) Logger() *slog.Logger { return s.log }
