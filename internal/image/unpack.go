package image

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"runtime"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"

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

// LayerStream opens layer i (of those given to ApplyLayers) for reading,
// compressed or not; it may block until the bytes are there. done is
// called once, when the unpacker is through with r, with its error (nil on
// success), and returns the error to report for the layer: the place to
// release a stream and to put a download's own failure first.
type LayerStream func(ctx context.Context, i int) (r io.Reader, done func(error) error, err error)

// UnpackedLayers returns how many layers of chain (chainIDs, bottom first)
// are unpacked, counted from the bottom: it finds the topmost one there,
// and a committed chain has everything below it too.
func (s *Service) UnpackedLayers(ctx context.Context, chain []digest.Digest) (int, error) {
	for i := len(chain) - 1; i >= 0; i-- {
		ok, err := s.HasLayer(ctx, chain[i])
		if err != nil {
			return 0, err
		}
		if ok {
			return i + 1, nil
		}
	}
	return 0, nil
}

// ApplyLayers unpacks layers, given by their diff_ids bottom first, on top
// of the committed chain parent ("" for none), and commits them in order
// under their chainIDs, which it returns. The bytes of each layer must
// hash to its diffID (the config's diff_id): a snapshot is shared by every
// image naming its chainID, so its content must be exactly what the chainID
// says. A layer unpacked meanwhile by someone else is not an error. It uses
// the cores: several layers unpack at once (up to
// GOMAXPROCS, at least 2), each into a snapshot of its own, so gunzip and
// file creation of layer N+1 proceed while layer N is still being written.
// A layer needs its lowers only for the attributes of directories it
// implies and for hardlinks to their files; archive.Apply waits for them
// then (ParentsReady), so the result is the same as one layer after the
// other.
//
// Durability: layers are written without any sync, then one syncfs makes
// them all durable, and only then are their snapshots committed, bottom
// up. So a crash never leaves a committed layer whose files were lost (the
// uncommitted ones are unpack-* snapshots, removed by GC), at the cost of
// one syncfs per pull instead of one per layer. On failure the layers
// below the first failed one are still committed, so a retry skips them;
// the others are removed.
func (s *Service) ApplyLayers(ctx context.Context, op *Op, parent digest.Digest, diffIDs []digest.Digest, open LayerStream) ([]digest.Digest, error) {
	n := len(diffIDs)
	chain := make([]digest.Digest, n)
	keys := make([]string, n)
	var protect []string
	for i, d := range diffIDs {
		below := parent
		if i > 0 {
			below = chain[i-1]
		}
		chain[i] = ChainID(below, d)
		var b [8]byte
		if _, err := rand.Read(b[:]); err != nil {
			return nil, err
		}
		keys[i] = unpackPrefix + hex.EncodeToString(b[:])
		protect = append(protect, keys[i], chain[i].String())
	}
	if err := op.Add(ctx, nil, protect); err != nil {
		return nil, err
	}
	committed := make([]bool, n)
	prepared := 0
	defer func() {
		for i := range prepared {
			if !committed[i] {
				if err := s.snaps.Remove(context.WithoutCancel(ctx), keys[i]); err != nil {
					s.log.WarnContext(ctx, "image: remove failed unpack", "key", keys[i], "err", err)
				}
			}
		}
	}()
	actx, cancel := context.WithCancel(ctx)
	defer cancel()
	errs := make([]error, n)
	ended := make([]chan struct{}, n) // closed when layer i's unpack ended
	for i := range ended {
		ended[i] = make(chan struct{})
	}
	below := func(i int) error { // waits for the layers below i
		for j := range i {
			select {
			case <-ended[j]:
				if errs[j] != nil {
					return fmt.Errorf("layer %s: %w", diffIDs[j], errs[j])
				}
			case <-actx.Done():
				return actx.Err()
			}
		}
		return nil
	}
	// layers[i] is layer i's upper followed by every layer below it, top
	// first. Only the bottom layer is prepared on its parent; the others
	// get theirs when committed (CommitOnto).
	layers := make([][]string, n)
	sem := make(chan struct{}, max(2, runtime.GOMAXPROCS(0)))
	// Each finished layer starts the filesystem's writeback at once (a
	// syncfs nobody waits for, one at a time), so the data goes to disk
	// while the other layers are still unpacking and the final syncfs,
	// the one that counts, has little left to flush.
	var flushing atomic.Bool
	earlyFlush := func(dir string) {
		if flushing.CompareAndSwap(false, true) {
			go func() {
				defer flushing.Store(false)
				_ = syncFS(dir)
			}()
		}
	}
	// unpack applies layer i, holding its slot; ended[i] is closed when it
	// returns.
	unpack := func(i int) {
		defer func() { <-sem }()
		defer close(ended[i])
		opts := archive.ApplyOptions{
			OverlayWhiteouts: i > 0 || parent != "",
			Parents:          layers[i][1:],
			NoSync:           true, // one syncfs below, for all
			Logger:           s.log,
		}
		if i > 0 {
			opts.ParentsReady = func() error { return below(i) }
		}
		errs[i] = s.unpackInto(actx, layers[i][0], diffIDs[i], opts, func(ctx context.Context) (io.Reader, func(error) error, error) {
			return open(ctx, i)
		})
		if errs[i] != nil {
			cancel()
		} else if i < n-1 {
			earlyFlush(layers[i][0])
		}
	}
	usages := make([]*snapshot.Usage, n)
	var wg sync.WaitGroup
	var perr error
	for i := range n {
		// Slots go bottom first, so a layer waiting for its lowers never
		// holds one they need. Each layer starts right after its Prepare,
		// so the bottom one can stream from its download at once.
		select {
		case sem <- struct{}{}:
		case <-actx.Done():
		}
		if perr == nil {
			perr = actx.Err()
		}
		if perr == nil {
			perr = s.prepareLayer(ctx, keys[i], i, parent, layers)
			if perr == nil {
				prepared++
			}
		}
		if perr != nil {
			errs[i] = perr
			close(ended[i])
			cancel()
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			unpack(i)
			if errs[i] == nil {
				// Measured here, while other layers still unpack, rather
				// than by each commit in turn at the end; a failure leaves
				// it to the commit.
				if u, err := s.snaps.Usage(actx, keys[i]); err == nil {
					usages[i] = &u
				}
			}
		}()
	}
	wg.Wait()

	ok := 0 // layers below the first failure
	for ok < n && errs[ok] == nil {
		ok++
	}
	var err error
	if ok < n {
		// The cause, not the cancellations it caused in the other layers.
		err = errs[ok]
		for _, e := range errs[ok:] {
			if e != nil && !errors.Is(e, context.Canceled) {
				err = e
				break
			}
		}
	}
	cctx := context.WithoutCancel(ctx)
	if ok > 0 {
		if serr := syncFS(layers[0][0]); serr != nil {
			return nil, fmt.Errorf("unpack: syncfs: %w", serr)
		}
	}
	for i := range ok {
		p := ""
		if i > 0 {
			p = chain[i-1].String()
		}
		var copts []snapshot.CommitOption
		if usages[i] != nil {
			copts = append(copts, snapshot.WithUsage(*usages[i]))
		}
		cerr := s.snaps.CommitOnto(cctx, chain[i].String(), keys[i], p, copts...)
		if errdefs.IsAlreadyExists(cerr) {
			continue // unpacked meanwhile by another pull; ours goes
		}
		if cerr != nil {
			return nil, fmt.Errorf("unpack layer %s: %w", diffIDs[i], cerr)
		}
		committed[i] = true
	}
	if err != nil {
		return nil, err
	}
	return chain, nil
}

// prepareLayer makes layer i's snapshot, on parent for the bottom layer
// and alone for the others, and records its directories in layers.
func (s *Service) prepareLayer(ctx context.Context, key string, i int, parent digest.Digest, layers [][]string) error {
	p := ""
	if i == 0 {
		p = parent.String()
	}
	mounts, err := s.snaps.Prepare(ctx, key, p)
	if err != nil {
		return fmt.Errorf("unpack: %w", err)
	}
	upper, lowers, err := snapshot.LayerDirs(mounts)
	if err != nil {
		return fmt.Errorf("unpack: %w", err)
	}
	if i > 0 {
		lowers = layers[i-1]
	}
	layers[i] = append([]string{upper}, lowers...)
	return nil
}

// unpackInto applies one layer, opened by open, into upper, checking that
// its uncompressed bytes hash to diffID.
func (s *Service) unpackInto(ctx context.Context, upper string, diffID digest.Digest, opts archive.ApplyOptions,
	open func(context.Context) (io.Reader, func(error) error, error)) error {
	r, done, err := open(ctx)
	if err != nil {
		return err
	}
	dr, err := archive.DecompressStream(r)
	if err == nil {
		h := sha256.New()
		_, err = archive.Apply(ctx, upper, io.TeeReader(dr, h), opts)
		dr.Close()
		if got := digest.NewDigest(digest.SHA256, h); err == nil && got != diffID {
			err = fmt.Errorf("uncompressed content hashes to %s but the config says %s: %w",
				got, diffID, errdefs.ErrInvalidArgument)
		}
	}
	if err != nil {
		err = fmt.Errorf("unpack layer %s: %w", diffID, err)
	}
	return done(err)
}

// syncFS flushes the whole filesystem holding dir.
func syncFS(dir string) error {
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	return unix.Syncfs(fd)
}

// unpack makes sure every layer of r is unpacked, reading layers from the
// content store; layers already unpacked are skipped.
func (s *Service) unpack(ctx context.Context, op *Op, r Resolved) error {
	chain := r.ChainIDs()
	start, err := s.UnpackedLayers(ctx, chain)
	if err != nil {
		return err
	}
	if start == len(chain) {
		return nil
	}
	var parent digest.Digest
	if start > 0 {
		parent = chain[start-1]
	}
	_, err = s.ApplyLayers(ctx, op, parent, r.Image.RootFS.DiffIDs[start:], func(ctx context.Context, i int) (io.Reader, func(error) error, error) {
		layer := r.Layers[start+i]
		ra, err := s.content.ReaderAt(ctx, layer.Digest)
		if err != nil {
			return nil, nil, fmt.Errorf("layer %s: %w", layer.Digest, err)
		}
		sr := content.NewSequentialReader(ra)
		return sr, func(err error) error { sr.Close(); ra.Close(); return err }, nil
	})
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
