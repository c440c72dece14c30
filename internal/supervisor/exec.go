package supervisor

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/internal/errdefs"
)

// Frame streams of an exec connection: docker's stdcopy numbering for the
// output, and one last frame with the exit status as JSON.
const (
	FrameStdout = 1
	FrameStderr = 2
	FrameExit   = 0xff
)

// WriteFrame writes one frame: a stream byte, three zero bytes, a
// big-endian length and the data (docker's multiplexed-stream header).
func WriteFrame(w io.Writer, stream byte, data []byte) error {
	var hdr [8]byte
	hdr[0] = stream
	binary.BigEndian.PutUint32(hdr[4:], uint32(len(data)))
	if _, err := w.Write(hdr[:]); err != nil {
		return err
	}
	_, err := w.Write(data)
	return err
}

// ReadFrame reads one frame written by WriteFrame.
func ReadFrame(r io.Reader, buf []byte) (stream byte, data []byte, err error) {
	var hdr [8]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return 0, nil, err
	}
	n := binary.BigEndian.Uint32(hdr[4:])
	if int(n) > len(buf) {
		return 0, nil, fmt.Errorf("exec frame of %d bytes: %w", n, errdefs.ErrInvalidArgument)
	}
	if _, err := io.ReadFull(r, buf[:n]); err != nil {
		return 0, nil, err
	}
	return hdr[0], buf[:n], nil
}

// execProc is a running exec: a `berth runtime exec` child of the
// supervisor whose stdio are pipes (or the exec's pty, whose master comes
// back on a console socket). Running it through the runtime's CLI rather
// than runtime.Exec in-process gives the exec its own stdio (a library
// call would hand it the supervisor's) and a parent that forwards signals
// and reaps it.
type execProc struct {
	master  *os.File // the terminal, when the exec has one
	pidFile string   // where the helper writes the exec's pid
}

// execStart runs req in container id and streams it over conn until it
// ends.
func (s *Server) execStart(ctx context.Context, conn net.Conn, id string, req ExecRequest) {
	fail := func(err error) { _ = json.NewEncoder(conn).Encode(errorResponse(err)) }
	if _, err := s.get(id); err != nil {
		fail(err)
		return
	}
	if req.ExecID == "" || req.ProcessPath == "" {
		fail(fmt.Errorf("exec without id or process: %w", errdefs.ErrInvalidArgument))
		return
	}
	// Our own binary, even if the file was replaced since we started: the
	// helper must speak this supervisor's runtime state format.
	const exe = "/proc/self/exe"
	var err error
	// The helper writes the process's pid there, for killExec.
	pidFile := req.ProcessPath + ".pid"
	defer os.Remove(pidFile)
	proc := &execProc{pidFile: pidFile}
	s.setExec(req.ExecID, proc)
	defer s.setExec(req.ExecID, nil)
	args := []string{"runtime", "--root", filepath.Join(s.execRoot, runtimeDir), "exec", "--process", req.ProcessPath, "--pid-file", pidFile}
	var console *consoleSocket
	if req.Tty {
		if console, err = listenConsole("exec-" + req.ExecID); err != nil {
			fail(err)
			return
		}
		defer console.close()
		args = append(args, "--console-socket", console.path)
	}
	cmd := exec.Command(exe, append(args, id)...)
	var closeAfterStart []io.Closer
	var stdinW *os.File
	var outputs []*os.File
	pipe := func() (*os.File, *os.File) {
		r, w, perr := os.Pipe()
		if perr != nil && err == nil {
			err = perr
		}
		return r, w
	}
	if req.OpenStdin && !req.Tty {
		r, w := pipe()
		cmd.Stdin, stdinW = r, w
		closeAfterStart = append(closeAfterStart, r)
	}
	// With a terminal the helper's own stderr still says why an exec
	// failed; its stdout stays empty.
	streams := []byte{FrameStdout, FrameStderr}
	if req.Tty {
		streams = []byte{FrameStderr}
		cmd.Stdout = nil
	}
	for _, st := range streams {
		r, w := pipe()
		outputs = append(outputs, r)
		closeAfterStart = append(closeAfterStart, w)
		if st == FrameStdout {
			cmd.Stdout = w
		} else {
			cmd.Stderr = w
		}
	}
	closeAll := func() {
		for _, c := range closeAfterStart {
			c.Close()
		}
	}
	if err == nil {
		err = cmd.Start()
	}
	closeAll()
	if err != nil {
		for _, f := range outputs {
			f.Close()
		}
		if stdinW != nil {
			stdinW.Close()
		}
		s.log.Warn("exec", "id", id, "err", err)
		fail(fmt.Errorf("exec: %w", err))
		return
	}
	var mu sync.Mutex // frames from several goroutines
	// Frames must follow the response: output may come before it is sent.
	responded := make(chan struct{})
	respond := func() {
		mu.Lock()
		defer mu.Unlock()
		if json.NewEncoder(conn).Encode(Response{Pid: pidOf(cmd)}) != nil {
			_ = cmd.Process.Kill()
		}
		close(responded)
	}
	frame := func(stream byte, data []byte) error {
		<-responded
		mu.Lock()
		defer mu.Unlock()
		return WriteFrame(conn, stream, data)
	}
	var copies sync.WaitGroup
	copyOut := func(stream byte, r io.Reader) {
		defer copies.Done()
		buf := make([]byte, 32<<10)
		for {
			n, rerr := r.Read(buf)
			if n > 0 && frame(stream, buf[:n]) != nil {
				_, _ = io.Copy(io.Discard, r) // the daemon left: keep the exec from blocking
				return
			}
			if rerr != nil {
				return
			}
		}
	}
	for i, f := range outputs {
		copies.Add(1)
		go copyOut(streams[i], f)
	}
	if console != nil {
		var master *os.File
		got := make(chan consoleResult, 1)
		go func() {
			select {
			case r := <-console.got:
				got <- r
			case <-time.After(10 * time.Second):
				got <- consoleResult{err: errors.New("no console")}
			}
		}()
		// The helper may fail before it sends a console: don't wait then.
		exited := make(chan struct{})
		var waitErr error
		go func() { waitErr = cmd.Wait(); close(exited) }()
		select {
		case r := <-got:
			if r.err == nil {
				master = r.master
				s.setExec(req.ExecID, &execProc{master: r.master, pidFile: pidFile})
				copies.Add(1)
				go copyOut(FrameStdout, r.master)
				if req.OpenStdin {
					stdinW = r.master
				}
			}
		case <-exited:
		}
		respond()
		s.forwardExecStdin(conn, stdinW, req.Tty)
		<-exited
		copies.Wait()
		for _, f := range outputs {
			f.Close()
		}
		if master != nil {
			master.Close() // after its copy's EIO: every slave fd is gone
		}
		s.execExit(frame, waitErr)
		return
	}
	respond()
	s.forwardExecStdin(conn, stdinW, false)
	waitErr := cmd.Wait()
	copies.Wait()
	for _, f := range outputs {
		f.Close()
	}
	s.execExit(frame, waitErr)
}

func pidOf(cmd *exec.Cmd) int {
	if cmd.Process == nil {
		return 0
	}
	return cmd.Process.Pid
}

// forwardExecStdin copies the daemon's writes into the exec's stdin in the
// background; the daemon's half-close closes a pipe (a pty stays open:
// closing the master would hang up the terminal).
func (s *Server) forwardExecStdin(conn net.Conn, stdin *os.File, tty bool) {
	go func() {
		if stdin == nil {
			_, _ = io.Copy(io.Discard, conn)
			return
		}
		_, _ = io.Copy(stdin, conn)
		if !tty {
			stdin.Close()
		}
	}()
}

func (s *Server) execExit(frame func(byte, []byte) error, waitErr error) {
	s.log.Debug("exec ended", "err", waitErr)
	st := ExitStatus{FinishedAt: time.Now().UTC()}
	var ee *exec.ExitError
	switch {
	case waitErr == nil:
	case errors.As(waitErr, &ee):
		st.ExitCode = ee.ExitCode()
		if st.ExitCode < 0 {
			st.ExitCode = UnknownExitCode
		}
	default:
		st.ExitCode, st.Unknown = UnknownExitCode, true
	}
	data, _ := json.Marshal(st)
	_ = frame(FrameExit, data)
}

func (s *Server) setExec(id string, p *execProc) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if p == nil {
		delete(s.execs, id)
		return
	}
	s.execs[id] = p
}

func (s *Server) resizeExec(id string, width, height int) error {
	s.mu.Lock()
	p := s.execs[id]
	s.mu.Unlock()
	if p == nil || p.master == nil {
		return fmt.Errorf("exec %s has no terminal: %w", id, errdefs.ErrNotFound)
	}
	return resizePty(p.master, width, height)
}

// killExec signals a running exec's process (a health probe past its
// timeout gets SIGKILL, as docker's does).
func (s *Server) killExec(id string, sig unix.Signal) error {
	s.mu.Lock()
	p := s.execs[id]
	s.mu.Unlock()
	if p == nil {
		return fmt.Errorf("exec %s is not running: %w", id, errdefs.ErrNotFound)
	}
	data, err := os.ReadFile(p.pidFile)
	if err != nil {
		return fmt.Errorf("exec %s has not started: %w", id, errdefs.ErrConflict)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil || pid <= 0 {
		return fmt.Errorf("exec %s: bad pid file %q", id, data)
	}
	// The pid file goes when the exec ends (under s.execs), so the pid is
	// the exec's own; a race with its exit only finds it gone.
	if err := unix.Kill(pid, sig); err != nil && err != unix.ESRCH {
		return fmt.Errorf("signal exec %s: %w", id, err)
	}
	return nil
}
