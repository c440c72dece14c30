package registry

import (
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/berth-dev/berth/internal/errdefs"
)

var (
	errBlobUnknown   = newError(http.StatusNotFound, codeBlobUnknown, "blob unknown to registry")
	errDigestInvalid = newError(http.StatusBadRequest, codeDigestInvalid, "provided digest did not match uploaded content")
)

func (s *Server) serveBlob(w http.ResponseWriter, r *http.Request, rt route) error {
	d, ok := parseDigest(rt.ref)
	if !ok {
		return newError(http.StatusBadRequest, codeDigestInvalid, "invalid digest").with(map[string]string{"digest": rt.ref})
	}
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		return s.getBlob(w, r, rt.name, d)
	case http.MethodDelete:
		if err := s.db.UnlinkBlob(r.Context(), rt.name, d); err != nil {
			if errdefs.IsNotFound(err) {
				return errBlobUnknown.with(map[string]string{"digest": d.String()})
			}
			return err
		}
		w.Header().Set("Content-Length", "0")
		w.WriteHeader(http.StatusAccepted)
		return nil
	}
	return errMethod
}

// getBlob serves a blob with Range support. The content store's reader is
// an *os.File underneath; handing it to http.ServeContent as a ReadSeeker
// lets the copy end in sendfile(2), so a layer download costs no user-space
// copies and no buffer memory.
func (s *Server) getBlob(w http.ResponseWriter, r *http.Request, repo string, d digest.Digest) error {
	ctx := r.Context()
	if _, err := s.db.BlobSize(ctx, repo, d); err != nil {
		if errdefs.IsNotFound(err) {
			return errBlobUnknown.with(map[string]string{"digest": d.String()})
		}
		return err
	}
	ra, err := s.store.ReaderAt(ctx, d)
	if err != nil {
		if errdefs.IsNotFound(err) {
			// Linked but gone from the store: deleted behind our back.
			s.log.WarnContext(ctx, "linked blob missing from the content store", "repo", repo, "digest", d)
			return errBlobUnknown.with(map[string]string{"digest": d.String()})
		}
		return err
	}
	defer ra.Close()
	h := w.Header()
	h.Set("Content-Type", "application/octet-stream")
	h.Set("Docker-Content-Digest", d.String())
	h.Set("ETag", `"`+d.String()+`"`)
	h.Set("Cache-Control", "max-age=31536000")
	rs, ok := ra.(io.ReadSeeker)
	if !ok {
		rs = io.NewSectionReader(ra, 0, ra.Size())
	}
	// A zero modtime keeps ServeContent from adding Last-Modified; the
	// digest is a better validator.
	http.ServeContent(w, r, "", time.Time{}, rs)
	return nil
}

// blobCreated answers a finished upload or mount.
func blobCreated(w http.ResponseWriter, repo string, d digest.Digest) {
	h := w.Header()
	h.Set("Location", "/v2/"+repo+"/blobs/"+d.String())
	h.Set("Docker-Content-Digest", d.String())
	h.Set("Content-Length", "0")
	w.WriteHeader(http.StatusCreated)
}

func sizeHeader(n int64) string { return strconv.FormatInt(n, 10) }
