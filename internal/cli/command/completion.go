package command

import (
	"context"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/berth-dev/berth/internal/cli/client"
)

func (c *CLI) completionCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:       "completion bash|zsh|fish",
		Short:     "Print shell completion for berth",
		Long:      "Print a completion script; for bash: source <(berth completion bash)",
		ValidArgs: []string{"bash", "zsh", "fish"},
		Args:      c.exactArgs(1),
	}
	cmd.RunE = c.action(func(_ context.Context, args []string) error {
		root := cmd.Root()
		switch args[0] {
		case "bash":
			return root.GenBashCompletionV2(c.Out, true)
		case "zsh":
			return root.GenZshCompletion(c.Out)
		case "fish":
			return root.GenFishCompletion(c.Out, true)
		}
		return &StatusError{Code: 1, Message: "unknown shell " + args[0] + "; use bash, zsh or fish"}
	})
	return cmd
}

// completeContainers offers container names (all states) for commands
// taking a container. A daemon that is down completes nothing rather than
// printing an error into the shell.
func (c *CLI) completeContainers(cmd *cobra.Command, _ []string, prefix string) ([]cobra.Completion, cobra.ShellCompDirective) {
	api, err := c.Client()
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	res, err := api.ContainerList(ctx, client.ContainerListOptions{All: true})
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	var out []cobra.Completion
	for _, ctr := range res.Items {
		for _, n := range ctr.Names {
			n = strings.TrimPrefix(n, "/")
			if !strings.Contains(n, "/") && strings.HasPrefix(n, prefix) {
				out = append(out, n)
			}
		}
	}
	return out, cobra.ShellCompDirectiveNoFileComp
}

// completeImages offers image names ("repo:tag") for commands taking an image.
func (c *CLI) completeImages(cmd *cobra.Command, args []string, prefix string) ([]cobra.Completion, cobra.ShellCompDirective) {
	api, err := c.Client()
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	res, err := api.ImageList(ctx, client.ImageListOptions{})
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	var out []cobra.Completion
	for _, img := range res.Items {
		for _, rt := range img.RepoTags {
			if strings.HasPrefix(rt, prefix) {
				out = append(out, rt)
			}
		}
	}
	return out, cobra.ShellCompDirectiveNoFileComp
}

// completeImageFirst completes an image as the first argument of run and
// create; what follows is the container's command line.
func (c *CLI) completeImageFirst(cmd *cobra.Command, args []string, prefix string) ([]cobra.Completion, cobra.ShellCompDirective) {
	if len(args) > 0 {
		return nil, cobra.ShellCompDirectiveDefault
	}
	return c.completeImages(cmd, args, prefix)
}
