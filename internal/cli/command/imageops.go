package command

import (
	"context"
	"fmt"
	"io"
	"os"

	"github.com/containerd/console"

	"github.com/spf13/cobra"

	"github.com/berth-dev/berth/internal/cli/client"
	"github.com/berth-dev/berth/internal/cli/progress"
	"github.com/berth-dev/berth/internal/image"
)

func (c *CLI) pullCommand() *cobra.Command {
	var all, quiet bool
	cmd := &cobra.Command{
		Use:   "pull [OPTIONS] NAME[:TAG|@DIGEST]",
		Short: "Download an image from a registry",
		Args:  c.exactArgs(1),
	}
	cmd.Flags().BoolVarP(&all, "all-tags", "a", false, "Download all tagged images in the repository")
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "Suppress verbose output")
	cmd.RunE = c.action(func(ctx context.Context, args []string) error {
		ref, err := c.imageRef(args[0], all, quiet)
		if err != nil {
			return err
		}
		name := ref.Familiar()
		if all {
			name = ref.FamiliarName()
		}
		api, err := c.Client()
		if err != nil {
			return err
		}
		out := c.Out
		if quiet {
			out = io.Discard
		}
		if err := c.pullAll(ctx, api, name, all, out); err != nil {
			return err
		}
		// docker ends a pull with the full reference, quiet or not.
		fmt.Fprintln(c.Out, ref.String())
		return nil
	})
	return cmd
}

// showProgress renders a pull/push stream: live per-layer lines on a
// terminal, docker's plain lines anywhere else (logs, pipes, CI).
func (c *CLI) showProgress(out io.Writer, stream io.Reader) error {
	if f, ok := out.(*os.File); ok {
		if con, err := console.ConsoleFromFile(f); err == nil {
			width := 0
			if ws, err := con.Size(); err == nil {
				width = int(ws.Width)
			}
			return progress.Live(out, stream, width)
		}
	}
	return progress.Plain(out, stream)
}

// pull pulls one reference, writing docker's progress lines to out.
func (c *CLI) pull(ctx context.Context, api *client.Client, name string, out io.Writer) error {
	return c.pullAll(ctx, api, name, false, out)
}

func (c *CLI) pullAll(ctx context.Context, api *client.Client, name string, all bool, out io.Writer) error {
	stream, err := api.ImagePull(ctx, name, client.ImagePullOptions{All: all, RegistryAuth: c.registryAuth(name)})
	if err != nil {
		return c.explain(err)
	}
	defer stream.Close()
	return c.showProgress(out, stream)
}

// imageRef parses a pull/push argument; without a tag (and without
// --all-tags) it means :latest, which docker says out loud.
func (c *CLI) imageRef(arg string, all, quiet bool) (image.Reference, error) {
	ref, err := image.ParseNamed(arg)
	if err != nil {
		return image.Reference{}, fmt.Errorf("invalid reference format: %w", err)
	}
	if !all && ref.Tag == "" && ref.Digest == "" {
		ref = ref.OrLatest()
		if !quiet {
			fmt.Fprintln(c.Out, "Using default tag: latest")
		}
	}
	return ref, nil
}

func (c *CLI) pushCommand() *cobra.Command {
	var all, quiet bool
	cmd := &cobra.Command{
		Use:               "push [OPTIONS] NAME[:TAG]",
		Short:             "Upload an image to a registry",
		Args:              c.exactArgs(1),
		ValidArgsFunction: c.completeImages,
	}
	cmd.Flags().BoolVarP(&all, "all-tags", "a", false, "Push all tags of an image to the repository")
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "Suppress verbose output")
	cmd.RunE = c.action(func(ctx context.Context, args []string) error {
		ref, err := c.imageRef(args[0], all, quiet)
		if err != nil {
			return err
		}
		api, err := c.Client()
		if err != nil {
			return err
		}
		pushAuth := c.registryAuth(ref.Familiar())
		if pushAuth == "" {
			pushAuth = "e30=" // "{}": anonymous
		}
		stream, err := api.ImagePush(ctx, ref.Familiar(), client.ImagePushOptions{All: all, RegistryAuth: pushAuth})
		if err != nil {
			return c.explain(err)
		}
		defer stream.Close()
		out := c.Out
		if quiet {
			out = io.Discard
		}
		if err := c.showProgress(out, stream); err != nil {
			return err
		}
		if quiet {
			fmt.Fprintln(c.Out, ref.Familiar())
		}
		return nil
	})
	return cmd
}

func (c *CLI) tagCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:               "tag SOURCE_IMAGE[:TAG] TARGET_IMAGE[:TAG]",
		Short:             "Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE",
		Args:              c.exactArgs(2),
		ValidArgsFunction: c.completeImages,
	}
	cmd.RunE = c.action(func(ctx context.Context, args []string) error {
		api, err := c.Client()
		if err != nil {
			return err
		}
		_, err = api.ImageTag(ctx, client.ImageTagOptions{Source: args[0], Target: args[1]})
		return c.explain(err)
	})
	return cmd
}

func (c *CLI) rmiCommand(use string) *cobra.Command {
	var o client.ImageRemoveOptions
	var noPrune bool
	cmd := &cobra.Command{
		Use:               use + " [OPTIONS] IMAGE [IMAGE...]",
		Short:             "Remove one or more images",
		Args:              c.minArgs(1),
		ValidArgsFunction: c.completeImages,
	}
	cmd.Flags().BoolVarP(&o.Force, "force", "f", false, "Force removal of the image")
	cmd.Flags().BoolVar(&noPrune, "no-prune", false, "Do not delete untagged parents")
	cmd.RunE = c.action(func(ctx context.Context, args []string) error {
		o.PruneChildren = !noPrune
		return c.eachContainer(ctx, args, false, "", func(ctx context.Context, api *client.Client, name string) error {
			res, err := api.ImageRemove(ctx, name, o)
			if err != nil {
				return err
			}
			for _, d := range res.Items {
				if d.Untagged != "" {
					fmt.Fprintln(c.Out, "Untagged:", d.Untagged)
				}
				if d.Deleted != "" {
					fmt.Fprintln(c.Out, "Deleted:", d.Deleted)
				}
			}
			return nil
		})
	})
	return cmd
}
