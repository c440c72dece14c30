package command

import (
	"context"
	"io"

	"github.com/moby/moby/api/pkg/stdcopy"
	"github.com/spf13/cobra"

	"github.com/berth-dev/berth/internal/cli/client"
)

func (c *CLI) logsCommand() *cobra.Command {
	var o client.ContainerLogsOptions
	cmd := &cobra.Command{
		Use:               "logs [OPTIONS] CONTAINER",
		Short:             "Fetch the logs of a container",
		Args:              c.exactArgs(1),
		ValidArgsFunction: c.completeContainers,
	}
	f := cmd.Flags()
	f.BoolVarP(&o.Follow, "follow", "f", false, "Follow log output")
	f.BoolVarP(&o.Timestamps, "timestamps", "t", false, "Show timestamps")
	f.StringVarP(&o.Tail, "tail", "n", "all", "Number of lines to show from the end of the logs")
	f.StringVar(&o.Since, "since", "", "Show logs since timestamp (e.g. \"2013-01-02T13:23:37Z\") or relative (e.g. \"42m\" for 42 minutes)")
	f.StringVar(&o.Until, "until", "", "Show logs before a timestamp (e.g. \"2013-01-02T13:23:37Z\") or relative (e.g. \"42m\" for 42 minutes)")
	f.BoolVar(&o.Details, "details", false, "Show extra details provided to logs")
	cmd.RunE = c.action(func(ctx context.Context, args []string) error {
		// The stream is multiplexed unless the container has a terminal.
		api, ctr, err := c.inspectContainer(ctx, args[0])
		if err != nil {
			return err
		}
		o.ShowStdout, o.ShowStderr = true, true
		rc, err := api.ContainerLogs(ctx, ctr.ID, o)
		if err != nil {
			return c.explain(err)
		}
		defer rc.Close()
		if ctr.Config != nil && ctr.Config.Tty {
			_, err = io.Copy(c.Out, rc)
		} else {
			_, err = stdcopy.StdCopy(c.Out, c.Err, rc)
		}
		return err
	})
	return cmd
}
