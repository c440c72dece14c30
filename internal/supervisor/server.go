// Package supervisor is the one process per exec-root that holds berth's
// containers while the daemon comes and goes (`berth supervise`).
//
// Docker keeps a shim process per container so that the daemon can die and
// restart without killing its containers; a Go shim costs ~6 MiB of RSS per
// container, over berth's budget of 3.2 MiB. Instead, one supervisor creates
// every container through internal/runtime as a library, so it is the parent
// of each container's init (and a child subreaper, so anything re-parented
// comes to it too). Per container it keeps two stdio pipes, two copy
// goroutines with a 16 KiB buffer each, a json-file log and a pidfd in the
// Go netpoller: no thread blocks in wait4.
//
// When a container's process exits the supervisor reaps it, drains its
// output into the log, deletes its runtime state (cgroup included), writes
// the exit status atomically to the file the daemon named and tells every
// subscribed daemon. The daemon finds the status in the file even if it was
// not running at the time.
//
// If the supervisor itself dies, its containers keep running (re-parented
// to the host's init) but lose their stdio. A new supervisor re-adopts them
// from the records under <exec-root>/supervisor/: it watches their pidfds and,
// since it cannot wait for a process that is not its child, records exit
// code 137 with Unknown set when they end.
package supervisor

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/internal/errdefs"
	"github.com/berth-dev/berth/internal/runtime"
)

// Paths below an exec-root.
const (
	SocketName = "supervisor.sock"
	PidName    = "supervisor.pid"
	lockName   = "supervisor.lock"
	recordsDir = "supervisor"
	runtimeDir = "runtime"
)

// drainTimeout bounds how long an exit waits for the output pipes to reach
// EOF: a process that escaped the container's pid namespace holding them
// must not keep the exit from being recorded.
const drainTimeout = 2 * time.Second

// Server is the supervisor.
type Server struct {
	execRoot string
	rt       *runtime.Runtime
	log      *slog.Logger

	mu    sync.Mutex
	ctrs  map[string]*ctr
	execs map[string]*execProc // by exec ID, those with a terminal
	subs  map[chan Event]struct{}
}

// record is what survives a supervisor restart, in <records>/<id>.json.
type record struct {
	Container
	ExitPath    string `json:"exitPath"`
	CgroupsPath string `json:"cgroupsPath,omitempty"` // for OOM kills at exit
}

type ctr struct {
	rec   record
	jlog  *JSONLog
	pipes []*os.File // read ends (or the pty master), closed after draining
	// stdin is where attach writes: a pipe's write end or the pty master;
	// nil without OpenStdin. Guarded by Server.mu.
	stdin     *os.File
	master    *os.File // the pty master of a Tty container
	stdinOnce bool
	copies    sync.WaitGroup
	done      chan struct{} // closed when the exit is recorded
}

// NewServer prepares a supervisor for execRoot.
func NewServer(execRoot string, log *slog.Logger) (*Server, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	rt, err := runtime.New(filepath.Join(execRoot, runtimeDir), log)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Join(execRoot, recordsDir), 0o700); err != nil {
		return nil, fmt.Errorf("supervisor records: %w", err)
	}
	return &Server{execRoot: execRoot, rt: rt, log: log, ctrs: map[string]*ctr{}, execs: map[string]*execProc{}, subs: map[chan Event]struct{}{}}, nil
}

// RuntimeRoot is where the supervisor keeps runtime state for an exec-root.
func RuntimeRoot(execRoot string) string { return filepath.Join(execRoot, runtimeDir) }

// Run serves until ctx ends. It takes the exec-root's lock first, so a
// second supervisor fails with ErrAlreadyExists instead of stealing the
// socket; containers keep running when it returns.
func (s *Server) Run(ctx context.Context) error {
	lock, err := os.OpenFile(filepath.Join(s.execRoot, lockName), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("supervisor lock: %w", err)
	}
	defer lock.Close()
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		return fmt.Errorf("another supervisor runs for %s: %w", s.execRoot, errdefs.ErrAlreadyExists)
	}
	// Orphans of our containers' processes come to us rather than to the
	// host's init, so nothing we started is reaped behind our back.
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		s.log.Warn("cannot become a child subreaper", "err", err)
	}
	s.adopt()
	sock := filepath.Join(s.execRoot, SocketName)
	_ = os.Remove(sock)
	ln, err := net.Listen("unix", sock)
	if err != nil {
		return fmt.Errorf("supervisor socket: %w", err)
	}
	_ = os.Chmod(sock, 0o600)
	if err := os.WriteFile(filepath.Join(s.execRoot, PidName), fmt.Appendf(nil, "%d\n", os.Getpid()), 0o644); err != nil {
		ln.Close()
		return fmt.Errorf("supervisor pid file: %w", err)
	}
	go func() {
		<-ctx.Done()
		ln.Close()
	}()
	for {
		conn, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("supervisor accept: %w", err)
		}
		go s.serve(ctx, conn)
	}
}

func (s *Server) serve(ctx context.Context, conn net.Conn) {
	defer conn.Close()
	var req Request
	if err := json.NewDecoder(bufio.NewReader(conn)).Decode(&req); err != nil {
		_ = json.NewEncoder(conn).Encode(errorResponse(fmt.Errorf("bad request: %v: %w", err, errdefs.ErrInvalidArgument)))
		return
	}
	if req.Method == MethodSubscribe {
		s.subscribe(ctx, conn)
		return
	}
	if req.Method == MethodExec {
		if req.Exec == nil {
			_ = json.NewEncoder(conn).Encode(errorResponse(fmt.Errorf("exec without parameters: %w", errdefs.ErrInvalidArgument)))
			return
		}
		s.execStart(ctx, conn, req.ID, *req.Exec)
		return
	}
	if req.Method == MethodAttach {
		c, err := s.get(req.ID)
		if err == nil && c.stdin == nil {
			err = fmt.Errorf("container %s has no open stdin: %w", req.ID, errdefs.ErrFailedPrecondition)
		}
		if err != nil {
			_ = json.NewEncoder(conn).Encode(errorResponse(err))
			return
		}
		if json.NewEncoder(conn).Encode(Response{}) == nil {
			s.attach(conn, c)
		}
		return
	}
	resp := s.handle(ctx, req)
	_ = json.NewEncoder(conn).Encode(resp)
}

func (s *Server) handle(ctx context.Context, req Request) Response {
	var err error
	var resp Response
	switch req.Method {
	case MethodPing:
	case MethodCreate:
		if req.Create == nil {
			err = fmt.Errorf("create without parameters: %w", errdefs.ErrInvalidArgument)
			break
		}
		resp.Pid, err = s.create(ctx, req.ID, *req.Create)
	case MethodStart:
		err = s.start(ctx, req.ID)
	case MethodKill:
		if req.ExecID != "" {
			err = s.killExec(req.ExecID, unix.Signal(req.Signal))
			break
		}
		err = s.kill(ctx, req.ID, unix.Signal(req.Signal), req.All)
	case MethodDelete:
		err = s.delete(ctx, req.ID)
	case MethodList:
		resp.Containers = s.list()
	case MethodPause, MethodResume, MethodPids, MethodStats, MethodUpdate:
		if _, err = s.get(req.ID); err != nil {
			break
		}
		switch req.Method {
		case MethodPause:
			err = s.rt.Pause(ctx, req.ID)
		case MethodResume:
			err = s.rt.Resume(ctx, req.ID)
		case MethodPids:
			resp.Pids, err = s.rt.Ps(ctx, req.ID)
		case MethodStats:
			resp.Stats, err = s.rt.Stats(ctx, req.ID)
		case MethodUpdate:
			if req.Resources == nil {
				err = fmt.Errorf("update without resources: %w", errdefs.ErrInvalidArgument)
				break
			}
			err = s.rt.Update(ctx, req.ID, req.Resources)
		}
	case MethodResize:
		if req.ExecID != "" {
			err = s.resizeExec(req.ExecID, req.Width, req.Height)
			break
		}
		var c *ctr
		if c, err = s.get(req.ID); err == nil {
			err = s.resize(c, req.Width, req.Height)
		}
	default:
		err = fmt.Errorf("unknown method %q: %w", req.Method, errdefs.ErrNotImplemented)
	}
	if err != nil {
		return errorResponse(err)
	}
	return resp
}

func (s *Server) subscribe(ctx context.Context, conn net.Conn) {
	// A daemon that does not keep up is cut off rather than let events
	// pile up here; it reconnects and reconciles from the exit files.
	ch := make(chan Event, 256)
	s.mu.Lock()
	s.subs[ch] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.subs, ch)
		s.mu.Unlock()
	}()
	closed := make(chan struct{})
	go func() {
		var b [1]byte
		_, _ = conn.Read(b[:]) // returns when the daemon goes away
		close(closed)
	}()
	enc := json.NewEncoder(conn)
	if err := enc.Encode(Response{}); err != nil { // subscribed
		return
	}
	for {
		select {
		case ev, ok := <-ch:
			if !ok || enc.Encode(ev) != nil {
				return
			}
		case <-closed:
			return
		case <-ctx.Done():
			return
		}
	}
}

func (s *Server) publish(ev Event) {
	for ch := range s.subs {
		select {
		case ch <- ev:
		default:
			close(ch)
			delete(s.subs, ch)
		}
	}
}

func (s *Server) create(ctx context.Context, id string, req CreateRequest) (pid int, retErr error) {
	if err := runtime.ValidateID(id); err != nil {
		return 0, err
	}
	if req.ExitPath == "" || req.LogPath == "" {
		return 0, fmt.Errorf("create %s: exit and log paths are required: %w", id, errdefs.ErrInvalidArgument)
	}
	c := &ctr{rec: record{Container: Container{ID: id}, ExitPath: req.ExitPath, CgroupsPath: req.CgroupsPath}, done: make(chan struct{})}
	s.mu.Lock()
	if _, ok := s.ctrs[id]; ok {
		s.mu.Unlock()
		return 0, fmt.Errorf("container %s is already supervised: %w", id, errdefs.ErrAlreadyExists)
	}
	s.ctrs[id] = c // reserved; removed again on failure
	s.mu.Unlock()
	defer func() {
		if retErr != nil {
			for _, p := range c.pipes {
				p.Close()
			}
			if c.stdin != nil && c.stdin != c.master {
				c.stdin.Close()
			}
			if c.jlog != nil {
				c.jlog.Close()
			}
			s.mu.Lock()
			delete(s.ctrs, id)
			s.mu.Unlock()
		}
	}()
	jlog, err := OpenJSONLog(req.LogPath, req.LogMaxSize, req.LogMaxFiles)
	if err != nil {
		return 0, err
	}
	c.jlog = jlog
	c.stdinOnce = req.StdinOnce
	var opts runtime.CreateOptions
	if req.Tty {
		opts, err = createTty()
	} else {
		opts, err = s.createPipes(c, req)
	}
	for _, f := range []*os.File{opts.Stdin, opts.Stdout, opts.Stderr} {
		if f != nil {
			defer f.Close() // the container's ends: only it holds them after create
		}
	}
	if err != nil {
		return 0, err
	}
	opts.Bundle = req.Bundle
	var console *consoleSocket
	if req.Tty {
		if console, err = listenConsole(id); err != nil {
			return 0, err
		}
		defer console.close()
		opts.ConsoleSocket = console.path
	}
	// Not ctx: the request's context ends with the call, the init must not.
	if err := s.rt.Create(context.WithoutCancel(ctx), id, opts); err != nil {
		return 0, err
	}
	if console != nil {
		m, err := console.master()
		if err != nil {
			_ = s.rt.Delete(context.WithoutCancel(ctx), id, true)
			return 0, err
		}
		c.master = m
		c.pipes = append(c.pipes, m)
		if req.OpenStdin {
			c.stdin = m
		}
	}
	st, err := s.rt.State(ctx, id)
	if err != nil {
		_ = s.rt.Delete(context.WithoutCancel(ctx), id, true)
		return 0, err
	}
	c.rec.Pid = st.Pid
	if err := s.saveRecord(c.rec); err != nil {
		_ = s.rt.Delete(context.WithoutCancel(ctx), id, true)
		return 0, err
	}
	streams := []string{"stdout", "stderr"}
	copyFn := copyLines
	if c.master != nil {
		streams, copyFn = []string{"stdout"}, copyChunks
	}
	for i, stream := range streams {
		c.copies.Add(1)
		go func(r *os.File) {
			defer c.copies.Done()
			buf := make([]byte, maxLine)
			if err := copyFn(jlog, stream, r, buf); err != nil && !errors.Is(err, os.ErrClosed) {
				s.log.Warn("container output", "id", id, "stream", stream, "err", err)
			}
		}(c.pipes[i])
	}
	go s.watch(c)
	return st.Pid, nil
}

// createPipes makes the stdio of a container without a terminal: stdout
// and stderr pipes whose read ends c keeps, and stdin from /dev/null or,
// with OpenStdin, a pipe whose write end c keeps for attach.
func (s *Server) createPipes(c *ctr, req CreateRequest) (runtime.CreateOptions, error) {
	var o runtime.CreateOptions
	if req.OpenStdin {
		r, w, err := os.Pipe()
		if err != nil {
			return o, fmt.Errorf("stdin pipe: %w", err)
		}
		o.Stdin, c.stdin = r, w
	} else {
		f, err := os.Open(os.DevNull)
		if err != nil {
			return o, err
		}
		o.Stdin = f
	}
	for _, dst := range []**os.File{&o.Stdout, &o.Stderr} {
		r, w, err := os.Pipe()
		if err != nil {
			return o, fmt.Errorf("output pipe: %w", err)
		}
		c.pipes = append(c.pipes, r)
		*dst = w
	}
	return o, nil
}

// createTty gives the init /dev/null as stdio: the runtime replaces it
// with the pty's slave, whose master comes back on the console socket.
func createTty() (runtime.CreateOptions, error) {
	var o runtime.CreateOptions
	for _, dst := range []**os.File{&o.Stdin, &o.Stdout, &o.Stderr} {
		f, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
		if err != nil {
			return o, err
		}
		*dst = f
	}
	return o, nil
}

func (s *Server) get(id string) (*ctr, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.ctrs[id]
	if !ok {
		return nil, fmt.Errorf("container %s is not supervised: %w", id, errdefs.ErrNotFound)
	}
	return c, nil
}

func (s *Server) start(ctx context.Context, id string) error {
	c, err := s.get(id)
	if err != nil {
		return err
	}
	if err := s.rt.Start(ctx, id); err != nil {
		return err
	}
	s.mu.Lock()
	c.rec.Started, c.rec.StartedAt = true, time.Now().UTC()
	rec := c.rec
	s.mu.Unlock()
	return s.saveRecord(rec)
}

func (s *Server) kill(ctx context.Context, id string, sig unix.Signal, all bool) error {
	if _, err := s.get(id); err != nil {
		return err
	}
	return s.rt.Kill(ctx, id, sig, all)
}

// delete kills a supervised container and waits until its exit is
// recorded; for one the supervisor does not know it removes whatever
// runtime state is left.
func (s *Server) delete(ctx context.Context, id string) error {
	c, err := s.get(id)
	if err != nil {
		if err := s.rt.Delete(ctx, id, true); err != nil && !errdefs.IsNotFound(err) {
			return err
		}
		return nil
	}
	_ = s.rt.Kill(ctx, id, unix.SIGKILL, true)
	_ = s.rt.Kill(ctx, id, unix.SIGKILL, false)
	select {
	case <-c.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (s *Server) list() []Container {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Container, 0, len(s.ctrs))
	for _, c := range s.ctrs {
		if c.rec.Pid != 0 {
			out = append(out, c.rec.Container)
		}
	}
	return out
}

// watch waits for the container's process to end and records its exit.
func (s *Server) watch(c *ctr) {
	st := waitExit(c.rec.Pid, !c.rec.Adopted)
	drained := make(chan struct{})
	go func() {
		c.copies.Wait()
		close(drained)
	}()
	select {
	case <-drained:
	case <-time.After(drainTimeout):
		for _, p := range c.pipes {
			p.Close()
		}
		<-drained
	}
	for _, p := range c.pipes {
		p.Close()
	}
	s.mu.Lock()
	if c.stdin != nil && c.stdin != c.master {
		c.stdin.Close()
	}
	c.stdin = nil
	s.mu.Unlock()
	if c.jlog != nil {
		c.jlog.Close()
	}
	id := c.rec.ID
	st.OOMKilled = oomKilled(c.rec.CgroupsPath)
	if err := s.rt.Delete(context.Background(), id, true); err != nil && !errdefs.IsNotFound(err) {
		s.log.Warn("delete runtime state", "id", id, "err", err)
	}
	if err := writeFileAtomic(c.rec.ExitPath, st); err != nil {
		s.log.Error("record exit", "id", id, "err", err)
	}
	_ = os.Remove(s.recordPath(id))
	s.mu.Lock()
	delete(s.ctrs, id)
	close(c.done)
	s.publish(Event{ID: id, Exit: st})
	s.mu.Unlock()
	s.log.Debug("container exited", "id", id, "code", st.ExitCode)
}

// waitExit waits for pid through a pidfd in the netpoller and, when pid is
// our child, reaps it for its status.
func waitExit(pid int, child bool) ExitStatus {
	unknown := ExitStatus{ExitCode: UnknownExitCode, Unknown: true}
	fd, err := unix.PidfdOpen(pid, unix.PIDFD_NONBLOCK)
	if err == nil {
		f := os.NewFile(uintptr(fd), "pidfd")
		if rc, err := f.SyscallConn(); err == nil {
			_ = rc.Read(func(fd uintptr) bool {
				pfd := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
				n, _ := unix.Poll(pfd, 0)
				return n > 0
			})
		}
		f.Close()
	}
	if !child {
		unknown.FinishedAt = time.Now().UTC()
		return unknown
	}
	var ws unix.WaitStatus
	for {
		_, err = unix.Wait4(pid, &ws, 0, nil)
		if err != unix.EINTR {
			break
		}
	}
	now := time.Now().UTC()
	switch {
	case err != nil:
		unknown.FinishedAt = now
		return unknown
	case ws.Signaled():
		return ExitStatus{ExitCode: 128 + int(ws.Signal()), FinishedAt: now}
	default:
		return ExitStatus{ExitCode: ws.ExitStatus(), FinishedAt: now}
	}
}

// adopt takes over the containers a previous supervisor left.
func (s *Server) adopt() {
	dir := filepath.Join(s.execRoot, recordsDir)
	entries, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range entries {
		data, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			continue
		}
		var rec record
		if json.Unmarshal(data, &rec) != nil || runtime.ValidateID(rec.ID) != nil {
			_ = os.Remove(filepath.Join(dir, e.Name()))
			continue
		}
		rec.Adopted = true
		c := &ctr{rec: rec, done: make(chan struct{})}
		s.ctrs[rec.ID] = c
		_ = s.saveRecord(rec)
		s.log.Info("re-adopted container", "id", rec.ID, "pid", rec.Pid)
		// A pid that is gone or reused is caught by the runtime: its state
		// checks the process start time. Then the watch ends at once.
		if st, err := s.rt.State(context.Background(), rec.ID); err != nil || st.Status == "stopped" {
			c.rec.Pid = -1
		}
		go s.watch(c)
	}
}

func (s *Server) recordPath(id string) string {
	return filepath.Join(s.execRoot, recordsDir, id+".json")
}

func (s *Server) saveRecord(rec record) error {
	return writeFileAtomic(s.recordPath(rec.ID), rec)
}

// writeFileAtomic writes v as JSON to path through a rename, so readers
// see the old content or the new, never a torn file.
func writeFileAtomic(path string, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
