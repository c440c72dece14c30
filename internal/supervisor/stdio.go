package supervisor

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/internal/errdefs"
)

// consoleSocket listens for the pty master the container's init sends
// (SCM_RIGHTS) during runtime.Create.
type consoleSocket struct {
	path string
	ln   *net.UnixListener
	got  chan consoleResult
}

type consoleResult struct {
	master *os.File
	err    error
}

// listenConsole listens in the abstract namespace: a path under the
// exec-root could pass the 108-byte limit of socket addresses, and an
// abstract socket leaves nothing behind.
func listenConsole(id string) (*consoleSocket, error) {
	path := fmt.Sprintf("@berth-console-%d-%s", os.Getpid(), id)
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("console socket: %w", err)
	}
	cs := &consoleSocket{path: path, ln: ln, got: make(chan consoleResult, 1)}
	go func() {
		conn, err := ln.AcceptUnix()
		if err != nil {
			cs.got <- consoleResult{err: fmt.Errorf("console socket: %w", err)}
			return
		}
		defer conn.Close()
		m, err := recvFd(conn)
		cs.got <- consoleResult{master: m, err: err}
	}()
	return cs, nil
}

// master returns the received pty master; Create has returned by then, so
// the init has sent it or failed.
func (cs *consoleSocket) master() (*os.File, error) {
	select {
	case r := <-cs.got:
		return r.master, r.err
	case <-time.After(5 * time.Second):
		return nil, fmt.Errorf("container sent no console: %w", errdefs.ErrUnavailable)
	}
}

func (cs *consoleSocket) close() {
	cs.ln.Close()
}

func recvFd(conn *net.UnixConn) (*os.File, error) {
	buf := make([]byte, 256)
	oob := make([]byte, unix.CmsgSpace(4))
	_, oobn, _, _, err := conn.ReadMsgUnix(buf, oob)
	if err != nil {
		return nil, fmt.Errorf("receive console: %w", err)
	}
	msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
	if err != nil || len(msgs) != 1 {
		return nil, errors.New("receive console: no file descriptor in message")
	}
	fds, err := unix.ParseUnixRights(&msgs[0])
	if err != nil || len(fds) != 1 {
		return nil, errors.New("receive console: bad rights message")
	}
	return os.NewFile(uintptr(fds[0]), "pty-master"), nil
}

// copyChunks logs what a pty gives as it comes: a terminal's output is a
// byte stream (prompts end without a newline), so it is not split in
// lines. The master reads EIO once every slave fd is closed: that is its
// end of file.
func copyChunks(l *JSONLog, stream string, r io.Reader, buf []byte) error {
	for {
		n, err := r.Read(buf)
		if n > 0 {
			if werr := l.Write(stream, buf[:n], time.Now()); werr != nil {
				return werr
			}
		}
		if err != nil {
			if err == io.EOF || errors.Is(err, syscall.EIO) {
				return nil
			}
			return err
		}
	}
}

// attach copies the connection into the container's stdin until the
// daemon closes it; with StdinOnce that closes stdin for good.
func (s *Server) attach(conn net.Conn, c *ctr) {
	s.mu.Lock()
	in := c.stdin
	s.mu.Unlock()
	if in == nil {
		return
	}
	_, _ = io.Copy(in, conn)
	if c.stdinOnce && c.master == nil {
		s.mu.Lock()
		if c.stdin != nil {
			c.stdin.Close()
			c.stdin = nil
		}
		s.mu.Unlock()
	}
}

func (s *Server) resize(c *ctr, width, height int) error {
	if c.master == nil {
		return fmt.Errorf("container %s has no terminal: %w", c.rec.ID, errdefs.ErrFailedPrecondition)
	}
	return resizePty(c.master, width, height)
}

func resizePty(master *os.File, width, height int) error {
	if width <= 0 || height <= 0 || width > 0xffff || height > 0xffff {
		return fmt.Errorf("bad terminal size %dx%d: %w", width, height, errdefs.ErrInvalidArgument)
	}
	// Through SyscallConn: Fd() would turn the master blocking and pin a
	// thread under the copy goroutine.
	rc, err := master.SyscallConn()
	if err != nil {
		return err
	}
	var ierr error
	if err := rc.Control(func(fd uintptr) {
		ierr = unix.IoctlSetWinsize(int(fd), unix.TIOCSWINSZ, &unix.Winsize{Col: uint16(width), Row: uint16(height)})
	}); err != nil {
		return err
	}
	return ierr
}
