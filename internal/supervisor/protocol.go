package supervisor

import (
	"errors"
	"fmt"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/berth-dev/berth/internal/errdefs"
	"github.com/berth-dev/berth/internal/runtime/cgroup"
)

// The wire protocol is JSON lines over a unix socket: one Request, one
// Response per connection, except "subscribe", after which the server writes
// one Event per line until either side closes. A connection per call keeps
// both ends stateless (dialing a unix socket costs microseconds) and lets a
// restarted daemon or supervisor carry on without a handshake.

// Methods.
const (
	MethodCreate    = "create"
	MethodStart     = "start"
	MethodKill      = "kill"
	MethodDelete    = "delete"
	MethodList      = "list"
	MethodSubscribe = "subscribe"
	MethodPing      = "ping"
	// MethodAttach turns the connection, after the response, into the
	// container's stdin: what the daemon writes goes to the process.
	MethodAttach = "attach"
	MethodResize = "resize"
	// MethodExec runs a process in a container; after the response the
	// connection carries its output as frames (see WriteFrame) ending
	// with an exit frame, and the daemon's writes are its stdin.
	MethodExec = "exec"
	// Cgroup-level calls on a running container.
	MethodPause  = "pause"
	MethodResume = "resume"
	MethodPids   = "pids"
	MethodStats  = "stats"
	// MethodUpdate writes new resource limits to the container's cgroup.
	MethodUpdate = "update"
)

// Request is one call.
type Request struct {
	Method string         `json:"method"`
	ID     string         `json:"id,omitempty"`
	Create *CreateRequest `json:"create,omitempty"`
	Signal int            `json:"signal,omitempty"`
	All    bool           `json:"all,omitempty"`
	Exec   *ExecRequest   `json:"exec,omitempty"`
	// ExecID names the exec a resize or kill is for; empty means the
	// container.
	ExecID string `json:"execId,omitempty"`
	// Width and Height are a resize's terminal size.
	Width  int `json:"width,omitempty"`
	Height int `json:"height,omitempty"`
	// Resources are an update's new limits.
	Resources *specs.LinuxResources `json:"resources,omitempty"`
}

// CreateRequest describes a container to create from a bundle.
type CreateRequest struct {
	Bundle string `json:"bundle"` // holds config.json
	// CgroupsPath is the bundle's linux.cgroupsPath, given by the caller
	// (who built the spec) so the supervisor need not read config.json
	// back; it is where an OOM kill is looked for at exit.
	CgroupsPath string `json:"cgroupsPath,omitempty"`
	// LogPath is the json-file log; MaxSize <= 0 never rotates.
	LogPath     string `json:"logPath"`
	LogMaxSize  int64  `json:"logMaxSize,omitempty"`
	LogMaxFiles int    `json:"logMaxFiles,omitempty"`
	// ExitPath is where the exit status is written (atomically, as JSON
	// ExitStatus) when the container's process ends.
	ExitPath string `json:"exitPath"`
	// Tty: the runtime allocates a pty (the bundle's process.terminal
	// must agree); its output is logged as stdout, as docker does.
	Tty bool `json:"tty,omitempty"`
	// OpenStdin keeps a stdin pipe (or the pty) for attach; without it the
	// process reads /dev/null. StdinOnce closes stdin when the first
	// attached client's stream ends (docker run -i).
	OpenStdin bool `json:"openStdin,omitempty"`
	StdinOnce bool `json:"stdinOnce,omitempty"`
}

// ExecRequest describes a process to run in a running container.
type ExecRequest struct {
	ExecID string `json:"execId"`
	// ProcessPath is a runtime-spec process JSON file (runc's --process):
	// the daemon resolves user, env and cwd the way docker does.
	ProcessPath string `json:"processPath"`
	Tty         bool   `json:"tty,omitempty"`
	OpenStdin   bool   `json:"openStdin,omitempty"`
}

// Response answers a Request.
type Response struct {
	Error      string        `json:"error,omitempty"`
	Class      string        `json:"class,omitempty"` // errdefs class name
	Pid        int           `json:"pid,omitempty"`
	Containers []Container   `json:"containers,omitempty"`
	Pids       []int         `json:"pids,omitempty"`
	Stats      *cgroup.Stats `json:"stats,omitempty"`
}

// Container is what the supervisor knows of a container it supervises.
type Container struct {
	ID        string    `json:"id"`
	Pid       int       `json:"pid"`
	Started   bool      `json:"started"`
	StartedAt time.Time `json:"startedAt"`
	// Adopted marks a container the supervisor took over after a restart:
	// it is not its child, so its exit code will be unknown (137).
	Adopted bool `json:"adopted,omitempty"`
}

// ExitStatus is the content of the exit file and of exit events.
type ExitStatus struct {
	ExitCode   int       `json:"exitCode"`
	FinishedAt time.Time `json:"finishedAt"`
	OOMKilled  bool      `json:"oomKilled,omitempty"`
	// Unknown says the supervisor could not learn the real status (it
	// re-adopted a container it had not started); ExitCode is then 137.
	Unknown bool `json:"unknown,omitempty"`
}

// Event reports a container's exit.
type Event struct {
	ID   string     `json:"id"`
	Exit ExitStatus `json:"exit"`
}

// UnknownExitCode is recorded when the real status is lost: the code of
// SIGKILL, the likeliest cause and what docker reports for a container
// that died with its shim.
const UnknownExitCode = 137

var classes = []struct {
	name string
	err  error
}{
	{"not_found", errdefs.ErrNotFound},
	{"already_exists", errdefs.ErrAlreadyExists},
	{"invalid_argument", errdefs.ErrInvalidArgument},
	{"conflict", errdefs.ErrConflict},
	{"failed_precondition", errdefs.ErrFailedPrecondition},
	{"unavailable", errdefs.ErrUnavailable},
	{"not_implemented", errdefs.ErrNotImplemented},
	{"permission_denied", errdefs.ErrPermissionDenied},
}

func errorResponse(err error) Response {
	r := Response{Error: err.Error()}
	for _, c := range classes {
		if errors.Is(err, c.err) {
			r.Class = c.name
			break
		}
	}
	return r
}

// remoteError rebuilds an error of the same class on the client side.
type remoteError struct {
	msg   string
	class error
}

func (e *remoteError) Error() string { return e.msg }
func (e *remoteError) Unwrap() error { return e.class }

func (r Response) err() error {
	if r.Error == "" {
		return nil
	}
	for _, c := range classes {
		if c.name == r.Class {
			return &remoteError{msg: r.Error, class: c.err}
		}
	}
	return fmt.Errorf("supervisor: %s", r.Error)
}
