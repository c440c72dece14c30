package command

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/moby/moby/api/types/container"
	"github.com/spf13/cobra"

	"github.com/berth-dev/berth/internal/cli/client"
	"github.com/berth-dev/berth/internal/cli/runconfig"
)

// diff, export, commit and update: thin layers over the daemon's
// endpoints, with docker's flags and output.

func (c *CLI) diffCommand() *cobra.Command {
	cmd := c.containerCommand("diff CONTAINER", "Inspect changes to files or directories on a container's filesystem", 1)
	cmd.Args = c.exactArgs(1)
	cmd.RunE = c.action(func(ctx context.Context, args []string) error {
		api, err := c.Client()
		if err != nil {
			return err
		}
		res, err := api.ContainerDiff(ctx, args[0], client.ContainerDiffOptions{})
		if err != nil {
			return c.explain(err)
		}
		for _, ch := range res.Changes {
			kind := "C"
			switch ch.Kind {
			case container.ChangeAdd:
				kind = "A"
			case container.ChangeDelete:
				kind = "D"
			}
			fmt.Fprintln(c.Out, kind, ch.Path)
		}
		return nil
	})
	return cmd
}

func (c *CLI) exportCommand() *cobra.Command {
	var output string
	cmd := c.containerCommand("export [OPTIONS] CONTAINER", "Export a container's filesystem as a tar archive", 1)
	cmd.Args = c.exactArgs(1)
	cmd.Flags().StringVarP(&output, "output", "o", "", "Write to a file, instead of STDOUT")
	cmd.RunE = c.action(func(ctx context.Context, args []string) error {
		if output == "" && isTerminal(c.Out) {
			return errors.New("cowardly refusing to save to a terminal. Use the -o flag or redirect")
		}
		api, err := c.Client()
		if err != nil {
			return err
		}
		rc, err := api.ContainerExport(ctx, args[0], client.ContainerExportOptions{})
		if err != nil {
			return c.explain(err)
		}
		defer rc.Close()
		if output != "" {
			return writeAtomically(output, rc, "failed to export container")
		}
		_, err = io.Copy(c.Out, rc)
		return err
	})
	return cmd
}

func (c *CLI) commitCommand() *cobra.Command {
	var o client.ContainerCommitOptions
	var pause bool
	cmd := c.containerCommand("commit [OPTIONS] CONTAINER [REPOSITORY[:TAG]]", "Create a new image from a container's changes", 1)
	cmd.Args = func(cmd *cobra.Command, args []string) error {
		if len(args) < 1 || len(args) > 2 {
			return c.argsError(cmd, "requires at least 1 and at most 2 arguments")
		}
		return nil
	}
	f := cmd.Flags()
	f.SetInterspersed(false)
	f.BoolVarP(&pause, "pause", "p", true, "Pause container during commit")
	f.BoolVar(&o.NoPause, "no-pause", false, "Disable pausing container during commit")
	f.StringVarP(&o.Comment, "message", "m", "", "Commit message")
	f.StringVarP(&o.Author, "author", "a", "", `Author (e.g., "John Hannibal Smith <hannibal@a-team.com>")`)
	f.StringArrayVarP(&o.Changes, "change", "c", nil, "Apply Dockerfile instruction to the created image")
	cmd.RunE = c.action(func(ctx context.Context, args []string) error {
		if cmd.Flags().Changed("pause") {
			if cmd.Flags().Changed("no-pause") {
				return errors.New("conflicting options: --no-pause and --pause cannot be used together")
			}
			o.NoPause = !pause
		}
		if len(args) > 1 {
			o.Reference = args[1]
		}
		api, err := c.Client()
		if err != nil {
			return err
		}
		res, err := api.ContainerCommit(ctx, args[0], o)
		if err != nil {
			return c.explain(err)
		}
		fmt.Fprintln(c.Out, res.ID)
		return nil
	})
	return cmd
}

func (c *CLI) updateCommand() *cobra.Command {
	var o runconfig.UpdateOptions
	cmd := c.containerCommand("update [OPTIONS] CONTAINER [CONTAINER...]", "Update configuration of one or more containers", 1)
	f := cmd.Flags()
	f.StringVarP(&o.Memory, "memory", "m", "", "Memory limit")
	f.StringVar(&o.MemorySwap, "memory-swap", "", "Swap limit equal to memory plus swap: -1 to enable unlimited swap")
	f.StringVar(&o.MemoryReservation, "memory-reservation", "", "Memory soft limit")
	f.StringVar(&o.CPUs, "cpus", "", "Number of CPUs")
	f.Int64VarP(&o.CPUShares, "cpu-shares", "c", 0, "CPU shares (relative weight)")
	f.Int64Var(&o.PidsLimit, "pids-limit", 0, "Tune container pids limit (set -1 for unlimited)")
	f.StringVar(&o.Restart, "restart", "", "Restart policy to apply when a container exits")
	cmd.RunE = c.action(func(ctx context.Context, args []string) error {
		if cmd.Flags().NFlag() == 0 {
			return errors.New("you must provide one or more flags when using this command")
		}
		res, policy, err := runconfig.Update(o)
		if err != nil {
			return &StatusError{Code: 125, Message: err.Error()}
		}
		api, err := c.Client()
		if err != nil {
			return err
		}
		var warnings, failed []string
		for _, name := range args {
			r, err := api.ContainerUpdate(ctx, name, client.ContainerUpdateOptions{Resources: &res, RestartPolicy: &policy})
			if err != nil {
				err = c.explain(err)
				if !isAPIError(err) {
					return err
				}
				failed = append(failed, err.Error())
				continue
			}
			fmt.Fprintln(c.Out, name)
			warnings = append(warnings, r.Warnings...)
		}
		if len(warnings) > 0 {
			fmt.Fprintln(c.Out, strings.Join(warnings, "\n"))
		}
		if len(failed) > 0 {
			return errors.New(strings.Join(failed, "\n"))
		}
		return nil
	})
	return cmd
}
