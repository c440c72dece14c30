package api

import (
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"

	"github.com/moby/moby/api/types/container"

	"github.com/berth-dev/berth/internal/archive"
	"github.com/berth-dev/berth/internal/engine"
)

func archivePathParam(r *http.Request) (string, error) {
	p := r.URL.Query().Get("path")
	if p == "" {
		return "", badParam("path cannot be empty")
	}
	return p, nil
}

// setPathStat sets docker's X-Docker-Container-Path-Stat header: the stat
// as base64 JSON.
func setPathStat(w http.ResponseWriter, st container.PathStat) {
	data, _ := json.Marshal(st)
	w.Header().Set("X-Docker-Container-Path-Stat", base64.StdEncoding.EncodeToString(data))
}

func (s *Server) containerStatPath(w http.ResponseWriter, r *http.Request) {
	p, err := archivePathParam(r)
	if err == nil {
		var st container.PathStat
		if st, err = s.eng.StatPath(r.Context(), r.PathValue("id"), p); err == nil {
			setPathStat(w, st)
			w.WriteHeader(http.StatusOK)
			return
		}
	}
	s.writeErr(w, err)
}

func (s *Server) containerArchive(w http.ResponseWriter, r *http.Request) {
	p, err := archivePathParam(r)
	if err != nil {
		s.writeErr(w, err)
		return
	}
	s.streamTar(w, "archive "+p, func(start func() io.Writer) error {
		return s.eng.ArchivePath(r.Context(), r.PathValue("id"), p, func(st container.PathStat) io.Writer {
			setPathStat(w, st)
			return start()
		})
	})
}

// streamTar answers with the tar stream run writes to what start returns.
// An error before start is reported in docker's shape; after it the
// status is sent, and cutting the stream short is all that is left.
func (s *Server) streamTar(w http.ResponseWriter, what string, run func(start func() io.Writer) error) {
	started := false
	err := run(func() io.Writer {
		w.Header().Set("Content-Type", "application/x-tar")
		w.WriteHeader(http.StatusOK)
		started = true
		return w
	})
	if err != nil {
		if started {
			s.log.Warn("tar stream cut short", "what", what, "err", err)
			panic(http.ErrAbortHandler)
		}
		s.writeErr(w, err)
	}
}

func (s *Server) containerExtract(w http.ResponseWriter, r *http.Request) {
	p, err := archivePathParam(r)
	if err != nil {
		s.writeErr(w, err)
		return
	}
	body, err := archive.DecompressStream(r.Body)
	if err != nil {
		s.writeErr(w, badParam("%v", err))
		return
	}
	defer body.Close()
	err = s.eng.ExtractToDir(r.Context(), r.PathValue("id"), p, body, engine.ExtractOptions{
		NoOverwriteDirNonDir: boolParam(r, "noOverwriteDirNonDir"),
		CopyUIDGID:           boolParam(r, "copyUIDGID"),
	})
	if err != nil {
		s.writeErr(w, err)
		return
	}
	w.WriteHeader(http.StatusOK)
}
