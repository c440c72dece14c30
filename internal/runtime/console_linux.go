package runtime

import (
	"fmt"
	"os"

	"github.com/containerd/console"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// setupConsole opens a pty inside the container (its own devpts), hands the
// master to whoever listens on the console socket, as runc does, and makes
// the slave the process's controlling terminal and stdio.
func setupConsole(socket *os.File, size *specs.Box) error {
	slave, err := openConsole(socket, size)
	if err != nil {
		return err
	}
	defer slave.Close()
	for fd := 0; fd < 3; fd++ {
		if err := unix.Dup3(int(slave.Fd()), fd, 0); err != nil {
			return fmt.Errorf("dup pty onto fd %d: %w", fd, err)
		}
	}
	if _, err := unix.Setsid(); err != nil && err != unix.EPERM {
		return fmt.Errorf("setsid: %w", err)
	}
	if err := unix.IoctlSetInt(0, unix.TIOCSCTTY, 0); err != nil {
		return fmt.Errorf("set controlling terminal: %w", err)
	}
	return nil
}

// openConsole opens a pty in the devpts that /dev/ptmx leads to (the
// container's, once its root is the container's), sends the master over
// the console socket and returns the slave.
func openConsole(socket *os.File, size *specs.Box) (*os.File, error) {
	master, slavePath, err := console.NewPty()
	if err != nil {
		return nil, fmt.Errorf("create pty: %w", err)
	}
	defer master.Close()
	if size != nil {
		if err := master.Resize(console.WinSize{Height: uint16(size.Height), Width: uint16(size.Width)}); err != nil {
			return nil, fmt.Errorf("set console size: %w", err)
		}
	}
	rights := unix.UnixRights(int(master.Fd()))
	if err := unix.Sendmsg(int(socket.Fd()), []byte(slavePath), rights, nil, 0); err != nil {
		return nil, fmt.Errorf("send pty master over console socket: %w", err)
	}
	slave, err := os.OpenFile(slavePath, os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		return nil, fmt.Errorf("open pty slave %s: %w", slavePath, err)
	}
	return slave, nil
}

// recvConsole receives a pty master sent over a console socket connection.
func recvConsole(conn *os.File) (*os.File, error) {
	buf := make([]byte, 4096)
	oob := make([]byte, unix.CmsgSpace(4))
	n, oobn, _, _, err := unix.Recvmsg(int(conn.Fd()), buf, oob, 0)
	if err != nil {
		return nil, fmt.Errorf("receive console: %w", err)
	}
	msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
	if err != nil || len(msgs) != 1 {
		return nil, fmt.Errorf("receive console: no file descriptor in message")
	}
	fds, err := unix.ParseUnixRights(&msgs[0])
	if err != nil || len(fds) != 1 {
		return nil, fmt.Errorf("receive console: bad rights message")
	}
	return os.NewFile(uintptr(fds[0]), string(buf[:n])), nil
}
