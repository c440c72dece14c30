// Package command holds berth's docker-compatible verbs. Each command is a
// thin cobra layer: it fills an options struct from flags and calls the
// Engine API through berth's own client (internal/cli/client); parsing of
// docker's flag syntax lives in runconfig, output in format.
package command

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/berth-dev/berth/internal/cli/client"
)

// CLI is what every command shares: the streams, the environment, and the
// API client, made on first use so `berth --help` never dials.
type CLI struct {
	In      io.Reader
	Out     io.Writer
	Err     io.Writer
	Getenv  func(string) string
	Version string
	// Exit turns an exit status into the error the caller's main returns,
	// so this package never calls os.Exit.
	Exit func(code int) error
	// HostOverride is a -H given before the verb; it wins over the environment.
	HostOverride string

	host string
	api  *client.Client
	// canPull is set once a `pull` verb exists, so error hints never name
	// a command the binary lacks.
	canPull bool
}

// NewCLI returns a CLI on the process's streams and environment.
func NewCLI(version string, exit func(int) error) *CLI {
	return &CLI{In: os.Stdin, Out: os.Stdout, Err: os.Stderr, Getenv: os.Getenv, Version: version, Exit: exit}
}

// Host is the daemon address in use.
func (c *CLI) Host() string {
	if c.host == "" {
		c.host = c.HostOverride
	}
	if c.host == "" {
		c.host = client.Host(c.Getenv)
	}
	return c.host
}

// Client returns the API client.
func (c *CLI) Client() (*client.Client, error) {
	if c.api == nil {
		api, err := client.New(c.Host())
		if err != nil {
			return nil, err
		}
		c.api = api
	}
	return c.api, nil
}

// LeadingHost takes docker's global -H/--host off the front of args (before
// the verb). ok is false when there is none.
func LeadingHost(args []string) (host string, rest []string, ok bool) {
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "-H" || a == "--host":
			if i+1 < len(args) {
				host, ok = args[i+1], true
				rest = append(append(rest, args[:i]...), args[i+2:]...)
				return host, rest, ok
			}
			return "", nil, false
		case strings.HasPrefix(a, "--host="), strings.HasPrefix(a, "-H="):
			_, host, _ = strings.Cut(a, "=")
			return host, append(append(rest, args[:i]...), args[i+1:]...), true
		case !strings.HasPrefix(a, "-"):
			return "", nil, false // the verb: any -H after it is the verb's
		}
	}
	return "", nil, false
}

// StatusError ends a command with an exit status; an empty Message prints
// nothing (the container's own exit code passing through).
type StatusError struct {
	Code    int
	Message string
}

func (e *StatusError) Error() string {
	if e.Message == "" {
		return fmt.Sprintf("exit status %d", e.Code)
	}
	return e.Message
}

func status(code int, err error) error {
	if err == nil {
		return nil
	}
	var se *StatusError
	if errors.As(err, &se) {
		return err
	}
	return &StatusError{Code: code, Message: err.Error()}
}

// report prints err as one line on stderr and returns the exit error.
func (c *CLI) report(err error) error {
	if err == nil {
		return nil
	}
	code := 1
	var se *StatusError
	if errors.As(err, &se) {
		code = se.Code
		if se.Message == "" {
			return c.Exit(code)
		}
		err = errors.New(se.Message)
	}
	msg := client.Explain(err, c.Host()).Error()
	fmt.Fprintln(c.Err, strings.TrimRight(msg, "\n"))
	return c.Exit(code)
}

// explain applies the connection rewrite to an API error.
func (c *CLI) explain(err error) error {
	if err == nil {
		return nil
	}
	var se *StatusError
	if errors.As(err, &se) {
		return err
	}
	return client.Explain(err, c.Host())
}

// action adapts a command body to cobra, reporting its error our way.
func (c *CLI) action(fn func(ctx context.Context, args []string) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) (err error) {
		// A bug must still end in one line, not a Go stack trace.
		defer func() {
			if p := recover(); p != nil {
				err = c.report(fmt.Errorf("berth: internal error in %q: %v", cmd.CommandPath(), p))
			}
		}()
		return c.report(fn(cmd.Context(), args))
	}
}

// Commands returns berth's top-level CLI verbs, ready for a root command.
func (c *CLI) Commands() []*cobra.Command {
	// docker's management groups repeat the verbs: `berth container run`
	// is `berth run`, `berth image ls` is `berth images`.
	image := c.groupCommand("image", "Manage images")
	imageLs := c.imagesCommand("ls")
	imageLs.Aliases = []string{"list"}
	image.AddCommand(imageLs, c.inspectCommandFor("image"), c.pullCommand(), c.pushCommand(), c.tagCommand(), c.rmiCommand("rm"),
		c.historyCommand(), c.saveCommand(), c.loadCommand(), c.imagePruneCommand(), c.buildCommand())
	container := c.groupCommand("container", "Manage containers")
	containerLs := c.psCommand("ls")
	containerLs.Aliases = []string{"list", "ps"}
	container.AddCommand(append(c.containerVerbs(), containerLs, c.inspectCommandFor("container"), c.containerPruneCommand())...)
	cmds := []*cobra.Command{image, container, c.completionCommand(), c.builderCommand(), c.volumeCommand(),
		c.systemCommand(), c.networkCommand()}
	for _, v := range c.plainVerbs() {
		cmds = append(cmds, v.build())
	}
	for _, cmd := range cmds {
		c.setUsageErrors(cmd)
		c.canPull = c.canPull || cmd.Name() == "pull"
	}
	return cmds
}

// CommandsFor returns the top-level command named verb alone when it is
// one of docker's plain verbs, and every command otherwise (help, a
// management group, an unknown word): building all ~80 commands and their
// flags is a millisecond of every CLI call, `run` alone a tenth of it.
func (c *CLI) CommandsFor(verb string) []*cobra.Command {
	for _, v := range c.plainVerbs() {
		if v.name != verb {
			continue
		}
		cmd := v.build()
		c.setUsageErrors(cmd)
		// A missing image is pulled by run and create, as with every verb.
		c.canPull = true
		return []*cobra.Command{cmd}
	}
	return c.Commands()
}

// verb is a top-level command, built only when needed.
type verb struct {
	name  string
	build func() *cobra.Command
}

// plainVerbs are the top-level commands that are not management groups:
// docker's image and system verbs and the container verbs.
func (c *CLI) plainVerbs() []verb {
	vs := []verb{
		{"version", c.versionCommand}, {"info", c.infoCommand},
		{"ps", func() *cobra.Command { return c.psCommand("ps") }},
		{"images", func() *cobra.Command { return c.imagesCommand("images") }},
		{"inspect", func() *cobra.Command { return c.inspectCommandFor("") }},
		{"pull", c.pullCommand}, {"push", c.pushCommand}, {"tag", c.tagCommand},
		{"rmi", func() *cobra.Command { return c.rmiCommand("rmi") }}, {"events", c.eventsCommand},
		{"history", c.historyCommand}, {"save", c.saveCommand}, {"load", c.loadCommand}, {"build", c.buildCommand},
		{"login", c.loginCommand}, {"logout", c.logoutCommand},
	}
	return append(vs, c.containerVerbList()...)
}

// groupCommand is a management command (`berth image`): help without
// arguments, docker's "unknown command" for a verb it lacks.
func (c *CLI) groupCommand(use, short string) *cobra.Command {
	return &cobra.Command{
		Use: use, Short: short, Args: cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				return cmd.Help()
			}
			return c.report(&StatusError{Code: 1, Message: fmt.Sprintf("unknown command: %s %s. See '%s --help'.",
				cmd.CommandPath(), args[0], cmd.CommandPath())})
		},
	}
}

// containerVerbList are the container commands shared by the top level and
// `berth container`.
func (c *CLI) containerVerbList() []verb {
	return []verb{
		{"run", c.runCommand}, {"create", c.createCommand}, {"start", c.startCommand}, {"stop", c.stopCommand},
		{"restart", c.restartCommand}, {"kill", c.killCommand}, {"rm", c.rmCommand}, {"logs", c.logsCommand},
		{"wait", c.waitCommand}, {"rename", c.renameCommand}, {"exec", c.execCommand}, {"top", c.topCommand},
		{"pause", c.pauseCommand}, {"unpause", c.unpauseCommand}, {"attach", c.attachCommand},
		{"stats", c.statsCommand}, {"cp", c.cpCommand}, {"diff", c.diffCommand}, {"export", c.exportCommand},
		{"commit", c.commitCommand}, {"update", c.updateCommand}, {"port", c.portCommand},
	}
}

// containerVerbs builds every container verb (for `berth container`).
func (c *CLI) containerVerbs() []*cobra.Command {
	var cmds []*cobra.Command
	for _, v := range c.containerVerbList() {
		cmds = append(cmds, v.build())
	}
	return cmds
}

// setUsageErrors gives a command and its children docker's usage errors:
// one line naming the command and where to read its help, exit status 125
// for flag errors (docker uses 125 for every command there).
func (c *CLI) setUsageErrors(cmd *cobra.Command) {
	cmd.DisableFlagsInUseLine = true // Use already says [OPTIONS], as docker's does
	cmd.SetFlagErrorFunc(func(cmd *cobra.Command, err error) error {
		return c.report(&StatusError{Code: 125, Message: fmt.Sprintf("%s. See '%s --help'.", err, cmd.CommandPath())})
	})
	for _, sub := range cmd.Commands() {
		c.setUsageErrors(sub)
	}
}

func (c *CLI) argsError(cmd *cobra.Command, what string) error {
	return c.report(&StatusError{Code: 1, Message: fmt.Sprintf("%q %s. See '%s --help'.", cmd.CommandPath(), what, cmd.CommandPath())})
}

func (c *CLI) noArgs() cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) > 0 {
			return c.argsError(cmd, "accepts no arguments")
		}
		return nil
	}
}

func plural(n int) string {
	if n == 1 {
		return "1 argument"
	}
	return fmt.Sprintf("%d arguments", n)
}

func (c *CLI) minArgs(n int) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) < n {
			return c.argsError(cmd, "requires at least "+plural(n))
		}
		return nil
	}
}

func (c *CLI) exactArgs(n int) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) != n {
			return c.argsError(cmd, "requires exactly "+plural(n))
		}
		return nil
	}
}

func (c *CLI) maxArgs(n int) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) > n {
			return c.argsError(cmd, "requires at most "+plural(n))
		}
		return nil
	}
}
