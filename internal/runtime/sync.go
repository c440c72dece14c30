package runtime

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// Messages on the socket between the parent and the init. The socket is
// close-on-exec in the init, so EOF after "ready"+"start" means the
// container's process has been exec'd.
const (
	msgConfig    = "config"     // parent → init: initConfig
	msgHooks     = "hooks"      // init → parent: run prestart/createRuntime hooks now
	msgHooksDone = "hooks-done" // parent → init
	msgReady     = "ready"      // init → parent: created, waiting for start
	msgStart     = "start"      // parent → init (run mode; create mode uses the fifo)
	msgError     = "error"      // either way: a fatal error, in Error
)

type syncMsg struct {
	Type  string      `json:"type"`
	Error string      `json:"error,omitempty"`
	Init  *initConfig `json:"init,omitempty"`
}

// initConfig is everything the init needs; it is sent once, after the parent
// has placed the init in its cgroup.
type initConfig struct {
	Mode        string            `json:"mode"` // "create", "run" or "exec"
	ID          string            `json:"id"`
	Bundle      string            `json:"bundle"`
	Rootfs      string            `json:"rootfs"`
	Spec        *specs.Spec       `json:"spec"`
	Process     *specs.Process    `json:"process"` // the process to exec
	State       *specs.State      `json:"state"`   // for createContainer/startContainer hooks
	FifoFd      int               `json:"fifoFd"`  // create mode: exec fifo opened O_RDWR, -1 otherwise
	ConsoleFd   int               `json:"consoleFd"`
	CgroupPaths map[string]string `json:"cgroupPaths,omitempty"`
	NewCgroupNS bool              `json:"newCgroupNS"`
	// LateCgroupNS: unshare the cgroup namespace just before exec, once the
	// start signal proves the parent has moved the init into its cgroup.
	LateCgroupNS bool `json:"lateCgroupNS,omitempty"`
	NewMountNS   bool `json:"newMountNS"`
	UserNS       bool `json:"userNS"`
	PreserveFDs  int  `json:"preserveFDs"`
	Trace        bool `json:"trace,omitempty"`
}

type syncConn struct {
	f   *os.File
	enc *json.Encoder
	dec *json.Decoder
}

func newSyncConn(f *os.File) *syncConn {
	return &syncConn{f: f, enc: json.NewEncoder(f), dec: json.NewDecoder(f)}
}

func (c *syncConn) send(m syncMsg) error { return c.enc.Encode(m) }

func (c *syncConn) recv() (syncMsg, error) {
	var m syncMsg
	err := c.dec.Decode(&m)
	return m, err
}

// expect reads one message and checks its type, turning an init's error
// message into an error.
func (c *syncConn) expect(typ string) (syncMsg, error) {
	m, err := c.recv()
	if err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return m, fmt.Errorf("container init exited before %q", typ)
		}
		return m, fmt.Errorf("read %q from container init: %w", typ, err)
	}
	if m.Type == msgError {
		return m, errors.New(m.Error)
	}
	if m.Type != typ {
		return m, fmt.Errorf("container init sent %q, expected %q", m.Type, typ)
	}
	return m, nil
}
