package command

import (
	"context"
	"encoding/json"
	"strconv"
	"strings"
	"time"

	"github.com/docker/go-units"
	"github.com/moby/moby/api/types/image"
	"github.com/spf13/cobra"

	"github.com/berth-dev/berth/internal/cli/client"
	"github.com/berth-dev/berth/internal/cli/format"
)

const imagesTable = "table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}"

var imagesHeader = map[string]string{
	"ID": "IMAGE ID", "Repository": "REPOSITORY", "Tag": "TAG", "Digest": "DIGEST",
	"CreatedSince": "CREATED", "CreatedAt": "CREATED AT", "Size": "SIZE", "Containers": "CONTAINERS",
	"SharedSize": "SHARED SIZE", "UniqueSize": "UNIQUE SIZE", "VirtualSize": "SIZE",
}

type imagesOptions struct {
	all, quiet, noTrunc, digests bool
	filters                      []string
	format                       string
}

func (c *CLI) imagesCommand(use string) *cobra.Command {
	var o imagesOptions
	cmd := &cobra.Command{
		Use:   use + " [OPTIONS] [REPOSITORY[:TAG]]",
		Short: "List images",
		Args:  c.maxArgs(1),
	}
	f := cmd.Flags()
	f.BoolVarP(&o.all, "all", "a", false, "Show all images (default hides intermediate images)")
	f.BoolVarP(&o.quiet, "quiet", "q", false, "Only show image IDs")
	f.BoolVar(&o.noTrunc, "no-trunc", false, "Don't truncate output")
	f.BoolVar(&o.digests, "digests", false, "Show digests")
	f.StringArrayVarP(&o.filters, "filter", "f", nil, "Filter output based on conditions provided")
	f.StringVar(&o.format, "format", "", "Format output using a custom template")
	cmd.RunE = c.action(func(ctx context.Context, args []string) error {
		if len(args) == 1 {
			o.filters = append(o.filters, "reference="+args[0])
		}
		return c.images(ctx, o)
	})
	return cmd
}

func (c *CLI) images(ctx context.Context, o imagesOptions) error {
	tmpl := o.format
	if o.quiet && (tmpl == "" || strings.HasPrefix(tmpl, format.TableKey)) {
		tmpl = "{{.ID}}"
	} else if o.digests && (tmpl == "" || tmpl == format.TableKey) {
		tmpl = "table {{.Repository}}\t{{.Tag}}\t{{.Digest}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}"
	}
	l, err := format.NewLister(c.Out, tmpl, imagesTable, imagesHeader)
	if err != nil {
		return err
	}
	filters, err := parseFilters(o.filters)
	if err != nil {
		return &StatusError{Code: 125, Message: err.Error() + ". See 'berth images --help'."}
	}
	api, err := c.Client()
	if err != nil {
		return err
	}
	res, err := api.ImageList(ctx, client.ImageListOptions{All: o.all, Filters: filters})
	if err != nil {
		return c.explain(err)
	}
	now := time.Now()
	seen := map[string]bool{}
	for _, img := range res.Items {
		if o.quiet {
			// -q lists each image once, however many names it has.
			if seen[img.ID] {
				continue
			}
			seen[img.ID] = true
			if err := l.Row(&imageRow{img: img, trunc: !o.noTrunc, now: now}); err != nil {
				return err
			}
			continue
		}
		for _, rt := range imageNames(img) {
			if err := l.Row(&imageRow{img: img, repo: rt[0], tag: rt[1], digest: rt[2], trunc: !o.noTrunc, now: now}); err != nil {
				return err
			}
		}
	}
	return l.Flush()
}

// imageNames is one (repository, tag, digest) per row docker would show:
// one per tag, else one per digest, else "<none>".
func imageNames(img image.Summary) [][3]string {
	digestOf := map[string]string{}
	for _, rd := range img.RepoDigests {
		if repo, d, ok := strings.Cut(rd, "@"); ok {
			digestOf[repo] = d
		}
	}
	var rows [][3]string
	for _, rt := range img.RepoTags {
		i := strings.LastIndexByte(rt, ':')
		if i < 0 || strings.Contains(rt[i:], "/") {
			rows = append(rows, [3]string{rt, "<none>", digestOf[rt]})
			continue
		}
		rows = append(rows, [3]string{rt[:i], rt[i+1:], orNone(digestOf[rt[:i]])})
	}
	if len(rows) > 0 {
		return rows
	}
	for repo, d := range digestOf {
		rows = append(rows, [3]string{repo, "<none>", d})
	}
	if len(rows) > 0 {
		return rows
	}
	return [][3]string{{"<none>", "<none>", "<none>"}}
}

func orNone(s string) string {
	if s == "" {
		return "<none>"
	}
	return s
}

type imageRow struct {
	img               image.Summary
	repo, tag, digest string
	trunc             bool
	now               time.Time
}

func (r *imageRow) ID() string {
	if r.trunc {
		return format.ShortID(r.img.ID)
	}
	return r.img.ID
}
func (r *imageRow) Repository() string   { return r.repo }
func (r *imageRow) Tag() string          { return r.tag }
func (r *imageRow) Digest() string       { return r.digest }
func (r *imageRow) CreatedSince() string { return format.Ago(r.now, r.img.Created) }
func (r *imageRow) CreatedAt() string    { return time.Unix(r.img.Created, 0).String() }
func (r *imageRow) Size() string         { return format.Size(r.img.Size) }
func (r *imageRow) VirtualSize() string  { return units.HumanSize(float64(r.img.Size)) } // docker: 4 digits here
func (r *imageRow) Containers() string {
	if r.img.Containers < 0 {
		return "N/A"
	}
	return strconv.FormatInt(r.img.Containers, 10)
}
func (r *imageRow) SharedSize() string {
	if r.img.SharedSize < 0 {
		return "N/A"
	}
	return units.HumanSize(float64(r.img.SharedSize)) // docker: 4 digits here
}
func (r *imageRow) UniqueSize() string {
	if r.img.SharedSize < 0 {
		return "N/A"
	}
	return units.HumanSize(float64(r.img.Size - r.img.SharedSize))
}

// MarshalJSON gives `{{json .}}` the columns, as docker does.
func (r *imageRow) MarshalJSON() ([]byte, error) {
	return json.Marshal(map[string]any{
		"Containers": r.Containers(), "CreatedAt": r.CreatedAt(), "CreatedSince": r.CreatedSince(),
		"Digest": r.Digest(), "ID": r.ID(), "Repository": r.Repository(), "SharedSize": r.SharedSize(),
		"Size": r.Size(), "Tag": r.Tag(), "UniqueSize": r.UniqueSize(), "VirtualSize": r.VirtualSize(),
	})
}
