package command

import (
	"bufio"
	"context"
	"fmt"
	"strings"

	"github.com/docker/go-units"
	"github.com/moby/moby/api/types/image"
	"github.com/spf13/cobra"

	"github.com/berth-dev/berth/internal/cli/client"
)

// confirm asks a yes/no question on the CLI's streams; only y or yes is yes.
func (c *CLI) confirm(question string) bool {
	fmt.Fprintf(c.Out, "%s [y/N] ", question)
	line, _ := bufio.NewReader(c.In).ReadString('\n')
	answer := strings.ToLower(strings.TrimSpace(line))
	return answer == "y" || answer == "yes"
}

// pruneCommand is the skeleton of `container prune` and `image prune`:
// confirmation unless -f, filters, then the report and the space freed.
func (c *CLI) pruneCommand(what string, warning func() string, flags func(*cobra.Command), run func(ctx context.Context, api *client.Client, f client.Filters) (report string, freed uint64, err error)) *cobra.Command {
	var force bool
	var filters []string
	cmd := &cobra.Command{
		Use:   "prune [OPTIONS]",
		Short: "Remove unused " + what,
		Args:  c.noArgs(),
	}
	cmd.Flags().BoolVarP(&force, "force", "f", false, "Do not prompt for confirmation")
	cmd.Flags().StringArrayVar(&filters, "filter", nil, `Provide filter values (e.g. "until=<timestamp>")`)
	if flags != nil {
		flags(cmd)
	}
	cmd.RunE = c.action(func(ctx context.Context, _ []string) error {
		f, err := parseFilters(filters)
		if err != nil {
			return &StatusError{Code: 125, Message: err.Error()}
		}
		if !force && !c.confirm(warning()+"\nAre you sure you want to continue?") {
			return nil // a "no" is an answer, not a failure: docker exits 0 too
		}
		api, err := c.Client()
		if err != nil {
			return err
		}
		report, freed, err := run(ctx, api, f)
		if err != nil {
			return c.explain(err)
		}
		if report != "" {
			fmt.Fprintln(c.Out, report)
		}
		if what != "networks" { // docker's network prune frees no space and says nothing of it
			fmt.Fprintln(c.Out, "Total reclaimed space:", units.HumanSize(float64(freed)))
		}
		return nil
	})
	return cmd
}

func (c *CLI) containerPruneCommand() *cobra.Command {
	return c.pruneCommand("containers", func() string { return "WARNING! This will remove all stopped containers." }, nil,
		func(ctx context.Context, api *client.Client, f client.Filters) (string, uint64, error) {
			res, err := api.ContainerPrune(ctx, client.ContainerPruneOptions{Filters: f})
			if err != nil || len(res.Report.ContainersDeleted) == 0 {
				return "", 0, err
			}
			return "Deleted Containers:\n" + strings.Join(res.Report.ContainersDeleted, "\n") + "\n", res.Report.SpaceReclaimed, nil
		})
}

func (c *CLI) imagePruneCommand() *cobra.Command {
	var all bool
	return c.pruneCommand("images",
		func() string {
			if all {
				return "WARNING! This will remove all images without at least one container associated to them."
			}
			return "WARNING! This will remove all dangling images."
		},
		func(cmd *cobra.Command) {
			cmd.Flags().BoolVarP(&all, "all", "a", false, "Remove all unused images, not just dangling ones")
		},
		func(ctx context.Context, api *client.Client, f client.Filters) (string, uint64, error) {
			f.Add("dangling", fmt.Sprint(!all))
			res, err := api.ImagePrune(ctx, client.ImagePruneOptions{Filters: f})
			if err != nil {
				return "", 0, err
			}
			return deletedImages(res.Report.ImagesDeleted), res.Report.SpaceReclaimed, nil
		})
}

// deletedImages is an image prune's report, docker's lines ("" for none).
func deletedImages(ds []image.DeleteResponse) string {
	if len(ds) == 0 {
		return ""
	}
	var b strings.Builder
	b.WriteString("Deleted Images:\n")
	for _, d := range ds {
		if d.Untagged != "" {
			fmt.Fprintf(&b, "untagged: %s\n", d.Untagged)
		} else {
			fmt.Fprintf(&b, "deleted: %s\n", d.Deleted)
		}
	}
	return b.String()
}
