package command

import (
	"context"
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/berth-dev/berth/internal/cli/client"
)

func (c *CLI) topCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:               "top CONTAINER [ps OPTIONS]",
		Short:             "Display the running processes of a container",
		Args:              c.minArgs(1),
		ValidArgsFunction: c.completeContainers,
	}
	cmd.Flags().SetInterspersed(false) // ps options belong to ps
	cmd.RunE = c.action(func(ctx context.Context, args []string) error {
		api, err := c.Client()
		if err != nil {
			return err
		}
		res, err := api.ContainerTop(ctx, args[0], client.ContainerTopOptions{Arguments: args[1:]})
		if err != nil {
			return c.explain(err)
		}
		// docker's top table: minimum width 20, padding 3.
		w := tabwriter.NewWriter(c.Out, 20, 1, 3, ' ', 0)
		fmt.Fprintln(w, strings.Join(res.Titles, "\t"))
		for _, p := range res.Processes {
			fmt.Fprintln(w, strings.Join(p, "\t"))
		}
		return w.Flush()
	})
	return cmd
}

func (c *CLI) pauseCommand() *cobra.Command {
	cmd := c.containerCommand("pause CONTAINER [CONTAINER...]", "Pause all processes within one or more containers", 1)
	cmd.RunE = c.action(func(ctx context.Context, args []string) error {
		return c.eachContainer(ctx, args, true, "", func(ctx context.Context, api *client.Client, n string) error {
			_, err := api.ContainerPause(ctx, n, client.ContainerPauseOptions{})
			return err
		})
	})
	return cmd
}

func (c *CLI) unpauseCommand() *cobra.Command {
	cmd := c.containerCommand("unpause CONTAINER [CONTAINER...]", "Unpause all processes within one or more containers", 1)
	cmd.RunE = c.action(func(ctx context.Context, args []string) error {
		return c.eachContainer(ctx, args, true, "", func(ctx context.Context, api *client.Client, n string) error {
			_, err := api.ContainerUnpause(ctx, n, client.ContainerUnpauseOptions{})
			return err
		})
	})
	return cmd
}
