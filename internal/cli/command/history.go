package command

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/moby/moby/api/types/image"
	"github.com/spf13/cobra"

	"github.com/berth-dev/berth/internal/cli/client"
	"github.com/berth-dev/berth/internal/cli/format"
)

const historyTable = "table {{.ID}}\t{{.CreatedSince}}\t{{.CreatedBy}}\t{{.Size}}\t{{.Comment}}"

var historyHeader = map[string]string{
	"ID": "IMAGE", "CreatedSince": "CREATED", "CreatedAt": "CREATED AT", "CreatedBy": "CREATED BY",
	"Size": "SIZE", "Comment": "COMMENT",
}

func (c *CLI) historyCommand() *cobra.Command {
	var human, noTrunc, quiet bool
	var tmpl string
	cmd := &cobra.Command{
		Use:               "history [OPTIONS] IMAGE",
		Short:             "Show the history of an image",
		Args:              c.exactArgs(1),
		ValidArgsFunction: c.completeImages,
	}
	f := cmd.Flags()
	f.BoolVarP(&human, "human", "H", true, "Print sizes and dates in human readable format")
	f.BoolVar(&noTrunc, "no-trunc", false, "Don't truncate output")
	f.BoolVarP(&quiet, "quiet", "q", false, "Only show image IDs")
	f.StringVar(&tmpl, "format", "", "Format output using a custom template")
	cmd.RunE = c.action(func(ctx context.Context, args []string) error {
		if quiet && (tmpl == "" || strings.HasPrefix(tmpl, format.TableKey)) {
			tmpl = "{{.ID}}"
		}
		l, err := format.NewLister(c.Out, tmpl, historyTable, historyHeader)
		if err != nil {
			return err
		}
		api, err := c.Client()
		if err != nil {
			return err
		}
		res, err := api.ImageHistory(ctx, args[0])
		if err != nil {
			return c.explain(err)
		}
		now := time.Now()
		for _, h := range res.Items {
			if err := l.Row(&historyRow{h: h, trunc: !noTrunc, human: human, now: now}); err != nil {
				return err
			}
		}
		return l.Flush()
	})
	return cmd
}

type historyRow struct {
	h            image.HistoryResponseItem
	trunc, human bool
	now          time.Time
}

func (r *historyRow) ID() string {
	if r.trunc && r.h.ID != "<missing>" {
		return format.ShortID(r.h.ID)
	}
	return r.h.ID
}

func (r *historyRow) CreatedSince() string {
	if !r.human {
		return r.CreatedAt()
	}
	return format.Ago(r.now, r.h.Created)
}

func (r *historyRow) CreatedAt() string {
	return time.Unix(r.h.Created, 0).Format(time.RFC3339)
}

func (r *historyRow) CreatedBy() string {
	by := strings.ReplaceAll(r.h.CreatedBy, "\t", " ")
	if r.trunc {
		by = format.Ellipsis(by, 45)
	}
	return by
}

func (r *historyRow) Size() string {
	if !r.human {
		return fmt.Sprint(r.h.Size)
	}
	return format.Size(r.h.Size)
}

func (r *historyRow) Comment() string { return r.h.Comment }

func (c *CLI) saveCommand() *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:               "save [OPTIONS] IMAGE [IMAGE...]",
		Short:             "Save one or more images to a tar archive (streamed to STDOUT by default)",
		Args:              c.minArgs(1),
		ValidArgsFunction: c.completeImages,
	}
	cmd.Flags().StringVarP(&output, "output", "o", "", "Write to a file, instead of STDOUT")
	cmd.RunE = c.action(func(ctx context.Context, args []string) error {
		out := c.Out
		if output == "" && isTerminal(c.Out) {
			return errors.New("cowardly refusing to save to a terminal. Use the -o flag or redirect")
		}
		api, err := c.Client()
		if err != nil {
			return err
		}
		rc, err := api.ImageSave(ctx, args)
		if err != nil {
			return c.explain(err)
		}
		defer rc.Close()
		if output != "" {
			return writeAtomically(output, rc, "failed to save image")
		}
		_, err = io.Copy(out, rc)
		return err
	})
	return cmd
}

// writeAtomically writes r to path through a temporary file beside it,
// renamed at the end, so a failed copy never leaves half an archive under
// the name asked for; errors start with what.
func writeAtomically(path string, r io.Reader, what string) error {
	f, err := os.CreateTemp(dirOf(path), ".berth-*")
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	defer os.Remove(f.Name())
	if _, err := io.Copy(f, r); err != nil {
		f.Close()
		return fmt.Errorf("%s: %w", what, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	return os.Rename(f.Name(), path)
}

func dirOf(path string) string {
	if i := strings.LastIndexByte(path, '/'); i >= 0 {
		return path[:i+1]
	}
	return "."
}

func (c *CLI) loadCommand() *cobra.Command {
	var input string
	var quiet bool
	cmd := &cobra.Command{
		Use:   "load [OPTIONS]",
		Short: "Load an image from a tar archive or STDIN",
		Args:  c.noArgs(),
	}
	cmd.Flags().StringVarP(&input, "input", "i", "", "Read from tar archive file, instead of STDIN")
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "Suppress the load output")
	cmd.RunE = c.action(func(ctx context.Context, _ []string) error {
		in := c.In
		if input != "" {
			f, err := os.Open(input)
			if err != nil {
				return err
			}
			defer f.Close()
			in = f
		} else if isTerminal(c.In) {
			return errors.New("requested load from stdin, but stdin is empty")
		}
		api, err := c.Client()
		if err != nil {
			return err
		}
		res, err := api.ImageLoad(ctx, in, client.ImageLoadWithQuiet(quiet))
		if err != nil {
			return c.explain(err)
		}
		defer res.Close()
		return c.showProgress(c.Out, res)
	})
	return cmd
}
