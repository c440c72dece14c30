package distribution

import (
	"context"
	"fmt"
	"io"
	"sync"

	"github.com/google/go-containerregistry/pkg/name"
	ggcr "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/berth-dev/berth/internal/content"
	"github.com/berth-dev/berth/internal/errdefs"
	"github.com/berth-dev/berth/internal/image"
)

// PushOptions tune Push.
type PushOptions struct {
	Progress ProgressFunc
}

// Push uploads the image named ref (a tag or digest name in the store) to
// the registry and repository in that name: the platform manifest the
// record uses, its config and its layers. Blobs the repository has are
// skipped; blobs another repository of the same registry is known to have
// (another local name of the image points there) are mounted across
// repositories instead of uploaded. It returns the pushed manifest's
// descriptor.
func (c *Client) Push(ctx context.Context, ref string, opts PushOptions) (v1.Descriptor, error) {
	r, err := image.ParseReference(ref)
	if err != nil {
		return v1.Descriptor{}, err
	}
	d, err := c.push(ctx, r, newReporter(opts.Progress))
	if err != nil {
		return d, fmt.Errorf("push %s: %w", r.Familiar(), classify(err))
	}
	return d, nil
}

func (c *Client) push(ctx context.Context, r image.Reference, rep *reporter) (v1.Descriptor, error) {
	img, err := c.images.Get(ctx, r.String())
	if err != nil {
		return v1.Descriptor{}, err
	}
	det, err := c.images.Inspect(ctx, img.Name)
	if err != nil {
		return v1.Descriptor{}, err
	}
	rep.emit(Progress{Status: StatusPushingRepository, Detail: r.Name()})
	ep := endpoint{host: r.Domain, insecure: c.isInsecure(r.Domain)}
	repo, err := c.repository(ep, r.Path)
	if err != nil {
		return v1.Descriptor{}, err
	}
	pusher, err := remote.NewPusher(
		remote.WithAuthFromKeychain(c.keychain),
		remote.WithTransport(c.base),
		remote.WithContext(ctx),
		remote.WithJobs(c.opts.MaxUploads),
	)
	if err != nil {
		return v1.Descriptor{}, err
	}
	sources, err := c.mountSources(ctx, r)
	if err != nil {
		return v1.Descriptor{}, err
	}
	cs := c.images.Content()

	// Layers in parallel (bounded), then the config, then the manifest.
	sem := make(chan struct{}, c.opts.MaxUploads)
	var wg sync.WaitGroup
	errs := make([]error, len(det.Layers))
	for i, l := range det.Layers {
		bl := &blobLayer{cs: cs, desc: l, rep: rep, diffID: det.Image.RootFS.DiffIDs[i]}
		rep.emit(Progress{ID: ShortID(l.Digest), Status: StatusPreparing})
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			var layer ggcr.Layer = bl
			src, mountable := sources[l.Digest]
			if mountable {
				layer = &remote.MountableLayer{Layer: bl, Reference: src.Digest(l.Digest.String())}
			}
			if err := pusher.Upload(ctx, repo, layer); err != nil {
				errs[i] = fmt.Errorf("layer %s: %w", l.Digest, err)
				return
			}
			switch {
			case bl.read():
				rep.emit(Progress{ID: ShortID(l.Digest), Status: StatusPushed})
			case mountable:
				rep.emit(Progress{ID: ShortID(l.Digest), Status: StatusMounted, Detail: src.RepositoryStr()})
			default:
				rep.emit(Progress{ID: ShortID(l.Digest), Status: StatusLayerExists})
			}
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return v1.Descriptor{}, err
		}
	}
	if err := pusher.Upload(ctx, repo, &blobLayer{cs: cs, desc: det.Config}); err != nil {
		return v1.Descriptor{}, fmt.Errorf("config %s: %w", det.Config.Digest, err)
	}
	raw, err := content.ReadBlob(ctx, cs, det.Manifest)
	if err != nil {
		return v1.Descriptor{}, err
	}
	var nref name.Reference = repo.Tag(r.Tag)
	if r.Digest != "" {
		if r.Digest != det.Manifest.Digest {
			return v1.Descriptor{}, fmt.Errorf("push by digest %s: the image's manifest is %s: %w", r.Digest, det.Manifest.Digest, errdefs.ErrInvalidArgument)
		}
		nref = repo.Digest(r.Digest.String())
	}
	if err := pusher.Put(ctx, nref, rawManifest{raw: raw, mt: det.Manifest.MediaType}); err != nil {
		return v1.Descriptor{}, fmt.Errorf("manifest: %w", err)
	}
	if err := c.images.SetRepoDigest(ctx, r, det.Manifest.Digest); err != nil {
		return v1.Descriptor{}, err
	}
	rep.emit(Progress{ID: r.Tag, Status: StatusDigest, Detail: det.Manifest.Digest.String(), Total: det.Manifest.Size})
	return det.Manifest, nil
}

// mountSources maps the layers of other local images of the same registry
// (but other repositories) to a repository that should have them: where
// they were pulled from or pushed to.
func (c *Client) mountSources(ctx context.Context, r image.Reference) (map[digest.Digest]name.Repository, error) {
	out := map[digest.Digest]name.Repository{}
	sums, err := c.images.List(ctx)
	if err != nil {
		return nil, err
	}
	for _, s := range sums {
		for _, n := range append(append([]string{}, s.RepoTags...), s.RepoDigests...) {
			o, err := image.ParseReference(n)
			if err != nil || o.Domain != r.Domain || o.Path == r.Path {
				continue
			}
			det, err := c.images.Inspect(ctx, o.String())
			if err != nil {
				continue
			}
			repo, err := c.repository(endpoint{host: o.Domain, insecure: c.isInsecure(o.Domain)}, o.Path)
			if err != nil {
				continue
			}
			for _, l := range det.Layers {
				out[l.Digest] = repo
			}
		}
	}
	return out, nil
}

// blobLayer is a blob of the content store seen as a go-containerregistry
// layer; it records whether the pusher read it (uploaded it).
type blobLayer struct {
	cs     image.ContentStore
	desc   v1.Descriptor
	diffID digest.Digest
	rep    *reporter
	mu     sync.Mutex
	opened bool
}

func (b *blobLayer) read() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.opened
}

func (b *blobLayer) Digest() (ggcr.Hash, error) { return ggcr.NewHash(b.desc.Digest.String()) }
func (b *blobLayer) DiffID() (ggcr.Hash, error) {
	if b.diffID == "" {
		return b.Digest()
	}
	return ggcr.NewHash(b.diffID.String())
}
func (b *blobLayer) Size() (int64, error) { return b.desc.Size, nil }
func (b *blobLayer) MediaType() (types.MediaType, error) {
	return types.MediaType(b.desc.MediaType), nil
}
func (b *blobLayer) Uncompressed() (io.ReadCloser, error) {
	return nil, fmt.Errorf("uncompressed layer: %w", errdefs.ErrNotImplemented)
}

func (b *blobLayer) Compressed() (io.ReadCloser, error) {
	ra, err := b.cs.ReaderAt(context.Background(), b.desc.Digest)
	if err != nil {
		return nil, err
	}
	b.mu.Lock()
	b.opened = true
	b.mu.Unlock()
	var r io.Reader = content.NewReader(ra)
	if b.rep != nil {
		r = &counter{r: r, rep: b.rep, id: ShortID(b.desc.Digest), status: StatusPushing, total: b.desc.Size}
	}
	return struct {
		io.Reader
		io.Closer
	}{r, ra}, nil
}

// rawManifest is a manifest to put as it is, byte for byte.
type rawManifest struct {
	raw []byte
	mt  string
}

func (m rawManifest) RawManifest() ([]byte, error)        { return m.raw, nil }
func (m rawManifest) MediaType() (types.MediaType, error) { return types.MediaType(m.mt), nil }
