// Package earlysignal catches every signal from package initialization on
// when berth runs as a container's --init reaper (`docker-init`).
//
// The reaper is PID 1 of its container. Until a Go program calls
// signal.Notify, the runtime's handler turns SIGTERM into an exit with
// status 2 (PID 1 ignores the re-raised signal), so a `docker stop` right
// after `docker run -d --init` would kill the reaper instead of reaching the
// child. Package initialization runs in import-path order once
// dependencies are done, and this package, with only os/signal below it,
// comes before the heavy third-party packages: the window before signals
// are caught shrinks from the whole start-up of berth to the Go runtime's.
package earlysignal

import (
	"os"
	"os/signal"
	"path/filepath"
)

// caught is the channel of the reaper's signals, set only in the reaper:
// package state because it must exist before main runs.
var caught chan os.Signal

func init() {
	if !isReaper(os.Args) {
		return
	}
	caught = make(chan os.Signal, 32)
	signal.Notify(caught)
}

func isReaper(args []string) bool {
	if len(args) > 0 && filepath.Base(args[0]) == "docker-init" {
		return true
	}
	return len(args) > 2 && args[1] == "supervise" && args[2] == "reap"
}

// Channel returns the channel that has been receiving every signal since
// initialization, or nil outside the reaper.
func Channel() chan os.Signal { return caught }
