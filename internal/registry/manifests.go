package registry

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/berth-dev/berth/internal/content"
	"github.com/berth-dev/berth/internal/errdefs"
	"github.com/berth-dev/berth/internal/registry/repodb"
)

var errManifestUnknown = newError(http.StatusNotFound, codeManifestUnknown, "manifest unknown to registry")

// manifestRef is a parsed tag-or-digest reference.
type manifestRef struct {
	tag    string
	digest digest.Digest
}

func (s *Server) parseRef(ref string) (manifestRef, error) {
	if looksLikeDigest(ref) {
		d, ok := parseDigest(ref)
		if !ok {
			return manifestRef{}, newError(http.StatusBadRequest, codeDigestInvalid, "invalid digest").with(map[string]string{"digest": ref})
		}
		return manifestRef{digest: d}, nil
	}
	if !s.names.validTag(ref) {
		return manifestRef{}, newError(http.StatusBadRequest, codeManifestInvalid, "invalid tag").with(map[string]string{"tag": ref})
	}
	return manifestRef{tag: ref}, nil
}

func (s *Server) serveManifest(w http.ResponseWriter, r *http.Request, rt route) error {
	ref, err := s.parseRef(rt.ref)
	if err != nil {
		return err
	}
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		return s.getManifest(w, r, rt.name, ref)
	case http.MethodPut:
		return s.putManifest(w, r, rt.name, ref)
	case http.MethodDelete:
		return s.deleteManifest(w, r, rt.name, ref)
	}
	return errMethod
}

func (s *Server) lookup(ctx context.Context, repo string, ref manifestRef) (repodb.Manifest, error) {
	var m repodb.Manifest
	var err error
	if ref.tag != "" {
		m, err = s.db.ResolveTag(ctx, repo, ref.tag)
	} else {
		m, err = s.db.Manifest(ctx, repo, ref.digest)
	}
	if errdefs.IsNotFound(err) {
		return m, errManifestUnknown
	}
	return m, err
}

func (s *Server) getManifest(w http.ResponseWriter, r *http.Request, repo string, ref manifestRef) error {
	ctx := r.Context()
	m, err := s.lookup(ctx, repo, ref)
	if err != nil {
		return err
	}
	h := w.Header()
	h.Set("Content-Type", m.MediaType)
	h.Set("Docker-Content-Digest", m.Digest.String())
	h.Set("ETag", `"`+m.Digest.String()+`"`)
	h.Set("Content-Length", sizeHeader(m.Size))
	if r.Method == http.MethodHead {
		w.WriteHeader(http.StatusOK)
		return nil
	}
	b, err := content.ReadBlob(ctx, s.store, v1.Descriptor{Digest: m.Digest, Size: m.Size})
	if errdefs.IsNotFound(err) {
		s.log.WarnContext(ctx, "manifest missing from the content store", "repo", repo, "digest", m.Digest)
		return errManifestUnknown
	}
	if err != nil {
		return err
	}
	w.WriteHeader(http.StatusOK)
	w.Write(b)
	return nil
}

// putManifest validates a manifest, stores its bytes in the content store
// and records it, its tags and its subject in one transaction.
func (s *Server) putManifest(w http.ResponseWriter, r *http.Request, repo string, ref manifestRef) error {
	ctx := r.Context()
	if r.ContentLength > maxManifestSize {
		return errManifestTooBig
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxManifestSize+1))
	if err != nil {
		return fmt.Errorf("read manifest: %w", err)
	}
	if len(body) > maxManifestSize {
		return errManifestTooBig
	}
	alg := digest.Canonical
	if ref.digest != "" {
		alg = ref.digest.Algorithm()
	}
	d := alg.FromBytes(body)
	if ref.digest != "" && ref.digest != d {
		return errDigestInvalid.with(map[string]string{"digest": ref.digest.String(), "computed": d.String()})
	}
	tags := []string{}
	if ref.tag != "" {
		tags = append(tags, ref.tag)
	}
	// ?tag= pushes a manifest by digest and tags it in one request
	// (distribution-spec 1.1+).
	for _, t := range r.URL.Query()["tag"] {
		if !s.names.validTag(t) {
			return newError(http.StatusBadRequest, codeManifestInvalid, "invalid tag").with(map[string]string{"tag": t})
		}
		tags = append(tags, t)
	}
	p, err := parseManifest(r.Header.Get("Content-Type"), body)
	if err != nil {
		return newError(http.StatusBadRequest, codeManifestInvalid, err.Error())
	}

	s.gcMu.RLock()
	defer s.gcMu.RUnlock()
	if err := s.checkReferences(ctx, repo, p); err != nil {
		return err
	}
	existed, err := content.Exists(ctx, s.store, d)
	if err != nil {
		return err
	}
	if err := s.writeBlob(ctx, v1.Descriptor{Digest: d, Size: int64(len(body))}, bytes.NewReader(body)); err != nil {
		return err
	}
	rec := repodb.Manifest{
		Digest: d, MediaType: p.mediaType, Size: int64(len(body)),
		ArtifactType: p.artifactType, Annotations: p.annotations, Refs: p.refs(),
	}
	if p.subject != nil {
		rec.Subject = p.subject.Digest
	}
	if err := s.db.PutManifest(ctx, repo, rec, !existed, tags...); err != nil {
		return err
	}
	h := w.Header()
	h.Set("Location", "/v2/"+repo+"/manifests/"+d.String())
	h.Set("Docker-Content-Digest", d.String())
	if p.subject != nil {
		h.Set("OCI-Subject", p.subject.Digest.String())
	}
	for _, t := range tags {
		h.Add("OCI-Tag", t)
	}
	h.Set("Content-Length", "0")
	w.WriteHeader(http.StatusCreated)
	return nil
}

var errManifestTooBig = newError(http.StatusRequestEntityTooLarge, codeSizeInvalid,
	fmt.Sprintf("manifest exceeds the %d byte limit", maxManifestSize))

// checkReferences makes sure every blob the manifest names is in the
// repository with the size the manifest claims, and every child manifest of
// an index is there too.
func (s *Server) checkReferences(ctx context.Context, repo string, p *parsedManifest) error {
	blobs := make([]digest.Digest, len(p.blobs))
	for i, b := range p.blobs {
		blobs[i] = b.Digest
	}
	children := make([]digest.Digest, len(p.manifests))
	for i, m := range p.manifests {
		children[i] = m.Digest
	}
	missing, err := s.db.Missing(ctx, repo, blobs, children)
	if err != nil {
		return err
	}
	if len(missing) > 0 {
		return newError(http.StatusBadRequest, codeManifestBlobUnknown, "manifest references unknown content").
			with(map[string]string{"digest": missing[0].String()})
	}
	for _, b := range p.blobs {
		size, err := s.db.BlobSize(ctx, repo, b.Digest)
		if err != nil {
			return err
		}
		if size != b.Size {
			return newError(http.StatusBadRequest, codeManifestInvalid,
				fmt.Sprintf("descriptor of %s says %d bytes, the blob has %d", b.Digest, b.Size, size))
		}
	}
	return nil
}

func (s *Server) deleteManifest(w http.ResponseWriter, r *http.Request, repo string, ref manifestRef) error {
	ctx := r.Context()
	var err error
	if ref.tag != "" {
		err = s.db.DeleteTag(ctx, repo, ref.tag)
	} else {
		err = s.db.DeleteManifest(ctx, repo, ref.digest)
	}
	if errors.Is(err, errdefs.ErrNotFound) {
		return errManifestUnknown
	}
	if err != nil {
		return err
	}
	w.Header().Set("Content-Length", "0")
	w.WriteHeader(http.StatusAccepted)
	return nil
}
