package registry

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"

	"github.com/berth-dev/berth/internal/errdefs"
)

// Error codes of the distribution spec ("Error Codes" table).
const (
	codeBlobUnknown         = "BLOB_UNKNOWN"
	codeBlobUploadInvalid   = "BLOB_UPLOAD_INVALID"
	codeBlobUploadUnknown   = "BLOB_UPLOAD_UNKNOWN"
	codeDigestInvalid       = "DIGEST_INVALID"
	codeManifestBlobUnknown = "MANIFEST_BLOB_UNKNOWN"
	codeManifestInvalid     = "MANIFEST_INVALID"
	codeManifestUnknown     = "MANIFEST_UNKNOWN"
	codeNameInvalid         = "NAME_INVALID"
	codeNameUnknown         = "NAME_UNKNOWN"
	codeSizeInvalid         = "SIZE_INVALID"
	codeUnauthorized        = "UNAUTHORIZED"
	codeDenied              = "DENIED"
	codeUnsupported         = "UNSUPPORTED"
	codeUnknown             = "UNKNOWN"
)

// apiError is one error as the client sees it: status, spec code, message
// and optional detail.
type apiError struct {
	Status  int
	Code    string
	Message string
	Detail  any
}

func (e *apiError) Error() string { return e.Code + ": " + e.Message }

func newError(status int, code, msg string) *apiError {
	return &apiError{Status: status, Code: code, Message: msg}
}

func (e *apiError) with(detail any) *apiError {
	c := *e
	c.Detail = detail
	return &c
}

type errorBody struct {
	Errors []errorEntry `json:"errors"`
}

type errorEntry struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Detail  any    `json:"detail,omitempty"`
}

// writeError answers with the spec's JSON error body. Errors that are not
// apiErrors are mapped by class; their text stays in the log, not the
// response, since it can name paths on the server.
func (s *Server) writeError(ctx context.Context, w http.ResponseWriter, r *http.Request, err error) {
	var ae *apiError
	if !errors.As(err, &ae) {
		ae = classify(err)
		if ae.Status >= 500 {
			s.log.ErrorContext(ctx, "request failed", "method", r.Method, "path", r.URL.Path, "err", err)
		}
	}
	body, _ := json.Marshal(errorBody{Errors: []errorEntry{{Code: ae.Code, Message: ae.Message, Detail: ae.Detail}}})
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Del("Content-Length")
	h.Del("Docker-Content-Digest")
	w.WriteHeader(ae.Status)
	if r.Method != http.MethodHead {
		w.Write(body)
	}
}

func classify(err error) *apiError {
	switch {
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return newError(499, codeUnknown, "request cancelled")
	case errdefs.IsNotFound(err):
		return newError(http.StatusNotFound, codeBlobUnknown, "not found")
	case errdefs.IsInvalidArgument(err):
		return newError(http.StatusBadRequest, codeBlobUploadInvalid, "invalid request")
	case errdefs.IsConflict(err):
		return newError(http.StatusConflict, codeBlobUploadInvalid, "conflicting request in flight")
	case errors.Is(err, errdefs.ErrUnavailable):
		return newError(http.StatusServiceUnavailable, codeUnknown, "service unavailable")
	default:
		return newError(http.StatusInternalServerError, codeUnknown, "internal error")
	}
}
