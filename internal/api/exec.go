package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"

	"github.com/moby/moby/api/types/container"

	"github.com/berth-dev/berth/internal/engine"
)

func (s *Server) execCreate(w http.ResponseWriter, r *http.Request) {
	var req container.ExecCreateRequest
	if err := decodeBody(r, &req); err != nil {
		s.writeErr(w, err)
		return
	}
	id, err := s.eng.ExecCreate(r.Context(), r.PathValue("id"), req)
	if err != nil {
		s.writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, container.ExecCreateResponse{ID: id})
}

// execStart runs an exec: detached it answers at once; attached it
// hijacks the connection, as attach does, until the process ends.
func (s *Server) execStart(w http.ResponseWriter, r *http.Request) {
	var req container.ExecStartRequest
	if r.ContentLength != 0 {
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil && !errors.Is(err, io.EOF) {
			s.writeErr(w, badParam("invalid JSON: %v", err))
			return
		}
	}
	id := r.PathValue("id")
	x, err := s.eng.ExecInspect(id)
	if err != nil {
		s.writeErr(w, err)
		return
	}
	if x.Running || x.ExitCode != nil {
		s.writeErr(w, engineConflict("Error: Exec command "+id+" is already running"))
		return
	}
	if req.Detach {
		if err := s.eng.ExecStart(context.WithoutCancel(r.Context()), id, engine.ExecStartOptions{Detach: true}); err != nil {
			s.writeErr(w, err)
			return
		}
		w.WriteHeader(http.StatusOK)
		return
	}
	tty := x.Config.Tty
	conn, buf, ok := s.hijack(w, r, tty)
	if !ok {
		return
	}
	defer conn.Close()
	// As with attach, the client's half-close must not end the exec.
	ctx := context.WithoutCancel(r.Context())
	stdout, stderr := streams(conn, tty)
	o := engine.ExecStartOptions{Stdout: stdout, Stderr: stderr, ConsoleSize: req.ConsoleSize}
	if x.Config.AttachStdin {
		o.Stdin = buf.Reader
	} else {
		go func() { _, _ = io.Copy(io.Discard, buf.Reader) }()
	}
	if err := s.eng.ExecStart(ctx, id, o); err != nil {
		_, _ = io.WriteString(stderr, err.Error()+"\n")
	}
	if uc, ok := conn.(*net.UnixConn); ok {
		_ = uc.CloseWrite()
	}
}

func (s *Server) execInspect(w http.ResponseWriter, r *http.Request) {
	x, err := s.eng.ExecInspect(r.PathValue("id"))
	if err != nil {
		s.writeErr(w, err)
		return
	}
	var entry string
	var args []string
	if len(x.Config.Cmd) > 0 {
		entry, args = x.Config.Cmd[0], x.Config.Cmd[1:]
	}
	writeJSON(w, http.StatusOK, container.ExecInspectResponse{
		ID: x.ID, Running: x.Running, ExitCode: x.ExitCode, ContainerID: x.ContainerID, Pid: x.Pid,
		OpenStdin: x.Config.AttachStdin, OpenStdout: x.Config.AttachStdout, OpenStderr: x.Config.AttachStderr,
		ProcessConfig: &container.ExecProcessConfig{
			Tty: x.Config.Tty, Entrypoint: entry, Arguments: nonNil(args), User: x.Config.User,
			Privileged: &x.Config.Privileged,
		},
	})
}

func (s *Server) execResize(w http.ResponseWriter, r *http.Request) {
	wd, h, err := termSize(r)
	if err == nil {
		err = s.eng.ExecResize(r.Context(), r.PathValue("id"), wd, h)
	}
	if err != nil {
		s.writeErr(w, err)
		return
	}
	w.WriteHeader(http.StatusOK)
}

// termSize reads a resize's w and h parameters.
func termSize(r *http.Request) (width, height int, err error) {
	q := r.URL.Query()
	h, err1 := strconv.Atoi(q.Get("h"))
	w, err2 := strconv.Atoi(q.Get("w"))
	if err1 != nil || err2 != nil {
		return 0, 0, badParam("invalid terminal size h=%q w=%q", q.Get("h"), q.Get("w"))
	}
	return w, h, nil
}

func engineConflict(msg string) error { return fmt.Errorf("%s: %w", msg, errConflict) }
