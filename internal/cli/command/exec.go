package command

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/berth-dev/berth/internal/cli/client"
	"github.com/berth-dev/berth/internal/cli/runconfig"
)

type execOptions struct {
	detach, interactive, tty, privileged bool
	env, envFiles                        []string
	user, workdir, detachKeys            string
}

func (c *CLI) execCommand() *cobra.Command {
	var o execOptions
	cmd := &cobra.Command{
		Use:               "exec [OPTIONS] CONTAINER COMMAND [ARG...]",
		Short:             "Execute a command in a running container",
		Args:              c.minArgs(2),
		ValidArgsFunction: c.completeContainers,
	}
	f := cmd.Flags()
	f.SetInterspersed(false)
	f.BoolVarP(&o.detach, "detach", "d", false, "Detached mode: run command in the background")
	f.BoolVarP(&o.interactive, "interactive", "i", false, "Keep STDIN open even if not attached")
	f.BoolVarP(&o.tty, "tty", "t", false, "Allocate a pseudo-TTY")
	f.BoolVar(&o.privileged, "privileged", false, "Give extended privileges to the command")
	f.StringArrayVarP(&o.env, "env", "e", nil, "Set environment variables")
	f.StringArrayVar(&o.envFiles, "env-file", nil, "Read in a file of environment variables")
	f.StringVarP(&o.user, "user", "u", "", "Username or UID (format: \"<name|uid>[:<group|gid>]\")")
	f.StringVarP(&o.workdir, "workdir", "w", "", "Working directory inside the container")
	f.StringVar(&o.detachKeys, "detach-keys", "", "Override the key sequence for detaching a container")
	cmd.RunE = c.action(func(ctx context.Context, args []string) error { return c.exec(ctx, o, args[0], args[1:]) })
	return cmd
}

func (c *CLI) exec(ctx context.Context, o execOptions, ctr string, argv []string) error {
	keys, err := parseDetachKeys(o.detachKeys)
	if err != nil {
		return err
	}
	if o.tty && o.interactive && !o.detach && !isTerminal(c.In) {
		return &StatusError{Code: 1, Message: "the input device is not a TTY"}
	}
	env, err := runconfig.Env(o.envFiles, o.env)
	if err != nil {
		return err
	}
	api, err := c.Client()
	if err != nil {
		return err
	}
	// The size goes with the request: a resize sent after the start could
	// reach the daemon before the process has a terminal.
	var size client.ConsoleSize
	if o.tty {
		size = c.termSize()
	}
	x, err := api.ExecCreate(ctx, ctr, client.ExecCreateOptions{
		ConsoleSize: size, User: o.user, Privileged: o.privileged, TTY: o.tty, Env: env, WorkingDir: o.workdir, Cmd: argv,
		AttachStdin: o.interactive && !o.detach, AttachStdout: !o.detach, AttachStderr: !o.detach,
	})
	if err != nil {
		return c.explain(err)
	}
	if o.detach {
		_, err := api.ExecStart(ctx, x.ID, client.ExecStartOptions{Detach: true, TTY: o.tty})
		return c.explain(err)
	}
	att, err := api.ExecAttach(ctx, x.ID, client.ExecAttachOptions{TTY: o.tty, ConsoleSize: size})
	if err != nil {
		return c.explain(err)
	}
	defer att.Close()
	if o.tty {
		defer c.terminal(func(h, w uint) {
			_, _ = api.ExecResize(ctx, x.ID, client.ExecResizeOptions{Height: h, Width: w})
		})()
	}
	detached, copied := c.stream(att.HijackedResponse, o.tty, o.interactive, keys)
	select {
	case <-detached:
		return nil
	case <-copied:
	}
	return c.execStatus(ctx, api, x.ID)
}

// execStatus is the exec's exit code once the daemon has recorded it (the
// stream can end a moment before the exit is known).
func (c *CLI) execStatus(ctx context.Context, api *client.Client, id string) error {
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		res, err := api.ExecInspect(ctx, id, client.ExecInspectOptions{})
		if err != nil {
			return c.explain(err)
		}
		if !res.Running {
			if res.ExitCode != 0 {
				return &StatusError{Code: res.ExitCode}
			}
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("exec %s: still running after its output ended", id)
		}
	}
}
