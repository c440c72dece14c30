package command

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/berth-dev/berth/internal/cli/client"
)

// eachContainer applies fn to every named object (container or image), printing the error of
// each that fails (and, if echo, the name of each that succeeds), and fails
// if any failed: docker's way for stop, kill, rm, restart, start, wait.
func (c *CLI) eachContainer(ctx context.Context, names []string, echo bool, summary string, fn func(ctx context.Context, api *client.Client, name string) error) error {
	api, err := c.Client()
	if err != nil {
		return err
	}
	var failed []string
	for _, n := range names {
		if err := fn(ctx, api, n); err != nil {
			err = c.explain(err)
			if !isAPIError(err) {
				return err // no daemon: one line, not one per container
			}
			fmt.Fprintln(c.Err, err)
			failed = append(failed, n)
			continue
		}
		if echo {
			fmt.Fprintln(c.Out, n)
		}
	}
	if len(failed) == 0 {
		return nil
	}
	if summary != "" {
		return &StatusError{Code: 1, Message: "Error: " + summary + ": " + strings.Join(failed, ", ")}
	}
	return &StatusError{Code: 1}
}

// containerCommand is the skeleton of a verb taking CONTAINER [CONTAINER...].
func (c *CLI) containerCommand(use, short string, min int) *cobra.Command {
	return &cobra.Command{
		Use:               use,
		Short:             short,
		Args:              c.minArgs(min),
		ValidArgsFunction: c.completeContainers,
	}
}

// stopFlags are the flags stop and restart share.
type stopFlags struct {
	timeout int
	signal  string
	set     func() bool // whether --timeout was given
}

func (c *CLI) stoppingCommand(use, short string, fn func(ctx context.Context, api *client.Client, name string, timeout *int, signal string) error) *cobra.Command {
	var o stopFlags
	cmd := c.containerCommand(use, short, 1)
	cmd.Flags().IntVarP(&o.timeout, "timeout", "t", 0, "Seconds to wait before killing the container")
	cmd.Flags().StringVarP(&o.signal, "signal", "s", "", "Signal to send to the container")
	cmd.RunE = c.action(func(ctx context.Context, args []string) error {
		var timeout *int
		if cmd.Flags().Changed("timeout") {
			timeout = &o.timeout
		}
		return c.eachContainer(ctx, args, true, "", func(ctx context.Context, api *client.Client, n string) error {
			return fn(ctx, api, n, timeout, o.signal)
		})
	})
	return cmd
}

func (c *CLI) stopCommand() *cobra.Command {
	return c.stoppingCommand("stop [OPTIONS] CONTAINER [CONTAINER...]", "Stop one or more running containers",
		func(ctx context.Context, api *client.Client, n string, timeout *int, signal string) error {
			_, err := api.ContainerStop(ctx, n, client.ContainerStopOptions{Timeout: timeout, Signal: signal})
			return err
		})
}

func (c *CLI) restartCommand() *cobra.Command {
	return c.stoppingCommand("restart [OPTIONS] CONTAINER [CONTAINER...]", "Restart one or more containers",
		func(ctx context.Context, api *client.Client, n string, timeout *int, signal string) error {
			_, err := api.ContainerRestart(ctx, n, client.ContainerRestartOptions{Timeout: timeout, Signal: signal})
			return err
		})
}

func (c *CLI) killCommand() *cobra.Command {
	var signal string
	cmd := c.containerCommand("kill [OPTIONS] CONTAINER [CONTAINER...]", "Kill one or more running containers", 1)
	cmd.Flags().StringVarP(&signal, "signal", "s", "", "Signal to send to the container")
	cmd.RunE = c.action(func(ctx context.Context, args []string) error {
		return c.eachContainer(ctx, args, true, "", func(ctx context.Context, api *client.Client, n string) error {
			_, err := api.ContainerKill(ctx, n, client.ContainerKillOptions{Signal: signal})
			return err
		})
	})
	return cmd
}

func (c *CLI) rmCommand() *cobra.Command {
	var opts client.ContainerRemoveOptions
	cmd := c.containerCommand("rm [OPTIONS] CONTAINER [CONTAINER...]", "Remove one or more containers", 1)
	cmd.Flags().BoolVarP(&opts.Force, "force", "f", false, "Force the removal of a running container (uses SIGKILL)")
	cmd.Flags().BoolVarP(&opts.RemoveVolumes, "volumes", "v", false, "Remove anonymous volumes associated with the container")
	cmd.Flags().BoolVarP(&opts.RemoveLinks, "link", "l", false, "Remove the specified link")
	cmd.RunE = c.action(func(ctx context.Context, args []string) error {
		return c.eachContainer(ctx, args, true, "", func(ctx context.Context, api *client.Client, n string) error {
			_, err := api.ContainerRemove(ctx, n, opts)
			return err
		})
	})
	return cmd
}

func (c *CLI) startCommand() *cobra.Command {
	var attach, interactive bool
	var detachKeys string
	cmd := c.containerCommand("start [OPTIONS] CONTAINER [CONTAINER...]", "Start one or more stopped containers", 1)
	cmd.Flags().BoolVarP(&attach, "attach", "a", false, "Attach STDOUT/STDERR and forward signals")
	cmd.Flags().BoolVarP(&interactive, "interactive", "i", false, "Attach container's STDIN")
	cmd.Flags().StringVar(&detachKeys, "detach-keys", "", "Override the key sequence for detaching a container")
	cmd.RunE = c.action(func(ctx context.Context, args []string) error {
		if !attach && !interactive {
			return c.eachContainer(ctx, args, true, "failed to start containers", func(ctx context.Context, api *client.Client, n string) error {
				_, err := api.ContainerStart(ctx, n, client.ContainerStartOptions{})
				return err
			})
		}
		if len(args) > 1 {
			return errors.New("you cannot start and attach multiple containers at once")
		}
		api, ctr, err := c.inspectContainer(ctx, args[0])
		if err != nil {
			return err
		}
		return c.attachStartWait(ctx, api, ctr.ID, attachOptions{
			tty:        ctr.Config != nil && ctr.Config.Tty,
			stdin:      interactive && ctr.Config != nil && ctr.Config.OpenStdin,
			removed:    ctr.HostConfig != nil && ctr.HostConfig.AutoRemove,
			detachKeys: detachKeys,
		})
	})
	return cmd
}

func (c *CLI) attachCommand() *cobra.Command {
	var noStdin, sigProxy bool
	var detachKeys string
	cmd := &cobra.Command{
		Use:               "attach [OPTIONS] CONTAINER",
		Short:             "Attach local standard input, output, and error streams to a running container",
		Args:              c.exactArgs(1),
		ValidArgsFunction: c.completeContainers,
	}
	cmd.Flags().BoolVar(&noStdin, "no-stdin", false, "Do not attach STDIN")
	cmd.Flags().StringVar(&detachKeys, "detach-keys", "", "Override the key sequence for detaching a container")
	cmd.Flags().BoolVar(&sigProxy, "sig-proxy", true, "Proxy all received signals to the process")
	cmd.RunE = c.action(func(ctx context.Context, args []string) error {
		api, ctr, err := c.inspectContainer(ctx, args[0])
		if err != nil {
			return err
		}
		if ctr.State == nil || !ctr.State.Running {
			return errors.New("You cannot attach to a stopped container, start it first")
		}
		if ctr.State.Paused {
			return errors.New("You cannot attach to a paused container, unpause it first")
		}
		return c.attachStartWait(ctx, api, ctr.ID, attachOptions{
			running:    true,
			noSigProxy: !sigProxy,
			tty:        ctr.Config != nil && ctr.Config.Tty,
			stdin:      !noStdin && ctr.Config != nil && ctr.Config.OpenStdin,
			removed:    ctr.HostConfig != nil && ctr.HostConfig.AutoRemove,
			detachKeys: detachKeys,
		})
	})
	return cmd
}

func (c *CLI) waitCommand() *cobra.Command {
	cmd := c.containerCommand("wait CONTAINER [CONTAINER...]", "Block until one or more containers stop, then print their exit codes", 1)
	cmd.RunE = c.action(func(ctx context.Context, args []string) error {
		return c.eachContainer(ctx, args, false, "", func(ctx context.Context, api *client.Client, n string) error {
			w := api.ContainerWait(ctx, n, client.ContainerWaitOptions{})
			select {
			case res := <-w.Result:
				fmt.Fprintln(c.Out, res.StatusCode)
				return nil
			case err := <-w.Error:
				return err
			}
		})
	})
	return cmd
}

func (c *CLI) renameCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:               "rename CONTAINER NEW_NAME",
		Short:             "Rename a container",
		Args:              c.exactArgs(2),
		ValidArgsFunction: c.completeContainers,
	}
	cmd.RunE = c.action(func(ctx context.Context, args []string) error {
		api, err := c.Client()
		if err != nil {
			return err
		}
		if _, err = api.ContainerRename(ctx, args[0], client.ContainerRenameOptions{NewName: args[1]}); err != nil {
			if err = c.explain(err); !isAPIError(err) {
				return err
			}
			fmt.Fprintln(c.Err, err)
			return &StatusError{Code: 1, Message: "Error: failed to rename container named " + args[0]}
		}
		return nil
	})
	return cmd
}
