// Package api serves the Docker Engine REST API over the engine: routes
// with and without a /v1.NN prefix, Docker's JSON error shape with its
// status codes, and hijacked streams for attach. It is a translation layer:
// no container logic lives here, and errdefs classes become HTTP statuses
// only here.
package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/moby/moby/api/types/common"

	"github.com/berth-dev/berth/internal/engine"
	"github.com/berth-dev/berth/internal/errdefs"
	"github.com/berth-dev/berth/internal/image"
)

// API versions: the newest is that of the types module berth speaks
// (github.com/moby/moby/api); docker CLI 28.2 negotiates down to 1.50.
const (
	MaxVersion = "1.56"
	MinVersion = "1.40"
)

// Info describes the daemon for /version and /info.
type Info struct {
	Version, GitCommit string
	Root, ExecRoot     string
	DefaultRuntime     string
	InsecureRegistries []string
	Mirrors            []string
}

// Server routes the API.
type Server struct {
	eng    *engine.Engine
	images *image.Service
	info   Info
	log    *slog.Logger
	mux    *http.ServeMux
	// transport is shared by the registry clients of all requests, so
	// that connections to a registry are reused.
	transport http.RoundTripper
}

// New returns the API handler.
func New(eng *engine.Engine, images *image.Service, info Info, log *slog.Logger) *Server {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.ResponseHeaderTimeout = 2 * time.Minute
	s := &Server{eng: eng, images: images, info: info, log: log, mux: http.NewServeMux(), transport: t}
	s.routes()
	return s
}

func (s *Server) routes() {
	m := s.mux
	m.HandleFunc("GET /_ping", s.ping)
	m.HandleFunc("HEAD /_ping", s.ping)
	m.HandleFunc("GET /version", s.version)
	m.HandleFunc("GET /info", s.systemInfo)
	m.HandleFunc("GET /events", s.systemEvents)
	m.HandleFunc("POST /auth", s.systemAuth)

	m.HandleFunc("POST /containers/create", s.containerCreate)
	m.HandleFunc("GET /containers/json", s.containerList)
	m.HandleFunc("GET /containers/{id}/json", s.containerInspect)
	m.HandleFunc("POST /containers/{id}/start", s.containerStart)
	m.HandleFunc("POST /containers/{id}/stop", s.containerStop)
	m.HandleFunc("POST /containers/{id}/restart", s.containerRestart)
	m.HandleFunc("POST /containers/{id}/kill", s.containerKill)
	m.HandleFunc("POST /containers/{id}/wait", s.containerWait)
	m.HandleFunc("DELETE /containers/{id}", s.containerRemove)
	m.HandleFunc("GET /containers/{id}/logs", s.containerLogs)
	m.HandleFunc("POST /containers/{id}/attach", s.containerAttach)
	m.HandleFunc("POST /containers/{id}/rename", s.containerRename)
	m.HandleFunc("POST /containers/{id}/resize", s.containerResize)

	m.HandleFunc("POST /containers/prune", s.containerPrune)
	m.HandleFunc("GET /containers/{id}/stats", s.containerStats)
	m.HandleFunc("GET /containers/{id}/top", s.containerTop)
	m.HandleFunc("POST /containers/{id}/pause", s.containerPause)
	m.HandleFunc("POST /containers/{id}/unpause", s.containerUnpause)
	m.HandleFunc("POST /containers/{id}/exec", s.execCreate)
	m.HandleFunc("POST /exec/{id}/start", s.execStart)
	m.HandleFunc("GET /exec/{id}/json", s.execInspect)
	m.HandleFunc("POST /exec/{id}/resize", s.execResize)

	m.HandleFunc("GET /images/json", s.imageList)
	m.HandleFunc("GET /images/{name...}", s.imageGet) // <name>/json: names hold slashes
	m.HandleFunc("POST /images/create", s.imageCreate)
	m.HandleFunc("POST /images/load", s.imageLoad)
	m.HandleFunc("POST /images/prune", s.imagePrune)
	m.HandleFunc("GET /images/get", s.imageSaveQuery)
	m.HandleFunc("POST /images/{name...}", s.imagePost) // <name>/push, <name>/tag
	m.HandleFunc("DELETE /images/{name...}", s.imageDelete)
	s.opsRoutes()

	m.HandleFunc("POST /build", s.build)
	m.HandleFunc("POST /build/prune", s.buildPrune)
	s.volumeRoutes()

	s.networkRoutes(m)
}

// ServeHTTP strips the version prefix, refuses versions out of range and
// answers unknown routes with docker's "page not found".
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if rest, ok := strings.CutPrefix(r.URL.Path, "/v"); ok {
		if v, tail, ok := strings.Cut(rest, "/"); ok && isVersion(v) {
			if versionLess(MaxVersion, v) {
				writeError(w, http.StatusBadRequest, fmt.Sprintf("client version %s is too new. Maximum supported API version is %s", v, MaxVersion))
				return
			}
			if versionLess(v, MinVersion) {
				writeError(w, http.StatusBadRequest, fmt.Sprintf("client version %s is too old. Minimum supported API version is %s, please upgrade your client to a newer version", v, MinVersion))
				return
			}
			r.URL.Path = "/" + tail
			r.URL.RawPath = ""
			r = r.WithContext(context.WithValue(r.Context(), versionKey{}, v))
		}
	}
	if _, pattern := s.mux.Handler(r); pattern == "" {
		writeError(w, http.StatusNotFound, "page not found")
		return
	}
	if !s.log.Enabled(r.Context(), slog.LevelDebug) {
		s.mux.ServeHTTP(w, r)
		return
	}
	start := time.Now()
	s.log.Debug("api", "method", r.Method, "path", r.URL.Path)
	s.mux.ServeHTTP(w, r)
	s.log.Debug("api done", "method", r.Method, "path", r.URL.Path, "took", time.Since(start))
}

type versionKey struct{}

// requestVersion is the API version the client asked for: the newest when
// it used an unversioned path.
func requestVersion(r *http.Request) string {
	if v, ok := r.Context().Value(versionKey{}).(string); ok {
		return v
	}
	return MaxVersion
}

var errConflict = errdefs.ErrConflict

func isVersion(v string) bool {
	maj, min, ok := strings.Cut(v, ".")
	if !ok {
		return false
	}
	_, err1 := strconv.Atoi(maj)
	_, err2 := strconv.Atoi(min)
	return err1 == nil && err2 == nil
}

// versionLess compares "1.43"-style versions numerically.
func versionLess(a, b string) bool {
	am, an, _ := strings.Cut(a, ".")
	bm, bn, _ := strings.Cut(b, ".")
	x, _ := strconv.Atoi(am)
	y, _ := strconv.Atoi(bm)
	if x != y {
		return x < y
	}
	x, _ = strconv.Atoi(an)
	y, _ = strconv.Atoi(bn)
	return x < y
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, common.ErrorResponse{Message: msg})
}

var classStatus = []struct {
	err    error
	status int
}{
	{errdefs.ErrNotFound, http.StatusNotFound},
	{errdefs.ErrInvalidArgument, http.StatusBadRequest},
	{errdefs.ErrConflict, http.StatusConflict},
	{errdefs.ErrAlreadyExists, http.StatusConflict},
	{errdefs.ErrFailedPrecondition, http.StatusConflict},
	{errdefs.ErrNotImplemented, http.StatusNotImplemented},
	{errdefs.ErrPermissionDenied, http.StatusForbidden},
	{errdefs.ErrUnavailable, http.StatusServiceUnavailable},
}

// writeErr maps an error's class to its status and writes docker's shape.
// The class's own words (": not found") are for logs, not for clients:
// docker's messages ("No such container: x") end without them.
func (s *Server) writeErr(w http.ResponseWriter, err error) {
	if errors.Is(err, engine.ErrNotModified) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	status := http.StatusInternalServerError
	msg := err.Error()
	for _, c := range classStatus {
		if errors.Is(err, c.err) {
			status = c.status
			msg = strings.TrimSuffix(msg, ": "+c.err.Error())
			break
		}
	}
	// The image store words its misses in lower case, docker's clients
	// (and scripts) expect its capitalised message.
	if rest, ok := strings.CutPrefix(msg, "no such image: "); ok {
		msg = "No such image: " + rest
	}
	if status == http.StatusInternalServerError {
		s.log.Error("api request failed", "err", err)
	}
	writeError(w, status, msg)
}

func boolParam(r *http.Request, name string) bool {
	switch strings.ToLower(r.URL.Query().Get(name)) {
	case "", "0", "no", "false", "none":
		return false
	}
	return true
}

func badParam(format string, args ...any) error {
	return fmt.Errorf(format+": %w", append(args, errdefs.ErrInvalidArgument)...)
}

// decodeBody reads a JSON request body, with docker's wording for a bad one.
func decodeBody(r *http.Request, v any) error {
	if err := json.NewDecoder(r.Body).Decode(v); err != nil {
		if errors.Is(err, io.EOF) {
			return badParam("invalid JSON: empty body")
		}
		return badParam("invalid JSON: %v", err)
	}
	return nil
}
