package client

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"strings"

	cerrdefs "github.com/containerd/errdefs"
)

// StatusError is the daemon refusing a request: the HTTP status and its
// message. Its text is docker's ("Error response from daemon: ..."), and
// errors.Is matches containerd's errdefs classes by status, so callers'
// cerrdefs.IsNotFound / IsConflict checks work as with docker's client.
type StatusError struct {
	Status  int
	Message string
	// raw marks a message that is not the daemon's (a body-less answer):
	// printed as is, without docker's prefix.
	raw bool
}

func (e *StatusError) Error() string {
	if e.raw {
		return e.Message
	}
	return "Error response from daemon: " + e.Message
}

// Is maps the status to its errdefs class.
func (e *StatusError) Is(target error) bool {
	class := statusClass(e.Status)
	return class != nil && errors.Is(class, target)
}

func statusClass(status int) error {
	switch status {
	case http.StatusBadRequest:
		return cerrdefs.ErrInvalidArgument
	case http.StatusUnauthorized:
		return cerrdefs.ErrUnauthenticated
	case http.StatusForbidden:
		return cerrdefs.ErrPermissionDenied
	case http.StatusNotFound:
		return cerrdefs.ErrNotFound
	case http.StatusConflict:
		return cerrdefs.ErrConflict
	case http.StatusPreconditionFailed:
		return cerrdefs.ErrFailedPrecondition
	case http.StatusRequestedRangeNotSatisfiable:
		return cerrdefs.ErrOutOfRange
	case http.StatusNotImplemented:
		return cerrdefs.ErrNotImplemented
	case http.StatusServiceUnavailable:
		return cerrdefs.ErrUnavailable
	}
	switch {
	case status >= 400 && status < 500:
		return cerrdefs.ErrInvalidArgument
	case status >= 500 && status < 600:
		return cerrdefs.ErrInternal
	}
	return cerrdefs.ErrUnknown
}

// maxErrorBody bounds what is read of an error answer.
const maxErrorBody = 1 << 20

// responseError is nil for a 1xx-3xx answer; otherwise it reads the
// daemon's message ({"message": ...} or plain text), closes the body and
// returns a StatusError.
func responseError(resp *http.Response) error {
	if resp.StatusCode < http.StatusBadRequest {
		return nil
	}
	defer drain(resp)
	status := resp.Status
	if status == "" {
		status = http.StatusText(resp.StatusCode)
	}
	var body []byte
	if resp.Request == nil || resp.Request.Method != http.MethodHead {
		var err error
		body, err = io.ReadAll(io.LimitReader(resp.Body, maxErrorBody+1))
		if err != nil {
			return &StatusError{Status: resp.StatusCode, Message: err.Error(), raw: true}
		}
		if len(body) > maxErrorBody {
			return &StatusError{Status: resp.StatusCode, raw: true,
				Message: fmt.Sprintf("request returned %s with a message (> %d bytes); check if the server supports the requested API version", status, maxErrorBody)}
		}
	}
	if len(bytes.TrimSpace(body)) == 0 {
		where := ""
		if resp.Request != nil {
			where = " for API route and version " + resp.Request.URL.String() + ","
		}
		return &StatusError{Status: resp.StatusCode, raw: true,
			Message: fmt.Sprintf("request returned %s%s check if the server supports the requested API version", status, where)}
	}
	msg := strings.TrimSpace(string(body))
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		var e struct {
			Message string `json:"message"`
		}
		if err := json.Unmarshal(body, &e); err != nil {
			return &StatusError{Status: resp.StatusCode, Message: "error reading JSON: " + err.Error(), raw: true}
		}
		msg = strings.TrimSpace(e.Message)
		if msg == "" {
			msg = fmt.Sprintf("API returned a %d (%s) but provided no error-message", resp.StatusCode, http.StatusText(resp.StatusCode))
		}
	}
	return &StatusError{Status: resp.StatusCode, Message: msg}
}

// jsonBody marshals v; nil (or a nil pointer) is no body at all.
func jsonBody(v any) (io.Reader, error) {
	if v == nil {
		return nil, nil
	}
	if rv := reflect.ValueOf(v); rv.Kind() == reflect.Pointer && rv.IsNil() {
		return nil, nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	return bytes.NewReader(b), nil
}

// invalidArgument is a request refused before it is sent.
type invalidArgument string

func (e invalidArgument) Error() string { return string(e) }
func (e invalidArgument) Is(target error) bool {
	return target == cerrdefs.ErrInvalidArgument
}

// checkID is docker's refusal of an empty object name.
func checkID(kind, id string) (string, error) {
	id = strings.TrimSpace(id)
	if id == "" {
		return "", invalidArgument("invalid " + kind + " name or ID: value is empty")
	}
	return id, nil
}
