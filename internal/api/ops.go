package api

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"

	"github.com/moby/moby/api/types/container"

	"github.com/berth-dev/berth/internal/engine"
	"github.com/berth-dev/berth/internal/image"
)

// opsRoutes are the container operations on files and images: docker cp,
// diff, export, commit, update, disk usage.
func (s *Server) opsRoutes() {
	m := s.mux
	m.HandleFunc("HEAD /containers/{id}/archive", s.containerStatPath)
	m.HandleFunc("GET /containers/{id}/archive", s.containerArchive)
	m.HandleFunc("PUT /containers/{id}/archive", s.containerExtract)
	m.HandleFunc("GET /containers/{id}/changes", s.containerChanges)
	m.HandleFunc("GET /containers/{id}/export", s.containerExport)
	m.HandleFunc("POST /containers/{id}/update", s.containerUpdate)
	m.HandleFunc("POST /commit", s.containerCommit)
	m.HandleFunc("GET /system/df", s.systemDiskUsage)
}

func (s *Server) containerChanges(w http.ResponseWriter, r *http.Request) {
	changes, err := s.eng.Changes(r.Context(), r.PathValue("id"))
	if err != nil {
		s.writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, changes)
}

func (s *Server) containerExport(w http.ResponseWriter, r *http.Request) {
	s.streamTar(w, "export", func(start func() io.Writer) error {
		return s.eng.Export(r.Context(), r.PathValue("id"), start)
	})
}

func (s *Server) containerUpdate(w http.ResponseWriter, r *http.Request) {
	var u container.UpdateConfig
	if err := decodeBody(r, &u); err != nil {
		s.writeErr(w, err)
		return
	}
	warnings, err := s.eng.Update(r.Context(), r.PathValue("id"), u)
	if err != nil {
		s.writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, container.UpdateResponse{Warnings: warnings})
}

// commitRef is docker's repo and tag parameters as one reference, with
// the reference library's wording for bad ones.
func commitRef(repo, tag string) (string, error) {
	if repo == "" {
		if tag != "" {
			return "", badParam("tag %q given without a repository", tag)
		}
		return "", nil
	}
	named, err := image.ParseNamed(repo)
	if err != nil {
		return "", badParam("%v", err)
	}
	if named.Digest != "" {
		return "", badParam("cannot commit to digest reference")
	}
	if tag != "" {
		if named, err = named.WithTag(tag); err != nil {
			return "", badParam("%v", err)
		}
	}
	return named.OrLatest().String(), nil
}

func (s *Server) containerCommit(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	ref, err := commitRef(q.Get("repo"), q.Get("tag"))
	if err != nil {
		s.writeErr(w, err)
		return
	}
	// The body is an optional config; empty (or "null") means none.
	var cfg *container.Config
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		s.writeErr(w, err)
		return
	}
	if len(bytes.TrimSpace(body)) > 0 {
		if err := json.Unmarshal(body, &cfg); err != nil {
			s.writeErr(w, badParam("invalid JSON: %v", err))
			return
		}
	}
	pause := true
	if q.Has("pause") {
		pause = boolParam(r, "pause")
	}
	id, err := s.eng.Commit(r.Context(), q.Get("container"), engine.CommitOptions{
		Ref: ref, Comment: q.Get("comment"), Author: q.Get("author"), Changes: q["changes"],
		Config: cfg, Pause: pause,
	})
	if err != nil {
		s.writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, container.CommitResponse{ID: id})
}
