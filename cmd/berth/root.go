package main

import (
	"os"

	"github.com/spf13/cobra"

	"github.com/berth-dev/berth/internal/runtimecmd"
)

func newRootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:           "berth",
		Short:         "berth: containers, images and a Docker-compatible engine in one binary",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(runtimecmd.New())
	if len(os.Args) > 1 && os.Args[1] == "runtime" {
		// `berth runtime` runs for every container operation a runc user
		// makes: building the other ~80 commands and their flags would
		// cost it a measurable part of its start.
		return root
	}
	root.AddCommand(newDaemonCommand(), newSuperviseCommand())
	root.AddCommand(newRegistryCommand())
	addCLICommands(root)
	return root
}
