// Package runtimecmd is `berth runtime`: berth's OCI runtime, driven with
// runc's verbs and flags.
package runtimecmd

import "fmt"

// ExitCode ends the process with a given code and no message, for
// commands like `runtime run` that pass on a container's exit code.
type ExitCode int

func (e ExitCode) Error() string { return fmt.Sprintf("exit status %d", int(e)) }
