package runtime

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/internal/runtime/seccomp"
)

// Messages on the socket between the parent and the init: one type byte, a
// 4-byte length, a payload. The socket is close-on-exec in the init, so EOF
// after "start" means the container's process has been exec'd.
const (
	msgConfig     byte = 'c' // parent → init: encoded initConfig
	msgHooks      byte = 'h' // init → parent: run prestart/createRuntime hooks now
	msgHooksDone  byte = 'H' // parent → init
	msgReady      byte = 'r' // init → parent: created, waiting for start
	msgStart      byte = 's' // parent → init (run and exec; create uses the fifo)
	msgError      byte = 'e' // either way: a fatal error, the payload is its text
	msgCgroupDirs byte = 'g' // parent → init: the cgroup directories exist
	msgJoinQuery  byte = 'q' // init → parent: tell me when I am in my cgroup
	msgJoined     byte = 'j' // parent → init: you are
)

var msgNames = map[byte]string{msgConfig: "config", msgHooks: "hooks", msgHooksDone: "hooks-done",
	msgReady: "ready", msgStart: "start", msgError: "error", msgCgroupDirs: "cgroup-dirs",
	msgJoinQuery: "join-query", msgJoined: "joined"}

const maxMsg = 16 << 20

type syncMsg struct {
	Type    byte
	Payload []byte
}

// initConfig is everything the init needs, flattened out of the spec. It is
// sent once, encoded by wire.go.
type initConfig struct {
	Mode        string // "create", "run" or "exec"
	ID          string
	Rootfs      string
	FifoFd      int // create mode: exec fifo opened O_RDWR, -1 otherwise
	ConsoleFd   int
	PreserveFDs int
	NewCgroupNS bool
	// LateCgroupNS: unshare the cgroup namespace at the end of setup, after
	// asking the parent whether the move into the cgroup (which overlaps the
	// mounts) is done.
	LateCgroupNS bool
	NewMountNS   bool
	UserNS       bool
	Trace        bool
	ReadonlyRoot bool
	RuntimeHooks bool // prestart/createRuntime hooks exist: stop for them
	CgroupPaths  map[string]string
	// PidsLimit > 0 is written to PidsFile (a host path, opened before
	// pivot_root) right before exec.
	PidsLimit int64
	PidsFile  string
	pidsMax   *os.File // the init's handle on PidsFile

	Hostname, Domainname string
	Mounts               []specs.Mount
	Devices              []specs.LinuxDevice
	MaskedPaths          []string
	ReadonlyPaths        []string
	RootfsPropagation    string
	Sysctl               map[string]string

	CreateContainerHooks []specs.Hook
	StartContainerHooks  []specs.Hook
	StateJSON            []byte // the state hooks get on stdin

	Process *specs.Process
	// Attrs are the process's I/O priority, scheduler and personality
	// (runtime-spec 1.1/1.2), checked and encoded by the parent.
	Attrs   procAttrs
	Seccomp *seccomp.Program // compiled by the parent
}

type syncConn struct {
	f *os.File
}

func newSyncConn(f *os.File) *syncConn { return &syncConn{f: f} }

func (c *syncConn) send(typ byte, payload []byte) error {
	buf := make([]byte, 5, 5+len(payload))
	buf[0] = typ
	binary.LittleEndian.PutUint32(buf[1:], uint32(len(payload)))
	_, err := c.f.Write(append(buf, payload...))
	return err
}

// sendFDs sends an empty message of type typ carrying fds (SCM_RIGHTS),
// without taking the socket out of non-blocking mode as f.Fd would.
func (c *syncConn) sendFDs(typ byte, fds ...int) error {
	rc, err := c.f.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	err = rc.Write(func(fd uintptr) bool {
		serr = unix.Sendmsg(int(fd), []byte{typ, 0, 0, 0, 0}, unix.UnixRights(fds...), nil, 0)
		return serr != unix.EAGAIN
	})
	return errors.Join(err, serr)
}

func (c *syncConn) sendError(err error) error { return c.send(msgError, []byte(err.Error())) }

func (c *syncConn) recv() (syncMsg, error) {
	var hdr [5]byte
	if _, err := io.ReadFull(c.f, hdr[:]); err != nil {
		return syncMsg{}, err
	}
	n := binary.LittleEndian.Uint32(hdr[1:])
	if n > maxMsg {
		return syncMsg{}, fmt.Errorf("sync message of %d bytes is too large", n)
	}
	m := syncMsg{Type: hdr[0], Payload: make([]byte, n)}
	if _, err := io.ReadFull(c.f, m.Payload); err != nil {
		return syncMsg{}, err
	}
	if m.Type == msgDirectError {
		m = syncMsg{Type: msgError, Payload: []byte(directErrorText(m.Payload))}
	}
	return m, nil
}

// expect reads one message and checks its type, turning an error message
// from the peer into an error.
func (c *syncConn) expect(typ byte) (syncMsg, error) {
	m, err := c.recv()
	if err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return m, fmt.Errorf("container init exited before %q", msgNames[typ])
		}
		return m, fmt.Errorf("read %q from container init: %w", msgNames[typ], err)
	}
	if m.Type == msgError {
		return m, errors.New(string(m.Payload))
	}
	if m.Type != typ {
		return m, fmt.Errorf("container init sent %q, expected %q", msgNames[m.Type], msgNames[typ])
	}
	return m, nil
}
