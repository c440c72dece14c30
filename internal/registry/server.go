// Package registry is berth's OCI distribution-spec v1.1 registry server.
//
// Blob bytes live in berth's content store (<root>/content), so a registry
// and a daemon on one host share layers; everything per repository (which
// blobs a repository may serve, manifests, tags, referrers, upload sessions)
// lives in the registry's own database (<root>/registry.db, package repodb).
// Manifests are blobs in the content store too; their records say which
// repository holds them under which media type.
//
// The handler routes by hand instead of through http.ServeMux: the mux
// cleans paths, which would turn a name containing ".." into a redirect
// instead of the NAME_INVALID error the spec asks for, and repository names
// contain slashes that patterns cannot capture.
package registry

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/berth-dev/berth/internal/content"
	"github.com/berth-dev/berth/internal/registry/auth"
	"github.com/berth-dev/berth/internal/registry/metrics"
	"github.com/berth-dev/berth/internal/registry/repodb"
)

// Options configure a Server.
type Options struct {
	// Root holds content/ (shared with a daemon) and registry.db.
	Root string
	// Auth authorizes requests; nil serves everyone.
	Auth auth.Authorizer
	// TokenPath, when set, serves TokenHandler there (the bearer realm).
	TokenPath    string
	TokenHandler http.Handler
	// ReadOnly refuses every write.
	ReadOnly bool
	// DeleteEnabled allows DELETE of manifests, tags and blobs.
	DeleteEnabled bool
	// Metrics serves /metrics when set.
	Metrics bool
	// UploadIdle is how long an upload may sit without a request before its
	// open file is closed (the upload stays resumable); UploadExpiry is when
	// an idle upload is dropped altogether. Zero means the defaults.
	UploadIdle   time.Duration
	UploadExpiry time.Duration
	Logger       *slog.Logger
}

// Defaults for Options.
const (
	DefaultUploadIdle   = 2 * time.Minute
	DefaultUploadExpiry = 24 * time.Hour
	dbLockTimeout       = 200 * time.Millisecond
)

// Server serves the registry API. Create it with Open, serve it with
// Handler, and Close it after the HTTP server has shut down.
type Server struct {
	opts    Options
	log     *slog.Logger
	store   *content.Store
	db      *repodb.DB
	names   *matchers
	metrics *metrics.Registry
	uploads *sessions

	// gcMu keeps garbage collection from deleting a blob between the moment
	// a request decides it exists and the moment it is linked or referred
	// to: requests that create references hold it shared, the sweep
	// exclusively.
	gcMu sync.RWMutex

	stopJanitor context.CancelFunc
	janitorDone chan struct{}
}

// Open opens the store and database under opts.Root. It fails with an
// ErrUnavailable-class error when another registry serves the same root.
func Open(ctx context.Context, opts Options) (*Server, error) {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.UploadIdle <= 0 {
		opts.UploadIdle = DefaultUploadIdle
	}
	if opts.UploadExpiry <= 0 {
		opts.UploadExpiry = DefaultUploadExpiry
	}
	log := opts.Logger.With("component", "registry")
	store, db, err := openState(ctx, opts.Root, log)
	if err != nil {
		return nil, err
	}
	s := &Server{
		opts: opts, log: log, store: store, db: db,
		names: newMatchers(), metrics: metrics.New(),
		uploads: newSessions(),
	}
	jctx, cancel := context.WithCancel(context.Background())
	s.stopJanitor, s.janitorDone = cancel, make(chan struct{})
	go s.janitor(jctx)
	return s, nil
}

func openState(ctx context.Context, root string, log *slog.Logger) (*content.Store, *repodb.DB, error) {
	store, err := content.Open(ctx, filepath.Join(root, "content"), content.Options{
		Logger: log,
		// Upload sessions are expired by the registry itself, which knows
		// which ingests are its own; a daemon sharing the store keeps its
		// own expiry for its ingests.
		IngestExpiry: DefaultUploadExpiry,
	})
	if err != nil {
		return nil, nil, fmt.Errorf("registry: %w", err)
	}
	db, err := repodb.Open(ctx, filepath.Join(root, "registry.db"), dbLockTimeout)
	if err != nil {
		return nil, nil, fmt.Errorf("registry: %w", err)
	}
	return store, db, nil
}

// Close stops background work, closes open upload files (their bytes stay
// for the client to resume) and the database. Call it after the HTTP
// server's Shutdown returned, so no request is using them.
func (s *Server) Close() error {
	s.stopJanitor()
	<-s.janitorDone
	s.uploads.closeAll()
	return s.db.Close()
}

// Metrics returns the server's counters.
func (s *Server) Metrics() *metrics.Registry { return s.metrics }

// route is a parsed request path.
type route struct {
	kind string // base, catalog, manifest, blob, upload, tags, referrers
	name string
	ref  string // tag or digest, upload id
}

// Route kinds, also the "route" label of the metrics.
const (
	kindBase      = "base"
	kindCatalog   = "catalog"
	kindManifest  = "manifest"
	kindBlob      = "blob"
	kindUpload    = "upload"
	kindTags      = "tags"
	kindReferrers = "referrers"
)

func parseRoute(path string) (route, bool) {
	if path == "/v2/" || path == "/v2" {
		return route{kind: kindBase}, true
	}
	rest, ok := strings.CutPrefix(path, "/v2/")
	if !ok {
		return route{}, false
	}
	if rest == "_catalog" {
		return route{kind: kindCatalog}, true
	}
	segs := strings.Split(rest, "/")
	n := len(segs)
	join := func(k int) string { return strings.Join(segs[:k], "/") }
	switch {
	case n >= 4 && segs[n-3] == "blobs" && segs[n-2] == "uploads":
		return route{kind: kindUpload, name: join(n - 3), ref: segs[n-1]}, true
	case n >= 3 && segs[n-2] == "blobs" && segs[n-1] == "uploads":
		return route{kind: kindUpload, name: join(n - 2)}, true
	case n >= 3 && segs[n-2] == "manifests":
		return route{kind: kindManifest, name: join(n - 2), ref: segs[n-1]}, true
	case n >= 3 && segs[n-2] == "blobs":
		return route{kind: kindBlob, name: join(n - 2), ref: segs[n-1]}, true
	case n >= 3 && segs[n-2] == "tags" && segs[n-1] == "list":
		return route{kind: kindTags, name: join(n - 2)}, true
	case n >= 3 && segs[n-2] == "referrers":
		return route{kind: kindReferrers, name: join(n - 2), ref: segs[n-1]}, true
	}
	return route{}, false
}

// Handler returns the HTTP handler with access logs and metrics.
func (s *Server) Handler() http.Handler { return http.HandlerFunc(s.serveHTTP) }

func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	rec := &recorder{ResponseWriter: w, status: http.StatusOK}
	body := &countingReader{r: r.Body}
	r.Body = body
	rt, ok := parseRoute(r.URL.Path)
	label := rt.kind
	user := ""
	switch {
	case r.URL.Path == "/metrics" && s.opts.Metrics:
		label = "metrics"
		s.metrics.ServeHTTP(rec, r)
	case s.opts.TokenPath != "" && r.URL.Path == s.opts.TokenPath:
		label = "token"
		s.opts.TokenHandler.ServeHTTP(rec, r)
	case !ok:
		label = "unknown"
		rec.Header().Set("Docker-Distribution-API-Version", "registry/2.0")
		s.writeError(r.Context(), rec, r, newError(http.StatusNotFound, codeUnsupported, "unknown API endpoint"))
	default:
		rec.Header().Set("Docker-Distribution-API-Version", "registry/2.0")
		user = s.serveAPI(rec, r, rt)
	}
	d := time.Since(start)
	s.metrics.Observe(label, r.Method, rec.status, body.n, rec.n, d)
	s.log.InfoContext(r.Context(), "request", "method", r.Method, "path", r.URL.Path,
		"status", rec.status, "in", body.n, "out", rec.n, "ms", float64(d.Microseconds())/1000,
		"remote", r.RemoteAddr, "user", user)
}

// serveAPI checks the name, authorization and mode, then dispatches. It
// returns the authenticated user for the access log.
func (s *Server) serveAPI(w http.ResponseWriter, r *http.Request, rt route) string {
	ctx := r.Context()
	if rt.kind != kindBase && rt.kind != kindCatalog && !s.names.validName(rt.name) {
		s.writeError(ctx, w, r, newError(http.StatusBadRequest, codeNameInvalid, "invalid repository name").with(map[string]string{"name": rt.name}))
		return ""
	}
	write := r.Method != http.MethodGet && r.Method != http.MethodHead
	user := ""
	if s.opts.Auth != nil {
		var err error
		user, err = s.opts.Auth.Authorize(r, s.needs(rt, r.Method))
		if err != nil {
			s.writeAuthError(ctx, w, r, err)
			return ""
		}
	}
	if write && s.opts.ReadOnly {
		s.writeError(ctx, w, r, newError(http.StatusMethodNotAllowed, codeUnsupported, "the registry is read-only"))
		return user
	}
	if r.Method == http.MethodDelete && !s.opts.DeleteEnabled && rt.kind != kindUpload {
		s.writeError(ctx, w, r, newError(http.StatusMethodNotAllowed, codeUnsupported, "deletion is disabled on this registry"))
		return user
	}
	var err error
	switch rt.kind {
	case kindBase:
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			err = errMethod
			break
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Content-Length", "2")
		if r.Method == http.MethodGet {
			io.WriteString(w, "{}")
		}
	case kindCatalog:
		err = s.serveCatalog(w, r)
	case kindManifest:
		err = s.serveManifest(w, r, rt)
	case kindBlob:
		err = s.serveBlob(w, r, rt)
	case kindUpload:
		err = s.serveUpload(w, r, rt)
	case kindTags:
		err = s.serveTags(w, r, rt)
	case kindReferrers:
		err = s.serveReferrers(w, r, rt)
	}
	if err != nil {
		s.writeError(ctx, w, r, err)
	}
	return user
}

var errMethod = newError(http.StatusMethodNotAllowed, codeUnsupported, "method not allowed")

// needs is the access a request requires.
func (s *Server) needs(rt route, method string) []auth.Access {
	switch rt.kind {
	case kindBase:
		return nil
	case kindCatalog:
		return []auth.Access{auth.Catalog}
	}
	switch method {
	case http.MethodGet, http.MethodHead:
		if rt.kind == kindUpload {
			return []auth.Access{auth.Repository(rt.name, "push")}
		}
		return []auth.Access{auth.Repository(rt.name, "pull")}
	case http.MethodDelete:
		if rt.kind == kindUpload {
			return []auth.Access{auth.Repository(rt.name, "push")}
		}
		return []auth.Access{auth.Repository(rt.name, "delete")}
	default:
		return []auth.Access{auth.Repository(rt.name, "push")}
	}
}

func (s *Server) writeAuthError(ctx context.Context, w http.ResponseWriter, r *http.Request, err error) {
	ch, ok := err.(*auth.Challenge)
	if !ok {
		s.writeError(ctx, w, r, err)
		return
	}
	w.Header().Set("WWW-Authenticate", ch.Header)
	s.writeError(ctx, w, r, newError(http.StatusUnauthorized, codeUnauthorized, ch.Reason))
}

// recorder notes the status and counts body bytes. It forwards ReadFrom so
// blob downloads keep the kernel's sendfile path.
type recorder struct {
	http.ResponseWriter
	status      int
	n           int64
	wroteHeader bool
}

func (r *recorder) WriteHeader(code int) {
	if !r.wroteHeader {
		r.status, r.wroteHeader = code, true
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(p []byte) (int, error) {
	r.wroteHeader = true
	n, err := r.ResponseWriter.Write(p)
	r.n += int64(n)
	return n, err
}

func (r *recorder) ReadFrom(src io.Reader) (int64, error) {
	r.wroteHeader = true
	if rf, ok := r.ResponseWriter.(io.ReaderFrom); ok {
		n, err := rf.ReadFrom(src)
		r.n += n
		return n, err
	}
	n, err := io.Copy(struct{ io.Writer }{r.ResponseWriter}, src)
	r.n += n
	return n, err
}

func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

type countingReader struct {
	r io.ReadCloser
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

func (c *countingReader) Close() error { return c.r.Close() }
