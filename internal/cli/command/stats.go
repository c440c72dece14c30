package command

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/spf13/cobra"
	"golang.org/x/sync/errgroup"

	"github.com/berth-dev/berth/internal/cli/client"
	"github.com/berth-dev/berth/internal/cli/format"
	"github.com/berth-dev/berth/internal/cli/stats"
)

type statsOptions struct {
	all, noStream, noTrunc bool
	format                 string
}

func (c *CLI) statsCommand() *cobra.Command {
	var o statsOptions
	cmd := &cobra.Command{
		Use:               "stats [OPTIONS] [CONTAINER...]",
		Short:             "Display a live stream of container(s) resource usage statistics",
		Args:              cobra.ArbitraryArgs,
		ValidArgsFunction: c.completeContainers,
	}
	f := cmd.Flags()
	f.BoolVarP(&o.all, "all", "a", false, "Show all containers (default shows just running)")
	f.BoolVar(&o.noStream, "no-stream", false, "Disable streaming stats and only pull the first result")
	f.BoolVar(&o.noTrunc, "no-trunc", false, "Do not truncate output")
	f.StringVar(&o.format, "format", "", "Format output using a custom template")
	cmd.RunE = c.action(func(ctx context.Context, args []string) error { return c.stats(ctx, o, args) })
	return cmd
}

// stats prints one table (--no-stream), or a new one every second until
// interrupted, redrawn in place on a terminal.
func (c *CLI) stats(ctx context.Context, o statsOptions, names []string) error {
	if _, err := format.NewLister(io.Discard, o.format, stats.Table, stats.Header); err != nil {
		return err
	}
	api, err := c.Client()
	if err != nil {
		return err
	}
	tty := isTerminal(c.Out)
	drawn := 0
	for {
		rows, err := c.sample(ctx, api, o, names)
		if err != nil {
			return err
		}
		var buf bytes.Buffer
		l, _ := format.NewLister(&buf, o.format, stats.Table, stats.Header)
		for _, r := range rows {
			if err := l.Row(r); err != nil {
				return err
			}
		}
		if err := l.Flush(); err != nil {
			return err
		}
		// On a terminal the table is drawn over the last one (cursor up,
		// clear below) rather than after a cleared screen, so it does not
		// flicker; elsewhere each sample is simply appended.
		if tty && !o.noStream && drawn > 0 {
			fmt.Fprintf(c.Out, "\033[%dA\r\033[J", drawn)
		}
		drawn = bytes.Count(buf.Bytes(), []byte("\n"))
		if _, err := buf.WriteTo(c.Out); err != nil || o.noStream {
			return err
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(time.Second):
		}
	}
}

// sample asks for every container's stats at once (each answer holds two
// samples, so CPU % is known at the first call).
func (c *CLI) sample(ctx context.Context, api *client.Client, o statsOptions, names []string) ([]stats.Row, error) {
	if len(names) == 0 {
		res, err := api.ContainerList(ctx, client.ContainerListOptions{All: o.all})
		if err != nil {
			return nil, c.explain(err)
		}
		for _, ctr := range res.Items {
			names = append(names, ctr.ID)
		}
	}
	rows := make([]stats.Row, len(names))
	var g errgroup.Group
	for i, n := range names {
		g.Go(func() error {
			res, err := api.ContainerStats(ctx, n, client.ContainerStatsOptions{IncludePreviousSample: true})
			if err != nil {
				return c.explain(err)
			}
			defer res.Body.Close()
			var s container.StatsResponse
			if err := json.NewDecoder(res.Body).Decode(&s); err != nil {
				return fmt.Errorf("read stats of %s: %w", n, err)
			}
			rows[i] = stats.FromResponse(n, s, !o.noTrunc)
			return nil
		})
	}
	return rows, g.Wait()
}
