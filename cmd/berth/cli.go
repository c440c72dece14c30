package main

import (
	"github.com/spf13/cobra"

	"github.com/berth-dev/berth/internal/cli/command"
)

// addCLICommands adds docker's verbs (run, ps, images, ...) at the top
// level, next to daemon and runtime. Their errors are printed by the
// command package; main only sees the exit status.
func addCLICommands(root *cobra.Command) {
	cli := command.NewCLI(version, func(code int) error { return exitCodeError(code) })
	root.AddCommand(cli.Commands()...)
	// `berth --version` / `-v`, like `docker --version`.
	root.Version = version
	root.SetVersionTemplate("berth version {{.Version}}\n")
}
