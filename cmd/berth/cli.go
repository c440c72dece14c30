package main

import (
	"os"

	"github.com/spf13/cobra"

	"github.com/berth-dev/berth/internal/cli/command"
)

// addCLICommands adds docker's verbs (run, ps, images, ...) at the top
// level, next to daemon and runtime. Their errors are printed by the
// command package; main only sees the exit status.
func addCLICommands(root *cobra.Command) {
	cli := command.NewCLI(version, func(code int) error { return exitCodeError(code) })
	// docker's global -H/--host comes before the verb (`berth -H unix:///x ps`);
	// it is taken off the arguments here because a persistent flag would
	// clash with verbs' own -H (history's --human, daemon's --host).
	args := os.Args[1:]
	if host, rest, ok := command.LeadingHost(args); ok {
		cli.HostOverride = host
		root.SetArgs(rest)
		args = rest
	}
	verb := ""
	if len(args) > 0 {
		verb = args[0]
	}
	root.AddCommand(cli.CommandsFor(verb)...)
	// `berth --version` / `-v`, like `docker --version`.
	root.Version = version
	root.SetVersionTemplate("berth version {{.Version}}\n")
}
