// Command genimage writes the registry benchmark's test image: an OCI image
// layout holding one image of four gzip layers (40, 30, 20 and 10 MiB of
// incompressible bytes, about 100 MB in all), tagged "v1". The bytes come
// from a seeded generator, so every run benchmarks the same image.
//
// Usage: go run ./bench/registry/genimage DIR
package main

import (
	"archive/tar"
	"compress/gzip"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"hash"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"

	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
)

var layerMiB = []int{40, 30, 20, 10}

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: genimage DIR")
		os.Exit(2)
	}
	if err := run(os.Args[1]); err != nil {
		fmt.Fprintln(os.Stderr, "genimage:", err)
		os.Exit(1)
	}
}

func run(dir string) error {
	blobs := filepath.Join(dir, "blobs", "sha256")
	if err := os.MkdirAll(blobs, 0o755); err != nil {
		return err
	}
	rng := rand.NewChaCha8([32]byte{'b', 'e', 'r', 't', 'h'})
	var layers []v1.Descriptor
	var diffIDs []digest.Digest
	for i, mib := range layerMiB {
		l, diffID, err := writeLayer(blobs, i, int64(mib)<<20, rng)
		if err != nil {
			return err
		}
		layers = append(layers, l)
		diffIDs = append(diffIDs, diffID)
	}
	cfg := v1.Image{Platform: v1.Platform{OS: "linux", Architecture: "amd64"},
		RootFS: v1.RootFS{Type: "layers", DiffIDs: diffIDs}}
	cfgDesc, err := writeJSON(blobs, v1.MediaTypeImageConfig, cfg)
	if err != nil {
		return err
	}
	m := v1.Manifest{MediaType: v1.MediaTypeImageManifest, Config: cfgDesc, Layers: layers}
	m.SchemaVersion = 2
	mDesc, err := writeJSON(blobs, v1.MediaTypeImageManifest, m)
	if err != nil {
		return err
	}
	mDesc.Annotations = map[string]string{v1.AnnotationRefName: "v1"}
	idx := v1.Index{MediaType: v1.MediaTypeImageIndex, Manifests: []v1.Descriptor{mDesc}}
	idx.SchemaVersion = 2
	b, _ := json.Marshal(idx)
	if err := os.WriteFile(filepath.Join(dir, "index.json"), b, 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, v1.ImageLayoutFile), []byte(`{"imageLayoutVersion":"1.0.0"}`), 0o644)
}

// writeLayer writes a gzip tar with one file of size random bytes and
// returns its descriptor and diff ID.
func writeLayer(blobs string, n int, size int64, rng io.Reader) (v1.Descriptor, digest.Digest, error) {
	tmp, err := os.CreateTemp(blobs, "layer")
	if err != nil {
		return v1.Descriptor{}, "", err
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	if err := tmp.Chmod(0o644); err != nil {
		return v1.Descriptor{}, "", err
	}
	compressed := sha256.New()
	counter := &countWriter{w: io.MultiWriter(tmp, compressed)}
	gz, _ := gzip.NewWriterLevel(counter, gzip.BestSpeed)
	uncompressed := sha256.New()
	tw := tar.NewWriter(io.MultiWriter(gz, uncompressed))
	hdr := &tar.Header{Name: fmt.Sprintf("data/layer%d.bin", n), Mode: 0o644, Size: size, Typeflag: tar.TypeReg}
	if err := tw.WriteHeader(hdr); err != nil {
		return v1.Descriptor{}, "", err
	}
	if _, err := io.CopyN(tw, rng, size); err != nil {
		return v1.Descriptor{}, "", err
	}
	if err := tw.Close(); err != nil {
		return v1.Descriptor{}, "", err
	}
	if err := gz.Close(); err != nil {
		return v1.Descriptor{}, "", err
	}
	d := sum(compressed)
	if err := os.Rename(tmp.Name(), filepath.Join(blobs, d.Encoded())); err != nil {
		return v1.Descriptor{}, "", err
	}
	return v1.Descriptor{MediaType: v1.MediaTypeImageLayerGzip, Digest: d, Size: counter.n}, sum(uncompressed), nil
}

func writeJSON(blobs, mediaType string, v any) (v1.Descriptor, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return v1.Descriptor{}, err
	}
	d := digest.FromBytes(b)
	if err := os.WriteFile(filepath.Join(blobs, d.Encoded()), b, 0o644); err != nil {
		return v1.Descriptor{}, err
	}
	return v1.Descriptor{MediaType: mediaType, Digest: d, Size: int64(len(b))}, nil
}

func sum(h hash.Hash) digest.Digest { return digest.NewDigest(digest.SHA256, h) }

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}
