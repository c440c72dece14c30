package imagearchive

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"

	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/berth-dev/berth/internal/archive"
	"github.com/berth-dev/berth/internal/content"
	"github.com/berth-dev/berth/internal/errdefs"
	"github.com/berth-dev/berth/internal/image"
)

// loader holds what a pass over an archive found.
type loader struct {
	a     *Archiver
	op    *image.Op
	files map[string]v1.Descriptor // regular file path → stored blob
	small map[string][]byte        // JSON files, by path
	links map[string]string        // symlink path → target path
}

// Load reads an image tarball from r (docker save, old or new layout, or an
// OCI archive), stores its blobs (verifying those named by digest),
// records its images under the names it carries (nameless otherwise),
// unpacks their layers and returns them. On bad input nothing of it stays.
func (a *Archiver) Load(ctx context.Context, r io.Reader) (imgs []image.Image, err error) {
	op, err := a.images.Begin(ctx, "load")
	if err != nil {
		return nil, err
	}
	// A cut archive is not worth resuming, unlike a cut download: any
	// failure removes what the load stored.
	defer func() {
		if err != nil {
			op.Abort(ctx)
		} else {
			op.Done(ctx)
		}
	}()
	l := &loader{a: a, op: op, files: map[string]v1.Descriptor{}, small: map[string][]byte{}, links: map[string]string{}}
	if err := l.read(ctx, r); err != nil {
		return nil, fmt.Errorf("load: %w", err)
	}
	var targets []named
	switch {
	case l.has(indexJSON):
		targets, err = l.fromIndex(ctx)
	case l.has(manifestJSON):
		targets, err = l.fromDockerManifest(ctx)
	default:
		err = fmt.Errorf("neither index.json nor manifest.json: not an image archive: %w", errdefs.ErrInvalidArgument)
	}
	if err != nil {
		return nil, fmt.Errorf("load: %w", err)
	}
	for _, t := range targets {
		img, err := a.images.Create(ctx, t.name, t.desc)
		if err != nil {
			return nil, fmt.Errorf("load: %w", err)
		}
		if err := a.images.UnpackIn(ctx, op, img); err != nil {
			return nil, fmt.Errorf("load %s: %w", img.Name, err)
		}
		imgs = append(imgs, img)
	}
	return imgs, nil
}

type named struct {
	name string
	desc v1.Descriptor
}

func (l *loader) has(p string) bool {
	_, ok := l.small[p]
	return ok
}

// read stores every file of the archive: blobs/<alg>/<hex> under their
// digest (verified), other files under the digest of their bytes; JSON
// files are also kept in memory.
func (l *loader) read(ctx context.Context, r io.Reader) error {
	// A compressed archive (docker save | gzip) is accepted too.
	dr, err := archive.DecompressStream(r)
	if err != nil {
		return err
	}
	defer dr.Close()
	tr := tar.NewReader(dr)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read archive: %v: %w", err, errdefs.ErrInvalidArgument)
		}
		p := path.Clean(strings.TrimPrefix(h.Name, "./"))
		switch h.Typeflag {
		case tar.TypeSymlink:
			l.links[p] = path.Join(path.Dir(p), h.Linkname)
			continue
		case tar.TypeReg:
		default:
			continue
		}
		if err := l.file(ctx, p, h.Size, tr); err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
	}
}

func (l *loader) file(ctx context.Context, p string, size int64, r io.Reader) error {
	if rest, ok := strings.CutPrefix(p, blobsDir); ok {
		d := digest.Digest(strings.Replace(rest, "/", ":", 1))
		if err := d.Validate(); err != nil {
			return fmt.Errorf("blob name is not a digest: %w", errdefs.ErrInvalidArgument)
		}
		desc := v1.Descriptor{Digest: d, Size: size}
		if err := l.op.Add(ctx, []digest.Digest{d}, nil); err != nil {
			return err
		}
		if size <= image.MaxManifestSize {
			data, err := io.ReadAll(r)
			if err != nil {
				return err
			}
			l.small[p] = data
			r = bytes.NewReader(data)
		}
		if err := content.WriteBlob(ctx, l.a.images.Content(), desc, r); err != nil {
			return err
		}
		l.files[p] = desc
		return nil
	}
	if strings.HasSuffix(p, ".json") || p == ociLayoutFile || p == repositories || p == "VERSION" {
		if size > image.MaxManifestSize {
			return fmt.Errorf("%d bytes is too large: %w", size, errdefs.ErrInvalidArgument)
		}
		data, err := io.ReadAll(r)
		if err != nil {
			return err
		}
		l.small[p] = data
		return nil
	}
	desc, err := l.a.images.WriteBlob(ctx, l.op, "", r)
	if err != nil {
		return err
	}
	l.files[p] = desc
	return nil
}

// resolve follows symlinks (old docker save links duplicate layers).
func (l *loader) resolve(p string) string {
	p = path.Clean(p)
	for range 16 {
		t, ok := l.links[p]
		if !ok {
			return p
		}
		p = t
	}
	return p
}

// fromIndex reads an OCI layout's index.json: each entry's name comes from
// the containerd/docker name annotation or, when that is missing, from an
// OCI ref.name that is a whole reference; a bare tag leaves it nameless.
func (l *loader) fromIndex(ctx context.Context) ([]named, error) {
	desc := v1.Descriptor{MediaType: v1.MediaTypeImageIndex, Digest: digest.FromBytes(l.small[indexJSON])}
	idx, err := image.ParseIndex(desc, l.small[indexJSON])
	if err != nil {
		return nil, err
	}
	var out []named
	for _, m := range idx.Manifests {
		if m.MediaType == "" {
			data := l.small[blobPath(m.Digest)]
			if m.MediaType, err = image.DetectMediaType(data); err != nil {
				return nil, err
			}
		}
		name := m.Annotations[annotationImageName]
		if name == "" {
			if rn := m.Annotations[v1.AnnotationRefName]; strings.ContainsAny(rn, ":/@") {
				name = rn
			}
		}
		m.Annotations, m.Platform = nil, nil
		out = append(out, named{name: name, desc: m})
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("index.json lists no images: %w", errdefs.ErrInvalidArgument)
	}
	return out, nil
}

// fromDockerManifest reads docker's manifest.json and writes an OCI
// manifest for each image: the config and layer files stored as blobs.
func (l *loader) fromDockerManifest(ctx context.Context) ([]named, error) {
	var entries []manifestEntry
	if err := json.Unmarshal(l.small[manifestJSON], &entries); err != nil {
		return nil, fmt.Errorf("manifest.json: %v: %w", err, errdefs.ErrInvalidArgument)
	}
	var out []named
	for _, e := range entries {
		cfgPath := l.resolve(e.Config)
		data, ok := l.small[cfgPath]
		if !ok {
			return nil, fmt.Errorf("manifest.json: config %s is not in the archive: %w", e.Config, errdefs.ErrInvalidArgument)
		}
		cdesc, _, err := l.a.images.WriteJSONBytes(ctx, l.op, v1.MediaTypeImageConfig, data)
		if err != nil {
			return nil, err
		}
		m := v1.Manifest{MediaType: v1.MediaTypeImageManifest, Config: cdesc}
		m.SchemaVersion = 2
		for _, lp := range e.Layers {
			desc, ok := l.files[l.resolve(lp)]
			if !ok {
				return nil, fmt.Errorf("manifest.json: layer %s is not in the archive: %w", lp, errdefs.ErrInvalidArgument)
			}
			if desc.MediaType, err = l.layerType(ctx, desc); err != nil {
				return nil, err
			}
			m.Layers = append(m.Layers, desc)
		}
		target, _, err := l.a.images.WriteJSON(ctx, l.op, v1.MediaTypeImageManifest, m)
		if err != nil {
			return nil, err
		}
		if len(e.RepoTags) == 0 {
			out = append(out, named{desc: target})
		}
		for _, t := range e.RepoTags {
			out = append(out, named{name: t, desc: target})
		}
	}
	return out, nil
}

// layerType sniffs a stored layer's compression for its media type.
func (l *loader) layerType(ctx context.Context, d v1.Descriptor) (string, error) {
	ra, err := l.a.images.Content().ReaderAt(ctx, d.Digest)
	if err != nil {
		return "", err
	}
	defer ra.Close()
	head, err := bufio.NewReader(content.NewReader(ra)).Peek(4)
	if err != nil && !errors.Is(err, io.EOF) {
		return "", err
	}
	switch archive.DetectCompression(head) {
	case archive.Gzip:
		return v1.MediaTypeImageLayerGzip, nil
	case archive.Zstd:
		return v1.MediaTypeImageLayerZstd, nil
	}
	return v1.MediaTypeImageLayer, nil
}
