package supervisor

import (
	"fmt"
	"os"
	"os/exec"
	"os/signal"

	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/internal/earlysignal"
)

// InitPath is where `--init` puts berth's own binary in a container, as
// docker puts docker-init there; InitArgs run its reaper.
const InitPath = "/sbin/docker-init"

// InitArgs are the arguments before the container's command with --init.
var InitArgs = []string{InitPath, "supervise", "reap", "--"}

// Reap is the --init process: PID 1 of the container, it runs args as its
// child, passes every signal on to it, reaps whatever orphans the
// container leaves it, and exits with the child's status (128+N for a
// signal), as tini does. It returns the exit code.
func Reap(args []string) int {
	if len(args) == 0 {
		fmt.Fprintln(os.Stderr, "docker-init: no command")
		return 127
	}
	path, err := exec.LookPath(args[0])
	if err != nil {
		fmt.Fprintf(os.Stderr, "docker-init: %v\n", err)
		return 127
	}
	sigs := earlysignal.Channel() // catching since package initialization
	if sigs == nil {
		sigs = make(chan os.Signal, 32)
		signal.Notify(sigs) // before the child exists: no signal is lost
	}
	p, err := os.StartProcess(path, args, &os.ProcAttr{Files: []*os.File{os.Stdin, os.Stdout, os.Stderr}})
	if err != nil {
		fmt.Fprintf(os.Stderr, "docker-init: %v\n", err)
		return 126
	}
	child := p.Pid
	for sig := range sigs {
		s, ok := sig.(unix.Signal)
		if !ok {
			continue
		}
		switch s {
		case unix.SIGCHLD:
			if code, done := reapAll(child); done {
				return code
			}
		case unix.SIGURG: // the Go runtime's own preemption signal
		default:
			_ = unix.Kill(child, s)
		}
	}
	return 0
}

// reapAll collects every exited child; done reports the main child's end.
func reapAll(child int) (code int, done bool) {
	for {
		var ws unix.WaitStatus
		pid, err := unix.Wait4(-1, &ws, unix.WNOHANG, nil)
		if err == unix.EINTR {
			continue
		}
		if err != nil || pid <= 0 {
			return code, done
		}
		if pid == child {
			done = true
			if ws.Signaled() {
				code = 128 + int(ws.Signal())
			} else {
				code = ws.ExitStatus()
			}
		}
	}
}
