// Command berth is the single binary of the berth container platform.
package main

import (
	"errors"
	"fmt"
	"os"
	goruntime "runtime"

	"github.com/berth-dev/berth/internal/runtime"
	"github.com/berth-dev/berth/internal/runtimecmd"
)

func init() {
	// The container init changes per-thread state (namespaces, credentials,
	// seccomp) and must exec from the thread that holds it.
	if runtime.IsInit() {
		goruntime.LockOSThread()
	}
}

func main() {
	if runtime.IsInit() {
		runtime.Init() // never returns
	}
	root := newRootCommand()
	if err := root.Execute(); err != nil {
		var ec exitCodeError
		var rc runtimecmd.ExitCode
		switch {
		case errors.As(err, &ec):
			os.Exit(int(ec))
		case errors.As(err, &rc):
			os.Exit(int(rc))
		}
		fmt.Fprintln(os.Stderr, "berth:", err)
		os.Exit(1)
	}
}

// exitCodeError ends the process with a given code and no message, for
// commands like `daemon` that pass on an exit code.
type exitCodeError int

func (e exitCodeError) Error() string { return fmt.Sprintf("exit status %d", int(e)) }
