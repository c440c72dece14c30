package command

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/spf13/cobra"

	"github.com/berth-dev/berth/internal/cli/client"
	"github.com/berth-dev/berth/internal/cli/format"
)

const psTable = "table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t{{.Ports}}\t{{.Names}}"

var psHeader = map[string]string{
	"ID": "CONTAINER ID", "Names": "NAMES", "Image": "IMAGE", "Command": "COMMAND",
	"CreatedAt": "CREATED AT", "RunningFor": "CREATED", "Ports": "PORTS", "State": "STATE",
	"Status": "STATUS", "Size": "SIZE", "Labels": "LABELS", "Mounts": "MOUNTS",
	"LocalVolumes": "LOCAL VOLUMES", "Networks": "NETWORKS", "Platform": "PLATFORM",
}

type psOptions struct {
	all, quiet, noTrunc, size, latest bool
	last                              int
	filters                           []string
	format                            string
}

func (c *CLI) psCommand(use string) *cobra.Command {
	var o psOptions
	cmd := &cobra.Command{
		Use:   use + " [OPTIONS]",
		Short: "List containers",
		Args:  c.noArgs(),
	}
	f := cmd.Flags()
	f.BoolVarP(&o.all, "all", "a", false, "Show all containers (default shows just running)")
	f.BoolVarP(&o.quiet, "quiet", "q", false, "Only display container IDs")
	f.BoolVar(&o.noTrunc, "no-trunc", false, "Don't truncate output")
	f.BoolVarP(&o.size, "size", "s", false, "Display total file sizes")
	f.BoolVarP(&o.latest, "latest", "l", false, "Show the latest created container (includes all states)")
	f.IntVarP(&o.last, "last", "n", -1, "Show n last created containers (includes all states)")
	f.StringArrayVarP(&o.filters, "filter", "f", nil, "Filter output based on conditions provided")
	f.StringVar(&o.format, "format", "", "Format output using a custom template:\n'table': Print output in table format with column headers (default)\n'table TEMPLATE': Print output in table format using the given Go template\n'json': Print in JSON format\n'TEMPLATE': Print output using the given Go template")
	cmd.RunE = c.action(func(ctx context.Context, _ []string) error { return c.ps(ctx, o) })
	return cmd
}

func (c *CLI) ps(ctx context.Context, o psOptions) error {
	tmpl := o.format
	if o.quiet && (tmpl == "" || strings.HasPrefix(tmpl, format.TableKey)) {
		tmpl = "{{.ID}}"
	} else if o.size && (tmpl == "" || tmpl == format.TableKey) {
		tmpl = psTable + "\t{{.Size}}"
	}
	l, err := format.NewLister(c.Out, tmpl, psTable, psHeader)
	if err != nil {
		return err
	}
	filters, err := parseFilters(o.filters)
	if err != nil {
		return &StatusError{Code: 125, Message: err.Error() + ". See 'berth ps --help'."}
	}
	// Sizes cost a walk of every container's files: only when shown (docker
	// leaves them out of --format json too).
	opts := client.ContainerListOptions{All: o.all, Filters: filters, Limit: o.last,
		Size: o.size || strings.Contains(o.format, ".Size")}
	if o.latest {
		opts.Limit = 1
	}
	if opts.Limit > 0 {
		opts.All = true
	}
	api, err := c.Client()
	if err != nil {
		return err
	}
	res, err := api.ContainerList(ctx, opts)
	if err != nil {
		return c.explain(err)
	}
	now := time.Now()
	for _, ctr := range res.Items {
		if err := l.Row(&psRow{c: ctr, trunc: !o.noTrunc, now: now}); err != nil {
			return err
		}
	}
	return l.Flush()
}

// parseFilters reads docker's repeated `-f key=value`.
func parseFilters(in []string) (client.Filters, error) {
	f := client.Filters{}
	for _, kv := range in {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			return nil, fmt.Errorf("invalid argument %q for \"-f, --filter\" flag: bad format of filter (expected name=value)", kv)
		}
		f.Add(strings.ToLower(strings.TrimSpace(k)), strings.TrimSpace(v))
	}
	return f, nil
}

// psRow is one container as docker's ps templates see it.
type psRow struct {
	c     container.Summary
	trunc bool
	now   time.Time
}

func (r *psRow) ID() string {
	if r.trunc {
		return format.ShortID(r.c.ID)
	}
	return r.c.ID
}

func (r *psRow) Names() string {
	var names []string
	for _, n := range r.c.Names {
		n = strings.TrimPrefix(n, "/")
		// Truncated output hides link aliases ("/other/alias").
		if r.trunc {
			if !strings.Contains(n, "/") {
				return n
			}
			continue
		}
		names = append(names, n)
	}
	return strings.Join(names, ",")
}

func (r *psRow) Image() string {
	img := r.c.Image
	if img == "" {
		return "<no image>"
	}
	if r.trunc && (strings.HasPrefix(img, "sha256:") || format.ShortID(r.c.ImageID) == format.ShortID(img)) {
		return format.ShortID(img)
	}
	// An image pinned by digest shows as its name (and tag) only.
	if r.trunc {
		if name, _, ok := strings.Cut(img, "@"); ok {
			return name
		}
	}
	return img
}

func (r *psRow) Command() string {
	cmd := r.c.Command
	if r.trunc {
		cmd = format.Ellipsis(cmd, 20)
	}
	return strconv.Quote(cmd)
}

func (r *psRow) CreatedAt() string  { return time.Unix(r.c.Created, 0).String() }
func (r *psRow) RunningFor() string { return format.Ago(r.now, r.c.Created) }
func (r *psRow) State() string      { return string(r.c.State) }
func (r *psRow) Status() string     { return r.c.Status }

func (r *psRow) Ports() string { return format.Ports(r.c.Ports) }

func (r *psRow) Size() string {
	s := format.Size(r.c.SizeRw)
	if r.c.SizeRootFs > 0 {
		s = fmt.Sprintf("%s (virtual %s)", s, format.Size(r.c.SizeRootFs))
	}
	return s
}

func (r *psRow) Labels() string { return joinLabels(r.c.Labels) }

func joinLabels(m map[string]string) string {
	kv := make([]string, 0, len(m))
	for k, v := range m {
		kv = append(kv, k+"="+v)
	}
	sort.Strings(kv)
	return strings.Join(kv, ",")
}

func (r *psRow) Label(name string) string { return r.c.Labels[name] }

func (r *psRow) Mounts() string {
	var out []string
	for _, m := range r.c.Mounts {
		name := m.Name
		if name == "" {
			name = m.Source
		}
		if r.trunc {
			name = format.Ellipsis(name, 15)
		}
		out = append(out, name)
	}
	return strings.Join(out, ",")
}

func (r *psRow) LocalVolumes() string {
	n := 0
	for _, m := range r.c.Mounts {
		if m.Driver == "local" {
			n++
		}
	}
	return strconv.Itoa(n)
}

func (r *psRow) Networks() string {
	if r.c.NetworkSettings == nil {
		return ""
	}
	var out []string
	for n := range r.c.NetworkSettings.Networks {
		out = append(out, n)
	}
	sort.Strings(out)
	return strings.Join(out, ",")
}

// MarshalJSON gives `{{json .}}` the columns, as docker does (Platform is
// null until the daemon reports the image manifest's platform).
func (r *psRow) MarshalJSON() ([]byte, error) {
	return json.Marshal(map[string]any{
		"Command": r.Command(), "CreatedAt": r.CreatedAt(), "ID": r.ID(), "Image": r.Image(),
		"Labels": r.Labels(), "LocalVolumes": r.LocalVolumes(), "Mounts": r.Mounts(), "Names": r.Names(),
		"Networks": r.Networks(), "Platform": nil, "Ports": r.Ports(), "RunningFor": r.RunningFor(), "Size": r.Size(),
		"State": r.State(), "Status": r.Status(),
	})
}
