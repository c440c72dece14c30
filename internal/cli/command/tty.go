package command

import (
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/containerd/console"

	"github.com/berth-dev/berth/internal/cli/client"
)

// defaultDetachKeys are docker's: ctrl-p then ctrl-q.
const defaultDetachKeys = "ctrl-p,ctrl-q"

// parseDetachKeys reads docker's --detach-keys syntax: a comma-separated
// list of single characters or ctrl-<char>.
func parseDetachKeys(s string) ([]byte, error) {
	if s == "" {
		s = defaultDetachKeys
	}
	var out []byte
	for _, k := range strings.Split(s, ",") {
		switch {
		case len(k) == 1:
			out = append(out, k[0])
		case strings.HasPrefix(k, "ctrl-") && len(k) == 6:
			ch := k[5]
			switch {
			case ch >= 'a' && ch <= 'z':
				out = append(out, ch-'a'+1)
			case ch == '@' || (ch >= '[' && ch <= '_'):
				out = append(out, ch-'@')
			default:
				return nil, fmt.Errorf("invalid detach keys (%s) provided", s)
			}
		default:
			return nil, fmt.Errorf("invalid detach keys (%s) provided", s)
		}
	}
	return out, nil
}

// detachReader passes stdin through until the detach sequence is typed;
// then it closes detached and ends. Bytes that only began the sequence are
// passed on once it is broken.
type detachReader struct {
	in       io.Reader
	keys     []byte
	matched  int
	detached chan struct{}
	pending  []byte
	done     bool
	err      error
}

func (r *detachReader) Read(p []byte) (int, error) {
	for len(r.pending) == 0 {
		if r.done {
			return 0, io.EOF
		}
		if r.err != nil {
			return 0, r.err
		}
		buf := make([]byte, len(p))
		n, err := r.in.Read(buf)
		r.err = err
		for _, b := range buf[:n] {
			if b == r.keys[r.matched] {
				if r.matched++; r.matched == len(r.keys) {
					r.done = true
					close(r.detached)
					break
				}
				continue
			}
			if r.matched > 0 {
				r.pending = append(r.pending, r.keys[:r.matched]...)
				r.matched = 0
			}
			if b == r.keys[0] {
				r.matched = 1
				continue
			}
			r.pending = append(r.pending, b)
		}
	}
	n := copy(p, r.pending)
	r.pending = r.pending[n:]
	return n, nil
}

// terminal puts the CLI's terminal in raw mode for a -t process and calls
// resize with its size now and on every SIGWINCH. restore undoes both.
func (c *CLI) terminal(resize func(height, width uint)) (restore func()) {
	in, ok := c.In.(*os.File)
	if !ok {
		return func() {}
	}
	con, err := console.ConsoleFromFile(in)
	if err != nil {
		return func() {} // stdin is not a terminal: nothing to set up
	}
	if err := con.SetRaw(); err != nil {
		return func() {}
	}
	sync := func() {
		if ws, err := con.Size(); err == nil && ws.Height > 0 {
			resize(uint(ws.Height), uint(ws.Width))
		}
	}
	sync()
	winch := make(chan os.Signal, 1)
	signal.Notify(winch, syscall.SIGWINCH)
	go func() {
		for range winch {
			sync()
		}
	}()
	return func() {
		_ = con.Reset()
		// signal.Stop yields in a loop until the signal machinery is
		// idle: milliseconds at the end of every command otherwise.
		go func() {
			signal.Stop(winch)
			close(winch)
		}()
	}
}

// termSize is the size of the CLI's terminal, zero when stdin is none.
func (c *CLI) termSize() client.ConsoleSize {
	if f, ok := c.In.(*os.File); ok {
		if con, err := console.ConsoleFromFile(f); err == nil {
			if ws, err := con.Size(); err == nil {
				return client.ConsoleSize{Height: uint(ws.Height), Width: uint(ws.Width)}
			}
		}
	}
	return client.ConsoleSize{}
}

// isTerminal is true when r (an input or output stream) is a terminal.
func isTerminal(r any) bool {
	f, ok := r.(*os.File)
	if !ok {
		return false
	}
	_, err := console.ConsoleFromFile(f)
	return err == nil
}
