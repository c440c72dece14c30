package registry

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"path/filepath"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/berth-dev/berth/internal/content"
	"github.com/berth-dev/berth/internal/errdefs"
	"github.com/berth-dev/berth/internal/registry/repodb"
)

// DefaultGCGrace spares blobs touched in the last hour: long enough for a
// push to send its manifest after its layers.
const DefaultGCGrace = time.Hour

// GCOptions tune a garbage collection.
type GCOptions struct {
	// Grace: blobs committed or linked more recently are kept even when
	// nothing refers to them yet (an upload whose manifest is on its way).
	Grace  time.Duration `json:"grace"`
	DryRun bool          `json:"dryRun"`
}

// GCResult reports what a collection removed (or would remove).
type GCResult struct {
	Deleted []digest.Digest `json:"deleted"`
	Bytes   int64           `json:"bytes"`
}

// GC runs mark and sweep while the server serves. Requests that create
// references wait for the sweep (it is one database transaction and some
// unlinks); reads go on.
func (s *Server) GC(ctx context.Context, opts GCOptions) (GCResult, error) {
	s.gcMu.Lock()
	defer s.gcMu.Unlock()
	res, err := collect(ctx, s.store, s.db, opts, s.log)
	if err == nil && !opts.DryRun {
		s.metrics.GCRun(len(res.Deleted))
	}
	return res, err
}

func collect(ctx context.Context, store *content.Store, db *repodb.DB, opts GCOptions, log *slog.Logger) (GCResult, error) {
	var res GCResult
	dead, err := db.Sweep(ctx, time.Now().UTC(), opts.Grace, opts.DryRun)
	if err != nil {
		return res, err
	}
	for _, d := range dead {
		info, err := store.Info(ctx, d)
		if errdefs.IsNotFound(err) {
			continue
		}
		if err != nil {
			return res, err
		}
		if !opts.DryRun {
			// The database no longer knows the blob; failing here
			// leaves bytes nothing refers to, never a dangling link.
			if err := store.Delete(ctx, d); err != nil && !errdefs.IsNotFound(err) {
				return res, fmt.Errorf("gc: delete %s: %w", d, err)
			}
			log.InfoContext(ctx, "gc: deleted blob", "digest", d, "size", info.Size)
		}
		res.Deleted = append(res.Deleted, d)
		res.Bytes += info.Size
	}
	return res, nil
}

// GC collects garbage under root. When a registry serves root it asks that
// server (through its admin socket) to collect, so collection never races
// a push; otherwise it opens the state itself.
func GC(ctx context.Context, root string, opts GCOptions, log *slog.Logger) (GCResult, error) {
	store, db, err := openState(ctx, root, log)
	if errors.Is(err, errdefs.ErrUnavailable) {
		return gcRemote(ctx, root, opts)
	}
	if err != nil {
		return GCResult{}, err
	}
	defer db.Close()
	return collect(ctx, store, db, opts, log)
}

// AdminSocket is where a serving registry listens for `berth registry gc`.
func AdminSocket(root string) string { return filepath.Join(root, "registry.sock") }

func gcRemote(ctx context.Context, root string, opts GCOptions) (GCResult, error) {
	var res GCResult
	sock := AdminSocket(root)
	c := &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", sock)
		},
	}}
	q := url.Values{}
	q.Set("grace", opts.Grace.String())
	if opts.DryRun {
		q.Set("dry-run", "1")
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://registry/gc?"+q.Encode(), nil)
	if err != nil {
		return res, err
	}
	resp, err := c.Do(req)
	if err != nil {
		return res, fmt.Errorf("gc: the registry database is locked and its server does not answer on %s: %w", sock, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return res, fmt.Errorf("gc: server answered %s", resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(&res); err != nil {
		return res, fmt.Errorf("gc: %w", err)
	}
	return res, nil
}

// AdminHandler serves the admin socket: POST /gc.
func (s *Server) AdminHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /gc", func(w http.ResponseWriter, r *http.Request) {
		opts := GCOptions{Grace: DefaultGCGrace, DryRun: r.URL.Query().Get("dry-run") != ""}
		if g := r.URL.Query().Get("grace"); g != "" {
			d, err := time.ParseDuration(g)
			if err != nil || d < 0 {
				http.Error(w, "bad grace", http.StatusBadRequest)
				return
			}
			opts.Grace = d
		}
		res, err := s.GC(r.Context(), opts)
		if err != nil {
			s.log.ErrorContext(r.Context(), "gc failed", "err", err)
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(res)
	})
	return mux
}
