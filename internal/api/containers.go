package api

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/moby/moby/api/pkg/stdcopy"
	"github.com/moby/moby/api/types/container"

	"github.com/berth-dev/berth/internal/engine"
)

func (s *Server) containerCreate(w http.ResponseWriter, r *http.Request) {
	var req container.CreateRequest
	if err := decodeBody(r, &req); err != nil {
		s.writeErr(w, err)
		return
	}
	res, err := s.eng.CreateWithNetworking(r.Context(), r.URL.Query().Get("name"), req.Config, req.HostConfig, req.NetworkingConfig)
	if err != nil {
		s.writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, container.CreateResponse{ID: res.ID, Warnings: res.Warnings})
}

func (s *Server) containerStart(w http.ResponseWriter, r *http.Request) {
	if err := s.eng.Start(r.Context(), r.PathValue("id")); err != nil {
		s.writeErr(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func stopTimeout(r *http.Request) (*int, error) {
	t := r.URL.Query().Get("t")
	if t == "" {
		return nil, nil
	}
	n, err := strconv.Atoi(t)
	if err != nil {
		return nil, badParam("invalid value for t: %q", t)
	}
	return &n, nil
}

func (s *Server) containerStop(w http.ResponseWriter, r *http.Request) {
	t, err := stopTimeout(r)
	if err != nil {
		s.writeErr(w, err)
		return
	}
	if err := s.eng.Stop(r.Context(), r.PathValue("id"), r.URL.Query().Get("signal"), t); err != nil {
		s.writeErr(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) containerRestart(w http.ResponseWriter, r *http.Request) {
	t, err := stopTimeout(r)
	if err != nil {
		s.writeErr(w, err)
		return
	}
	id := r.PathValue("id")
	if err := s.eng.Stop(r.Context(), id, r.URL.Query().Get("signal"), t); err != nil && !errors.Is(err, engine.ErrNotModified) {
		s.writeErr(w, err)
		return
	}
	if err := s.eng.Start(r.Context(), id); err != nil && !errors.Is(err, engine.ErrNotModified) {
		s.writeErr(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) containerKill(w http.ResponseWriter, r *http.Request) {
	if err := s.eng.Kill(r.Context(), r.PathValue("id"), r.URL.Query().Get("signal")); err != nil {
		s.writeErr(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) containerWait(w http.ResponseWriter, r *http.Request) {
	ch, err := s.eng.Wait(r.Context(), r.PathValue("id"), r.URL.Query().Get("condition"))
	if err != nil {
		s.writeErr(w, err)
		return
	}
	// Headers go out now, as docker does, so a client knows its wait is
	// registered before it starts the container.
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	if f, ok := w.(http.Flusher); ok {
		f.Flush()
	}
	res := <-ch
	resp := container.WaitResponse{StatusCode: int64(res.ExitCode)}
	if res.Error != nil {
		resp.Error = &container.WaitExitError{Message: res.Error.Error()}
	}
	_ = json.NewEncoder(w).Encode(resp)
}

func (s *Server) containerRemove(w http.ResponseWriter, r *http.Request) {
	if boolParam(r, "link") {
		s.writeErr(w, badParam("links are not supported"))
		return
	}
	if err := s.eng.Remove(r.Context(), r.PathValue("id"), engine.RemoveOptions{Force: boolParam(r, "force"), RemoveVolumes: boolParam(r, "v")}); err != nil {
		s.writeErr(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) containerRename(w http.ResponseWriter, r *http.Request) {
	if err := s.eng.Rename(r.PathValue("id"), r.URL.Query().Get("name")); err != nil {
		s.writeErr(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) containerResize(w http.ResponseWriter, r *http.Request) {
	wd, h, err := termSize(r)
	if err == nil {
		err = s.eng.Resize(r.Context(), r.PathValue("id"), wd, h)
	}
	if err != nil {
		s.writeErr(w, err)
		return
	}
	w.WriteHeader(http.StatusOK)
}

func (s *Server) containerInspect(w http.ResponseWriter, r *http.Request) {
	c, err := s.eng.Get(r.PathValue("id"))
	if err != nil {
		s.writeErr(w, err)
		return
	}
	resp := s.inspect(c)
	if boolParam(r, "size") {
		rw, rootFs := s.containerSizes(r.Context(), c, imageSizes{})
		resp.SizeRw, resp.SizeRootFs = &rw, &rootFs
	}
	if versionLess(requestVersion(r), "1.52") {
		writeJSON(w, http.StatusOK, legacyInspect(resp))
		return
	}
	writeJSON(w, http.StatusOK, resp)
}

func formatTime(t time.Time) string {
	if t.IsZero() {
		return "0001-01-01T00:00:00Z"
	}
	return t.UTC().Format(time.RFC3339Nano)
}

func (s *Server) inspect(c engine.Container) container.InspectResponse {
	st := c.State
	dir := strings.TrimSuffix(s.eng.LogPath(c.ID), "/"+c.ID+"-json.log")
	resp := container.InspectResponse{
		ID:      c.ID,
		Created: formatTime(c.Created),
		Path:    c.Path,
		Args:    c.Args,
		State: &container.State{
			Status:     container.ContainerState(apiStatus(st)),
			Running:    st.Status == engine.StatusRunning,
			Paused:     st.Paused,
			Restarting: st.Restarting,
			Health:     st.Health,
			OOMKilled:  st.OOMKilled,
			Dead:       st.Status == engine.StatusDead,
			Pid:        st.Pid,
			ExitCode:   st.ExitCode,
			Error:      st.Error,
			StartedAt:  formatTime(st.StartedAt),
			FinishedAt: formatTime(st.FinishedAt),
		},
		Image:           c.ImageID,
		ResolvConfPath:  dir + "/resolv.conf",
		HostnamePath:    dir + "/hostname",
		HostsPath:       dir + "/hosts",
		LogPath:         s.eng.LogPath(c.ID),
		Name:            c.Name,
		RestartCount:    c.RestartCount,
		Driver:          "overlayfs",
		Platform:        "linux",
		HostConfig:      c.HostConfig,
		Config:          c.Config,
		Mounts:          mountPoints(c),
		NetworkSettings: s.eng.NetworkSettings(c),
	}
	return resp
}

// listFilters reads docker's filters parameter: {"key":["v",...]} or the
// older {"key":{"v":true}}.
func listFilters(raw string) (map[string][]string, error) {
	out := map[string][]string{}
	if raw == "" {
		return out, nil
	}
	var lists map[string][]string
	if err := json.Unmarshal([]byte(raw), &lists); err == nil {
		return lists, nil
	}
	var sets map[string]map[string]bool
	if err := json.Unmarshal([]byte(raw), &sets); err != nil {
		return nil, badParam("invalid filter: %v", err)
	}
	for k, vs := range sets {
		for v, ok := range vs {
			if ok {
				out[k] = append(out[k], v)
			}
		}
	}
	return out, nil
}

func matchAny(vals []string, fn func(string) bool) bool {
	if len(vals) == 0 {
		return true
	}
	for _, v := range vals {
		if fn(v) {
			return true
		}
	}
	return false
}

func (s *Server) containerList(w http.ResponseWriter, r *http.Request) {
	filters, err := listFilters(r.URL.Query().Get("filters"))
	if err != nil {
		s.writeErr(w, err)
		return
	}
	for k := range filters {
		switch k {
		case "id", "name", "label", "status", "volume", "network":
		default:
			s.writeErr(w, badParam("invalid filter '%s'", k))
			return
		}
	}
	all := boolParam(r, "all")
	limit := -1
	if l := r.URL.Query().Get("limit"); l != "" {
		if limit, err = strconv.Atoi(l); err != nil {
			s.writeErr(w, badParam("invalid limit %q", l))
			return
		}
	}
	out := []container.Summary{}
	size, sizes := boolParam(r, "size"), imageSizes{}
	for _, c := range s.eng.List() {
		if !all && len(filters["status"]) == 0 && c.State.Status != engine.StatusRunning {
			continue
		}
		ok := matchAny(filters["id"], func(v string) bool { return strings.HasPrefix(c.ID, v) }) &&
			matchAny(filters["name"], func(v string) bool { return strings.Contains(c.Name, strings.TrimPrefix(v, "/")) }) &&
			matchAny(filters["status"], func(v string) bool { return v == apiStatus(c.State) }) &&
			labelsMatch(filters["label"], c.Config.Labels) &&
			matchAny(filters["volume"], func(v string) bool { return usesVolume(c, v) }) &&
			matchAny(filters["network"], func(v string) bool { return onNetwork(c, v) })
		if !ok {
			continue
		}
		if size {
			out = append(out, s.sizedSummary(r.Context(), c, sizes))
		} else {
			out = append(out, s.summary(c))
		}
		if limit > 0 && len(out) == limit {
			break
		}
	}
	writeJSON(w, http.StatusOK, out)
}

func labelsMatch(want []string, labels map[string]string) bool {
	for _, l := range want {
		k, v, hasV := strings.Cut(l, "=")
		got, ok := labels[k]
		if !ok || (hasV && got != v) {
			return false
		}
	}
	return true
}

func (s *Server) summary(c engine.Container) container.Summary {
	cmd := strings.Join(append([]string{c.Path}, c.Args...), " ")
	labels := c.Config.Labels
	if labels == nil {
		labels = map[string]string{}
	}
	sum := container.Summary{
		ID:      c.ID,
		Names:   []string{c.Name},
		Image:   c.Image,
		ImageID: c.ImageID,
		Command: cmd,
		Created: c.Created.Unix(),
		Ports:   s.eng.PortSummary(c),
		Labels:  labels,
		State:   container.ContainerState(apiStatus(c.State)),
		Status:  statusText(c.State),
		Mounts:  mountPoints(c),
		NetworkSettings: &container.NetworkSettingsSummary{
			Networks: s.eng.NetworkSettings(c).Networks,
		},
	}
	sum.HostConfig.NetworkMode = string(c.HostConfig.NetworkMode)
	if sum.HostConfig.NetworkMode == "" {
		sum.HostConfig.NetworkMode = "none"
	}
	return sum
}

// apiStatus is the status docker shows: a frozen container is "paused"
// though the engine keeps it running.
func apiStatus(st engine.State) string {
	if st.Paused && st.Status == engine.StatusRunning {
		return "paused"
	}
	if st.Restarting && st.Status == engine.StatusExited {
		return "restarting"
	}
	return st.Status
}

// statusText is docker's STATUS column: "Up 3 minutes", "Exited (0) 2
// hours ago", "Created".
func statusText(st engine.State) string {
	switch st.Status {
	case engine.StatusRunning:
		up := "Up " + humanDuration(time.Since(st.StartedAt))
		if st.Paused {
			return up + " (Paused)"
		}
		if h := st.Health; h != nil {
			if h.Status == container.Starting {
				return up + " (health: starting)"
			}
			return up + " (" + string(h.Status) + ")"
		}
		return up
	case engine.StatusExited:
		if st.Restarting {
			return fmt.Sprintf("Restarting (%d) %s ago", st.ExitCode, humanDuration(time.Since(st.FinishedAt)))
		}
		if st.FinishedAt.IsZero() {
			return fmt.Sprintf("Exited (%d)", st.ExitCode)
		}
		return fmt.Sprintf("Exited (%d) %s ago", st.ExitCode, humanDuration(time.Since(st.FinishedAt)))
	case engine.StatusCreated:
		return "Created"
	case engine.StatusRemoving:
		return "Removal In Progress"
	case engine.StatusDead:
		return "Dead"
	}
	return st.Status
}

func humanDuration(d time.Duration) string {
	switch s := int(d.Seconds()); {
	case s < 1:
		return "Less than a second"
	case s == 1:
		return "1 second"
	case s < 60:
		return fmt.Sprintf("%d seconds", s)
	}
	switch m := int(d.Minutes()); {
	case m == 1:
		return "About a minute"
	case m < 60:
		return fmt.Sprintf("%d minutes", m)
	}
	switch h := int(d.Round(time.Hour).Hours()); {
	case h == 1:
		return "About an hour"
	case h < 48:
		return fmt.Sprintf("%d hours", h)
	case h < 24*7*2:
		return fmt.Sprintf("%d days", h/24)
	case h < 24*30*2:
		return fmt.Sprintf("%d weeks", h/24/7)
	case h < 24*365*2:
		return fmt.Sprintf("%d months", h/24/30)
	default:
		return fmt.Sprintf("%d years", h/24/365)
	}
}

func (s *Server) containerLogs(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	o := engine.LogsOptions{Stdout: boolParam(r, "stdout"), Stderr: boolParam(r, "stderr"), Follow: boolParam(r, "follow"), Tail: -1}
	if !o.Stdout && !o.Stderr {
		s.writeErr(w, badParam("Bad parameters: you must choose at least one stream"))
		return
	}
	if t := q.Get("tail"); t != "" && t != "all" {
		n, err := strconv.Atoi(t)
		if err != nil || n < 0 {
			s.writeErr(w, badParam("invalid tail %q", t))
			return
		}
		o.Tail = n
	}
	for name, dst := range map[string]*time.Time{"since": &o.Since, "until": &o.Until} {
		if v := q.Get(name); v != "" && v != "0" {
			t, err := parseUnixTime(v)
			if err != nil {
				s.writeErr(w, badParam("invalid %s %q", name, v))
				return
			}
			*dst = t
		}
	}
	c, err := s.eng.Get(r.PathValue("id"))
	if err != nil {
		s.writeErr(w, err)
		return
	}
	tty := c.Config.Tty
	if tty {
		w.Header().Set("Content-Type", "application/vnd.docker.raw-stream")
	} else {
		w.Header().Set("Content-Type", "application/vnd.docker.multiplexed-stream")
	}
	w.WriteHeader(http.StatusOK)
	flusher, _ := w.(http.Flusher)
	if flusher != nil {
		flusher.Flush()
	}
	stdout, stderr := streams(w, tty)
	timestamps := boolParam(r, "timestamps")
	err = s.eng.Logs(r.Context(), c.ID, o, func(le engine.LogEntry) error {
		out := stdout
		if le.Stream == "stderr" {
			out = stderr
		}
		line := le.Log
		if timestamps {
			line = le.Time.UTC().Format(time.RFC3339Nano) + " " + line
		}
		if _, err := io.WriteString(out, line); err != nil {
			return err
		}
		if o.Follow && flusher != nil {
			flusher.Flush()
		}
		return nil
	})
	if err != nil && r.Context().Err() == nil {
		s.log.Warn("logs", "id", c.ID, "err", err)
	}
}

// parseUnixTime reads docker's "seconds[.nanoseconds]" timestamps.
func parseUnixTime(v string) (time.Time, error) {
	sec, frac, _ := strings.Cut(v, ".")
	s, err := strconv.ParseInt(sec, 10, 64)
	if err != nil {
		return time.Time{}, err
	}
	var ns int64
	if frac != "" {
		frac = (frac + "000000000")[:9]
		if ns, err = strconv.ParseInt(frac, 10, 64); err != nil {
			return time.Time{}, err
		}
	}
	return time.Unix(s, ns), nil
}

// streams returns writers for a container's stdout and stderr: the raw
// connection for a tty, stdcopy frames (8-byte headers) otherwise.
func streams(w io.Writer, tty bool) (io.Writer, io.Writer) {
	if tty {
		return w, w
	}
	return &frameWriter{w: w, stream: stdcopy.Stdout}, &frameWriter{w: w, stream: stdcopy.Stderr}
}

// frameWriter writes docker's multiplexed frames: a header of the stream
// byte, three zero bytes and the big-endian payload length, then the
// payload, in one write so that frames of two streams never interleave.
type frameWriter struct {
	w      io.Writer
	stream stdcopy.StdType
	buf    []byte
}

func (f *frameWriter) Write(p []byte) (int, error) {
	f.buf = append(f.buf[:0], byte(f.stream), 0, 0, 0)
	f.buf = binary.BigEndian.AppendUint32(f.buf, uint32(len(p)))
	f.buf = append(f.buf, p...)
	if _, err := f.w.Write(f.buf); err != nil {
		return 0, err
	}
	return len(p), nil
}

// hijack takes the connection over for a raw stream (attach, exec start)
// and answers with docker's upgrade or plain 200, naming the stream type.
func (s *Server) hijack(w http.ResponseWriter, r *http.Request, tty bool) (net.Conn, *bufio.ReadWriter, bool) {
	hj, ok := w.(http.Hijacker)
	if !ok {
		s.writeErr(w, errors.New("connection cannot be hijacked"))
		return nil, nil, false
	}
	conn, buf, err := hj.Hijack()
	if err != nil {
		s.log.Warn("hijack", "err", err)
		return nil, nil, false
	}
	ctype := "application/vnd.docker.raw-stream"
	if !tty && !versionLess(requestVersion(r), "1.42") {
		ctype = "application/vnd.docker.multiplexed-stream"
	}
	if r.Header.Get("Upgrade") != "" {
		fmt.Fprintf(buf, "HTTP/1.1 101 UPGRADED\r\nContent-Type: %s\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n", ctype)
	} else {
		fmt.Fprintf(buf, "HTTP/1.1 200 OK\r\nContent-Type: %s\r\n\r\n", ctype)
	}
	if err := buf.Flush(); err != nil {
		conn.Close()
		return nil, nil, false
	}
	return conn, buf, true
}

// forwardStdin copies the client's stream into the container's stdin
// through the supervisor; the client's end of input is passed on
// (CloseWrite), which closes stdin of a StdinOnce container. The detach
// keys end the attach (detach calls back) and leave the container running.
func (s *Server) forwardStdin(ctx context.Context, id string, in io.Reader, keys []byte, detach func()) {
	dst, err := s.eng.AttachStdin(ctx, id)
	if err != nil {
		s.log.Debug("attach stdin", "id", id, "err", err)
		_, _ = io.Copy(io.Discard, in)
		return
	}
	defer dst.Close()
	src := in
	if len(keys) > 0 {
		src = newEscapeReader(in, keys)
	}
	_, err = io.Copy(dst, src)
	if errors.Is(err, errDetached) {
		detach()
		return
	}
	_ = dst.CloseWrite()
}

// containerAttach hijacks the connection and streams the container's
// output until it exits. Output is taken from the json-file log as it is
// written (the supervisor writes it before anything else sees it), so an
// attach never competes with logging. Stdin goes to the supervisor.
func (s *Server) containerAttach(w http.ResponseWriter, r *http.Request) {
	c, err := s.eng.Get(r.PathValue("id"))
	if err != nil {
		s.writeErr(w, err)
		return
	}
	if c.State.Status != engine.StatusRunning && c.State.Status != engine.StatusCreated {
		s.writeErr(w, fmt.Errorf("You cannot attach to a stopped container, start it first: %w", errConflict))
		return
	}
	keys, err := parseDetachKeys(r.URL.Query().Get("detachKeys"))
	if err != nil {
		s.writeErr(w, err)
		return
	}
	if !c.Config.Tty {
		keys = nil // docker detaches only from a tty: other stdin passes whole
	}
	conn, buf, ok := s.hijack(w, r, c.Config.Tty)
	if !ok {
		return
	}
	defer conn.Close()
	// A hijacked request's context is cancelled as soon as the client
	// half-closes (the end of its stdin): the output must go on until the
	// container exits or a write fails.
	ctx := context.WithoutCancel(r.Context())
	// The client's side carries stdin; its end or a broken connection
	// must not cut the output short, a write error will.
	var positioned func()
	if boolParam(r, "stdin") && c.Config.OpenStdin {
		positioned = func() {
			go s.forwardStdin(ctx, c.ID, buf.Reader, keys, func() {
				s.eng.Emit("container", "detach", c.ID, map[string]string{"name": strings.TrimPrefix(c.Name, "/")})
				conn.Close() // ends the output loop below: the client sees its attach end
			})
		}
	} else {
		go func() { _, _ = io.Copy(io.Discard, buf.Reader) }()
	}
	stdout, stderr := streams(conn, c.Config.Tty)
	q := r.URL.Query()
	o := engine.LogsOptions{Stdout: boolParam(r, "stdout"), Stderr: boolParam(r, "stderr"), Follow: boolParam(r, "stream"), Tail: 0,
		Positioned: positioned}
	if boolParam(r, "logs") {
		o.Tail = -1
	}
	_ = q
	err = s.eng.Logs(ctx, c.ID, o, func(le engine.LogEntry) error {
		out := stdout
		if le.Stream == "stderr" {
			out = stderr
		}
		_, err := io.WriteString(out, le.Log)
		return err
	})
	s.log.Debug("attach ended", "id", c.ID, "err", err)
	if tc, ok := conn.(*net.UnixConn); ok {
		_ = tc.CloseWrite()
	}
}

// containerPrune removes stopped containers; filters: until (a time) and
// label / label! (docker's).
func (s *Server) containerPrune(w http.ResponseWriter, r *http.Request) {
	keepBy, err := pruneFilters(r)
	if err != nil {
		s.writeErr(w, err)
		return
	}
	keep := func(c engine.Container) bool { return keepBy(c.Created, c.Config.Labels) }
	ids, err := s.eng.Prune(r.Context(), keep)
	if err != nil {
		s.writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, container.PruneReport{ContainersDeleted: nonNil(ids)})
}
