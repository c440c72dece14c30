package runtime

import (
	"fmt"
	"io"
	"net"
	"os"

	"github.com/containerd/console"
)

// consoleRelay is the console socket `run` serves itself when the process
// wants a terminal and the caller gave no socket: it receives the pty master
// and copies it to and from the caller's own terminal, like `runc run`.
type consoleRelay struct {
	path   string
	ln     *net.UnixListener
	master *os.File
	cur    console.Console
}

func newConsoleRelay(path string) (*consoleRelay, error) {
	_ = os.Remove(path)
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("console socket: %w", err)
	}
	return &consoleRelay{path: path, ln: ln}, nil
}

func (c *consoleRelay) accept() error {
	conn, err := c.ln.AcceptUnix()
	if err != nil {
		return fmt.Errorf("console socket: %w", err)
	}
	defer conn.Close()
	f, err := conn.File()
	if err != nil {
		return err
	}
	defer f.Close()
	master, err := recvConsole(f)
	if err != nil {
		return err
	}
	c.master = master
	if cur, err := console.ConsoleFromFile(os.Stdin); err == nil {
		c.cur = cur
		_ = cur.SetRaw()
		c.resize()
	}
	return nil
}

func (c *consoleRelay) resize() {
	if c.cur == nil || c.master == nil {
		return
	}
	if ws, err := c.cur.Size(); err == nil {
		if m, err := console.ConsoleFromFile(c.master); err == nil {
			_ = m.Resize(ws)
		}
	}
}

func (c *consoleRelay) relay() {
	go func() { _, _ = io.Copy(c.master, os.Stdin) }()
	_, _ = io.Copy(os.Stdout, c.master)
}

func (c *consoleRelay) Close() {
	if c.cur != nil {
		_ = c.cur.Reset()
	}
	if c.master != nil {
		c.master.Close()
	}
	c.ln.Close()
	os.Remove(c.path)
}
