// Package imagearchive moves images between berth's store and tar files:
// Save writes a `docker save` tarball that is also an OCI image layout,
// Load reads `docker save` tarballs (the layout before docker 25, with
// <id>/layer.tar, and the OCI one after) and OCI archives (skopeo's
// docker-archive: and oci-archive:), and Import turns a plain rootfs tar
// into a one-layer image.
package imagearchive

import (
	"archive/tar"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/berth-dev/berth/internal/content"
	"github.com/berth-dev/berth/internal/image"
)

// Names inside an archive.
const (
	manifestJSON  = "manifest.json"
	indexJSON     = "index.json"
	ociLayoutFile = "oci-layout"
	repositories  = "repositories"
	blobsDir      = "blobs/"

	// annotationImageName carries the full reference, as containerd and
	// docker 25+ write it; the OCI ref.name annotation carries the tag.
	annotationImageName = "io.containerd.image.name"
)

// manifestEntry is one image of docker's manifest.json.
type manifestEntry struct {
	Config   string   `json:"Config"`
	RepoTags []string `json:"RepoTags"`
	Layers   []string `json:"Layers"`
}

// Archiver saves, loads and imports the images of one store.
type Archiver struct {
	images *image.Service
}

// New returns an Archiver over images.
func New(images *image.Service) *Archiver { return &Archiver{images: images} }

// Save writes the images refs name (names or IDs) to w as one tar: the
// blobs under blobs/sha256/, index.json and oci-layout (an OCI image
// layout) and manifest.json (what `docker load` reads), as docker 25+ does.
// Layers are written as stored (compressed); docker and skopeo read them.
// Several names of one image share one manifest.json entry.
func (a *Archiver) Save(ctx context.Context, w io.Writer, refs ...string) error {
	tw := tar.NewWriter(w)
	cs := a.images.Content()
	var index v1.Index
	index.SchemaVersion = 2
	index.MediaType = v1.MediaTypeImageIndex
	var entries []manifestEntry
	byManifest := map[digest.Digest]int{} // manifest → entries index
	written := map[digest.Digest]bool{}
	now := time.Now()
	writeDir := func(name string) error {
		return tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: name, Mode: 0o755, ModTime: now})
	}
	if err := writeDir(blobsDir); err != nil {
		return err
	}
	if err := writeDir(blobsDir + "sha256/"); err != nil {
		return err
	}
	writeBlob := func(d v1.Descriptor) error {
		if written[d.Digest] {
			return nil
		}
		written[d.Digest] = true
		ra, err := cs.ReaderAt(ctx, d.Digest)
		if err != nil {
			return fmt.Errorf("blob %s: %w", d.Digest, err)
		}
		defer ra.Close()
		if err := tw.WriteHeader(&tar.Header{Name: blobPath(d.Digest), Mode: 0o444, Size: ra.Size(), ModTime: now}); err != nil {
			return err
		}
		_, err = io.Copy(tw, content.NewReader(ra))
		return err
	}
	for _, ref := range refs {
		det, err := a.images.Inspect(ctx, ref)
		if err != nil {
			return fmt.Errorf("save %s: %w", ref, err)
		}
		for _, d := range append([]v1.Descriptor{det.Config, det.Manifest}, det.Layers...) {
			if err := writeBlob(d); err != nil {
				return fmt.Errorf("save %s: %w", ref, err)
			}
		}
		i, seen := byManifest[det.Manifest.Digest]
		if !seen {
			i = len(entries)
			byManifest[det.Manifest.Digest] = i
			e := manifestEntry{Config: blobPath(det.Config.Digest), RepoTags: []string{}}
			for _, l := range det.Layers {
				e.Layers = append(e.Layers, blobPath(l.Digest))
			}
			entries = append(entries, e)
		}
		// The name asked for, if it is a tag; an ID saves the image nameless.
		name := ""
		if r, err := image.ParseReference(ref); err == nil && r.IsTagged() {
			if img, err := a.images.Get(ctx, ref); err == nil && img.Name == r.String() {
				name = r.String()
				entries[i].RepoTags = append(entries[i].RepoTags, r.Familiar())
			}
		}
		if name != "" || !seen {
			md := det.Manifest
			md.Platform = &v1.Platform{OS: det.Image.OS, Architecture: det.Image.Architecture, Variant: det.Image.Variant}
			if name != "" {
				r, _ := image.ParseReference(name)
				md.Annotations = map[string]string{annotationImageName: name, v1.AnnotationRefName: r.Tag}
			}
			index.Manifests = append(index.Manifests, md)
		}
	}
	for _, f := range []struct {
		name string
		v    any
	}{
		{indexJSON, index},
		{manifestJSON, entries},
		{ociLayoutFile, v1.ImageLayout{Version: v1.ImageLayoutVersion}},
	} {
		data, err := json.Marshal(f.v)
		if err != nil {
			return err
		}
		if err := tw.WriteHeader(&tar.Header{Name: f.name, Mode: 0o644, Size: int64(len(data)), ModTime: now}); err != nil {
			return err
		}
		if _, err := tw.Write(data); err != nil {
			return err
		}
	}
	return tw.Close()
}

func blobPath(d digest.Digest) string {
	return blobsDir + d.Algorithm().String() + "/" + d.Encoded()
}
