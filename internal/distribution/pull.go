package distribution

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"sync"

	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/berth-dev/berth/internal/content"
	"github.com/berth-dev/berth/internal/errdefs"
	"github.com/berth-dev/berth/internal/image"
)

// manifestAccept lists what a pull accepts; schema 1 is listed so that a
// registry holding only that answers with it and the error can say so.
var manifestAccept = strings.Join([]string{
	v1.MediaTypeImageIndex, image.MediaTypeDockerManifestList,
	v1.MediaTypeImageManifest, image.MediaTypeDockerManifest,
	"application/vnd.docker.distribution.manifest.v1+prettyjws",
}, ", ")

// PullOptions tune Pull.
type PullOptions struct {
	// Platform picks from multi-platform images; nil means the image
	// service's platform.
	Platform *image.Platform
	Progress ProgressFunc
}

// Pull fetches ref (by tag or digest) with its config and the layers of
// one platform, verifying every blob against its digest and every
// unpacked layer against its diff_id, unpacks the layers into snapshots,
// and records the image under ref with the manifest digest as a repo
// digest. On bad input (wrong digests, missing blobs, unsafe layers,
// unknown media types) nothing of the pull stays in the store; on a cut
// connection or cancellation what was fetched stays (under a lease, for a
// day) so that pulling again resumes.
func (c *Client) Pull(ctx context.Context, ref string, opts PullOptions) (image.Image, error) {
	r, err := image.ParseReference(ref)
	if err != nil {
		return image.Image{}, err
	}
	platform := c.images.Platform()
	if opts.Platform != nil {
		platform = *opts.Platform
	}
	rep := newReporter(opts.Progress)
	ident := r.Tag
	if r.Digest != "" {
		ident = r.Digest.String()
	}
	rep.emit(Progress{ID: ident, Status: StatusPullingFrom, Detail: r.Familiar()})

	op, err := c.images.Begin(ctx, "pull "+r.String())
	if err != nil {
		return image.Image{}, err
	}
	target, err := c.pull(ctx, op, r, platform, rep)
	var img image.Image
	if err == nil {
		name := r.String()
		if r.Digest != "" {
			name = r.Digested(r.Digest).String()
		}
		var old image.Image
		old, _ = c.images.Get(ctx, name)
		img, err = c.images.CreateForPlatform(ctx, name, target, platform)
		if err == nil {
			err = c.images.SetRepoDigest(ctx, r, target.Digest)
		}
		if err == nil {
			rep.emit(Progress{Status: StatusDigest, Detail: target.Digest.String()})
			if old.Target.Digest == target.Digest {
				rep.emit(Progress{Status: StatusImageUpToDate, Detail: r.Familiar()})
			} else {
				rep.emit(Progress{Status: StatusDownloadedNewer, Detail: r.Familiar()})
			}
		}
	}
	op.End(ctx, err)
	if err != nil {
		return image.Image{}, fmt.Errorf("pull %s: %w", r.Familiar(), err)
	}
	return img, nil
}

// pull tries the mirrors and then the registry itself; the first that
// serves the manifest serves the blobs too.
func (c *Client) pull(ctx context.Context, op *image.Op, r image.Reference, platform image.Platform, rep *reporter) (v1.Descriptor, error) {
	var errs []error
	for _, ep := range c.endpoints(r.Domain) {
		rc, err := c.connect(ctx, ep, r.Path, transport.PullScope)
		if err == nil {
			var target v1.Descriptor
			var data []byte
			target, data, err = rc.manifest(ctx, r)
			if err == nil {
				return target, c.pullManifest(ctx, op, rc, target, data, platform, rep)
			}
		}
		if !ep.mirror || ctx.Err() != nil {
			return v1.Descriptor{}, errors.Join(append(errs, err)...)
		}
		c.log.InfoContext(ctx, "distribution: mirror failed, trying the next endpoint", "mirror", ep.host, "err", err)
		errs = append(errs, fmt.Errorf("mirror %s: %w", ep.host, err))
	}
	return v1.Descriptor{}, errors.Join(errs...)
}

// manifest fetches the manifest or index that r names and checks it hashes
// to the digest asked for (or the one the registry announced for a tag).
func (rc *repoClient) manifest(ctx context.Context, r image.Reference) (v1.Descriptor, []byte, error) {
	ident := r.Tag
	if r.Digest != "" {
		ident = r.Digest.String()
	}
	return rc.manifestByIdent(ctx, ident, r.Digest)
}

func (rc *repoClient) manifestByIdent(ctx context.Context, ident string, want digest.Digest) (v1.Descriptor, []byte, error) {
	resp, err := rc.get(ctx, rc.url("manifests", ident), http.Header{"Accept": {manifestAccept}}, http.StatusOK)
	if err != nil {
		return v1.Descriptor{}, nil, fmt.Errorf("manifest %s: %w", ident, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, image.MaxManifestSize+1))
	if err != nil {
		return v1.Descriptor{}, nil, fmt.Errorf("manifest %s: %w", ident, classify(err))
	}
	if len(data) > image.MaxManifestSize {
		return v1.Descriptor{}, nil, fmt.Errorf("manifest %s: larger than %d bytes: %w", ident, image.MaxManifestSize, errdefs.ErrInvalidArgument)
	}
	got := digest.FromBytes(data)
	if want == "" {
		if h := digest.Digest(resp.Header.Get("Docker-Content-Digest")); h.Validate() == nil && h.Algorithm() == digest.SHA256 {
			want = h
		}
	}
	if want != "" && want != got {
		return v1.Descriptor{}, nil, fmt.Errorf("manifest %s: content hashes to %s, expected %s: %w", ident, got, want, errdefs.ErrInvalidArgument)
	}
	mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if mt == "" || mt == "application/json" || mt == "text/plain" || mt == "application/octet-stream" {
		if mt, err = image.DetectMediaType(data); err != nil {
			return v1.Descriptor{}, nil, fmt.Errorf("manifest %s: %w", ident, err)
		}
	}
	return v1.Descriptor{MediaType: mt, Digest: got, Size: int64(len(data))}, data, nil
}

// pullManifest stores target (and, for an index, the platform's manifest),
// then the config and the layers.
func (c *Client) pullManifest(ctx context.Context, op *image.Op, rc *repoClient, target v1.Descriptor, data []byte, platform image.Platform, rep *reporter) error {
	cs := c.images.Content()
	mdesc, mdata := target, data
	if image.IsIndex(target.MediaType) {
		idx, err := image.ParseIndex(target, data)
		if err != nil {
			return err
		}
		if mdesc, err = image.SelectPlatform(idx, platform); err != nil {
			return err
		}
		if !image.IsManifest(mdesc.MediaType) {
			return fmt.Errorf("index %s: entry %s is a %s, not an image manifest: %w", target.Digest, mdesc.Digest, mdesc.MediaType, errdefs.ErrInvalidArgument)
		}
		got, b, err := rc.manifestByIdent(ctx, mdesc.Digest.String(), mdesc.Digest)
		if err != nil {
			return err
		}
		if got.Size != mdesc.Size && mdesc.Size != 0 {
			return fmt.Errorf("manifest %s: %d bytes, index says %d: %w", mdesc.Digest, got.Size, mdesc.Size, errdefs.ErrInvalidArgument)
		}
		mdata = b
	}
	m, err := image.ParseManifest(mdesc, mdata)
	if err != nil {
		return err
	}
	// Config first: it is small and the layers cannot be checked without it.
	if err := op.Add(ctx, []digest.Digest{m.Config.Digest}, nil); err != nil {
		return err
	}
	if err := c.fetchBlob(ctx, rc, m.Config); err != nil {
		return fmt.Errorf("config %s: %w", m.Config.Digest, err)
	}
	cdata, err := content.ReadBlob(ctx, cs, m.Config)
	if err != nil {
		return err
	}
	cfg, err := image.ParseConfig(m.Config, cdata)
	if err != nil {
		return err
	}
	if err := image.CheckLayers(mdesc, m, cfg); err != nil {
		return err
	}
	if err := c.pullLayers(ctx, op, rc, m.Layers, cfg.RootFS.DiffIDs, rep); err != nil {
		return err
	}
	// The manifests go in last: a store holding a manifest holds its blobs.
	for _, b := range []struct {
		d    v1.Descriptor
		data []byte
	}{{mdesc, mdata}, {target, data}} {
		if err := op.Add(ctx, []digest.Digest{b.d.Digest}, nil); err != nil {
			return err
		}
		if err := content.WriteBlob(ctx, cs, b.d, bytes.NewReader(b.data)); err != nil {
			return err
		}
	}
	return nil
}

// fetchBlob downloads a small blob into the content store (no tee).
func (c *Client) fetchBlob(ctx context.Context, rc *repoClient, d v1.Descriptor) error {
	j := &layerJob{desc: d, ready: make(chan struct{}), stream: make(chan *io.PipeReader, 1), done: make(chan struct{})}
	return c.download(ctx, rc, j, nil)
}

// layerJob is one layer moving through the pull pipeline.
type layerJob struct {
	desc   v1.Descriptor
	diffID digest.Digest
	id     string
	// ready is closed when the unpacker is waiting for this layer: a
	// download starting after that tees its bytes into stream.
	ready  chan struct{}
	stream chan *io.PipeReader
	done   chan struct{} // closed when the download ended; err is then set
	err    error
}

// errStopped tells a teed download that its unpacker gave up first.
var errStopped = errors.New("unpack stopped")

// pullLayers downloads the missing layers, at most MaxDownloads at once in
// manifest order, and unpacks them bottom up as soon as each one's turn
// comes: streaming from the download when the layer's download starts
// after its turn came, from the content store otherwise.
func (c *Client) pullLayers(ctx context.Context, op *image.Op, rc *repoClient, layers []v1.Descriptor, diffIDs []digest.Digest, rep *reporter) error {
	chain := image.ChainIDs(diffIDs)
	start, err := c.images.UnpackedLayers(ctx, chain)
	if err != nil {
		return err
	}
	// Protect the whole chain now: a concurrent GC must not take a layer
	// this pull counts on as already there.
	var keys []string
	var blobs []digest.Digest
	for i := range chain {
		keys = append(keys, chain[i].String())
		blobs = append(blobs, layers[i].Digest)
	}
	if err := op.Add(ctx, blobs, keys); err != nil {
		return err
	}
	for i := range start {
		rep.emit(Progress{ID: ShortID(layers[i].Digest), Status: StatusAlreadyExists})
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	sem := make(chan struct{}, c.opts.MaxDownloads)
	jobs := make([]*layerJob, len(layers))
	var wg sync.WaitGroup
	for i := start; i < len(layers); i++ {
		j := &layerJob{desc: layers[i], diffID: diffIDs[i], id: ShortID(layers[i].Digest),
			ready: make(chan struct{}), stream: make(chan *io.PipeReader, 1), done: make(chan struct{})}
		jobs[i] = j
		rep.emit(Progress{ID: j.id, Status: StatusPullingFsLayer})
	}
	// Start in order so that the semaphore hands slots out bottom first.
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := start; i < len(layers); i++ {
			j := jobs[i]
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				j.err = ctx.Err()
				close(j.done)
				continue
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer func() { <-sem }()
				defer close(j.done)
				j.err = c.download(ctx, rc, j, rep)
			}()
		}
	}()
	// Layers unpack several at once (ApplyLayers), each streaming from its
	// download when that starts after the layer's turn came.
	var parent digest.Digest
	if start > 0 {
		parent = chain[start-1]
	}
	if start < len(layers) {
		_, err = c.images.ApplyLayers(ctx, op, parent, diffIDs[start:], func(ctx context.Context, i int) (io.Reader, func(error) error, error) {
			return c.openLayer(ctx, jobs[start+i], rep)
		})
	}
	if err != nil {
		cancel()
	}
	wg.Wait()
	return err
}

// openLayer hands layer j to the unpacker: the download's stream when the
// download starts after this, else the blob once it is in the content
// store. done reports the layer complete, or the download's failure when
// there was one (the cause of a broken stream).
func (c *Client) openLayer(ctx context.Context, j *layerJob, rep *reporter) (io.Reader, func(error) error, error) {
	close(j.ready)
	var pr *io.PipeReader
	select {
	case pr = <-j.stream:
	case <-j.done:
		select {
		case pr = <-j.stream:
		default:
		}
	case <-ctx.Done():
		return nil, nil, ctx.Err()
	}
	var src io.Reader = pr
	var ra content.ReaderAt
	var seq io.Closer
	if pr == nil {
		if j.err != nil {
			return nil, nil, j.err
		}
		var err error
		if ra, err = c.images.Content().ReaderAt(ctx, j.desc.Digest); err != nil {
			return nil, nil, fmt.Errorf("layer %s: %w", j.desc.Digest, err)
		}
		sr := content.NewSequentialReader(ra)
		src, seq = sr, sr
	}
	rep.emit(Progress{ID: j.id, Status: StatusExtracting, Total: j.desc.Size})
	done := func(err error) error {
		if ra != nil {
			seq.Close()
			ra.Close()
		}
		if pr != nil {
			// Release a download still writing to a pipe nobody reads.
			pr.CloseWithError(errStopped)
			<-j.done
			if j.err != nil {
				err = j.err // the download's failure is the cause
			}
		}
		if err != nil {
			return fmt.Errorf("layer %s: %w", j.desc.Digest, err)
		}
		rep.emit(Progress{ID: j.id, Status: StatusPullComplete})
		return nil
	}
	return &counter{r: src, rep: rep, id: j.id, status: StatusExtracting, total: j.desc.Size}, done, nil
}

// download fetches one blob into the content store, resuming a partial
// ingest with a Range request, and tees it to the unpacker when that is
// already waiting for it. Bytes are hashed once, by the ingest; the tee
// ends (EOF) only after the digest matched, so the unpacker never commits
// a layer from bytes that turn out wrong.
func (c *Client) download(ctx context.Context, rc *repoClient, j *layerJob, rep *reporter) (err error) {
	cs := c.images.Content()
	w, err := cs.Writer(ctx, "", j.desc)
	if errdefs.IsAlreadyExists(err) {
		c.report(rep, Progress{ID: j.id, Status: StatusDownloadComplete})
		return nil
	}
	if err != nil {
		return err
	}
	defer w.Close() // keeps a partial ingest for resumption
	var pw *io.PipeWriter
	defer func() {
		if pw != nil {
			pw.CloseWithError(err) // nil: EOF after a verified commit
		}
	}()
	off := w.Offset()
	if off == 0 {
		select {
		case <-j.ready:
			var pr *io.PipeReader
			pr, pw = io.Pipe()
			j.stream <- pr
		default:
		}
	}
	body, from, err := rc.blob(ctx, j.desc, off)
	if err != nil {
		return err
	}
	defer body.Close()
	if from != off {
		// The registry ignored the Range: start over.
		if err := w.Truncate(0); err != nil {
			return err
		}
	}
	var dst io.Writer = w
	if pw != nil {
		dst = &teeWriter{w: w, pw: pw}
	}
	src := io.Reader(body)
	if rep != nil {
		src = &counter{r: body, rep: rep, id: j.id, status: StatusDownloading, n: from, total: j.desc.Size}
	}
	// The request's context ends the body's reads when cancelled.
	if _, err := io.CopyBuffer(dst, src, make([]byte, 256<<10)); err != nil {
		return fmt.Errorf("download %s: %w", j.desc.Digest, classify(err))
	}
	if w.Offset() < j.desc.Size {
		return fmt.Errorf("download %s: stream ended after %d of %d bytes: %w: %w",
			j.desc.Digest, w.Offset(), j.desc.Size, io.ErrUnexpectedEOF, errdefs.ErrUnavailable)
	}
	c.report(rep, Progress{ID: j.id, Status: StatusVerifying})
	if err := w.Commit(ctx, j.desc.Size, j.desc.Digest); err != nil {
		return fmt.Errorf("download %s: %w", j.desc.Digest, err)
	}
	c.report(rep, Progress{ID: j.id, Status: StatusDownloadComplete})
	return nil
}

// teeWriter writes to the ingest and to the unpacker's pipe. When the
// unpacker gives up (a corrupt stream, an unsafe entry) the download goes
// on without it, so the error reported is the digest mismatch when that
// was the cause, not whatever the bad bytes did to gunzip or tar.
type teeWriter struct {
	w  io.Writer
	pw *io.PipeWriter
}

func (t *teeWriter) Write(p []byte) (int, error) {
	n, err := t.w.Write(p)
	if err != nil || t.pw == nil {
		return n, err
	}
	if _, perr := t.pw.Write(p); perr != nil {
		t.pw = nil
	}
	return n, nil
}

func (c *Client) report(rep *reporter, p Progress) {
	if rep != nil {
		rep.emit(p)
	}
}

// blob opens blob d from offset off. It returns the offset the body
// starts at: off when the registry honoured the Range, else 0.
func (rc *repoClient) blob(ctx context.Context, d v1.Descriptor, off int64) (io.ReadCloser, int64, error) {
	hdr := http.Header{}
	if off > 0 {
		hdr.Set("Range", "bytes="+strconv.FormatInt(off, 10)+"-")
	}
	resp, err := rc.get(ctx, rc.url("blobs", d.Digest.String()), hdr, http.StatusOK, http.StatusPartialContent)
	if err != nil {
		return nil, 0, fmt.Errorf("blob %s: %w", d.Digest, err)
	}
	if resp.StatusCode == http.StatusPartialContent {
		var start int64 = -1
		fmt.Sscanf(resp.Header.Get("Content-Range"), "bytes %d-", &start)
		if start != off {
			resp.Body.Close()
			return nil, 0, fmt.Errorf("blob %s: asked for bytes from %d, got range %q: %w",
				d.Digest, off, resp.Header.Get("Content-Range"), errdefs.ErrInvalidArgument)
		}
		return resp.Body, off, nil
	}
	return resp.Body, 0, nil
}
