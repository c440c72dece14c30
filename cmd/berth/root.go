package main

import "github.com/spf13/cobra"

func newRootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:           "berth",
		Short:         "berth: containers, images and a Docker-compatible engine in one binary",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(newRuntimeCommand())
	root.AddCommand(newDaemonCommand(), newSuperviseCommand())
	root.AddCommand(newRegistryCommand())
	addCLICommands(root)
	return root
}
